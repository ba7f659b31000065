//! The senders' claim protocol on a delivery (DESIGN §4), every step a
//! conditional write on the delivery item:
//!
//! 1. **Claim**: `QUEUED` on the message's channel → `SENDING` with this
//!    sender's claim id and a lease (until the invocation's deadline); or
//!    take over a `SENDING` whose lease has expired (its sender died). The
//!    delivery leaves the `Due` index: a sender has it.
//! 2. The sender sends with the idempotency key `{delivery id}#{channel}`
//!    (`…#r{n}` in send round n, after an operator's resend).
//! 3. **Complete**: `SENDING` *with this claim id* → `SENT_EMAIL` /
//!    `SENT_SMS` and the provider's message id. A sender whose lease was
//!    taken over loses this write and knows it.
//!
//! Or, instead of 3, **give back** under the same condition: back to
//! `QUEUED` with the channel's attempt counted (retry), on to the SMS
//! channel (fallback), or `DEAD`.
//!
//! A claim that fails says why ([`ClaimOutcome`]): already sent (a duplicate
//! message: acknowledge it), claimed by a live sender (leave the message for
//! later), or in a state a sender has no business with.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use domain::delivery::utc_seconds;
use domain::{Channel, CustomerId, Cycle, Delivery, DeliveryState};

use crate::StoreError;
use crate::deliveries::{DeliveryStore, due_key, s};
use crate::dynamo::{attr_s, conditional_update};

/// Puts back the do-not-disturb slots a force-send set aside (`dnd_before_force`, see the
/// admin API); for every other delivery it leaves `dnd` as it is. Every delivery item has
/// `dnd` (a claim decodes it), so the expression always has an operand.
pub const RESTORE_DND: &str = "dnd = if_not_exists(dnd_before_force, dnd)";

/// The delivery a claim is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimKey<'a> {
    pub cycle: Cycle,
    pub shard: u32,
    pub customer: &'a CustomerId,
    pub channel: Channel,
}

/// What a claim attempt found.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimOutcome {
    /// This sender holds the delivery until the lease ends.
    Claimed(Box<Claimed>),
    /// Sent already (on this channel or the other): a duplicate message.
    AlreadySent(DeliveryState),
    /// Another sender holds a live lease.
    Busy { lease_until: String },
    /// No delivery with this key.
    Missing,
    /// Not queued for this channel (`READY`, `HELD`, `DEAD`, or queued on
    /// the other channel): the message is stale.
    NotClaimable { state: String, channel: Option<String> },
}

/// A delivery this sender now holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    pub delivery: Delivery,
    /// Claims on this channel so far, this one included. More than one means
    /// an earlier claimant on the channel may have reached the provider (a
    /// failed or lost answer, or a crash before its completion write): the
    /// sender asks the provider before sending again.
    pub claims: u32,
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

impl DeliveryStore {
    /// Claims the delivery for `key.channel` under `claim_id` until
    /// `lease_until` (see the module doc).
    pub async fn claim(
        &self,
        key: &ClaimKey<'_>,
        claim_id: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ClaimOutcome, StoreError> {
        let out = self
            .update(key.cycle, key.shard, key.customer)
            .update_expression(
                "SET #st = :sending, claim_id = :cid, lease_until = :lease, claimed_at = :now, updated_at = :now \
                 ADD #claims :one REMOVE due_pk",
            )
            .condition_expression("channel = :ch AND (#st = :queued OR (#st = :sending AND lease_until < :now_s))")
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#claims", claims_attr(key.channel))
            .expression_attribute_values(":sending", s(DeliveryState::Sending.as_str()))
            .expression_attribute_values(":queued", s(DeliveryState::Queued.as_str()))
            .expression_attribute_values(":ch", s(key.channel.as_str()))
            .expression_attribute_values(":cid", s(claim_id))
            .expression_attribute_values(":lease", s(utc_seconds::format(&lease_until)))
            .expression_attribute_values(":now", s(utc_seconds::format(&now)))
            .expression_attribute_values(":now_s", s(utc_seconds::format(&now)))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(o) => match o.attributes {
                Some(item) => {
                    let claims = item
                        .get(claims_attr(key.channel))
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1);
                    Ok(ClaimOutcome::Claimed(Box::new(Claimed {
                        delivery: self.decode(item)?,
                        claims,
                    })))
                }
                None => Err(StoreError::Decode {
                    resource: self.table().to_owned(),
                    what: "claimed delivery".into(),
                    message: "UpdateItem returned no attributes".into(),
                }),
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
            {
                self.why_not_claimable(key).await
            }
            Err(e) => Err(StoreError::aws("UpdateItem", self.table(), e)),
        }
    }

