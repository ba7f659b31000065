//! Customers as billing sees them: a snapshot of the subscription with the
//! contact data sealed (see [`crate::pii`]).

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize};

use crate::calendar::{Cycle, full_years};
use crate::pii::{Field, Keyring, PiiError, Sealed, Secret};
use crate::slots::{ContactWindow, QuietWindow, SlotError, SlotSet};

/// A customer id: a letter, then up to 63 ASCII letters, digits, `-` or `_` (e.g.
/// `C0000042`). It carries no personal data and may appear in logs and queue messages; a
/// phone number (a digit or `+` first) or an email put where an id belongs is never one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn new(s: impl Into<String>) -> Result<Self, CustomerError> {
        let s = s.into();
        let ok = s.len() <= 64
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(CustomerId(s))
        } else {
            Err(CustomerError::new(
                "?",
                "customer id must be a letter, then up to 63 letters, digits, '-' or '_'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CustomerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CustomerId::new(String::deserialize(d)?).map_err(|_| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Other("text"),
                &"a customer id: a letter, then up to 63 letters, digits, '-' or '_'",
            )
        })
    }
}

/// The day of the month a customer wants the invoice, 1–31. A day past the
/// end of a short month means that month's last day.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SendDay(u8);

impl SendDay {
    pub fn new(day: u32) -> Result<Self, String> {
        if (1..=31).contains(&day) {
            Ok(SendDay(day as u8))
        } else {
            Err("a send day must be 1-31".to_owned())
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// The send date within `month` (clamped to its last day).
    pub fn date_in(self, month: Cycle) -> NaiveDate {
        month.clamp_day(self.0)
    }
}

impl<'de> Deserialize<'de> for SendDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SendDay::new(u32::deserialize(d)?)
            .map_err(|_| serde::de::Error::invalid_value(serde::de::Unexpected::Other("number"), &"a send day of 1-31"))
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A selective contract (선택약정): a plan-fee discount for the days the
/// contract covers, `start` and `end` inclusive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// A period of compulsory military service (병사 요금할인), `start` and `end` inclusive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Soldier {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// Eligibility for a welfare discount (복지 할인): a grade the catalog defines (e.g.
/// `disabled`, `basic_livelihood`), from `start` to `end` inclusive (`None`: open-ended).
/// The grade is sensitive personal data: `Debug` never shows it and errors never name it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welfare {
    pub grade: String,
    pub start: NaiveDate,
    #[serde(default)]
    pub end: Option<NaiveDate>,
}

impl fmt::Debug for Welfare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Welfare(‹redacted›)")
    }
}

/// A premium contract (프리미엄 약정): a fixed monthly discount on premium-tier plans for
/// the days it covers, `start` and `end` inclusive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PremiumContract {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// A wired line (internet or IPTV) billed with the mobile line: a wired product code of the
/// catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WiredLine {
    pub product: String,
}

/// Most wired lines one customer record may carry.
pub const MAX_WIRED_LINES: usize = 4;
/// Longest welfare grade or wired product code, in bytes.
pub const MAX_ATTRIBUTE_CODE_BYTES: usize = 64;

/// Membership of a family bundle, with the group's member count as the
/// customer system records it at snapshot time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub group_id: String,
    pub members: u8,
}

/// Sealed contact data. Opened only where a message is sent or an invoice
/// rendered for the customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: Sealed,
    pub email: Sealed,
    pub phone: Sealed,
}

/// Contact data in clear, each field a [`Secret`].
#[derive(Clone, Debug)]
pub struct OpenContact {
    pub name: Secret<String>,
    pub email: Secret<String>,
    pub phone: Secret<String>,
}

impl Contact {
    pub fn seal(keys: &Keyring, id: &CustomerId, name: &str, email: &str, phone: &str) -> Self {
        Contact {
            name: keys.seal(id.as_str(), Field::Name, name),
            email: keys.seal(id.as_str(), Field::Email, email),
            phone: keys.seal(id.as_str(), Field::Phone, phone),
        }
    }

