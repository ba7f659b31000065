//! The failure log: one record per (delivery, stage) that needs an
//! operator, key (`pk` S = the cycle, or `-` when the cycle is unknown;
//! `sk` S = `{subject}#{stage}`).
//!
//! * **Idempotent**: recording the same failure again updates `last_at`,
//!   the reason and the latest details, and counts `occurrences`; `first_at`
//!   keeps the first time. A replayed batch or a second run never creates a
//!   second record.
//! * **No personal data**: subjects are delivery ids (cycle, shard and
//!   customer id), reasons are written by this code from ids, codes and
//!   attribute names; contact data never reaches a failure record.
//! * **Paged by cycle**: an operator (or the admin API) lists one cycle's
//!   records in key order, a page at a time.
//! * **Bounded**: every text is cut to its limit ([`MAX_SUBJECT_BYTES`],
//!   [`MAX_CODE_BYTES`], [`MAX_REASON_BYTES`], [`MAX_RUN_ID_BYTES`],
//!   [`MAX_REPLAY_BYTES`]) before it is written, so that a record stays
//!   under 18 KB (DynamoDB takes 400 KB) whatever it is given: a provider's
//!   error of a quarter of a megabyte is recorded, cut. [`NewFailure::bounded`]
//!   is what is written; log that, not the texts as given.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use std::borrow::Cow;

use chrono::{DateTime, Utc};
use domain::delivery::utc_seconds;
use domain::text::{self, bounded};
use domain::{Channel, Cycle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::StoreError;
use crate::dynamo::{Item, get_item};

/// Partition of failures whose cycle is not known (a message that does not parse).
pub const UNKNOWN_CYCLE: &str = "-";

/// Bytes (UTF-8) a record's subject may take; it is also in the sort key
/// (at most 1 KB). A longer one is cut, and ends with a digest of the whole
/// so that two long subjects sharing a beginning stay two records.
pub const MAX_SUBJECT_BYTES: usize = text::MAX_ID_BYTES;
/// Bytes a code may take (codes are short names: `provider-rejected`).
pub const MAX_CODE_BYTES: usize = 64;
/// Bytes a reason may take.
pub const MAX_REASON_BYTES: usize = text::MAX_REASON_BYTES;
/// Bytes a run id may take (an execution ARN is at most about 230).
pub const MAX_RUN_ID_BYTES: usize = text::MAX_ID_BYTES;
/// Bytes a replay body may take (ours are ids only, under 300). A longer
/// one is not kept at all, since a body cut short replays nothing: the
/// reason says so, with its size.
pub const MAX_REPLAY_BYTES: usize = 16 * 1024;

/// Hex digits of the digest that ends a cut subject.
const SUBJECT_DIGEST_HEX: usize = 16;

/// `subject` as records and keys hold it: itself if it fits in
/// [`MAX_SUBJECT_BYTES`], else its beginning cut with an ellipsis, `~` and
/// the first [`SUBJECT_DIGEST_HEX`] hex digits of its SHA-256.
pub fn bounded_subject(subject: &str) -> Cow<'_, str> {
    if subject.len() <= MAX_SUBJECT_BYTES {
        return Cow::Borrowed(subject);
    }
    let digest = hex::encode(Sha256::digest(subject.as_bytes()));
    let head = bounded(subject, MAX_SUBJECT_BYTES - 1 - SUBJECT_DIGEST_HEX);
    Cow::Owned(format!("{head}~{}", &digest[..SUBJECT_DIGEST_HEX]))
}

/// Where in the pipeline the failure happened.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureStage {
    /// The dispatch run could not read the delivery's index entry.
    Dispatch,
    /// The email sender gave up on it.
    Email,
    /// The SMS sender gave up on it.
    Sms,
    /// It reached a dead-letter queue.
    DeadLetter,
}

impl FailureStage {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureStage::Dispatch => "dispatch",
            FailureStage::Email => "email",
            FailureStage::Sms => "sms",
            FailureStage::DeadLetter => "dead-letter",
        }
    }
}

