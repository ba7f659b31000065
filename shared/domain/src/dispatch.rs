//! Dispatch decisions: what a slot's run does with a `READY` delivery.
//!
//! The schedule runs at the start of every two-hour slot (Asia/Seoul). A run
//! serves the slot containing its scheduled time. It enqueues nothing at all
//! in a slot the system quiet window touches; otherwise it enqueues each due
//! delivery (its `available_at` has passed) whose customer allows the slot,
//! on its preferred channel if the operators' channel policy enables it, on
//! the other enabled channel if not. A policy of `none` pauses delivery: every
//! due delivery stays `READY` and goes out once a channel is enabled again. A
//! delivery the slot does not allow stays `READY` for a later run, which is
//! also how missed runs are caught up.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::calendar::Cycle;
use crate::customer::Channel;
use crate::slots::{ContactWindow, QuietWindow, SLOTS_PER_DAY, Slot, SlotSet};

/// How many cycles back a dispatch run looks, counting the cycle whose
/// invoices go out this month: a run in month M enqueues the deliveries of
/// cycles M-1 back to M-[`DISPATCH_HORIZON_CYCLES`]. An operator may
/// schedule or resend a delivery up to 400 days ahead, so the horizon spans
/// that and the month of the cycle's own sends. A command whose time falls
/// past its cycle's horizon is refused ([`dispatched_through`]): dispatch would
/// never enqueue it.
pub const DISPATCH_HORIZON_CYCLES: u32 = 15;

/// The cycles a dispatch run in the month of `date` looks at, newest first.
pub fn dispatched_cycles(date: NaiveDate) -> Vec<Cycle> {
    let Ok(this_month) = Cycle::containing(date) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut c = this_month;
    for _ in 0..DISPATCH_HORIZON_CYCLES {
        c = c.prev();
        out.push(c);
    }
    out
}

/// The last day a dispatch run still looks at `cycle` (Asia/Seoul date): the
/// last of month `cycle` + [`DISPATCH_HORIZON_CYCLES`] (a run in month M
/// looks back to M - [`DISPATCH_HORIZON_CYCLES`]).
pub fn dispatched_through(cycle: Cycle) -> NaiveDate {
    let mut m = cycle;
    // The month after the last one that looks at it.
    for _ in 0..=DISPATCH_HORIZON_CYCLES {
        m = m.next();
    }
    m.first_day() - Duration::days(1)
}

/// Which channels the operators have enabled (`email,sms`, `email`, `sms` or
/// `none`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChannelPolicy {
    pub email: bool,
    pub sms: bool,
}

impl ChannelPolicy {
    pub const ALL: ChannelPolicy = ChannelPolicy { email: true, sms: true };

    pub fn allows(self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email,
            Channel::Sms => self.sms,
        }
    }

    /// The channel a customer who prefers `preferred` is reached on: the
    /// preferred one if enabled, else the other if enabled, else none.
    pub fn route(self, preferred: Channel) -> Option<Channel> {
        let other = match preferred {
            Channel::Email => Channel::Sms,
            Channel::Sms => Channel::Email,
        };
        [preferred, other].into_iter().find(|c| self.allows(*c))
    }
}

impl Default for ChannelPolicy {
    fn default() -> Self {
        ChannelPolicy::ALL
    }
}

impl fmt::Display for ChannelPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.email, self.sms) {
            (true, true) => "email,sms",
            (true, false) => "email",
            (false, true) => "sms",
            (false, false) => "none",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a channel policy must be a comma-separated list of email and sms, or none")]
pub struct ChannelPolicyError;

impl FromStr for ChannelPolicy {
    type Err = ChannelPolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ChannelPolicyError;
        let mut p = ChannelPolicy {
            email: false,
            sms: false,
        };
        if s.trim() == "none" {
            return Ok(p);
        }
        for part in s.split(',').map(str::trim) {
            match part {
                "email" => p.email = true,
                "sms" => p.sms = true,
                _ => return Err(bad()),
            }
        }
        Ok(p)
    }
}

