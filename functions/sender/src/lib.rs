//! `SendEmail` and `SendSms`: the delivery senders, one binary per channel,
//! each triggered by its SQS queue (batches of up to ten, partial batch
//! responses). For every message:
//!
//! 1. **Read** the message: ids only ([`DeliveryMessage`]). A body that is
//!    not one, a delivery id that does not parse, or a message for the other
//!    channel is **parked**: a failure record with a clear reason, and the
//!    message is acknowledged, so it never blocks or re-drives the rest of
//!    the batch.
//! 2. **Claim** the delivery (a conditional write, see
//!    [`adapters::deliveries::claims`]): `QUEUED` on this channel →
//!    `SENDING` with this sender's claim id (unique per receive) and a lease
//!    that ends shortly after the invocation's deadline; the delivery stays
//!    in the `Due` index at its re-check time. Already sent: a duplicate,
//!    acknowledged and counted (`duplicates_suppressed`). Claimed by a live
//!    sender: left for later. Unknown: parked. Anything else (deferred,
//!    held, dead, unconfirmed, fallen back to SMS): a stale message,
//!    acknowledged. A delivery that does not decode ends `DEAD`.
//! 3. **Slot check** (DESIGN §4): if the customer's DND or the quiet window
//!    forbids sending now, the delivery goes back to `READY`, due at the
//!    next allowed slot, and dispatch enqueues it then; if they leave no
//!    slot at all, it ends `DEAD` with its record.
//! 4. **Ask before sending again.** When this is not the first claim on the
//!    channel, or an earlier claim marked a provider call it never saw end,
//!    the sender asks the provider whether the idempotency key (built from
//!    the canonical [`DeliveryId`]) was already accepted, and completes
//!    without sending if it was. A provider that cannot answer (SES), after a
//!    marked call, leaves the delivery `UNCONFIRMED` with a failure record.
//! 5. **Send.** The customer and the invoice are read within the time left;
//!    then, immediately before the call, the time left and the slot are
//!    checked again, and a call to a provider that cannot be asked is marked
//!    as started. Contact data is opened here and only here, never logged.
//! 6. **Complete** (conditioned on the claim, tried again until the time runs
//!    short) or, after a failure, follow the [`RetryPolicy`]: retry on the
//!    same channel after an exponential backoff with jitter (the message's
//!    visibility timeout), fall back from email to SMS (a message on the SMS
//!    queue), or end `DEAD` after its dead letter. A provider timeout
//!    (outcome unknown) is resolved by asking the provider; one that cannot
//!    be asked leaves the delivery `UNCONFIRMED`.
//!
//! Every write is a [`adapters::deliveries::write::Change`] answered
//! applied, refused or unknown. After its own trouble (a store or queue not
//! answering) the sender puts a fresh copy of the message back instead of
//! spending the message's receive count ([`put_back`]).
//!
//! Messages of a batch are handled concurrently, at most
//! [`Config::concurrency`] at a time. Every invocation writes one CloudWatch
//! Embedded Metric Format line ([`metrics`]).

pub mod metrics;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use adapters::customers::CustomerStore;
use adapters::data_bucket::{DataBucket, MAX_LINK_EXPIRY};
use adapters::deliveries::DeliveryStore;
use adapters::deliveries::claims::{ClaimKey, ClaimOutcome, Claimed, GiveBack};
use adapters::deliveries::write::Written;
use adapters::dynamo::Item;
use adapters::failures::{FailureLog, FailureStage, NewFailure};
use adapters::queue::{DeliveryQueue, JobQueue};
use adapters::settings::{CHANNEL_POLICY, CachedSetting, SENDER_CACHE_TTL, SettingsStore};
use adapters::{ConfigError, StoreError, Vars};
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use domain::delivery::{DeadLetter, DeliveryMessage, utc_seconds};
use domain::dispatch::ChannelPolicy;
use domain::pii::Keyring;
use domain::sending::{AfterFailure, RetryPolicy, SlotCheck, slot_check};
use domain::{Channel, Cycle, Delivery, DeliveryId, DeliveryState, QuietWindow};
use futures::{StreamExt, stream};
use lambda_runtime::LambdaEvent;
use providers::{
    Accepted, EmailBackend, EmailProvider, ErrorKind, Lookup, MockConfig, MockProvider, OutgoingEmail, OutgoingSms,
    ProviderError, SendLog, SmsProvider,
};
use serde::{Deserialize, Serialize};

pub use metrics::emf_line;

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
    /// [`effective_deadline`]).
    pub function_timeout: Duration,
    /// How long the SMS's link to the invoice lives.
    pub link_ttl: Duration,
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
            link_ttl: MAX_LINK_EXPIRY,
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
    pub keys: Arc<Keyring>,
    pub clock: Clock,
    pub config: Config,
    /// The operators' runtime channel policy (`ADMIN_TABLE`), read at most
    /// once a minute; without it `config.policy` applies.
    pub settings: Option<CachedSetting<ChannelPolicy>>,
    pub crash: Option<CrashPlan>,
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

