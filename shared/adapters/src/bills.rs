//! The bills table: one item per bill, key (`pk` = `{cycle}#{shard:05}`,
//! `customer_id`), lines embedded. The key is a function of (cycle, shard,
//! customer), so a re-run overwrites a bill with identical content instead
//! of adding one, and a shard's bills are one `Query` away.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use domain::{Bill, Cycle};
use sha2::{Digest, Sha256};

use crate::StoreError;
use crate::dynamo::{BatchStats, Item, batch_put, query_all, shard_query};
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

    /// Every bill of a shard, in customer-id order.
    pub async fn shard(&self, cycle: Cycle, shard: u32) -> Result<Vec<Bill>, StoreError> {
        let result = query_all(shard_query(&self.client, &self.table, cycle, shard), &self.table).await?;
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
}
