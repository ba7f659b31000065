use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::SecondsFormat;

use crate::{AcceptedSend, BoxFuture, Channel, ProviderError, SendLog, duplicates_of};

/// Error codes that mean "slow down and try again".
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
];

/// A send log in a DynamoDB table with a string hash key `pk` (the
/// idempotency key) and a string range key `sk`
/// (`"{accepted_at, RFC 3339 with microseconds}#{provider_message_id}"`).
/// Every accept is a new item; a previous accept of the same key is never
/// overwritten. Items also carry `channel`, `provider_message_id` and
/// `accepted_at`; never a recipient or a body. [`SendLog::find`] is a
/// consistent `Query` on `pk`.
#[derive(Debug, Clone)]
pub struct DynamoLog {
    client: Client,
    table: String,
    scan_page_size: Option<i32>,
}

impl DynamoLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLog {
            client,
            table: table.into(),
            scan_page_size: None,
        }
    }

    /// Limits the items per scan page (the scan still reads to the last page).
    pub fn with_scan_page_size(mut self, items: i32) -> Self {
        self.scan_page_size = Some(items);
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The sort key of a record.
    pub fn sort_key(rec: &AcceptedSend) -> String {
        format!(
            "{}#{}",
            rec.accepted_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            rec.provider_message_id
        )
    }

    async fn put(&self, rec: AcceptedSend) -> Result<(), ProviderError> {
        let sk = Self::sort_key(&rec);
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(rec.idempotency_key))
            .item("sk", AttributeValue::S(sk))
            .item("channel", AttributeValue::S(rec.channel.as_str().to_owned()))
            .item("provider_message_id", AttributeValue::S(rec.provider_message_id))
            .item(
                "accepted_at",
                AttributeValue::S(rec.accepted_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", &self.table, e))?;
        Ok(())
    }

    /// How many times each idempotency key was accepted: a consistent scan of
    /// the whole table, every page.
    pub async fn count_by_key(&self) -> Result<BTreeMap<String, u64>, ProviderError> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .projection_expression("pk")
            .consistent_read(true)
            .set_limit(self.scan_page_size)
            .into_paginator()
            .send();
        let mut counts = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("Scan", &self.table, e))?;
            for item in page.items() {
                let Some(key) = string(item, "pk") else {
                    return Err(ProviderError::permanent(
                        "InvalidRecord",
                        format!("send log {}: an item has no string pk", self.table),
                    ));
                };
                *counts.entry(key.to_owned()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    /// The keys accepted more than once, with their counts, in key order.
    pub async fn duplicates(&self) -> Result<Vec<(String, u64)>, ProviderError> {
        Ok(duplicates_of(&self.count_by_key().await?))
    }
}

impl DynamoLog {
    /// The first accepted send of `key` on `channel`: a consistent query of the
    /// key's items in sort-key (time) order, filtered by channel here. No
    /// `Limit`: DynamoDB applies it before any filter, so `Limit 1` would miss a
    /// send on the other channel recorded first under the same key. A key has a
    /// handful of small items; the query still follows every page.
    async fn first(&self, channel: Channel, key: &str) -> Result<Option<AcceptedSend>, ProviderError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :k")
            .expression_attribute_values(":k", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("Query", &self.table, e))?;
            if let Some(item) = page
                .items()
                .iter()
                .find(|item| string(item, "channel") == Some(channel.as_str()))
            {
                return self.decode(channel, key, item).map(Some);
            }
        }
        Ok(None)
    }

    fn decode(
        &self,
        channel: Channel,
        key: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<AcceptedSend, ProviderError> {
        let invalid = |what: &str| {
            ProviderError::permanent(
                "InvalidRecord",
                format!("send log {}: an item of key {key} has {what}", self.table),
            )
        };
        let provider_message_id =
            string(item, "provider_message_id").ok_or_else(|| invalid("no provider_message_id"))?;
        let accepted_at = string(item, "accepted_at")
            .and_then(|a| chrono::DateTime::parse_from_rfc3339(a).ok())
            .ok_or_else(|| invalid("no RFC 3339 accepted_at"))?
            .with_timezone(&chrono::Utc);
        Ok(AcceptedSend {
            channel,
            idempotency_key: key.to_owned(),
            provider_message_id: provider_message_id.to_owned(),
            accepted_at,
        })
    }
}

/// A string attribute of an item.
fn string<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

impl SendLog for DynamoLog {
    fn record(&self, rec: AcceptedSend) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.put(rec))
    }

    fn find<'a>(
        &'a self,
        channel: Channel,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<AcceptedSend>, ProviderError>> {
        Box::pin(self.first(channel, idempotency_key))
    }
}

/// Classifies an SDK error. A timeout or a lost response may have written the
/// item, so its outcome is unknown.
fn sdk_error<E, R>(op: &str, table: &str, err: SdkError<E, R>) -> ProviderError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
    SdkError<E, R>: std::error::Error,
{
    let message = format!("{op} on send log {table} failed: {}", DisplayErrorContext(&err));
    match &err {
        SdkError::TimeoutError(_) => ProviderError::unknown("DynamoTimeout", message),
        SdkError::ResponseError(_) => ProviderError::unknown("DynamoResponseError", message),
        SdkError::DispatchFailure(d) if d.is_timeout() || d.is_io() => {
            ProviderError::unknown("DynamoDispatch", message)
        }
        SdkError::DispatchFailure(_) => ProviderError::retryable("DynamoDispatch", message),
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("DynamoServiceError").to_owned();
            if THROTTLING_CODES.contains(&code.as_str()) {
                ProviderError::retryable(code, message)
            } else {
                ProviderError::permanent(code, message)
            }
        }
        _ => ProviderError::permanent("DynamoRequest", message),
    }
}