impl From<SenderError> for lambda_runtime::Diagnostic {
    fn from(e: SenderError) -> Self {
        let error_type = match &e {
            SenderError::Config(_) => "Config",
            SenderError::Crashed(_) => "Crashed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

impl Deps {
    /// From the function's variables: `DELIVERIES_TABLE`, `CUSTOMERS_TABLE`,
    /// `DATA_BUCKET`, `FAILURES_TABLE`, `EMAIL_QUEUE_URL`, `SMS_QUEUE_URL`,
    /// `DEAD_LETTER_QUEUE_URL`, `PII_KEYS`; optional `STACK_NAME` (the
    /// metrics' `Stack` dimension), `ADMIN_TABLE` (the
    /// operators' runtime channel policy), `QUIET_WINDOW`,
    /// `CHANNEL_POLICY`, `EMAIL_ATTEMPTS` (3), `SMS_ATTEMPTS` (3),
    /// `RETRY_BASE_DELAY_SECONDS` (30), `RETRY_MAX_DELAY_SECONDS` (900),
    /// `SEND_CONCURRENCY` (10), `PROVIDER_TIMEOUT_MS` (10000),
    /// `EMAIL_PROVIDER` (`mock` or `ses`; `ses` reads `SES_FROM_ADDRESS` and
    /// `SES_CONFIGURATION_SET`), the mock's `MOCK_*` variables and
    /// `MOCK_SENDS_TABLE` (where the mock records accepted sends; in memory
    /// when unset).
    pub fn from_vars(channel: Channel, sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, SenderError> {
        let ddb = adapters::dynamodb_client(sdk);
        let sqs = adapters::sqs_client(sdk);
        let invalid = |name: &'static str, reason: String| SenderError::Config(ConfigError::Invalid { name, reason });
        let keys = Keyring::parse(&vars.required("PII_KEYS")?).map_err(|e| invalid("PII_KEYS", e.to_string()))?;
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
            Ok(Arc::new(MockProvider::new(cfg, log)))
        };
        let backend: EmailBackend = vars
            .lookup("EMAIL_PROVIDER")
            .unwrap_or_default()
            .parse()
            .map_err(|e: String| invalid("EMAIL_PROVIDER", e))?;
        let sms_provider: Arc<dyn SmsProvider> = mock()?;
        let email_provider: Arc<dyn EmailProvider> = match backend {
            EmailBackend::Mock => mock()?,
            EmailBackend::Ses => Arc::new(
                providers::SesEmailProvider::from_lookup(aws_sdk_sesv2::Client::new(sdk), |n| vars.lookup(n))
                    .map_err(|e| invalid("SES_FROM_ADDRESS", e))?,
            ),
        };
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
            keys: Arc::new(keys),
            clock: system_clock(),
            config,
            settings: vars
                .lookup("ADMIN_TABLE")
                .filter(|t| !t.trim().is_empty())
                .map(|t| CachedSetting::new(SettingsStore::new(ddb.clone(), t), CHANNEL_POLICY, SENDER_CACHE_TTL)),
            crash: None,
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

    fn stage(&self) -> FailureStage {
        match self.config.channel {
            Channel::Email => FailureStage::Email,
            Channel::Sms => FailureStage::Sms,
        }
    }
}

/// What became of one message.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Sent and completed.
    Sent,
    /// The provider had accepted it already (an earlier attempt whose answer
    /// or completion was lost): completed without sending.
    Recovered,
    /// A call may have reached a provider that cannot be asked (its answer
    /// was lost, or an earlier claim's call never ended): `UNCONFIRMED`, with
    /// a failure record, for an operator to confirm or resend — never sent
    /// again blindly.
    Unconfirmed,
    /// Already sent: a duplicate message, acknowledged.
    Duplicate,
    /// Not allowed in this slot: back to `READY` at the next allowed one.
    Deferred,
    /// Failed; tried again after a backoff.
    Retried,
    /// Email gave up: on the SMS queue.
    FellBack,
    /// Every channel gave up: `DEAD`, with a dead letter.
    Dead,
    /// Another sender holds a live claim: left for later.
    Busy,
    /// Not queued for this channel any more: acknowledged.
    Stale,
    /// Bad input: a failure record, acknowledged.
    Parked,
    /// Claimed but too little time left to send: released untouched.
    Released,
    /// A sender whose lease was taken over lost its completion write.
    LostClaim,
    /// Infrastructure trouble (a store, a queue): the message is retried.
    Error,
}

impl Outcome {
    /// Whether the message stays on the queue (reported as a batch item
    /// failure) rather than being deleted. After the sender's own trouble
    /// (`Error`, `Released`) a fresh copy usually takes its place instead.
    pub fn keeps_message(self) -> bool {
        matches!(
            self,
            Outcome::Retried | Outcome::Busy | Outcome::Released | Outcome::Error
        )
    }
}

/// What one invocation did, by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendReport {
    pub messages: u64,
    pub sent: u64,
    pub recovered: u64,
    pub unconfirmed: u64,
    pub duplicates_suppressed: u64,
    pub deferred: u64,
    pub retried: u64,
    pub fallback: u64,
    pub dead: u64,
    pub busy: u64,
    pub stale: u64,
    pub parked: u64,
    pub released: u64,
    pub lost_claims: u64,
    pub errors: u64,
    /// Provider calls that failed (each retried, fallen back or dead).
    pub failed: u64,
}

impl SendReport {
    fn count(&mut self, o: Outcome) {
        self.messages += 1;
        let n = match o {
            Outcome::Sent => &mut self.sent,
            Outcome::Recovered => &mut self.recovered,
            Outcome::Unconfirmed => &mut self.unconfirmed,
            Outcome::Duplicate => &mut self.duplicates_suppressed,
            Outcome::Deferred => &mut self.deferred,
            Outcome::Retried => &mut self.retried,
            Outcome::FellBack => &mut self.fallback,
            Outcome::Dead => &mut self.dead,
            Outcome::Busy => &mut self.busy,
            Outcome::Stale => &mut self.stale,
            Outcome::Parked => &mut self.parked,
            Outcome::Released => &mut self.released,
            Outcome::LostClaim => &mut self.lost_claims,
            Outcome::Error => &mut self.errors,
        };
        *n += 1;
        if matches!(o, Outcome::Retried | Outcome::FellBack | Outcome::Dead) {
            self.failed += 1;
        }
    }
}

impl std::ops::AddAssign<&SendReport> for SendReport {
    fn add_assign(&mut self, o: &SendReport) {
        self.messages += o.messages;
        self.sent += o.sent;
        self.recovered += o.recovered;
        self.unconfirmed += o.unconfirmed;
        self.duplicates_suppressed += o.duplicates_suppressed;
        self.deferred += o.deferred;
        self.retried += o.retried;
        self.fallback += o.fallback;
        self.dead += o.dead;
        self.busy += o.busy;
        self.stale += o.stale;
        self.parked += o.parked;
        self.released += o.released;
        self.lost_claims += o.lost_claims;
        self.errors += o.errors;
        self.failed += o.failed;
    }
}

/// The Lambda entry point: the batch response, and the invocation's metrics
/// as one EMF line on stdout.
pub async fn handle_lambda(deps: &Deps, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, SenderError> {
    let (response, report) = handle(deps, event).await?;
    println!(
        "{}",
        emf_line(&deps.config.stack, deps.config.channel, &report, Utc::now())
    );
    Ok(response)
}

/// The deadline an invocation works to. Lambda always gives one in the
/// future; one already past when the invocation starts is a local runtime's
/// placeholder (`cargo lambda watch` sends 600 s after the epoch), and taking
/// it at its word would release every claim unsent. Then the function's own
/// timeout counts from now.
pub fn effective_deadline(given: SystemTime, now: SystemTime, timeout: Duration) -> SystemTime {
    if given > now { given } else { now + timeout }
}

/// Handles one batch: the messages to retry (`ReportBatchItemFailures`) and
/// what became of each.
pub async fn handle(deps: &Deps, event: LambdaEvent<SqsEvent>) -> Result<(SqsBatchResponse, SendReport), SenderError> {
    let (payload, ctx) = event.into_parts();
    let deadline = effective_deadline(ctx.deadline(), SystemTime::now(), deps.config.function_timeout);
    let request_id = ctx.request_id.clone();
    let policy = match deps.channel_policy().await {
        Ok(p) => p,
        Err(e) => {
            // Our own trouble like any other: every message is put back as a fresh copy.
            tracing::error!(error = %e, "the channel policy cannot be read; the batch will be retried");
            let mut report = SendReport::default();
            let mut response = SqsBatchResponse::default();
            for m in &payload.records {
                report.count(Outcome::Error);
                let copied = match m.body.as_deref().map(serde_json::from_str::<DeliveryMessage>) {
                    Some(Ok(message)) => put_back(deps, m, message).await,
                    _ => false,
                };
                if !copied {
                    let mut f = BatchItemFailure::default();
                    f.item_identifier = m.message_id.clone().unwrap_or_default();
                    response.batch_item_failures.push(f);
                }
            }
            return Ok((response, report));
        }
    };
    let results: Vec<(Option<String>, Result<Handled, SenderError>)> = stream::iter(payload.records)
        .map(|m| {
            let request_id = request_id.clone();
            async move {
                let id = m.message_id.clone();
                (id, handle_message(deps, &m, &request_id, deadline, policy).await)
            }
        })
        .buffer_unordered(deps.config.concurrency.max(1))
        .collect()
        .await;
    let mut report = SendReport::default();
    let mut response = SqsBatchResponse::default();
    for (id, result) in results {
        let (outcome, keep) = result?;
        report.count(outcome);
        if keep {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id.unwrap_or_default();
            response.batch_item_failures.push(f);
        }
    }
    tracing::info!(
        channel = %deps.config.channel,
        messages = report.messages,
        sent = report.sent,
        retried = report.retried,
        fallback = report.fallback,
        dead = report.dead,
        deferred = report.deferred,
        duplicates_suppressed = report.duplicates_suppressed,
        parked = report.parked,
        "batch handled"
    );
    Ok((response, report))
}

/// One message's context.
struct Msg<'a> {
    deps: &'a Deps,
    sqs: &'a SqsMessage,
    body: &'a str,
    message: DeliveryMessage,
    key: ClaimKey,
    /// The canonical delivery id: logs, failure records, the providers' keys.
    id: String,
    claim_id: String,
    deadline: SystemTime,
    /// The channel policy of this batch.
    policy: ChannelPolicy,
}

impl Msg<'_> {
    fn id(&self) -> &str {
        &self.id
    }

    fn now(&self) -> DateTime<Utc> {
        (self.deps.clock)()
    }

    fn remaining(&self) -> Duration {
        self.deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }

    /// The longest one store or queue call may take now: what is left of the
    /// invocation, less a second to answer the batch.
    fn call_limit(&self) -> Duration {
        self.remaining().saturating_sub(Duration::from_secs(1))
    }

    /// When dispatch re-checks a delivery this sender hands back to a queue
    /// now, whose message should bring it back within `expected`.
    fn recheck_at(&self, expected: Duration) -> DateTime<Utc> {
        let c = &self.deps.config;
        self.now() + chrono::Duration::from_std(expected + c.recheck_after).unwrap_or(chrono::Duration::hours(3))
    }

    /// A store read within [`call_limit`](Self::call_limit).
    async fn read<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        StoreError::within(self.call_limit(), op, self.id(), call).await
    }

