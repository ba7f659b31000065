//! The bills table: one item per bill, key (`pk` = `{cycle}#{shard:05}`,
//! `customer_id`), lines embedded. The key is a function of (cycle, shard,
//! customer), so a re-run overwrites a bill with identical content instead
//! of adding one, and a shard's bills are one `Query` away.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use domain::{Bill, Cycle};
use sha2::{Digest, Sha256};

use crate::StoreError;
use crate::dynamo::{BatchStats, Item, attr_s, batch_put, query_all, shard_query};
use crate::retry::Backoff;

#[derive(Clone, Debug)]
pub struct BillStore {
    client: Client,
    table: String,
    /// `BatchWriteItem` requests in flight per call.
    pub write_concurrency: usize,
}

pub use crate::dynamo::shard_partition as partition_key;

/// SHA-256 of a bill's canonical JSON: equal bills, equal digests.
pub fn bill_digest(bill: &Bill) -> String {
    // A `Bill` holds only strings, integers and enums: serialisation cannot fail.
    let json = serde_json::to_vec(bill).unwrap_or_default();
    hex::encode(Sha256::digest(json))
}

/// The digest of a shard's bills, in the order given (customer-id order, as settled and as
/// read back): SHA-256 over each bill's [`bill_digest`]. Settlement records it for the bills
/// it wrote; rendering computes it again over the bills it read, so that a bill changed in
/// between is seen.
pub fn shard_digest<'a>(bills: impl IntoIterator<Item = &'a Bill>) -> String {
    let mut h = Sha256::new();
    for b in bills {
        h.update(bill_digest(b).as_bytes());
    }
    hex::encode(h.finalize())
}

/// An amount in won as reconciliation texts write it: `60,123,450 won`.
pub fn won(amount: i64) -> String {
    let text = domain::Krw(amount).to_string();
    format!("{} won", text.trim_end_matches('원'))
}

/// The amounts of a shard's items as stored (bills or deliveries), read back with a
/// projection of `customer_id` and `total`: what reconciliation sums.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardAmounts {
    /// Customer id and total in won, in customer-id order.
    pub amounts: Vec<(String, i64)>,
    /// Customer ids of the items whose `total` is missing or not a whole number of won.
    pub unreadable: Vec<String>,
}

impl ShardAmounts {
    /// Reads `customer_id` and `total` from every item.
    pub fn from_items(items: &[Item]) -> Self {
        let mut out = ShardAmounts::default();
        for item in items {
            let id = attr_s(item, "customer_id").unwrap_or_default().to_owned();
            let total = item
                .get("total")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok());
            match total {
                Some(t) => out.amounts.push((id, t)),
                None => out.unreadable.push(id),
            }
        }
        out
    }

    /// Items read, with or without a readable total.
    pub fn count(&self) -> u64 {
        (self.amounts.len() + self.unreadable.len()) as u64
    }

    /// Σ of the readable totals in won.
    pub fn sum(&self) -> i64 {
        self.amounts.iter().fold(0i64, |acc, (_, t)| acc.saturating_add(*t))
    }

    /// The first customers (at most `limit`) whose amount here differs from `other`'s, or who
    /// are in one and not the other: customer id, amount here, amount there.
    pub fn differences(&self, other: &ShardAmounts, limit: usize) -> Vec<(String, Option<i64>, Option<i64>)> {
        let mut theirs: std::collections::BTreeMap<&str, i64> =
            other.amounts.iter().map(|(c, t)| (c.as_str(), *t)).collect();
        let mut out = Vec::new();
        for (c, t) in &self.amounts {
            match theirs.remove(c.as_str()) {
                Some(o) if o == *t => {}
                o => out.push((c.clone(), Some(*t), o)),
            }
        }
        out.extend(theirs.into_iter().map(|(c, o)| (c.to_owned(), None, Some(o))));
        out.sort();
        out.truncate(limit);
        out
    }
}

/// The item of a bill: the key and the bill itself as a DynamoDB map, lines
/// embedded. Measured against the alternative of one JSON string attribute,
/// the map is slower to encode (about 30 µs against 7 µs per bill, nothing
/// next to the write itself) but a third smaller (about 800 B against
/// 1,260 B), and write units, billed per started kilobyte, are what a bill
/// costs (see BENCHMARKS.md). It also reads well in the console.
pub fn encode(bill: &Bill) -> Result<Item, serde_dynamo::Error> {
    let mut item: Item = serde_dynamo::to_item(bill)?;
    item.insert("pk".into(), AttributeValue::S(partition_key(bill.cycle, bill.shard)));
    Ok(item)
}

