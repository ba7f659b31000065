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

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use domain::delivery::utc_seconds;
use domain::{Channel, Cycle};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::dynamo::Item;

/// Partition of failures whose cycle is not known (a message that does not parse).
pub const UNKNOWN_CYCLE: &str = "-";

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
    /// The record of a dead letter (stage `dead-letter`), whether a sender
    /// put it there when the delivery died or SQS moved the message after
    /// `received` receives. `body` is kept as what replays it (ids only).
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

pub fn sort_key(subject: &str, stage: FailureStage) -> String {
    format!("{subject}#{}", stage.as_str())
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

    /// Records `f` (an upsert: see the module doc).
    pub async fn record(&self, f: &NewFailure, now: DateTime<Utc>) -> Result<(), StoreError> {
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
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(partition(cycle)))
            .key("sk", s(sort_key(subject, stage)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", &self.table, e))?;
        got.item.map(|i| self.decode(i)).transpose()
    }

    /// One page of the records of `cycle` (`None`: those of unknown cycle).
    pub async fn page(&self, cycle: Option<Cycle>, limit: i32, start: Option<Item>) -> Result<FailurePage, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(partition(cycle)))
            .limit(limit.max(1))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query", &self.table, e))?;
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
        serde_dynamo::from_item(item).map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("failure record {key}"),
            message: e.to_string(),
        })
    }
}
