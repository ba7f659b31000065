//! `DeliveryEvents`: what the providers say became of the messages they
//! accepted, turned into a lifecycle for each sent delivery. Triggered by the
//! evidence queue (batches of up to ten, partial batch responses), which
//! EventBridge rules feed with SES's configuration-set events (`aws.ses`),
//! End User Messaging SMS's status events (`aws.sms-voice`) and the mock
//! provider's simulated ones (`billing.mock-provider`). For every record:
//!
//! 1. **Read** the event ([`domain::evidence::parse`]): ids, kind and time
//!    only; every address and number is dropped here. A record that does not
//!    parse is acknowledged and counted (`UnknownEvidence`), its error naming
//!    the field, never the value: retrying it cannot help.
//! 2. **Which delivery**: the message's tags name it (`cycle`, `shard`,
//!    `customer`, `channel`, `round`). An event without them is recorded,
//!    acknowledged and counted as unknown.
//! 3. **Lifecycle** ([`adapters::deliveries::evidence`]): a delivery receipt,
//!    a permanent bounce or reject, a complaint set `DELIVERED`, `BOUNCED`,
//!    `COMPLAINED` on the delivery, only for its last send (the event's
//!    message id is the delivery's `provider_message_id`) and only to a higher
//!    rank, so a redelivered or out-of-order event changes nothing. A send,
//!    a delay, a soft bounce or a pending SMS is recorded only.
//! 4. **Fallback**: a permanent bounce or a reject of the invoice email sends
//!    it by SMS: in one conditional write the delivery goes from
//!    `SENT_EMAIL` (with this message, not yet routed) to `READY` with
//!    `route = sms`, due at the start of the customer's next allowed slot
//!    (their DND and the quiet window), back in the `Due` index. Dispatch
//!    then enqueues it on SMS only; the condition makes it happen once, and
//!    never while an SMS is claimed or sent. A complaint never falls back.
//! 5. **Suppression**: a permanent bounce or a complaint puts the contact on
//!    the suppression list ([`adapters::suppressions`]), keyed by the
//!    delivery's `email_hash` (or, for a delivery rendered before it had one,
//!    the keyed hash of the customer's email, computed here and never logged).
//! 6. **Not yet**: an event can overtake its sender's completion write. When
//!    its message id is not the delivery's and the delivery is still `QUEUED`
//!    or `SENDING` on that channel, the record is handed back (a batch item
//!    failure) and comes again after the queue's visibility timeout, at most
//!    [`Config::early_receives`] receives; after that it is recorded as stale.
//! 7. **Once**: every handled event is recorded in the evidence log
//!    ([`adapters::evidence`], conditional put on the EventBridge `id`), with
//!    its outcome (applied, stale, unknown-message, recorded-only). A
//!    redelivery finds its record and is counted once.
//!
//! A store that does not answer hands the record back (the queue's redrive
//! policy parks it after its receives); a bad record never fails the batch,
//! and an invocation never fails ([`EventsError`] has no values).
//!
//! Records of a batch are handled concurrently, at most
//! [`Config::concurrency`] at a time. Every invocation writes one CloudWatch
//! Embedded Metric Format line per channel ([`metrics`]): `Delivered`,
//! `Bounced`, `Complained`, `TransientBounces`, `Delayed`,
//! `EvidenceFallbacks`, `UnknownEvidence`, `SuppressedContacts`.
//!
//! | module | what it holds |
//! |---|---|
//! | `lib` | the entries: [`handle`] for Lambda, [`handle_batch`] for the local pollers and tests |
//! | `record` | one record: steps 1 to 7 |
//! | `deps` | [`Config`], [`Deps`] from the function's variables, [`EventsError`] |
//! | [`metrics`] | the counts and their Embedded Metric Format lines |

mod deps;
pub mod metrics;
mod record;

pub use deps::{Clock, Config, Deps, EventsError};
pub use metrics::{Count, EvidenceReport};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::{StreamExt, stream};
use lambda_runtime::LambdaEvent;

use record::{Handled, handle_record};

/// The Lambda entry point: the batch response, and the invocation's metrics
/// as EMF lines on stdout.
pub async fn handle(deps: &Deps, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, EventsError> {
    let (response, report) = handle_batch(deps, event).await?;
    for line in report.emf_lines(&deps.config.stack, (deps.clock)()) {
        println!("{line}");
    }
    Ok(response)
}

/// Handles one batch: the records to try again (`ReportBatchItemFailures`)
/// and the counts. [`handle`] without the metrics lines.
pub async fn handle_batch(
    deps: &Deps,
    event: LambdaEvent<SqsEvent>,
) -> Result<(SqsBatchResponse, EvidenceReport), EventsError> {
    let results: Vec<(Option<String>, Handled)> = stream::iter(event.payload.records)
        .map(|m| async move { (m.message_id.clone(), handle_record(deps, &m).await) })
        .buffer_unordered(deps.config.concurrency.max(1))
        .collect()
        .await;
    let mut report = EvidenceReport::default();
    let mut failed = Vec::new();
    for (id, handled) in results {
        match handled {
            Handled::Done(t) => report.add(&t, false),
            Handled::Retry(t) => {
                report.add(&t, true);
                // An empty id fails the whole batch: nothing is lost.
                failed.push(id.unwrap_or_default());
            }
        }
    }
    tracing::info!(
        records = report.records,
        retried = report.retried,
        delivered = report.total(Count::Delivered),
        bounced = report.total(Count::Bounced),
        complained = report.total(Count::Complained),
        fallbacks = report.total(Count::EvidenceFallbacks),
        unknown = report.total(Count::UnknownEvidence),
        suppressed = report.total(Count::SuppressedContacts),
        "batch handled"
    );
    Ok((runtime::batch_response(failed), report))
}
