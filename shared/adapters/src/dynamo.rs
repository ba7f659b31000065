//! DynamoDB helpers shared by the stores.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use domain::Cycle;
use futures::{StreamExt, TryStreamExt, stream};

use crate::retry::Backoff;
use crate::{PutOutcome, StoreError};

/// DynamoDB accepts at most 25 items per `BatchWriteItem`.
pub const BATCH_WRITE_LIMIT: usize = 25;
/// DynamoDB rejects items over 400 KB.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

pub type Item = HashMap<String, AttributeValue>;

/// A stored item as `T`. The error gives the attribute's path and what was expected, never the
/// value (serde_dynamo's own message quotes a number that does not parse), so it may go into a
/// log line, a failure record or an execution history.
pub fn decode_item<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, domain::decode::DecodeError> {
    let item: serde_dynamo::Item = item.into();
    let d = serde_dynamo::Deserializer::from_attribute_value(serde_dynamo::AttributeValue::M(item.into()));
    domain::decode::from_deserializer(d)
}

/// Requests made by a batch write, for cost accounting.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    pub items: usize,
    pub requests: usize,
    /// Requests that re-drove unprocessed items or retried a transient error.
    pub retries: usize,
}

impl std::ops::AddAssign for BatchStats {
    fn add_assign(&mut self, o: Self) {
        self.items += o.items;
        self.requests += o.requests;
        self.retries += o.retries;
    }
}

/// Writes `items` with `BatchWriteItem`, 25 per request and up to
/// `concurrency` requests in flight. Unprocessed items and transient errors
/// are retried with backoff; whatever is still unprocessed after
/// `backoff.max_attempts` fails the call (nothing is dropped silently).
pub async fn batch_put(
    client: &Client,
    table: &str,
    items: Vec<Item>,
    concurrency: usize,
    backoff: Backoff,
) -> Result<BatchStats, StoreError> {
    let requests = items
        .into_iter()
        .map(|item| put_request(table, item))
        .collect::<Result<Vec<_>, _>>()?;
    let chunks: Vec<Vec<WriteRequest>> = requests
        .chunks(BATCH_WRITE_LIMIT)
        .map(<[WriteRequest]>::to_vec)
        .collect();
    stream::iter(chunks)
        .map(|chunk| write_chunk(client, table, chunk, backoff))
        .buffer_unordered(concurrency.max(1))
        .try_fold(BatchStats::default(), |mut acc, s| async move {
            acc += s;
            Ok(acc)
        })
        .await
}

fn put_request(table: &str, item: Item) -> Result<WriteRequest, StoreError> {
    let size = item_size(&item);
    if size > MAX_ITEM_BYTES {
        return Err(StoreError::Conflict {
            resource: table.to_owned(),
            message: format!("an item of about {size} bytes exceeds the DynamoDB limit of {MAX_ITEM_BYTES} bytes"),
        });
    }
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| StoreError::Decode {
            resource: table.to_owned(),
            what: "put request".into(),
            message: e.to_string(),
        })?;
    Ok(WriteRequest::builder().put_request(put).build())
}

/// The size DynamoDB charges for an item, following its documented rules
/// (attribute names plus values; numbers counted as their digits). An
/// estimate within a few bytes, used to refuse oversized items up front.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, x)| 1 + k.len() + value_size(x)).sum::<usize>(),
        AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
        AttributeValue::Ns(ns) => ns.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(bs) => bs.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

