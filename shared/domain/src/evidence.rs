//! Provider evidence: what SES and End User Messaging SMS say became of a
//! message after they accepted it, read from the events they publish to
//! EventBridge, as one typed [`ProviderEvent`].
//!
//! **Envelopes accepted** (the SQS body is the EventBridge event as the rule
//! delivered it):
//!
//! | `source` | `detail-type` | `detail` |
//! |---|---|---|
//! | `aws.ses` | `Email Sent`, `Email Delivered`, `Email Bounced`, `Email Complaint Received`, `Email Rejected`, `Email Delivery Delayed`, `Email Rendering Failed` | SES's event-publishing record: `eventType`, `mail` (`messageId`, `timestamp`, `tags` as `{name: [value]}`), and the object of its type (`bounce`, `complaint`, …) |
//! | `aws.sms-voice` | `Text Message Delivery Status Updated` | End User Messaging's SMS event: `eventType` (`TEXT_DELIVERED`, …), `messageStatus`, `messageId`, `eventTimestamp` (ms), `context` (the send's `Context` map) |
//! | `billing.mock-provider` | either of the above | the same shapes: the mock provider's simulated events |
//!
//! The SMS configuration set's SNS destination is not read: End User
//! Messaging publishes status events to EventBridge by itself, so one path
//! serves both providers.
//!
//! **Which delivery.** The senders tag every message with the delivery it
//! carries (`cycle`, `shard`, `customer`, `channel`, `round`; see the
//! sender's `evidence_tags`): SES echoes them in `mail.tags`, End User
//! Messaging in `context`. An event without them names no delivery
//! ([`ProviderEvent::delivery`] is `None`); tags that are there but do not
//! parse are an error.
//!
//! **No personal data.** Only the fields named here are read; the
//! recipients (`mail.destination`, `bouncedRecipients`,
//! `complainedRecipients`, `destinationPhoneNumber`, the sender's address)
//! are never copied out of the JSON, and no error quotes a value: every
//! [`EvidenceError`] names the field and what it expected.
//!
//! **Idempotency.** The EventBridge envelope's `id` is the event's id: a
//! redelivery repeats it ([`ProviderEvent::event_id`]).

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::calendar::Cycle;
use crate::customer::{Channel, CustomerId};
use crate::delivery::{DeliveryId, EvidenceState, MAX_SHARD};

/// The EventBridge `source` of SES's events.
pub const SES_SOURCE: &str = "aws.ses";
/// The EventBridge `source` of End User Messaging SMS's events.
pub const SMS_SOURCE: &str = "aws.sms-voice";
/// The EventBridge `source` of the mock provider's simulated events.
pub const MOCK_SOURCE: &str = "billing.mock-provider";
/// The `detail-type` of an SMS status event.
pub const SMS_DETAIL_TYPE: &str = "Text Message Delivery Status Updated";

/// The SES `detail-type`s read, each with the `eventType` its detail carries.
pub const SES_DETAIL_TYPES: [(&str, &str); 7] = [
    ("Email Sent", "Send"),
    ("Email Delivered", "Delivery"),
    ("Email Bounced", "Bounce"),
    ("Email Complaint Received", "Complaint"),
    ("Email Rejected", "Reject"),
    ("Email Delivery Delayed", "DeliveryDelay"),
    ("Email Rendering Failed", "Rendering Failure"),
];

/// The longest id (event id, message id) or provider type text kept.
pub const MAX_EVIDENCE_ID_BYTES: usize = 256;

/// Who published the event.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventSource {
    Ses,
    Sms,
    /// The mock provider's simulation (either shape).
    Mock,
}

impl EventSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::Ses => "ses",
            EventSource::Sms => "sms",
            EventSource::Mock => "mock",
        }
    }
}

/// SES's bounce types.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BounceType {
    /// The address cannot be reached; SES will not try it again.
    Permanent,
    /// A soft bounce SES gave up on (mailbox full, message too large, …).
    Transient,
    /// SES could not tell.
    Undetermined,
}

impl BounceType {
    pub fn as_str(self) -> &'static str {
        match self {
            BounceType::Permanent => "Permanent",
            BounceType::Transient => "Transient",
            BounceType::Undetermined => "Undetermined",
        }
    }
}

