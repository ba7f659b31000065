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
    /// Due, but the channel policy enables no channel: left `READY`.
    pub paused: u64,
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
        self.not_this_slot += o.not_this_slot;
        self.lost_races += o.lost_races;
        self.reverted += o.reverted;
        self.corrupt += o.corrupt;
        self.no_allowed_slot += o.no_allowed_slot;
        self.unknown += o.unknown;
        self.complete &= o.complete;
        self.continued |= o.continued;
    }
}
