//! When a send does not go through as planned: an unknown outcome resolved by
//! asking the provider, `UNCONFIRMED` when it cannot be asked, a retry after a
//! backoff, the fallback from email to SMS (also when the operators disabled
//! email), and `DEAD` with its dead letter.

use std::time::Duration;

use adapters::deliveries::claims::GiveBack;
use adapters::failures::NewFailure;
use adapters::suppressions::Suppression;
use domain::delivery::{DeadLetter, DeliveryMessage, utc_seconds};
use domain::sending::AfterFailure;
use domain::{Channel, Delivery};
use providers::{Lookup, ProviderError};

use crate::Outcome;
use crate::message::{Msg, infra};
use crate::pipeline::{attempts, complete, lookup};

/// The provider's answer was lost. Ask it: accepted → completed; not there →
/// a failed attempt. A provider that cannot be asked leaves the delivery
/// `UNCONFIRMED`: a timeout after the request went out most likely delivered
/// it, and a second send is the failure this platform promises not to make.
pub(crate) async fn unknown_outcome(m: &Msg<'_>, d: &Delivery, e: &ProviderError) -> Outcome {
    match lookup(m, d.send_round).await {
        Ok(Lookup::Accepted(a)) => complete(m, &a.provider_message_id, Outcome::Recovered).await,
        Ok(Lookup::NotFound) => failed(m, d, &e.code, &e.message, false).await,
        Ok(Lookup::Unsupported) => unconfirmed(m, d, &e.code).await,
        Err(le) => {
            // Retry later: the next claim asks again before sending.
            tracing::warn!(delivery_id = m.id(), code = %e.code, lookup = %le.code, "outcome unknown; asking the provider failed");
            failed(m, d, &e.code, &e.message, false).await
        }
    }
}

/// A call may have reached a provider that cannot be asked: the delivery
/// becomes `UNCONFIRMED`, with a failure record that says what an operator
/// does (confirm it as sent, or resend it). The record comes first: a
/// delivery is never `UNCONFIRMED` without one.
pub(crate) async fn unconfirmed(m: &Msg<'_>, d: &Delivery, code: &str) -> Outcome {
    let c = &m.deps.config;
    let record = NewFailure {
        cycle: Some(d.cycle),
        subject: m.id.clone(),
        stage: m.deps.stage(),
        code: "send-unconfirmed".into(),
        reason: format!(
            "a {} provider call may have delivered it ({code}) and the provider cannot be asked: \
             confirm it as sent, or resend it",
            c.channel
        ),
        channel: Some(c.channel),
        attempts: attempts(d, c.channel) + 1,
        run_id: Some(m.message.run_id.clone()),
        replay: None,
    };
    if let Err(e) = m.read("PutItem", m.deps.failures.record(&record, m.now())).await {
        return infra(m.id(), "could not record an unconfirmed send", &e);
    }
    let write = m
        .deps
        .deliveries
        .give_back(&m.key, &m.claim_id, GiveBack::Unconfirmed, code, m.now(), m.now());
    match m.step("could not mark the delivery unconfirmed", write).await {
        Ok(_) => {
            tracing::warn!(
                delivery_id = m.id(),
                code,
                "outcome unknown and the provider cannot be asked; UNCONFIRMED for an operator"
            );
            Outcome::Unconfirmed
        }
        Err(o) => o,
    }
}

/// A failed send: what the retry policy says.
pub(crate) async fn failed(m: &Msg<'_>, d: &Delivery, code: &str, reason: &str, permanent: bool) -> Outcome {
    let c = &m.deps.config;
    let attempts = attempts(d, c.channel) + 1;
    let next = c
        .retry
        .after_failure(m.id(), c.channel, attempts, permanent, m.policy.allows(Channel::Sms));
    let reason = domain::text::bounded(reason, 512).into_owned();
    tracing::warn!(delivery_id = m.id(), channel = %c.channel, attempts, code, %reason, permanent, next = ?next, "send failed");
    match next {
        AfterFailure::Retry { delay_secs } => {
            let recheck = m.recheck_at(Duration::from_secs(u64::from(delay_secs)));
            let write = m
                .deps
                .deliveries
                .give_back(&m.key, &m.claim_id, GiveBack::Retry, code, recheck, m.now());
            if let Err(o) = m.step("could not give the claim back", write).await {
                return o;
            }
            let receipt = m.sqs.receipt_handle.as_deref().unwrap_or_default();
            if let Err(e) = m.deps.queue.retry_after(receipt, delay_secs).await {
                // The message comes back after the queue's visibility timeout instead.
                tracing::warn!(delivery_id = m.id(), error = %e, "could not set the backoff");
            }
            Outcome::Retried
        }
        AfterFailure::FallBackToSms => to_sms(m, GiveBack::FallBackToSms, code).await,
        AfterFailure::Dead => give_up(m, Some(d), code, &reason).await,
    }
}

