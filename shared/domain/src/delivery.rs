//! Deliveries: one per bill, the unit that dispatch and the senders move
//! through its states. The delivery id is the bill id
//! (`{cycle}#{shard:05}#{customer}`), so everything about one invoice is
//! found from one key, and ids (never contact data) travel in messages.
//!
//! A delivery is created `READY` by rendering. On its own it moves one way:
//! `READY → QUEUED → SENDING → SENT_EMAIL | SENT_SMS | DEAD`, with three
//! ways back that dispatch and the senders take themselves: a send-time slot
//! check or a retry puts it back to `READY` with a later `available_at`
//! (deferred), dispatch reverts a `QUEUED` delivery whose message it could not
//! enqueue, and a call the provider may have taken but cannot be asked about
//! leaves it `UNCONFIRMED`. Operators move it back on purpose: `resend` starts
//! a new send round from an end state (or the same round of a stuck `QUEUED`
//! or `SENDING` one), `hold` takes a `READY` delivery out of dispatch until
//! `schedule` releases it, and `confirm` settles an `UNCONFIRMED` one
//! (`adapters::deliveries::commands` has the table). Re-rendering touches the
//! content of a delivery that is waiting (`READY` or `HELD`) only, never its
//! state, attempts or `available_at`, and leaves every other state alone.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::Cycle;
use crate::customer::{Channel, CustomerId, SendDay};
use crate::money::Krw;
use crate::slots::{SEOUL, SlotSet};

/// Buckets of the due index. Deliveries of a cycle are spread over this many
/// partition keys (`{cycle}#{bucket:02}`) by a hash of the customer id, so
/// that a million deliveries due in one slot are read, and move through the
/// index, through 32 partitions instead of one hot one. Each index partition
/// takes about 1,000 writes a second; a dispatch run writes each entry twice
/// (its key changes when it is queued), so 1,000,000 / 32 ≈ 31,000 entries a
/// bucket take about a minute, well inside the slot. More buckets would
/// shorten that and cost a `Query` per bucket per run; 32 reads a bucket per
/// 2 s of that minute.
pub const DUE_BUCKETS: u32 = 32;

/// How long after a delivery was last handed to a queue (or its sender's
/// lease ends) dispatch looks at it again, when nothing else has: time for
/// the queue's retries and backoff to run their course first. A message lost
/// or dead-lettered for a cause that was not the delivery's own then costs a
/// re-check, never the delivery.
pub const RECHECK_AFTER_MINUTES: i64 = 180;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryState {
    /// Rendered; waiting for its send date, `available_at` and an allowed slot.
    Ready,
    /// Enqueued by dispatch; a sender has not claimed it yet.
    Queued,
    /// Claimed by a sender (lease on the item).
    Sending,
    SentEmail,
    SentSms,
    /// Every channel failed; a failure record and a dead-letter message exist.
    Dead,
    /// Held by an operator, with a reason; out of the due index until released.
    Held,
    /// A provider call may have reached the provider, and the provider cannot
    /// be asked whether it did (SES): sending again could send twice, so the
    /// delivery waits for an operator to confirm it as sent or to resend it
    /// (a failure record names it).
    Unconfirmed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Ready => "READY",
            DeliveryState::Queued => "QUEUED",
            DeliveryState::Sending => "SENDING",
            DeliveryState::SentEmail => "SENT_EMAIL",
            DeliveryState::SentSms => "SENT_SMS",
            DeliveryState::Dead => "DEAD",
            DeliveryState::Held => "HELD",
            DeliveryState::Unconfirmed => "UNCONFIRMED",
        }
    }

    /// Every state, for reports that count them all.
    pub const ALL: [DeliveryState; 8] = [
        DeliveryState::Ready,
        DeliveryState::Queued,
        DeliveryState::Sending,
        DeliveryState::SentEmail,
        DeliveryState::SentSms,
        DeliveryState::Dead,
        DeliveryState::Held,
        DeliveryState::Unconfirmed,
    ];

    /// The state named `s` (`READY`, `SENT_EMAIL`, …).
    pub fn parse(s: &str) -> Option<DeliveryState> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What rendering produced for a bill: where the invoice is and what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryContent {
    pub template_version: String,
    /// SHA-256 over the rendered subject, HTML and SMS: equal content, equal
    /// hash. Re-rendering compares it and writes nothing when it is equal.
    pub content_hash: String,
    /// S3 key of the HTML invoice (gzip-encoded): the shard's invoice pack that holds it, or an
    /// object of its own (a correction, or a delivery rendered before packs).
    pub email_key: String,
    /// Where the invoice sits in `email_key` when that is a pack (one gzip member of it);
    /// `None`: the whole object is the invoice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_range: Option<crate::range::ByteRange>,
    /// Email subject (no personal data).
    pub subject: String,
    /// The SMS (LMS) text with the link placeholder, when the item carries it (a correction, a
    /// delivery rendered before its text went into the pack); empty when `sms_range` says where
    /// it is. The link is made when the message is sent (see the `invoice` crate). Masked data
    /// only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sms_text: String,
    /// Where the SMS text sits in `email_key`'s pack (a gzip member of UTF-8 text, after the
    /// invoice's): the text stays out of the item, which keeps the item under the 1 KB of one
    /// write unit through its life (`docs/invoices.md#invoice-packs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_range: Option<crate::range::ByteRange>,
}