serde_as_text!(ChannelPolicy, "a channel policy: email, sms, email,sms or none");

/// One slot of one day: what a dispatch run serves.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotRun {
    pub date: NaiveDate,
    pub slot: Slot,
}

impl SlotRun {
    /// The slot containing instant `t` (Asia/Seoul).
    pub fn containing(t: DateTime<Utc>) -> SlotRun {
        let (date, slot) = Slot::of_instant(t);
        SlotRun { date, slot }
    }

    pub fn start(self) -> DateTime<Utc> {
        self.slot.start_on(self.date)
    }

    /// Whether the run may send at all: the slot lies entirely outside the
    /// system quiet window.
    pub fn is_open(self, quiet: QuietWindow) -> bool {
        !quiet.touches(self.slot)
    }

    pub fn next(self) -> SlotRun {
        SlotRun::containing(self.start() + Duration::hours(2))
    }

    /// Every slot from the first of the month after `cycle` (when its invoices
    /// go out) to the last of that month, in order: the runs of a month.
    pub fn issue_month(cycle: Cycle) -> impl Iterator<Item = SlotRun> {
        let month = cycle.next();
        let first = SlotRun {
            date: month.first_day(),
            slot: Slot::all().next().unwrap_or_else(|| unreachable!("a day has slots")),
        };
        let count = month.days() as usize * usize::from(SLOTS_PER_DAY);
        std::iter::successors(Some(first), |r| Some(r.next())).take(count)
    }
}

impl fmt::Display for SlotRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.date, self.slot)
    }
}

/// What a run does with one `READY` delivery.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Enqueue it on this channel now.
    Enqueue(Channel),
    /// Not yet: `available_at` is after the slot's start.
    NotYet,
    /// The slot is in the customer's DND set (or the run may not send at
    /// all): a later run takes it.
    NotThisSlot,
    /// The channel policy enables no channel: delivery is paused, the delivery
    /// stays `READY` for a run after a channel is enabled again.
    Paused,
    /// The customer's DND covers every slot the quiet window leaves: no run
    /// will ever send it (the run ends it `DEAD`, with a failure record).
    NoAllowedSlot,
}

