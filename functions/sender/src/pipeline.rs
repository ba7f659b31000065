//! The send pipeline for one claimed message: claim → channel and slot
//! checks → ask the provider when an earlier claim may have sent it →
//! prepare → send → complete; and the short answers on the way (a duplicate,
//! another sender's live claim, a stale message, a claim released unsent).

use std::time::Duration;

use adapters::deliveries::claims::{ClaimOutcome, Claimed};
use adapters::deliveries::write::Written;
use chrono::{DateTime, Utc};
use domain::delivery::{DeliveryMessage, utc_seconds};
use domain::sending::{SlotCheck, slot_check};
use domain::{Channel, Delivery, DeliveryState};
use providers::{ErrorKind, Lookup, ProviderError};

use crate::content::{Prep, prepare, round_key, send};
use crate::message::{Msg, infra, park};
use crate::retry::{channel_disabled, failed, give_up, suppressed, unconfirmed, unknown_outcome};
use crate::{CrashPoint, Outcome, SenderError};

pub(crate) async fn deliver(m: &Msg<'_>) -> Result<Outcome, SenderError> {
    let deps = m.deps;
    let c = &deps.config;
    let now = m.now();
    let lease_until =
        now + chrono::Duration::from_std(m.remaining() + c.lease_margin).unwrap_or(chrono::Duration::zero());
    // If no message brings it back (lost, dead-lettered), dispatch finds it at the re-check
    // time it was queued with.
    let claim = deps.deliveries.claim(&m.key, &m.claim_id, lease_until, now);
    let claimed = match m.read("claim", claim).await {
        Ok(ClaimOutcome::Claimed(claimed)) => claimed,
        Ok(ClaimOutcome::Undecodable { reason }) => {
            return Ok(give_up(m, None, "delivery-unreadable", &reason).await);
        }
        Ok(ClaimOutcome::AlreadySent(state)) => {
            tracing::info!(
                delivery_id = m.id(),
                state = state.as_str(),
                "already sent; duplicate message suppressed"
            );
            return Ok(Outcome::Duplicate);
        }
        Ok(ClaimOutcome::Busy { lease_until }) => return Ok(busy(m, &lease_until, now).await),
        Ok(ClaimOutcome::Missing) => {
            return Ok(park(
                deps,
                Some(m.key.id.cycle),
                m.id(),
                "unknown-delivery",
                format!("no delivery {} exists", m.id()),
                Some(m.body),
            )
            .await);
        }
        Ok(ClaimOutcome::NotClaimable { state, channel }) => return Ok(stale(m, &state, channel.as_deref()).await),
        Err(e) => return Ok(infra(m.id(), "could not claim", &e)),
    };
    m.crash(CrashPoint::AfterClaim)?;
    let Claimed {
        delivery,
        claims,
        earlier_call,
    } = *claimed;

    // A channel the operators disabled after dispatch queued the delivery on it.
    if !m.policy.allows(c.channel) {
        return Ok(channel_disabled(m).await);
    }
    // The slot, as the claim found it (a cheap early answer; checked again before the call).
    if let Some(o) = slot_gate(m, &delivery).await {
        return Ok(o);
    }

    // An earlier claim on the channel may have reached the provider: ask it. One that
    // cannot be asked, after a call marked as started, is never sent again blindly.
    if claims > 1 || earlier_call {
        match lookup(m, delivery.send_round).await {
            Ok(Lookup::Accepted(a)) => return Ok(complete(m, &a.provider_message_id, Outcome::Recovered).await),
            Ok(Lookup::NotFound) => {}
            Ok(Lookup::Unsupported) if earlier_call => {
                return Ok(unconfirmed(m, &delivery, "earlier-call-unknown").await);
            }
            Ok(Lookup::Unsupported) => {}
            Err(e) => {
                tracing::warn!(delivery_id = m.id(), code = %e.code, "the provider could not be asked; retried later");
                return Ok(release(m).await);
            }
        }
    }

    let attempt = attempts(&delivery, c.channel) + 1;
    let outgoing = match prepare(m, &delivery, attempt).await {
        Ok(o) => o,
        Err(Prep::Store(e)) => {
            let outcome = infra(m.id(), "could not prepare the message", &e);
            let _ = release(m).await;
            return Ok(outcome);
        }
        Err(Prep::Permanent { code, reason }) => return Ok(failed(m, &delivery, &code, &reason, true).await),
        Err(Prep::Suppressed(entry)) => return Ok(suppressed(m, &delivery, &entry).await),
    };

    // A token of the send-rate window shared by every instance (crate::pacing), waiting at
    // most until only the time to send and record it is left; none by then: released, no
    // attempt counted, back later.
    if let Some(pacing) = &deps.pacer {
        let budget = m.remaining().saturating_sub(c.provider_timeout + c.finish_margin);
        match pacing.take(budget).await {
            Ok(adapters::pacing::Take::Granted { .. }) => {}
            Ok(adapters::pacing::Take::TimeUp) => {
                tracing::info!(delivery_id = m.id(), "no send-rate token in time; released for later");
                return Ok(release(m).await);
            }
            Err(e) => {
                let outcome = infra(m.id(), "could not take a send-rate token", &e);
                let _ = release(m).await;
                return Ok(outcome);
            }
        }
    }
    // Immediately before the call: enough time left to send and record it, then the
    // slot on a fresh clock reading (the reads above took time).
    if m.remaining() < c.provider_timeout + c.finish_margin {
        return Ok(release(m).await);
    }
    if let Some(o) = slot_gate(m, &delivery).await {
        return Ok(o);
    }
    if !m.provider_answers_lookups()
        && let Err(o) = m
            .step(
                "could not mark the provider call",
                deps.deliveries.call_started(&m.key, &m.claim_id, m.now()),
            )
            .await
    {
        return Ok(o);
    }

    match send(m, outgoing).await {
        Ok(accepted) => {
            m.crash(CrashPoint::AfterAccept)?;
            let o = complete(m, &accepted.provider_message_id, Outcome::Sent).await;
            m.crash(CrashPoint::AfterComplete)?;
            Ok(o)
        }
        Err(e) if e.kind == ErrorKind::Unknown => Ok(unknown_outcome(m, &delivery, &e).await),
        // The provider's rate or quota: nothing was sent and nothing is wrong with the
        // message. Released without counting an attempt (never a fallback or DEAD), and
        // back after a short delay (crate::pacing::come_back).
        Err(e) if e.kind == ErrorKind::Throttled => Ok(crate::pacing::throttled(m, &e).await),
        Err(e) => {
            let permanent = e.kind == ErrorKind::Permanent;
            Ok(failed(m, &delivery, &e.code, &e.message, permanent).await)
        }
    }
}

