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
//!
//! Here: the store and the cycle item's reads and transitions. Beside it:
//! `records` (the items as stored), `gate` (the gate, as a read and as a
//! transaction's condition) and `shards` (the shard items' reads and writes).

mod gate;
mod records;
mod shards;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use domain::Cycle;
use serde::{Deserialize, Serialize};

pub use self::gate::{Gated, NotOwned, may_write};
pub use self::records::{
    CYCLE_ITEM, CycleRecord, CycleStatus, MAX_SHARD_ERRORS, RenderRecord, ShardRecord, ShardStatus, SuspendedLine,
    SuspenseRecord, shard_item,
};
use crate::StoreError;
use crate::dynamo::{Item, conditional_put, get_item};

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
    crate::dynamo::decode_item(item).map_err(|e| StoreError::Decode {
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

    /// A key of the table: `item` of `cycle`.
    fn key(cycle: Cycle, item: String) -> [(&'static str, AttributeValue); 2] {
        [("cycle", s(cycle.to_string())), ("item", s(item))]
    }

    /// The cycle record in a cycle item, as read.
    fn cycle_record(&self, cycle: Cycle, mut item: Item) -> Result<CycleRecord, StoreError> {
        item.remove("item");
        decode(&self.table, &format!("cycle {cycle}"), item)
    }

    /// A builder's error (a request missing a required part) as a store error.
    fn build_error(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Decode {
            resource: self.table.clone(),
            what: what.to_owned(),
            message: e.to_string(),
        }
    }

    pub async fn get(&self, cycle: Cycle) -> Result<Option<CycleRecord>, StoreError> {
        let got = get_item(
            &self.client,
            &self.table,
            [("cycle", s(cycle.to_string())), ("item", s(CYCLE_ITEM))],
            true,
        )
        .await?;
        got.map(|item| self.cycle_record(cycle, item)).transpose()
    }

    /// Puts the cycle item if `condition` holds, `#st` naming its status and
    /// `names` any other attribute it names: `Ok(false)` if it does not hold.
    async fn put_cycle_if(
        &self,
        rec: &CycleRecord,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, &str)],
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.cycle_item(rec)?))
            .condition_expression(condition)
            .expression_attribute_names("#st", "status");
        for (name, attribute) in names {
            req = req.expression_attribute_names(*name, *attribute);
        }
        for (name, value) in values {
            req = req.expression_attribute_values(*name, s(*value));
        }
        conditional_put(req, &self.table).await
    }

    /// Freezes the cycle for `rec.run_id`: creates it, or takes it back from
    /// `FAILED`, or recognises this run's own earlier claim. The write is
    /// conditional, so of two concurrent runs exactly one wins.
    pub async fn begin(&self, rec: &CycleRecord) -> Result<BeginOutcome, StoreError> {
        let condition = "attribute_not_exists(#c) OR #st = :failed";
        if self
            .put_cycle_if(rec, condition, &[("#c", "cycle")], &[(":failed", "FAILED")])
            .await?
        {
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
        let condition = "#st = :settling AND run_id = :owner";
        let values = [(":settling", "SETTLING"), (":owner", previous_run)];
        self.put_cycle_if(rec, condition, &[], &values).await
    }

    /// Records the end of a run: `SETTLED` or `FAILED`, only if `rec.run_id`
    /// still owns the cycle and it is `SETTLING` or `FAILED` (a redrive of
    /// the run reconciles its failed cycle again). Returns false if not (a
    /// stale run, or a settled month). A write applied whose answer was lost
    /// is refused by its own condition on the SDK's retry when it settled the
    /// month: the caller tells it apart by reading the cycle.
    pub async fn finish(&self, rec: &CycleRecord) -> Result<bool, StoreError> {
        let condition = "run_id = :owner AND (#st = :settling OR #st = :failed)";
        let values = [
            (":settling", "SETTLING"),
            (":failed", "FAILED"),
            (":owner", rec.run_id.as_str()),
        ];
        self.put_cycle_if(rec, condition, &[], &values).await
    }

    /// The cycles that exist among `newest` and the months before it, down to the first
    /// month a cycle can name (January 2000), newest first, at most `limit`: one
    /// [`get_many`](Self::get_many) per hundred months, from `newest` back, until `limit` are
    /// found. The table is keyed by cycle, so no index is needed and no shard item is read; a
    /// stack's cycles are a few dozen, so this is one to four `BatchGetItem` calls.
    pub async fn latest(&self, newest: Cycle, limit: usize) -> Result<Vec<CycleRecord>, StoreError> {
        let first = Cycle::new(2000, 1).map_err(|e| self.build_error("first cycle", e))?;
        let mut found = Vec::new();
        let mut next = Some(newest);
        while found.len() < limit {
            let mut months = Vec::with_capacity(100);
            while let Some(c) = next.filter(|_| months.len() < 100) {
                months.push(c);
                next = (c > first).then(|| c.prev());
            }
            if months.is_empty() {
                break;
            }
            let mut got = self.get_many(&months).await?;
            found.extend(months.iter().filter_map(|c| got.remove(c)));
        }
        found.truncate(limit);
        Ok(found)
    }

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
                    .map_err(|e| self.build_error("cycle keys", e))?;
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
