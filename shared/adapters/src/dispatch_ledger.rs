//! Dispatch's own ledger of the email it enqueued, so that a run knows how much of the
//! provider's 24-hour quota the runs before it already promised, messages still in the
//! queue included (the provider's `SentLast24Hours` counts only what it sent).
//!
//! * **Where.** One item per slot in `CyclesTable` (the table dispatch already reads every
//!   run), all in one partition of their own: `cycle` = [`LEDGER_PARTITION`], `item` = the
//!   slot's start in UTC seconds (`2026-12-15T01:00:00Z`), so the slots of the last 24 hours
//!   are one consistent `Query` (`BETWEEN`) of at most twelve small items. No cycle record
//!   lives in that partition, and nothing reads the table by scanning it.
//! * **One attribute per invocation.** Each invocation (the scheduled run, a retry, each
//!   continuation) writes its own attribute, `enqueued#{token}` (the invocation's write
//!   token: the run id and a nonce), with `SET` — never `ADD`: a write whose answer was lost
//!   and that the SDK repeats sets the same value again instead of counting twice, and two
//!   invocations of one run id never share an attribute. The slot's total is the sum of its
//!   attributes.
//! * **Reserve, then settle.** A run sets its attribute to the whole budget it may use
//!   before it enqueues anything, and to what it enqueued once it is done: a run that
//!   crashes in between leaves the reservation, an over-count (safe: fewer emails in the
//!   next 24 hours, never more than the quota).
//! * **Size.** Twelve items a day of a few hundred bytes; they are kept (a year is about
//!   4,400 items, under two megabytes) as a record of what each slot enqueued.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use domain::delivery::utc_seconds;

use crate::StoreError;
use crate::dynamo::query_all;

/// The `cycle` partition of the ledger's items in `CyclesTable`.
pub const LEDGER_PARTITION: &str = "DISPATCH#EMAIL";

/// The prefix of an invocation's attribute in a slot's item.
const ENQUEUED: &str = "enqueued#";

/// The email dispatch enqueued, by slot (see the module doc).
#[derive(Clone, Debug)]
pub struct EmailLedger {
    client: Client,
    table: String,
}

impl EmailLedger {
    /// The ledger in the cycles table `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        EmailLedger {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// What every invocation recorded for the slots starting from `first` to `last`
    /// (inclusive), summed (a consistent read).
    pub async fn enqueued_between(&self, first: DateTime<Utc>, last: DateTime<Utc>) -> Result<u64, StoreError> {
        let req = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#c = :p AND #i BETWEEN :first AND :last")
            .expression_attribute_names("#c", "cycle")
            .expression_attribute_names("#i", "item")
            .expression_attribute_values(":p", AttributeValue::S(LEDGER_PARTITION.into()))
            .expression_attribute_values(":first", AttributeValue::S(utc_seconds::format(&first)))
            .expression_attribute_values(":last", AttributeValue::S(utc_seconds::format(&last)));
        let out = query_all(req, &self.table).await?;
        let mut total = 0u64;
        for item in &out.items {
            for (name, v) in item.iter().filter(|(name, _)| name.starts_with(ENQUEUED)) {
                let n = v
                    .as_n()
                    .ok()
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| StoreError::Decode {
                        resource: self.table.clone(),
                        what: format!("ledger attribute {}", domain::text::bounded(name, 200)),
                        message: "not a whole number".into(),
                    })?;
                total = total.saturating_add(n);
            }
        }
        Ok(total)
    }

    /// Sets what the invocation named by `token` enqueued (or reserves) in the slot that
    /// starts at `slot`. Repeating it with the same value changes nothing.
    pub async fn record(
        &self,
        slot: DateTime<Utc>,
        token: &str,
        count: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("cycle", AttributeValue::S(LEDGER_PARTITION.into()))
            .key("item", AttributeValue::S(utc_seconds::format(&slot)))
            .update_expression("SET #n = :n, updated_at = :now")
            .expression_attribute_names("#n", format!("{ENQUEUED}{token}"))
            .expression_attribute_values(":n", AttributeValue::N(count.to_string()))
            .expression_attribute_values(":now", AttributeValue::S(utc_seconds::format(&now)))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", &self.table, e))?;
        Ok(())
    }
}
