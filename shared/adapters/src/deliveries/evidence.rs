//! What the providers' evidence does to a sent delivery: each step one
//! conditional [`Change`] named by the event (`evidence/{event id}`), so a
//! redelivered event that finds its own write is recognised as applied.
//!
//! * **Lifecycle** ([`DeliveryStore::record_evidence`]): `DELIVERED`,
//!   `BOUNCED` or `COMPLAINED` (the flat `evidence*` attributes, see
//!   [`domain::delivery::Evidence`], plus `evidence_message_id`, the message
//!   the evidence is about). Applied only when the event's message is the
//!   delivery's last send (`provider_message_id`), the delivery is sent on
//!   the event's channel (`SENT_EMAIL` / `SENT_SMS`), or, for an email whose
//!   evidence already sent the delivery to SMS (`route = sms`), waiting for
//!   or being sent by that SMS (`READY`, `QUEUED`, `SENDING`: the email's
//!   message id is still the item's until the SMS completes), and only to a
//!   higher rank than the evidence already there about that message. Events
//!   arrive out of order: a `Delivery` after its `Bounce` changes nothing.
//! * **Fallback** ([`DeliveryStore::fall_back_on_evidence`]): a permanent
//!   bounce or a reject of the email sends the invoice by SMS, in one write
//!   conditioned on `state = SENT_EMAIL AND provider_message_id = :mid AND
//!   attribute_not_exists(route)`: `READY`, `route = sms`, due at the start
//!   of the customer's next allowed slot (their DND and the quiet window),
//!   back in the `Due` index, the evidence `BOUNCED` with it. Attempts, the
//!   provider message id, the send time and the rest of its history stay.
//!   Dispatch then enqueues it on SMS only. The condition makes it happen
//!   once, and never while an SMS is claimed or sent. Every copy of the
//!   event writes under one token (`evidence/{event id}/fallback`), so a copy
//!   that finds it on the item reports the fallback as its own: whichever
//!   copy records the event counts the one fallback.
//! * **Not yet** ([`EvidenceWrite::NotYet`]): an event can arrive before the
//!   sender's completion write stored its message id. When the delivery is
//!   still `QUEUED` or `SENDING` on the event's channel the caller tries the
//!   event again later (a bounded number of times).

use chrono::{DateTime, Utc};
use domain::delivery::EvidenceState;
use domain::evidence::ProviderEvent;
use domain::sending::{SlotCheck, slot_check};
use domain::{Channel, DeliveryId, DeliveryState, QuietWindow, SlotSet};

use super::write::{Change, LAST_WRITE, Written};
use super::{DeliveryStore, due_key};
use crate::StoreError;
use crate::dynamo::{Item, attr_s};

/// The longest provider type text stored (`evidence_type`).
pub const MAX_EVIDENCE_TYPE_BYTES: usize = 128;

/// One event's evidence about one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceUpdate {
    pub id: DeliveryId,
    pub event_id: String,
    pub channel: Channel,
    pub provider_message_id: String,
    /// The send round the message belonged to (its tags).
    pub round: u32,
    pub state: EvidenceState,
    /// The provider's type (`Bounce/Permanent/General`, …).
    pub provider_type: String,
    pub at: DateTime<Utc>,
}

impl EvidenceUpdate {
    /// The update an event makes, when it names a delivery and gives it a
    /// lifecycle state.
    pub fn of(event: &ProviderEvent) -> Option<EvidenceUpdate> {
        let d = event.delivery.as_ref()?;
        Some(EvidenceUpdate {
            id: d.id.clone(),
            event_id: event.event_id.clone(),
            channel: event.channel,
            provider_message_id: event.provider_message_id.clone(),
            round: d.round,
            state: event.evidence_state()?,
            provider_type: domain::text::bounded(&event.kind.type_text(), MAX_EVIDENCE_TYPE_BYTES).into_owned(),
            at: event.at,
        })
    }
}

/// What an evidence write found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvidenceWrite {
    /// The evidence now stands on the delivery (this event's write).
    Applied { email_hash: Option<String> },
    /// The message is the delivery's last send, but its evidence already
    /// stands at this rank or higher (a redelivery, or an event out of order).
    Superseded { email_hash: Option<String> },
    /// The message is not the delivery's (yet), and the delivery is `QUEUED`
    /// or `SENDING` on the event's channel: its sender's completion write may
    /// still come. Try again later.
    NotYet,
    /// The message is not the delivery's last send (an earlier round, the
    /// other channel, a send replaced since).
    Stale,
    /// The delivery has no provider message id: nothing it knows of was sent.
    NotSent,
    /// No such delivery.
    Missing,
}

