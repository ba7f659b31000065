//! The senders' claim protocol on a delivery (DESIGN §4), every step a
//! conditional [`Change`] on the delivery item, named by the claim id:
//!
//! 1. **Claim**: `QUEUED` on the message's channel → `SENDING` with this
//!    sender's claim id and a lease (until the invocation's deadline); or
//!    take over a `SENDING` whose lease has expired (its sender died). The
//!    delivery stays in the `Due` index at the re-check time it was queued
//!    with (hours after its slot, far past any lease): if no message ever
//!    brings it back (its message was lost or dead-lettered), dispatch finds
//!    it then and enqueues it again. The claim leaves `available_at`, the
//!    index's sort key, as it is: a key change would cost the index a delete
//!    and a put, where the state change costs one write.
//! 2. The sender sends with the idempotency key `{delivery id}#{channel}`
//!    (`…#r{n}` in send round n, after an operator's resend). Before a call to
//!    a provider that cannot be asked afterwards whether it took a key (SES),
//!    the sender marks the call as started (`provider_call`).
//! 3. **Complete**: `SENDING` *with this claim id* → `SENT_EMAIL` /
//!    `SENT_SMS` and the provider's message id, out of the `Due` index. A
//!    sender whose lease was taken over loses this write and knows it.
//!
//! Or, instead of 3, **give back** under the same condition: back to
//! `QUEUED` with the channel's attempt counted (retry), on to the SMS
//! channel (fallback), `DEAD`, or `UNCONFIRMED` (a call may have reached a
//! provider that cannot be asked: an operator decides). Every state a sender
//! leaves a delivery in is terminal or in the `Due` index.
//!
//! A claim that fails says why ([`ClaimOutcome`]), read from the item the
//! refused write returns (no second read): already sent (a duplicate
//! message: acknowledge it), claimed by a live sender (leave the message for
//! later), or in a state a sender has no business with. A write whose answer
//! was lost and whose retry failed its own condition is recognised as applied
//! (see [`super::write`]).

use chrono::{DateTime, Utc};
use domain::{Channel, Delivery, DeliveryId, DeliveryState};

use super::write::{Change, Written};
use super::{DeliveryStore, due_key};
use crate::StoreError;
use crate::dynamo::{Item, attr_s};

/// Puts back the do-not-disturb slots a force-send set aside (`dnd_before_force`, see
/// [`super::commands`]); for every other delivery it leaves `dnd` as it is. Every delivery
/// item has `dnd` (a claim decodes it), so the expression always has an operand.
pub const RESTORE_DND: &str = "dnd = if_not_exists(dnd_before_force, dnd)";

/// The delivery a claim is about, on the channel of the sender's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimKey {
    pub id: DeliveryId,
    pub channel: Channel,
}

/// What a claim attempt found.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimOutcome {
    /// This sender holds the delivery until the lease ends.
    Claimed(Box<Claimed>),
    /// This sender holds the delivery, but the item does not decode: the
    /// sender cannot send it and ends it `DEAD` with a failure record.
    Undecodable { reason: String },
    /// Sent already (on this channel or the other): a duplicate message.
    AlreadySent(DeliveryState),
    /// Another sender holds a live lease.
    Busy { lease_until: String },
    /// No delivery with this key.
    Missing,
    /// Not queued for this channel (`READY`, `HELD`, `DEAD`, `UNCONFIRMED`,
    /// or queued on the other channel): the message is stale.
    NotClaimable { state: String, channel: Option<String> },
}

/// A delivery this sender now holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    pub delivery: Delivery,
    /// Claims on this channel so far, this one included. More than one means
    /// an earlier claimant on the channel may have reached the provider (a
    /// failed or lost answer, or a crash before its completion write): the
    /// sender asks the provider before sending.
    pub claims: u32,
    /// An earlier claim marked a provider call as started and never learnt
    /// how it ended (`provider_call`): with a provider that cannot be asked,
    /// sending again could send twice.
    pub earlier_call: bool,
}

/// How a sender gives a claimed delivery back.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GiveBack {
    /// Back to `QUEUED` on the same channel, the attempt counted.
    Retry,
    /// Email gave up: `QUEUED` on SMS, the email attempt counted.
    FallBackToSms,
    /// The operators disabled email: `QUEUED` on SMS without an email attempt.
    HandOverToSms,
    /// Every channel gave up.
    Dead,
    /// A provider call may have reached a provider that cannot be asked:
    /// `UNCONFIRMED`, for an operator to confirm or resend.
    Unconfirmed,
}

fn sent_state(channel: Channel) -> DeliveryState {
    match channel {
        Channel::Email => DeliveryState::SentEmail,
        Channel::Sms => DeliveryState::SentSms,
    }
}

fn claims_attr(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "claims_email",
        Channel::Sms => "claims_sms",
    }
}

fn attempts_attr(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "attempts_email",
        Channel::Sms => "attempts_sms",
    }
}

/// The due-index partition of a delivery.
fn due(id: &DeliveryId) -> String {
    due_key(id.cycle, domain::delivery::due_bucket(&id.customer))
}