    /// A read made while holding a claim, before the provider call: within
    /// the time left less the finish margin, so that a read cut off still
    /// leaves time to hand the claim back.
    async fn read_claimed<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.call_limit().saturating_sub(self.deps.config.finish_margin);
        StoreError::within(limit, op, self.id(), call).await
    }

    /// A change by this message's claim, within [`call_limit`](Self::call_limit):
    /// the item when it was applied (or found applied: a lost answer), else the
    /// outcome the message ends with — the claim was lost (refused), or our
    /// own trouble (no answer) to retry.
    async fn step(&self, what: &str, write: impl std::future::Future<Output = Written>) -> Result<Item, Outcome> {
        match self.bounded(write).await {
            Written::Applied(item) => Ok(item),
            Written::Refused(_) => Err(lost(self)),
            Written::Unknown(e) => Err(infra(self.id(), what, &e)),
        }
    }

    async fn bounded(&self, write: impl std::future::Future<Output = Written>) -> Written {
        let limit = self.call_limit();
        match tokio::time::timeout(limit, write).await {
            Ok(w) => w,
            Err(_) => Written::Unknown(StoreError::Deadline {
                op: "UpdateItem",
                resource: self.deps.deliveries.table().to_owned(),
                limit_ms: limit.as_millis(),
            }),
        }
    }

    fn crash(&self, point: CrashPoint) -> Result<(), SenderError> {
        match &self.deps.crash {
            Some(plan) if plan(self.id(), point) => Err(SenderError::Crashed(point)),
            _ => Ok(()),
        }
    }

    /// Whether this channel's provider can say afterwards whether it took a key.
    fn provider_answers_lookups(&self) -> bool {
        match self.deps.config.channel {
            Channel::Email => self.deps.email.answers_lookups(),
            Channel::Sms => self.deps.sms.answers_lookups(),
        }
    }
}