impl EvidenceWrite {
    /// The delivery's email hash when the event's message is its last send
    /// (what a suppression is keyed by); `None` otherwise.
    pub fn about_last_send(&self) -> Option<Option<&str>> {
        match self {
            EvidenceWrite::Applied { email_hash } | EvidenceWrite::Superseded { email_hash } => {
                Some(email_hash.as_deref())
            }
            _ => None,
        }
    }
}

/// What a fallback found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FallBack {
    /// `READY` on route SMS, due at `available_at`, evidence `BOUNCED`.
    Applied {
        available_at: DateTime<Utc>,
        email_hash: Option<String>,
    },
    /// Not this delivery's case (not `SENT_EMAIL` with this message, already
    /// routed, evidence of a higher rank, no allowed slot at all, gone): the
    /// caller records the evidence instead ([`DeliveryStore::record_evidence`]).
    NotApplicable,
}

fn sent_state(channel: Channel) -> DeliveryState {
    match channel {
        Channel::Email => DeliveryState::SentEmail,
        Channel::Sms => DeliveryState::SentSms,
    }
}

/// The rank condition: no evidence yet about this message, or a lower one.
const RAISES_RANK: &str = "(attribute_not_exists(evidence_rank) OR attribute_not_exists(evidence_message_id) OR evidence_message_id <> :mid OR evidence_rank < :rank)";

/// The evidence attributes of `u`, set by `change`.
fn with_evidence(change: Change, u: &EvidenceUpdate) -> Change {
    change
        .set("evidence = :ev")
        .set("evidence_rank = :rank")
        .set("evidence_at = :ev_at")
        .set("evidence_type = :ev_type")
        .set("evidence_channel = :ev_ch")
        .set("evidence_message_id = :mid")
        .text(":ev", u.state.as_str())
        .number(":rank", u.state.rank())
        .time(":ev_at", &u.at)
        .text(":ev_type", &u.provider_type)
        .text(":ev_ch", u.channel.as_str())
        .text(":mid", &u.provider_message_id)
}

/// The change [`DeliveryStore::record_evidence`] makes.
pub fn evidence_change(u: &EvidenceUpdate, now: DateTime<Utc>) -> Change {
    let on_channel = match u.channel {
        // An email's evidence also lands while the SMS it sent the delivery to is on its way.
        Channel::Email => "(#st = :sent OR (route = :sms AND #st IN (:ready, :queued, :sending)))",
        Channel::Sms => "#st = :sent",
    };
    with_evidence(Change::new(format!("evidence/{}", u.event_id), now), u)
        .condition(format!("provider_message_id = :mid AND {on_channel} AND {RAISES_RANK}"))
        .text(":sent", sent_state(u.channel).as_str())
        .text(":sms", Channel::Sms.as_str())
        .text(":ready", DeliveryState::Ready.as_str())
        .text(":queued", DeliveryState::Queued.as_str())
        .text(":sending", DeliveryState::Sending.as_str())
}

/// The write token of `u`'s fallback: the same for every copy of the event.
fn fallback_token(u: &EvidenceUpdate) -> String {
    format!("evidence/{}/fallback", u.event_id)
}

/// The change [`DeliveryStore::fall_back_on_evidence`] makes.
pub fn fallback_change(u: &EvidenceUpdate, available_at: DateTime<Utc>, now: DateTime<Utc>) -> Change {
    let due = due_key(u.id.cycle, domain::delivery::due_bucket(&u.id.customer));
    with_evidence(Change::new(fallback_token(u), now), u)
        .set("#st = :ready")
        .set("route = :sms")
        .set("available_at = :at")
        .set("due_pk = :due")
        .set("routed_at = :now")
        .set("route_reason = :ev_type")
        .remove("claim_id")
        .remove("lease_until")
        .remove("run_id")
        .remove("queued_at")
        .condition(format!(
            "#st = :sent_email AND provider_message_id = :mid AND attribute_not_exists(route) AND {RAISES_RANK}"
        ))
        .text(":ready", DeliveryState::Ready.as_str())
        .text(":sent_email", DeliveryState::SentEmail.as_str())
        .text(":sms", Channel::Sms.as_str())
        .time(":at", &available_at)
        .text(":due", due)
}

fn email_hash(item: &Item) -> Option<String> {
    attr_s(item, "email_hash").map(str::to_owned)
}

fn number(item: &Item, name: &str) -> Option<u32> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

