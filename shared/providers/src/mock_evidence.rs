//! The mock provider's delivery evidence: what SES and End User Messaging
//! would report after accepting a message, simulated at configured rates and
//! decided by the seed, so that the whole evidence path (the delivery-events
//! function, the lifecycle, the fallback to SMS, the suppression list, the
//! month report) runs without a real provider.
//!
//! * Each accepted message gets its events at once, in the shapes the real
//!   services publish to EventBridge, inside an EventBridge envelope whose
//!   `source` is [`MOCK_SOURCE`] (never `aws.ses`: nobody mistakes a
//!   simulation for SES's word):
//!   - email: `Delivery`; or a permanent `Bounce` (share
//!     [`EvidenceRates::bounce`]); or `Delivery` then `Complaint` (share
//!     [`EvidenceRates::complaint`]), the `mail.tags` carrying the message's
//!     tags as SES does (`{name: [value]}`);
//!   - SMS: `TEXT_DELIVERED`, or `TEXT_CARRIER_UNREACHABLE` (share
//!     [`EvidenceRates::sms_failed`]), the message's tags as `context`.
//! * Which messages bounce is a function of the seed and the provider
//!   message id, so a run is reproducible by its seed and a message accepted
//!   twice (an answer lost, a retry) is judged once per acceptance.
//! * No recipient, address or number appears in an event (the real ones
//!   carry them; our parser drops them anyway).
//! * Events go to an [`EvidenceSink`]: in a deployed stack the evidence
//!   queue the delivery-events function consumes (what the EventBridge rules
//!   feed from the real services).

use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{BoxFuture, Channel, ProviderError};

/// The EventBridge `source` of the mock's simulated events.
pub const MOCK_SOURCE: &str = "billing.mock-provider";

/// Shares of accepted messages whose evidence is not a plain delivery.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EvidenceRates {
    /// Emails that bounce permanently (`MOCK_BOUNCE_RATE`).
    pub bounce: f64,
    /// Emails delivered and then marked as spam (`MOCK_COMPLAINT_RATE`).
    pub complaint: f64,
    /// SMS the carrier cannot deliver (`MOCK_SMS_FAILED_RATE`).
    pub sms_failed: f64,
}

impl EvidenceRates {
    /// Reads `MOCK_BOUNCE_RATE`, `MOCK_COMPLAINT_RATE` and
    /// `MOCK_SMS_FAILED_RATE` (each 0 to 1, unset or empty: 0); the bounce
    /// and complaint rates together at most 1.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<EvidenceRates, String> {
        let rate = |name: &str| -> Result<f64, String> {
            match lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                None => Ok(0.0),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("{name} must be a number from 0 to 1, got {v:?}")),
            }
        };
        let rates = EvidenceRates {
            bounce: rate("MOCK_BOUNCE_RATE")?,
            complaint: rate("MOCK_COMPLAINT_RATE")?,
            sms_failed: rate("MOCK_SMS_FAILED_RATE")?,
        };
        if rates.bounce + rates.complaint > 1.0 {
            return Err(format!(
                "MOCK_BOUNCE_RATE + MOCK_COMPLAINT_RATE must be at most 1, got {} + {}",
                rates.bounce, rates.complaint
            ));
        }
        Ok(rates)
    }
}

/// Where the mock's events go. Usable as `Arc<dyn EvidenceSink>`.
pub trait EvidenceSink: Send + Sync {
    /// Hands over the events (EventBridge envelopes as JSON text) of one
    /// accepted message.
    fn emit<'a>(&'a self, events: &'a [String]) -> BoxFuture<'a, Result<(), ProviderError>>;
}

/// An [`EvidenceSink`] that keeps the events in memory (tests, tools).
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<String>>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event emitted so far, in order.
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl EvidenceSink for MemorySink {
    fn emit<'a>(&'a self, events: &'a [String]) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(events.iter().cloned());
        Box::pin(std::future::ready(Ok(())))
    }
}

/// What the evidence of one accepted message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Bounced,
    Complained,
    SmsDelivered,
    SmsFailed,
}

/// The verdict for an accepted message, from the seed and its provider
/// message id.
pub fn verdict(seed: u64, rates: &EvidenceRates, channel: Channel, provider_message_id: &str) -> Verdict {
    let mut h = Sha256::new();
    h.update(b"evidence");
    h.update(seed.to_le_bytes());
    h.update(provider_message_id.as_bytes());
    let d: [u8; 32] = h.finalize().into();
    let mut word = [0u8; 8];
    word.copy_from_slice(&d[..8]);
    let u = (u64::from_le_bytes(word) >> 11) as f64 / (1u64 << 53) as f64;
    match channel {
        Channel::Email if u < rates.bounce => Verdict::Bounced,
        Channel::Email if u < rates.bounce + rates.complaint => Verdict::Complained,
        Channel::Email => Verdict::Delivered,
        Channel::Sms if u < rates.sms_failed => Verdict::SmsFailed,
        Channel::Sms => Verdict::SmsDelivered,
    }
}

