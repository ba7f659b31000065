//! What became of each message ([`Outcome`]) and of a whole invocation
//! ([`SendReport`], which the metrics line and the local runs count from).

use serde::{Deserialize, Serialize};

/// What became of one message.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Sent and completed.
    Sent,
    /// The provider had accepted it already (an earlier attempt whose answer
    /// or completion was lost): completed without sending.
    Recovered,
    /// A call may have reached a provider that cannot be asked (its answer
    /// was lost, or an earlier claim's call never ended): `UNCONFIRMED`, with
    /// a failure record, for an operator to confirm or resend — never sent
    /// again blindly.
    Unconfirmed,
    /// Already sent: a duplicate message, acknowledged.
    Duplicate,
    /// Not allowed in this slot: back to `READY` at the next allowed one.
    Deferred,
    /// Failed; tried again after a backoff.
    Retried,
    /// Email gave up: on the SMS queue.
    FellBack,
    /// The email address is on the suppression list: on the SMS queue without an email
    /// attempt.
    Suppressed,
    /// Every channel gave up: `DEAD`, with a dead letter.
    Dead,
    /// Another sender holds a live claim: left for later.
    Busy,
    /// Not queued for this channel any more: acknowledged.
    Stale,
    /// Bad input: a failure record, acknowledged.
    Parked,
    /// Claimed but too little time left to send: released untouched.
    Released,
    /// The provider refused it for the send rate or quota (throttled), or no
    /// send-rate token came in time: released without counting an attempt,
    /// back after a short delay. Never a failure, a fallback or `DEAD`.
    Throttled,
    /// A sender whose lease was taken over lost its completion write.
    LostClaim,
    /// Infrastructure trouble (a store, a queue): the message is retried.
    Error,
}

impl Outcome {
    /// Whether the message stays on the queue (reported as a batch item
    /// failure) rather than being deleted. After the sender's own trouble
    /// (`Error`, `Released`) a fresh copy usually takes its place instead.
    pub fn keeps_message(self) -> bool {
        matches!(
            self,
            Outcome::Retried | Outcome::Busy | Outcome::Released | Outcome::Throttled | Outcome::Error
        )
    }
}

/// What one invocation did, by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendReport {
    pub messages: u64,
    pub sent: u64,
    pub recovered: u64,
    pub unconfirmed: u64,
    pub duplicates_suppressed: u64,
    pub deferred: u64,
    pub retried: u64,
    pub fallback: u64,
    /// Handed to SMS because the email address is on the suppression list.
    #[serde(default)]
    pub suppressed: u64,
    pub dead: u64,
    pub busy: u64,
    pub stale: u64,
    pub parked: u64,
    pub released: u64,
    /// Throttled by the provider (rate or quota): released, no attempt counted.
    #[serde(default)]
    pub throttled: u64,
    pub lost_claims: u64,
    pub errors: u64,
    /// Provider calls that failed (each retried, fallen back or dead).
    pub failed: u64,
}

impl SendReport {
    pub(crate) fn count(&mut self, o: Outcome) {
        self.messages += 1;
        let n = match o {
            Outcome::Sent => &mut self.sent,
            Outcome::Recovered => &mut self.recovered,
            Outcome::Unconfirmed => &mut self.unconfirmed,
            Outcome::Duplicate => &mut self.duplicates_suppressed,
            Outcome::Deferred => &mut self.deferred,
            Outcome::Retried => &mut self.retried,
            Outcome::FellBack => &mut self.fallback,
            Outcome::Suppressed => &mut self.suppressed,
            Outcome::Dead => &mut self.dead,
            Outcome::Busy => &mut self.busy,
            Outcome::Stale => &mut self.stale,
            Outcome::Parked => &mut self.parked,
            Outcome::Released => &mut self.released,
            Outcome::Throttled => &mut self.throttled,
            Outcome::LostClaim => &mut self.lost_claims,
            Outcome::Error => &mut self.errors,
        };
        *n += 1;
        if matches!(o, Outcome::Retried | Outcome::FellBack | Outcome::Dead) {
            self.failed += 1;
        }
    }
}

impl std::ops::AddAssign<&SendReport> for SendReport {
    fn add_assign(&mut self, o: &SendReport) {
        self.messages += o.messages;
        self.sent += o.sent;
        self.recovered += o.recovered;
        self.unconfirmed += o.unconfirmed;
        self.duplicates_suppressed += o.duplicates_suppressed;
        self.deferred += o.deferred;
        self.retried += o.retried;
        self.fallback += o.fallback;
        self.suppressed += o.suppressed;
        self.dead += o.dead;
        self.busy += o.busy;
        self.stale += o.stale;
        self.parked += o.parked;
        self.released += o.released;
        self.throttled += o.throttled;
        self.lost_claims += o.lost_claims;
        self.errors += o.errors;
        self.failed += o.failed;
    }
}
