//! The suppression list: contacts that must not be emailed, one item per keyed hash in
//! `SuppressionTable` (`SUPPRESSION_TABLE`, key `contact_hash` S).
//!
//! * **No contact in clear.** An entry is named by the keyed look-up hash of the email
//!   address (`domain::pii::Keyring::lookup_hash`, `{key id}:{32 hex}`), never the address:
//!   without the keyring nobody can tell whose it is, nor test a guessed address against it.
//!   Its other attributes are ids (the delivery, the provider's event or the operator's
//!   command) and a reason code.
//! * **Who adds.** A permanent bounce or a complaint from the provider's evidence
//!   ([`SuppressionReason::Bounce`], [`SuppressionReason::Complaint`]), or an operator
//!   through the admin API ([`SuppressionReason::Operator`]). Adding is a conditional put:
//!   the first entry for a hash stays (its reason and source are the first evidence), a
//!   second report of the same address changes nothing.
//! * **Who reads.** The email sender, for the one contact it opens ([`SuppressionStore::find`],
//!   every hash of the address across key rotation); dispatch, for a page of deliveries at
//!   once by their `email_hash` ([`SuppressionStore::suppressed`], `BatchGetItem`).
//! * **Who removes.** An operator (admin API, audited), when the address works again.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, Put};
use chrono::{DateTime, Utc};
use domain::delivery::utc_seconds;
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};

use crate::dynamo::{Item, attr_s, conditional, decode_item, put_new};
use crate::retry::Backoff;
use crate::{PutOutcome, StoreError};

/// The table's key attribute.
pub const KEY: &str = "contact_hash";
/// DynamoDB takes at most 100 keys in one `BatchGetItem`.
pub const BATCH_GET_LIMIT: usize = 100;
/// `BatchGetItem` requests [`SuppressionStore::suppressed`] has in flight.
const BATCH_GETS_IN_FLIGHT: usize = 4;
/// Bytes a note may take (an operator's reason, a provider's diagnostic code).
pub const MAX_NOTE_BYTES: usize = 512;
/// Bytes a source (an event or command id) or a delivery id may take.
pub const MAX_ID_BYTES: usize = domain::text::MAX_ID_BYTES;
/// The longest key id a hash may name.
const MAX_KEY_ID: usize = 64;

/// Why a contact is suppressed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuppressionReason {
    /// The provider reported a permanent bounce: the address does not take mail.
    Bounce,
    /// The recipient marked a message as spam.
    Complaint,
    /// An operator added it (the customer asked, a known-bad address).
    Operator,
}

impl SuppressionReason {
    pub const ALL: [SuppressionReason; 3] = [
        SuppressionReason::Bounce,
        SuppressionReason::Complaint,
        SuppressionReason::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Bounce => "bounce",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for SuppressionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry: a hash, why, since when, and what put it there. Nothing personal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// The keyed look-up hash of the email address (see [`is_contact_hash`]).
    pub contact_hash: String,
    pub reason: SuppressionReason,
    #[serde(with = "utc_seconds")]
    pub created_at: DateTime<Utc>,
    /// The provider event's id, or the operator's command id.
    pub source: String,
    /// The delivery whose send brought the evidence, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// A short note: the provider's event type, an operator's reason. Never contact data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The operator's verified IAM ARN, for an operator's entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Suppression {
    /// This entry as it is written: ids and the note cut to their limits
    /// ([`MAX_ID_BYTES`], [`MAX_NOTE_BYTES`]) on a character boundary.
    pub fn bounded(&self) -> Suppression {
        let cut = |s: &str, max| domain::text::bounded(s, max).into_owned();
        Suppression {
            contact_hash: self.contact_hash.clone(),
            reason: self.reason,
            created_at: self.created_at,
            source: cut(&self.source, MAX_ID_BYTES),
            delivery_id: self.delivery_id.as_deref().map(|d| cut(d, MAX_ID_BYTES)),
            note: self.note.as_deref().map(|n| cut(n, MAX_NOTE_BYTES)),
            by: self.by.as_deref().map(|b| cut(b, MAX_ID_BYTES)),
        }
    }
}

/// Whether `s` has the form of a keyed look-up hash: a key id (1 to 64 of letters, digits,
/// `-`, `_`), `:`, and 32 lower-case hex digits. What an entry's key must be, so that nothing
/// else (an address typed by mistake) is ever stored as one.
pub fn is_contact_hash(s: &str) -> bool {
    let Some((id, hex)) = s.split_once(':') else {
        return false;
    };
    !id.is_empty()
        && id.len() <= MAX_KEY_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && hex.len() == 32
        && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// The suppression list in DynamoDB.
#[derive(Clone, Debug)]
pub struct SuppressionStore {
    client: Client,
    table: String,
    backoff: Backoff,
}

impl SuppressionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        SuppressionStore {
            client,
            table: table.into(),
            backoff: Backoff {
                base: Duration::from_millis(50),
                cap: Duration::from_secs(1),
                max_attempts: 6,
            },
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn conflict(&self, message: &str) -> StoreError {
        StoreError::Conflict {
            resource: self.table.clone(),
            message: message.to_owned(),
        }
    }

    /// The item of an entry ([bounded](Suppression::bounded)); refused when its key is not a
    /// look-up hash.
    pub fn encode(&self, entry: &Suppression) -> Result<Item, StoreError> {
        if !is_contact_hash(&entry.contact_hash) {
            return Err(self.conflict("an entry's key must be a keyed look-up hash ({key id}:{32 hex digits})"));
        }
        serde_dynamo::to_item(entry.bounded()).map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("suppression {}", entry.contact_hash),
            message: e.to_string(),
        })
    }