/// A change by the claim `claim_id`, conditioned on it: the delivery is
/// `SENDING` on the key's channel under this claim.
fn by_claimant(key: &ClaimKey, claim_id: &str, step: &str, now: DateTime<Utc>) -> Change {
    Change::new(format!("{claim_id}/{step}"), now)
        .condition("#st = :sending AND claim_id = :cid AND channel = :ch")
        .text(":sending", DeliveryState::Sending.as_str())
        .text(":cid", claim_id)
        .text(":ch", key.channel.as_str())
}

/// `change` (by the claimant) giving the delivery back untouched: `QUEUED` on the same
/// channel, re-checked at `recheck_at`, the lease and the claim id removed.
fn released(change: Change, key: &ClaimKey, recheck_at: DateTime<Utc>) -> Change {
    change
        .set("#st = :queued")
        .set("available_at = :recheck")
        .set("due_pk = :due")
        .remove("lease_until")
        .remove("claim_id")
        .text(":queued", DeliveryState::Queued.as_str())
        .time(":recheck", &recheck_at)
        .text(":due", due(&key.id))
}

/// The claim: see the module doc.
pub fn claim_change(key: &ClaimKey, claim_id: &str, lease_until: DateTime<Utc>, now: DateTime<Utc>) -> Change {
    Change::new(format!("{claim_id}/claim"), now)
        .set("#st = :sending")
        .set("claim_id = :cid")
        .set("lease_until = :lease")
        .set("claimed_at = :now")
        .set("due_pk = :due")
        .add("#claims :one")
        .condition("channel = :ch AND (#st = :queued OR (#st = :sending AND lease_until < :now))")
        .name("#claims", claims_attr(key.channel))
        .text(":sending", DeliveryState::Sending.as_str())
        .text(":queued", DeliveryState::Queued.as_str())
        .text(":ch", key.channel.as_str())
        .text(":cid", claim_id)
        .time(":lease", &lease_until)
        .text(":due", due(&key.id))
        .number(":one", 1)
}