    /// Reads the delivery (consistently) to say why a claim failed.
    async fn why_not_claimable(&self, key: &ClaimKey<'_>) -> Result<ClaimOutcome, StoreError> {
        let Some(item) = self.raw(key.cycle, key.shard, key.customer).await? else {
            return Ok(ClaimOutcome::Missing);
        };
        let state = attr_s(&item, "state").unwrap_or_default().to_owned();
        let channel = attr_s(&item, "channel").map(str::to_owned);
        Ok(match state.as_str() {
            "SENT_EMAIL" => ClaimOutcome::AlreadySent(DeliveryState::SentEmail),
            "SENT_SMS" => ClaimOutcome::AlreadySent(DeliveryState::SentSms),
            "SENDING" if channel.as_deref() == Some(key.channel.as_str()) => ClaimOutcome::Busy {
                lease_until: attr_s(&item, "lease_until").unwrap_or_default().to_owned(),
            },
            _ => ClaimOutcome::NotClaimable { state, channel },
        })
    }

    /// `SENDING` under `claim_id` → sent on the claim's channel, with the
    /// provider's message id. False when the claim was lost (taken over
    /// after its lease ended): the caller must not count the send as its own.
    /// A delivery an operator force-sent gets its customer's do-not-disturb
    /// slots back ([`RESTORE_DND`]), so a later resend honours them again.
    pub async fn complete(
        &self,
        key: &ClaimKey<'_>,
        claim_id: &str,
        provider_message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let req = self
            .update(key.cycle, key.shard, key.customer)
            .update_expression(format!(
                "SET #st = :sent, provider_message_id = :pmid, sent_at = :now, updated_at = :now, {RESTORE_DND} \
                 ADD #att :one REMOVE lease_until, dnd_before_force"
            ))
            .condition_expression("#st = :sending AND claim_id = :cid AND channel = :ch")
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#att", attempts_attr(key.channel))
            .expression_attribute_values(":sent", s(sent_state(key.channel).as_str()))
            .expression_attribute_values(":sending", s(DeliveryState::Sending.as_str()))
            .expression_attribute_values(":cid", s(claim_id))
            .expression_attribute_values(":ch", s(key.channel.as_str()))
            .expression_attribute_values(":pmid", s(provider_message_id))
            .expression_attribute_values(":now", s(utc_seconds::format(&now)))
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        conditional_update(req, self.table()).await
    }

    /// Gives a claimed delivery back after a failed send (see [`GiveBack`]),
    /// recording the error code (never personal data). False when the claim
    /// was lost.
    pub async fn give_back(
        &self,
        key: &ClaimKey<'_>,
        claim_id: &str,
        how: GiveBack,
        error_code: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // A hand-over made no attempt on the claim's channel.
        let attempted = if how == GiveBack::HandOverToSms { "0" } else { "1" };
        let (state, channel) = match how {
            GiveBack::Retry => (DeliveryState::Queued, key.channel),
            GiveBack::FallBackToSms | GiveBack::HandOverToSms => (DeliveryState::Queued, Channel::Sms),
            GiveBack::Dead => (DeliveryState::Dead, key.channel),
        };
        // A dead delivery an operator force-sent gets its DND slots back, as a sent one does.
        let expression = match how {
            GiveBack::Dead => format!(
                "SET #st = :next, channel = :next_ch, last_error = :err, updated_at = :now, {RESTORE_DND} \
                 ADD #att :one REMOVE lease_until, claim_id, dnd_before_force"
            ),
            _ => "SET #st = :next, channel = :next_ch, last_error = :err, updated_at = :now \
                  ADD #att :one REMOVE lease_until, claim_id"
                .to_owned(),
        };
        let req = self
            .update(key.cycle, key.shard, key.customer)
            .update_expression(expression)
            .condition_expression("#st = :sending AND claim_id = :cid AND channel = :ch")
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#att", attempts_attr(key.channel))
            .expression_attribute_values(":next", s(state.as_str()))
            .expression_attribute_values(":next_ch", s(channel.as_str()))
            .expression_attribute_values(":sending", s(DeliveryState::Sending.as_str()))
            .expression_attribute_values(":cid", s(claim_id))
            .expression_attribute_values(":ch", s(key.channel.as_str()))
            .expression_attribute_values(":err", s(error_code))
            .expression_attribute_values(":now", s(utc_seconds::format(&now)))
            .expression_attribute_values(":one", AttributeValue::N(attempted.into()));
        conditional_update(req, self.table()).await
    }