/// Why an evidence write was refused, from the item as it stands.
fn classify(item: &Item, u: &EvidenceUpdate) -> EvidenceWrite {
    let mid = attr_s(item, "provider_message_id");
    if mid == Some(u.provider_message_id.as_str()) {
        return EvidenceWrite::Superseded {
            email_hash: email_hash(item),
        };
    }
    // A later round replaced the message: the event can never apply.
    if number(item, "send_round").unwrap_or(0) > u.round {
        return EvidenceWrite::Stale;
    }
    let state = attr_s(item, "state").unwrap_or_default();
    let in_flight = state == DeliveryState::Queued.as_str() || state == DeliveryState::Sending.as_str();
    if in_flight && attr_s(item, "channel") == Some(u.channel.as_str()) {
        return EvidenceWrite::NotYet;
    }
    match mid {
        None => EvidenceWrite::NotSent,
        Some(_) => EvidenceWrite::Stale,
    }
}

/// Whether a fallback applies to the item as read (the write's condition
/// decides; this saves the write when it cannot).
fn fallback_applies(item: &Item, u: &EvidenceUpdate) -> bool {
    let mid = u.provider_message_id.as_str();
    let raises = match (number(item, "evidence_rank"), attr_s(item, "evidence_message_id")) {
        (Some(rank), Some(m)) if m == mid => rank < u.state.rank(),
        _ => true,
    };
    u.channel == Channel::Email
        && attr_s(item, "state") == Some(DeliveryState::SentEmail.as_str())
        && attr_s(item, "provider_message_id") == Some(mid)
        && !item.contains_key("route")
        && raises
}

/// When the SMS may go: now if the customer's DND and the quiet window allow
/// it, else the start of their next allowed slot. `None` when they leave no
/// slot at all.
pub fn sms_available_at(dnd: SlotSet, quiet: QuietWindow, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match slot_check(now, dnd, quiet).ok()? {
        SlotCheck::Send => Some(now),
        SlotCheck::Defer { until } => Some(until),
    }
}

impl DeliveryStore {
    /// Records the lifecycle state `u` gives its delivery (see the module
    /// doc). `Err` only when the store did not answer: the event is tried
    /// again.
    pub async fn record_evidence(&self, u: &EvidenceUpdate, now: DateTime<Utc>) -> Result<EvidenceWrite, StoreError> {
        match self.write(&u.id, &evidence_change(u, now)).await {
            Written::Applied(item) => Ok(EvidenceWrite::Applied {
                email_hash: email_hash(&item),
            }),
            Written::Refused(None) => Ok(EvidenceWrite::Missing),
            Written::Refused(Some(item)) => Ok(classify(&item, u)),
            Written::Unknown(e) => Err(e),
        }
    }