/// Another sender holds a live lease: the message comes back when it ends
/// (if that sender died, the lease can be taken over then).
async fn busy(m: &Msg<'_>, lease_until: &str, now: DateTime<Utc>) -> Outcome {
    let c = &m.deps.config;
    let left = DateTime::parse_from_rfc3339(lease_until)
        .map(|l| (l.with_timezone(&Utc) - now).num_seconds().max(1))
        .unwrap_or(1);
    let delay = u32::try_from(left)
        .unwrap_or(u32::MAX)
        .min(c.busy_delay_max.as_secs().max(1) as u32);
    let receipt = m.sqs.receipt_handle.as_deref().unwrap_or_default();
    if let Err(e) = m.deps.queue.retry_after(receipt, delay).await {
        tracing::warn!(delivery_id = m.id(), error = %e, "could not set the delay");
    }
    tracing::info!(delivery_id = m.id(), %lease_until, delay, "claimed by another sender; left for later");
    Outcome::Busy
}

/// The send-time slot check (DESIGN §4) on a fresh clock reading: `None` to
/// send now; otherwise what became of the delivery — deferred to the next
/// allowed slot, or `DEAD` when the customer's DND and the quiet window leave
/// no slot at all.
async fn slot_gate(m: &Msg<'_>, d: &Delivery) -> Option<Outcome> {
    let now = m.now();
    match slot_check(now, d.dnd, m.deps.config.quiet) {
        Ok(SlotCheck::Send) => None,
        Ok(SlotCheck::Defer { until }) => {
            let write = m.deps.deliveries.defer_claimed(&m.key, &m.claim_id, until, now);
            Some(match m.step("could not defer", write).await {
                Ok(_) => {
                    tracing::info!(delivery_id = m.id(), until = %utc_seconds::format(&until), "not in this slot; deferred");
                    Outcome::Deferred
                }
                Err(o) => o,
            })
        }
        // DND and quiet window that leave no slot at all: no channel can ever send it.
        Err(e) => Some(give_up(m, Some(d), "no-allowed-slot", &e.to_string()).await),
    }
}