    pub fn open(&self, keys: &Keyring, id: &CustomerId) -> Result<OpenContact, PiiError> {
        Ok(OpenContact {
            name: keys.open(id.as_str(), Field::Name, &self.name)?,
            email: keys.open(id.as_str(), Field::Email, &self.email)?,
            phone: keys.open(id.as_str(), Field::Phone, &self.phone)?,
        })
    }
}

/// A customer snapshot, its contact data sealed: what the customers table holds and
/// settlement reads.
pub type Customer = CustomerRecord<Contact>;

/// A customer as a customer master exports it, its contact data in clear: one line of a
/// drop-zone customers file, which ingest checks and seals into a [`Customer`].
pub type ClearCustomer = CustomerRecord<ClearContact>;

/// A customer record with its contact data as `C`: sealed ([`Customer`]) or in clear
/// ([`ClearCustomer`]); every other field the same, in the same order and form. Dates are
/// Asia/Seoul calendar dates. Its `Debug` shows the birthday as `<redacted>`, and neither
/// contact form shows a value: a customer printed in a log or a panic names no personal value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord<C> {
    pub customer_id: CustomerId,
    /// The settlement shard this customer belongs to (assigned once).
    pub shard: u32,
    pub plan: String,
    #[serde(default)]
    pub addons: Vec<String>,
    #[serde(default)]
    pub family: Option<Family>,
    #[serde(default)]
    pub contract: Option<Contract>,
    /// Military service, for the soldier discount.
    #[serde(default)]
    pub soldier: Option<Soldier>,
    /// Welfare eligibility, for the welfare discount.
    #[serde(default)]
    pub welfare: Option<Welfare>,
    /// A premium contract, for the premium-contract discount.
    #[serde(default)]
    pub premium_contract: Option<PremiumContract>,
    /// Internet and IPTV lines on the same bill.
    #[serde(default)]
    pub wired: Vec<WiredLine>,
    pub birthday: NaiveDate,
    /// First day of service (inclusive).
    pub joined_on: NaiveDate,
    /// First day without service (exclusive): service ends at the start of
    /// this day. `None` while the subscription is active.
    #[serde(default)]
    pub cancelled_on: Option<NaiveDate>,
    pub send_day: SendDay,
    #[serde(default)]
    pub dnd: SlotSet,
    pub preferred_channel: Channel,
    pub contact: C,
}

/// Contact data in clear, as a customer master exports it. Its `Debug` shows no value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearContact {
    pub name: String,
    pub email: String,
    pub phone: String,
}

impl fmt::Debug for ClearContact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClearContact(‹redacted›)")
    }
}

impl<C> CustomerRecord<C> {
    /// The same customer with `contact` as its contact data.
    pub fn with_contact<D>(&self, contact: D) -> CustomerRecord<D> {
        CustomerRecord {
            customer_id: self.customer_id.clone(),
            shard: self.shard,
            plan: self.plan.clone(),
            addons: self.addons.clone(),
            family: self.family.clone(),
            contract: self.contract.clone(),
            soldier: self.soldier.clone(),
            welfare: self.welfare.clone(),
            premium_contract: self.premium_contract.clone(),
            wired: self.wired.clone(),
            birthday: self.birthday,
            joined_on: self.joined_on,
            cancelled_on: self.cancelled_on,
            send_day: self.send_day,
            dnd: self.dnd,
            preferred_channel: self.preferred_channel,
            contact,
        }
    }
}

impl ClearCustomer {
    /// The stored record: the contact data sealed with `keys` (deterministically: the same
    /// keyring gives the same bytes).
    pub fn seal(&self, keys: &Keyring) -> Customer {
        let c = &self.contact;
        self.with_contact(Contact::seal(keys, &self.customer_id, &c.name, &c.email, &c.phone))
    }

    /// Whether `open` holds exactly this record's contact data.
    pub fn same_contact(&self, open: &OpenContact) -> bool {
        open.name.expose() == &self.contact.name
            && open.email.expose() == &self.contact.email
            && open.phone.expose() == &self.contact.phone
    }
}

