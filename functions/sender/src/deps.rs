//! What a sender runs with: its [`Config`], its [`Deps`] (stores, queues,
//! providers, keys, clock) built from the function's variables, the crash
//! points the fault tests inject, and the one error an invocation can end with
//! ([`SenderError`]).

use std::sync::Arc;
use std::time::Duration;

use adapters::customers::CustomerStore;
use adapters::data_bucket::DataBucket;
use adapters::deliveries::DeliveryStore;
use adapters::failures::{FailureLog, FailureStage};
use adapters::keyring::PiiKeys;
use adapters::links::LinkSigner;
use adapters::queue::{DeliveryQueue, JobQueue};
use adapters::settings::{CHANNEL_POLICY, CachedSetting, SENDER_CACHE_TTL, SettingsStore};
use adapters::suppressions::SuppressionStore;
use adapters::{ConfigError, StoreError, Vars};
use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use domain::dispatch::ChannelPolicy;
use domain::sending::RetryPolicy;
use domain::{Channel, QuietWindow};
use providers::{EmailBackend, EmailProvider, MockConfig, MockProvider, SendLog, SmsProvider};
use serde::{Deserialize, Serialize};

/// Reads the clock: the wall clock in Lambda; a virtual one in the local
/// month run, whose slots pass faster than real time.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

pub struct Config {
    /// The channel this sender serves (its queue's).
    pub channel: Channel,
    /// The stack's name, the metrics' `Stack` dimension (`STACK_NAME`, `local`).
    pub stack: String,
    pub quiet: QuietWindow,
    /// Whether email may fall back to SMS, unless the operators' runtime
    /// setting says otherwise ([`Deps::settings`]).
    pub policy: ChannelPolicy,
    pub retry: RetryPolicy,
    /// Messages of a batch handled at once.
    pub concurrency: usize,
    /// The longest a provider call may take; past it the outcome is unknown.
    pub provider_timeout: Duration,
    /// A send starts only if the invocation has this much more time than
    /// `provider_timeout` left for the completion write.
    pub finish_margin: Duration,
    /// The lease ends this long after the invocation's deadline.
    pub lease_margin: Duration,
    /// The function's timeout (template.yaml), counted from the start of an
    /// invocation whose deadline is already past when it starts (see
    /// [`effective_deadline`](crate::effective_deadline)).
    pub function_timeout: Duration,
    /// A message whose delivery another sender holds comes back when that
    /// sender's lease ends, but after at most this long.
    pub busy_delay_max: Duration,
    /// A message kept after infrastructure trouble, or whose claim was
    /// released for lack of time, comes back after this long (not after the
    /// queue's visibility timeout of six function timeouts).
    pub trouble_delay: Duration,
    /// How long after a delivery's message should have brought it back
    /// dispatch re-checks it (the `Due` index): the last resort when the
    /// message was lost or dead-lettered for a cause not the delivery's own.
    pub recheck_after: Duration,
}

impl Config {
    pub fn new(channel: Channel) -> Self {
        Config {
            channel,
            stack: "local".into(),
            quiet: QuietWindow::default_korea(),
            policy: ChannelPolicy::ALL,
            retry: RetryPolicy::default(),
            concurrency: 10,
            provider_timeout: Duration::from_secs(10),
            finish_margin: Duration::from_secs(5),
            lease_margin: Duration::from_secs(5),
            function_timeout: Duration::from_secs(60),
            busy_delay_max: Duration::from_secs(30),
            trouble_delay: Duration::from_secs(30),
            recheck_after: Duration::from_secs(60 * domain::delivery::RECHECK_AFTER_MINUTES as u64),
        }
    }
}

/// Where a crash is injected (fault tests and the crash measurements only;
/// never configured from the environment).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashPoint {
    /// Claimed, nothing sent.
    AfterClaim,
    /// The provider accepted; the completion write not made.
    AfterAccept,
    /// Completed; the message not acknowledged.
    AfterComplete,
}

/// Which deliveries crash where.
pub type CrashPlan = Arc<dyn Fn(&str, CrashPoint) -> bool + Send + Sync>;

