//! What a run is built from: the [`Config`] (its settings and bounds) and the
//! [`Deps`] (the stores and queues it reads and writes), made once from the
//! function's variables.

use std::time::Duration;

use adapters::cycles::CycleStore;
use adapters::deliveries::DeliveryStore;
use adapters::dispatch_ledger::EmailLedger;
use adapters::failures::FailureLog;
use adapters::queue::{DeliveryQueue, JobQueue};
use adapters::settings::SettingsStore;
use adapters::suppressions::SuppressionStore;
use adapters::{ConfigError, Vars};
use aws_config::SdkConfig;
use domain::delivery::RECHECK_AFTER_MINUTES;
use domain::dispatch::ChannelPolicy;
use domain::{Channel, QuietWindow};

pub struct Config {
    pub quiet: QuietWindow,
    pub policy: ChannelPolicy,
    /// A `QUEUED` delivery no sender has claimed this long after the slot
    /// that enqueued it is enqueued again.
    pub recheck_after: chrono::Duration,
    pub bucket_concurrency: usize,
    pub write_concurrency: usize,
    /// Index entries read per page.
    pub page_size: i32,
    /// Stop this long before the invocation's deadline: more than one AWS
    /// call may take ([`adapters::SDK_OPERATION_TIMEOUT`]), so that no call
    /// started before the pause outlives the invocation.
    pub deadline_margin: Duration,
    /// How many times one slot's run may continue itself.
    pub max_continuations: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quiet: QuietWindow::default_korea(),
            policy: ChannelPolicy::ALL,
            recheck_after: chrono::Duration::minutes(RECHECK_AFTER_MINUTES),
            bucket_concurrency: 16,
            write_concurrency: 10,
            page_size: 200,
            deadline_margin: adapters::SDK_OPERATION_TIMEOUT + Duration::from_secs(5),
            max_continuations: 6,
        }
    }
}

pub struct Deps {
    pub deliveries: DeliveryStore,
    pub cycles: CycleStore,
    pub email: DeliveryQueue,
    pub sms: DeliveryQueue,
    pub failures: FailureLog,
    /// Where a run that nears its deadline puts its continuation; without
    /// one, the next slot's run catches up.
    pub continuation: Option<JobQueue>,
    /// The operators' runtime settings (`ADMIN_TABLE`); without them the
    /// configured policy applies.
    pub settings: Option<SettingsStore>,
    /// The suppression list (`SUPPRESSION_TABLE`): due email whose
    /// `email_hash` it lists goes by SMS instead. Without it, only the
    /// sender's own check applies.
    pub suppressions: Option<SuppressionStore>,
    /// The email provider's 24-hour quota, read once a run.
    pub quota: providers::QuotaSource,
    /// What dispatch enqueued on email, by slot (in `CYCLES_TABLE`).
    pub ledger: EmailLedger,
    pub config: Config,
}

impl Deps {
    /// From the function's variables: `DELIVERIES_TABLE`, `CYCLES_TABLE`,
    /// `FAILURES_TABLE`, `EMAIL_QUEUE_URL`, `SMS_QUEUE_URL`, optional
    /// `ADMIN_TABLE` (the runtime channel policy), `CONTINUATION_QUEUE_URL`, `MAX_CONTINUATIONS` (6), `QUIET_WINDOW`
    /// (`21:00-08:00`), `CHANNEL_POLICY` (`email,sms`) and
    /// `RECHECK_AFTER_MINUTES` (180: longer than a backlog of a million
    /// messages takes to drain, so a busy queue is not mistaken for a lost
    /// message), optional `SUPPRESSION_TABLE`, and the quota's
    /// ([`QuotaSource::from_lookup`](providers::QuotaSource::from_lookup)):
    /// `EMAIL_PROVIDER` (`ses`: SES `GetAccount`), else the mock's
    /// `MOCK_MAX_24H_SEND` (unset: unlimited).
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let ddb = adapters::dynamodb_client(sdk);
        let sqs = adapters::sqs_client(sdk);
        let d = Config::default();
        let config = Config {
            quiet: vars.parsed("QUIET_WINDOW", d.quiet)?,
            policy: vars.parsed("CHANNEL_POLICY", d.policy)?,
            recheck_after: chrono::Duration::minutes(vars.parsed("RECHECK_AFTER_MINUTES", RECHECK_AFTER_MINUTES)?),
            max_continuations: vars.parsed("MAX_CONTINUATIONS", d.max_continuations)?,
            ..d
        };
        let continuation = vars
            .lookup("CONTINUATION_QUEUE_URL")
            .filter(|u| !u.trim().is_empty())
            .map(|u| JobQueue::new(sqs.clone(), u));
        let settings = vars
            .lookup("ADMIN_TABLE")
            .filter(|t| !t.trim().is_empty())
            .map(|t| SettingsStore::new(ddb.clone(), t));
        let suppressions = vars
            .lookup("SUPPRESSION_TABLE")
            .filter(|t| !t.trim().is_empty())
            .map(|t| SuppressionStore::new(ddb.clone(), t));
        let quota = providers::QuotaSource::from_lookup(|| aws_sdk_sesv2::Client::new(sdk), |n| vars.lookup(n))
            .map_err(|reason| ConfigError::Invalid {
                name: "EMAIL_PROVIDER, MOCK_MAX_SEND_RATE or MOCK_MAX_24H_SEND",
                reason,
            })?;
        let cycles_table = vars.required("CYCLES_TABLE")?;
        Ok(Deps {
            deliveries: DeliveryStore::new(ddb.clone(), vars.required("DELIVERIES_TABLE")?),
            cycles: CycleStore::new(ddb.clone(), cycles_table.clone()),
            ledger: EmailLedger::new(ddb.clone(), cycles_table),
            settings,
            suppressions,
            quota,
            failures: FailureLog::new(ddb, vars.required("FAILURES_TABLE")?),
            email: DeliveryQueue::new(sqs.clone(), vars.required("EMAIL_QUEUE_URL")?),
            sms: DeliveryQueue::new(sqs, vars.required("SMS_QUEUE_URL")?),
            continuation,
            config,
        })
    }

    /// The queue of a channel.
    pub(crate) fn queue(&self, channel: Channel) -> &DeliveryQueue {
        match channel {
            Channel::Email => &self.email,
            Channel::Sms => &self.sms,
        }
    }
}