impl<C: fmt::Debug> fmt::Debug for CustomerRecord<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Customer")
            .field("customer_id", &self.customer_id)
            .field("shard", &self.shard)
            .field("plan", &self.plan)
            .field("addons", &self.addons)
            .field("family", &self.family)
            .field("contract", &self.contract)
            .field("soldier", &self.soldier)
            .field("welfare", &self.welfare)
            .field("premium_contract", &self.premium_contract)
            .field("wired", &self.wired)
            .field("birthday", &format_args!("<redacted>"))
            .field("joined_on", &self.joined_on)
            .field("cancelled_on", &self.cancelled_on)
            .field("send_day", &self.send_day)
            .field("dnd", &self.dnd)
            .field("preferred_channel", &self.preferred_channel)
            .field("contact", &self.contact)
            .finish()
    }
}

/// A customer record that breaks a rule. The message names the customer id
/// and the rule, never a personal value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("customer {customer_id}: {reason}")]
pub struct CustomerError {
    pub customer_id: String,
    pub reason: String,
    /// The field of the record the rule refused, when one rule of [`CustomerRecord::validate`]
    /// refused it (what ingest names in its report).
    pub field: Option<&'static str>,
}

impl CustomerError {
    pub fn new(customer_id: impl Into<String>, reason: impl Into<String>) -> Self {
        CustomerError {
            customer_id: customer_id.into(),
            reason: reason.into(),
            field: None,
        }
    }
}

impl Customer {
    /// Checks that the sealed contact data opens with `keys`.
    pub fn check_contact(&self, keys: &Keyring) -> Result<(), CustomerError> {
        self.contact
            .open(keys, &self.customer_id)
            .map(drop)
            .map_err(|e| CustomerError::new(self.customer_id.as_str(), format!("contact data: {e}")))
    }
}