/// The events the mock emits for an accepted message, as EventBridge
/// envelopes (see the module doc). `tags` are the message's own (never
/// personal data); `at` is when it was accepted.
pub fn simulated_events(
    seed: u64,
    rates: &EvidenceRates,
    channel: Channel,
    provider_message_id: &str,
    tags: &[(String, String)],
    at: DateTime<Utc>,
) -> Vec<Value> {
    let time = |offset_ms: i64| at + chrono::Duration::milliseconds(offset_ms);
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let envelope = |detail_type: &str, kind: &str, t: DateTime<Utc>, detail: Value| {
        json!({
            "version": "0",
            "id": event_id(provider_message_id, kind),
            "detail-type": detail_type,
            "source": MOCK_SOURCE,
            "account": "000000000000",
            "time": t.to_rfc3339_opts(SecondsFormat::Secs, true),
            "region": "ap-northeast-2",
            "resources": [],
            "detail": detail,
        })
    };
    match channel {
        Channel::Email => {
            let mail_tags: serde_json::Map<String, Value> = tags.iter().map(|(k, v)| (k.clone(), json!([v]))).collect();
            let mail = json!({
                "timestamp": iso(at),
                "messageId": provider_message_id,
                "tags": mail_tags,
            });
            let delivered_at = time(1_200);
            let delivery = envelope(
                "Email Delivered",
                "delivery",
                delivered_at,
                json!({
                    "eventType": "Delivery",
                    "mail": mail,
                    "delivery": {"timestamp": iso(delivered_at), "processingTimeMillis": 1_200, "smtpResponse": "250 2.6.0 Message received"},
                }),
            );
            match verdict(seed, rates, channel, provider_message_id) {
                Verdict::Bounced => {
                    let t = time(2_500);
                    vec![envelope(
                        "Email Bounced",
                        "bounce",
                        t,
                        json!({
                            "eventType": "Bounce",
                            "mail": mail,
                            "bounce": {
                                "bounceType": "Permanent",
                                "bounceSubType": "General",
                                "timestamp": iso(t),
                                "feedbackId": event_id(provider_message_id, "bounce-feedback"),
                            },
                        }),
                    )]
                }
                Verdict::Complained => {
                    let t = time(60_000);
                    vec![
                        delivery,
                        envelope(
                            "Email Complaint Received",
                            "complaint",
                            t,
                            json!({
                                "eventType": "Complaint",
                                "mail": mail,
                                "complaint": {
                                    "complaintFeedbackType": "abuse",
                                    "timestamp": iso(t),
                                    "feedbackId": event_id(provider_message_id, "complaint-feedback"),
                                },
                            }),
                        ),
                    ]
                }
                _ => vec![delivery],
            }
        }
        Channel::Sms => {
            let context: serde_json::Map<String, Value> = tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let t = time(3_000);
            let (event_type, status, description) = match verdict(seed, rates, channel, provider_message_id) {
                Verdict::SmsFailed => (
                    "TEXT_CARRIER_UNREACHABLE",
                    "CARRIER_UNREACHABLE",
                    "The carrier could not reach the destination (simulated)",
                ),
                _ => ("TEXT_DELIVERED", "DELIVERED", "Message has been delivered (simulated)"),
            };
            vec![envelope(
                "Text Message Delivery Status Updated",
                "sms-status",
                t,
                json!({
                    "eventType": event_type,
                    "eventVersion": "1.0",
                    "eventTimestamp": t.timestamp_millis(),
                    "isFinal": true,
                    "messageId": provider_message_id,
                    "messageRequestTimestamp": at.timestamp_millis(),
                    "messageType": "TRANSACTIONAL",
                    "messageStatus": status,
                    "messageStatusDescription": description,
                    "context": context,
                }),
            )]
        }
    }
}

