//! The 24-hour quota plan of one run: what the run may enqueue on email
//! ([`plan`]) and how that budget is shared between the index partitions
//! it reads ([`Budget`]), plus the routing rule a delivery's `route` adds to
//! the channel policy ([`policy_for`]).

use std::collections::HashMap;
use std::sync::Mutex;

use domain::Channel;
use domain::dispatch::ChannelPolicy;
use providers::{QuotaSource, SendQuota};

use crate::report::QuotaPlan;

/// Rounds of a run over the partitions: the first gives each partition an
/// equal share, the second shares what is left among the partitions that
/// wanted more, the last lets them take the rest first come first served.
pub(crate) const MAX_ROUNDS: u32 = 3;

/// The channels a delivery may take: the policy's, narrowed to its `route`
/// when it has one (a delivery routed to SMS never goes by email).
pub(crate) fn policy_for(policy: ChannelPolicy, route: Option<Channel>) -> ChannelPolicy {
    match route {
        None => policy,
        Some(only) => ChannelPolicy {
            email: policy.email && only == Channel::Email,
            sms: policy.sms && only == Channel::Sms,
        },
    }
}

/// The name a quota source goes by in the report.
pub(crate) fn source_name(source: &QuotaSource) -> &'static str {
    match source {
        QuotaSource::Unlimited => "unlimited",
        QuotaSource::Fixed(_) => "fixed",
        QuotaSource::Ses(_) => "ses",
    }
}

/// The plan for a run: with no daily limit the budget is unlimited; else it
/// is the limit less what is used — the larger of what the provider counts
/// as sent and what dispatch's ledger says it enqueued (messages still
/// queued are not sent yet; sends of retries or other senders are not in the
/// ledger), rounded so as never to over-promise.
pub(crate) fn plan(source: &'static str, quota: Option<SendQuota>, enqueued_24h: u64) -> QuotaPlan {
    let Some(max) = quota.and_then(|q| q.daily_limit()) else {
        return QuotaPlan {
            source: source.to_owned(),
            ..QuotaPlan::default()
        };
    };
    // Floats from the provider: whole messages, the limit down and the count up.
    let max_24h = max.floor() as u64;
    let sent_24h = quota.map_or(0.0, |q| q.sent_last_24h.max(0.0)).ceil() as u64;
    let used_24h = sent_24h.max(enqueued_24h);
    QuotaPlan {
        source: source.to_owned(),
        max_24h: Some(max_24h),
        sent_24h,
        enqueued_24h,
        used_24h,
        budget: Some(max_24h.saturating_sub(used_24h)),
    }
}

/// The email a run may still enqueue, shared by the partitions it reads at
/// once. Each round caps what one partition may take (see [`MAX_ROUNDS`]);
/// what a partition took but did not enqueue (a lost race, a message put
/// back) is given back.
pub(crate) struct Budget {
    /// `None`: unlimited.
    state: Option<Mutex<State>>,
}

struct State {
    left: u64,
    used: u64,
    /// What one partition may take in this round; `None`: all that is left.
    cap: Option<u64>,
    taken: HashMap<String, u64>,
}