async fn write_chunk(
    client: &Client,
    table: &str,
    mut pending: Vec<WriteRequest>,
    backoff: Backoff,
) -> Result<BatchStats, StoreError> {
    let mut stats = BatchStats {
        items: pending.len(),
        ..Default::default()
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        stats.requests += 1;
        let result = client
            .batch_write_item()
            .request_items(table, pending.clone())
            .send()
            .await
            .map_err(|e| StoreError::aws("BatchWriteItem", table, e));
        match result {
            Ok(out) => {
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
                if pending.is_empty() {
                    return Ok(stats);
                }
            }
            Err(e) if e.is_transient() => {
                if attempt >= backoff.max_attempts {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        if attempt >= backoff.max_attempts {
            return Err(StoreError::Unprocessed {
                op: "BatchWriteItem",
                resource: table.to_owned(),
                unprocessed: pending.len(),
                attempts: attempt,
            });
        }
        stats.retries += 1;
        tracing::debug!(table, attempt, unprocessed = pending.len(), "re-driving batch write");
        tokio::time::sleep(backoff.delay(attempt)).await;
    }
}

/// The partition key (`pk`) of one shard of a cycle in the tables keyed by it, the bills
/// and the deliveries: `{cycle}#{shard:05}`.
pub fn shard_partition(cycle: Cycle, shard: u32) -> String {
    format!("{cycle}#{shard:05}")
}

/// A `Query` of one shard of a cycle (its partition, [`shard_partition`]) in the bills or
/// the deliveries table.
pub fn shard_query(client: &Client, table: &str, cycle: Cycle, shard: u32) -> QueryFluentBuilder {
    client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(shard_partition(cycle, shard)))
}

/// One item by its key (`GetItem`), `None` when there is none. `consistent_read` asks for a
/// strongly consistent read; without it the read is DynamoDB's default (eventually
/// consistent).
pub async fn get_item(
    client: &Client,
    table: &str,
    key: impl IntoIterator<Item = (&'static str, AttributeValue)>,
    consistent_read: bool,
) -> Result<Option<Item>, StoreError> {
    let key = key.into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
    let got = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .set_consistent_read(consistent_read.then_some(true))
        .send()
        .await
        .map_err(|e| StoreError::aws("GetItem", table, e))?;
    Ok(got.item)
}

/// Creates `item` unless an item with its key is there (`attribute_not_exists` of
/// `key_attribute`): [`PutOutcome::AlreadyExists`] leaves the stored one untouched.
pub async fn put_new(client: &Client, table: &str, item: Item, key_attribute: &str) -> Result<PutOutcome, StoreError> {
    let req = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(format!("attribute_not_exists({key_attribute})"));
    Ok(if conditional_put(req, table).await? {
        PutOutcome::Created
    } else {
        PutOutcome::AlreadyExists
    })
}

/// Reads an attribute as a string.
pub fn attr_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// Sends a conditional `PutItem`. `Ok(true)` if the item was written,
/// `Ok(false)` if the condition failed (an outcome, not an error).
pub async fn conditional_put(req: PutItemFluentBuilder, table: &str) -> Result<bool, StoreError> {
    Ok(conditional("PutItem", table, req.send().await)?.is_some())
}

/// The answer of a conditional write (`PutItem`, `UpdateItem`, `DeleteItem`):
/// `Ok(Some(output))` if it was written, `Ok(None)` if its condition failed
/// (an outcome, not an error), `Err` for anything else.
pub fn conditional<T, E>(
    op: &'static str,
    table: &str,
    answer: Result<T, aws_smithy_runtime_api::client::result::SdkError<E, HttpResponse>>,
) -> Result<Option<T>, StoreError>
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    match answer {
        Ok(out) => Ok(Some(out)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|x| x.code() == Some("ConditionalCheckFailedException")) =>
        {
            Ok(None)
        }
        Err(e) => Err(StoreError::aws(op, table, e)),
    }
}

/// Every page of a `Query`: the items, the sum of the pages' `Count` (the
/// number of matches with `Select=COUNT`) and how many pages were read.
#[derive(Debug, Default)]
pub struct QueryResult {
    pub items: Vec<Item>,
    pub count: u64,
    pub pages: usize,
}

/// Runs a `Query` to its last page.
pub async fn query_all(req: QueryFluentBuilder, table: &str) -> Result<QueryResult, StoreError> {
    let mut out = QueryResult::default();
    let mut pages = req.into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::aws("Query", table, e))?;
        out.pages += 1;
        out.count += u64::try_from(page.count).unwrap_or(0);
        out.items.extend(page.items.unwrap_or_default());
    }
    Ok(out)
}

#[cfg(test)]
mod decode_tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Stored {
        customer_id: String,
        total: i64,
    }

    #[test]
    fn a_stored_item_that_does_not_decode_names_the_attribute_never_the_value() {
        let phone = "010-1234-5678";
        let item: Item = [
            ("customer_id".to_owned(), AttributeValue::S("C000041".into())),
            ("total".to_owned(), AttributeValue::N(phone.into())),
        ]
        .into();
        let e = decode_item::<Stored>(item).unwrap_err().to_string();
        assert!(e.contains("total") && !e.contains("1234"), "{e}");
        let ok: Item = [
            ("customer_id".to_owned(), AttributeValue::S("C000041".into())),
            ("total".to_owned(), AttributeValue::N("12000".into())),
        ]
        .into();
        assert_eq!(decode_item::<Stored>(ok).unwrap().total, 12_000);
    }
}