/// What is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFailure {
    pub cycle: Option<Cycle>,
    /// The delivery id, or another id naming what failed (a message id).
    pub subject: String,
    pub stage: FailureStage,
    /// Machine-readable, stable: `corrupt-entry`, `provider-rejected`, …
    pub code: String,
    /// For people; never personal data.
    pub reason: String,
    pub channel: Option<Channel>,
    pub attempts: u32,
    pub run_id: Option<String>,
    /// What it takes to replay it (a queue message body), if anything.
    pub replay: Option<String>,
}

impl NewFailure {
    /// This failure as [`FailureLog::record`] writes it: every text within
    /// its limit (see the module doc), cut on a character boundary with
    /// [`text::ELLIPSIS`]; a replay body over [`MAX_REPLAY_BYTES`] dropped,
    /// and the reason saying so. Unchanged if everything fits.
    pub fn bounded(&self) -> NewFailure {
        let (reason, replay) = match &self.replay {
            Some(body) if body.len() > MAX_REPLAY_BYTES => {
                let note = format!(
                    " [its {}-byte body, over {MAX_REPLAY_BYTES}, is not kept to replay]",
                    body.len()
                );
                let room = MAX_REASON_BYTES - note.len();
                (format!("{}{note}", bounded(&self.reason, room)), None)
            }
            other => (bounded(&self.reason, MAX_REASON_BYTES).into_owned(), other.clone()),
        };
        NewFailure {
            cycle: self.cycle,
            subject: bounded_subject(&self.subject).into_owned(),
            stage: self.stage,
            code: bounded(&self.code, MAX_CODE_BYTES).into_owned(),
            reason,
            channel: self.channel,
            attempts: self.attempts,
            run_id: self
                .run_id
                .as_deref()
                .map(|r| bounded(r, MAX_RUN_ID_BYTES).into_owned()),
            replay,
        }
    }

    /// The record of a dead letter (stage `dead-letter`), whether a sender
    /// put it there when the delivery died or SQS moved the message after
    /// `received` receives. `body` is kept as what replays it (ids only).
    /// Bounded ([`NewFailure::bounded`]): the last error comes from a provider.
    pub fn dead_letter(letter: &domain::delivery::DeadLetter, body: &str, received: Option<&str>) -> Self {
        let cycle = domain::delivery::parse_delivery_id(&letter.delivery_id)
            .ok()
            .map(|(c, ..)| c);
        let channel = letter.channel.as_str();
        let last = letter
            .last_error
            .as_deref()
            .map(|e| format!("; last error {e}"))
            .unwrap_or_default();
        let reason = match (&letter.dead_at, letter.attempts) {
            (Some(at), Some(n)) => format!("the {channel} sender gave up at {at} after {n} attempts{last}"),
            (Some(at), None) => format!("the {channel} sender gave up at {at}{last}"),
            (None, _) => format!(
                "the {channel} message reached the dead-letter queue after {} receives{last}",
                received.unwrap_or("?")
            ),
        };
        NewFailure {
            cycle,
            subject: letter.delivery_id.clone(),
            stage: FailureStage::DeadLetter,
            code: letter.last_error.clone().unwrap_or_else(|| "dead-lettered".into()),
            reason,
            channel: Some(letter.channel),
            attempts: letter.attempts.unwrap_or(0),
            run_id: letter.run_id.clone(),
            replay: Some(body.to_owned()),
        }
        .bounded()
    }
}

/// A stored record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    pub pk: String,
    pub sk: String,
    pub subject: String,
    pub stage: FailureStage,
    pub code: String,
    pub reason: String,
    #[serde(default)]
    pub channel: Option<Channel>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub replay: Option<String>,
    pub first_at: String,
    pub last_at: String,
    pub occurrences: u64,
}

/// Which records a page keeps ([`FailureLog::page_matching`]): every given field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailureFilter {
    pub code: Option<String>,
    pub channel: Option<Channel>,
    pub stage: Option<FailureStage>,
}

/// One page of a cycle's records.
#[derive(Clone, Debug, Default)]
pub struct FailurePage {
    pub records: Vec<FailureRecord>,
    /// Records that do not decode, by key, with the reason.
    pub bad: Vec<(String, String)>,
    pub next: Option<Item>,
}