/// Where a delivery's SMS text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsSource<'a> {
    /// In the item.
    Inline(&'a str),
    /// A gzip member of the pack `key`.
    Packed {
        key: &'a str,
        range: crate::range::ByteRange,
    },
    /// Nowhere: the item has neither (it does not decode as a sendable delivery).
    Missing,
}

impl DeliveryContent {
    /// Where the SMS text is: the pack's member when the item names one, else the item's text.
    pub fn sms_source(&self) -> SmsSource<'_> {
        match (self.sms_range, self.sms_text.as_str()) {
            (Some(range), _) => SmsSource::Packed {
                key: &self.email_key,
                range,
            },
            (None, "") => SmsSource::Missing,
            (None, text) => SmsSource::Inline(text),
        }
    }
}

/// One delivery item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub cycle: Cycle,
    pub shard: u32,
    pub customer_id: CustomerId,
    pub state: DeliveryState,
    /// The customer's send day in the month after the cycle (Asia/Seoul),
    /// clamped to that month's last day.
    pub send_date: NaiveDate,
    /// The earliest instant dispatch may pick the delivery: 00:00 Asia/Seoul
    /// on the send date unless an operator scheduled it later (or a sender
    /// deferred it to the next allowed slot). Whole seconds, stored as
    /// `YYYY-MM-DDTHH:MM:SSZ` so that it sorts as text (the due index's sort key).
    #[serde(with = "utc_seconds")]
    pub available_at: DateTime<Utc>,
    pub dnd: SlotSet,
    pub preferred_channel: Channel,
    /// Total due, for reports and the admin view.
    pub total: Krw,
    #[serde(flatten)]
    pub content: DeliveryContent,
    #[serde(default)]
    pub attempts_email: u32,
    #[serde(default)]
    pub attempts_sms: u32,
    /// The send round: 0 for the delivery as rendered, one more for every
    /// operator's resend. The providers' idempotency key names it, so a
    /// resend sends once more and a duplicate message within a round never
    /// does. Absent from the item while 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub send_round: u32,
    /// The one channel the delivery may still go by, set when the provider's
    /// evidence (a permanent bounce, a reject) or the suppression list rules
    /// email out: dispatch then enqueues it on that channel only (paused while
    /// the channel policy disables it), never on the preferred one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Channel>,
    /// The keyed look-up hash of the customer's email
    /// ([`crate::pii::Keyring::lookup_hash`]) when the delivery was rendered
    /// or the contact last changed: what dispatch checks against the
    /// suppression list without opening the contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_hash: Option<String>,
    /// What the provider's evidence says of the last send, once it says
    /// anything (see [`Evidence`]).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Delivery {
    /// A new `READY` delivery for a rendered bill.
    #[allow(clippy::too_many_arguments)]
    pub fn ready(
        cycle: Cycle,
        shard: u32,
        customer_id: CustomerId,
        send_day: SendDay,
        dnd: SlotSet,
        preferred_channel: Channel,
        total: Krw,
        content: DeliveryContent,
        now: DateTime<Utc>,
    ) -> Self {
        let send_date = send_date(cycle, send_day);
        Delivery {
            cycle,
            shard,
            customer_id,
            state: DeliveryState::Ready,
            send_date,
            available_at: start_of_day(send_date),
            dnd,
            preferred_channel,
            total,
            content,
            attempts_email: 0,
            attempts_sms: 0,
            send_round: 0,
            route: None,
            email_hash: None,
            evidence: None,
            // Whole seconds, as every later write stamps `updated_at`.
            created_at: crate::delivery::utc_seconds::truncate(now),
            updated_at: crate::delivery::utc_seconds::truncate(now),
        }
    }

    pub fn id(&self) -> String {
        crate::bill::bill_id(self.cycle, self.shard, &self.customer_id)
    }

    /// The typed id.
    pub fn delivery_id(&self) -> DeliveryId {
        DeliveryId::new(self.cycle, self.shard, self.customer_id.clone())
    }

    pub fn due_bucket(&self) -> u32 {
        due_bucket(&self.customer_id)
    }
}

