//! The price table the cost projection reads: `infra/prices.json`, dated, with its sources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The price table: `infra/prices.json`, dated, with its sources.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Prices {
    pub as_of: String,
    pub region: String,
    pub currency: String,
    pub note: String,
    pub sources: BTreeMap<String, String>,
    pub lambda: LambdaPrices,
    pub dynamodb: DynamoDbPrices,
    pub sqs: SqsPrices,
    pub s3: S3Prices,
    pub step_functions: StepFunctionsPrices,
    pub scheduler: SchedulerPrices,
    pub ses: SesPrices,
    pub sms: SmsPrices,
    pub providers: ProviderAssumptions,
}

/// Not a price: what the projection assumes of the real providers where the local run has
/// the mock.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ProviderAssumptions {
    /// How long a call to SES (`SendEmail`) or End User Messaging (`SendTextMessage`) takes
    /// to answer, in milliseconds.
    pub assumed_call_ms: u64,
    #[serde(default)]
    pub note: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LambdaPrices {
    pub per_million_requests: f64,
    pub per_gb_second_arm64: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct DynamoDbPrices {
    pub per_million_write_units: f64,
    pub per_million_read_units: f64,
    /// Items a `BatchWriteItem` writes (the settlement writes bills 25 at a time).
    pub items_per_batch_write: f64,
    /// Write units of one bill (bills are the items above 1 KB; measured in BENCHMARKS.md).
    pub write_units_per_bill: f64,
    /// Write units the deliveries' `Due` index takes per delivery over its life: the entry
    /// written with the delivery, moved when dispatch changes `available_at`, removed by the
    /// claim (measured in BENCHMARKS.md). The emulator counts requests, not index writes.
    pub index_write_units_per_delivery: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SqsPrices {
    pub per_million_requests: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct S3Prices {
    pub per_thousand_put_requests: f64,
    pub per_thousand_get_requests: f64,
    pub per_gb_month: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct StepFunctionsPrices {
    pub per_thousand_state_transitions: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SchedulerPrices {
    pub per_million_invocations: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SesPrices {
    pub per_thousand_emails: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SmsPrices {
    /// Per message part; `None` until set for one's route.
    pub per_message: Option<f64>,
    #[serde(default)]
    pub note: String,
}

impl Prices {
    /// The project's price table, `infra/prices.json`.
    pub fn path() -> anyhow::Result<PathBuf> {
        Ok(local_aws::project_root()?.join("infra").join("prices.json"))
    }

    pub fn load(path: &Path) -> anyhow::Result<Prices> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}
