//! Delivery slots: the day in Asia/Seoul is cut into twelve two-hour slots,
//! slot `k` covering `[2k:00, 2k+2:00)`. A send may start only in a slot that
//! is outside the customer's do-not-disturb (DND) slots and entirely outside
//! the system-wide quiet window.
//!
//! Asia/Seoul has kept UTC+09:00 without daylight saving since 1988, so a
//! fixed offset is exact for every date this system will see and spares us a
//! time-zone database.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const SLOTS_PER_DAY: u8 = 12;
const MINUTES_PER_DAY: u32 = 24 * 60;
const SLOT_MINUTES: u32 = 120;

/// The Asia/Seoul offset, UTC+09:00 (checked at compile time).
pub const SEOUL: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+09:00 is a valid offset"),
};

/// The Asia/Seoul offset, UTC+09:00.
pub fn seoul() -> FixedOffset {
    SEOUL
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// The index is kept for the caller; the text does not show it (it may be any number
    /// given from outside).
    #[error("a slot must be 0-11")]
    OutOfRange(u32),
    #[error("a quiet window must be HH:MM-HH:MM")]
    MalformedQuietWindow,
    #[error(
        "the DND slots {dnd} leave no slot outside the quiet window {quiet}: at least one allowed slot must remain"
    )]
    NoAllowedSlot { dnd: SlotSet, quiet: QuietWindow },
}

/// One two-hour slot of the day, 0–11.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(u8);

impl Slot {
    pub fn new(index: u32) -> Result<Self, SlotError> {
        if index < u32::from(SLOTS_PER_DAY) {
            Ok(Slot(index as u8))
        } else {
            Err(SlotError::OutOfRange(index))
        }
    }

    pub fn all() -> impl Iterator<Item = Slot> {
        (0..SLOTS_PER_DAY).map(Slot)
    }

    pub fn index(self) -> u8 {
        self.0
    }

    pub fn start_hour(self) -> u32 {
        u32::from(self.0) * 2
    }

    /// The slot containing a local (Asia/Seoul) time of day.
    pub fn of_time(t: NaiveTime) -> Slot {
        Slot((t.hour() / 2) as u8)
    }

    /// The Asia/Seoul date and slot of an instant.
    pub fn of_instant(t: DateTime<Utc>) -> (NaiveDate, Slot) {
        let local = t.with_timezone(&seoul());
        (local.date_naive(), Slot::of_time(local.time()))
    }

    /// The instant this slot starts on a given Asia/Seoul date.
    pub fn start_on(self, date: NaiveDate) -> DateTime<Utc> {
        let naive = date.and_time(NaiveTime::MIN) + Duration::hours(i64::from(self.start_hour()));
        // A fixed offset maps every local time to exactly one instant.
        seoul()
            .from_local_datetime(&naive)
            .single()
            .map_or_else(|| Utc.from_utc_datetime(&naive), |t| t.with_timezone(&Utc))
    }

    fn minutes(self) -> (u32, u32) {
        let start = u32::from(self.0) * SLOT_MINUTES;
        (start, start + SLOT_MINUTES)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.start_hour();
        write!(f, "{:02}:00-{:02}:00", h, h + 2)
    }
}

/// A set of slots (bit `k` = slot `k`). Serialised as a sorted list of slot
/// indices, e.g. `[0, 1, 11]`.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash)]
pub struct SlotSet(u16);

impl SlotSet {
    pub const EMPTY: SlotSet = SlotSet(0);
    pub const ALL: SlotSet = SlotSet((1 << SLOTS_PER_DAY) - 1);

    pub fn from_bits(bits: u16) -> Result<Self, SlotError> {
        if bits & !Self::ALL.0 != 0 {
            return Err(SlotError::OutOfRange(u32::from(16 - (bits.leading_zeros() as u16)) - 1));
        }
        Ok(SlotSet(bits))
    }

    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn contains(self, s: Slot) -> bool {
        self.0 & (1 << s.0) != 0
    }

    pub fn insert(&mut self, s: Slot) {
        self.0 |= 1 << s.0;
    }

    pub fn with(mut self, s: Slot) -> Self {
        self.insert(s);
        self
    }

    pub fn union(self, other: SlotSet) -> SlotSet {
        SlotSet(self.0 | other.0)
    }