#[derive(Clone, Debug)]
pub struct FailureLog {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn partition(cycle: Option<Cycle>) -> String {
    cycle.map_or_else(|| UNKNOWN_CYCLE.to_owned(), |c| c.to_string())
}

/// The sort key of `subject`'s record of `stage` (the subject bounded as
/// the record holds it, so that a long subject finds its record).
pub fn sort_key(subject: &str, stage: FailureStage) -> String {
    format!("{}#{}", bounded_subject(subject), stage.as_str())
}

impl FailureLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        FailureLog {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Records `f`, [bounded](NewFailure::bounded) (an upsert: see the
    /// module doc).
    pub async fn record(&self, f: &NewFailure, now: DateTime<Utc>) -> Result<(), StoreError> {
        let f = &f.bounded();
        let mut set = vec![
            "subject = :subject",
            "stage = :stage",
            "code = :code",
            "reason = :reason",
            "attempts = :attempts",
            "last_at = :now",
            "first_at = if_not_exists(first_at, :now)",
        ];
        let mut remove = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(partition(f.cycle)))
            .key("sk", s(sort_key(&f.subject, f.stage)))
            .expression_attribute_values(":subject", s(&f.subject))
            .expression_attribute_values(":stage", s(f.stage.as_str()))
            .expression_attribute_values(":code", s(&f.code))
            .expression_attribute_values(":reason", s(&f.reason))
            .expression_attribute_values(":attempts", AttributeValue::N(f.attempts.to_string()))
            .expression_attribute_values(":now", s(utc_seconds::format(&now)))
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        for (name, clause, placeholder, value) in [
            (
                "channel",
                "channel = :channel",
                ":channel",
                f.channel.map(|c| c.as_str().to_owned()),
            ),
            ("run_id", "run_id = :run", ":run", f.run_id.clone()),
            ("replay", "replay = :replay", ":replay", f.replay.clone()),
        ] {
            match value {
                Some(v) => {
                    set.push(clause);
                    req = req.expression_attribute_values(placeholder, s(v));
                }
                None => remove.push(name),
            }
        }
        let mut expr = format!("SET {} ADD occurrences :one", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        req.update_expression(expr)
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", &self.table, e))?;
        Ok(())
    }

    pub async fn get(
        &self,
        cycle: Option<Cycle>,
        subject: &str,
        stage: FailureStage,
    ) -> Result<Option<FailureRecord>, StoreError> {
        let key = [("pk", s(partition(cycle))), ("sk", s(sort_key(subject, stage)))];
        let got = get_item(&self.client, &self.table, key, true).await?;
        got.map(|i| self.decode(i)).transpose()
    }

    /// One page of the records of `cycle` (`None`: those of unknown cycle).
    pub async fn page(&self, cycle: Option<Cycle>, limit: i32, start: Option<Item>) -> Result<FailurePage, StoreError> {
        self.page_matching(cycle, &FailureFilter::default(), limit, start).await
    }

    /// One page of the records of `cycle` that match `filter`: the page's `limit` records
    /// are read, then the filter keeps those that match (a `FilterExpression`), so a page
    /// may hold fewer than `limit`, none at all, and still have a `next`.
    pub async fn page_matching(
        &self,
        cycle: Option<Cycle>,
        filter: &FailureFilter,
        limit: i32,
        start: Option<Item>,
    ) -> Result<FailurePage, StoreError> {
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(partition(cycle)))
            .limit(limit.max(1))
            .set_exclusive_start_key(start);
        let mut clauses = Vec::new();
        for (attribute, value) in [
            ("code", filter.code.clone()),
            ("channel", filter.channel.map(|c| c.as_str().to_owned())),
            ("stage", filter.stage.map(|st| st.as_str().to_owned())),
        ] {
            if let Some(v) = value {
                clauses.push(format!("#f_{attribute} = :f_{attribute}"));
                req = req
                    .expression_attribute_names(format!("#f_{attribute}"), attribute)
                    .expression_attribute_values(format!(":f_{attribute}"), s(v));
            }
        }
        if !clauses.is_empty() {
            req = req.filter_expression(clauses.join(" AND "));
        }
        let out = req.send().await.map_err(|e| StoreError::aws("Query", &self.table, e))?;
        let mut page = FailurePage {
            next: out.last_evaluated_key.filter(|k| !k.is_empty()),
            ..FailurePage::default()
        };
        for item in out.items.unwrap_or_default() {
            let key = crate::dynamo::attr_s(&item, "sk").unwrap_or("?").to_owned();
            match self.decode(item) {
                Ok(r) => page.records.push(r),
                Err(e) => page.bad.push((key, e.to_string())),
            }
        }
        Ok(page)
    }

