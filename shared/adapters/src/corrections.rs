//! Corrections of settled bills: the `CorrectionsTable` and what a correction reads and
//! writes beside it.
//!
//! A bill, once its cycle is settled, is never rewritten. An operator's credit, debit or
//! re-rating is a **correction record** (`pk` = `{cycle}#{shard:05}` like the bill, `sk` =
//! `{customer_id}#{seq:04}`, seq 1, 2, … per bill): its command, kind, signed amount (a credit
//! is negative), reason, who gave it and when, the bill's original total, the amount due
//! before and after it, for a re-rating the catalog version and the lines that changed, and
//! the corrected invoice it produced. A bill's corrections are one `Query` away, in order.
//!
//! The amount due of a bill is its total plus every correction's amount, never below zero.
//! The cycle item counts the corrections of its bills (`adjustments`, `adjustments_total`,
//! added in the same transaction as the record, see [`CorrectionStore::count_on_cycle`]):
//! the cycle bills `checksum` and nets `checksum + adjustments_total`.
//!
//! Writes are handed over, not performed ([`CorrectionStore::put`],
//! [`CorrectionStore::count_on_cycle`]): the admin API writes them in one transaction with the
//! delivery's change and the command's record.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, Update};
use domain::{Bill, CustomerId, Cycle};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::dynamo::{Item, attr_s, get_item, query_all, shard_partition};

/// The largest credit or debit one correction may carry, in won.
pub const MAX_AMOUNT_WON: i64 = 10_000_000;
/// The most corrections one bill may have (the sort key's four digits).
pub const MAX_CORRECTIONS: u32 = 9_999;

/// What a correction does.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CorrectionKind {
    /// Lowers the amount due by a sum.
    Credit,
    /// Raises it by a sum.
    Debit,
    /// The bill rated again under a catalog version: the difference to what it was rated at.
    Rerate,
}

impl CorrectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CorrectionKind::Credit => "credit",
            CorrectionKind::Debit => "debit",
            CorrectionKind::Rerate => "rerate",
        }
    }
}

/// One line code whose amount a re-rating changed (Σ of the bill's lines with that code).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedLine {
    pub code: String,
    /// Its amount before (0 when the line was not on the bill), in won.
    pub old: i64,
    /// Its amount after (0 when the line is gone), in won.
    pub new: i64,
}

/// One correction record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub cycle: Cycle,
    pub shard: u32,
    pub customer_id: CustomerId,
    /// 1, 2, … per bill, in the order given.
    pub seq: u32,
    pub command_id: String,
    pub kind: CorrectionKind,
    /// Signed, in won: a credit is negative.
    pub amount: i64,
    pub reason: String,
    /// Who gave it: the caller's IAM ARN, as the audit names it.
    pub actor: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The bill's total as settled.
    pub original_total: i64,
    pub due_before: i64,
    pub due_after: i64,
    /// A re-rating's catalog version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_version: Option<String>,
    /// A re-rating's changed lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_lines: Vec<ChangedLine>,
    /// The corrected invoice: its object key and content hash.
    pub invoice_key: String,
    pub content_hash: String,
}

/// The sort key of a bill's correction `seq`.
pub fn sort_key(customer: &CustomerId, seq: u32) -> String {
    format!("{customer}#{seq:04}")
}

/// Where a bill stands after its corrections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The bill's total as settled.
    pub original_total: i64,
    /// What the customer owes now.
    pub due: i64,
    /// The total the bill is rated at now: its own, or the latest re-rating's.
    pub rated_total: i64,
    /// The next correction's number.
    pub next_seq: u32,
}

impl Standing {
    /// The bill of `original_total` with `corrections` (in order) applied.
    pub fn of(original_total: i64, corrections: &[Correction]) -> Standing {
        let mut s = Standing {
            original_total,
            due: original_total,
            rated_total: original_total,
            next_seq: 1,
        };
        for c in corrections {
            s.due = c.due_after;
            if c.kind == CorrectionKind::Rerate {
                s.rated_total = s.rated_total.saturating_add(c.amount);
            }
            s.next_seq = s.next_seq.max(c.seq + 1);
        }
        s
    }
}

/// The amounts of `old` and `new` by line code (Σ per code), where they differ, in code order.
pub fn changed_lines(old: &Bill, new: &Bill) -> Vec<ChangedLine> {
    let mut by_code: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for l in &old.lines {
        by_code.entry(&l.code).or_default().0 += l.amount.won();
    }
    for l in &new.lines {
        by_code.entry(&l.code).or_default().1 += l.amount.won();
    }
    by_code
        .into_iter()
        .filter(|(_, (o, n))| o != n)
        .map(|(code, (old, new))| ChangedLine {
            code: code.to_owned(),
            old,
            new,
        })
        .collect()
}

