//! The calls ingest makes that the shared adapters do not: a streamed (or ranged) read of
//! exactly the uploaded version of an object, a scan of the customers' key index, batched
//! reads of customer items, a shard's count, and conditional writes of the shard directory.
//! Errors are the adapters' [`StoreError`], transient when a retry may help.

use std::collections::HashMap;

use adapters::StoreError;
use adapters::dynamo::Item;
use adapters::retry::Backoff;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Select};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types_error::{classify, sdk_error};

/// DynamoDB accepts at most 100 keys per `BatchGetItem`.
pub const BATCH_GET_LIMIT: usize = 100;

/// Parallel segments of the key-index scan.
pub const SCAN_SEGMENTS: i32 = 8;

mod aws_smithy_types_error {
    use adapters::StoreError;
    use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

    const RETRYABLE_CODES: &[&str] = &[
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "TooManyRequestsException",
        "SlowDown",
        "RequestTimeout",
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
    ];

    /// Whether an SDK error may pass on a retry: a timeout, a dispatch or response failure, a
    /// 5xx or a throttling code.
    pub fn classify<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool
    where
        R: HasStatus,
    {
        match e {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(se) => {
                se.raw().is_server_error() || se.err().code().is_some_and(|c| RETRYABLE_CODES.contains(&c))
            }
            _ => false,
        }
    }

    pub trait HasStatus {
        fn is_server_error(&self) -> bool;
    }

    impl HasStatus for aws_smithy_runtime_api::client::orchestrator::HttpResponse {
        fn is_server_error(&self) -> bool {
            self.status().is_server_error()
        }
    }

    /// An SDK error as a [`StoreError`].
    pub fn sdk_error<E, R>(op: &'static str, resource: impl Into<String>, e: SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: HasStatus + std::fmt::Debug + Send + Sync + 'static,
    {
        let transient = classify(&e);
        StoreError::Aws {
            op,
            resource: resource.into(),
            message: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            transient,
            source: Box::new(e),
        }
    }
}

/// The quoted form of an ETag (`"…"`), as `If-Match` and reports give it.
pub fn quoted(etag: &str) -> String {
    if etag.starts_with('"') {
        etag.to_owned()
    } else {
        format!("\"{etag}\"")
    }
}

/// A read of the uploaded version of an object.
pub enum Read {
    Body(ByteStream),
    /// The object is gone or was replaced since the event (a newer upload is ingested by its
    /// own execution).
    Replaced,
}

/// Reads `key` in `bucket` if its ETag is still `etag`: the whole object, or the bytes
/// `range` (start inclusive, end exclusive).
pub async fn read_version(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    etag: &str,
    range: Option<(u64, u64)>,
) -> Result<Read, StoreError> {
    let mut req = s3.get_object().bucket(bucket).key(key).if_match(quoted(etag));
    if let Some((start, end)) = range {
        if end <= start {
            return Ok(Read::Body(ByteStream::from_static(b"")));
        }
        req = req.range(format!("bytes={start}-{}", end - 1));
    }
    match req.send().await {
        Ok(out) => Ok(Read::Body(out.body)),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key());
            if missing || status == Some(412) || status == Some(404) {
                return Ok(Read::Replaced);
            }
            Err(sdk_error("GetObject", format!("s3://{bucket}/{key}"), e))
        }
    }
}

/// A failure while reading a body's bytes (transient: the read can be tried again).
pub fn body_error(resource: &str, e: aws_sdk_s3::primitives::ByteStreamError) -> StoreError {
    StoreError::Aws {
        op: "GetObject",
        resource: resource.to_owned(),
        message: e.to_string(),
        transient: true,
        source: Box::new(e),
    }
}

/// Every stored customer's shard, from the keys-only index `ByCustomerId` (a parallel scan
/// of [`SCAN_SEGMENTS`] segments). Also returns the pages read.
pub async fn customer_shards(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(HashMap<Box<str>, u32>, u64), StoreError> {
    let scans = (0..SCAN_SEGMENTS).map(|segment| async move {
        let mut out: Vec<(Box<str>, u32)> = Vec::new();
        let mut pages = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let got = ddb
                .scan()
                .table_name(table)
                .index_name(adapters::customers::BY_CUSTOMER_ID)
                .segment(segment)
                .total_segments(SCAN_SEGMENTS)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Scan", table, e))?;
            pages += 1;
            for item in got.items.unwrap_or_default() {
                let id = item.get("customer_id").and_then(|v| v.as_s().ok());
                let shard = item
                    .get("shard")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<u32>().ok());
                if let (Some(id), Some(shard)) = (id, shard) {
                    out.push((id.as_str().into(), shard));
                }
            }
            match got.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok::<_, StoreError>((out, pages))
    });
    let mut all = HashMap::new();
    let mut pages = 0;
    for r in futures::future::join_all(scans).await {
        let (items, p) = r?;
        pages += p;
        all.extend(items);
    }
    Ok((all, pages))
}