/// A store or queue error that leaves the message for a retry.
fn infra(id: &str, what: &str, e: &StoreError) -> Outcome {
    tracing::error!(delivery_id = id, error = %e, "{what}; the message will be retried");
    Outcome::Error
}

/// Copies of a message a sender puts back after its own trouble before it
/// leaves the message to the queue's receive count (and so, after a long
/// outage, to the dead-letter queue and the `Due` index's re-check).
pub const MAX_COPIES: u32 = 12;

/// What became of a message, and whether it stays on the queue.
type Handled = (Outcome, bool);

async fn handle_message(
    deps: &Deps,
    sqs: &SqsMessage,
    request_id: &str,
    deadline: SystemTime,
    policy: ChannelPolicy,
) -> Result<Handled, SenderError> {
    let (outcome, message) = read_and_deliver(deps, sqs, request_id, deadline, policy).await?;
    let keep = match (outcome, message) {
        (Outcome::Error | Outcome::Released, Some(message)) => !put_back(deps, sqs, message).await,
        (Outcome::Error | Outcome::Released, None) => {
            retry_later(deps, sqs).await;
            true
        }
        (o, _) => o.keeps_message(),
    };
    Ok((outcome, keep))
}

/// After the sender's own trouble (or a claim released for lack of time), a
/// fresh copy of the message goes back on the queue with a growing delay and
/// this one is acknowledged: the trouble does not spend the receive count that
/// the queue's redrive policy keeps for bad messages. True when the copy is
/// on the queue. Past [`MAX_COPIES`], or when the queue refuses the copy, the
/// message itself is retried after the trouble delay.
async fn put_back(deps: &Deps, sqs: &SqsMessage, mut message: DeliveryMessage) -> bool {
    if message.copies >= MAX_COPIES {
        tracing::warn!(delivery_id = %message.delivery_id, copies = message.copies, "no copies left; the message itself is retried");
        retry_later(deps, sqs).await;
        return false;
    }
    let base = deps.config.trouble_delay.as_secs().max(1);
    let delay = base.saturating_mul(1u64 << message.copies.min(10)).min(900) as u32;
    message.copies += 1;
    match deps.queue.send_copy(&message, delay).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(delivery_id = %message.delivery_id, error = %e, "could not put a copy back; the message itself is retried");
            retry_later(deps, sqs).await;
            false
        }
    }
}

async fn retry_later(deps: &Deps, sqs: &SqsMessage) {
    let receipt = sqs.receipt_handle.as_deref().unwrap_or_default();
    let secs = deps.config.trouble_delay.as_secs().max(1) as u32;
    if let Err(e) = deps.queue.retry_after(receipt, secs).await {
        tracing::warn!(error = %e, "could not set the delay; the queue's visibility timeout applies");
    }
}

/// Reads the message and delivers it: the outcome, and the message when it
/// was one (what a copy repeats).
async fn read_and_deliver(
    deps: &Deps,
    sqs: &SqsMessage,
    request_id: &str,
    deadline: SystemTime,
    policy: ChannelPolicy,
) -> Result<(Outcome, Option<DeliveryMessage>), SenderError> {
    let message_id = sqs.message_id.clone().unwrap_or_default();
    let body = sqs.body.as_deref().unwrap_or_default();
    let channel = deps.config.channel;
    let message = match serde_json::from_str::<DeliveryMessage>(body) {
        Ok(m) => m,
        Err(e) => {
            let reason = format!(
                "the body is not a delivery message (line {}, column {}: {}); expected {{\"delivery_id\", \"channel\", \"run_id\"}}",
                e.line(),
                e.column(),
                serde_error_class(&e)
            );
            return Ok((
                park(deps, None, &message_id, "malformed-message", reason, None).await,
                None,
            ));
        }
    };
    let id = match DeliveryId::parse(&message.delivery_id) {
        Ok(id) => id,
        Err(e) => {
            let outcome = park(deps, None, &message_id, "malformed-message", e.to_string(), None).await;
            return Ok((outcome, None));
        }
    };
    let canonical = id.canonical();
    if message.channel != channel {
        let reason = format!(
            "a {} message on the {channel} queue; the {channel} sender does not send it",
            message.channel
        );
        let outcome = park(deps, Some(id.cycle), &canonical, "wrong-channel", reason, Some(body)).await;
        return Ok((outcome, None));
    }
    let m = Msg {
        deps,
        sqs,
        body,
        // Unique per receive even where request ids repeat (local runtimes): the claim id
        // names this claim's writes, and a write that finds its own name is taken as applied.
        claim_id: format!("{request_id}/{message_id}/{:016x}", fastrand::u64(..)),
        key: ClaimKey { id, channel },
        id: canonical,
        message,
        deadline,
        policy,
    };
    let outcome = deliver(&m).await?;
    Ok((outcome, Some(m.message)))
}

/// What kind of JSON error, in words that hold no part of the input: serde's
/// own text only where it names one of our fields (a missing one); an
/// unknown field's name or a value of the wrong type came from the input.
fn serde_error_class(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let text = e.to_string();
    match e.classify() {
        Category::Data if text.starts_with("missing field `") => {
            text.split(" at line").next().unwrap_or("missing field").to_owned()
        }
        Category::Data if text.starts_with("unknown field") => "an unknown field".into(),
        Category::Data => "a field of the wrong type".into(),
        Category::Io => "unreadable".into(),
        Category::Syntax => "not JSON".into(),
        Category::Eof => "cut short".into(),
    }
}

/// Parks a message that cannot be handled: a failure record, then
/// acknowledged. If even the record cannot be written, the message stays
/// (and reaches the dead-letter queue after its receives).
async fn park(
    deps: &Deps,
    cycle: Option<Cycle>,
    subject: &str,
    code: &str,
    reason: String,
    replay: Option<&str>,
) -> Outcome {
    let f = NewFailure {
        cycle,
        subject: subject.to_owned(),
        stage: deps.stage(),
        code: code.to_owned(),
        reason,
        channel: Some(deps.config.channel),
        attempts: 0,
        run_id: None,
        replay: replay.map(str::to_owned),
    };
    match deps.failures.record(&f, (deps.clock)()).await {
        Ok(()) => {
            tracing::warn!(subject, code, "message parked");
            Outcome::Parked
        }
        Err(e) => infra(subject, "could not park a bad message", &e),
    }
}