    pub fn complement(self) -> SlotSet {
        SlotSet(!self.0 & Self::ALL.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> u32 {
        self.0.count_ones()
    }

    pub fn iter(self) -> impl Iterator<Item = Slot> {
        Slot::all().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Slot> for SlotSet {
    fn from_iter<I: IntoIterator<Item = Slot>>(iter: I) -> Self {
        let mut set = SlotSet::EMPTY;
        for s in iter {
            set.insert(s);
        }
        set
    }
}

impl fmt::Debug for SlotSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|s| s.0)).finish()
    }
}

impl fmt::Display for SlotSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{s}")?;
        }
        f.write_str("]")
    }
}

impl Serialize for SlotSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(|x| x.0))
    }
}

impl<'de> Deserialize<'de> for SlotSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<u32>::deserialize(d)?;
        v.into_iter()
            .map(Slot::new)
            .collect::<Result<SlotSet, _>>()
            .map_err(|_| serde::de::Error::invalid_value(serde::de::Unexpected::Other("number"), &"slot numbers 0-11"))
    }
}

/// The system-wide quiet window, in Asia/Seoul local time, e.g.
/// `21:00-08:00`. It may cross midnight; `start == end` means no quiet
/// window. A slot is forbidden if any minute of it falls inside the window.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct QuietWindow {
    start_min: u32,
    end_min: u32,
}

impl QuietWindow {
    /// No quiet window at all.
    pub const NONE: QuietWindow = QuietWindow {
        start_min: 0,
        end_min: 0,
    };

    pub fn new(start: NaiveTime, end: NaiveTime) -> Self {
        let m = |t: NaiveTime| t.hour() * 60 + t.minute();
        QuietWindow {
            start_min: m(start),
            end_min: m(end),
        }
    }

    /// The default: 21:00-08:00, the hours during which Korean law forbids
    /// advertising messages without separate consent (정보통신망법 제50조).
    /// Invoices are not advertising, but customers expect the same courtesy.
    pub fn default_korea() -> Self {
        QuietWindow {
            start_min: 21 * 60,
            end_min: 8 * 60,
        }
    }

    /// The quiet window as half-open minute intervals within one day.
    fn intervals(self) -> [(u32, u32); 2] {
        match self.start_min.cmp(&self.end_min) {
            std::cmp::Ordering::Equal => [(0, 0), (0, 0)],
            std::cmp::Ordering::Less => [(self.start_min, self.end_min), (0, 0)],
            std::cmp::Ordering::Greater => [(self.start_min, MINUTES_PER_DAY), (0, self.end_min)],
        }
    }

    /// Whether any minute of `slot` lies inside the quiet window.
    pub fn touches(self, slot: Slot) -> bool {
        let (a, b) = slot.minutes();
        self.intervals().iter().any(|&(s, e)| s < e && s < b && a < e)
    }

    /// The slots the quiet window forbids.
    pub fn forbidden_slots(self) -> SlotSet {
        Slot::all().filter(|s| self.touches(*s)).collect()
    }
}

impl Default for QuietWindow {
    fn default() -> Self {
        Self::default_korea()
    }
}

impl fmt::Display for QuietWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_min / 60,
            self.start_min % 60,
            self.end_min / 60,
            self.end_min % 60
        )
    }
}

impl FromStr for QuietWindow {
    type Err = SlotError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SlotError::MalformedQuietWindow;
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let parse = |x: &str| NaiveTime::parse_from_str(x.trim(), "%H:%M").map_err(|_| bad());
        Ok(QuietWindow::new(parse(a)?, parse(b)?))
    }
}

serde_as_text!(QuietWindow, "a quiet window as HH:MM-HH:MM");

/// When a given customer may be contacted: the slots outside both their DND
/// set and the quiet window. Never empty (construction fails otherwise).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ContactWindow {
    allowed: SlotSet,
}

impl ContactWindow {
    pub fn new(dnd: SlotSet, quiet: QuietWindow) -> Result<Self, SlotError> {
        let allowed = dnd.union(quiet.forbidden_slots()).complement();
        if allowed.is_empty() {
            return Err(SlotError::NoAllowedSlot { dnd, quiet });
        }
        Ok(ContactWindow { allowed })
    }

    pub fn allowed_slots(self) -> SlotSet {
        self.allowed
    }

    pub fn allows_slot(self, slot: Slot) -> bool {
        self.allowed.contains(slot)
    }

    /// Whether a send may start at instant `t`.
    pub fn allows(self, t: DateTime<Utc>) -> bool {
        self.allows_slot(Slot::of_instant(t).1)
    }

