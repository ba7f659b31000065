//! The cycles table: settlement progress, key (`cycle` S, `item` S).
//!
//! * `item = "CYCLE"`: the cycle's state — `SETTLING` under exactly one run
//!   (the Step Functions execution that froze it), then `SETTLED` or
//!   `FAILED` — with the pinned catalog version, the usage cut-off, the shard
//!   count and the reconciled counts.
//! * `item = "SHARD#nnnnn"`: one shard's result (status, bill count,
//!   checksum, digest, errors) and its resume cursor.
//!
//! Every transition of the cycle item is a conditional write, so two runs can
//! never both own a cycle and a stale run can never overwrite a newer one.
//!
//! **The gate.** Only the run that owns the cycle may write its settlement,
//! and only while the cycle is `SETTLING` or `FAILED` (a `FAILED` cycle's own
//! run may reconcile it again: that is what a redrive of the execution does).
//! A stray or replayed task of another run, or any task once the month is
//! `SETTLED`, is refused with [`NotOwned`]. The shard and render record
//! writes are transactions with a `ConditionCheck` on the cycle item, so the
//! gate and the write are one atomic step; the bill, invoice and delivery
//! writes in between cannot be conditioned on another item without a
//! transaction per chunk (a hot item, twice the write cost), so the
//! functions check the gate with a consistent read before every chunk of
//! them ([`CycleStore::owned_by`]) — see `settle_shard` for why the
//! remaining window cannot change a settled month.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use domain::Cycle;
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::dynamo::{Item, conditional_put, query_all};

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
}

/// One shard's rendering: deliveries present for its bills and what the
/// last render did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderRecord {
    pub template_version: String,
    /// The settlement digest of the bills rendered (`ShardRecord::digest`).
    pub bills_digest: String,
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

/// A write refused by the gate: the cycle is not owned by the run that
/// asked, or not in a state that run may write. Names the cycle, its status
/// and its owner (ids only), never the asking run's input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cycle {cycle} is not owned by this run: it is {}", describe(self.status, self.owner.as_deref()))]
pub struct NotOwned {
    pub cycle: Cycle,
    /// `None`: the cycle has not been begun.
    pub status: Option<CycleStatus>,
    pub owner: Option<String>,
}

fn describe(status: Option<CycleStatus>, owner: Option<&str>) -> String {
    match (status, owner) {
        (None, _) => "not begun".to_owned(),
        (Some(st), Some(o)) => format!("{st:?} under run {o}"),
        (Some(st), None) => format!("{st:?}"),
    }
}

impl NotOwned {
    fn of(cycle: Cycle, current: Option<&CycleRecord>) -> Self {
        NotOwned {
            cycle,
            status: current.map(|c| c.status),
            owner: current.map(|c| domain::text::bounded(&c.run_id, domain::text::MAX_ID_BYTES).into_owned()),
        }
    }
}

/// Whether `run_id` may write `rec`'s settlement: it owns the cycle and the
/// cycle is `SETTLING` or `FAILED`.
pub fn may_write(rec: &CycleRecord, run_id: &str) -> bool {
    rec.run_id == run_id && matches!(rec.status, CycleStatus::Settling | CycleStatus::Failed)
}

/// The outcome of a gated write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gated {
    Applied,
    /// The gate refused: nothing was written.
    NotOwned(NotOwned),
    /// The record's own condition failed (see the method).
    Stale,
}

/// Transaction attempts on a `TransactionConflict` (another transaction on
/// the cycle item at the same moment) before the error is left to the
/// caller's retry as transient.
const CONFLICT_ATTEMPTS: u32 = 4;

/// What [`CycleStore::begin`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeginOutcome {
    /// The cycle was open (or failed) and now belongs to this run.
    Started(CycleRecord),
    /// This run already owned the cycle (a retry or a redrive).
    Resumed(CycleRecord),
    /// Settled before; nothing to do.
    AlreadySettled(CycleRecord),
    /// Another run owns the cycle.
    OwnedByAnotherRun(CycleRecord),
}

#[derive(Clone, Debug)]
pub struct CycleStore {
    client: Client,
    table: String,
}