/// The rules and the billing calendar of a record, whatever form its contact data has
/// (sealed, in clear, or left out of a rating snapshot).
impl<C> CustomerRecord<C> {
    /// Checks the rules a record must hold before it is stored or billed.
    /// Contact data is checked separately ([`Customer::check_contact`]),
    /// because only holders of the key can.
    pub fn validate(&self, quiet: QuietWindow) -> Result<ContactWindow, CustomerError> {
        let err = |field: &'static str, reason: String| CustomerError {
            field: Some(field),
            ..CustomerError::new(self.customer_id.as_str(), reason)
        };
        if self.plan.is_empty() {
            return Err(err("plan", "plan code is empty".into()));
        }
        if let Some(c) = self.cancelled_on
            && c < self.joined_on
        {
            return Err(err(
                "cancelled_on",
                format!("cancelled on {c} before joining on {}", self.joined_on),
            ));
        }
        if let Some(c) = &self.contract
            && c.end < c.start
        {
            return Err(err(
                "contract",
                format!("contract ends {} before it starts {}", c.end, c.start),
            ));
        }
        if let Some(f) = &self.family {
            if f.group_id.is_empty() {
                return Err(err("family", "family group id is empty".into()));
            }
            if !(2..=10).contains(&f.members) {
                return Err(err(
                    "family",
                    format!("family group has {} members; a bundle has 2-10", f.members),
                ));
            }
        }
        let mut addons = self.addons.clone();
        addons.sort();
        if addons.windows(2).any(|w| w[0] == w[1]) {
            return Err(err("addons", "an add-on code is listed twice".into()));
        }
        if let Some(s) = &self.soldier
            && s.end < s.start
        {
            return Err(err(
                "soldier",
                format!("soldier: service ends {} before it starts {}", s.end, s.start),
            ));
        }
        if let Some(w) = &self.welfare {
            // The grade is sensitive: the messages never show it.
            if w.grade.is_empty()
                || w.grade.len() > MAX_ATTRIBUTE_CODE_BYTES
                || !w.grade.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(err(
                    "welfare",
                    format!("welfare: grade must be 1-{MAX_ATTRIBUTE_CODE_BYTES} ASCII letters, digits or '_'"),
                ));
            }
            if w.end.is_some_and(|e| e < w.start) {
                return Err(err("welfare", "welfare: eligibility ends before it starts".into()));
            }
        }
        if let Some(p) = &self.premium_contract
            && p.end < p.start
        {
            return Err(err(
                "premium_contract",
                format!("premium_contract: ends {} before it starts {}", p.end, p.start),
            ));
        }
        if self.wired.len() > MAX_WIRED_LINES {
            return Err(err("wired", format!("wired: more than {MAX_WIRED_LINES} wired lines")));
        }
        let mut wired: Vec<&str> = self.wired.iter().map(|w| w.product.as_str()).collect();
        if wired.iter().any(|p| {
            p.is_empty()
                || p.len() > MAX_ATTRIBUTE_CODE_BYTES
                || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }) {
            return Err(err(
                "wired",
                format!("wired: a product code must be 1-{MAX_ATTRIBUTE_CODE_BYTES} ASCII letters, digits or '_'"),
            ));
        }
        wired.sort_unstable();
        if wired.windows(2).any(|w| w[0] == w[1]) {
            return Err(err("wired", "wired: a wired product is listed twice".into()));
        }
        ContactWindow::new(self.dnd, quiet).map_err(|e| match e {
            SlotError::NoAllowedSlot { .. } => err("dnd", e.to_string()),
            other => err("dnd", other.to_string()),
        })
    }

    /// Days of `cycle` on which the customer had service.
    pub fn active_days(&self, cycle: Cycle) -> u32 {
        cycle.days_within(Some(self.joined_on), self.cancelled_on)
    }

    /// A customer is billed for a cycle if they had service on at least one
    /// of its days.
    pub fn is_billable(&self, cycle: Cycle) -> bool {
        self.active_days(cycle) > 0
    }

    /// Whole years of tenure at the last day of `cycle`.
    pub fn tenure_years(&self, cycle: Cycle) -> u32 {
        full_years(self.joined_on, cycle.last_day())
    }

    /// Days of `cycle` covered by both service and the selective contract.
    pub fn contract_days(&self, cycle: Cycle) -> u32 {
        self.contract
            .as_ref()
            .map_or(0, |c| self.service_days_between(cycle, c.start, Some(c.end)))
    }

    /// Days of `cycle` covered by both service and military service.
    pub fn soldier_days(&self, cycle: Cycle) -> u32 {
        self.soldier
            .as_ref()
            .map_or(0, |s| self.service_days_between(cycle, s.start, Some(s.end)))
    }

    /// Days of `cycle` covered by service, military service and the selective contract.
    pub fn soldier_and_contract_days(&self, cycle: Cycle) -> u32 {
        let (Some(s), Some(c)) = (&self.soldier, &self.contract) else {
            return 0;
        };
        self.service_days_between(cycle, s.start.max(c.start), Some(s.end.min(c.end)))
    }

    /// Days of `cycle` covered by both service and welfare eligibility.
    pub fn welfare_days(&self, cycle: Cycle) -> u32 {
        self.welfare
            .as_ref()
            .map_or(0, |w| self.service_days_between(cycle, w.start, w.end))
    }

    /// Days of `cycle` covered by both service and the premium contract.
    pub fn premium_contract_days(&self, cycle: Cycle) -> u32 {
        self.premium_contract
            .as_ref()
            .map_or(0, |p| self.service_days_between(cycle, p.start, Some(p.end)))
    }

    /// Days of `cycle` with service from `start` to `end`, both inclusive (`None`: open).
    fn service_days_between(&self, cycle: Cycle, start: NaiveDate, end: Option<NaiveDate>) -> u32 {
        if end.is_some_and(|e| e < start) {
            return 0;
        }
        let from = start.max(self.joined_on);
        let until_excl = end.map(|e| e.succ_opt().unwrap_or(e));
        let until = match (self.cancelled_on, until_excl) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        cycle.days_within(Some(from), until)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::slots::Slot;

    pub fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    pub fn sample(id: &str) -> Customer {
        let keys = Keyring::dev();
        let cid = CustomerId::new(id).unwrap();
        Customer {
            contact: Contact::seal(&keys, &cid, "김민수", "kim@example.com", "010-1234-5678"),
            customer_id: cid,
            shard: 0,
            plan: "5G_STANDARD".into(),
            addons: vec![],
            family: None,
            contract: None,
            soldier: None,
            welfare: None,
            premium_contract: None,
            wired: vec![],
            birthday: d(1990, 3, 14),
            joined_on: d(2020, 5, 1),
            cancelled_on: None,
            send_day: SendDay::new(15).unwrap(),
            dnd: SlotSet::EMPTY,
            preferred_channel: Channel::Email,
        }
    }

    #[test]
    fn json_roundtrip_and_no_pii_in_debug() {
        let c = sample("C1");
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("kim@") && !json.contains("010-1234"));
        assert_eq!(serde_json::from_str::<Customer>(&json).unwrap(), c);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("kim@") && !dbg.contains("김민수"), "{dbg}");
        let open = c.contact.open(&Keyring::dev(), &c.customer_id).unwrap();
        assert_eq!(open.email.expose(), "kim@example.com");
        assert!(!format!("{open:?}").contains("kim@"));
    }

    #[test]
    fn debug_redacts_the_birthday() {
        let c = sample("C1");
        let dbg = format!("{c:?}");
        assert!(dbg.contains("birthday: <redacted>"), "{dbg}");
        assert!(!dbg.contains("1990") && !dbg.contains("03-14"), "{dbg}");
        assert!(dbg.contains("customer_id") && dbg.contains("joined_on"), "{dbg}");
    }

    #[test]
    fn send_day_out_of_range_is_rejected_with_a_clear_message() {
        let mut v = serde_json::to_value(sample("C1")).unwrap();
        for bad in [0, 32] {
            v["send_day"] = bad.into();
            let e = serde_json::from_value::<Customer>(v.clone()).unwrap_err().to_string();
            assert!(e.contains("expected a send day of 1-31"), "{e}");
            assert!(!e.contains(&format!("{bad}")), "{e}");
        }
    }

    #[test]
    fn validation_names_customer_and_rule() {
        let q = QuietWindow::default_korea();
        let mut c = sample("C7");
        assert!(c.validate(q).is_ok());
        c.dnd = [4, 5, 6, 7, 8, 9].into_iter().map(|i| Slot::new(i).unwrap()).collect();
        let e = c.validate(q).unwrap_err();
        assert_eq!(e.customer_id, "C7");
        assert!(e.to_string().contains("no slot outside the quiet window"), "{e}");
        let mut c = sample("C8");
        c.cancelled_on = Some(d(2019, 1, 1));
        assert!(c.validate(q).unwrap_err().to_string().contains("before joining"));
        let mut c = sample("C9");
        c.family = Some(Family {
            group_id: "F1".into(),
            members: 1,
        });
        assert!(c.validate(q).is_err());
        let mut c = sample("C10");
        c.addons = vec!["A".into(), "A".into()];
        assert!(c.validate(q).unwrap_err().to_string().contains("listed twice"));
    }

    #[test]
    fn undecryptable_contact_is_an_error_naming_the_customer() {
        let mut c = sample("C3");
        c.contact.email = sample("C4").contact.email; // another customer's ciphertext
        let e = c.check_contact(&Keyring::dev()).unwrap_err();
        assert_eq!(e.customer_id, "C3");
        assert!(e.reason.contains("email"));
    }

    #[test]
    fn active_and_contract_days() {
        let nov: Cycle = "2026-11".parse().unwrap();
        let mut c = sample("C1");
        assert_eq!(c.active_days(nov), 30);
        c.joined_on = d(2026, 11, 11);
        assert_eq!(c.active_days(nov), 20);
        c.cancelled_on = Some(d(2026, 11, 21));
        assert_eq!(c.active_days(nov), 10);
        c.cancelled_on = Some(d(2026, 11, 11));
        assert!(!c.is_billable(nov));
        let mut c = sample("C2");
        c.contract = Some(Contract {
            start: d(2025, 1, 1),
            end: d(2026, 11, 10),
        });
        assert_eq!(c.contract_days(nov), 10);
        c.cancelled_on = Some(d(2026, 11, 5));
        assert_eq!(c.contract_days(nov), 4);
        assert_eq!(c.tenure_years(nov), 6);
    }

    #[test]
    fn new_attributes_default_validate_and_count_days() {
        let q = QuietWindow::default_korea();
        let nov: Cycle = "2026-11".parse().unwrap();
        // Records written before the attributes existed still read, with none of them.
        let mut v = serde_json::to_value(sample("C1")).unwrap();
        for k in ["soldier", "welfare", "premium_contract", "wired"] {
            v.as_object_mut().unwrap().remove(k);
        }
        let c: Customer = serde_json::from_value(v).unwrap();
        assert!(c.soldier.is_none() && c.welfare.is_none() && c.premium_contract.is_none() && c.wired.is_empty());

        let mut c = sample("C2");
        c.soldier = Some(Soldier {
            start: d(2025, 6, 10),
            end: d(2026, 11, 9),
        });
        c.contract = Some(Contract {
            start: d(2026, 11, 5),
            end: d(2028, 11, 4),
        });
        assert_eq!(c.soldier_days(nov), 9);
        assert_eq!(c.soldier_and_contract_days(nov), 5);
        c.welfare = Some(Welfare {
            grade: "disabled".into(),
            start: d(2026, 11, 21),
            end: None,
        });
        assert_eq!(c.welfare_days(nov), 10);
        c.premium_contract = Some(PremiumContract {
            start: d(2026, 1, 1),
            end: d(2026, 11, 30),
        });
        assert_eq!(c.premium_contract_days(nov), 30);
        c.cancelled_on = Some(d(2026, 11, 25));
        assert_eq!(c.welfare_days(nov), 4);
        assert_eq!(c.premium_contract_days(nov), 24);
        c.wired = vec![WiredLine {
            product: "INTERNET_1G".into(),
        }];
        assert!(c.validate(q).is_ok());
        // Debug hides the welfare grade.
        assert!(!format!("{c:?}").contains("disabled"));

        type Edit = Box<dyn Fn(&mut Customer)>;
        let bad: Vec<(Edit, &str)> = vec![
            (
                Box::new(|c| {
                    c.soldier = Some(Soldier {
                        start: d(2026, 2, 1),
                        end: d(2026, 1, 1),
                    })
                }),
                "soldier",
            ),
            (
                Box::new(|c| {
                    c.welfare = Some(Welfare {
                        grade: "dis abled".into(),
                        start: d(2026, 1, 1),
                        end: None,
                    })
                }),
                "welfare: grade",
            ),
            (
                Box::new(|c| {
                    c.welfare = Some(Welfare {
                        grade: "disabled".into(),
                        start: d(2026, 1, 1),
                        end: Some(d(2025, 1, 1)),
                    })
                }),
                "welfare: eligibility ends",
            ),
            (
                Box::new(|c| {
                    c.premium_contract = Some(PremiumContract {
                        start: d(2026, 2, 1),
                        end: d(2026, 1, 1),
                    })
                }),
                "premium_contract",
            ),
            (
                Box::new(|c| {
                    c.wired = vec![
                        WiredLine { product: "IPTV".into() },
                        WiredLine { product: "IPTV".into() },
                    ]
                }),
                "listed twice",
            ),
            (
                Box::new(|c| {
                    c.wired = (0..5)
                        .map(|i| WiredLine {
                            product: format!("W{i}"),
                        })
                        .collect()
                }),
                "more than 4",
            ),
        ];
        for (f, want) in bad {
            let mut c = sample("C3");
            f(&mut c);
            let e = c.validate(q).unwrap_err().to_string();
            assert!(e.starts_with("customer C3: ") && e.contains(want), "{e}");
            assert!(!e.contains("dis abled"), "{e}");
        }
    }
}
