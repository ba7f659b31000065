//! What the function runs with: its [`Config`], its [`Deps`] built from the
//! function's variables, and the error an invocation can end with
//! ([`EventsError`], which has no values: a record that cannot be handled is
//! handed back alone).

use std::sync::Arc;

use adapters::customers::CustomerStore;
use adapters::deliveries::DeliveryStore;
use adapters::evidence::EvidenceLog;
use adapters::keyring::PiiKeys;
use adapters::suppressions::SuppressionStore;
use adapters::{ConfigError, Vars};
use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use domain::QuietWindow;

/// Reads the clock (a fixed one in tests).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub struct Config {
    /// The stack's name, the metrics' `Stack` dimension (`STACK_NAME`, `local`).
    pub stack: String,
    /// The quiet window an SMS sent after a bounce must avoid (`QUIET_WINDOW`).
    pub quiet: QuietWindow,
    /// Records of a batch handled at once.
    pub concurrency: usize,
    /// How many receives an event may wait for its delivery's completion
    /// write (the sender's) before it is recorded as stale
    /// (`EVIDENCE_EARLY_RECEIVES`). Below the queue's `maxReceiveCount`, so
    /// that the dead-letter queue keeps room for our own trouble.
    pub early_receives: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stack: "local".into(),
            quiet: QuietWindow::default_korea(),
            concurrency: 10,
            early_receives: 5,
        }
    }
}

pub struct Deps {
    pub deliveries: DeliveryStore,
    pub log: EvidenceLog,
    pub suppressions: SuppressionStore,
    /// Read only when a delivery has no `email_hash` and its contact must be
    /// suppressed: the hash is computed from the customer's email.
    pub customers: CustomerStore,
    /// The contact-data keyring (`PII_KEYS_SECRET`), for that hash.
    pub keys: PiiKeys,
    pub clock: Clock,
    pub config: Config,
}

impl Deps {
    /// From `DELIVERIES_TABLE`, `EVIDENCE_TABLE`, `SUPPRESSION_TABLE`,
    /// `CUSTOMERS_TABLE`, `PII_KEYS_SECRET` (fetched here); optional
    /// `STACK_NAME`, `QUIET_WINDOW`, `EVIDENCE_CONCURRENCY` (10),
    /// `EVIDENCE_EARLY_RECEIVES` (5).
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let ddb = adapters::dynamodb_client(sdk);
        let base = Config::default();
        let config = Config {
            stack: vars
                .lookup("STACK_NAME")
                .filter(|s| !s.trim().is_empty())
                .unwrap_or(base.stack),
            quiet: vars.parsed("QUIET_WINDOW", base.quiet)?,
            concurrency: vars.parsed("EVIDENCE_CONCURRENCY", base.concurrency)?.max(1),
            early_receives: vars.parsed("EVIDENCE_EARLY_RECEIVES", base.early_receives)?,
        };
        Ok(Deps {
            deliveries: DeliveryStore::new(ddb.clone(), vars.required("DELIVERIES_TABLE")?),
            log: EvidenceLog::new(ddb.clone(), vars.required("EVIDENCE_TABLE")?),
            suppressions: SuppressionStore::new(ddb.clone(), vars.required("SUPPRESSION_TABLE")?),
            customers: CustomerStore::new(ddb, vars.required("CUSTOMERS_TABLE")?),
            keys: PiiKeys::load(sdk, vars).await?,
            clock: Arc::new(Utc::now),
            config,
        })
    }
}

/// What ends an invocation: nothing. A record that cannot be handled now is
/// handed back alone (`ReportBatchItemFailures`) and the rest of the batch is
/// deleted, so the type has no values.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {}

impl runtime::ErrorType for EventsError {
    fn error_type(&self) -> &'static str {
        match *self {}
    }
}

runtime::diagnostic_from!(EventsError);