fn encode<T: Serialize>(table: &str, what: &str, v: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(v).map_err(|e| StoreError::Decode {
        resource: table.to_owned(),
        what: what.to_owned(),
        message: e.to_string(),
    })
}

fn decode<T: for<'de> Deserialize<'de>>(table: &str, what: &str, item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Decode {
        resource: table.to_owned(),
        what: what.to_owned(),
        message: e.to_string(),
    })
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl CycleStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        CycleStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn cycle_item(&self, rec: &CycleRecord) -> Result<Item, StoreError> {
        let mut item = encode(&self.table, "cycle record", rec)?;
        item.insert("cycle".into(), s(rec.cycle.to_string()));
        item.insert("item".into(), s(CYCLE_ITEM));
        Ok(item)
    }

    pub async fn get(&self, cycle: Cycle) -> Result<Option<CycleRecord>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("cycle", s(cycle.to_string()))
            .key("item", s(CYCLE_ITEM))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", &self.table, e))?;
        got.item
            .map(|mut item| {
                item.remove("item");
                decode(&self.table, &format!("cycle {cycle}"), item)
            })
            .transpose()
    }

    /// Freezes the cycle for `rec.run_id`: creates it, or takes it back from
    /// `FAILED`, or recognises this run's own earlier claim. The write is
    /// conditional, so of two concurrent runs exactly one wins.
    pub async fn begin(&self, rec: &CycleRecord) -> Result<BeginOutcome, StoreError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.cycle_item(rec)?))
            .condition_expression("attribute_not_exists(#c) OR #st = :failed")
            .expression_attribute_names("#c", "cycle")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":failed", s("FAILED"));
        if conditional_put(req, &self.table).await? {
            return Ok(BeginOutcome::Started(rec.clone()));
        }
        let Some(current) = self.get(rec.cycle).await? else {
            // Deleted between the two calls: let the caller retry.
            return Err(StoreError::Conflict {
                resource: self.table.clone(),
                message: format!("cycle {} changed during begin; retry", rec.cycle),
            });
        };
        Ok(match current.status {
            CycleStatus::Settled => BeginOutcome::AlreadySettled(current),
            CycleStatus::Settling if current.run_id == rec.run_id => BeginOutcome::Resumed(current),
            _ => BeginOutcome::OwnedByAnotherRun(current),
        })
    }

    /// Takes a `SETTLING` cycle over from a run that is known to have ended
    /// (failed, aborted or timed out) without finishing it.
    pub async fn take_over(&self, previous_run: &str, rec: &CycleRecord) -> Result<bool, StoreError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.cycle_item(rec)?))
            .condition_expression("#st = :settling AND run_id = :owner")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":settling", s("SETTLING"))
            .expression_attribute_values(":owner", s(previous_run));
        conditional_put(req, &self.table).await
    }

    /// Records the end of a run: `SETTLED` or `FAILED`, only if `rec.run_id`
    /// still owns the cycle and it is `SETTLING` or `FAILED` (a redrive of
    /// the run reconciles its failed cycle again). Returns false if not (a
    /// stale run, or a settled month). A write applied whose answer was lost
    /// is refused by its own condition on the SDK's retry when it settled the
    /// month: the caller tells it apart by reading the cycle.
    pub async fn finish(&self, rec: &CycleRecord) -> Result<bool, StoreError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.cycle_item(rec)?))
            .condition_expression("run_id = :owner AND (#st = :settling OR #st = :failed)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":settling", s("SETTLING"))
            .expression_attribute_values(":failed", s("FAILED"))
            .expression_attribute_values(":owner", s(&rec.run_id));
        conditional_put(req, &self.table).await
    }

    /// The cycle, if `run_id` may write its settlement (see [`may_write`]);
    /// else why not. One consistent read.
    pub async fn owned_by(&self, cycle: Cycle, run_id: &str) -> Result<Result<CycleRecord, NotOwned>, StoreError> {
        let current = self.get(cycle).await?;
        Ok(match current {
            Some(rec) if may_write(&rec, run_id) => Ok(rec),
            other => Err(NotOwned::of(cycle, other.as_ref())),
        })
    }

    /// The gate as a transaction item: the cycle is `SETTLING` or `FAILED`
    /// under `run_id`.
    fn gate(&self, cycle: Cycle, run_id: &str) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("cycle", s(cycle.to_string()))
            .key("item", s(CYCLE_ITEM))
            .condition_expression("run_id = :run AND (#st = :settling OR #st = :failed)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":run", s(run_id))
            .expression_attribute_values(":settling", s("SETTLING"))
            .expression_attribute_values(":failed", s("FAILED"))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| self.build_error("the cycle gate", e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    fn build_error(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Decode {
            resource: self.table.clone(),
            what: what.to_owned(),
            message: e.to_string(),
        }
    }

    /// Runs `[gate, write]` as one transaction: [`Gated::Applied`], or
    /// [`Gated::NotOwned`] if the gate refused, or [`Gated::Stale`] if the
    /// write's own condition did. Retries a transaction conflict a few times.
    async fn gated(&self, cycle: Cycle, run_id: &str, write: TransactWriteItem) -> Result<Gated, StoreError> {
        let gate = self.gate(cycle, run_id)?;
        let backoff = crate::retry::Backoff::default();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .client
                .transact_write_items()
                .transact_items(gate.clone())
                .transact_items(write.clone())
                .send()
                .await;
            let e = match sent {
                Ok(_) => return Ok(Gated::Applied),
                Err(e) => e,
            };
            let reasons = match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(x)) => x.cancellation_reasons().to_vec(),
                _ => return Err(StoreError::aws("TransactWriteItems", &self.table, e)),
            };
            let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
            if code(0) == "ConditionalCheckFailed" {
                let current = match reasons.first().and_then(|r| r.item()) {
                    Some(item) => {
                        let mut item = item.clone();
                        item.remove("item");
                        Some(decode::<CycleRecord>(&self.table, &format!("cycle {cycle}"), item)?)
                    }
                    None => self.get(cycle).await?,
                };
                return Ok(Gated::NotOwned(NotOwned::of(cycle, current.as_ref())));
            }
            if code(1) == "ConditionalCheckFailed" {
                return Ok(Gated::Stale);
            }
            let conflict = reasons.iter().any(|r| r.code() == Some("TransactionConflict"));
            if conflict && attempt < CONFLICT_ATTEMPTS {
                tokio::time::sleep(backoff.delay(attempt)).await;
                continue;
            }
            let mut err = StoreError::aws("TransactWriteItems", &self.table, e);
            if conflict && let StoreError::Aws { transient, .. } = &mut err {
                *transient = true;
            }
            return Err(err);
        }
    }

    pub async fn get_shard(&self, cycle: Cycle, shard: u32) -> Result<Option<ShardRecord>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("cycle", s(cycle.to_string()))
            .key("item", s(shard_item(shard)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", &self.table, e))?;
        got.item
            .map(|mut item| {
                item.remove("cycle");
                item.remove("item");
                decode(&self.table, &format!("cycle {cycle} shard {shard}"), item)
            })
            .transpose()
    }

    /// Writes a shard's record (the latest state wins; shard results are
    /// deterministic for a catalog version, so any two writers agree), if
    /// `rec.run_id` may write the cycle: one transaction with the gate.
    /// Never [`Gated::Stale`]. The record's errors are bounded on the way in
    /// (at most [`MAX_SHARD_ERRORS`] of [`domain::text::MAX_REASON_BYTES`]).
    pub async fn put_shard(&self, cycle: Cycle, rec: &ShardRecord) -> Result<Gated, StoreError> {
        let mut rec = rec.clone();
        rec.errors.truncate(MAX_SHARD_ERRORS);
        for e in &mut rec.errors {
            if e.len() > domain::text::MAX_REASON_BYTES {
                *e = domain::text::reason(e);
            }
        }
        let mut item = encode(&self.table, "shard record", &rec)?;
        item.insert("cycle".into(), s(cycle.to_string()));
        item.insert("item".into(), s(shard_item(rec.shard)));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(|e| self.build_error("shard record", e))?;
        self.gated(cycle, &rec.run_id, TransactWriteItem::builder().put(put).build())
            .await
    }

    /// Records a shard's rendering on its shard record, if `run_id` may
    /// write the cycle ([`Gated::NotOwned`] if not) and the record is still
    /// the settled one the render read (same digest): a settlement that
    /// rewrote the bills meanwhile makes this a no-op ([`Gated::Stale`]).
    pub async fn put_render(
        &self,
        cycle: Cycle,
        run_id: &str,
        shard: u32,
        render: &RenderRecord,
    ) -> Result<Gated, StoreError> {
        let value = serde_dynamo::to_attribute_value(render).map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("render record of shard {shard}"),
            message: e.to_string(),
        })?;
        let update = Update::builder()
            .table_name(&self.table)
            .key("cycle", s(cycle.to_string()))
            .key("item", s(shard_item(shard)))
            .update_expression("SET #r = :r")
            .condition_expression("#st = :done AND digest = :digest")
            .expression_attribute_names("#r", "render")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":r", value)
            .expression_attribute_values(":done", s("DONE"))
            .expression_attribute_values(":digest", s(&render.bills_digest))
            .build()
            .map_err(|e| self.build_error("render record", e))?;
        self.gated(cycle, run_id, TransactWriteItem::builder().update(update).build())
            .await
    }

    /// Every shard record of a cycle, by shard number.
    pub async fn shards(&self, cycle: Cycle) -> Result<HashMap<u32, ShardRecord>, StoreError> {
        let req = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#c = :c AND begins_with(#i, :p)")
            .expression_attribute_names("#c", "cycle")
            .expression_attribute_names("#i", "item")
            .expression_attribute_values(":c", s(cycle.to_string()))
            .expression_attribute_values(":p", s("SHARD#"))
            .consistent_read(true);
        let mut out = HashMap::new();
        for mut item in query_all(req, &self.table).await?.items {
            item.remove("cycle");
            let what = item
                .remove("item")
                .and_then(|v| v.as_s().ok().cloned())
                .unwrap_or_default();
            let rec: ShardRecord = decode(&self.table, &format!("cycle {cycle} {what}"), item)?;
            out.insert(rec.shard, rec);
        }
        Ok(out)
    }
}