pub struct Deps {
    pub deliveries: DeliveryStore,
    pub customers: CustomerStore,
    pub invoices: DataBucket,
    /// This sender's own queue (backoff through its messages' visibility).
    pub queue: DeliveryQueue,
    /// Where email falls back to.
    pub sms_queue: DeliveryQueue,
    pub dead_letters: JobQueue,
    pub failures: FailureLog,
    pub email: Arc<dyn EmailProvider>,
    pub sms: Arc<dyn SmsProvider>,
    /// The contact-data keyring, from the secret named by `PII_KEYS_SECRET`.
    pub keys: PiiKeys,
    /// Signs the SMS's link to the invoice (`adapters::links`): the SMS sender's only, from
    /// `LINK_BASE_URL` and the keys in the secret named by `LINK_KEYS_SECRET`; the email sender
    /// makes no link and is not given the keys.
    pub links: Option<LinkSigner>,
    pub clock: Clock,
    pub config: Config,
    /// The operators' runtime channel policy (`ADMIN_TABLE`), read at most
    /// once a minute; without it `config.policy` applies.
    pub settings: Option<CachedSetting<ChannelPolicy>>,
    /// The suppression list (`SUPPRESSION_TABLE`): an email address listed there is not
    /// emailed (the delivery goes to SMS). Without it (a configuration older than the list)
    /// nothing is suppressed.
    pub suppressions: Option<SuppressionStore>,
    pub crash: Option<CrashPlan>,
    /// Paces this channel's provider calls to the send rate, shared by every
    /// instance (`PACING_TABLE`; [`crate::pacing`]); `None`: unpaced.
    pub pacer: Option<crate::pacing::Pacing>,
}

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An injected crash: the invocation ends without answering, as if the
    /// process had died (fault tests only).
    #[error("injected crash at {0:?}")]
    Crashed(CrashPoint),
}

impl runtime::ErrorType for SenderError {
    fn error_type(&self) -> &'static str {
        match self {
            SenderError::Config(_) => "Config",
            SenderError::Crashed(_) => "Crashed",
        }
    }
}

runtime::diagnostic_from!(SenderError);