    fn decode(&self, item: Item) -> Result<FailureRecord, StoreError> {
        let key = crate::dynamo::attr_s(&item, "sk").unwrap_or("?").to_owned();
        crate::dynamo::decode_item(item).map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("failure record {key}"),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> NewFailure {
        NewFailure {
            cycle: Some("2026-11".parse().unwrap()),
            subject: "2026-11#00003#C0000042".into(),
            stage: FailureStage::Email,
            code: "provider-rejected".into(),
            reason: "the provider refused the address".into(),
            channel: Some(Channel::Email),
            attempts: 2,
            run_id: Some("dispatch-2026-12-15T01:00:00Z".into()),
            replay: Some(r#"{"delivery_id":"2026-11#00003#C0000042","channel":"email"}"#.into()),
        }
    }

    #[test]
    fn a_failure_within_the_limits_is_written_as_given() {
        assert_eq!(failure().bounded(), failure());
    }

    #[test]
    fn every_text_is_cut_to_its_limit_on_a_character_boundary() {
        // 한 is 3 bytes: no limit is a multiple of 3 plus the ellipsis' 3.
        let long = "한".repeat(100_000);
        let f = NewFailure {
            subject: long.clone(),
            code: long.clone(),
            reason: long.clone(),
            run_id: Some(long.clone()),
            replay: Some("x".repeat(MAX_REPLAY_BYTES)),
            ..failure()
        }
        .bounded();
        for (field, value, max) in [
            ("subject", &f.subject, MAX_SUBJECT_BYTES),
            ("code", &f.code, MAX_CODE_BYTES),
            ("reason", &f.reason, MAX_REASON_BYTES),
            ("run_id", f.run_id.as_ref().unwrap(), MAX_RUN_ID_BYTES),
        ] {
            // As much as fits: short of the limit by less than a character and a marker.
            assert!(
                value.len() <= max && value.len() > max - 6,
                "{field}: {} bytes",
                value.len()
            );
            assert!(value.starts_with("한한"), "{field}");
            assert!(value.contains(text::ELLIPSIS), "{field}: marked as cut");
        }
        assert_eq!(
            f.replay.as_ref().map(String::len),
            Some(MAX_REPLAY_BYTES),
            "at the limit: kept"
        );
        assert_eq!(f.bounded(), f, "bounding twice changes nothing");
    }

    #[test]
    fn a_replay_body_over_its_limit_is_dropped_and_the_reason_says_so() {
        let f = NewFailure {
            reason: "r".repeat(5_000),
            replay: Some("x".repeat(250_000)),
            ..failure()
        }
        .bounded();
        assert_eq!(f.replay, None);
        assert!(f.reason.len() <= MAX_REASON_BYTES, "{}", f.reason.len());
        assert!(f.reason.starts_with("rrr"));
        assert!(
            f.reason
                .ends_with("[its 250000-byte body, over 16384, is not kept to replay]"),
            "{}",
            f.reason
        );
    }

    #[test]
    fn long_subjects_sharing_a_beginning_keep_apart_and_find_their_record() {
        let a = format!("{}a", "s".repeat(1_000));
        let b = format!("{}b", "s".repeat(1_000));
        let (ka, kb) = (bounded_subject(&a), bounded_subject(&b));
        assert_ne!(ka, kb);
        assert_eq!(ka.len(), MAX_SUBJECT_BYTES);
        assert_eq!(bounded_subject(&ka), ka, "a bounded subject is its own bound");
        assert_eq!(
            sort_key(&a, FailureStage::Email),
            format!("{ka}#email"),
            "the key of the subject as given is the record's"
        );
        let short = "2026-11#00003#C0000042";
        assert_eq!(bounded_subject(short), short);
        let exact = "e".repeat(MAX_SUBJECT_BYTES);
        assert_eq!(bounded_subject(&exact), exact);
    }
}