impl CycleStore {
    /// The cycle records of `cycles` that exist, by cycle: one consistent
    /// `BatchGetItem` per hundred cycles (what a dispatch run reads first, to
    /// know which cycles of its horizon are settled), the keys DynamoDB left
    /// unprocessed asked again with backoff, a bounded number of times.
    pub async fn get_many(&self, cycles: &[Cycle]) -> Result<HashMap<Cycle, CycleRecord>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut wanted = cycles.to_vec();
        wanted.sort();
        wanted.dedup();
        let backoff = crate::retry::Backoff::default();
        let mut out = HashMap::new();
        for chunk in wanted.chunks(100) {
            let mut keys: Vec<Item> = chunk
                .iter()
                .map(|c| Item::from([("cycle".into(), s(c.to_string())), ("item".into(), s(CYCLE_ITEM))]))
                .collect();
            for attempt in 1..=backoff.max_attempts.max(1) {
                if keys.is_empty() {
                    break;
                }
                if attempt > 1 {
                    tokio::time::sleep(backoff.delay(attempt - 1)).await;
                }
                let wanted = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Decode {
                        resource: self.table.clone(),
                        what: "cycle keys".into(),
                        message: e.to_string(),
                    })?;
                let got = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, wanted)
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("BatchGetItem", &self.table, e))?;
                let items = got
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                for mut item in items {
                    item.remove("item");
                    let what = format!(
                        "cycle {}",
                        item.get("cycle").and_then(|v| v.as_s().ok()).map_or("?", |c| c)
                    );
                    let rec: CycleRecord = decode(&self.table, &what, item)?;
                    out.insert(rec.cycle, rec);
                }
                keys = got
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
            if !keys.is_empty() {
                return Err(StoreError::Unprocessed {
                    op: "BatchGetItem",
                    resource: self.table.clone(),
                    unprocessed: keys.len(),
                    attempts: backoff.max_attempts,
                });
            }
        }
        Ok(out)
    }
}
