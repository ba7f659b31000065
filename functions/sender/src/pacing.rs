//! Pacing a sender's provider calls to the account's send rate, shared by
//! every instance ([`adapters::pacing::Pacer`]; the design and its numbers are
//! there and in docs/channels.md).
//!
//! * Email: the rate is the account's quota ([`QuotaSource`]: SES
//!   `GetAccount`'s `MaxSendRate`, or the mock's `MOCK_MAX_SEND_RATE`), read
//!   at most every [`QUOTA_TTL`]; a failed read keeps the last rate known, or
//!   paces at [`FALLBACK_RATE`] (SES's sandbox rate, the lowest an account
//!   has) until a read succeeds: never unpaced because the quota could not be
//!   read.
//! * SMS: `SMS_MAX_SEND_RATE` messages per second; unset or `0`: unpaced.
//! * No `PACING_TABLE`: unpaced (a configuration older than pacing).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use adapters::StoreError;
use adapters::pacing::{Pacer, Take};
use providers::QuotaSource;

/// How long a read quota is used before it is read again.
pub const QUOTA_TTL: Duration = Duration::from_secs(300);

/// The rate used while the quota cannot be read and none was read before.
pub const FALLBACK_RATE: f64 = 1.0;

/// Where the rate comes from.
pub enum Rate {
    /// A fixed rate (SMS).
    Fixed(f64),
    /// The account's quota, cached.
    Quota {
        source: QuotaSource,
        /// When it was read, and its rate (`None`: unlimited).
        cached: Mutex<Option<(Instant, Option<f64>)>>,
    },
}

/// A channel's pacer and its rate.
pub struct Pacing {
    pub pacer: Pacer,
    pub rate: Rate,
}

impl Pacing {
    pub fn fixed(pacer: Pacer, rate: f64) -> Self {
        Pacing {
            pacer,
            rate: Rate::Fixed(rate),
        }
    }

    pub fn quota(pacer: Pacer, source: QuotaSource) -> Self {
        Pacing {
            pacer,
            rate: Rate::Quota {
                source,
                cached: Mutex::new(None),
            },
        }
    }

    /// The rate in force (messages per second), `None` when unlimited.
    pub async fn rate(&self) -> Option<f64> {
        match &self.rate {
            Rate::Fixed(r) => Some(*r).filter(|r| r.is_finite() && *r > 0.0),
            Rate::Quota { source, cached } => {
                let last = *cached.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((at, rate)) = last
                    && at.elapsed() < QUOTA_TTL
                {
                    return rate;
                }
                let rate = match source.read().await {
                    Ok(quota) => quota.and_then(|q| q.rate_limit()),
                    Err(e) => {
                        let kept = last.map(|(_, r)| r).unwrap_or(Some(FALLBACK_RATE));
                        tracing::warn!(code = %e.code, kind = %e.kind, rate = ?kept,
                            "the send quota could not be read; pacing at the rate known");
                        // Asked again after a tenth of the cache time, not at every send.
                        let retry_at = Instant::now()
                            .checked_sub(QUOTA_TTL - QUOTA_TTL / 10)
                            .unwrap_or_else(Instant::now);
                        *cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((retry_at, kept));
                        return kept;
                    }
                };
                *cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), rate));
                rate
            }
        }
    }

    /// Waits for a token, for at most `budget`: `Granted` (send now; also
    /// when the rate is unlimited) or `TimeUp`.
    pub async fn take(&self, budget: Duration) -> Result<Take, StoreError> {
        let Some(rate) = self.rate().await else {
            return Ok(Take::Granted { waited: Duration::ZERO });
        };
        self.pacer.take(rate, Instant::now() + budget).await
    }
}

/// The shortest and longest delay, in seconds, before a throttled message
/// comes back (drawn at random between them, so that the throttled sends of
/// one second do not all come back in the same second).
pub const THROTTLE_DELAY_SECS: (u32, u32) = (1, 3);

/// The provider throttled the send (its rate or quota): nothing was sent and
/// nothing is wrong with the message. The claim is released with no attempt
/// counted and the call mark cleared ([`DeliveryStore::release_unsent`]), so
/// a throttle never leads to a retry count, a fallback or `DEAD`.
///
/// [`DeliveryStore::release_unsent`]: adapters::deliveries::DeliveryStore::release_unsent
pub(crate) async fn throttled(m: &crate::message::Msg<'_>, e: &providers::ProviderError) -> crate::Outcome {
    tracing::info!(delivery_id = m.id(), code = %e.code, "throttled by the provider; released, no attempt counted");
    let recheck = m.recheck_at(Duration::from_secs(u64::from(THROTTLE_DELAY_SECS.1)));
    let write = m.deps.deliveries.release_unsent(&m.key, &m.claim_id, recheck, m.now());
    match m.step("could not release a throttled send", write).await {
        Ok(_) => crate::Outcome::Throttled,
        Err(o) => o,
    }
}

/// A throttled message comes back after [`THROTTLE_DELAY_SECS`]: as a fresh
/// copy (a throttle must not spend the receive count the queue's redrive
/// policy keeps for bad messages; nor does it count as one of the copies
/// made after the sender's own trouble), or, when the copy cannot be sent,
/// the message itself. True when the copy is on the queue (the message is
/// then acknowledged).
pub(crate) async fn come_back(
    deps: &crate::Deps,
    sqs: &aws_lambda_events::event::sqs::SqsMessage,
    message: Option<domain::delivery::DeliveryMessage>,
) -> bool {
    let delay = fastrand::u32(THROTTLE_DELAY_SECS.0..=THROTTLE_DELAY_SECS.1);
    if let Some(message) = message {
        match deps.queue.send_copy(&message, delay).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(delivery_id = %message.delivery_id, error = %e, "could not put a throttled message back; the message itself comes back");
            }
        }
    }
    let receipt = sqs.receipt_handle.as_deref().unwrap_or_default();
    if let Err(e) = deps.queue.retry_after(receipt, delay).await {
        tracing::warn!(error = %e, "could not set the delay; the queue's visibility timeout applies");
    }
    false
}