/// The message dispatch puts on a channel's queue: ids only, never contact
/// data. `run_id` names the dispatch run that enqueued it (logs, duplicates).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryMessage {
    pub delivery_id: String,
    pub channel: Channel,
    pub run_id: String,
    /// How many times a sender has put this message back as a fresh copy
    /// after trouble of its own (a store or queue failing, not the message):
    /// bounded, so that a long outage ends in the dead-letter queue after all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub copies: u32,
}

/// What a sender puts on the dead-letter queue when a delivery is `DEAD`:
/// the message's ids plus how it ended, so that an operator (or the admin
/// API) can replay it. Never personal data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    pub delivery_id: String,
    /// The channel that gave up last.
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Attempts on that channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The provider's last error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the sender gave up (absent when SQS moved the message itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_at: Option<String>,
}

/// Bytes a dead letter's `last_error` (a provider's or our error code) may take.
pub const MAX_ERROR_CODE_BYTES: usize = 128;

impl DeliveryMessage {
    /// The message's delivery id, once every id it carries has its shape (`run_id`:
    /// [`crate::text::check_id`]). The error names the field, never the value: a message
    /// that passes holds ids only, and may be logged, recorded and replayed.
    pub fn check(&self) -> Result<DeliveryId, String> {
        let id = DeliveryId::parse(&self.delivery_id).map_err(|e| e.to_string())?;
        crate::text::check_id("run_id", &self.run_id, crate::text::MAX_ID_BYTES).map_err(|e| e.to_string())?;
        Ok(id)
    }
}

impl DeadLetter {
    /// The letter's delivery id, once every field it carries has its shape: `run_id` and
    /// `last_error` id-shaped ([`crate::text::check_id`]), `dead_at` an RFC 3339 instant.
    /// The error names the field, never the value: a letter that passes holds ids, codes
    /// and a time only, and may be recorded and replayed as it is.
    pub fn check(&self) -> Result<DeliveryId, String> {
        use crate::text::{MAX_ID_BYTES, check_id};
        let id = DeliveryId::parse(&self.delivery_id).map_err(|e| e.to_string())?;
        if let Some(run_id) = &self.run_id {
            check_id("run_id", run_id, MAX_ID_BYTES).map_err(|e| e.to_string())?;
        }
        if let Some(code) = &self.last_error {
            check_id("last_error", code, MAX_ERROR_CODE_BYTES).map_err(|e| e.to_string())?;
        }
        if let Some(at) = &self.dead_at {
            DateTime::parse_from_rfc3339(at).map_err(|_| "dead_at is not an RFC 3339 instant".to_owned())?;
        }
        Ok(id)
    }
}