/// The decision for one delivery in the run of `run`.
pub fn decide(
    run: SlotRun,
    quiet: QuietWindow,
    policy: ChannelPolicy,
    dnd: SlotSet,
    preferred: Channel,
    available_at: DateTime<Utc>,
) -> Decision {
    if available_at > run.start() {
        Decision::NotYet
    } else if ContactWindow::new(dnd, quiet).is_err() {
        Decision::NoAllowedSlot
    } else if !run.is_open(quiet) || dnd.contains(run.slot) {
        Decision::NotThisSlot
    } else {
        match policy.route(preferred) {
            Some(channel) => Decision::Enqueue(channel),
            None => Decision::Paused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn policy_routes_to_the_preferred_then_the_other_channel() {
        let both: ChannelPolicy = "email,sms".parse().unwrap();
        assert_eq!(both.route(Channel::Sms), Some(Channel::Sms));
        let email: ChannelPolicy = "email".parse().unwrap();
        assert_eq!(email.route(Channel::Sms), Some(Channel::Email));
        let none: ChannelPolicy = "none".parse().unwrap();
        assert_eq!(none.route(Channel::Email), None);
        assert!("fax".parse::<ChannelPolicy>().is_err());
        assert_eq!(email.to_string(), "email");
    }

    #[test]
    fn a_run_serves_the_slot_of_its_scheduled_time() {
        // 10:00 Seoul = 01:00 UTC: slot 5 (10:00-12:00).
        let run = SlotRun::containing(at("2026-12-15T01:00:00Z"));
        assert_eq!(run.slot.index(), 5);
        assert_eq!(run.start(), at("2026-12-15T01:00:00Z"));
        assert!(run.is_open(QuietWindow::default_korea()));
        // 20:00-22:00 touches the 21:00 start of the quiet window.
        let evening = SlotRun::containing(at("2026-12-15T11:30:00Z"));
        assert_eq!(evening.slot.index(), 10);
        assert!(!evening.is_open(QuietWindow::default_korea()));
        // The last slot of a day is followed by the first of the next.
        let late = SlotRun::containing(at("2026-12-31T14:00:00Z")); // 23:00 Seoul
        assert_eq!(late.next().date.to_string(), "2027-01-01");
        assert_eq!(late.next().slot.index(), 0);
    }

    #[test]
    fn a_month_has_twelve_runs_a_day() {
        let runs: Vec<_> = SlotRun::issue_month(Cycle::new(2026, 11).unwrap()).collect();
        assert_eq!(runs.len(), 31 * 12);
        assert_eq!(runs[0].to_string(), "2026-12-01 00:00-02:00");
        assert_eq!(runs[runs.len() - 1].to_string(), "2026-12-31 22:00-24:00");
        assert!(runs.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn decisions() {
        let run = SlotRun::containing(at("2026-12-15T01:00:00Z")); // slot 5
        let quiet = QuietWindow::default_korea();
        let due = at("2026-12-14T15:00:00Z");
        let d = |dnd: SlotSet, policy, available_at| decide(run, quiet, policy, dnd, Channel::Email, available_at);
        let all = ChannelPolicy::ALL;
        assert_eq!(d(SlotSet::EMPTY, all, due), Decision::Enqueue(Channel::Email));
        assert_eq!(d(SlotSet::EMPTY, all, at("2026-12-15T01:00:01Z")), Decision::NotYet);
        let dnd = SlotSet::EMPTY.with(Slot::new(5).unwrap());
        assert_eq!(d(dnd, all, due), Decision::NotThisSlot);
        let sms_only = ChannelPolicy {
            email: false,
            sms: true,
        };
        assert_eq!(d(SlotSet::EMPTY, sms_only, due), Decision::Enqueue(Channel::Sms));
        let none = ChannelPolicy {
            email: false,
            sms: false,
        };
        assert_eq!(d(SlotSet::EMPTY, none, due), Decision::Paused);
        // In the quiet window nothing goes, whatever the customer allows.
        let night = SlotRun::containing(at("2026-12-15T13:00:00Z")); // 22:00 Seoul
        assert_eq!(
            decide(night, quiet, all, SlotSet::EMPTY, Channel::Email, due),
            Decision::NotThisSlot
        );
        // DND over every slot the quiet window leaves: never, whatever the slot or the policy
        // (once due; a later quiet window may still leave it a slot until then).
        let every_open_slot: SlotSet = quiet.forbidden_slots().complement();
        assert_eq!(d(every_open_slot, all, due), Decision::NoAllowedSlot);
        assert_eq!(d(every_open_slot, none, due), Decision::NoAllowedSlot);
        assert_eq!(d(SlotSet::ALL, all, due), Decision::NoAllowedSlot);
        assert_eq!(d(every_open_slot, all, at("2026-12-15T01:00:01Z")), Decision::NotYet);
        let one_left = every_open_slot.complement().with(Slot::new(5).unwrap()).complement();
        assert_eq!(d(one_left, all, due), Decision::Enqueue(Channel::Email));
        assert_eq!(
            decide(run, QuietWindow::NONE, all, every_open_slot, Channel::Email, due),
            Decision::NotThisSlot,
            "with no quiet window, the night slots are left"
        );
    }
}

#[cfg(test)]
mod horizon_tests {
    use super::*;

    #[test]
    fn a_cycle_is_dispatched_from_the_month_after_it_through_its_horizon() {
        let nov = Cycle::new(2026, 11).unwrap();
        let dec1 = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(dispatched_cycles(dec1).first(), Some(&nov));
        assert_eq!(dispatched_cycles(dec1).len(), DISPATCH_HORIZON_CYCLES as usize);
        let last = dispatched_through(nov);
        assert!(dispatched_cycles(last).contains(&nov));
        assert!(!dispatched_cycles(last + Duration::days(1)).contains(&nov));
        // 400 days after the cycle's send month still falls inside it.
        assert!(dispatched_cycles(dec1 + Duration::days(400)).contains(&nov));
    }
}