/// The stored items of `keys` (shard, customer id), [`BATCH_GET_LIMIT`] per request,
/// unprocessed keys asked again with backoff. Returns the items by key and the requests.
pub async fn batch_get(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: &[(u32, String)],
    backoff: Backoff,
) -> Result<(HashMap<(u32, String), Item>, u64), StoreError> {
    let mut found = HashMap::new();
    let mut requests = 0u64;
    for part in keys.chunks(BATCH_GET_LIMIT) {
        let mut pending: Vec<Item> = part
            .iter()
            .map(|(shard, id)| {
                Item::from([
                    ("shard".to_owned(), AttributeValue::N(shard.to_string())),
                    ("customer_id".to_owned(), AttributeValue::S(id.clone())),
                ])
            })
            .collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            requests += 1;
            let ask = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Decode {
                    resource: table.to_owned(),
                    what: "batch get request".into(),
                    message: e.to_string(),
                })?;
            let out = ddb.batch_get_item().request_items(table, ask.clone()).send().await;
            match out {
                Ok(out) => {
                    for item in out.responses.and_then(|mut r| r.remove(table)).unwrap_or_default() {
                        let shard = item
                            .get("shard")
                            .and_then(|v| v.as_n().ok())
                            .and_then(|n| n.parse::<u32>().ok());
                        let id = item.get("customer_id").and_then(|v| v.as_s().ok()).cloned();
                        if let (Some(shard), Some(id)) = (shard, id) {
                            found.insert((shard, id), item);
                        }
                    }
                    pending = out
                        .unprocessed_keys
                        .and_then(|mut u| u.remove(table))
                        .map(|k| k.keys)
                        .unwrap_or_default();
                }
                Err(e) if classify(&e) && attempt < backoff.max_attempts => {
                    pending = ask.keys;
                }
                Err(e) => return Err(sdk_error("BatchGetItem", table, e)),
            }
            if pending.is_empty() {
                break;
            }
            if attempt >= backoff.max_attempts {
                return Err(StoreError::Unprocessed {
                    op: "BatchGetItem",
                    resource: table.to_owned(),
                    unprocessed: pending.len(),
                    attempts: attempt,
                });
            }
            tokio::time::sleep(backoff.delay(attempt)).await;
        }
    }
    Ok((found, requests))
}

/// How many customers shard `shard` holds (a `Query` with `Select=COUNT`, every page).
pub async fn count_shard(ddb: &aws_sdk_dynamodb::Client, table: &str, shard: u32) -> Result<u64, StoreError> {
    let req = ddb
        .query()
        .table_name(table)
        .key_condition_expression("#s = :s")
        .expression_attribute_names("#s", "shard")
        .expression_attribute_values(":s", AttributeValue::N(shard.to_string()))
        .select(Select::Count);
    Ok(adapters::dynamo::query_all(req, table).await?.count)
}

/// Writes `body` to `key`.
pub async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(), StoreError> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| sdk_error("PutObject", format!("s3://{bucket}/{key}"), e))?;
    Ok(())
}

/// Deletes `key` (nothing when there is none).
pub async fn delete(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(), StoreError> {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| sdk_error("DeleteObject", format!("s3://{bucket}/{key}"), e))?;
    Ok(())
}

/// The current JSON document at `key` and its ETag; `None` when there is none.
pub async fn get_json_versioned<T: serde::de::DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<(T, String)>, StoreError> {
    let resource = format!("s3://{bucket}/{key}");
    let out = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(sdk_error("GetObject", resource, e)),
    };
    let etag = out.e_tag.clone().unwrap_or_default();
    let bytes = out.body.collect().await.map_err(|e| StoreError::Aws {
        op: "GetObject",
        resource: resource.clone(),
        message: e.to_string(),
        transient: true,
        source: Box::new(e),
    })?;
    let doc = domain::decode::from_slice(&bytes.into_bytes()).map_err(|e| StoreError::Decode {
        resource,
        what: "JSON document".into(),
        message: e.to_string(),
    })?;
    Ok(Some((doc, etag)))
}

/// Writes `body` to `key` only if the object is still the version read (`etag`), or still
/// absent (`None`). `Ok(false)` when another writer came first.
pub async fn put_if_unchanged(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    etag: Option<&str>,
    body: Vec<u8>,
) -> Result<bool, StoreError> {
    let mut req = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(ByteStream::from(body));
    req = match etag {
        Some(e) => req.if_match(e),
        None => req.if_none_match("*"),
    };
    match req.send().await {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_response().map(|r| r.status().as_u16()), Some(412 | 409)) => Ok(false),
        Err(e) => Err(sdk_error("PutObject", format!("s3://{bucket}/{key}"), e)),
    }
}
