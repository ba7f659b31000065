//! The messages the settlement state machine passes between its states.
//! `infra/statemachines/settlement.asl.json` reads and writes these fields.

use serde::{Deserialize, Serialize};

use crate::calendar::Cycle;

/// Input of `BeginCycle`: the execution's own input plus its identity,
/// supplied by the state machine from the context object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeginInput {
    /// What the execution was started with (`{"cycle": "2026-11"}`, or the
    /// scheduler's `{"scheduled_time": "…"}`, which settles the month before).
    pub input: StartInput,
    /// `$$.Execution.Id`: the run that will own the cycle.
    pub run_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartInput {
    #[serde(default)]
    pub cycle: Option<String>,
    #[serde(default)]
    pub scheduled_time: Option<String>,
    /// Catalog version to pin; defaults to the deployment's configured one.
    #[serde(default)]
    pub catalog_version: Option<String>,
    /// Invoice template version to pin; defaults to the one the operators
    /// activated, else the deployment's one.
    #[serde(default)]
    pub template_version: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BeginStatus {
    Started,
    Resumed,
    AlreadySettled,
}

/// Output of `BeginCycle`, the input of the shard map and `FinishCycle`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeginOutput {
    pub cycle: Cycle,
    pub run_id: String,
    pub status: BeginStatus,
    pub catalog_version: String,
    #[serde(default)]
    pub template_version: String,
    pub shard_count: u32,
    pub manifest_bucket: String,
    pub manifest_key: String,
    pub max_concurrency: u32,
    /// A sentence for the console.
    pub message: String,
}

/// One item of the shard manifest: the input of `SettleShard` and then of
/// `RenderShard` (which also receives `SettleShard`'s result under `settled`,
/// ignored here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTask {
    pub cycle: Cycle,
    pub shard: u32,
    pub catalog_version: String,
    /// The invoice template version the cycle pinned.
    #[serde(default)]
    pub template_version: String,
    pub run_id: String,
    /// Customers the directory says the shard holds.
    pub expected_customers: u64,
}

/// Output of `SettleShard`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardResult {
    pub cycle: Cycle,
    pub shard: u32,
    /// True when the shard was already done for this catalog version.
    pub skipped: bool,
    pub bills: u64,
    pub not_billable: u64,
    pub checksum: i64,
}

/// Output of `RenderShard`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderResult {
    pub cycle: Cycle,
    pub shard: u32,
    pub template_version: String,
    /// Deliveries of the shard's bills after this render (= bills).
    pub deliveries: u64,
    /// New deliveries (READY).
    pub created: u64,
    /// READY deliveries whose content changed (a re-settled bill).
    pub updated: u64,
    /// Deliveries whose content was already what this render produced.
    pub unchanged: u64,
    /// Deliveries past READY, left untouched.
    pub kept: u64,
    pub bytes_uploaded: u64,
}

/// Input of `FinishCycle`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishInput {
    pub cycle: Cycle,
    pub run_id: String,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FinishStatus {
    Settled,
    Failed,
}

/// Output of `FinishCycle`: the reconciliation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishOutput {
    pub cycle: Cycle,
    pub run_id: String,
    pub status: FinishStatus,
    pub shards: u32,
    pub shards_done: u32,
    pub customers: u64,
    pub bills: u64,
    pub not_billable: u64,
    /// Sum of all bill totals in won.
    pub checksum: i64,
    /// Why the cycle failed reconciliation (empty when settled).
    pub reasons: Vec<String>,
}