/// The corrections table, and the bill and cycle items a correction reads and counts on.
#[derive(Clone, Debug)]
pub struct CorrectionStore {
    client: Client,
    table: String,
    bills_table: String,
    cycles_table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl CorrectionStore {
    /// `table` is the corrections table; the bills are read from `bills_table` and the
    /// cycle's counters kept on its item in `cycles_table`.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        bills_table: impl Into<String>,
        cycles_table: impl Into<String>,
    ) -> Self {
        CorrectionStore {
            client,
            table: table.into(),
            bills_table: bills_table.into(),
            cycles_table: cycles_table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The settled bill (consistent read), `None` when there is none.
    pub async fn bill(&self, cycle: Cycle, shard: u32, customer: &CustomerId) -> Result<Option<Bill>, StoreError> {
        let key = [
            ("pk", s(shard_partition(cycle, shard))),
            ("customer_id", s(customer.as_str())),
        ];
        let Some(mut item) = get_item(&self.client, &self.bills_table, key, true).await? else {
            return Ok(None);
        };
        item.remove("pk");
        crate::dynamo::decode_item(item)
            .map(Some)
            .map_err(|e| StoreError::Decode {
                resource: self.bills_table.clone(),
                what: format!("bill of customer {customer} in {cycle} shard {shard}"),
                message: e.to_string(),
            })
    }

    /// A bill's corrections in order (consistent read).
    pub async fn of_bill(
        &self,
        cycle: Cycle,
        shard: u32,
        customer: &CustomerId,
    ) -> Result<Vec<Correction>, StoreError> {
        let req = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
            .expression_attribute_values(":pk", s(shard_partition(cycle, shard)))
            .expression_attribute_values(":c", s(format!("{customer}#")))
            .consistent_read(true);
        query_all(req, &self.table)
            .await?
            .items
            .into_iter()
            .map(|mut item| {
                let sk = attr_s(&item, "sk").unwrap_or_default().to_owned();
                item.remove("pk");
                item.remove("sk");
                crate::dynamo::decode_item(item).map_err(|e| StoreError::Decode {
                    resource: self.table.clone(),
                    what: format!("correction {sk}"),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// The record's write, for a transaction: only where no correction has its number.
    pub fn put(&self, c: &Correction) -> Result<Put, StoreError> {
        let decode = |message: String| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("correction {}", sort_key(&c.customer_id, c.seq)),
            message,
        };
        let mut item: Item = serde_dynamo::to_item(c).map_err(|e| decode(e.to_string()))?;
        item.insert("pk".into(), s(shard_partition(c.cycle, c.shard)));
        item.insert("sk".into(), s(sort_key(&c.customer_id, c.seq)));
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| decode(e.to_string()))
    }

    /// The cycle's counters raised by one correction of `amount`, for a transaction: only while
    /// the cycle is `SETTLED`.
    pub fn count_on_cycle(&self, cycle: Cycle, amount: i64) -> Result<Update, StoreError> {
        Update::builder()
            .table_name(&self.cycles_table)
            .key("cycle", s(cycle.to_string()))
            .key("item", s(crate::cycles::CYCLE_ITEM))
            .update_expression("ADD adjustments :one, adjustments_total :amount")
            .condition_expression("#st = :settled")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":amount", AttributeValue::N(amount.to_string()))
            .expression_attribute_values(":settled", s("SETTLED"))
            .build()
            .map_err(|e| StoreError::Decode {
                resource: self.cycles_table.clone(),
                what: format!("cycle {cycle} adjustment"),
                message: e.to_string(),
            })
    }

    /// The cycle's counters: corrections and their Σ in won (0 and 0 before any).
    pub async fn cycle_adjustments(&self, cycle: Cycle) -> Result<Adjustments, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.cycles_table)
            .key("cycle", s(cycle.to_string()))
            .key("item", s(crate::cycles::CYCLE_ITEM))
            .projection_expression("adjustments, adjustments_total")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", &self.cycles_table, e))?;
        let n = |item: &Item, name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        Ok(out
            .item
            .map(|item| Adjustments {
                count: u64::try_from(n(&item, "adjustments")).unwrap_or(0),
                total: n(&item, "adjustments_total"),
            })
            .unwrap_or_default())
    }
}

/// A cycle's corrections, counted.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Adjustments {
    pub count: u64,
    /// Σ of their signed amounts, in won.
    pub total: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{BillLine, Krw, LineKind};
    use std::sync::Arc;

    fn line(code: &str, amount: i64) -> BillLine {
        BillLine {
            kind: LineKind::Plan,
            code: Arc::from(code),
            label: Arc::from(code),
            quantity: 1,
            unit: Arc::from("month"),
            unit_price: Krw(amount),
            amount: Krw(amount),
            taxable: true,
            detail: String::new(),
        }
    }

    fn bill(lines: Vec<BillLine>) -> Bill {
        let total: i64 = lines.iter().map(|l| l.amount.won()).sum();
        Bill {
            cycle: "2026-11".parse().unwrap(),
            customer_id: CustomerId::new("C0000001").unwrap(),
            shard: 0,
            catalog_version: "2026-v1".into(),
            charges: Krw(total),
            discounts: Krw(0),
            taxable_base: Krw(total),
            vat: Krw(0),
            rounding: Krw(0),
            total: Krw(total),
            lines,
        }
    }

    fn correction(seq: u32, kind: CorrectionKind, amount: i64, due_after: i64) -> Correction {
        Correction {
            cycle: "2026-11".parse().unwrap(),
            shard: 0,
            customer_id: CustomerId::new("C0000001").unwrap(),
            seq,
            command_id: format!("c-{seq}"),
            kind,
            amount,
            reason: "r".into(),
            actor: "arn:aws:iam::1:role/a".into(),
            at: "2026-12-15T01:00:00Z".into(),
            original_total: 50_000,
            due_before: due_after - amount,
            due_after,
            catalog_version: None,
            changed_lines: Vec::new(),
            invoice_key: "k".into(),
            content_hash: "h".into(),
        }
    }

    #[test]
    fn changed_lines_compare_the_sums_per_code() {
        let old = bill(vec![line("5G", 55_000), line("DISC", -5_000), line("VAT", 5_000)]);
        let new = bill(vec![
            line("5G", 60_000),
            line("DISC", -5_000),
            line("VAT", 5_500),
            line("NEW", 10),
        ]);
        let changed = changed_lines(&old, &new);
        let codes: Vec<(&str, i64, i64)> = changed.iter().map(|c| (c.code.as_str(), c.old, c.new)).collect();
        assert_eq!(
            codes,
            vec![("5G", 55_000, 60_000), ("NEW", 0, 10), ("VAT", 5_000, 5_500)]
        );
        assert!(changed_lines(&old, &old).is_empty());
    }

    #[test]
    fn the_standing_follows_the_corrections_in_order() {
        assert_eq!(
            Standing::of(50_000, &[]),
            Standing {
                original_total: 50_000,
                due: 50_000,
                rated_total: 50_000,
                next_seq: 1
            }
        );
        let list = [
            correction(1, CorrectionKind::Credit, -10_000, 40_000),
            correction(2, CorrectionKind::Rerate, 3_000, 43_000),
            correction(3, CorrectionKind::Debit, 500, 43_500),
        ];
        let s = Standing::of(50_000, &list);
        assert_eq!((s.due, s.rated_total, s.next_seq), (43_500, 53_000, 4));
    }

    #[test]
    fn a_record_is_put_only_where_its_number_is_free() {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let store = CorrectionStore::new(Client::from_conf(conf), "corrections", "bills", "cycles");
        let mut c = correction(7, CorrectionKind::Rerate, 1_200, 51_200);
        c.catalog_version = Some("2026-v2".into());
        c.changed_lines = vec![ChangedLine {
            code: "5G".into(),
            old: 55_000,
            new: 56_000,
        }];
        let put = store.put(&c).unwrap();
        assert_eq!(put.condition_expression(), Some("attribute_not_exists(pk)"));
        let item = put.item();
        assert_eq!(item["pk"].as_s().unwrap(), "2026-11#00000");
        assert_eq!(item["sk"].as_s().unwrap(), "C0000001#0007");
        assert_eq!(item["kind"].as_s().unwrap(), "rerate");
        // What is put reads back.
        let mut back = item.clone();
        back.remove("pk");
        back.remove("sk");
        let read: Correction = crate::dynamo::decode_item(back).unwrap();
        assert_eq!(read, c);
        let u = store.count_on_cycle("2026-11".parse().unwrap(), -10_000).unwrap();
        assert_eq!(u.update_expression(), "ADD adjustments :one, adjustments_total :amount");
        assert_eq!(u.condition_expression(), Some("#st = :settled"));
    }
}
