//! The data bucket: usage files from the mediation system, one per shard and
//! cycle (`usage/{cycle}/shard-{nnnnn}.csv`, format in `billing::usage`), the
//! shard directory written by the customer sync (`customers/shards.json`),
//! settlement manifests (`manifests/{cycle}/shards.json`) and rendered
//! invoices, gzip-encoded HTML: a render's invoices of one shard in one pack
//! (`invoices/{cycle}/{shard:05}/packs/{name}.html`, see [`pack_key`]), a
//! correction's in an object of its own
//! (`invoices/{cycle}/{shard:05}/{customer}/{name}.html`, see [`invoice_key`]).

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

/// The object key of a shard's invoice pack named `name` (`{template version}-{16 hex digits of
/// its SHA-256}`): one object per render of a shard, holding each invoice as a gzip member of
/// its own, found by the byte range its delivery states. The name is a function of the bytes,
/// so a pack is never overwritten with other content: a delivery's range stays valid for as
/// long as the object is kept.
pub fn pack_key(cycle: Cycle, shard: u32, name: &str) -> String {
    format!("invoices/{cycle}/{shard:05}/packs/{name}.html")
}

/// The SHA-256 of `bytes`, hex: a pack's `content-sha256`, and its name's suffix.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The name of a pack of `template_version` whose bytes have the SHA-256 `sha256_hex`: the
/// version and the first 16 hex digits (64 bits: two different packs of one shard never share
/// a name in practice).
pub fn pack_name(template_version: &str, sha256_hex: &str) -> String {
    format!("{template_version}-{}", &sha256_hex[..sha256_hex.len().min(16)])
}

/// The last part of an invoice's object key, as a link names it: the pack's name for a key of
/// [`pack_key`]'s form, the object's name for one of [`invoice_key`]'s. `None` for a key of
/// another cycle, shard or customer, or of neither form.
pub fn invoice_object_name<'a>(cycle: Cycle, shard: u32, customer: &str, key: &'a str) -> Option<&'a str> {
    let dir = format!("invoices/{cycle}/{shard:05}/");
    let rest = key.strip_prefix(&dir)?.strip_suffix(".html")?;
    let name = match rest.strip_prefix("packs/") {
        Some(name) => name,
        None => rest.strip_prefix(customer)?.strip_prefix('/')?,
    };
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// The key of the object a link names: the pack when it carries a range, else the invoice's own.
pub fn linked_invoice_key(link: &domain::link::InvoiceLink) -> String {
    match link.range {
        Some(_) => pack_key(link.cycle, link.shard, &link.template_version),
        None => invoice_key(link.cycle, link.shard, link.customer.as_str(), &link.template_version),
    }
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
    ///
    /// For a member of a pack (`range`), the `Range` header is one of the signed headers: the
    /// link reads that member and nothing else of the pack (S3 refuses the signature of a
    /// request without the header or with another range), and the caller must send
    /// [`ByteRange::http_header`](domain::range::ByteRange::http_header) with it.
    pub async fn presign_invoice(
        &self,
        key: &str,
        range: Option<domain::range::ByteRange>,
        expires_in: std::time::Duration,
    ) -> Result<String, StoreError> {
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
            .set_range(range.map(|r| r.http_header()))
            .presigned(config)
            .await
            .map_err(|e| StoreError::aws("PresignGetObject", resource.clone(), e))?;
        Ok(request.uri().to_owned())
    }

    /// An object with its headers; `Ok(None)` if there is no such object.
    pub async fn get_object(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        self.get_range(key, None).await
    }

    /// A rendered invoice, gzip-encoded: its member of a pack (one ranged `GET`) or its own
    /// object. `Ok(None)` if the object is not there; a pack shorter than the range is an error
    /// (`Decode`), never another invoice's bytes.
    pub async fn get_invoice(&self, content: &domain::DeliveryContent) -> Result<Option<StoredObject>, StoreError> {
        match content.email_range {
            Some(range) => self.get_member(&content.email_key, range).await,
            None => self.get_range(&content.email_key, None).await,
        }
    }

    /// The member `range` of the pack `key` (one ranged `GET`): exactly its bytes, or `Decode`
    /// when the pack is shorter (never another member's bytes); `Ok(None)` if there is no such
    /// pack.
    pub async fn get_member(
        &self,
        key: &str,
        range: domain::range::ByteRange,
    ) -> Result<Option<StoredObject>, StoreError> {
        let object = self.get_range(key, Some(range)).await?;
        if let Some(o) = &object
            && o.body.len() as u64 != range.len()
        {
            return Err(StoreError::Decode {
                resource: format!("s3://{}/{key}", self.bucket),
                what: "invoice pack".into(),
                message: format!("range {range} gave {} bytes", o.body.len()),
            });
        }
        Ok(object)
    }

    /// An object, or the bytes `range` of it, with its headers; `Ok(None)` if there is no such
    /// object.
    pub async fn get_range(
        &self,
        key: &str,
        range: Option<domain::range::ByteRange>,
    ) -> Result<Option<StoredObject>, StoreError> {
        let resource = format!("s3://{}/{key}", self.bucket);
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range.map(|r| r.http_header()));
        let out = match request.send().await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_names_the_last_part_of_either_kind_of_invoice_key_and_finds_it_again() {
        let cycle: Cycle = "2026-11".parse().unwrap();
        let pack = pack_key(cycle, 7, &pack_name("v1", &sha256_hex(b"members")));
        assert!(pack.starts_with("invoices/2026-11/00007/packs/v1-") && pack.ends_with(".html"));
        assert_eq!(pack_name("v1", &sha256_hex(b"members")).len(), "v1-".len() + 16);
        let name = invoice_object_name(cycle, 7, "C0000042", &pack).unwrap();
        let own = invoice_key(cycle, 7, "C0000042", "v1-c0001-h");
        assert_eq!(invoice_object_name(cycle, 7, "C0000042", &own), Some("v1-c0001-h"));
        let link = |name: &str, range| domain::link::InvoiceLink {
            cycle,
            shard: 7,
            customer: domain::CustomerId::new("C0000042").unwrap(),
            template_version: name.to_owned(),
            range,
            expires_at: 0,
        };
        let range = domain::range::ByteRange::new(10, 20).ok();
        assert_eq!(linked_invoice_key(&link(name, range)), pack);
        assert_eq!(linked_invoice_key(&link("v1-c0001-h", None)), own);
        // Another shard's, another customer's, or no invoice key at all: no name.
        for other in [
            invoice_key(cycle, 8, "C0000042", "v1"),
            invoice_key(cycle, 7, "C0000043", "v1"),
            pack_key(cycle, 8, "v1-0123456789abcdef"),
            "invoices/2026-11/00007/packs/a/b.html".to_owned(),
            "usage/2026-11/shard-00007.csv".to_owned(),
        ] {
            assert_eq!(invoice_object_name(cycle, 7, "C0000042", &other), None, "{other}");
        }
    }
}