async fn deliver(m: &Msg<'_>) -> Result<Outcome, SenderError> {
    let deps = m.deps;
    let c = &deps.config;
    let now = m.now();
    let lease_until =
        now + chrono::Duration::from_std(m.remaining() + c.lease_margin).unwrap_or(chrono::Duration::zero());
    // If no message brings it back (lost, dead-lettered), dispatch finds it at the re-check
    // time it was queued with.
    let claim = deps.deliveries.claim(&m.key, &m.claim_id, lease_until, now);
    let claimed = match m.read("claim", claim).await {
        Ok(ClaimOutcome::Claimed(claimed)) => claimed,
        Ok(ClaimOutcome::Undecodable { reason }) => {
            return Ok(give_up(m, None, "delivery-unreadable", &reason).await);
        }
        Ok(ClaimOutcome::AlreadySent(state)) => {
            tracing::info!(
                delivery_id = m.id(),
                state = state.as_str(),
                "already sent; duplicate message suppressed"
            );
            return Ok(Outcome::Duplicate);
        }
        Ok(ClaimOutcome::Busy { lease_until }) => return Ok(busy(m, &lease_until, now).await),
        Ok(ClaimOutcome::Missing) => {
            return Ok(park(
                deps,
                Some(m.key.id.cycle),
                m.id(),
                "unknown-delivery",
                format!("no delivery {} exists", m.id()),
                Some(m.body),
            )
            .await);
        }
        Ok(ClaimOutcome::NotClaimable { state, channel }) => return Ok(stale(m, &state, channel.as_deref()).await),
        Err(e) => return Ok(infra(m.id(), "could not claim", &e)),
    };
    m.crash(CrashPoint::AfterClaim)?;
    let Claimed {
        delivery,
        claims,
        earlier_call,
    } = *claimed;

    // A channel the operators disabled after dispatch queued the delivery on it.
    if !m.policy.allows(c.channel) {
        return Ok(channel_disabled(m).await);
    }
    // The slot, as the claim found it (a cheap early answer; checked again before the call).
    if let Some(o) = slot_gate(m, &delivery).await {
        return Ok(o);
    }

    // An earlier claim on the channel may have reached the provider: ask it. One that
    // cannot be asked, after a call marked as started, is never sent again blindly.
    if claims > 1 || earlier_call {
        match lookup(m, delivery.send_round).await {
            Ok(Lookup::Accepted(a)) => return Ok(complete(m, &a.provider_message_id, Outcome::Recovered).await),
            Ok(Lookup::NotFound) => {}
            Ok(Lookup::Unsupported) if earlier_call => {
                return Ok(unconfirmed(m, &delivery, "earlier-call-unknown").await);
            }
            Ok(Lookup::Unsupported) => {}
            Err(e) => {
                tracing::warn!(delivery_id = m.id(), code = %e.code, "the provider could not be asked; retried later");
                return Ok(release(m).await);
            }
        }
    }

    let attempt = attempts(&delivery, c.channel) + 1;
    let outgoing = match prepare(m, &delivery, attempt).await {
        Ok(o) => o,
        Err(Prep::Store(e)) => {
            let outcome = infra(m.id(), "could not prepare the message", &e);
            let _ = release(m).await;
            return Ok(outcome);
        }
        Err(Prep::Permanent { code, reason }) => return Ok(failed(m, &delivery, &code, &reason, true).await),
    };

    // Immediately before the call: enough time left to send and record it, then the
    // slot on a fresh clock reading (the reads above took time).
    if m.remaining() < c.provider_timeout + c.finish_margin {
        return Ok(release(m).await);
    }
    if let Some(o) = slot_gate(m, &delivery).await {
        return Ok(o);
    }
    if !m.provider_answers_lookups()
        && let Err(o) = m
            .step(
                "could not mark the provider call",
                deps.deliveries.call_started(&m.key, &m.claim_id, m.now()),
            )
            .await
    {
        return Ok(o);
    }

    match send(m, outgoing).await {
        Ok(accepted) => {
            m.crash(CrashPoint::AfterAccept)?;
            let o = complete(m, &accepted.provider_message_id, Outcome::Sent).await;
            m.crash(CrashPoint::AfterComplete)?;
            Ok(o)
        }
        Err(e) if e.kind == ErrorKind::Unknown => Ok(unknown_outcome(m, &delivery, &e).await),
        Err(e) => {
            let permanent = e.kind == ErrorKind::Permanent;
            Ok(failed(m, &delivery, &e.code, &e.message, permanent).await)
        }
    }
}

/// Another sender holds a live lease: the message comes back when it ends
/// (if that sender died, the lease can be taken over then).
async fn busy(m: &Msg<'_>, lease_until: &str, now: DateTime<Utc>) -> Outcome {
    let c = &m.deps.config;
    let left = DateTime::parse_from_rfc3339(lease_until)
        .map(|l| (l.with_timezone(&Utc) - now).num_seconds().max(1))
        .unwrap_or(1);
    let delay = u32::try_from(left)
        .unwrap_or(u32::MAX)
        .min(c.busy_delay_max.as_secs().max(1) as u32);
    let receipt = m.sqs.receipt_handle.as_deref().unwrap_or_default();
    if let Err(e) = m.deps.queue.retry_after(receipt, delay).await {
        tracing::warn!(delivery_id = m.id(), error = %e, "could not set the delay");
    }
    tracing::info!(delivery_id = m.id(), %lease_until, delay, "claimed by another sender; left for later");
    Outcome::Busy
}