    /// A `QUEUED` delivery whose message arrived in a slot the customer or
    /// the quiet window forbids goes back to `READY`, due again at
    /// `available_at` (the next allowed slot), in the `Due` index. False
    /// when it was no longer queued on that channel.
    pub async fn defer(
        &self,
        key: &ClaimKey<'_>,
        available_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let bucket = domain::delivery::due_bucket(key.customer);
        let req = self
            .update(key.cycle, key.shard, key.customer)
            .update_expression(
                "SET #st = :ready, available_at = :at, due_pk = :due, deferred_at = :now, updated_at = :now \
                 ADD deferrals :one",
            )
            .condition_expression("#st = :queued AND channel = :ch")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":ready", s(DeliveryState::Ready.as_str()))
            .expression_attribute_values(":queued", s(DeliveryState::Queued.as_str()))
            .expression_attribute_values(":ch", s(key.channel.as_str()))
            .expression_attribute_values(":at", s(utc_seconds::format(&available_at)))
            .expression_attribute_values(":due", s(due_key(key.cycle, bucket)))
            .expression_attribute_values(":now", s(utc_seconds::format(&now)))
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        conditional_update(req, self.table()).await
    }
    /// Hands a claimed delivery back untouched: `QUEUED` on the same channel,
    /// no attempt counted (the sender did not try: too little time was left
    /// in its invocation). False when the claim was lost.
    pub async fn release(&self, key: &ClaimKey<'_>, claim_id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let req = self
            .update(key.cycle, key.shard, key.customer)
            .update_expression("SET #st = :queued, updated_at = :now REMOVE lease_until, claim_id")
            .condition_expression("#st = :sending AND claim_id = :cid AND channel = :ch")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":queued", s(DeliveryState::Queued.as_str()))
            .expression_attribute_values(":sending", s(DeliveryState::Sending.as_str()))
            .expression_attribute_values(":cid", s(claim_id))
            .expression_attribute_values(":ch", s(key.channel.as_str()))
            .expression_attribute_values(":now", s(utc_seconds::format(&now)));
        conditional_update(req, self.table()).await
    }

    /// A claimed delivery whose send the customer's DND or the quiet window
    /// forbids right now: back to `READY`, due again at `available_at` (the
    /// next allowed slot), in the `Due` index, so dispatch enqueues it then.
    /// False when the claim was lost.
    pub async fn defer_claimed(
        &self,
        key: &ClaimKey<'_>,
        claim_id: &str,
        available_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let bucket = domain::delivery::due_bucket(key.customer);
        let req = self
            .update(key.cycle, key.shard, key.customer)
            .update_expression(
                "SET #st = :ready, available_at = :at, due_pk = :due, deferred_at = :now, updated_at = :now \
                 ADD deferrals :one REMOVE lease_until, claim_id, run_id, queued_at",
            )
            .condition_expression("#st = :sending AND claim_id = :cid AND channel = :ch")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":ready", s(DeliveryState::Ready.as_str()))
            .expression_attribute_values(":sending", s(DeliveryState::Sending.as_str()))
            .expression_attribute_values(":cid", s(claim_id))
            .expression_attribute_values(":ch", s(key.channel.as_str()))
            .expression_attribute_values(":at", s(utc_seconds::format(&available_at)))
            .expression_attribute_values(":due", s(due_key(key.cycle, bucket)))
            .expression_attribute_values(":now", s(utc_seconds::format(&now)))
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        conditional_update(req, self.table()).await
    }
}