/// A delivery's id: the bill's key, one canonical text form
/// `{cycle}#{shard:05}#{customer}`. Parsed once where an id comes in (a queue
/// message, a dead letter, an operator's request); every key built from it —
/// the table key, the providers' idempotency key — uses the canonical form, so
/// `2026-11#1#C1` and `2026-11#00001#C1` name one delivery and one send.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeliveryId {
    pub cycle: Cycle,
    pub shard: u32,
    pub customer: CustomerId,
}

/// The largest shard a delivery id names (the canonical form has five digits).
pub const MAX_SHARD: u32 = 99_999;

/// Why a delivery id does not parse. Names the part, never the value (an id
/// that came from outside may hold anything, personal data included).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("delivery_id is not cycle#shard#customer: {0}")]
pub struct DeliveryIdError(pub &'static str);

impl DeliveryId {
    pub fn new(cycle: Cycle, shard: u32, customer: CustomerId) -> Self {
        DeliveryId { cycle, shard, customer }
    }

    /// Parses `{cycle}#{shard}#{customer}`; the shard may carry leading zeros.
    pub fn parse(id: &str) -> Result<Self, DeliveryIdError> {
        let mut parts = id.splitn(3, '#');
        let (Some(cycle), Some(shard), Some(customer)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(DeliveryIdError("it has fewer than three '#'-separated parts"));
        };
        let cycle: Cycle = cycle.parse().map_err(|_| DeliveryIdError("the cycle is not YYYY-MM"))?;
        let shard_ok = !shard.is_empty() && shard.len() <= 10 && shard.bytes().all(|b| b.is_ascii_digit());
        let shard: u32 = shard
            .parse()
            .ok()
            .filter(|n| shard_ok && *n <= MAX_SHARD)
            .ok_or(DeliveryIdError("the shard is not a number from 0 to 99999"))?;
        let customer = CustomerId::new(customer).map_err(|_| {
            DeliveryIdError("the customer id is not a letter then up to 63 letters, digits, '-' or '_'")
        })?;
        Ok(DeliveryId { cycle, shard, customer })
    }

    /// The canonical text form.
    pub fn canonical(&self) -> String {
        crate::bill::bill_id(self.cycle, self.shard, &self.customer)
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:05}#{}", self.cycle, self.shard, self.customer)
    }
}

impl std::str::FromStr for DeliveryId {
    type Err = DeliveryIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryId::parse(s)
    }
}

/// Splits a delivery id (`{cycle}#{shard:05}#{customer}`) into its parts
/// (see [`DeliveryId::parse`]; the error names the part, not the value).
pub fn parse_delivery_id(id: &str) -> Result<(Cycle, u32, CustomerId), String> {
    let d = DeliveryId::parse(id).map_err(|e| e.to_string())?;
    Ok((d.cycle, d.shard, d.customer))
}

/// The date a cycle's invoice goes to a customer: their send day in the month
/// after the cycle (the bill for November is issued in December), clamped to
/// that month's last day (a send day of 31 means 30 November, 28 February).
pub fn send_date(cycle: Cycle, send_day: SendDay) -> NaiveDate {
    send_day.date_in(cycle.next())
}

/// 00:00 Asia/Seoul on `date`.
pub fn start_of_day(date: NaiveDate) -> DateTime<Utc> {
    let offset = i64::from(SEOUL.local_minus_utc());
    (date.and_time(NaiveTime::MIN) - chrono::Duration::seconds(offset)).and_utc()
}