/// The send-time slot check (DESIGN §4) on a fresh clock reading: `None` to
/// send now; otherwise what became of the delivery — deferred to the next
/// allowed slot, or `DEAD` when the customer's DND and the quiet window leave
/// no slot at all.
async fn slot_gate(m: &Msg<'_>, d: &Delivery) -> Option<Outcome> {
    let now = m.now();
    match slot_check(now, d.dnd, m.deps.config.quiet) {
        Ok(SlotCheck::Send) => None,
        Ok(SlotCheck::Defer { until }) => {
            let write = m.deps.deliveries.defer_claimed(&m.key, &m.claim_id, until, now);
            Some(match m.step("could not defer", write).await {
                Ok(_) => {
                    tracing::info!(delivery_id = m.id(), until = %utc_seconds::format(&until), "not in this slot; deferred");
                    Outcome::Deferred
                }
                Err(o) => o,
            })
        }
        // DND and quiet window that leave no slot at all: no channel can ever send it.
        Err(e) => Some(give_up(m, Some(d), "no-allowed-slot", &e.to_string()).await),
    }
}

fn attempts(d: &Delivery, channel: Channel) -> u32 {
    match channel {
        Channel::Email => d.attempts_email,
        Channel::Sms => d.attempts_sms,
    }
}

fn lost(m: &Msg<'_>) -> Outcome {
    tracing::warn!(
        delivery_id = m.id(),
        "the claim was taken over; this sender's write lost"
    );
    Outcome::LostClaim
}

async fn lookup(m: &Msg<'_>, round: u32) -> Result<Lookup, ProviderError> {
    let key = round_key(&m.key.id, m.deps.config.channel, round);
    let ask = async {
        match m.deps.config.channel {
            Channel::Email => m.deps.email.find_email(&key).await,
            Channel::Sms => m.deps.sms.find_sms(&key).await,
        }
    };
    let limit = m.deps.config.provider_timeout.min(m.call_limit());
    match tokio::time::timeout(limit, ask).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::unknown(
            "LookupTimeout",
            format!("no answer within {} ms", limit.as_millis()),
        )),
    }
}

/// The provider's idempotency key: one per delivery and channel, from the
/// canonical delivery id (so every spelling of an id names one send).
pub fn idempotency_key(id: &DeliveryId, channel: Channel) -> String {
    format!("{}#{}", id.canonical(), channel.as_str())
}

/// The idempotency key of a send round (`Delivery::send_round`): round 0 is
/// [`idempotency_key`]; an operator's resend starts round n, `…#r{n}`, so it
/// sends once more, and only once.
pub fn round_key(id: &DeliveryId, channel: Channel, round: u32) -> String {
    match round {
        0 => idempotency_key(id, channel),
        n => format!("{}#r{n}", idempotency_key(id, channel)),
    }
}

async fn stale(m: &Msg<'_>, state: &str, channel: Option<&str>) -> Outcome {
    // An email message for a delivery that fell back to SMS: the SMS message
    // may be the one a failed send lost, so it is sent (again; a second one is
    // harmless, the claim decides).
    if m.deps.config.channel == Channel::Email
        && state == DeliveryState::Queued.as_str()
        && channel == Some(Channel::Sms.as_str())
    {
        let msg = DeliveryMessage {
            delivery_id: m.id.clone(),
            channel: Channel::Sms,
            run_id: m.message.run_id.clone(),
            copies: 0,
        };
        if let Err(e) = m.read("SendMessage", m.deps.sms_queue.send_one(&msg)).await {
            return infra(m.id(), "could not repeat the SMS fallback message", &e);
        }
    }
    tracing::info!(
        delivery_id = m.id(),
        state,
        channel,
        "not queued for this sender; stale message acknowledged"
    );
    Outcome::Stale
}

async fn release(m: &Msg<'_>) -> Outcome {
    let recheck = m.recheck_at(m.deps.config.trouble_delay);
    let write = m.deps.deliveries.release(&m.key, &m.claim_id, recheck, m.now());
    match m.step("could not release the claim", write).await {
        Ok(_) => Outcome::Released,
        Err(o) => o,
    }
}