/// What the event says happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvidenceKind {
    /// SES accepted the send request (`Send`).
    Sent,
    /// The recipient's server (SES `Delivery`) or the carrier (`TEXT_DELIVERED`,
    /// `TEXT_SUCCESSFUL`) took the message.
    Delivered,
    /// SES `Bounce`, with its type and subtype (`General`, `NoEmail`, …).
    Bounce { bounce_type: BounceType, subtype: String },
    /// SES `Complaint`, with the feedback type when the recipient's provider gave one.
    Complaint { feedback_type: Option<String> },
    /// SES `Reject`: SES refused to send it (a virus was found).
    Reject,
    /// SES `DeliveryDelay`, with its delay type.
    DeliveryDelay { delay_type: Option<String> },
    /// SES `Rendering Failure` (templates only; not ours).
    RenderingFailure,
    /// An SMS still on its way (`TEXT_QUEUED`, `TEXT_PENDING`).
    SmsPending { status: String },
    /// An SMS that failed: `permanent` for an invalid number or message, a
    /// block or spam verdict (`TEXT_INVALID`, `TEXT_INVALID_MESSAGE`,
    /// `TEXT_BLOCKED`, `TEXT_CARRIER_BLOCKED`, `TEXT_SPAM`,
    /// `TEXT_PROTECT_BLOCKED`), otherwise a failure that may pass
    /// (`TEXT_TTL_EXPIRED`, `TEXT_CARRIER_UNREACHABLE`, `TEXT_UNREACHABLE`,
    /// `TEXT_UNKNOWN`).
    SmsFailed { status: String, permanent: bool },
    /// The recipient opted out of SMS (`messageStatus` `OPTED_OUT`).
    SmsOptedOut,
}

/// The SMS event types that mean a permanent failure.
const SMS_PERMANENT: [&str; 6] = [
    "TEXT_INVALID",
    "TEXT_INVALID_MESSAGE",
    "TEXT_BLOCKED",
    "TEXT_CARRIER_BLOCKED",
    "TEXT_SPAM",
    "TEXT_PROTECT_BLOCKED",
];
/// The SMS event types that mean a failure that may pass.
const SMS_TRANSIENT: [&str; 4] = [
    "TEXT_TTL_EXPIRED",
    "TEXT_CARRIER_UNREACHABLE",
    "TEXT_UNREACHABLE",
    "TEXT_UNKNOWN",
];

impl EvidenceKind {
    /// The provider's own type as stored (`evidence_type`) and logged:
    /// `Bounce/Permanent/General`, `Complaint/abuse`, `Delivery`,
    /// `TEXT_DELIVERED`, … Never personal data.
    pub fn type_text(&self) -> String {
        match self {
            EvidenceKind::Sent => "Send".into(),
            EvidenceKind::Delivered => "Delivery".into(),
            EvidenceKind::Bounce { bounce_type, subtype } => format!("Bounce/{}/{subtype}", bounce_type.as_str()),
            EvidenceKind::Complaint { feedback_type } => match feedback_type {
                Some(t) => format!("Complaint/{t}"),
                None => "Complaint".into(),
            },
            EvidenceKind::Reject => "Reject".into(),
            EvidenceKind::DeliveryDelay { delay_type } => match delay_type {
                Some(t) => format!("DeliveryDelay/{t}"),
                None => "DeliveryDelay".into(),
            },
            EvidenceKind::RenderingFailure => "RenderingFailure".into(),
            EvidenceKind::SmsPending { status } | EvidenceKind::SmsFailed { status, .. } => status.clone(),
            EvidenceKind::SmsOptedOut => "OPTED_OUT".into(),
        }
    }

    /// A short name for logs and the evidence log (`delivery`, `bounce`, …).
    pub fn name(&self) -> &'static str {
        match self {
            EvidenceKind::Sent => "send",
            EvidenceKind::Delivered => "delivery",
            EvidenceKind::Bounce { .. } => "bounce",
            EvidenceKind::Complaint { .. } => "complaint",
            EvidenceKind::Reject => "reject",
            EvidenceKind::DeliveryDelay { .. } => "delivery-delay",
            EvidenceKind::RenderingFailure => "rendering-failure",
            EvidenceKind::SmsPending { .. } => "sms-pending",
            EvidenceKind::SmsFailed { .. } => "sms-failed",
            EvidenceKind::SmsOptedOut => "sms-opted-out",
        }
    }
}

/// Why a contact goes on the suppression list.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SuppressFor {
    /// A permanent bounce of an email.
    Bounce,
    /// A complaint about an email.
    Complaint,
}

/// The delivery an event is about, from the tags the sender gave the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRef {
    pub id: DeliveryId,
    pub channel: Channel,
    /// The send round (`Delivery::send_round`) the message belonged to.
    pub round: u32,
}