/// A stable event id: the same message and kind always give the same id (an
/// emission repeated is the same event, as an EventBridge redelivery is).
fn event_id(provider_message_id: &str, kind: &str) -> String {
    let mut h = Sha256::new();
    h.update(provider_message_id.as_bytes());
    h.update([0]);
    h.update(kind.as_bytes());
    let d = h.finalize();
    let x = hex::encode(&d[..16]);
    format!("{}-{}-{}-{}-{}", &x[..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> Vec<(String, String)> {
        vec![
            ("cycle".into(), "2026-11".into()),
            ("shard".into(), "00001".into()),
            ("customer".into(), "C0000001".into()),
            ("channel".into(), "email".into()),
            ("round".into(), "0".into()),
        ]
    }

    #[test]
    fn rates_from_the_environment() {
        let r = EvidenceRates::from_lookup(|n| match n {
            "MOCK_BOUNCE_RATE" => Some("0.02".into()),
            "MOCK_COMPLAINT_RATE" => Some(" 0.001 ".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            r,
            EvidenceRates {
                bounce: 0.02,
                complaint: 0.001,
                sms_failed: 0.0
            }
        );
        let e = EvidenceRates::from_lookup(|n| (n == "MOCK_SMS_FAILED_RATE").then(|| "2".into())).unwrap_err();
        assert!(e.contains("MOCK_SMS_FAILED_RATE"), "{e}");
        assert!(EvidenceRates::from_lookup(|_| Some("0.6".into())).is_err());
    }

    #[test]
    fn verdicts_follow_the_rates_and_the_seed() {
        let rates = EvidenceRates {
            bounce: 0.1,
            complaint: 0.05,
            sms_failed: 0.2,
        };
        let count = |seed: u64, ch: Channel, v: Verdict| {
            (0..10_000)
                .filter(|i| verdict(seed, &rates, ch, &format!("mock-{i}")) == v)
                .count()
        };
        let bounced = count(7, Channel::Email, Verdict::Bounced);
        let complained = count(7, Channel::Email, Verdict::Complained);
        let failed = count(7, Channel::Sms, Verdict::SmsFailed);
        assert!((900..1100).contains(&bounced), "{bounced}");
        assert!((420..580).contains(&complained), "{complained}");
        assert!((1850..2150).contains(&failed), "{failed}");
        let pattern = |seed| {
            (0..200)
                .map(|i| verdict(seed, &rates, Channel::Email, &format!("m{i}")))
                .collect::<Vec<_>>()
        };
        assert_eq!(pattern(7), pattern(7));
        assert_ne!(pattern(7), pattern(8));
        let none = EvidenceRates::default();
        assert!((0..1000).all(|i| verdict(1, &none, Channel::Email, &format!("m{i}")) == Verdict::Delivered));
    }

    #[test]
    fn events_have_the_services_shapes_and_no_recipient() {
        let at = DateTime::parse_from_rfc3339("2026-12-05T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let all = EvidenceRates {
            bounce: 1.0,
            complaint: 0.0,
            sms_failed: 1.0,
        };
        let bounce = simulated_events(1, &all, Channel::Email, "mock-abc", &tags(), at);
        assert_eq!(bounce.len(), 1);
        let b = &bounce[0];
        assert_eq!(
            (b["source"].as_str(), b["detail-type"].as_str()),
            (Some(MOCK_SOURCE), Some("Email Bounced"))
        );
        assert_eq!(b["detail"]["eventType"], "Bounce");
        assert_eq!(b["detail"]["bounce"]["bounceType"], "Permanent");
        assert_eq!(b["detail"]["mail"]["messageId"], "mock-abc");
        assert_eq!(b["detail"]["mail"]["tags"]["customer"], json!(["C0000001"]));
        let complaint = EvidenceRates {
            bounce: 0.0,
            complaint: 1.0,
            sms_failed: 0.0,
        };
        let c = simulated_events(1, &complaint, Channel::Email, "mock-abc", &tags(), at);
        let kinds: Vec<_> = c
            .iter()
            .map(|e| e["detail"]["eventType"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kinds, ["Delivery", "Complaint"]);
        assert_ne!(c[0]["id"], c[1]["id"]);
        // The same message's events are the same events, whoever emits them.
        assert_eq!(
            c,
            simulated_events(1, &complaint, Channel::Email, "mock-abc", &tags(), at)
        );
        let sms = simulated_events(1, &all, Channel::Sms, "mock-s", &tags(), at);
        assert_eq!(sms[0]["detail-type"], "Text Message Delivery Status Updated");
        assert_eq!(sms[0]["detail"]["eventType"], "TEXT_CARRIER_UNREACHABLE");
        assert_eq!(sms[0]["detail"]["context"]["shard"], "00001");
        let text = serde_json::to_string(&[bounce, c, sms]).unwrap();
        for absent in ["\"destination\"", "emailAddress", "PhoneNumber", "@"] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
    }
}