pub(crate) fn attempts(d: &Delivery, channel: Channel) -> u32 {
    match channel {
        Channel::Email => d.attempts_email,
        Channel::Sms => d.attempts_sms,
    }
}

pub(crate) async fn lookup(m: &Msg<'_>, round: u32) -> Result<Lookup, ProviderError> {
    let key = round_key(&m.key.id, m.deps.config.channel, round);
    let ask = async {
        match m.deps.config.channel {
            Channel::Email => m.deps.email.find_email(&key).await,
            Channel::Sms => m.deps.sms.find_sms(&key).await,
        }
    };
    let limit = m.deps.config.provider_timeout.min(m.call_limit());
    match tokio::time::timeout(limit, ask).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::unknown(
            "LookupTimeout",
            format!("no answer within {} ms", limit.as_millis()),
        )),
    }
}

async fn stale(m: &Msg<'_>, state: &str, channel: Option<&str>) -> Outcome {
    // An email message for a delivery that fell back to SMS: the SMS message
    // may be the one a failed send lost, so it is sent (again; a second one is
    // harmless, the claim decides).
    if m.deps.config.channel == Channel::Email
        && state == DeliveryState::Queued.as_str()
        && channel == Some(Channel::Sms.as_str())
    {
        let msg = DeliveryMessage {
            delivery_id: m.id.clone(),
            channel: Channel::Sms,
            run_id: m.message.run_id.clone(),
            copies: 0,
        };
        if let Err(e) = m.read("SendMessage", m.deps.sms_queue.send_one(&msg)).await {
            return infra(m.id(), "could not repeat the SMS fallback message", &e);
        }
    }
    tracing::info!(
        delivery_id = m.id(),
        state,
        channel,
        "not queued for this sender; stale message acknowledged"
    );
    Outcome::Stale
}

pub(crate) async fn release(m: &Msg<'_>) -> Outcome {
    let recheck = m.recheck_at(m.deps.config.trouble_delay);
    let write = m.deps.deliveries.release(&m.key, &m.claim_id, recheck, m.now());
    match m.step("could not release the claim", write).await {
        Ok(_) => Outcome::Released,
        Err(o) => o,
    }
}

/// Records the send. The provider has it, so the write is tried again (same
/// token: an applied write whose answer was lost is found applied) until the
/// invocation's time runs short; then the message is kept, and whoever claims
/// the delivery next asks the provider before sending (or, with a provider
/// that cannot be asked, finds the call marked and leaves the delivery
/// `UNCONFIRMED` for an operator).
pub(crate) async fn complete(m: &Msg<'_>, provider_message_id: &str, ok: Outcome) -> Outcome {
    let backoff = adapters::retry::Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(2),
        max_attempts: 20,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let write = m
            .deps
            .deliveries
            .complete(&m.key, &m.claim_id, provider_message_id, m.now());
        let written = m.bounded(write).await;
        if let Written::Unknown(e) = &written {
            let pause = backoff.delay(attempt);
            if attempt < backoff.max_attempts && m.call_limit() > pause + Duration::from_secs(1) {
                tracing::warn!(delivery_id = m.id(), attempt, error = %e, "sent; recording it again");
                tokio::time::sleep(pause).await;
                continue;
            }
        }
        return match m.settle("sent, but could not record it", written) {
            Ok(_) => {
                tracing::info!(delivery_id = m.id(), outcome = ?ok, attempt, "sent");
                ok
            }
            Err(o) => o,
        };
    }
}