impl Deps {
    /// From the function's variables: `DELIVERIES_TABLE`, `CUSTOMERS_TABLE`,
    /// `DATA_BUCKET`, `FAILURES_TABLE`, `EMAIL_QUEUE_URL`, `SMS_QUEUE_URL`,
    /// `DEAD_LETTER_QUEUE_URL`, `PII_KEYS_SECRET` (the keyring's secret,
    /// fetched here), for SMS `LINK_BASE_URL` and `LINK_KEYS_SECRET` (the link keys' secret,
    /// fetched here; `LINK_VALID_DAYS_AFTER_DUE`, 90, optional); optional `STACK_NAME` (the
    /// metrics' `Stack` dimension), `ADMIN_TABLE` (the
    /// operators' runtime channel policy), `SUPPRESSION_TABLE` (the
    /// suppression list the email sender checks), `QUIET_WINDOW`,
    /// `CHANNEL_POLICY`, `EMAIL_ATTEMPTS` (3), `SMS_ATTEMPTS` (3),
    /// `RETRY_BASE_DELAY_SECONDS` (30), `RETRY_MAX_DELAY_SECONDS` (900),
    /// `SEND_CONCURRENCY` (10), `PROVIDER_TIMEOUT_MS` (10000),
    /// `EMAIL_PROVIDER` (`mock` or `ses`; `ses` reads `SES_FROM_ADDRESS` and
    /// `SES_CONFIGURATION_SET`), `SMS_PROVIDER` (`mock` or `end-user-messaging`,
    /// alias `eum`; End User Messaging reads `SMS_ORIGINATION_IDENTITY`, required,
    /// `SMS_CONFIGURATION_SET` and `SMS_MAX_PRICE`, optional), the mock's `MOCK_*` variables and
    /// `MOCK_SENDS_TABLE` (where the mock records accepted sends; in memory
    /// when unset), `PACING_TABLE` (the send-rate windows; unpaced when unset),
    /// `SMS_MAX_SEND_RATE` (unset: SMS unpaced), `MOCK_QUOTA_TABLE` (the mock's
    /// quota counters).
    pub async fn load(channel: Channel, sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, SenderError> {
        let ddb = adapters::dynamodb_client(sdk);
        let sqs = adapters::sqs_client(sdk);
        let invalid = |name: &'static str, reason: String| SenderError::Config(ConfigError::Invalid { name, reason });
        let keys = PiiKeys::load(sdk, vars).await?;
        let links = match channel {
            Channel::Sms => Some(LinkSigner::load(sdk, vars).await?),
            Channel::Email => None,
        };
        let d = RetryPolicy::default();
        let retry = RetryPolicy {
            email_attempts: vars.parsed("EMAIL_ATTEMPTS", d.email_attempts)?,
            sms_attempts: vars.parsed("SMS_ATTEMPTS", d.sms_attempts)?,
            base_delay_secs: vars.parsed("RETRY_BASE_DELAY_SECONDS", d.base_delay_secs)?,
            max_delay_secs: vars.parsed("RETRY_MAX_DELAY_SECONDS", d.max_delay_secs)?,
        };
        if retry.email_attempts == 0 || retry.sms_attempts == 0 {
            return Err(invalid("EMAIL_ATTEMPTS", "attempts must be at least 1".into()));
        }
        let base = Config::new(channel);
        let config = Config {
            stack: vars
                .lookup("STACK_NAME")
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| base.stack.clone()),
            quiet: vars.parsed("QUIET_WINDOW", base.quiet)?,
            policy: vars.parsed("CHANNEL_POLICY", base.policy)?,
            retry,
            concurrency: vars.parsed("SEND_CONCURRENCY", base.concurrency)?.max(1),
            provider_timeout: Duration::from_millis(vars.parsed("PROVIDER_TIMEOUT_MS", 10_000u64)?),
            ..base
        };
        let mock = || -> Result<Arc<MockProvider>, SenderError> {
            let cfg = MockConfig::from_lookup(|n| vars.lookup(n)).map_err(|e| invalid("MOCK_*", e))?;
            let log: Arc<dyn SendLog> = match vars.lookup("MOCK_SENDS_TABLE").filter(|t| !t.trim().is_empty()) {
                Some(table) => Arc::new(providers::DynamoLog::new(ddb.clone(), table)),
                None => Arc::new(providers::MemoryLog::new()),
            };
            let mut mock = MockProvider::new(cfg, log);
            // Simulated delivery evidence, when the stack has an evidence queue.
            if let Some(url) = vars.lookup("EVIDENCE_QUEUE_URL").filter(|u| !u.trim().is_empty()) {
                let rates = providers::EvidenceRates::from_lookup(|n| vars.lookup(n))
                    .map_err(|e| invalid("MOCK_BOUNCE_RATE", e))?;
                let delay = Duration::from_secs(vars.parsed("MOCK_EVIDENCE_DELAY_SECONDS", 5u64)?.min(900));
                let sink = crate::evidence_sink::QueueSink::new(JobQueue::new(sqs.clone(), url), delay);
                mock = mock.with_evidence(Arc::new(sink), rates);
            }
            // The mock's own send quota (MOCK_MAX_SEND_RATE, MOCK_MAX_24H_SEND), counted in
            // MOCK_QUOTA_TABLE so that every instance's mock counts the same sends.
            let quota =
                providers::MockQuota::from_lookup(|n| vars.lookup(n)).map_err(|e| invalid("MOCK_MAX_SEND_RATE", e))?;
            let counters = match vars.lookup("MOCK_QUOTA_TABLE").filter(|t| !t.trim().is_empty()) {
                Some(table) => providers::QuotaCounters::dynamo(ddb.clone(), table.trim()),
                None => providers::QuotaCounters::memory(),
            };
            mock = mock.with_quota(providers::QuotaGate::new(quota, counters));
            Ok(Arc::new(mock))
        };
        let backend: EmailBackend = vars
            .lookup("EMAIL_PROVIDER")
            .unwrap_or_default()
            .parse()
            .map_err(|e: String| invalid("EMAIL_PROVIDER", e))?;
        let sms_backend: providers::SmsBackend = vars
            .lookup("SMS_PROVIDER")
            .unwrap_or_default()
            .parse()
            .map_err(|e: String| invalid("SMS_PROVIDER", e))?;
        let sms_provider: Arc<dyn SmsProvider> = match sms_backend {
            providers::SmsBackend::Mock => mock()?,
            providers::SmsBackend::Eum => Arc::new(
                providers::EumSmsProvider::from_lookup(aws_sdk_pinpointsmsvoicev2::Client::new(sdk), |n| {
                    vars.lookup(n)
                })
                .map_err(|e| {
                    let name = if e.starts_with("SMS_MAX_PRICE") {
                        "SMS_MAX_PRICE"
                    } else {
                        "SMS_ORIGINATION_IDENTITY"
                    };
                    invalid(name, e)
                })?,
            ),
        };
        let email_provider: Arc<dyn EmailProvider> = match backend {
            EmailBackend::Mock => mock()?,
            EmailBackend::Ses => Arc::new(
                providers::SesEmailProvider::from_lookup(aws_sdk_sesv2::Client::new(sdk), |n| vars.lookup(n))
                    .map_err(|e| invalid("SES_FROM_ADDRESS", e))?,
            ),
        };
        let pacer = pacing(channel, sdk, vars, config.concurrency).map_err(|(name, e)| invalid(name, e))?;
        Ok(Deps {
            deliveries: DeliveryStore::new(ddb.clone(), vars.required("DELIVERIES_TABLE")?),
            customers: CustomerStore::new(ddb.clone(), vars.required("CUSTOMERS_TABLE")?),
            invoices: DataBucket::new(adapters::s3_client(sdk), vars.required("DATA_BUCKET")?),
            queue: DeliveryQueue::new(
                sqs.clone(),
                vars.required(match channel {
                    Channel::Email => "EMAIL_QUEUE_URL",
                    Channel::Sms => "SMS_QUEUE_URL",
                })?,
            ),
            sms_queue: DeliveryQueue::new(sqs.clone(), vars.required("SMS_QUEUE_URL")?),
            dead_letters: JobQueue::new(sqs, vars.required("DEAD_LETTER_QUEUE_URL")?),
            failures: FailureLog::new(ddb.clone(), vars.required("FAILURES_TABLE")?),
            email: email_provider,
            sms: sms_provider,
            keys,
            links,
            clock: system_clock(),
            config,
            settings: vars
                .lookup("ADMIN_TABLE")
                .filter(|t| !t.trim().is_empty())
                .map(|t| CachedSetting::new(SettingsStore::new(ddb.clone(), t), CHANNEL_POLICY, SENDER_CACHE_TTL)),
            suppressions: vars
                .lookup("SUPPRESSION_TABLE")
                .filter(|t| !t.trim().is_empty())
                .map(|t| SuppressionStore::new(ddb.clone(), t)),
            crash: None,
            pacer,
        })
    }