    /// The start of the first allowed slot that starts at or after `t`.
    pub fn next_allowed_slot_start(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let (date, slot) = Slot::of_instant(t);
        let mut day = date;
        // At most one full day ahead plus the rest of today: 2 × 12 slots.
        for _ in 0..2 {
            for s in Slot::all() {
                if !self.allowed.contains(s) {
                    continue;
                }
                let start = s.start_on(day);
                if day != date || (s >= slot && start >= t) {
                    return start;
                }
            }
            day = day.succ_opt().unwrap_or(day);
        }
        // Unreachable: `allowed` is non-empty, so tomorrow has an allowed slot.
        t
    }

    /// `t` itself if a send may start then, otherwise the next allowed slot
    /// start: the time a deferred message should become visible again.
    pub fn earliest_send_at(self, t: DateTime<Utc>) -> DateTime<Utc> {
        if self.allows(t) {
            t
        } else {
            self.next_allowed_slot_start(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    fn kst(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        seoul()
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn set(ix: &[u32]) -> SlotSet {
        ix.iter().map(|&i| Slot::new(i).unwrap()).collect()
    }

    #[test]
    fn slot_of_every_boundary() {
        for k in 0..12u32 {
            let start = kst(2026, 11, 15, 2 * k, 0);
            assert_eq!(Slot::of_instant(start).1.index() as u32, k, "start of slot {k}");
            let last_second = start + Duration::hours(2) - Duration::seconds(1);
            assert_eq!(Slot::of_instant(last_second).1.index() as u32, k, "end of slot {k}");
            assert_eq!(
                Slot::new(k)
                    .unwrap()
                    .start_on(NaiveDate::from_ymd_opt(2026, 11, 15).unwrap()),
                start
            );
        }
        // 23:59:59 KST is slot 11 of that day; 00:00 is slot 0 of the next.
        let (d, s) = Slot::of_instant(kst(2026, 11, 30, 23, 59) + Duration::seconds(59));
        assert_eq!((d.day(), s.index()), (30, 11));
        let (d, s) = Slot::of_instant(kst(2026, 12, 1, 0, 0));
        assert_eq!((d.month(), d.day(), s.index()), (12, 1, 0));
    }

    #[test]
    fn utc_midnight_is_nine_in_seoul() {
        let t = Utc.with_ymd_and_hms(2026, 11, 15, 0, 0, 0).unwrap();
        assert_eq!(Slot::of_instant(t).1.index(), 4);
    }

    #[test]
    fn quiet_window_crossing_midnight() {
        let q: QuietWindow = "21:00-08:00".parse().unwrap();
        assert_eq!(q.forbidden_slots(), set(&[0, 1, 2, 3, 10, 11]));
        let q: QuietWindow = "22:00-08:00".parse().unwrap();
        assert_eq!(q.forbidden_slots(), set(&[0, 1, 2, 3, 11]));
        let q: QuietWindow = "22:00-07:59".parse().unwrap();
        assert_eq!(q.forbidden_slots(), set(&[0, 1, 2, 3, 11]));
        let q: QuietWindow = "22:00-08:01".parse().unwrap();
        assert_eq!(q.forbidden_slots(), set(&[0, 1, 2, 3, 4, 11]));
        let q: QuietWindow = "12:30-13:00".parse().unwrap();
        assert_eq!(q.forbidden_slots(), set(&[6]));
        assert_eq!(
            "00:00-00:00".parse::<QuietWindow>().unwrap().forbidden_slots(),
            SlotSet::EMPTY
        );
        assert_eq!(QuietWindow::default().to_string(), "21:00-08:00");
        for bad in ["21-08", "25:00-08:00", "21:00", ""] {
            assert!(bad.parse::<QuietWindow>().is_err(), "{bad}");
        }
    }

    #[test]
    fn dnd_that_leaves_nothing_is_rejected() {
        let q = QuietWindow::default_korea();
        let err = ContactWindow::new(set(&[4, 5, 6, 7, 8, 9]), q).unwrap_err();
        assert!(err.to_string().contains("no slot outside the quiet window"), "{err}");
        assert!(ContactWindow::new(SlotSet::ALL, QuietWindow::NONE).is_err());
        assert!(ContactWindow::new(set(&[4, 5, 6, 7, 8]), q).is_ok());
    }

    #[test]
    fn allows_only_allowed_slots() {
        let w = ContactWindow::new(set(&[5]), QuietWindow::default_korea()).unwrap();
        assert_eq!(w.allowed_slots(), set(&[4, 6, 7, 8, 9]));
        assert!(w.allows(kst(2026, 11, 15, 8, 0)));
        assert!(!w.allows(kst(2026, 11, 15, 10, 0)));
        assert!(!w.allows(kst(2026, 11, 15, 11, 59)));
        assert!(w.allows(kst(2026, 11, 15, 12, 0)));
        assert!(w.allows(kst(2026, 11, 15, 19, 59)));
        assert!(!w.allows(kst(2026, 11, 15, 20, 0)));
        assert!(!w.allows(kst(2026, 11, 15, 7, 59)));
    }

    #[test]
    fn next_allowed_start_crosses_midnight_and_month_end() {
        let w = ContactWindow::new(SlotSet::EMPTY, QuietWindow::default_korea()).unwrap();
        // 21:30 on the last day of November → 08:00 on 1 December.
        assert_eq!(
            w.next_allowed_slot_start(kst(2026, 11, 30, 21, 30)),
            kst(2026, 12, 1, 8, 0)
        );
        // 28 Feb 2026 23:00 → 1 March 08:00; leap year → 29 Feb.
        assert_eq!(
            w.next_allowed_slot_start(kst(2026, 2, 28, 23, 0)),
            kst(2026, 3, 1, 8, 0)
        );
        assert_eq!(
            w.next_allowed_slot_start(kst(2028, 2, 28, 23, 0)),
            kst(2028, 2, 29, 8, 0)
        );
        // 31 Dec → 1 Jan of the next year.
        assert_eq!(
            w.next_allowed_slot_start(kst(2026, 12, 31, 20, 0)),
            kst(2027, 1, 1, 8, 0)
        );
        // 03:00 → 08:00 the same day.
        assert_eq!(
            w.next_allowed_slot_start(kst(2026, 11, 15, 3, 0)),
            kst(2026, 11, 15, 8, 0)
        );
        // Inside an allowed slot: the next slot start, not the current one.
        assert_eq!(
            w.next_allowed_slot_start(kst(2026, 11, 15, 9, 0)),
            kst(2026, 11, 15, 10, 0)
        );
        // Exactly at an allowed slot start: that instant.
        assert_eq!(
            w.next_allowed_slot_start(kst(2026, 11, 15, 10, 0)),
            kst(2026, 11, 15, 10, 0)
        );
        assert_eq!(w.earliest_send_at(kst(2026, 11, 15, 9, 0)), kst(2026, 11, 15, 9, 0));
        assert_eq!(w.earliest_send_at(kst(2026, 11, 15, 22, 0)), kst(2026, 11, 16, 8, 0));
    }

    #[test]
    fn next_allowed_start_skips_dnd_into_the_next_day() {
        // Only 08:00-10:00 allowed: at 08:30 the next start is tomorrow 08:00.
        let w = ContactWindow::new(set(&[5, 6, 7, 8, 9]), QuietWindow::default_korea()).unwrap();
        assert_eq!(
            w.next_allowed_slot_start(kst(2026, 11, 30, 8, 30)),
            kst(2026, 12, 1, 8, 0)
        );
        assert_eq!(w.earliest_send_at(kst(2026, 11, 30, 8, 30)), kst(2026, 11, 30, 8, 30));
    }

    #[test]
    fn next_allowed_start_is_allowed_and_not_before_t_for_every_slot() {
        // Exhaustive over every DND set (4096) × every slot start of a day.
        for bits in 0..(1u16 << 12) {
            let Ok(w) = ContactWindow::new(SlotSet::from_bits(bits).unwrap(), QuietWindow::default_korea()) else {
                continue;
            };
            for h in 0..24 {
                let t = kst(2026, 11, 30, h, 17);
                let n = w.next_allowed_slot_start(t);
                assert!(n >= t && w.allows(n), "bits {bits:#x} h {h}");
                assert!(n - t <= Duration::hours(24), "bits {bits:#x} h {h}");
                // Nothing allowed strictly between t and n at a slot start.
                let mut probe = Slot::of_instant(t).1.start_on(Slot::of_instant(t).0) + Duration::hours(2);
                while probe < n {
                    assert!(!w.allows(probe), "bits {bits:#x}: {probe} allowed before {n}");
                    probe += Duration::hours(2);
                }
            }
        }
    }

    #[test]
    fn slot_set_serialises_as_indices() {
        let s = set(&[11, 0, 3]);
        assert_eq!(serde_json::to_string(&s).unwrap(), "[0,3,11]");
        assert_eq!(serde_json::from_str::<SlotSet>("[0,3,11]").unwrap(), s);
        assert!(serde_json::from_str::<SlotSet>("[12]").is_err());
        assert_eq!(format!("{}", set(&[4])), "[08:00-10:00]");
        assert!(SlotSet::from_bits(1 << 12).is_err());
    }
}
