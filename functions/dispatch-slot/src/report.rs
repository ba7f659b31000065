//! What a run answers: the [`DispatchReport`], summed over the buckets.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchReport {
    /// `2026-12-15 10:00-12:00`.
    pub slot: String,
    pub run_id: String,
    /// False when the quiet window closes the slot: nothing was looked at.
    pub open: bool,
    /// The settled cycles of the run's horizon whose due deliveries it
    /// looked at, oldest first.
    pub cycles: Vec<String>,
    /// Cycles of the horizon that are not settled (`2026-08 FAILED`,
    /// `2026-09 SETTLING`): none of their deliveries is enqueued.
    #[serde(default)]
    pub unsettled: Vec<String>,
    pub enqueued_email: u64,
    pub enqueued_sms: u64,
    /// Of the enqueued, those enqueued again after no sender took them.
    pub requeued: u64,
    /// Due, but the channel policy enables no channel the delivery may take
    /// (for one routed to SMS, or whose email is suppressed: SMS disabled):
    /// left `READY`.
    pub paused: u64,
    /// Due on email, but the suppression list has its `email_hash`: enqueued
    /// on SMS instead, or left `READY` (counted in `paused` too) when SMS is
    /// disabled or its route rules SMS out.
    #[serde(default)]
    pub suppressed: u64,
    /// Due on email past what the 24-hour quota leaves this run: left as
    /// they are, due still, so the next open slot's run takes them first
    /// (each partition oldest first) — carried, not dropped.
    #[serde(default)]
    pub over_quota: u64,
    /// The slot whose run takes the `over_quota` ones next (the next slot the
    /// quiet window leaves open; a customer's DND may put one later still).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_to: Option<String>,
    /// The 24-hour quota plan of the run; absent when it read nothing (a
    /// closed slot, no settled cycle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaPlan>,
    /// The channel policy the run applied, and where it came from
    /// (`setting` or `config`).
    #[serde(default)]
    pub policy: String,
    #[serde(default)]
    pub policy_source: String,
    /// Due but the customer's DND has this slot.
    pub not_this_slot: u64,
    /// Taken by another run first.
    pub lost_races: u64,
    /// SQS refused the message after the retries: put back to READY.
    pub reverted: u64,
    /// Index entries that do not decode: recorded in the failure log and parked.
    pub corrupt: u64,
    /// Due, but the customer's DND covers every slot the quiet window
    /// leaves: recorded in the failure log (`no-allowed-slot`) and ended `DEAD`.
    #[serde(default)]
    pub no_allowed_slot: u64,
    /// Writes whose outcome stayed unknown (no answer, and the item did not
    /// show them applied): never counted as taken; the run fails.
    #[serde(default)]
    pub unknown: u64,
    /// False when the run stopped at its deadline; the rest stays due.
    pub complete: bool,
    /// The run put its continuation on the continuation queue.
    #[serde(default)]
    pub continued: bool,
}

impl std::ops::AddAssign for DispatchReport {
    fn add_assign(&mut self, o: Self) {
        self.enqueued_email += o.enqueued_email;
        self.enqueued_sms += o.enqueued_sms;
        self.requeued += o.requeued;
        self.paused += o.paused;
        self.suppressed += o.suppressed;
        self.over_quota += o.over_quota;
        self.not_this_slot += o.not_this_slot;
        self.lost_races += o.lost_races;
        self.reverted += o.reverted;
        self.corrupt += o.corrupt;
        self.no_allowed_slot += o.no_allowed_slot;
        self.unknown += o.unknown;
        self.complete &= o.complete;
        self.continued |= o.continued;
        // A run's plan and where it carries email to are the run's, not summed: the first
        // plan stays (a continuation's comes after it), the latest carry wins.
        self.quota = self.quota.take().or(o.quota);
        self.carried_to = o.carried_to.or(self.carried_to.take());
    }
}

/// How much email a run may enqueue under the provider's 24-hour quota.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaPlan {
    /// Where the quota came from: `unlimited` (no quota configured),
    /// `fixed` (the mock's `MOCK_MAX_24H_SEND`) or `ses` (`GetAccount`).
    pub source: String,
    /// Messages the account may send in a rolling 24 hours (rounded down);
    /// `None`: unlimited.
    pub max_24h: Option<u64>,
    /// What the provider says the account sent in the last 24 hours (rounded
    /// up; a fixed quota says 0).
    pub sent_24h: u64,
    /// What dispatch itself enqueued on email in the last 24 hours, before
    /// this run (its ledger: this slot's earlier invocations and the eleven
    /// slots before), in the queue or sent.
    pub enqueued_24h: u64,
    /// What the plan counts as used: the larger of the two.
    pub used_24h: u64,
    /// What this run may enqueue on email: `max_24h - used_24h`, never below
    /// 0; `None`: unlimited.
    pub budget: Option<u64>,
}