impl DeliveryStore {
    /// Claims the delivery for `key.channel` under `claim_id` until
    /// `lease_until` (see the module doc). `Err` when the outcome is unknown:
    /// the message is tried again.
    pub async fn claim(
        &self,
        key: &ClaimKey,
        claim_id: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ClaimOutcome, StoreError> {
        match self
            .write(&key.id, &claim_change(key, claim_id, lease_until, now))
            .await
        {
            Written::Applied(item) => Ok(self.claimed(key, claim_id, item)),
            Written::Refused(None) => Ok(ClaimOutcome::Missing),
            Written::Refused(Some(item)) => Ok(why_not_claimable(key, &item)),
            Written::Unknown(e) => Err(e),
        }
    }

    fn claimed(&self, key: &ClaimKey, claim_id: &str, item: Item) -> ClaimOutcome {
        let claims = item
            .get(claims_attr(key.channel))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let earlier_call = attr_s(&item, "provider_call").is_some_and(|c| c != claim_id);
        match self.decode(item) {
            Ok(delivery) => ClaimOutcome::Claimed(Box::new(Claimed {
                delivery,
                claims,
                earlier_call,
            })),
            Err(e) => ClaimOutcome::Undecodable { reason: e.to_string() },
        }
    }

    /// `SENDING` under `claim_id` → sent on the claim's channel, with the
    /// provider's message id, out of the `Due` index. What only the send needed goes
    /// (the claim id, which the write's token names, and the dispatch run's id): the item
    /// stays under the 1 KB of one write unit for the evidence that follows. Refused when the claim
    /// was lost (taken over after its lease ended): the caller must not count
    /// the send as its own. A delivery an operator force-sent gets its
    /// customer's do-not-disturb slots back ([`RESTORE_DND`]).
    pub async fn complete(
        &self,
        key: &ClaimKey,
        claim_id: &str,
        provider_message_id: &str,
        now: DateTime<Utc>,
    ) -> Written {
        let change = by_claimant(key, claim_id, "complete", now)
            .set("#st = :sent")
            .set("provider_message_id = :pmid")
            .set("sent_at = :now")
            .set(RESTORE_DND)
            .add("#att :one")
            .remove("lease_until")
            .remove("claim_id")
            .remove("run_id")
            .remove("dnd_before_force")
            .remove("due_pk")
            .remove("provider_call")
            .name("#att", attempts_attr(key.channel))
            .text(":sent", sent_state(key.channel).as_str())
            .text(":pmid", provider_message_id)
            .number(":one", 1);
        self.write(&key.id, &change).await
    }

    /// Marks the provider call of this claim as started, before it starts:
    /// a claimant that takes the delivery over later knows a call may have
    /// reached the provider ([`Claimed::earlier_call`]).
    pub async fn call_started(&self, key: &ClaimKey, claim_id: &str, now: DateTime<Utc>) -> Written {
        let change = by_claimant(key, claim_id, "call", now).set("provider_call = :cid");
        self.write(&key.id, &change).await
    }

    /// Gives a claimed delivery back after a failed send (see [`GiveBack`]),
    /// recording the error code (never personal data). A delivery given back
    /// to a queue stays in the `Due` index, re-checked at `recheck_at`.
    /// Refused when the claim was lost.
    pub async fn give_back(
        &self,
        key: &ClaimKey,
        claim_id: &str,
        how: GiveBack,
        error_code: &str,
        recheck_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Written {
        // A hand-over or an unconfirmed call made no attempt that is known to have failed.
        let attempted = if matches!(how, GiveBack::HandOverToSms | GiveBack::Unconfirmed) {
            0
        } else {
            1
        };
        let (state, channel) = match how {
            GiveBack::Retry => (DeliveryState::Queued, key.channel),
            GiveBack::FallBackToSms | GiveBack::HandOverToSms => (DeliveryState::Queued, Channel::Sms),
            GiveBack::Dead => (DeliveryState::Dead, key.channel),
            GiveBack::Unconfirmed => (DeliveryState::Unconfirmed, key.channel),
        };
        let step = match how {
            GiveBack::Retry => "retry",
            GiveBack::FallBackToSms => "fallback",
            GiveBack::HandOverToSms => "handover",
            GiveBack::Dead => "dead",
            GiveBack::Unconfirmed => "unconfirmed",
        };
        let mut change = by_claimant(key, claim_id, step, now)
            .set("#st = :next")
            .set("channel = :next_ch")
            .set("last_error = :err")
            .add("#att :one")
            .remove("lease_until")
            .remove("claim_id")
            .name("#att", attempts_attr(key.channel))
            .text(":next", state.as_str())
            .text(":next_ch", channel.as_str())
            .text(":err", domain::text::bounded(error_code, MAX_ERROR_CODE))
            .number(":one", attempted);
        change = match how {
            // Ended: out of the index; a force-send's set-aside slots come back.
            GiveBack::Dead | GiveBack::Unconfirmed => {
                change.set(RESTORE_DND).remove("dnd_before_force").remove("due_pk")
            }
            // The provider answered: no call of this claim is left in doubt.
            _ => change
                .set("available_at = :recheck")
                .set("due_pk = :due")
                .remove("provider_call")
                .time(":recheck", &recheck_at)
                .text(":due", due(&key.id)),
        };
        self.write(&key.id, &change).await
    }

    /// Hands a claimed delivery back untouched: `QUEUED` on the same channel,
    /// no attempt counted (the sender did not try: too little time was left
    /// in its invocation, or its own trouble), re-checked at `recheck_at`.
    /// Refused when the claim was lost.
    pub async fn release(
        &self,
        key: &ClaimKey,
        claim_id: &str,
        recheck_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Written {
        let change = released(by_claimant(key, claim_id, "release", now), key, recheck_at);
        self.write(&key.id, &change).await
    }

    /// [`release`](Self::release) after the provider answered that it sent
    /// nothing (throttled: the account's rate or quota): no attempt counted,
    /// and the call this claim marked as started is cleared, so the next
    /// claimant does not take it for a call in doubt.
    pub async fn release_unsent(
        &self,
        key: &ClaimKey,
        claim_id: &str,
        recheck_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Written {
        let change =
            released(by_claimant(key, claim_id, "release-unsent", now), key, recheck_at).remove("provider_call");
        self.write(&key.id, &change).await
    }

    /// A claimed delivery whose send the customer's DND or the quiet window
    /// forbids right now: back to `READY`, due again at `available_at` (the
    /// next allowed slot), in the `Due` index, so dispatch enqueues it then.
    /// Refused when the claim was lost.
    pub async fn defer_claimed(
        &self,
        key: &ClaimKey,
        claim_id: &str,
        available_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Written {
        let change = by_claimant(key, claim_id, "defer", now)
            .set("#st = :ready")
            .set("available_at = :at")
            .set("due_pk = :due")
            .set("deferred_at = :now")
            .add("deferrals :one")
            .remove("lease_until")
            .remove("claim_id")
            .remove("run_id")
            .remove("queued_at")
            .text(":ready", DeliveryState::Ready.as_str())
            .time(":at", &available_at)
            .text(":due", due(&key.id))
            .number(":one", 1);
        self.write(&key.id, &change).await
    }
}

/// The longest error code stored on a delivery.
pub const MAX_ERROR_CODE: usize = 128;

/// Why a claim was refused, from the item as it stands.
fn why_not_claimable(key: &ClaimKey, item: &Item) -> ClaimOutcome {
    let state = attr_s(item, "state").unwrap_or_default().to_owned();
    let channel = attr_s(item, "channel").map(str::to_owned);
    match state.as_str() {
        "SENT_EMAIL" => ClaimOutcome::AlreadySent(DeliveryState::SentEmail),
        "SENT_SMS" => ClaimOutcome::AlreadySent(DeliveryState::SentSms),
        "SENDING" if channel.as_deref() == Some(key.channel.as_str()) => ClaimOutcome::Busy {
            lease_until: attr_s(item, "lease_until").unwrap_or_default().to_owned(),
        },
        _ => ClaimOutcome::NotClaimable { state, channel },
    }
}