    /// Sends the delivery by SMS after a permanent bounce or a reject of its
    /// email (see the module doc): the item is read for the customer's DND
    /// slots, then changed in one conditional write. `quiet` is the stack's
    /// quiet window.
    pub async fn fall_back_on_evidence(
        &self,
        u: &EvidenceUpdate,
        quiet: QuietWindow,
        now: DateTime<Utc>,
    ) -> Result<FallBack, StoreError> {
        let Some(item) = self.raw(u.id.cycle, u.id.shard, &u.id.customer).await? else {
            return Ok(FallBack::NotApplicable);
        };
        // Another copy of this event (a redelivery, or a copy in the same batch) made the
        // fallback already: the item carries this event's token. It is this event's fallback,
        // whichever copy wrote it, as a refused write that finds its own token is applied.
        if attr_s(&item, LAST_WRITE) == Some(fallback_token(u).as_str())
            && let Some(available_at) = attr_s(&item, "available_at").and_then(|t| t.parse::<DateTime<Utc>>().ok())
        {
            return Ok(FallBack::Applied {
                available_at,
                email_hash: email_hash(&item),
            });
        }
        if !fallback_applies(&item, u) {
            return Ok(FallBack::NotApplicable);
        }
        let dnd: SlotSet = item
            .get("dnd")
            .and_then(|v| serde_dynamo::from_attribute_value(v.clone()).ok())
            .unwrap_or_default();
        let Some(available_at) = sms_available_at(dnd, quiet, now) else {
            tracing::warn!(delivery_id = %u.id, "the customer's DND slots leave no slot: no fallback to SMS");
            return Ok(FallBack::NotApplicable);
        };
        // Whole seconds, as the Due index sorts them.
        let available_at = DateTime::from_timestamp(available_at.timestamp(), 0).unwrap_or(available_at);
        match self.write(&u.id, &fallback_change(u, available_at, now)).await {
            Written::Applied(item) => Ok(FallBack::Applied {
                available_at,
                email_hash: email_hash(&item),
            }),
            Written::Refused(_) => Ok(FallBack::NotApplicable),
            Written::Unknown(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn update(state: EvidenceState) -> EvidenceUpdate {
        EvidenceUpdate {
            id: DeliveryId::parse("2026-11#00001#C0000208").unwrap(),
            event_id: "e-1".into(),
            channel: Channel::Email,
            provider_message_id: "m-1".into(),
            round: 0,
            state,
            provider_type: "Bounce/Permanent/General".into(),
            at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        }
    }

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| {
                let v = if ["evidence_rank", "send_round"].contains(k) {
                    AttributeValue::N((*v).into())
                } else {
                    AttributeValue::S((*v).into())
                };
                ((*k).to_owned(), v)
            })
            .collect()
    }

    #[test]
    fn a_refusal_says_why() {
        let u = update(EvidenceState::Bounced);
        let cases = [
            (
                item(&[
                    ("state", "SENT_EMAIL"),
                    ("provider_message_id", "m-1"),
                    ("email_hash", "k1:ab"),
                ]),
                EvidenceWrite::Superseded {
                    email_hash: Some("k1:ab".into()),
                },
            ),
            (
                item(&[("state", "SENDING"), ("channel", "email")]),
                EvidenceWrite::NotYet,
            ),
            (
                item(&[
                    ("state", "QUEUED"),
                    ("channel", "email"),
                    ("provider_message_id", "m-0"),
                ]),
                EvidenceWrite::NotYet,
            ),
            (
                item(&[("state", "QUEUED"), ("channel", "email"), ("send_round", "1")]),
                EvidenceWrite::Stale,
            ),
            (
                item(&[("state", "SENDING"), ("channel", "sms")]),
                EvidenceWrite::NotSent,
            ),
            (
                item(&[("state", "SENT_SMS"), ("provider_message_id", "m-2")]),
                EvidenceWrite::Stale,
            ),
            (item(&[("state", "READY")]), EvidenceWrite::NotSent),
        ];
        for (i, want) in cases {
            assert_eq!(classify(&i, &u), want, "{i:?}");
        }
    }

    #[test]
    fn a_fallback_needs_the_sent_email_of_this_message_unrouted_and_a_higher_rank() {
        let u = update(EvidenceState::Bounced);
        let sent = [("state", "SENT_EMAIL"), ("provider_message_id", "m-1")];
        assert!(fallback_applies(&item(&sent), &u));
        let with = |extra: &[(&str, &str)]| {
            let mut pairs = sent.to_vec();
            pairs.extend_from_slice(extra);
            fallback_applies(&item(&pairs), &u)
        };
        assert!(!with(&[("route", "sms")]));
        assert!(!with(&[("provider_message_id", "m-2")]));
        assert!(!with(&[("state", "SENT_SMS")]));
        assert!(!with(&[("evidence_rank", "3"), ("evidence_message_id", "m-1")]));
        assert!(!with(&[("evidence_rank", "2"), ("evidence_message_id", "m-1")]));
        assert!(with(&[("evidence_rank", "1"), ("evidence_message_id", "m-1")]));
        assert!(with(&[("evidence_rank", "3"), ("evidence_message_id", "m-0")]));
    }

    #[test]
    fn the_sms_goes_in_an_allowed_slot() {
        let quiet: QuietWindow = "21:00-08:00".parse().unwrap();
        // 23:30 in Seoul, in the quiet window: the 08:00 slot the next morning.
        let night = DateTime::parse_from_rfc3339("2026-12-15T23:30:00+09:00")
            .unwrap()
            .to_utc();
        let at = sms_available_at(SlotSet::default(), quiet, night).unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-15T23:00:00+00:00");
        // 10:15, allowed: now.
        let day = DateTime::parse_from_rfc3339("2026-12-15T10:15:00+09:00")
            .unwrap()
            .to_utc();
        assert_eq!(sms_available_at(SlotSet::default(), quiet, day), Some(day));
        // The customer's DND 10:00-12:00: noon.
        let dnd = SlotSet::default().with(domain::Slot::new(5).unwrap());
        let at = sms_available_at(dnd, quiet, day).unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-15T03:00:00+00:00");
        // Every slot forbidden: none.
        assert_eq!(sms_available_at(SlotSet::from_bits(0x0fff).unwrap(), quiet, day), None);
    }

    #[test]
    fn the_changes_hold_their_conditions() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let u = update(EvidenceState::Bounced);
        let c = evidence_change(&u, now);
        assert_eq!(c.token(), "evidence/e-1");
        let f = fallback_change(&u, now, now);
        assert_eq!(f.token(), "evidence/e-1/fallback");
        assert!(f.expression().contains("route = :sms"), "{}", f.expression());
        assert!(f.expression().contains("REMOVE claim_id"), "{}", f.expression());
    }
}
