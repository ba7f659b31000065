//! Billing cycles (calendar months) and date helpers.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};

/// A billing cycle: one calendar month, written `YYYY-MM` (e.g. `2026-11`).
///
/// The cycle covers every day of the month; bills for a cycle are settled
/// after it ends and delivered in the following month on each customer's
/// send day.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cycle {
    year: i32,
    month: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CycleError {
    /// The error names the shape, not the text (which came from outside and may be anything).
    #[error("a cycle must be YYYY-MM with a month 01-12 and a year 2000-2999")]
    Malformed,
}

impl Cycle {
    pub fn new(year: i32, month: u32) -> Result<Self, CycleError> {
        if !(2000..=2999).contains(&year) || !(1..=12).contains(&month) {
            return Err(CycleError::Malformed);
        }
        Ok(Self { year, month })
    }

    /// The cycle containing `date`.
    pub fn containing(date: NaiveDate) -> Result<Self, CycleError> {
        Self::new(date.year(), date.month())
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    pub fn first_day(self) -> NaiveDate {
        date(self.year, self.month, 1)
    }

    pub fn last_day(self) -> NaiveDate {
        date(self.year, self.month, self.days())
    }

    /// Number of days in the cycle (28–31).
    pub fn days(self) -> u32 {
        days_in_month(self.year, self.month)
    }

    pub fn contains(self, d: NaiveDate) -> bool {
        d.year() == self.year && d.month() == self.month
    }

    pub fn next(self) -> Cycle {
        if self.month == 12 {
            Cycle {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Cycle {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn prev(self) -> Cycle {
        if self.month == 1 {
            Cycle {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Cycle {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// The date in this month for a chosen day of the month, clamped to the
    /// month's last day (day 31 in February is the 28th or 29th).
    pub fn clamp_day(self, day: u8) -> NaiveDate {
        let d = u32::from(day).clamp(1, self.days());
        date(self.year, self.month, d)
    }

    /// Number of days of this cycle that fall inside `[from, until)`;
    /// `None` bounds are open.
    pub fn days_within(self, from: Option<NaiveDate>, until: Option<NaiveDate>) -> u32 {
        let start = from.map_or(self.first_day(), |f| f.max(self.first_day()));
        let end_excl = until.map_or(self.next().first_day(), |u| u.min(self.next().first_day()));
        let n = (end_excl - start).num_days();
        u32::try_from(n.max(0)).unwrap_or(0)
    }
}

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    // Year, month and day are validated by construction (`Cycle::new`,
    // `days_in_month`), so this cannot fail; fall back to the epoch rather
    // than panic should that invariant ever be broken.
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default()
}

/// Days in a Gregorian month.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Whole years from `since` to `at` (an anniversary counts on its day; a
/// 29 February start completes its year on 28 February in common years).
pub fn full_years(since: NaiveDate, at: NaiveDate) -> u32 {
    if at < since {
        return 0;
    }
    let mut years = at.year() - since.year();
    let anniversary_passed = (at.month(), at.day()) >= (since.month(), since.day())
        || (since.month() == 2 && since.day() == 29 && at.month() == 2 && at.day() == 28 && !is_leap(at.year()));
    if !anniversary_passed {
        years -= 1;
    }
    u32::try_from(years.max(0)).unwrap_or(0)
}

fn is_leap(year: i32) -> bool {
    days_in_month(year, 2) == 29
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Cycle {
    type Err = CycleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CycleError::Malformed;
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        Cycle::new(year, month).map_err(|_| bad())
    }
}

serde_as_text!(Cycle, "a cycle as YYYY-MM");

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        let c: Cycle = "2026-11".parse().unwrap();
        assert_eq!(c.to_string(), "2026-11");
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"2026-11\"");
        for bad in [
            "2026-13", "2026-00", "26-11", "2026/11", "2026-1", "", "abcd-ef", "1999-12",
        ] {
            assert!(bad.parse::<Cycle>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn month_lengths_and_clamping() {
        let feb_leap: Cycle = "2028-02".parse().unwrap();
        let feb: Cycle = "2026-02".parse().unwrap();
        let apr: Cycle = "2026-04".parse().unwrap();
        assert_eq!(feb_leap.days(), 29);
        assert_eq!(feb.days(), 28);
        assert_eq!("2100-02".parse::<Cycle>().unwrap().days(), 28);
        assert_eq!("2000-02".parse::<Cycle>().unwrap().days(), 29);
        assert_eq!(feb.clamp_day(31), d(2026, 2, 28));
        assert_eq!(feb_leap.clamp_day(30), d(2028, 2, 29));
        assert_eq!(apr.clamp_day(31), d(2026, 4, 30));
        assert_eq!(apr.clamp_day(15), d(2026, 4, 15));
        assert_eq!(apr.clamp_day(0), d(2026, 4, 1));
    }

    #[test]
    fn next_and_prev_wrap_years() {
        let dec: Cycle = "2026-12".parse().unwrap();
        assert_eq!(dec.next().to_string(), "2027-01");
        assert_eq!(dec.next().prev(), dec);
    }

    #[test]
    fn days_within_cycle() {
        let nov: Cycle = "2026-11".parse().unwrap();
        assert_eq!(nov.days_within(None, None), 30);
        assert_eq!(nov.days_within(Some(d(2026, 11, 10)), None), 21);
        assert_eq!(nov.days_within(None, Some(d(2026, 11, 10))), 9);
        assert_eq!(nov.days_within(Some(d(2026, 12, 1)), None), 0);
        assert_eq!(nov.days_within(None, Some(d(2026, 11, 1))), 0);
        assert_eq!(nov.days_within(Some(d(2026, 11, 20)), Some(d(2026, 11, 10))), 0);
    }

    #[test]
    fn full_years_counts_anniversaries() {
        assert_eq!(full_years(d(2020, 11, 30), d(2026, 11, 30)), 6);
        assert_eq!(full_years(d(2020, 12, 1), d(2026, 11, 30)), 5);
        assert_eq!(full_years(d(2024, 2, 29), d(2025, 2, 28)), 1);
        assert_eq!(full_years(d(2024, 2, 29), d(2028, 2, 28)), 3);
        assert_eq!(full_years(d(2027, 1, 1), d(2026, 11, 30)), 0);
    }
}
