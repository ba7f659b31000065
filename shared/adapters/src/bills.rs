//! The bills table: one item per bill, key (`pk` = `{cycle}#{shard:05}`,
//! `customer_id`), the whole bill with its lines as one JSON attribute. The key is a function of (cycle, shard,
//! customer), so a re-run overwrites a bill with identical content instead
//! of adding one, and a shard's bills are one `Query` away.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use domain::{Bill, Cycle};
use sha2::{Digest, Sha256};

use crate::StoreError;
use crate::dynamo::{BatchStats, Item, batch_put};
use crate::retry::Backoff;

#[derive(Clone, Debug)]
pub struct BillStore {
    client: Client,
    table: String,
    /// `BatchWriteItem` requests in flight per call.
    pub write_concurrency: usize,
}

pub fn partition_key(cycle: Cycle, shard: u32) -> String {
    format!("{cycle}#{shard:05}")
}

/// SHA-256 of a bill's JSON (the `bill` attribute): equal bills, equal
/// digests.
pub fn bill_digest(bill: &Bill) -> String {
    // A `Bill` holds only strings, integers and enums: serialisation cannot fail.
    let json = serde_json::to_vec(bill).unwrap_or_default();
    hex::encode(Sha256::digest(json))
}

/// The item of a bill: its key, the figures an operator looks at in the
/// console as attributes, and the whole bill as one JSON document (`bill`).
/// Encoding the lines as a JSON string rather than a DynamoDB map is about
/// 30× cheaper per bill (see BENCHMARKS.md) and no larger.
pub fn encode(bill: &Bill) -> Result<Item, serde_json::Error> {
    let json = serde_json::to_string(bill)?;
    let n = |v: i64| AttributeValue::N(v.to_string());
    let mut item = Item::with_capacity(10);
    item.insert("pk".into(), AttributeValue::S(partition_key(bill.cycle, bill.shard)));
    item.insert("customer_id".into(), AttributeValue::S(bill.customer_id.to_string()));
    item.insert("cycle".into(), AttributeValue::S(bill.cycle.to_string()));
    item.insert("shard".into(), n(i64::from(bill.shard)));
    item.insert(
        "catalog_version".into(),
        AttributeValue::S(bill.catalog_version.clone()),
    );
    item.insert("total".into(), n(bill.total.won()));
    item.insert("vat".into(), n(bill.vat.won()));
    item.insert(
        "digest".into(),
        AttributeValue::S(hex::encode(Sha256::digest(json.as_bytes()))),
    );
    item.insert("bill".into(), AttributeValue::S(json));
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

    fn decode(&self, item: &Item, cycle: Cycle, shard: u32) -> Result<Bill, StoreError> {
        let id = item
            .get("customer_id")
            .and_then(|v| v.as_s().ok())
            .map_or("?", String::as_str);
        let err = |message: String| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("bill of customer {id} in {cycle} shard {shard}"),
            message,
        };
        let json = item
            .get("bill")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| err("no bill attribute".into()))?;
        serde_json::from_str(json).map_err(|e| err(e.to_string()))
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
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(partition_key(cycle, shard)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::aws("Query", &self.table, e))?;
            for item in page.items.unwrap_or_default() {
                out.push(self.decode(&item, cycle, shard)?);
            }
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// Number of bill items stored for a shard (a `Select=COUNT` query).
    pub async fn count(&self, cycle: Cycle, shard: u32) -> Result<u64, StoreError> {
        let mut n = 0u64;
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(partition_key(cycle, shard)))
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::aws("Query", &self.table, e))?;
            n += u64::try_from(page.count).unwrap_or(0);
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(n);
            }
        }
    }
}
