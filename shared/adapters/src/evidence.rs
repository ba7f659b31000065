//! The evidence log (`EvidenceTable`, key `event_id`): one item per provider
//! event the delivery-events function handled, written once with a
//! conditional put, so that a redelivered event (EventBridge and SQS both
//! deliver at least once; a redelivery repeats the envelope's `id`) is
//! recognised ([`Recorded::Duplicate`]) and counted once.
//!
//! An item holds what the event said and what became of it: the delivery id
//! (or none), the kind and the provider's type, the event's time, the
//! channel, the source, the provider message id, and the [`EvidenceOutcome`].
//! Nothing personal: the parser ([`domain::evidence`]) has already dropped
//! every address and number. Items expire after [`RETENTION_DAYS`] (the
//! table's TTL attribute [`TTL_ATTRIBUTE`]): by then no redelivery can come.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use domain::delivery::utc_seconds;
use domain::evidence::ProviderEvent;

use crate::PutOutcome;
use crate::StoreError;
use crate::dynamo::{Item, get_item, put_new};

/// The table's key.
pub const KEY: &str = "event_id";
/// The table's TTL attribute: epoch seconds.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// Days an event is remembered; EventBridge retries for at most a day and an
/// SQS message lives at most 14.
pub const RETENTION_DAYS: i64 = 30;

/// What became of an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EvidenceOutcome {
    /// It changed its delivery: a lifecycle state, a fallback to SMS.
    Applied,
    /// Its message is not (or no longer) the delivery's last send, or the
    /// delivery's evidence already stands at an equal or later rank.
    Stale,
    /// It names no delivery (no tags), a delivery that does not exist, or a
    /// delivery that was never sent.
    UnknownMessage,
    /// A kind that changes nothing (a send, a delay, a transient bounce, an
    /// SMS still pending): kept for the record.
    RecordedOnly,
}

impl EvidenceOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceOutcome::Applied => "applied",
            EvidenceOutcome::Stale => "stale",
            EvidenceOutcome::UnknownMessage => "unknown-message",
            EvidenceOutcome::RecordedOnly => "recorded-only",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            EvidenceOutcome::Applied,
            EvidenceOutcome::Stale,
            EvidenceOutcome::UnknownMessage,
            EvidenceOutcome::RecordedOnly,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// Whether the record was new.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// An event with this id was recorded before: a redelivery. The stored
    /// record (and its outcome) stands.
    Duplicate,
}

/// One stored record, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceRecord {
    pub event_id: String,
    pub delivery_id: Option<String>,
    /// [`domain::evidence::EvidenceKind::name`].
    pub kind: String,
    /// [`domain::evidence::EvidenceKind::type_text`].
    pub provider_type: String,
    pub at: String,
    pub channel: String,
    pub source: String,
    pub provider_message_id: String,
    pub outcome: Option<EvidenceOutcome>,
}

#[derive(Clone, Debug)]
pub struct EvidenceLog {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl EvidenceLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        EvidenceLog {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The item of `event` with its `outcome`, recorded at `now`.
    pub fn encode(event: &ProviderEvent, outcome: EvidenceOutcome, now: DateTime<Utc>) -> Item {
        let mut item = Item::new();
        item.insert(KEY.into(), s(&event.event_id));
        if let Some(d) = &event.delivery {
            item.insert("delivery_id".into(), s(d.id.canonical()));
            item.insert("round".into(), AttributeValue::N(d.round.to_string()));
        }
        item.insert("kind".into(), s(event.kind.name()));
        item.insert("provider_type".into(), s(event.kind.type_text()));
        item.insert("at".into(), s(utc_seconds::format(&event.at)));
        item.insert("channel".into(), s(event.channel.as_str()));
        item.insert("source".into(), s(event.source.as_str()));
        item.insert("provider_message_id".into(), s(&event.provider_message_id));
        item.insert("outcome".into(), s(outcome.as_str()));
        item.insert("recorded_at".into(), s(utc_seconds::format(&now)));
        let expires = now + chrono::Duration::days(RETENTION_DAYS);
        item.insert(TTL_ATTRIBUTE.into(), AttributeValue::N(expires.timestamp().to_string()));
        item
    }

    /// Records `event` once (`attribute_not_exists(event_id)`).
    pub async fn record(
        &self,
        event: &ProviderEvent,
        outcome: EvidenceOutcome,
        now: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        let item = Self::encode(event, outcome, now);
        Ok(match put_new(&self.client, &self.table, item, KEY).await? {
            PutOutcome::Created => Recorded::New,
            PutOutcome::AlreadyExists => Recorded::Duplicate,
        })
    }

    /// The record of an event (consistent read).
    pub async fn get(&self, event_id: &str) -> Result<Option<EvidenceRecord>, StoreError> {
        let item = get_item(&self.client, &self.table, [(KEY, s(event_id))], true).await?;
        Ok(item.map(|i| {
            let text = |name: &str| crate::dynamo::attr_s(&i, name).unwrap_or_default().to_owned();
            EvidenceRecord {
                event_id: text(KEY),
                delivery_id: crate::dynamo::attr_s(&i, "delivery_id").map(str::to_owned),
                kind: text("kind"),
                provider_type: text("provider_type"),
                at: text("at"),
                channel: text("channel"),
                source: text("source"),
                provider_message_id: text("provider_message_id"),
                outcome: EvidenceOutcome::parse(&text("outcome")),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_holds_ids_kind_time_and_outcome_and_expires() {
        let event = domain::evidence::parse(
            &serde_json::json!({
                "id": "e-1", "source": "billing.mock-provider", "detail-type": "Email Bounced",
                "time": "2026-12-15T01:00:05Z",
                "detail": {"eventType": "Bounce", "mail": {"messageId": "mock-1", "destination": ["kim@example.com"],
                    "tags": {"cycle": ["2026-11"], "shard": ["00001"], "customer": ["C0000208"]}},
                    "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                        "bouncedRecipients": [{"emailAddress": "kim@example.com"}]}},
            })
            .to_string(),
        )
        .unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let item = EvidenceLog::encode(&event, EvidenceOutcome::Applied, now);
        let text = |n: &str| crate::dynamo::attr_s(&item, n).unwrap_or_default();
        assert_eq!(text("delivery_id"), "2026-11#00001#C0000208");
        assert_eq!(
            (text("kind"), text("provider_type")),
            ("bounce", "Bounce/Permanent/General")
        );
        assert_eq!(
            (text("outcome"), text("channel"), text("source")),
            ("applied", "email", "mock")
        );
        assert_eq!(
            item.get(TTL_ATTRIBUTE).and_then(|v| v.as_n().ok()).map(String::as_str),
            Some("1802592000")
        );
        assert!(!format!("{item:?}").contains('@'));
    }
}