/// Records the send. The provider has it, so the write is tried again (same
/// token: an applied write whose answer was lost is found applied) until the
/// invocation's time runs short; then the message is kept, and whoever claims
/// the delivery next asks the provider before sending (or, with a provider
/// that cannot be asked, finds the call marked and leaves the delivery
/// `UNCONFIRMED` for an operator).
async fn complete(m: &Msg<'_>, provider_message_id: &str, ok: Outcome) -> Outcome {
    let backoff = adapters::retry::Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(2),
        max_attempts: 20,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let write = m
            .deps
            .deliveries
            .complete(&m.key, &m.claim_id, provider_message_id, m.now());
        match m.bounded(write).await {
            Written::Applied(_) => {
                tracing::info!(delivery_id = m.id(), outcome = ?ok, attempt, "sent");
                return ok;
            }
            Written::Refused(_) => return lost(m),
            Written::Unknown(e) => {
                let pause = backoff.delay(attempt);
                if attempt >= backoff.max_attempts || m.call_limit() <= pause + Duration::from_secs(1) {
                    return infra(m.id(), "sent, but could not record it", &e);
                }
                tracing::warn!(delivery_id = m.id(), attempt, error = %e, "sent; recording it again");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Why a message could not be built.
enum Prep {
    Store(StoreError),
    Permanent { code: String, reason: String },
}

fn permanent(code: &str, reason: impl Into<String>) -> Prep {
    Prep::Permanent {
        code: code.into(),
        reason: reason.into(),
    }
}

/// A message ready for its provider.
enum Outgoing {
    Email(OutgoingEmail),
    Sms(OutgoingSms),
}

/// Opens the contact and builds the message; every read within the time the
/// invocation has left.
async fn prepare(m: &Msg<'_>, d: &Delivery, attempt: u32) -> Result<Outgoing, Prep> {
    let deps = m.deps;
    let c = &deps.config;
    let customer = match m
        .read_claimed(
            "GetItem",
            deps.customers.get_in_shard(m.key.id.shard, m.key.id.customer.as_str()),
        )
        .await
    {
        Ok(Some(Ok(customer))) => customer,
        Ok(Some(Err(e))) => return Err(permanent("customer-invalid", e.reason)),
        Ok(None) => {
            return Err(permanent(
                "customer-missing",
                format!("customer {} not found", m.key.id.customer),
            ));
        }
        Err(e) => return Err(Prep::Store(e)),
    };
    let contact = customer
        .contact
        .open(&deps.keys, &customer.customer_id)
        .map_err(|e| permanent("contact-unreadable", e.to_string()))?;
    let key = round_key(&m.key.id, c.channel, d.send_round);
    match c.channel {
        Channel::Email => {
            let object = match m
                .read_claimed("GetObject", deps.invoices.get_object(&d.content.email_key))
                .await
            {
                Ok(Some(o)) => o,
                Ok(None) => {
                    return Err(permanent(
                        "invoice-missing",
                        format!("the rendered invoice {} is missing", d.content.email_key),
                    ));
                }
                Err(e) => return Err(Prep::Store(e)),
            };
            let html = gunzip(&object.body).map_err(|e| permanent("invoice-unreadable", e))?;
            Ok(Outgoing::Email(OutgoingEmail {
                idempotency_key: key,
                attempt,
                to: contact.email.expose().clone(),
                subject: d.content.subject.clone(),
                html,
                tags: vec![
                    ("cycle".into(), d.cycle.to_string()),
                    ("template".into(), d.content.template_version.clone()),
                ],
            }))
        }
        Channel::Sms => {
            let link = deps
                .invoices
                .presign_invoice(&d.content.email_key, c.link_ttl)
                .await
                .map_err(Prep::Store)?;
            let text = invoice::sms_with_link(&d.content.sms_text, &link)
                .map_err(|e| permanent("sms-invalid", e.to_string()))?;
            Ok(Outgoing::Sms(OutgoingSms {
                idempotency_key: key,
                attempt,
                to: contact.phone.expose().clone(),
                text,
            }))
        }
    }
}

/// Hands the message to the provider under the provider timeout.
async fn send(m: &Msg<'_>, outgoing: Outgoing) -> Result<Accepted, ProviderError> {
    let deps = m.deps;
    let limit = deps.config.provider_timeout;
    match outgoing {
        Outgoing::Email(email) => timed(limit, deps.email.send_email(&email)).await,
        Outgoing::Sms(sms) => timed(limit, deps.sms.send_sms(&sms)).await,
    }
}

async fn timed(
    limit: Duration,
    call: impl std::future::Future<Output = Result<Accepted, ProviderError>>,
) -> Result<Accepted, ProviderError> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::unknown(
            "ProviderTimeout",
            format!("no answer within {} ms", limit.as_millis()),
        )),
    }
}

fn gunzip(bytes: &[u8]) -> Result<String, String> {
    use std::io::Read;
    let mut html = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut html)
        .map_err(|e| format!("the invoice does not decode as gzip-encoded UTF-8: {e}"))?;
    Ok(html)
}

/// The provider's answer was lost. Ask it: accepted → completed; not there →
/// a failed attempt. A provider that cannot be asked leaves the delivery
/// `UNCONFIRMED`: a timeout after the request went out most likely delivered
/// it, and a second send is the failure this platform promises not to make.
async fn unknown_outcome(m: &Msg<'_>, d: &Delivery, e: &ProviderError) -> Outcome {
    match lookup(m, d.send_round).await {
        Ok(Lookup::Accepted(a)) => complete(m, &a.provider_message_id, Outcome::Recovered).await,
        Ok(Lookup::NotFound) => failed(m, d, &e.code, &e.message, false).await,
        Ok(Lookup::Unsupported) => unconfirmed(m, d, &e.code).await,
        Err(le) => {
            // Retry later: the next claim asks again before sending.
            tracing::warn!(delivery_id = m.id(), code = %e.code, lookup = %le.code, "outcome unknown; asking the provider failed");
            failed(m, d, &e.code, &e.message, false).await
        }
    }
}

/// A call may have reached a provider that cannot be asked: the delivery
/// becomes `UNCONFIRMED`, with a failure record that says what an operator
/// does (confirm it as sent, or resend it). The record comes first: a
/// delivery is never `UNCONFIRMED` without one.
async fn unconfirmed(m: &Msg<'_>, d: &Delivery, code: &str) -> Outcome {
    let c = &m.deps.config;
    let record = NewFailure {
        cycle: Some(d.cycle),
        subject: m.id.clone(),
        stage: m.deps.stage(),
        code: "send-unconfirmed".into(),
        reason: format!(
            "a {} provider call may have delivered it ({code}) and the provider cannot be asked: \
             confirm it as sent, or resend it",
            c.channel
        ),
        channel: Some(c.channel),
        attempts: attempts(d, c.channel) + 1,
        run_id: Some(m.message.run_id.clone()),
        replay: None,
    };
    if let Err(e) = m.read("PutItem", m.deps.failures.record(&record, m.now())).await {
        return infra(m.id(), "could not record an unconfirmed send", &e);
    }
    let write = m
        .deps
        .deliveries
        .give_back(&m.key, &m.claim_id, GiveBack::Unconfirmed, code, m.now(), m.now());
    match m.step("could not mark the delivery unconfirmed", write).await {
        Ok(_) => {
            tracing::warn!(
                delivery_id = m.id(),
                code,
                "outcome unknown and the provider cannot be asked; UNCONFIRMED for an operator"
            );
            Outcome::Unconfirmed
        }
        Err(o) => o,
    }
}

/// A failed send: what the retry policy says.
async fn failed(m: &Msg<'_>, d: &Delivery, code: &str, reason: &str, permanent: bool) -> Outcome {
    let c = &m.deps.config;
    let attempts = attempts(d, c.channel) + 1;
    let next = c
        .retry
        .after_failure(m.id(), c.channel, attempts, permanent, m.policy.allows(Channel::Sms));
    let reason = domain::text::bounded(reason, 512).into_owned();
    tracing::warn!(delivery_id = m.id(), channel = %c.channel, attempts, code, %reason, permanent, next = ?next, "send failed");
    match next {
        AfterFailure::Retry { delay_secs } => {
            let recheck = m.recheck_at(Duration::from_secs(u64::from(delay_secs)));
            let write = m
                .deps
                .deliveries
                .give_back(&m.key, &m.claim_id, GiveBack::Retry, code, recheck, m.now());
            if let Err(o) = m.step("could not give the claim back", write).await {
                return o;
            }
            let receipt = m.sqs.receipt_handle.as_deref().unwrap_or_default();
            if let Err(e) = m.deps.queue.retry_after(receipt, delay_secs).await {
                // The message comes back after the queue's visibility timeout instead.
                tracing::warn!(delivery_id = m.id(), error = %e, "could not set the backoff");
            }
            Outcome::Retried
        }
        AfterFailure::FallBackToSms => to_sms(m, GiveBack::FallBackToSms, code).await,
        AfterFailure::Dead => give_up(m, Some(d), code, &reason).await,
    }
}

