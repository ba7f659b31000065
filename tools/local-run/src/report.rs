//! The month report: what a run did, whether it reconciles, what it asked of
//! AWS and what that would cost per 1,000,000 invoices at list prices.
//! Written as JSON (`month.json`), as an HTML page with charts (`month.html`,
//! no scripts, the charts inline SVG) and as the charts alone (`sends.svg`,
//! `queues.svg`).
//!
//! The figures are gathered here and in `cost` (usage, priced with the table of
//! `prices`); `page` and `charts` turn them into what the page and the charts show, and
//! the templates in `tools/local-run/templates/`, embedded in the binary, lay it out.

mod charts;
mod cost;
mod page;
mod prices;
mod templates;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

pub use self::charts::{queues_chart, sends_chart};
pub use self::cost::{Cost, CostLine, LambdaUse, Usage, by_service, project, request_delta};
pub use self::prices::{
    DynamoDbPrices, LambdaPrices, Prices, S3Prices, SchedulerPrices, SesPrices, SmsPrices, SqsPrices,
    StepFunctionsPrices,
};

/// One phase of the run.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
    pub items: u64,
    pub unit: String,
}

impl Phase {
    pub fn new(name: &str, took: std::time::Duration, items: u64, unit: &str) -> Phase {
        Phase {
            name: name.to_owned(),
            seconds: took.as_secs_f64(),
            items,
            unit: unit.to_owned(),
        }
    }

    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.items as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// One two-hour slot of the month.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SlotPoint {
    /// `2026-12-15 08:00-10:00` (Asia/Seoul).
    pub slot: String,
    pub open: bool,
    pub enqueued_email: u64,
    pub enqueued_sms: u64,
    /// Sends that went out in the slot, by the channel they ended on.
    pub sent_email: u64,
    pub sent_sms: u64,
    /// Messages on each queue after the slot's dispatch run (visible and in flight).
    pub depth_email: u64,
    pub depth_sms: u64,
}

/// The final states, reconciled with the bills.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Outcome {
    pub bills: u64,
    pub sent_email: u64,
    pub sent_sms: u64,
    pub dead: u64,
    /// Left to an operator: a provider that cannot be asked may have accepted a call that was
    /// cut off, so the delivery is never sent again by itself.
    pub unconfirmed: u64,
    /// `READY`, `QUEUED`, `SENDING` or `HELD` at the end.
    pub waiting: u64,
    pub waiting_by_state: BTreeMap<String, u64>,
    /// Of the waiting, those dispatch finds again (an entry in the `Due` index).
    pub waiting_in_due_index: u64,
    pub accepted_sends: u64,
    /// Deliveries whose email the provider's evidence refused (a permanent bounce, a reject)
    /// and that went on to SMS (`route = sms`): each had one email accepted before its SMS.
    pub routed_to_sms: u64,
    /// Of those, the ones whose SMS went out.
    pub routed_sent: u64,
    /// Deliveries by what the evidence says of their last send (`email DELIVERED`, …).
    pub lifecycle: BTreeMap<String, u64>,
    /// (delivery, channel, round) keys the mock providers accepted more than once.
    pub duplicates: u64,
    pub forbidden_slot_sends: u64,
    /// The delivery half's AWS requests (dispatch and senders) per bill.
    pub requests_per_delivery: f64,
}

impl Outcome {
    fn sent(&self) -> u64 {
        self.sent_email + self.sent_sms
    }

    /// Nothing lost, nothing twice: every bill is a delivery that ended or waits where
    /// dispatch finds it, no key was accepted twice, nothing went out in a forbidden slot,
    /// and the providers accepted every sent delivery (and perhaps some unconfirmed ones),
    /// plus one email for each delivery the evidence sent on to SMS.
    pub fn holds(&self) -> bool {
        self.sent() + self.dead + self.unconfirmed + self.waiting == self.bills
            && self.waiting_in_due_index == self.waiting
            && self.duplicates == 0
            && self.forbidden_slot_sends == 0
            && self.accepted_sends >= self.sent() + self.routed_sent
            && self.accepted_sends <= self.sent() + self.unconfirmed + self.routed_to_sms
    }

    /// Every bill ended, once, and the providers accepted exactly the sends (an email and
    /// then an SMS for a delivery the evidence sent on).
    pub fn reconciled(&self) -> bool {
        self.holds()
            && self.waiting == 0
            && self.unconfirmed == 0
            && self.accepted_sends == self.sent() + self.routed_to_sms
    }
}

/// The providers' evidence over the month: the rates the mock simulated, and what the
/// delivery-events function made of it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Evidence {
    pub bounce_rate: f64,
    pub complaint_rate: f64,
    pub sms_failed_rate: f64,
    pub handled: crate::evidence::EvidenceTotals,
}

/// The slowest shard of a shard function.
#[derive(Clone, Debug, Serialize)]
pub struct SlowShard {
    pub function: String,
    pub shard: Option<u32>,
    pub seconds: f64,
    pub mean_seconds: f64,
}

/// Everything the run reports.
#[derive(Clone, Debug, Serialize)]
pub struct MonthReport {
    pub cycle: String,
    pub month_sent: String,
    pub customers: u64,
    pub billable: u64,
    pub shards: u64,
    pub seed: u64,
    pub quiet_window: String,
    pub provider_latency_ms: u64,
    /// True when the latency was below the deployed mock's 1 s.
    pub latency_compressed: bool,
    pub provider_failure_rate: f64,
    pub ok: bool,
    pub problems: Vec<String>,
    pub outcome: Outcome,
    pub evidence: Evidence,
    /// The 24-hour email quota and dispatch's plan for it, in words.
    pub quota_plan: String,
    /// The fault profile the delivery half ran under, and what fired.
    pub faults: crate::deliver::FaultReport,
    pub phases: Vec<Phase>,
    pub slowest_shards: Vec<SlowShard>,
    pub slots: Vec<SlotPoint>,
    pub senders: serde_json::Value,
    pub requests: BTreeMap<String, u64>,
    pub requests_by_service: BTreeMap<String, u64>,
    pub requests_per_invoice: f64,
    pub lambda: Vec<LambdaUse>,
    pub cost: Cost,
    pub seconds: f64,
}

impl MonthReport {
    /// Writes `month.json`, `month.html`, `sends.svg` and `queues.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let files = [
            ("month.json", serde_json::to_string_pretty(self)?),
            ("month.html", self.html()?),
            ("sends.svg", sends_chart(&self.slots)?),
            ("queues.svg", queues_chart(&self.slots)?),
        ];
        let mut written = Vec::new();
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
        Ok(written)
    }

    /// The report as one self-contained HTML page.
    pub fn html(&self) -> anyhow::Result<String> {
        page::render(self)
    }
}