/// An email delivery moves to the SMS queue: after email gave up, or without trying when the
/// operators have disabled email.
async fn to_sms(m: &Msg<'_>, how: GiveBack, code: &str) -> Outcome {
    let recheck = m.recheck_at(m.deps.config.trouble_delay);
    let write = m
        .deps
        .deliveries
        .give_back(&m.key, &m.claim_id, how, code, recheck, m.now());
    if let Err(o) = m.step("could not give the claim back", write).await {
        return o;
    }
    let msg = DeliveryMessage {
        delivery_id: m.id.clone(),
        channel: Channel::Sms,
        run_id: m.message.run_id.clone(),
        copies: 0,
    };
    match m.read("SendMessage", m.deps.sms_queue.send_one(&msg)).await {
        Ok(()) => {
            tracing::info!(delivery_id = m.id(), code, "on the SMS queue");
            Outcome::FellBack
        }
        // Kept: its next receipt finds the delivery queued on SMS and sends the SMS message again.
        Err(e) => infra(m.id(), "could not enqueue the SMS fallback", &e),
    }
}

/// A delivery queued on a channel the operators have since disabled is not sent on it: email
/// goes to SMS when SMS is enabled; otherwise the delivery goes back to `READY`, due now, and
/// dispatch routes it by the policy in force (or keeps it paused under `none`).
pub(crate) async fn channel_disabled(m: &Msg<'_>) -> Outcome {
    let c = &m.deps.config;
    if c.channel == Channel::Email && m.policy.allows(Channel::Sms) {
        return to_sms(m, GiveBack::HandOverToSms, "channel-disabled").await;
    }
    let now = m.now();
    let write = m.deps.deliveries.defer_claimed(&m.key, &m.claim_id, now, now);
    match m.step("could not put the delivery back", write).await {
        Ok(_) => {
            tracing::info!(delivery_id = m.id(), channel = %c.channel, policy = %m.policy, "channel disabled; back to READY for dispatch");
            Outcome::Deferred
        }
        Err(o) => o,
    }
}

/// The email address is on the suppression list (a permanent bounce, a complaint, an
/// operator's entry): no email is sent nor counted as an attempt. Like a disabled channel, the
/// delivery goes to SMS when the channel policy allows it (code `suppressed`); otherwise, as
/// after a permanent email failure with no SMS to fall back to, it ends `DEAD` with its dead
/// letter, for an operator (who removes the entry and resends, or converts it to SMS).
pub(crate) async fn suppressed(m: &Msg<'_>, d: &Delivery, entry: &Suppression) -> Outcome {
    tracing::info!(
        delivery_id = m.id(),
        contact_hash = %entry.contact_hash,
        reason = entry.reason.as_str(),
        "the email address is on the suppression list; not emailed"
    );
    if m.policy.allows(Channel::Sms) {
        return match to_sms(m, GiveBack::HandOverToSms, "suppressed").await {
            Outcome::FellBack => Outcome::Suppressed,
            other => other,
        };
    }
    let reason = format!(
        "the email address is on the suppression list ({}, since {}) and the channel policy allows no SMS",
        entry.reason,
        utc_seconds::format(&entry.created_at)
    );
    give_up(m, Some(d), "suppressed", &reason).await
}

/// `DEAD`: first the dead letter with what replays it (or, if the queue
/// refuses, the failure record the dead letter would have made), then the
/// delivery. In that order a delivery is never `DEAD` without its record; a
/// retry after a failed state write sends a second letter, which the failure
/// log takes as a second record of the same failure.
pub(crate) async fn give_up(m: &Msg<'_>, d: Option<&Delivery>, code: &str, reason: &str) -> Outcome {
    let deps = m.deps;
    let c = &deps.config;
    let now = m.now();
    let letter = DeadLetter {
        delivery_id: m.id.clone(),
        channel: c.channel,
        run_id: Some(m.message.run_id.clone()),
        attempts: d.map(|d| attempts(d, c.channel) + 1),
        last_error: Some(domain::text::bounded(code, 128).into_owned()),
        dead_at: Some(utc_seconds::format(&now)),
    };
    tracing::warn!(delivery_id = m.id(), code, reason = %domain::text::bounded(reason, 512), "delivery dead");
    let body = match serde_json::to_string(&letter) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(delivery_id = m.id(), error = %e, "the dead letter does not encode");
            return Outcome::Error;
        }
    };
    if let Err(e) = m.read("SendMessage", deps.dead_letters.send(&body)).await {
        tracing::warn!(delivery_id = m.id(), error = %e, "dead-letter queue refused; recording the failure directly");
        let record = NewFailure::dead_letter(&letter, &body, None);
        if let Err(e) = m.read("PutItem", deps.failures.record(&record, now)).await {
            return infra(m.id(), "could not record a dead delivery", &e);
        }
    }
    let write = deps
        .deliveries
        .give_back(&m.key, &m.claim_id, GiveBack::Dead, code, now, now);
    match m.step("could not mark the delivery dead", write).await {
        Ok(_) => Outcome::Dead,
        Err(o) => o,
    }
}
