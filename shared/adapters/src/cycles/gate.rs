//! The gate: whether a run may write a cycle's settlement, as a read
//! ([`CycleStore::owned_by`]) and as a transaction's condition
//! ([`CycleStore::gated`], for the shard and render records).

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use domain::Cycle;

use super::{CYCLE_ITEM, CycleRecord, CycleStatus, CycleStore, s};
use crate::StoreError;

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

impl CycleStore {
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

    /// Runs `[gate, write]` as one transaction: [`Gated::Applied`], or
    /// [`Gated::NotOwned`] if the gate refused, or [`Gated::Stale`] if the
    /// write's own condition did. Retries a transaction conflict a few times.
    pub(super) async fn gated(
        &self,
        cycle: Cycle,
        run_id: &str,
        write: TransactWriteItem,
    ) -> Result<Gated, StoreError> {
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
                    Some(item) => Some(self.cycle_record(cycle, item.clone())?),
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
}