/// One provider event, parsed: ids, kind and time only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderEvent {
    /// The EventBridge envelope's `id`: a redelivery repeats it.
    pub event_id: String,
    pub source: EventSource,
    pub channel: Channel,
    pub kind: EvidenceKind,
    /// When the provider observed it (the type's own timestamp, else the envelope's `time`).
    pub at: DateTime<Utc>,
    /// The provider's id of the message (SES `mail.messageId`, SMS `messageId`).
    pub provider_message_id: String,
    /// The delivery named by the message's tags, if it has them.
    pub delivery: Option<DeliveryRef>,
}

impl ProviderEvent {
    /// The lifecycle state this event gives a sent delivery, if any: a
    /// delivery receipt → `DELIVERED`; a permanent bounce, a reject, a
    /// permanent SMS failure or an opt-out → `BOUNCED`; a complaint →
    /// `COMPLAINED`. Everything else is recorded only.
    pub fn evidence_state(&self) -> Option<EvidenceState> {
        match &self.kind {
            EvidenceKind::Delivered => Some(EvidenceState::Delivered),
            EvidenceKind::Bounce {
                bounce_type: BounceType::Permanent,
                ..
            }
            | EvidenceKind::Reject
            | EvidenceKind::SmsOptedOut
            | EvidenceKind::SmsFailed { permanent: true, .. } => Some(EvidenceState::Bounced),
            EvidenceKind::Complaint { .. } => Some(EvidenceState::Complained),
            _ => None,
        }
    }

    /// Whether the invoice must go by SMS instead: a permanent bounce or a
    /// reject of the email. A complaint never does (the email arrived).
    pub fn falls_back(&self) -> bool {
        self.channel == Channel::Email
            && matches!(
                self.kind,
                EvidenceKind::Bounce {
                    bounce_type: BounceType::Permanent,
                    ..
                } | EvidenceKind::Reject
            )
    }

    /// Whether the contact goes on the suppression list: a permanent bounce
    /// or a complaint of an email.
    pub fn suppresses(&self) -> Option<SuppressFor> {
        if self.channel != Channel::Email {
            return None;
        }
        match self.kind {
            EvidenceKind::Bounce {
                bounce_type: BounceType::Permanent,
                ..
            } => Some(SuppressFor::Bounce),
            EvidenceKind::Complaint { .. } => Some(SuppressFor::Complaint),
            _ => None,
        }
    }
}