impl BillStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        BillStore {
            client,
            table: table.into(),
            write_concurrency: 8,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn to_item(&self, bill: &Bill) -> Result<Item, StoreError> {
        encode(bill).map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("bill {}", bill.id()),
            message: e.to_string(),
        })
    }

    fn decode(&self, mut item: Item, cycle: Cycle, shard: u32) -> Result<Bill, StoreError> {
        item.remove("pk");
        let id = item
            .get("customer_id")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        crate::dynamo::decode_item(item).map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("bill of customer {id} in {cycle} shard {shard}"),
            message: e.to_string(),
        })
    }

    /// Writes bills, one item each, 25 per request.
    pub async fn put_all(&self, bills: &[Bill]) -> Result<BatchStats, StoreError> {
        let items = bills.iter().map(|b| self.to_item(b)).collect::<Result<Vec<_>, _>>()?;
        batch_put(
            &self.client,
            &self.table,
            items,
            self.write_concurrency,
            Backoff::default(),
        )
        .await
    }

    /// Every bill of a shard, in customer-id order, read consistently (rendering compares
    /// them with what settlement wrote just before).
    pub async fn shard(&self, cycle: Cycle, shard: u32) -> Result<Vec<Bill>, StoreError> {
        let req = shard_query(&self.client, &self.table, cycle, shard).consistent_read(true);
        let result = query_all(req, &self.table).await?;
        result
            .items
            .into_iter()
            .map(|item| self.decode(item, cycle, shard))
            .collect()
    }

    /// Number of bill items stored for a shard (a `Select=COUNT` query).
    pub async fn count(&self, cycle: Cycle, shard: u32) -> Result<u64, StoreError> {
        Ok(query_all(
            shard_query(&self.client, &self.table, cycle, shard).select(Select::Count),
            &self.table,
        )
        .await?
        .count)
    }

    /// The total of every bill of a shard as stored, in customer-id order: one consistent
    /// `Query` (paginated) projecting `customer_id` and `total`. What reconciliation sums,
    /// from the table itself rather than from what settlement reported.
    pub async fn totals(&self, cycle: Cycle, shard: u32) -> Result<ShardAmounts, StoreError> {
        shard_amounts(&self.client, &self.table, cycle, shard).await
    }
}

/// The `customer_id` and `total` of every item of a shard's partition in `table` (the bills
/// table or the deliveries table: both keyed by shard and customer, both stating a total), in
/// customer-id order: one consistent `Query`, paginated.
pub(crate) async fn shard_amounts(
    client: &Client,
    table: &str,
    cycle: Cycle,
    shard: u32,
) -> Result<ShardAmounts, StoreError> {
    let req = shard_query(client, table, cycle, shard)
        .projection_expression("customer_id, #t")
        .expression_attribute_names("#t", "total")
        .consistent_read(true);
    Ok(ShardAmounts::from_items(&query_all(req, table).await?.items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, total: Option<AttributeValue>) -> Item {
        let mut i = Item::new();
        i.insert("customer_id".into(), AttributeValue::S(id.into()));
        if let Some(t) = total {
            i.insert("total".into(), t);
        }
        i
    }

    fn n(v: &str) -> Option<AttributeValue> {
        Some(AttributeValue::N(v.into()))
    }

    #[test]
    fn amounts_sum_what_reads_and_name_what_does_not() {
        let a = ShardAmounts::from_items(&[
            item("C1", n("55000")),
            item("C2", n("-3000")),
            item("C3", None),
            item("C4", n("12.5")),
            item("C5", Some(AttributeValue::S("100".into()))),
        ]);
        assert_eq!(a.amounts, vec![("C1".into(), 55_000), ("C2".into(), -3_000)]);
        assert_eq!(a.unreadable, vec!["C3", "C4", "C5"]);
        assert_eq!((a.count(), a.sum()), (5, 52_000));
    }

    #[test]
    fn differences_pair_customers() {
        let mine = ShardAmounts {
            amounts: vec![("A".into(), 1), ("B".into(), 2), ("C".into(), 3)],
            unreadable: vec![],
        };
        let theirs = ShardAmounts {
            amounts: vec![("A".into(), 1), ("B".into(), 20), ("D".into(), 4)],
            unreadable: vec![],
        };
        assert_eq!(
            mine.differences(&theirs, 10),
            vec![
                ("B".into(), Some(2), Some(20)),
                ("C".into(), Some(3), None),
                ("D".into(), None, Some(4)),
            ]
        );
        assert_eq!(mine.differences(&theirs, 1).len(), 1);
        assert!(mine.differences(&mine, 10).is_empty());
    }

    #[test]
    fn won_reads_as_text() {
        assert_eq!(won(60_123_450), "60,123,450 won");
        assert_eq!(won(-3_000), "-3,000 won");
        assert_eq!(won(0), "0 won");
    }
}