/// The due-index bucket of a customer: FNV-1a of the id, modulo
/// [`DUE_BUCKETS`]. Stable across processes and releases (unlike the
/// standard library's randomly keyed hasher): it is stored in keys.
/// Where a sent delivery stands by its provider's evidence: the lifecycle
/// after `SENT_EMAIL` / `SENT_SMS`. Stored flat on the delivery item
/// (`evidence`, `evidence_rank`, `evidence_at`, `evidence_type`,
/// `evidence_channel`); a later event only ever raises the rank, so events
/// that arrive out of order end where the last one in rank order says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    #[serde(rename = "evidence")]
    pub state: EvidenceState,
    /// The rank of `state` ([`EvidenceState::rank`]), stored so that a
    /// conditional write can compare it.
    #[serde(rename = "evidence_rank")]
    pub rank: u32,
    /// When the provider observed it (the event's time), whole seconds.
    #[serde(rename = "evidence_at", with = "utc_seconds")]
    pub at: DateTime<Utc>,
    /// The provider's own type, e.g. `Bounce/Permanent/General`,
    /// `Complaint/abuse`, `Delivery`, `TEXT_DELIVERED` (never personal data).
    #[serde(rename = "evidence_type")]
    pub kind: String,
    #[serde(rename = "evidence_channel")]
    pub channel: Channel,
}

/// The lifecycle states evidence gives a sent delivery.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EvidenceState {
    /// The recipient's server (or the carrier) took the message.
    Delivered,
    /// A permanent bounce or a reject: the address cannot be reached.
    Bounced,
    /// The recipient marked the email as spam.
    Complained,
}

impl EvidenceState {
    pub const ALL: [EvidenceState; 3] = [
        EvidenceState::Delivered,
        EvidenceState::Bounced,
        EvidenceState::Complained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceState::Delivered => "DELIVERED",
            EvidenceState::Bounced => "BOUNCED",
            EvidenceState::Complained => "COMPLAINED",
        }
    }

    /// The order evidence is applied in: a later event takes effect only
    /// with a higher rank (a delivery receipt arriving after the bounce or
    /// the complaint it preceded changes nothing).
    pub fn rank(self) -> u32 {
        match self {
            EvidenceState::Delivered => 1,
            EvidenceState::Bounced => 2,
            EvidenceState::Complained => 3,
        }
    }
}

impl fmt::Display for EvidenceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

pub fn due_bucket(customer: &CustomerId) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in customer.as_str().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % DUE_BUCKETS
}

/// An instant as `YYYY-MM-DDTHH:MM:SSZ`: fixed width, so text order is time
/// order (RFC 3339 with optional fractions is not: `…00.5Z` < `…00Z`).
/// Fractions of a second are dropped.
pub mod utc_seconds {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// `t` without its fraction of a second: what [`format`] keeps of it.
    pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
        chrono::SubsecRound::trunc_subsecs(t, 0)
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| serde::de::Error::invalid_value(serde::de::Unexpected::Other("text"), &"an RFC 3339 instant"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_id_has_one_canonical_form_and_its_errors_name_no_value() {
        let a = DeliveryId::parse("2026-11#1#C0000042").unwrap();
        let b = DeliveryId::parse("2026-11#00001#C0000042").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2026-11#00001#C0000042");
        assert_eq!(a.canonical(), a.to_string());
        assert_eq!(DeliveryId::parse(&a.to_string()).unwrap(), a);
        for bad in [
            "",
            "2026-11",
            "2026-11#00001",
            "2026-13#00001#C1",
            "2026-11#-1#C1",
            "2026-11#+1#C1",
            "2026-11#100000#C1",
            "2026-11#00001#someone@example.com",
            "2026-11#x#C1",
        ] {
            let e = DeliveryId::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("delivery_id "), "{e}");
            assert!(!e.contains("example.com") && !e.contains("#C1"), "{e}");
        }
    }

