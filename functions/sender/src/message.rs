//! One message: reading it (ids only; anything else is parked with a failure
//! record), its context while it is handled ([`Msg`]: the claim, the time
//! left, the bounded reads and writes), and what happens to it after the
//! sender's own trouble (a fresh copy put back, or the message itself retried
//! later).

use std::time::{Duration, SystemTime};

use adapters::StoreError;
use adapters::deliveries::claims::ClaimKey;
use adapters::deliveries::write::Written;
use adapters::dynamo::Item;
use adapters::failures::NewFailure;
use aws_lambda_events::event::sqs::SqsMessage;
use chrono::{DateTime, Utc};
use domain::delivery::DeliveryMessage;
use domain::dispatch::ChannelPolicy;
use domain::{Channel, Cycle};

use crate::pipeline::deliver;
use crate::{CrashPoint, Deps, Outcome, SenderError};

/// One message's context.
pub(crate) struct Msg<'a> {
    pub(crate) deps: &'a Deps,
    pub(crate) sqs: &'a SqsMessage,
    pub(crate) body: &'a str,
    pub(crate) message: DeliveryMessage,
    pub(crate) key: ClaimKey,
    /// The canonical delivery id: logs, failure records, the providers' keys.
    pub(crate) id: String,
    pub(crate) claim_id: String,
    deadline: SystemTime,
    /// The channel policy of this batch.
    pub(crate) policy: ChannelPolicy,
}

impl Msg<'_> {
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.deps.clock)()
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }

    /// The longest one store or queue call may take now: what is left of the
    /// invocation, less a second to answer the batch.
    pub(crate) fn call_limit(&self) -> Duration {
        self.remaining().saturating_sub(Duration::from_secs(1))
    }

    /// When dispatch re-checks a delivery this sender hands back to a queue
    /// now, whose message should bring it back within `expected`.
    pub(crate) fn recheck_at(&self, expected: Duration) -> DateTime<Utc> {
        let c = &self.deps.config;
        self.now() + chrono::Duration::from_std(expected + c.recheck_after).unwrap_or(chrono::Duration::hours(3))
    }

    /// A store read within [`call_limit`](Self::call_limit).
    pub(crate) async fn read<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        StoreError::within(self.call_limit(), op, self.id(), call).await
    }

    /// A read made while holding a claim, before the provider call: within
    /// the time left less the finish margin, so that a read cut off still
    /// leaves time to hand the claim back.
    pub(crate) async fn read_claimed<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.call_limit().saturating_sub(self.deps.config.finish_margin);
        StoreError::within(limit, op, self.id(), call).await
    }

    /// A change by this message's claim, within [`call_limit`](Self::call_limit),
    /// and what it comes to ([`settle`](Self::settle)).
    pub(crate) async fn step(
        &self,
        what: &str,
        write: impl std::future::Future<Output = Written>,
    ) -> Result<Item, Outcome> {
        self.settle(what, self.bounded(write).await)
    }

    /// What a write by this message's claim comes to, for every write the
    /// sender makes: applied (or found applied: a lost answer), the item as it
    /// stands, and the message goes on; otherwise the outcome the message ends
    /// with — refused, the claim was taken over ([`Outcome::LostClaim`]); no
    /// answer, our own trouble ([`Outcome::Error`]; `what` says what could not
    /// be done), and the message is retried.
    pub(crate) fn settle(&self, what: &str, written: Written) -> Result<Item, Outcome> {
        match written {
            Written::Applied(item) => Ok(item),
            Written::Refused(_) => Err(lost(self)),
            Written::Unknown(e) => Err(infra(self.id(), what, &e)),
        }
    }

    /// A write within [`call_limit`](Self::call_limit); past it, no answer.
    pub(crate) async fn bounded(&self, write: impl std::future::Future<Output = Written>) -> Written {
        let limit = self.call_limit();
        match tokio::time::timeout(limit, write).await {
            Ok(w) => w,
            Err(_) => Written::Unknown(StoreError::Deadline {
                op: "UpdateItem",
                resource: self.deps.deliveries.table().to_owned(),
                limit_ms: limit.as_millis(),
            }),
        }
    }

    pub(crate) fn crash(&self, point: CrashPoint) -> Result<(), SenderError> {
        match &self.deps.crash {
            Some(plan) if plan(self.id(), point) => Err(SenderError::Crashed(point)),
            _ => Ok(()),
        }
    }

    /// Whether this channel's provider can say afterwards whether it took a key.
    pub(crate) fn provider_answers_lookups(&self) -> bool {
        match self.deps.config.channel {
            Channel::Email => self.deps.email.answers_lookups(),
            Channel::Sms => self.deps.sms.answers_lookups(),
        }
    }
}

/// A store or queue error that leaves the message for a retry.
pub(crate) fn infra(id: &str, what: &str, e: &StoreError) -> Outcome {
    tracing::error!(delivery_id = id, error = %e, "{what}; the message will be retried");
    Outcome::Error
}

/// A write refused: another sender took the claim over.
fn lost(m: &Msg<'_>) -> Outcome {
    tracing::warn!(
        delivery_id = m.id(),
        "the claim was taken over; this sender's write lost"
    );
    Outcome::LostClaim
}

/// Copies of a message a sender puts back after its own trouble before it
/// leaves the message to the queue's receive count (and so, after a long
/// outage, to the dead-letter queue and the `Due` index's re-check).
pub const MAX_COPIES: u32 = 12;

