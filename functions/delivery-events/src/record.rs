//! One SQS record: read the event, change its delivery, suppress the contact
//! when the evidence says so, record the event once, and say what to count.

use adapters::StoreError;
use adapters::deliveries::evidence::{EvidenceUpdate, EvidenceWrite, FallBack};
use adapters::evidence::{EvidenceOutcome, Recorded};
use adapters::suppressions::{Suppression, SuppressionReason};
use aws_lambda_events::event::sqs::SqsMessage;
use domain::DeliveryId;
use domain::delivery::EvidenceState;
use domain::evidence::{BounceType, EvidenceKind, ProviderEvent, SuppressFor};
use domain::pii::Field;
use tracing::Instrument;

use crate::Deps;
use crate::metrics::{Count, Tally};

/// What became of a record.
#[derive(Debug)]
pub(crate) enum Handled {
    /// Done: acknowledge it, count this.
    Done(Tally),
    /// Hand it back: its delivery's completion write has not landed yet, or
    /// a store did not answer.
    Retry(Tally),
}

/// How many times SQS has delivered the record (1 on the first receive).
fn receive_count(m: &SqsMessage) -> u32 {
    m.attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

pub(crate) async fn handle_record(deps: &Deps, m: &SqsMessage) -> Handled {
    let message_id = m.message_id.as_deref().unwrap_or("");
    let event = match domain::evidence::parse(m.body.as_deref().unwrap_or("")) {
        Ok(e) => e,
        Err(e) => {
            // Not an event this function reads: retrying cannot help. Dropped on purpose,
            // counted as unknown evidence; the error names the field, never a value.
            tracing::warn!(message_id, field = e.field(), error = %e, "an evidence record that does not parse is dropped");
            return Handled::Done(Tally::unparsed());
        }
    };
    let span = tracing::info_span!(
        "evidence",
        event_id = %event.event_id,
        kind = event.kind.name(),
        channel = %event.channel,
        delivery_id = event.delivery.as_ref().map(|d| d.id.to_string()).unwrap_or_default(),
    );
    async {
        match apply(deps, &event, receive_count(m)).await {
            Ok(Applied::Later) => {
                tracing::info!("the event is ahead of its delivery's completion; it will be tried again");
                Handled::Retry(Tally::new(event.channel))
            }
            Ok(Applied::Now {
                outcome,
                fell_back,
                suppressed,
            }) => {
                let now = (deps.clock)();
                match deps.log.record(&event, outcome, now).await {
                    Ok(Recorded::New) => {
                        tracing::info!(outcome = outcome.as_str(), fell_back, suppressed, "evidence recorded");
                        Handled::Done(count(&event, outcome, fell_back, suppressed))
                    }
                    Ok(Recorded::Duplicate) => {
                        tracing::info!("a redelivered event: recorded before");
                        let mut t = Tally::new(event.channel);
                        if suppressed {
                            t.add(Count::SuppressedContacts);
                        }
                        Handled::Done(t)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the evidence log did not answer; the event will be tried again");
                        Handled::Retry(Tally::new(event.channel))
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a store did not answer; the event will be tried again");
                Handled::Retry(Tally::new(event.channel))
            }
        }
    }
    .instrument(span)
    .await
}

/// What an event did to its delivery.
enum Applied {
    Now {
        outcome: EvidenceOutcome,
        fell_back: bool,
        /// A new suppression list entry.
        suppressed: bool,
    },
    /// Try the event again later.
    Later,
}

async fn apply(deps: &Deps, event: &ProviderEvent, receives: u32) -> Result<Applied, StoreError> {
    let now = (deps.clock)();
    let Some(delivery) = &event.delivery else {
        tracing::warn!("an event without the tags that name a delivery");
        return Ok(Applied::Now {
            outcome: EvidenceOutcome::UnknownMessage,
            fell_back: false,
            suppressed: false,
        });
    };
    let Some(update) = EvidenceUpdate::of(event) else {
        return Ok(Applied::Now {
            outcome: EvidenceOutcome::RecordedOnly,
            fell_back: false,
            suppressed: false,
        });
    };
    let mut fell_back = false;
    let written = match event.falls_back() {
        true => match deps
            .deliveries
            .fall_back_on_evidence(&update, deps.config.quiet, now)
            .await?
        {
            FallBack::Applied {
                available_at,
                email_hash,
            } => {
                tracing::info!(%available_at, "the email bounced: the invoice goes by SMS");
                fell_back = true;
                EvidenceWrite::Applied { email_hash }
            }
            FallBack::NotApplicable => deps.deliveries.record_evidence(&update, now).await?,
        },
        false => deps.deliveries.record_evidence(&update, now).await?,
    };
    let outcome = match &written {
        EvidenceWrite::Applied { .. } => EvidenceOutcome::Applied,
        EvidenceWrite::Superseded { .. } | EvidenceWrite::Stale => EvidenceOutcome::Stale,
        EvidenceWrite::NotYet if receives < deps.config.early_receives => return Ok(Applied::Later),
        EvidenceWrite::NotYet => {
            tracing::warn!(receives, "the delivery never stored this message id; recorded as stale");
            EvidenceOutcome::Stale
        }
        EvidenceWrite::NotSent | EvidenceWrite::Missing => EvidenceOutcome::UnknownMessage,
    };
    let mut suppressed = false;
    if let (Some(why), Some(hash)) = (event.suppresses(), written.about_last_send()) {
        let hash = match hash {
            Some(h) => Some(h.to_owned()),
            None => contact_hash(deps, &delivery.id).await?,
        };
        match hash {
            Some(contact_hash) => {
                let entry = Suppression {
                    contact_hash,
                    reason: match why {
                        SuppressFor::Bounce => SuppressionReason::Bounce,
                        SuppressFor::Complaint => SuppressionReason::Complaint,
                    },
                    created_at: now,
                    source: event.event_id.clone(),
                    delivery_id: Some(delivery.id.canonical()),
                    note: Some(event.kind.type_text()),
                    by: None,
                };
                suppressed = deps.suppressions.add(&entry).await?;
            }
            None => tracing::warn!("no contact to suppress: the customer or their email cannot be read"),
        }
    }
    Ok(Applied::Now {
        outcome,
        fell_back,
        suppressed,
    })
}

/// The keyed look-up hash of the customer's email, for a delivery rendered
/// before it carried one (`email_hash`). `None` when the customer or their
/// email cannot be read. Contact data is opened here, never logged.
async fn contact_hash(deps: &Deps, id: &DeliveryId) -> Result<Option<String>, StoreError> {
    let Some(Ok(customer)) = deps.customers.get_in_shard(id.shard, id.customer.as_str()).await? else {
        return Ok(None);
    };
    let keys = deps.keys.for_contact(&customer.contact).await?;
    let Ok(contact) = customer.contact.open(&keys, &customer.customer_id) else {
        return Ok(None);
    };
    Ok(Some(keys.lookup_hash(Field::Email, contact.email.expose())))
}

/// The counts of a new event.
fn count(event: &ProviderEvent, outcome: EvidenceOutcome, fell_back: bool, suppressed: bool) -> Tally {
    let mut t = Tally::new(event.channel);
    if outcome == EvidenceOutcome::Applied {
        match event.evidence_state() {
            Some(EvidenceState::Delivered) => t.add(Count::Delivered),
            Some(EvidenceState::Bounced) => t.add(Count::Bounced),
            Some(EvidenceState::Complained) => t.add(Count::Complained),
            None => {}
        }
    }
    match &event.kind {
        EvidenceKind::Bounce {
            bounce_type: BounceType::Transient | BounceType::Undetermined,
            ..
        }
        | EvidenceKind::SmsFailed { permanent: false, .. } => t.add(Count::TransientBounces),
        EvidenceKind::DeliveryDelay { .. } => t.add(Count::Delayed),
        _ => {}
    }
    if fell_back {
        t.add(Count::EvidenceFallbacks);
    }
    if outcome == EvidenceOutcome::UnknownMessage {
        t.add(Count::UnknownEvidence);
    }
    if suppressed {
        t.add(Count::SuppressedContacts);
    }
    t
}