    #[test]
    fn every_state_reads_back_from_its_name() {
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryState::parse("SENT"), None);
    }

    #[test]
    fn send_date_is_in_the_month_after_the_cycle_and_clamped() {
        let nov = Cycle::new(2026, 11).unwrap();
        assert_eq!(
            send_date(nov, SendDay::new(15).unwrap()),
            NaiveDate::from_ymd_opt(2026, 12, 15).unwrap()
        );
        let jan = Cycle::new(2027, 1).unwrap();
        assert_eq!(
            send_date(jan, SendDay::new(31).unwrap()),
            NaiveDate::from_ymd_opt(2027, 2, 28).unwrap()
        );
        let dec = Cycle::new(2026, 12).unwrap();
        assert_eq!(
            send_date(dec, SendDay::new(31).unwrap()),
            NaiveDate::from_ymd_opt(2027, 1, 31).unwrap()
        );
    }

    #[test]
    fn a_day_starts_at_midnight_in_seoul() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 15).unwrap();
        assert_eq!(start_of_day(d).to_rfc3339(), "2026-12-14T15:00:00+00:00");
    }

    #[test]
    fn delivery_ids_round_trip() {
        let id = crate::bill::bill_id(Cycle::new(2026, 11).unwrap(), 42, &CustomerId::new("C0000042").unwrap());
        let (c, s, cu) = parse_delivery_id(&id).unwrap();
        assert_eq!((c.to_string(), s, cu.as_str()), ("2026-11".to_owned(), 42, "C0000042"));
        assert!(parse_delivery_id("2026-11#x#C1").is_err());
        assert!(parse_delivery_id("2026-13#00001#C1").is_err());
        assert!(parse_delivery_id("nonsense").is_err());
        assert!(
            serde_json::from_str::<DeliveryMessage>(
                r#"{"delivery_id":"a","channel":"email","run_id":"r","email":"x"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn instants_are_fixed_width_text() {
        let t = DateTime::parse_from_rfc3339("2026-12-14T15:00:00.500Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(utc_seconds::format(&t), "2026-12-14T15:00:00Z");
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        let id = CustomerId::new("C0000042").unwrap();
        assert_eq!(due_bucket(&id), due_bucket(&id.clone()));
        let mut counts = [0u32; DUE_BUCKETS as usize];
        for i in 0..(1_000 * DUE_BUCKETS) {
            counts[due_bucket(&CustomerId::new(format!("C{i:07}")).unwrap()) as usize] += 1;
        }
        // 1,000 expected per bucket; a hot bucket would be far above.
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }
}

#[cfg(test)]
mod evidence_tests {
    use super::*;

    #[test]
    fn evidence_is_stored_flat_and_absent_until_there_is_some() {
        let mut v = serde_json::json!({
            "cycle": "2026-11", "shard": 1, "customer_id": "C0000001", "state": "SENT_EMAIL",
            "send_date": "2026-12-05", "available_at": "2026-12-04T15:00:00Z", "dnd": [],
            "preferred_channel": "email", "total": 55000, "template_version": "v1",
            "content_hash": "h", "email_key": "k", "subject": "s", "sms_text": "t",
            "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:00Z"
        });
        let d: Delivery = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            (d.evidence.as_ref(), d.route, d.email_hash.as_ref()),
            (None, None, None)
        );
        let back = serde_json::to_value(&d).unwrap();
        for absent in ["evidence", "evidence_rank", "route", "email_hash"] {
            assert!(back.get(absent).is_none(), "{absent} in {back}");
        }
        v["evidence"] = "BOUNCED".into();
        v["evidence_rank"] = 2.into();
        v["evidence_at"] = "2026-12-05T01:02:03Z".into();
        v["evidence_type"] = "Bounce/Permanent/General".into();
        v["evidence_channel"] = "email".into();
        v["route"] = "sms".into();
        let d: Delivery = serde_json::from_value(v).unwrap();
        let e = d.evidence.clone().unwrap();
        assert_eq!(
            (e.state, e.rank, e.channel),
            (EvidenceState::Bounced, 2, Channel::Email)
        );
        assert_eq!(d.route, Some(Channel::Sms));
        let back = serde_json::to_value(&d).unwrap();
        assert_eq!(back["evidence_rank"], 2);
        assert_eq!(back["evidence"], "BOUNCED");
        assert!(EvidenceState::Complained.rank() > EvidenceState::Bounced.rank());
        assert!(EvidenceState::Bounced.rank() > EvidenceState::Delivered.rank());
    }
}