/// What became of a message, and whether it stays on the queue.
pub(crate) type Handled = (Outcome, bool);

pub(crate) async fn handle_message(
    deps: &Deps,
    sqs: &SqsMessage,
    request_id: &str,
    deadline: SystemTime,
    policy: ChannelPolicy,
) -> Result<Handled, SenderError> {
    let (outcome, message) = read_and_deliver(deps, sqs, request_id, deadline, policy).await?;
    let keep = match (outcome, message) {
        (Outcome::Error | Outcome::Released, Some(message)) => !put_back(deps, sqs, message).await,
        (Outcome::Error | Outcome::Released, None) => {
            retry_later(deps, sqs).await;
            true
        }
        (Outcome::Throttled, message) => !crate::pacing::come_back(deps, sqs, message).await,
        (o, _) => o.keeps_message(),
    };
    Ok((outcome, keep))
}

/// After the sender's own trouble (or a claim released for lack of time), a
/// fresh copy of the message goes back on the queue with a growing delay and
/// this one is acknowledged: the trouble does not spend the receive count that
/// the queue's redrive policy keeps for bad messages. True when the copy is
/// on the queue. Past [`MAX_COPIES`], or when the queue refuses the copy, the
/// message itself is retried after the trouble delay.
pub(crate) async fn put_back(deps: &Deps, sqs: &SqsMessage, mut message: DeliveryMessage) -> bool {
    if message.copies >= MAX_COPIES {
        tracing::warn!(delivery_id = %message.delivery_id, copies = message.copies, "no copies left; the message itself is retried");
        retry_later(deps, sqs).await;
        return false;
    }
    let base = deps.config.trouble_delay.as_secs().max(1);
    let delay = base.saturating_mul(1u64 << message.copies.min(10)).min(900) as u32;
    message.copies += 1;
    match deps.queue.send_copy(&message, delay).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(delivery_id = %message.delivery_id, error = %e, "could not put a copy back; the message itself is retried");
            retry_later(deps, sqs).await;
            false
        }
    }
}

pub(crate) async fn retry_later(deps: &Deps, sqs: &SqsMessage) {
    let receipt = sqs.receipt_handle.as_deref().unwrap_or_default();
    let secs = deps.config.trouble_delay.as_secs().max(1) as u32;
    if let Err(e) = deps.queue.retry_after(receipt, secs).await {
        tracing::warn!(error = %e, "could not set the delay; the queue's visibility timeout applies");
    }
}

/// Reads the message and delivers it: the outcome, and the message when it
/// was one (what a copy repeats).
pub(crate) async fn read_and_deliver(
    deps: &Deps,
    sqs: &SqsMessage,
    request_id: &str,
    deadline: SystemTime,
    policy: ChannelPolicy,
) -> Result<(Outcome, Option<DeliveryMessage>), SenderError> {
    let message_id = sqs.message_id.clone().unwrap_or_default();
    let body = sqs.body.as_deref().unwrap_or_default();
    let channel = deps.config.channel;
    let message = match domain::decode::from_str::<DeliveryMessage>(body) {
        Ok(m) => m,
        Err(e) => {
            let reason = format!(
                "the body is not a delivery message ({e}); expected {{\"delivery_id\", \"channel\", \"run_id\"}}"
            );
            return Ok((
                park(deps, None, &message_id, "malformed-message", reason, None).await,
                None,
            ));
        }
    };
    // Ids only from here on: the delivery id parses and the run id is id-shaped, so the
    // message may be logged, recorded and replayed as it is.
    let id = match message.check() {
        Ok(id) => id,
        Err(e) => {
            let outcome = park(deps, None, &message_id, "malformed-message", e.to_string(), None).await;
            return Ok((outcome, None));
        }
    };
    let canonical = id.canonical();
    if message.channel != channel {
        let reason = format!(
            "a {} message on the {channel} queue; the {channel} sender does not send it",
            message.channel
        );
        let outcome = park(deps, Some(id.cycle), &canonical, "wrong-channel", reason, Some(body)).await;
        return Ok((outcome, None));
    }
    let m = Msg {
        deps,
        sqs,
        body,
        // Unique per receive even where request ids repeat (local runtimes): the claim id
        // names this claim's writes, and a write that finds its own name is taken as applied.
        claim_id: format!("{request_id}/{message_id}/{:016x}", fastrand::u64(..)),
        key: ClaimKey { id, channel },
        id: canonical,
        message,
        deadline,
        policy,
    };
    let outcome = deliver(&m).await?;
    Ok((outcome, Some(m.message)))
}

/// Parks a message that cannot be handled: a failure record, then
/// acknowledged. If even the record cannot be written, the message stays
/// (and reaches the dead-letter queue after its receives).
pub(crate) async fn park(
    deps: &Deps,
    cycle: Option<Cycle>,
    subject: &str,
    code: &str,
    reason: String,
    replay: Option<&str>,
) -> Outcome {
    let f = NewFailure {
        cycle,
        subject: subject.to_owned(),
        stage: deps.stage(),
        code: code.to_owned(),
        reason,
        channel: Some(deps.config.channel),
        attempts: 0,
        run_id: None,
        replay: replay.map(str::to_owned),
    };
    match deps.failures.record(&f, (deps.clock)()).await {
        Ok(()) => {
            tracing::warn!(subject, code, "message parked");
            Outcome::Parked
        }
        Err(e) => infra(subject, "could not park a bad message", &e),
    }
}
