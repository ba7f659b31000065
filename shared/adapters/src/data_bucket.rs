//! The data bucket: usage files from the mediation system, one per shard and
//! cycle (`usage/{cycle}/shard-{nnnnn}.csv`, format in `billing::usage`), the
//! shard directory written by the customer sync (`customers/shards.json`),
//! settlement manifests (`manifests/{cycle}/shards.json`) and rendered
//! invoices (`invoices/{cycle}/{shard:05}/{customer}/{template}.html`,
//! gzip-encoded HTML, see [`invoice_key`]).

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use domain::Cycle;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;

#[derive(Clone, Debug)]
pub struct DataBucket {
    client: Client,
    bucket: String,
}

/// Where the customer sync states which shards exist (see [`ShardDirectory`]).
pub const SHARD_DIRECTORY_KEY: &str = "customers/shards.json";

/// The shards of the customer base and how many customers each holds, as
/// the customer sync last wrote them. Settlement settles exactly these
/// shards and checks each shard's customer count against it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardDirectory {
    pub shards: Vec<ShardEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardEntry {
    pub shard: u32,
    pub customers: u64,
}

/// The object key of a rendered HTML invoice: a function of cycle, shard,
/// customer and template version, so a re-render overwrites instead of
/// adding, and another template version sits beside it.
pub fn invoice_key(cycle: Cycle, shard: u32, customer: &str, template_version: &str) -> String {
    format!("invoices/{cycle}/{shard:05}/{customer}/{template_version}.html")
}

/// The longest a presigned link may live: SigV4 refuses more than 7 days.
pub const MAX_LINK_EXPIRY: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// An object as stored, with the headers a browser or mail sender needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// `x-amz-meta-*` values.
    pub metadata: std::collections::HashMap<String, String>,
}

/// The object key of a shard's usage file.
pub fn usage_key(cycle: Cycle, shard: u32) -> String {
    format!("usage/{cycle}/shard-{shard:05}.csv")
}

impl DataBucket {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        DataBucket {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub async fn put(&self, cycle: Cycle, shard: u32, csv: Vec<u8>) -> Result<(), StoreError> {
        let key = usage_key(cycle, shard);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("text/csv; charset=utf-8")
            .body(ByteStream::from(csv))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutObject", format!("s3://{}/{key}", self.bucket), e))?;
        Ok(())
    }

    /// The usage file of a shard; `Ok(None)` when there is none (a missing
    /// file is the caller's decision, not an empty usage set).
    pub async fn get(&self, cycle: Cycle, shard: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_bytes(&usage_key(cycle, shard)).await
    }

    /// An object's bytes; `Ok(None)` if there is no such object.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_object(key).await?.map(|o| o.body))
    }

    /// Writes a rendered invoice: gzip-encoded HTML served as
    /// `text/html; charset=utf-8` with `Content-Encoding: gzip` (browsers
    /// opening the presigned link decode it), its content hash as metadata.
    pub async fn put_invoice(&self, key: &str, gzipped_html: Vec<u8>, content_hash: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("text/html; charset=utf-8")
            .content_encoding("gzip")
            .content_disposition("inline")
            .cache_control("private, max-age=86400")
            .metadata("content-sha256", content_hash)
            .body(ByteStream::from(gzipped_html))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutObject", format!("s3://{}/{key}", self.bucket), e))?;
        Ok(())
    }

    /// A presigned GET of an invoice, valid for `expires_in` (at most
    /// [`MAX_LINK_EXPIRY`]; longer is refused). Signing is local, no request is
    /// made. A link signed with temporary credentials (a Lambda role's) stops
    /// working when they expire, whatever `expires_in` says: see
    /// `docs/invoices.md`.
    pub async fn presign_invoice(&self, key: &str, expires_in: std::time::Duration) -> Result<String, StoreError> {
        let resource = format!("s3://{}/{key}", self.bucket);
        let invalid = |message: String| StoreError::Conflict {
            resource: resource.clone(),
            message,
        };
        if expires_in > MAX_LINK_EXPIRY || expires_in.is_zero() {
            return Err(invalid(format!(
                "a link must expire within 1 s to 7 days, not {} s",
                expires_in.as_secs()
            )));
        }
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| invalid(format!("presigning: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| StoreError::aws("PresignGetObject", resource.clone(), e))?;
        Ok(request.uri().to_owned())
    }

    /// An object with its headers; `Ok(None)` if there is no such object.
    pub async fn get_object(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        let resource = format!("s3://{}/{key}", self.bucket);
        let out = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) => {
                if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) {
                    return Ok(None);
                }
                return Err(StoreError::aws("GetObject", resource, e));
            }
        };
        let content_type = out.content_type.clone();
        let content_encoding = out.content_encoding.clone();
        let metadata = out.metadata.clone().unwrap_or_default();
        let bytes = out.body.collect().await.map_err(|e| StoreError::Aws {
            op: "GetObject",
            resource: resource.clone(),
            message: e.to_string(),
            transient: true,
            source: Box::new(e),
        })?;
        Ok(Some(StoredObject {
            body: bytes.into_bytes().to_vec(),
            content_type,
            content_encoding,
            metadata,
        }))
    }

    /// Writes a JSON document.
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let resource = format!("s3://{}/{key}", self.bucket);
        let body = serde_json::to_vec(value).map_err(|e| StoreError::Decode {
            resource: resource.clone(),
            what: "JSON document".into(),
            message: e.to_string(),
        })?;
        self.put_bytes(key, body, "application/json").await
    }

    /// Writes an object with its content type.
    pub async fn put_bytes(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutObject", format!("s3://{}/{key}", self.bucket), e))?;
        Ok(())
    }

    /// Reads a JSON document; `Ok(None)` if there is no such object.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.get_bytes(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Decode {
                resource: format!("s3://{}/{key}", self.bucket),
                what: "JSON document".into(),
                message: e.to_string(),
            })
    }

    /// Shards that have a usage file for `cycle`, ascending.
    pub async fn shards(&self, cycle: Cycle) -> Result<Vec<u32>, StoreError> {
        let prefix = format!("usage/{cycle}/shard-");
        let mut shards = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| StoreError::aws("ListObjectsV2", format!("s3://{}/{prefix}", self.bucket), e))?;
            for obj in page.contents() {
                if let Some(n) = obj
                    .key()
                    .and_then(|k| k.strip_prefix(&prefix))
                    .and_then(|k| k.strip_suffix(".csv"))
                    .and_then(|n| n.parse().ok())
                {
                    shards.push(n);
                }
            }
        }
        shards.sort_unstable();
        Ok(shards)
    }
}