/// An email delivery moves to the SMS queue: after email gave up, or without trying when the
/// operators have disabled email.
async fn to_sms(m: &Msg<'_>, how: GiveBack, code: &str) -> Outcome {
    let recheck = m.recheck_at(m.deps.config.trouble_delay);
    let write = m
        .deps
        .deliveries
        .give_back(&m.key, &m.claim_id, how, code, recheck, m.now());
    if let Err(o) = m.step("could not give the claim back", write).await {
        return o;
    }
    let msg = DeliveryMessage {
        delivery_id: m.id.clone(),
        channel: Channel::Sms,
        run_id: m.message.run_id.clone(),
        copies: 0,
    };
    match m.read("SendMessage", m.deps.sms_queue.send_one(&msg)).await {
        Ok(()) => {
            tracing::info!(delivery_id = m.id(), code, "on the SMS queue");
            Outcome::FellBack
        }
        // Kept: its next receipt finds the delivery queued on SMS and sends the SMS message again.
        Err(e) => infra(m.id(), "could not enqueue the SMS fallback", &e),
    }
}

/// A delivery queued on a channel the operators have since disabled is not sent on it: email
/// goes to SMS when SMS is enabled; otherwise the delivery goes back to `READY`, due now, and
/// dispatch routes it by the policy in force (or keeps it paused under `none`).
async fn channel_disabled(m: &Msg<'_>) -> Outcome {
    let c = &m.deps.config;
    if c.channel == Channel::Email && m.policy.allows(Channel::Sms) {
        return to_sms(m, GiveBack::HandOverToSms, "channel-disabled").await;
    }
    let now = m.now();
    let write = m.deps.deliveries.defer_claimed(&m.key, &m.claim_id, now, now);
    match m.step("could not put the delivery back", write).await {
        Ok(_) => {
            tracing::info!(delivery_id = m.id(), channel = %c.channel, policy = %m.policy, "channel disabled; back to READY for dispatch");
            Outcome::Deferred
        }
        Err(o) => o,
    }
}

/// `DEAD`: first the dead letter with what replays it (or, if the queue
/// refuses, the failure record the dead letter would have made), then the
/// delivery. In that order a delivery is never `DEAD` without its record; a
/// retry after a failed state write sends a second letter, which the failure
/// log takes as a second record of the same failure.
async fn give_up(m: &Msg<'_>, d: Option<&Delivery>, code: &str, reason: &str) -> Outcome {
    let deps = m.deps;
    let c = &deps.config;
    let now = m.now();
    let letter = DeadLetter {
        delivery_id: m.id.clone(),
        channel: c.channel,
        run_id: Some(m.message.run_id.clone()),
        attempts: d.map(|d| attempts(d, c.channel) + 1),
        last_error: Some(domain::text::bounded(code, 128).into_owned()),
        dead_at: Some(utc_seconds::format(&now)),
    };
    tracing::warn!(delivery_id = m.id(), code, reason = %domain::text::bounded(reason, 512), "delivery dead");
    let body = match serde_json::to_string(&letter) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(delivery_id = m.id(), error = %e, "the dead letter does not encode");
            return Outcome::Error;
        }
    };
    if let Err(e) = m.read("SendMessage", deps.dead_letters.send(&body)).await {
        tracing::warn!(delivery_id = m.id(), error = %e, "dead-letter queue refused; recording the failure directly");
        let record = NewFailure::dead_letter(&letter, &body, None);
        if let Err(e) = m.read("PutItem", deps.failures.record(&record, now)).await {
            return infra(m.id(), "could not record a dead delivery", &e);
        }
    }
    let write = deps
        .deliveries
        .give_back(&m.key, &m.claim_id, GiveBack::Dead, code, now, now);
    match m.step("could not mark the delivery dead", write).await {
        Ok(_) => Outcome::Dead,
        Err(o) => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_already_past_at_the_start_becomes_the_function_timeout_from_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let minute = Duration::from_secs(60);
        // What Lambda gives: kept.
        assert_eq!(effective_deadline(now + minute / 2, now, minute), now + minute / 2);
        // What `cargo lambda watch` gives (600 s after the epoch), or a deadline just gone.
        let placeholder = SystemTime::UNIX_EPOCH + Duration::from_secs(600);
        assert_eq!(effective_deadline(placeholder, now, minute), now + minute);
        assert_eq!(effective_deadline(now, now, minute), now + minute);
    }

    #[test]
    fn each_send_round_has_its_own_key_and_round_zero_keeps_the_first() {
        let id = &DeliveryId::parse("2026-11#00001#C0000042").unwrap();
        assert_eq!(round_key(id, Channel::Email, 0), idempotency_key(id, Channel::Email));
        assert_eq!(round_key(id, Channel::Sms, 0), "2026-11#00001#C0000042#sms");
        assert_eq!(round_key(id, Channel::Email, 1), "2026-11#00001#C0000042#email#r1");
        assert_ne!(round_key(id, Channel::Email, 1), round_key(id, Channel::Email, 2));
        assert_ne!(round_key(id, Channel::Email, 1), round_key(id, Channel::Sms, 1));
        // Every spelling of one delivery id gives one key.
        let short = &DeliveryId::parse("2026-11#1#C0000042").unwrap();
        assert_eq!(round_key(short, Channel::Email, 0), round_key(id, Channel::Email, 0));
        assert_eq!(round_key(short, Channel::Email, 2), "2026-11#00001#C0000042#email#r2");
    }
}