    /// The channel policy in force: the operators' setting if they have set
    /// one, else the configured one.
    pub async fn channel_policy(&self) -> Result<ChannelPolicy, StoreError> {
        match &self.settings {
            Some(s) => Ok(s.get().await?.unwrap_or(self.config.policy)),
            None => Ok(self.config.policy),
        }
    }

    pub(crate) fn stage(&self) -> FailureStage {
        match self.config.channel {
            Channel::Email => FailureStage::Email,
            Channel::Sms => FailureStage::Sms,
        }
    }
}

/// The channel's pacer ([`crate::pacing`]): with `PACING_TABLE` set, email at
/// the account's quota (SES `GetAccount`, or the mock's `MOCK_MAX_SEND_RATE`),
/// SMS at `SMS_MAX_SEND_RATE`; `None` (unpaced) without the table, without a
/// rate, or with an unlimited quota. Grants at most `concurrency` tokens at
/// once. An error names the variable.
fn pacing(
    channel: Channel,
    sdk: &SdkConfig,
    vars: &impl Vars,
    concurrency: usize,
) -> Result<Option<crate::pacing::Pacing>, (&'static str, String)> {
    use crate::pacing::Pacing;
    let Some(table) = vars.lookup("PACING_TABLE").filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let grant = u32::try_from(concurrency).unwrap_or(u32::MAX);
    let pacer = adapters::pacing::Pacer::new(adapters::dynamodb_client(sdk), table.trim(), channel.as_str(), grant);
    match channel {
        Channel::Email => {
            let source = providers::QuotaSource::from_lookup(|| aws_sdk_sesv2::Client::new(sdk), |n| vars.lookup(n))
                .map_err(|e| ("MOCK_MAX_SEND_RATE", e))?;
            Ok(match source {
                providers::QuotaSource::Unlimited => None,
                source => Some(Pacing::quota(pacer, source)),
            })
        }
        Channel::Sms => {
            let Some(v) = vars
                .lookup("SMS_MAX_SEND_RATE")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
            else {
                return Ok(None);
            };
            match v.parse::<f64>() {
                Ok(r) if r.is_finite() && r >= 0.0 => Ok((r > 0.0).then(|| Pacing::fixed(pacer, r))),
                _ => Err((
                    "SMS_MAX_SEND_RATE",
                    "SMS_MAX_SEND_RATE must be a non-negative number of messages per second (0 or unset: unpaced)"
                        .into(),
                )),
            }
        }
    }
}