/// Why an event cannot be read: the field (a JSON path) and what was
/// expected there, never the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("the event is not JSON")]
    NotJson,
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{field}`: expected {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
    /// A source, detail-type or event type this function does not read.
    #[error("field `{field}`: not an event this function reads (expected {expected})")]
    Unknown {
        field: &'static str,
        expected: &'static str,
    },
}

impl EvidenceError {
    /// The field the error is about (`-` when the body is not JSON).
    pub fn field(&self) -> &'static str {
        match self {
            EvidenceError::NotJson => "-",
            EvidenceError::Missing(f) => f,
            EvidenceError::Invalid { field, .. } | EvidenceError::Unknown { field, .. } => field,
        }
    }
}

/// Parses one EventBridge event (see the module doc).
pub fn parse(text: &str) -> Result<ProviderEvent, EvidenceError> {
    let v: Value = serde_json::from_str(text).map_err(|_| EvidenceError::NotJson)?;
    parse_value(&v)
}

/// [`parse`] of an event already read as JSON.
pub fn parse_value(v: &Value) -> Result<ProviderEvent, EvidenceError> {
    if !v.is_object() {
        return Err(EvidenceError::Invalid {
            field: "$",
            expected: "an EventBridge event (a JSON object)",
        });
    }
    let event_id = id_text(v.get("id"), "id")?;
    let source = match text(v.get("source"), "source")? {
        SES_SOURCE => EventSource::Ses,
        SMS_SOURCE => EventSource::Sms,
        MOCK_SOURCE => EventSource::Mock,
        _ => {
            return Err(EvidenceError::Unknown {
                field: "source",
                expected: "aws.ses, aws.sms-voice or billing.mock-provider",
            });
        }
    };
    let detail_type = text(v.get("detail-type"), "detail-type")?;
    let time = instant(v.get("time"), "time")?;
    let detail = v.get("detail").ok_or(EvidenceError::Missing("detail"))?;
    if !detail.is_object() {
        return Err(EvidenceError::Invalid {
            field: "detail",
            expected: "an object",
        });
    }
    let sms = match source {
        EventSource::Ses => false,
        EventSource::Sms => true,
        EventSource::Mock => detail_type == SMS_DETAIL_TYPE,
    };
    if sms {
        if detail_type != SMS_DETAIL_TYPE {
            return Err(EvidenceError::Unknown {
                field: "detail-type",
                expected: "Text Message Delivery Status Updated",
            });
        }
        sms_event(event_id, source, time, detail)
    } else {
        ses_event(event_id, source, detail_type, time, detail)
    }
}

fn ses_event(
    event_id: String,
    source: EventSource,
    detail_type: &str,
    time: DateTime<Utc>,
    d: &Value,
) -> Result<ProviderEvent, EvidenceError> {
    let expected_type = SES_DETAIL_TYPES
        .iter()
        .find(|(dt, _)| *dt == detail_type)
        .map(|(_, t)| *t)
        .ok_or(EvidenceError::Unknown {
            field: "detail-type",
            expected: "an SES email sending event (Email Sent, Email Delivered, Email Bounced, …)",
        })?;
    // SNS and Firehose records name it `notificationType` without event publishing.
    let event_type = text(d.get("eventType"), "detail.eventType")?;
    if event_type != expected_type {
        return Err(EvidenceError::Invalid {
            field: "detail.eventType",
            expected: "the event type its detail-type names",
        });
    }
    let mail = d.get("mail").ok_or(EvidenceError::Missing("detail.mail"))?;
    let provider_message_id = id_text(mail.get("messageId"), "detail.mail.messageId")?;
    let (kind, at) = match event_type {
        "Send" => (EvidenceKind::Sent, None),
        "Delivery" => (EvidenceKind::Delivered, d.pointer("/delivery/timestamp")),
        "Bounce" => {
            let b = d.get("bounce").ok_or(EvidenceError::Missing("detail.bounce"))?;
            let bounce_type = match text(b.get("bounceType"), "detail.bounce.bounceType")? {
                "Permanent" => BounceType::Permanent,
                "Transient" => BounceType::Transient,
                "Undetermined" => BounceType::Undetermined,
                _ => {
                    return Err(EvidenceError::Invalid {
                        field: "detail.bounce.bounceType",
                        expected: "Permanent, Transient or Undetermined",
                    });
                }
            };
            let subtype = match b.get("bounceSubType") {
                None | Some(Value::Null) => "Undetermined".to_owned(),
                some => word(some, "detail.bounce.bounceSubType")?,
            };
            (EvidenceKind::Bounce { bounce_type, subtype }, b.get("timestamp"))
        }
        "Complaint" => {
            let c = d.get("complaint").ok_or(EvidenceError::Missing("detail.complaint"))?;
            let feedback_type = match c.get("complaintFeedbackType") {
                None | Some(Value::Null) => None,
                some => Some(word(some, "detail.complaint.complaintFeedbackType")?),
            };
            (EvidenceKind::Complaint { feedback_type }, c.get("timestamp"))
        }
        "Reject" => (EvidenceKind::Reject, None),
        "DeliveryDelay" => {
            let dd = d
                .get("deliveryDelay")
                .ok_or(EvidenceError::Missing("detail.deliveryDelay"))?;
            let delay_type = match dd.get("delayType") {
                None | Some(Value::Null) => None,
                some => Some(word(some, "detail.deliveryDelay.delayType")?),
            };
            (EvidenceKind::DeliveryDelay { delay_type }, dd.get("timestamp"))
        }
        _ => (EvidenceKind::RenderingFailure, None),
    };
    let at = match at {
        Some(t) => instant(Some(t), "detail.<type>.timestamp")?,
        None => time,
    };
    let delivery = delivery_ref(Channel::Email, |name| tag_value(mail, name))?;
    Ok(ProviderEvent {
        event_id,
        source,
        channel: Channel::Email,
        kind,
        at,
        provider_message_id,
        delivery,
    })
}

fn sms_event(
    event_id: String,
    source: EventSource,
    time: DateTime<Utc>,
    d: &Value,
) -> Result<ProviderEvent, EvidenceError> {
    let event_type = text(d.get("eventType"), "detail.eventType")?;
    let status = match d.get("messageStatus") {
        None | Some(Value::Null) => None,
        some => Some(text(some, "detail.messageStatus")?),
    };
    let kind = if status == Some("OPTED_OUT") {
        EvidenceKind::SmsOptedOut
    } else {
        match event_type {
            "TEXT_DELIVERED" | "TEXT_SUCCESSFUL" => EvidenceKind::Delivered,
            "TEXT_QUEUED" | "TEXT_PENDING" => EvidenceKind::SmsPending {
                status: event_type.to_owned(),
            },
            t if SMS_PERMANENT.contains(&t) => EvidenceKind::SmsFailed {
                status: t.to_owned(),
                permanent: true,
            },
            t if SMS_TRANSIENT.contains(&t) => EvidenceKind::SmsFailed {
                status: t.to_owned(),
                permanent: false,
            },
            _ => {
                return Err(EvidenceError::Unknown {
                    field: "detail.eventType",
                    expected: "an SMS event type (TEXT_DELIVERED, TEXT_SUCCESSFUL, TEXT_INVALID, …)",
                });
            }
        }
    };
    let provider_message_id = id_text(d.get("messageId"), "detail.messageId")?;
    let at = match d.get("eventTimestamp") {
        None | Some(Value::Null) => time,
        Some(ms) => ms
            .as_i64()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or(EvidenceError::Invalid {
                field: "detail.eventTimestamp",
                expected: "milliseconds since the epoch",
            })?,
    };
    let context = d.get("context");
    let delivery = delivery_ref(Channel::Sms, |name| {
        Ok(match context.and_then(|c| c.get(name)) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(()),
        })
    })?;
    Ok(ProviderEvent {
        event_id,
        source,
        channel: Channel::Sms,
        kind,
        at,
        provider_message_id,
        delivery,
    })
}

/// The first value of an SES tag (`mail.tags.{name}` is a list of strings).
/// `Err` when the tag is not a list of strings.
fn tag_value<'a>(mail: &'a Value, name: &str) -> Result<Option<&'a str>, ()> {
    match mail.get("tags").and_then(|t| t.get(name)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(values)) => match values.first() {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(()),
        },
        Some(_) => Err(()),
    }
}

/// The delivery the tags name (see the module doc): `None` unless `cycle`,
/// `shard` and `customer` are all there.
fn delivery_ref<'a>(
    channel: Channel,
    tag: impl Fn(&'static str) -> Result<Option<&'a str>, ()>,
) -> Result<Option<DeliveryRef>, EvidenceError> {
    let fields: [&'static str; 5] = match channel {
        Channel::Email => [
            "detail.mail.tags.cycle",
            "detail.mail.tags.shard",
            "detail.mail.tags.customer",
            "detail.mail.tags.channel",
            "detail.mail.tags.round",
        ],
        Channel::Sms => [
            "detail.context.cycle",
            "detail.context.shard",
            "detail.context.customer",
            "detail.context.channel",
            "detail.context.round",
        ],
    };
    let read = |i: usize, name: &'static str| {
        tag(name).map_err(move |()| EvidenceError::Invalid {
            field: fields[i],
            expected: "a string",
        })
    };
    let (Some(cycle), Some(shard), Some(customer)) = (read(0, "cycle")?, read(1, "shard")?, read(2, "customer")?)
    else {
        return Ok(None);
    };
    let cycle: Cycle = cycle.parse().map_err(|_| EvidenceError::Invalid {
        field: fields[0],
        expected: "a cycle as YYYY-MM",
    })?;
    let shard: u32 = Some(shard)
        .filter(|s| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .filter(|n| *n <= MAX_SHARD)
        .ok_or(EvidenceError::Invalid {
            field: fields[1],
            expected: "a shard number from 0 to 99999",
        })?;
    let customer = CustomerId::new(customer).map_err(|_| EvidenceError::Invalid {
        field: fields[2],
        expected: "a customer id",
    })?;
    if read(3, "channel")?.is_some_and(|tagged| tagged != channel.as_str()) {
        return Err(EvidenceError::Invalid {
            field: fields[3],
            expected: "the channel of the event (email for SES, sms for End User Messaging)",
        });
    }
    let round = match read(4, "round")? {
        None => 0,
        Some(r) => Some(r)
            .filter(|s| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or(EvidenceError::Invalid {
                field: fields[4],
                expected: "a send round number",
            })?,
    };
    Ok(Some(DeliveryRef {
        id: DeliveryId::new(cycle, shard, customer),
        channel,
        round,
    }))
}

fn text<'a>(v: Option<&'a Value>, field: &'static str) -> Result<&'a str, EvidenceError> {
    match v {
        None | Some(Value::Null) => Err(EvidenceError::Missing(field)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(EvidenceError::Invalid {
            field,
            expected: "a non-empty string",
        }),
    }
}

/// An id as providers write them: 1 to [`MAX_EVIDENCE_ID_BYTES`] bytes of
/// ASCII letters, digits and `._:/#+-` (never an address: no `@`).
fn id_text(v: Option<&Value>, field: &'static str) -> Result<String, EvidenceError> {
    let s = text(v, field)?;
    if is_id(s) {
        Ok(s.to_owned())
    } else {
        Err(EvidenceError::Invalid {
            field,
            expected: "an id (letters, digits and ._:/#+-, at most 256 bytes)",
        })
    }
}

