//! The records of the cycles table: the cycle item and the shard items, as stored.

use domain::Cycle;
use serde::{Deserialize, Serialize};

pub const CYCLE_ITEM: &str = "CYCLE";

/// Error texts a shard record keeps (the count is exact).
pub const MAX_SHARD_ERRORS: usize = 20;

pub fn shard_item(shard: u32) -> String {
    format!("SHARD#{shard:05}")
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CycleStatus {
    Settling,
    Settled,
    Failed,
}

/// The cycle item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleRecord {
    pub cycle: Cycle,
    pub status: CycleStatus,
    /// The execution that owns (or owned) the cycle.
    pub run_id: String,
    pub catalog_version: String,
    /// Invoice template version every invoice of the cycle is rendered with.
    #[serde(default)]
    pub template_version: String,
    /// Usage recorded after this instant belongs to the next cycle.
    pub cutoff: String,
    pub shard_count: u32,
    pub manifest_key: String,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// How many runs have taken the cycle (1 for a clean first run).
    #[serde(default)]
    pub runs: u32,
    /// Shards that reconciled (set when the run finishes).
    #[serde(default)]
    pub shards_done: u32,
    #[serde(default)]
    pub customers: u64,
    #[serde(default)]
    pub bills: u64,
    #[serde(default)]
    pub not_billable: u64,
    /// Sum of all bill totals in won.
    #[serde(default)]
    pub checksum: i64,
    #[serde(default)]
    pub reasons: Vec<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShardStatus {
    /// Bills partly written; `cursor` is the last customer written.
    InProgress,
    Done,
    Failed,
}

/// One shard's settlement result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub shard: u32,
    pub status: ShardStatus,
    pub run_id: String,
    pub catalog_version: String,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub customers: u64,
    #[serde(default)]
    pub bills: u64,
    #[serde(default)]
    pub not_billable: u64,
    #[serde(default)]
    pub usage_lines: u64,
    #[serde(default)]
    pub checksum: i64,
    /// SHA-256 over the shard's bill digests in customer order.
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub error_count: u64,
    /// The first few errors, each naming file and line or customer.
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub attempts: u32,
    pub updated_at: String,
    /// The shard's rendering, once its invoices are rendered. A settlement
    /// that rewrites the shard's bills clears it.
    #[serde(default)]
    pub render: Option<RenderRecord>,
    /// Usage set aside for customers of the shard with no day of service in the cycle: not
    /// billed and not an error (`None`: there was none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspense: Option<SuspenseRecord>,
}

/// A shard's suspended usage: the exact count, the suspense file listing every line, and the
/// first [`MAX_SHARD_ERRORS`] lines.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspenseRecord {
    pub count: u64,
    /// The suspense file in the data bucket (`suspense/<cycle>/shard-NNNNN.csv`).
    pub key: String,
    pub first: Vec<SuspendedLine>,
}

/// One suspended usage line: where it is and whose it is; no quantity or amount.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspendedLine {
    pub file: String,
    pub line: u32,
    pub customer_id: String,
    pub product: String,
}

/// One shard's rendering: deliveries present for its bills and what the
/// last render did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderRecord {
    pub template_version: String,
    /// The digest of the bills the render read ([`crate::bills::shard_digest`]), which it
    /// checked equal to the settlement's (`ShardRecord::digest`).
    pub bills_digest: String,
    /// Σ of the totals of the bills the render read, in won (`None`: rendered before renders
    /// recorded money).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bills_total: Option<i64>,
    /// Σ of the totals the shard's deliveries state after the render, in won: created,
    /// updated, unchanged and kept alike (`None`: as for `bills_total`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered_total: Option<i64>,
    /// Deliveries of the shard's bills after the render (= bills when done).
    pub deliveries: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Deliveries past `READY` (queued, sent, ...), left as they were.
    pub kept: u64,
    /// Gzip bytes uploaded by the last render.
    pub bytes_uploaded: u64,
    pub rendered_at: String,
}