impl Budget {
    pub(crate) fn new(total: Option<u64>) -> Self {
        Budget {
            state: total.map(|left| {
                Mutex::new(State {
                    left,
                    used: 0,
                    cap: None,
                    taken: HashMap::new(),
                })
            }),
        }
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, State>> {
        // A poisoned lock only means a panic elsewhere; the counts stay sound.
        self.state.as_ref().map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Starts a round in which each partition may take at most `cap`.
    pub(crate) fn start_round(&self, cap: Option<u64>) {
        if let Some(mut s) = self.lock() {
            s.cap = cap;
            s.taken.clear();
        }
    }

    /// An equal share of what is left for each of `partitions`, rounded
    /// down so that every partition can have its share — but at least one:
    /// with less left than partitions, the first to ask have one each (the
    /// total always caps what they take together).
    pub(crate) fn share(&self, partitions: usize) -> Option<u64> {
        let left = self.left()?;
        Some((left / partitions.max(1) as u64).max(1))
    }

    /// Takes up to `want` for `partition`; answers how many it may enqueue.
    pub(crate) fn take(&self, partition: &str, want: u64) -> u64 {
        let Some(mut s) = self.lock() else {
            return want;
        };
        let already = s.taken.get(partition).copied().unwrap_or(0);
        let room = s.cap.map_or(u64::MAX, |c| c.saturating_sub(already));
        let n = want.min(room).min(s.left);
        s.left -= n;
        s.used += n;
        *s.taken.entry(partition.to_owned()).or_insert(0) += n;
        n
    }

    /// Gives back `n` taken but not enqueued.
    pub(crate) fn give_back(&self, n: u64) {
        if let Some(mut s) = self.lock() {
            let n = n.min(s.used);
            s.used -= n;
            s.left += n;
        }
    }

    /// What is left; `None`: unlimited.
    pub(crate) fn left(&self) -> Option<u64> {
        self.lock().map(|s| s.left)
    }

    /// What was taken and not given back.
    pub(crate) fn used(&self) -> u64 {
        self.lock().map_or(0, |s| s.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use domain::dispatch::{Decision, SlotRun, decide};
    use domain::{QuietWindow, SlotSet};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_delivery_routed_to_sms_never_goes_by_email() {
        // 15 December 2026, 10:00 Asia/Seoul (slot 5), due before it.
        let run = SlotRun::containing(at("2026-12-15T01:00:00Z"));
        let due = at("2026-12-14T15:00:00Z");
        let quiet = QuietWindow::default_korea();
        let d = |policy: ChannelPolicy, route: Option<Channel>, dnd: SlotSet| {
            decide(
                run,
                quiet,
                policy_for(policy, route),
                dnd,
                route.unwrap_or(Channel::Email),
                due,
            )
        };
        let email_only = ChannelPolicy {
            email: true,
            sms: false,
        };
        let sms = Some(Channel::Sms);
        assert_eq!(
            d(ChannelPolicy::ALL, None, SlotSet::EMPTY),
            Decision::Enqueue(Channel::Email)
        );
        assert_eq!(
            d(ChannelPolicy::ALL, sms, SlotSet::EMPTY),
            Decision::Enqueue(Channel::Sms)
        );
        // SMS disabled: paused, never email.
        assert_eq!(d(email_only, sms, SlotSet::EMPTY), Decision::Paused);
        // The same slot rules as any other delivery.
        let slot_5 = SlotSet::from_bits(1 << 5).unwrap();
        assert_eq!(d(ChannelPolicy::ALL, sms, slot_5), Decision::NotThisSlot);
        let later = SlotRun::containing(at("2026-12-15T03:00:00Z"));
        assert_eq!(
            decide(
                later,
                quiet,
                policy_for(ChannelPolicy::ALL, sms),
                slot_5,
                Channel::Sms,
                due
            ),
            Decision::Enqueue(Channel::Sms)
        );
        // Routed to email (never set today, but it means the same): never SMS.
        let sms_only = ChannelPolicy {
            email: false,
            sms: true,
        };
        assert_eq!(policy_for(sms_only, Some(Channel::Email)).route(Channel::Email), None);
    }

    fn fixed(max: f64, sent: f64) -> Option<SendQuota> {
        Some(SendQuota {
            max_send_rate: 14.0,
            max_24h_send: max,
            sent_last_24h: sent,
        })
    }

    #[test]
    fn the_budget_is_the_limit_less_the_larger_of_sent_and_enqueued() {
        let p = plan("fixed", fixed(100.0, 0.0), 30);
        assert_eq!((p.max_24h, p.used_24h, p.budget), (Some(100), 30, Some(70)));
        let p = plan("ses", fixed(100.5, 40.2), 30);
        assert_eq!(
            (p.max_24h, p.sent_24h, p.used_24h, p.budget),
            (Some(100), 41, 41, Some(59))
        );
        assert_eq!(plan("ses", fixed(100.0, 130.0), 0).budget, Some(0));
        assert_eq!(plan("fixed", fixed(50.0, 0.0), 80).budget, Some(0));
        let unlimited = plan("ses", fixed(-1.0, 1e6), 5);
        assert_eq!((unlimited.max_24h, unlimited.budget), (None, None));
        assert_eq!(plan("unlimited", None, 0).budget, None);
    }

    #[test]
    fn the_budget_is_shared_by_round_and_never_exceeded() {
        let b = Budget::new(Some(10));
        assert_eq!(b.share(4), Some(2));
        b.start_round(b.share(4));
        assert_eq!(b.take("a", 5), 2, "a share each");
        assert_eq!(b.take("a", 1), 0, "a's share is spent");
        assert_eq!(b.take("b", 1), 1);
        assert_eq!(b.take("c", 3), 2);
        assert_eq!(b.take("d", 9), 2);
        assert_eq!(b.left(), Some(3));
        b.give_back(1);
        assert_eq!((b.left(), b.used()), (Some(4), 6));
        // The next round shares the rest among those that wanted more.
        b.start_round(b.share(3));
        assert_eq!(b.take("a", 2), 1);
        assert_eq!(b.take("c", 6), 1);
        assert_eq!(b.take("a", 1), 0);
        // The last lets them take what is left.
        b.start_round(None);
        assert_eq!(b.take("d", 6), 2);
        assert_eq!(b.take("a", 1), 0, "nothing left");
        assert_eq!(b.used(), 10);
        // Less left than partitions: one each for the first to ask.
        let b = Budget::new(Some(3));
        b.start_round(b.share(32));
        let got: Vec<u64> = (0..5).map(|i| b.take(&i.to_string(), 4)).collect();
        assert_eq!(got, [1, 1, 1, 0, 0]);
        let unlimited = Budget::new(None);
        assert_eq!((unlimited.take("a", 1_000_000), unlimited.left()), (1_000_000, None));
    }
}
