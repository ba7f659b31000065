//! `SendEmail` and `SendSms`: the delivery senders, one binary per channel,
//! each triggered by its SQS queue (batches of up to ten, partial batch
//! responses). For every message:
//!
//! 1. **Read** the message: ids only ([`DeliveryMessage`](domain::delivery::DeliveryMessage)). A body that is
//!    not one, a delivery id that does not parse, or a message for the other
//!    channel is **parked**: a failure record with a clear reason, and the
//!    message is acknowledged, so it never blocks or re-drives the rest of
//!    the batch.
//! 2. **Claim** the delivery (a conditional write, see
//!    [`adapters::deliveries::claims`]): `QUEUED` on this channel →
//!    `SENDING` with this sender's claim id (unique per receive) and a lease
//!    that ends shortly after the invocation's deadline; the delivery stays
//!    in the `Due` index at its re-check time. Already sent: a duplicate,
//!    acknowledged and counted (`duplicates_suppressed`). Claimed by a live
//!    sender: left for later. Unknown: parked. Anything else (deferred,
//!    held, dead, unconfirmed, fallen back to SMS): a stale message,
//!    acknowledged. A delivery that does not decode ends `DEAD`.
//! 3. **Slot check** (DESIGN §4): if the customer's DND or the quiet window
//!    forbids sending now, the delivery goes back to `READY`, due at the
//!    next allowed slot, and dispatch enqueues it then; if they leave no
//!    slot at all, it ends `DEAD` with its record.
//! 4. **Ask before sending again.** When this is not the first claim on the
//!    channel, or an earlier claim marked a provider call it never saw end,
//!    the sender asks the provider whether the idempotency key (built from
//!    the canonical [`DeliveryId`](domain::DeliveryId)) was already accepted, and completes
//!    without sending if it was. A provider that cannot answer (SES), after a
//!    marked call, leaves the delivery `UNCONFIRMED` with a failure record.
//! 5. **Send.** The customer and the invoice are read within the time left;
//!    then, immediately before the call, the time left and the slot are
//!    checked again, and a call to a provider that cannot be asked is marked
//!    as started. Contact data is opened here and only here, never logged.
//! 6. **Complete** (conditioned on the claim, tried again until the time runs
//!    short) or, after a failure, follow the [`RetryPolicy`](domain::sending::RetryPolicy): retry on the
//!    same channel after an exponential backoff with jitter (the message's
//!    visibility timeout), fall back from email to SMS (a message on the SMS
//!    queue), or end `DEAD` after its dead letter. A provider timeout
//!    (outcome unknown) is resolved by asking the provider; one that cannot
//!    be asked leaves the delivery `UNCONFIRMED`.
//!
//! Every write is a [`adapters::deliveries::write::Change`] answered
//! applied, refused or unknown. After its own trouble (a store or queue not
//! answering) the sender puts a fresh copy of the message back instead of
//! spending the message's receive count (at most [`MAX_COPIES`] times).
//!
//! Messages of a batch are handled concurrently, at most
//! [`Config::concurrency`] at a time. Every invocation writes one CloudWatch
//! Embedded Metric Format line ([`metrics`]).
//!
//! Where things are:
//!
//! | module | what it holds |
//! |---|---|
//! | `batch` | the entries ([`serve`] for the binaries, [`handle`] for Lambda, [`handle_batch`] for the local pollers and tests), the deadline an invocation works to, the batch response |
//! | `message` | reading a message and parking a bad one (step 1); its context while handled (the claim, the time left, bounded reads and writes); a fresh copy put back after our own trouble |
//! | `pipeline` | claim → slot check → ask → send → complete, and the short answers on the way (steps 2 to 6) |
//! | `content` | the idempotency keys, building the email or SMS, the provider call under its timeout (step 5) |
//! | `retry` | an unknown outcome, `UNCONFIRMED`, retry, fallback to SMS, `DEAD` (steps 4 and 6) |
//! | `outcome` | what became of a message ([`Outcome`]) and of an invocation ([`SendReport`]) |
//! | `deps` | [`Config`], [`Deps`] from the function's variables, the clock, injected crashes, [`SenderError`] |
//! | [`metrics`] | the invocation's Embedded Metric Format line |
//! | [`pacing`] | a token of the send-rate window before each provider call, shared by every instance |

mod batch;
mod content;
mod deps;
mod evidence_sink;
mod message;
pub mod metrics;
mod outcome;
pub mod pacing;
mod pipeline;
mod retry;

pub use batch::{effective_deadline, handle, handle_batch, serve};
pub use content::{idempotency_key, round_key};
pub use deps::{Clock, Config, CrashPlan, CrashPoint, Deps, SenderError, system_clock};
pub use message::MAX_COPIES;
pub use metrics::emf_line;
pub use outcome::{Outcome, SendReport};