/// A provider's type word (`General`, `abuse`, `TransientCommunicationFailure`).
fn word(v: Option<&Value>, field: &'static str) -> Result<String, EvidenceError> {
    let s = text(v, field)?;
    if s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
        Ok(s.to_owned())
    } else {
        Err(EvidenceError::Invalid {
            field,
            expected: "a type name (letters, digits and _-., at most 64 bytes)",
        })
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_EVIDENCE_ID_BYTES
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:/#+-".contains(&b))
}

fn instant(v: Option<&Value>, field: &'static str) -> Result<DateTime<Utc>, EvidenceError> {
    let s = text(v, field)?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| EvidenceError::Invalid {
            field,
            expected: "an RFC 3339 instant",
        })
}

impl fmt::Display for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EMAIL: &str = "kim.minjun.1987@example-mail.co.kr";
    const PHONE: &str = "+821055551234";

    fn ses(detail_type: &str, detail: Value) -> Value {
        json!({
            "version": "0", "id": "3f6c2a4e-0001-4d7a-9a51-6f1e2b3c4d5e", "detail-type": detail_type,
            "source": "aws.ses", "account": "123456789012", "time": "2026-12-15T01:00:05Z",
            "region": "ap-northeast-2",
            "resources": ["arn:aws:ses:ap-northeast-2:123456789012:configuration-set/billing"],
            "detail": detail,
        })
    }

    fn mail() -> Value {
        json!({
            "timestamp": "2026-12-15T01:00:00.000Z",
            "source": "billing@example.com",
            "messageId": "010c019a1b2c3d4e-5f6a7b8c-0001-000000",
            "destination": [EMAIL],
            "tags": {
                "ses:configuration-set": ["billing"], "cycle": ["2026-11"], "shard": ["00001"],
                "customer": ["C0000208"], "channel": ["email"], "round": ["0"], "template": ["v1"],
            },
        })
    }

    fn sms(event_type: &str, status: &str) -> Value {
        json!({
            "version": "0", "id": "5c0fa4f8-e4ba-ed02-6101-c795472fccd0",
            "detail-type": "Text Message Delivery Status Updated", "source": "aws.sms-voice",
            "account": "123456789012", "time": "2026-12-15T01:00:09Z", "region": "ap-northeast-2",
            "resources": [],
            "detail": {
                "eventType": event_type, "eventVersion": "1.0", "eventTimestamp": 1_797_296_408_000i64,
                "isFinal": true, "originationPhoneNumber": "+82215880000", "destinationPhoneNumber": PHONE,
                "messageId": "ed23196c-75ce-4727-93ee-7bf72b64998f", "messageStatus": status,
                "context": {"cycle": "2026-11", "shard": "00000", "customer": "C0000031", "channel": "sms", "round": "1"},
            },
        })
    }

    fn parsed(v: &Value) -> ProviderEvent {
        parse(&v.to_string()).unwrap()
    }

    #[test]
    fn a_permanent_bounce_names_its_delivery_and_falls_back_and_suppresses() {
        let mut d = json!({"eventType": "Bounce", "mail": mail(), "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2026-12-15T01:00:02.669Z",
            "bouncedRecipients": [{"emailAddress": EMAIL, "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
        }});
        let e = parsed(&ses("Email Bounced", d.clone()));
        assert_eq!(e.event_id, "3f6c2a4e-0001-4d7a-9a51-6f1e2b3c4d5e");
        assert_eq!((e.source, e.channel), (EventSource::Ses, Channel::Email));
        assert_eq!(e.provider_message_id, "010c019a1b2c3d4e-5f6a7b8c-0001-000000");
        assert_eq!(e.kind.type_text(), "Bounce/Permanent/General");
        assert_eq!(e.at.to_rfc3339(), "2026-12-15T01:00:02.669+00:00");
        let r = e.delivery.clone().unwrap();
        assert_eq!(
            (r.id.to_string().as_str(), r.channel, r.round),
            ("2026-11#00001#C0000208", Channel::Email, 0)
        );
        assert_eq!(e.evidence_state(), Some(EvidenceState::Bounced));
        assert!(e.falls_back());
        assert_eq!(e.suppresses(), Some(SuppressFor::Bounce));
        // Nothing personal survives the parse.
        assert!(!format!("{e:?}").contains('@'), "{e:?}");
        // A transient bounce is recorded only.
        d["bounce"]["bounceType"] = json!("Transient");
        d["bounce"]["bounceSubType"] = json!("MailboxFull");
        let t = parsed(&ses("Email Bounced", d));
        assert_eq!(t.kind.type_text(), "Bounce/Transient/MailboxFull");
        assert_eq!(
            (t.evidence_state(), t.falls_back(), t.suppresses()),
            (None, false, None)
        );
    }

    #[test]
    fn every_ses_type_reads() {
        let cases = [
            (
                "Email Sent",
                json!({"eventType": "Send", "mail": mail(), "send": {}}),
                "Send",
                None,
            ),
            (
                "Email Delivered",
                json!({"eventType": "Delivery", "mail": mail(), "delivery": {"timestamp": "2026-12-15T01:00:01.200Z", "recipients": [EMAIL]}}),
                "Delivery",
                Some(EvidenceState::Delivered),
            ),
            (
                "Email Complaint Received",
                json!({"eventType": "Complaint", "mail": mail(), "complaint": {"complaintFeedbackType": "abuse", "timestamp": "2026-12-15T02:00:00Z", "complainedRecipients": [{"emailAddress": EMAIL}]}}),
                "Complaint/abuse",
                Some(EvidenceState::Complained),
            ),
            (
                "Email Rejected",
                json!({"eventType": "Reject", "mail": mail(), "reject": {"reason": "Bad content"}}),
                "Reject",
                Some(EvidenceState::Bounced),
            ),
            (
                "Email Delivery Delayed",
                json!({"eventType": "DeliveryDelay", "mail": mail(), "deliveryDelay": {"delayType": "MailboxFull", "timestamp": "2026-12-15T01:30:00Z"}}),
                "DeliveryDelay/MailboxFull",
                None,
            ),
            (
                "Email Rendering Failed",
                json!({"eventType": "Rendering Failure", "mail": mail(), "failure": {"errorMessage": "x"}}),
                "RenderingFailure",
                None,
            ),
        ];
        for (dt, detail, type_text, state) in cases {
            let e = parsed(&ses(dt, detail));
            assert_eq!(e.kind.type_text(), type_text, "{dt}");
            assert_eq!(e.evidence_state(), state, "{dt}");
            assert_eq!(e.falls_back(), dt == "Email Rejected", "{dt}");
        }
    }

    #[test]
    fn sms_statuses_read_and_the_number_is_dropped() {
        let e = parsed(&sms("TEXT_DELIVERED", "DELIVERED"));
        assert_eq!(
            (e.source, e.channel, e.kind.clone()),
            (EventSource::Sms, Channel::Sms, EvidenceKind::Delivered)
        );
        assert_eq!(e.evidence_state(), Some(EvidenceState::Delivered));
        let r = e.delivery.clone().unwrap();
        assert_eq!((r.id.to_string().as_str(), r.round), ("2026-11#00000#C0000031", 1));
        assert_eq!(e.at, DateTime::from_timestamp_millis(1_797_296_408_000).unwrap());
        assert!(!format!("{e:?}").contains("5555"), "{e:?}");
        let f = parsed(&sms("TEXT_CARRIER_UNREACHABLE", "CARRIER_UNREACHABLE"));
        assert_eq!(
            f.kind,
            EvidenceKind::SmsFailed {
                status: "TEXT_CARRIER_UNREACHABLE".into(),
                permanent: false
            }
        );
        assert_eq!(f.evidence_state(), None);
        let p = parsed(&sms("TEXT_INVALID", "INVALID"));
        assert_eq!(p.evidence_state(), Some(EvidenceState::Bounced));
        assert!(!p.falls_back() && p.suppresses().is_none());
        let o = parsed(&sms("TEXT_BLOCKED", "OPTED_OUT"));
        assert_eq!(o.kind, EvidenceKind::SmsOptedOut);
        let q = parsed(&sms("TEXT_PENDING", "PENDING"));
        assert_eq!(q.evidence_state(), None);
    }

    #[test]
    fn the_mock_source_takes_either_shape() {
        let mut v = sms("TEXT_SUCCESSFUL", "SUCCESSFUL");
        v["source"] = json!(MOCK_SOURCE);
        assert_eq!(parsed(&v).source, EventSource::Mock);
        let mut v = ses(
            "Email Delivered",
            json!({"eventType": "Delivery", "mail": mail(), "delivery": {}}),
        );
        v["source"] = json!(MOCK_SOURCE);
        let e = parsed(&v);
        assert_eq!((e.source, e.channel), (EventSource::Mock, Channel::Email));
        // No type timestamp: the envelope's time.
        assert_eq!(e.at.to_rfc3339(), "2026-12-15T01:00:05+00:00");
    }

    #[test]
    fn an_event_without_tags_names_no_delivery() {
        let mut m = mail();
        m["tags"] = json!({"ses:configuration-set": ["billing"]});
        let e = parsed(&ses(
            "Email Delivered",
            json!({"eventType": "Delivery", "mail": m, "delivery": {}}),
        ));
        assert_eq!(e.delivery, None);
        let mut v = sms("TEXT_DELIVERED", "DELIVERED");
        v["detail"].as_object_mut().unwrap().remove("context");
        assert_eq!(parsed(&v).delivery, None);
    }

    #[test]
    fn odd_events_are_errors_naming_the_field_never_the_value() {
        let bounce = || json!({"eventType": "Bounce", "mail": mail(), "bounce": {"bounceType": "Permanent", "bounceSubType": "General"}});
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = ses("Email Bounced", bounce());
            f(&mut v);
            parse(&v.to_string()).unwrap_err()
        };
        let cases: Vec<(EvidenceError, &str)> = vec![
            (parse("not json").unwrap_err(), "-"),
            (parse("[1]").unwrap_err(), "$"),
            (with(&|v| v["source"] = json!(EMAIL)), "source"),
            (with(&|v| v["detail-type"] = json!("Email Opened")), "detail-type"),
            (with(&|v| v["id"] = json!(EMAIL)), "id"),
            (with(&|v| v["time"] = json!(EMAIL)), "time"),
            (
                with(&|v| v["detail"]["eventType"] = json!("Delivery")),
                "detail.eventType",
            ),
            (
                with(&|v| v["detail"]["mail"]["messageId"] = json!(EMAIL)),
                "detail.mail.messageId",
            ),
            (
                with(&|v| v["detail"]["bounce"]["bounceType"] = json!(EMAIL)),
                "detail.bounce.bounceType",
            ),
            (
                with(&|v| v["detail"]["bounce"]["bounceSubType"] = json!(EMAIL)),
                "detail.bounce.bounceSubType",
            ),
            (
                with(&|v| v["detail"]["mail"]["tags"]["customer"] = json!([EMAIL])),
                "detail.mail.tags.customer",
            ),
            (
                with(&|v| v["detail"]["mail"]["tags"]["cycle"] = json!([EMAIL])),
                "detail.mail.tags.cycle",
            ),
            (
                with(&|v| v["detail"]["mail"]["tags"]["shard"] = json!("00001")),
                "detail.mail.tags.shard",
            ),
            (
                with(&|v| v["detail"]["mail"]["tags"]["channel"] = json!(["sms"])),
                "detail.mail.tags.channel",
            ),
            (
                with(&|v| v["detail"]["mail"]["tags"]["round"] = json!([PHONE])),
                "detail.mail.tags.round",
            ),
            (
                with(&|v| v["detail"]["mail"].as_object_mut().unwrap().clear()),
                "detail.mail.messageId",
            ),
            (with(&|v| v["detail"] = json!(PHONE)), "detail"),
        ];
        for (e, field) in cases {
            assert_eq!(e.field(), field, "{e}");
            let text = e.to_string();
            assert!(!text.contains("kim.minjun") && !text.contains("5555"), "{text}");
        }
        let mut v = sms("TEXT_DELIVERED", "DELIVERED");
        v["detail"]["eventType"] = json!("VOICE_COMPLETED");
        assert_eq!(parse(&v.to_string()).unwrap_err().field(), "detail.eventType");
        v["detail"]["eventType"] = json!("TEXT_DELIVERED");
        v["detail"]["eventTimestamp"] = json!(PHONE);
        assert_eq!(parse(&v.to_string()).unwrap_err().field(), "detail.eventTimestamp");
        v["detail"]["eventTimestamp"] = json!(1);
        v["detail"]["context"]["shard"] = json!(7);
        assert_eq!(parse(&v.to_string()).unwrap_err().field(), "detail.context.shard");
    }
}