    fn decode(&self, item: Item) -> Result<Suppression, StoreError> {
        let key = attr_s(&item, KEY).unwrap_or("?").to_owned();
        decode_item(item).map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("suppression {key}"),
            message: e.to_string(),
        })
    }

    /// Adds an entry unless its hash is listed already: `false` (nothing changed) when it is.
    pub async fn add(&self, entry: &Suppression) -> Result<bool, StoreError> {
        let created = put_new(&self.client, &self.table, self.encode(entry)?, KEY).await?;
        Ok(created == PutOutcome::Created)
    }

    /// [`Self::add`] as a write for a transaction (the admin API writes it with the
    /// command's audit record): refused (`ConditionalCheckFailed`) when the hash is listed.
    pub fn add_write(&self, entry: &Suppression) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.encode(entry)?))
            .condition_expression(format!("attribute_not_exists({KEY})"))
            .build()
            .map_err(|e| StoreError::Decode {
                resource: self.table.clone(),
                what: "suppression put".into(),
                message: e.to_string(),
            })
    }

    /// [`Self::remove`] as a write for a transaction: refused (`ConditionalCheckFailed`) when
    /// the hash is not listed.
    pub fn remove_write(&self, hash: &str) -> Result<Delete, StoreError> {
        Delete::builder()
            .table_name(&self.table)
            .key(KEY, s(hash))
            .condition_expression(format!("attribute_exists({KEY})"))
            .build()
            .map_err(|e| StoreError::Decode {
                resource: self.table.clone(),
                what: "suppression delete".into(),
                message: e.to_string(),
            })
    }

    /// One entry by its hash (an eventually consistent read unless `consistent`).
    pub async fn get(&self, hash: &str, consistent: bool) -> Result<Option<Suppression>, StoreError> {
        let got = crate::dynamo::get_item(&self.client, &self.table, [(KEY, s(hash))], consistent).await?;
        got.map(|i| self.decode(i)).transpose()
    }

    /// The entry of any of `hashes` (one contact's hashes under every key of the keyring,
    /// `Keyring::lookup_hashes`, the active one first), the first found. One `GetItem` per
    /// hash until one is found: a keyring holds one key, two while a rotation is under way.
    pub async fn find(&self, hashes: &[String]) -> Result<Option<Suppression>, StoreError> {
        for hash in hashes {
            if let Some(found) = self.get(hash, false).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Which of `hashes` are listed: `BatchGetItem` over the distinct ones, at most
    /// [`BATCH_GET_LIMIT`] keys a call and a few calls in flight, projecting the key only.
    /// Unprocessed keys are asked again with backoff; keys still unprocessed after the last
    /// attempt fail the call ([`StoreError::Unprocessed`]), never read as "not listed".
    pub async fn suppressed(&self, hashes: &[String]) -> Result<HashSet<String>, StoreError> {
        let mut distinct: Vec<&str> = hashes.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let chunks: Vec<Vec<&str>> = distinct.chunks(BATCH_GET_LIMIT).map(<[&str]>::to_vec).collect();
        stream::iter(chunks)
            .map(|chunk| self.get_chunk(chunk))
            .buffer_unordered(BATCH_GETS_IN_FLIGHT)
            .try_fold(HashSet::new(), |mut acc, found| async move {
                acc.extend(found);
                Ok(acc)
            })
            .await
    }

    async fn get_chunk(&self, chunk: Vec<&str>) -> Result<Vec<String>, StoreError> {
        let keys: Vec<Item> = chunk.iter().map(|h| Item::from([(KEY.to_owned(), s(*h))])).collect();
        let mut pending = Some(self.keys_and_attributes(keys)?);
        let mut found = Vec::new();
        let mut attempt = 0;
        while let Some(request) = pending.take() {
            attempt += 1;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request.clone())
                .send()
                .await
                .map_err(|e| StoreError::aws("BatchGetItem", &self.table, e));
            let left = match out {
                Ok(out) => {
                    let items = out
                        .responses
                        .and_then(|mut r| r.remove(&self.table))
                        .unwrap_or_default();
                    found.extend(items.iter().filter_map(|i| attr_s(i, KEY)).map(str::to_owned));
                    out.unprocessed_keys
                        .and_then(|mut u| u.remove(&self.table))
                        .filter(|k| !k.keys().is_empty())
                }
                Err(e) if e.is_transient() && attempt < self.backoff.max_attempts => Some(request),
                Err(e) => return Err(e),
            };
            let Some(left) = left else { break };
            if attempt >= self.backoff.max_attempts {
                return Err(StoreError::Unprocessed {
                    op: "BatchGetItem",
                    resource: self.table.clone(),
                    unprocessed: left.keys().len(),
                    attempts: attempt,
                });
            }
            tracing::debug!(table = %self.table, attempt, unprocessed = left.keys().len(), "asking again for unprocessed keys");
            tokio::time::sleep(self.backoff.delay(attempt)).await;
            pending = Some(left);
        }
        Ok(found)
    }

    fn keys_and_attributes(&self, keys: Vec<Item>) -> Result<KeysAndAttributes, StoreError> {
        KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .projection_expression("#k")
            .expression_attribute_names("#k", KEY)
            .build()
            .map_err(|e| StoreError::Decode {
                resource: self.table.clone(),
                what: "batch get request".into(),
                message: e.to_string(),
            })
    }

    /// One page of the list (a `Scan` of at most `limit` items, in no particular order),
    /// from `start` (the hash the previous page ended at) and the hash the next page starts
    /// after (`None` after the last). An entry that does not decode is left out with a
    /// warning naming its hash.
    pub async fn list(
        &self,
        limit: i32,
        start: Option<String>,
    ) -> Result<(Vec<Suppression>, Option<String>), StoreError> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(limit.max(1))
            .set_exclusive_start_key(start.map(|h| Item::from([(KEY.to_owned(), s(h))])))
            .send()
            .await
            .map_err(|e| StoreError::aws("Scan", &self.table, e))?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .and_then(|k| attr_s(k, KEY))
            .map(str::to_owned);
        let mut entries = Vec::new();
        for item in out.items.unwrap_or_default() {
            match self.decode(item) {
                Ok(e) => entries.push(e),
                Err(e) => tracing::warn!(error = %e, "a suppression entry does not decode; left out of the list"),
            }
        }
        Ok((entries, next))
    }

    /// Removes the entry of `hash`: `false` when there was none.
    pub async fn remove(&self, hash: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(KEY, s(hash))
            .condition_expression(format!("attribute_exists({KEY})"))
            .send()
            .await;
        Ok(conditional("DeleteItem", &self.table, out)?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::pii::{Field, Keyring};

    #[test]
    fn a_keyrings_hash_has_the_form_and_nothing_else_does() {
        let h = Keyring::dev().lookup_hash(Field::Email, "kim@example.com");
        assert!(is_contact_hash(&h), "{h}");
        for bad in [
            "",
            "kim@example.com",
            "dev:",
            ":0123456789abcdef0123456789abcdef",
            "dev:0123456789ABCDEF0123456789abcdef",
            "dev:0123456789abcdef0123456789abcde",
            "d v:0123456789abcdef0123456789abcdef",
            "a:b:0123456789abcdef0123456789abcdef",
        ] {
            assert!(!is_contact_hash(bad), "{bad}");
        }
    }

    #[test]
    fn reasons_read_back_from_their_names() {
        for r in SuppressionReason::ALL {
            assert_eq!(SuppressionReason::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(SuppressionReason::parse("spam"), None);
    }

    #[test]
    fn an_entry_is_written_bounded() {
        let e = Suppression {
            contact_hash: "dev:0123456789abcdef0123456789abcdef".into(),
            reason: SuppressionReason::Operator,
            created_at: DateTime::UNIX_EPOCH,
            source: "s".repeat(5_000),
            delivery_id: None,
            note: Some("한".repeat(1_000)),
            by: None,
        }
        .bounded();
        assert!(e.source.len() <= MAX_ID_BYTES && e.note.as_ref().unwrap().len() <= MAX_NOTE_BYTES);
    }
}
