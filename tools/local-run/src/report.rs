//! The month report: what a run did, whether it reconciles, what it asked of
//! AWS and what that would cost per 1,000,000 invoices at list prices.
//! Written as JSON (`month.json`), as an HTML page with charts (`month.html`,
//! no scripts, the charts inline SVG) and as the charts alone (`sends.svg`,
//! `queues.svg`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The price table: `infra/prices.json`, dated, with its sources.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Prices {
    pub as_of: String,
    pub region: String,
    pub currency: String,
    pub note: String,
    pub sources: BTreeMap<String, String>,
    pub lambda: LambdaPrices,
    pub dynamodb: DynamoDbPrices,
    pub sqs: SqsPrices,
    pub s3: S3Prices,
    pub step_functions: StepFunctionsPrices,
    pub scheduler: SchedulerPrices,
    pub ses: SesPrices,
    pub sms: SmsPrices,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LambdaPrices {
    pub per_million_requests: f64,
    pub per_gb_second_arm64: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct DynamoDbPrices {
    pub per_million_write_units: f64,
    pub per_million_read_units: f64,
    /// Items a `BatchWriteItem` writes (the settlement writes bills 25 at a time).
    pub items_per_batch_write: f64,
    /// Write units of one bill (bills are the items above 1 KB; measured in BENCHMARKS.md).
    pub write_units_per_bill: f64,
    /// Write units the deliveries' `Due` index takes per delivery over its life: the entry
    /// written with the delivery, moved when dispatch changes `available_at`, removed by the
    /// claim (measured in BENCHMARKS.md). The emulator counts requests, not index writes.
    pub index_write_units_per_delivery: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SqsPrices {
    pub per_million_requests: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct S3Prices {
    pub per_thousand_put_requests: f64,
    pub per_thousand_get_requests: f64,
    pub per_gb_month: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct StepFunctionsPrices {
    pub per_thousand_state_transitions: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SchedulerPrices {
    pub per_million_invocations: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SesPrices {
    pub per_thousand_emails: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SmsPrices {
    /// Per message part; `None` until set for one's route.
    pub per_message: Option<f64>,
    #[serde(default)]
    pub note: String,
}

impl Prices {
    /// The project's price table, `infra/prices.json`.
    pub fn path() -> anyhow::Result<PathBuf> {
        Ok(local_aws::project_root()?.join("infra").join("prices.json"))
    }

    pub fn load(path: &Path) -> anyhow::Result<Prices> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// One function's share of the month: invocations and time in the handler.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LambdaUse {
    pub function: String,
    pub invocations: u64,
    pub seconds: f64,
    pub memory_mb: u64,
    /// Its time is mostly waiting on the emulator (one Python process answering every
    /// request of every concurrent shard), which AWS answers far faster: priced apart,
    /// as an upper bound.
    pub emulator_bound: bool,
}

/// What the month asked of AWS, in the units AWS bills.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    /// `service:Operation` → requests, the pipeline's own (not the runner's polling).
    pub requests: BTreeMap<String, u64>,
    /// Of `requests`, those a month takes whatever its population (the dispatch runs'
    /// index queries): priced once a month, not scaled with the invoices.
    pub fixed_requests: BTreeMap<String, u64>,
    pub lambda: Vec<LambdaUse>,
    pub state_transitions: u64,
    pub schedule_runs: u64,
    /// Bytes kept in S3 (rendered invoices), priced for one month.
    pub stored_bytes: u64,
    pub emails: u64,
    pub sms: u64,
}

/// One priced quantity.
#[derive(Clone, Debug, Serialize)]
pub struct CostLine {
    pub service: String,
    pub item: String,
    /// In this run.
    pub quantity: f64,
    pub unit: String,
    /// Price per `per` units.
    pub price: f64,
    pub per: f64,
    pub usd: f64,
    pub usd_per_million_invoices: f64,
    /// A monthly cost that does not grow with the invoices (not scaled).
    pub fixed: bool,
}

/// The projection: this run's usage at list prices, scaled to 1,000,000 invoices.
#[derive(Clone, Debug, Serialize)]
pub struct Cost {
    pub prices_as_of: String,
    pub region: String,
    pub currency: String,
    pub price_file: String,
    pub invoices: u64,
    pub aws: Vec<CostLine>,
    pub aws_usd_per_million_invoices: f64,
    pub message_fees: Vec<CostLine>,
    /// `None` while a message price is unset.
    pub message_fees_usd_per_million_invoices: Option<f64>,
    pub assumptions: Vec<String>,
}

/// Prices `usage` (what `invoices` invoices took) and scales it to a million invoices.
pub fn project(prices: &Prices, price_file: &str, usage: &Usage, invoices: u64) -> Cost {
    let variable = |op: &str| {
        let all = usage.requests.get(op).copied().unwrap_or(0);
        all.saturating_sub(usage.fixed_requests.get(op).copied().unwrap_or(0))
    };
    let req = |op: &str| variable(op) as f64;
    let sum = |prefix: &str, ops: &[&str]| -> f64 {
        usage
            .requests
            .keys()
            .filter(|k| k.starts_with(prefix) && (ops.is_empty() || ops.iter().any(|o| k.ends_with(o))))
            .map(|k| variable(k) as f64)
            .sum()
    };
    let scale = 1_000_000.0 / invoices.max(1) as f64;
    let priced_line = |service: &str, item: &str, quantity: f64, unit: &str, price: f64, per: f64, fixed: bool| {
        let usd = quantity * price / per;
        CostLine {
            service: service.to_owned(),
            item: item.to_owned(),
            quantity,
            unit: unit.to_owned(),
            price,
            per,
            usd,
            usd_per_million_invoices: if fixed { usd } else { usd * scale },
            fixed,
        }
    };
    let line = |service: &str, item: &str, quantity: f64, unit: &str, price: f64, per: f64| {
        priced_line(service, item, quantity, unit, price, per, false)
    };
    let fixed_reads: f64 = usage.fixed_requests.values().map(|v| *v as f64).sum();
    let d = &prices.dynamodb;
    let batch_items = req("dynamodb:BatchWriteItem") * d.items_per_batch_write;
    let write_units = req("dynamodb:PutItem")
        + req("dynamodb:UpdateItem")
        + req("dynamodb:DeleteItem")
        + batch_items * d.write_units_per_bill;
    let read_units = sum("dynamodb:", &["GetItem", "Query", "Scan", "BatchGetItem"]);
    let s3_puts = sum("s3:", &["PutObject", "CopyObject", "ListObjects", "ListObjectsV2"]);
    let s3_gets = sum("s3:", &["GetObject", "HeadObject"]);
    let sqs = sum("sqs:", &[]);
    let invocations: f64 = usage.lambda.iter().map(|l| l.invocations as f64).sum();
    let gb_seconds = |emulator_bound: bool| -> f64 {
        usage
            .lambda
            .iter()
            .filter(|l| l.emulator_bound == emulator_bound)
            .map(|l| l.seconds * l.memory_mb as f64 / 1024.0)
            .sum()
    };
    let gb_month = usage.stored_bytes as f64 / 1e9;
    let aws = vec![
        line(
            "DynamoDB",
            "write request units",
            write_units,
            "WRU",
            d.per_million_write_units,
            1e6,
        ),
        line(
            "DynamoDB",
            "Due index write units",
            invoices as f64 * d.index_write_units_per_delivery,
            "WRU",
            d.per_million_write_units,
            1e6,
        ),
        line(
            "DynamoDB",
            "read request units",
            read_units,
            "RRU",
            d.per_million_read_units,
            1e6,
        ),
        line(
            "S3",
            "PUT and LIST requests",
            s3_puts,
            "requests",
            prices.s3.per_thousand_put_requests,
            1e3,
        ),
        line(
            "S3",
            "GET requests",
            s3_gets,
            "requests",
            prices.s3.per_thousand_get_requests,
            1e3,
        ),
        line(
            "S3",
            "invoices stored, first month",
            gb_month,
            "GB-month",
            prices.s3.per_gb_month,
            1.0,
        ),
        line("SQS", "requests", sqs, "requests", prices.sqs.per_million_requests, 1e6),
        line(
            "Lambda",
            "requests",
            invocations,
            "invocations",
            prices.lambda.per_million_requests,
            1e6,
        ),
        line(
            "Lambda",
            "compute (arm64): waiting on the provider and AWS",
            gb_seconds(false),
            "GB-s",
            prices.lambda.per_gb_second_arm64,
            1.0,
        ),
        line(
            "Lambda",
            "compute (arm64): waiting on the emulator, an upper bound",
            gb_seconds(true),
            "GB-s",
            prices.lambda.per_gb_second_arm64,
            1.0,
        ),
        line(
            "Step Functions",
            "state transitions",
            usage.state_transitions as f64,
            "transitions",
            prices.step_functions.per_thousand_state_transitions,
            1e3,
        ),
        priced_line(
            "DynamoDB",
            "dispatch index reads, per month",
            fixed_reads,
            "RRU",
            d.per_million_read_units,
            1e6,
            true,
        ),
        priced_line(
            "EventBridge Scheduler",
            "settlement and dispatch runs, per month",
            usage.schedule_runs as f64,
            "invocations",
            prices.scheduler.per_million_invocations,
            1e6,
            true,
        ),
    ];
    let aws_total = aws.iter().map(|l| l.usd_per_million_invoices).sum();
    let mut message_fees = vec![line(
        "SES",
        "emails",
        usage.emails as f64,
        "emails",
        prices.ses.per_thousand_emails,
        1e3,
    )];
    let mut sms_priced = true;
    match prices.sms.per_message {
        Some(p) => message_fees.push(line("SMS", "messages", usage.sms as f64, "messages", p, 1.0)),
        None => sms_priced = usage.sms == 0,
    }
    let fees: f64 = message_fees.iter().map(|l| l.usd_per_million_invoices).sum();
    let priced = |k: &str| {
        k.starts_with("sqs:")
            || k.starts_with("lambda:")
            || k.starts_with("states:")
            || [
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:Scan",
                "dynamodb:BatchGetItem",
                "s3:PutObject",
                "s3:CopyObject",
                "s3:ListObjects",
                "s3:ListObjectsV2",
                "s3:GetObject",
                "s3:HeadObject",
            ]
            .contains(&k)
    };
    let mut assumptions = vec![
        format!(
            "DynamoDB on demand: one write unit per PutItem, UpdateItem and DeleteItem (items up to 1 KB); \
             each BatchWriteItem writes {} bills of {} units",
            d.items_per_batch_write, d.write_units_per_bill
        ),
        format!(
            "DynamoDB index: {} write units per delivery for the Due index; the mock provider's send log \
             (one PutItem per send) is counted as well, which SES does not need",
            d.index_write_units_per_delivery
        ),
        "DynamoDB reads: one read unit per request (an upper bound: eventually consistent reads of small items take half)"
            .to_owned(),
        "Lambda compute: the time each handler took here times the memory template.yaml gives the function, at \
         the arm64 price. The senders' time is mostly the provider's latency (as the run was given it). The \
         settlement, rendering and dispatch functions mostly wait on the emulator, which answers their requests \
         one at a time: their line is an upper bound, about ten times what AWS bills (BENCHMARKS.md projects \
         each function on AWS)"
            .to_owned(),
        "Step Functions: the state machine's transitions per execution and per shard (SettleShard, RenderShard)"
            .to_owned(),
        "scaled from this run's invoices to 1,000,000, except the monthly fixed lines (the schedule's runs and the \
         dispatch runs' index queries), counted once; the dispatch queries page through more items in a bigger \
         month, so that line grows a little with the population"
            .to_owned(),
        "not counted: CloudWatch logs and metrics, the SQS event source's long polls of empty queues, data transfer"
            .to_owned(),
    ];
    let unpriced: Vec<&String> = usage.requests.keys().filter(|k| !priced(k)).collect();
    if !unpriced.is_empty() {
        assumptions.push(format!(
            "requests not priced: {}",
            unpriced.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if !sms_priced {
        assumptions.push(format!("SMS fees not shown: {}", prices.sms.note));
    }
    Cost {
        prices_as_of: prices.as_of.clone(),
        region: prices.region.clone(),
        currency: prices.currency.clone(),
        price_file: price_file.to_owned(),
        invoices,
        aws,
        aws_usd_per_million_invoices: aws_total,
        message_fees,
        message_fees_usd_per_million_invoices: sms_priced.then_some(fees),
        assumptions,
    }
}

/// What was asked between two readings of the emulator's request counts.
pub fn request_delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Requests by service (`dynamodb`, `s3`, …) from requests by operation.
pub fn by_service(requests: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (k, v) in requests {
        let service = k.split(':').next().unwrap_or(k).to_owned();
        *out.entry(service).or_insert(0) += v;
    }
    out
}

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
    /// and the providers accepted every sent delivery (and perhaps some unconfirmed ones).
    pub fn holds(&self) -> bool {
        self.sent() + self.dead + self.unconfirmed + self.waiting == self.bills
            && self.waiting_in_due_index == self.waiting
            && self.duplicates == 0
            && self.forbidden_slot_sends == 0
            && self.accepted_sends >= self.sent()
            && self.accepted_sends <= self.sent() + self.unconfirmed
    }

    /// Every bill ended, once, and the providers accepted exactly the sends.
    pub fn reconciled(&self) -> bool {
        self.holds() && self.waiting == 0 && self.unconfirmed == 0 && self.accepted_sends == self.sent()
    }
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
            ("month.html", self.html()),
            ("sends.svg", sends_chart(&self.slots)),
            ("queues.svg", queues_chart(&self.slots)),
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
    pub fn html(&self) -> String {
        let o = &self.outcome;
        let mut h = String::new();
        let _ = write!(
            h,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Billing month {cycle}</title>\
             <style>{STYLE}</style></head><body><h1>Billing month {cycle}: invoices of {sent}</h1>\
             <p class=\"{cls}\">{verdict}</p>",
            cycle = esc(&self.cycle),
            sent = esc(&self.month_sent),
            cls = if self.ok { "ok" } else { "bad" },
            verdict = if self.ok && o.reconciled() {
                "Reconciled: every bill ended exactly once, no duplicates, no send in a forbidden slot.".to_owned()
            } else if self.ok {
                "Nothing lost, nothing twice: every bill ended (sent, dead, or unconfirmed and left to an operator) \
                 or waits in the Due index; no duplicates, no send in a forbidden slot."
                    .to_owned()
            } else {
                format!("Does not reconcile: {}", esc(&self.problems.join("; ")))
            }
        );
        let _ = write!(
            h,
            "<p>{} customers ({} billable) in {} shards, seed {}; system quiet window {} (Asia/Seoul); mock provider \
             {} ms per send{} and {:.0}% failures. Total {:.1} s.</p>",
            self.customers,
            self.billable,
            self.shards,
            self.seed,
            esc(&self.quiet_window),
            self.provider_latency_ms,
            if self.latency_compressed {
                " (compressed: deployed is 1,000 ms)"
            } else {
                ""
            },
            self.provider_failure_rate * 100.0,
            self.seconds
        );
        h.push_str("<h2>Final states</h2><table><tr><th>state</th><th>deliveries</th></tr>");
        for (k, v) in [
            ("SENT_EMAIL", o.sent_email),
            ("SENT_SMS", o.sent_sms),
            ("DEAD", o.dead),
            ("UNCONFIRMED", o.unconfirmed),
        ] {
            let _ = write!(h, "<tr><td>{k}</td><td class=\"n\">{v}</td></tr>");
        }
        let _ = write!(
            h,
            "<tr><td>still waiting{}</td><td class=\"n\">{}</td></tr>",
            if o.waiting > 0 {
                format!(
                    " ({}; {} in the Due index)",
                    esc(&o
                        .waiting_by_state
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")),
                    o.waiting_in_due_index
                )
            } else {
                String::new()
            },
            o.waiting
        );
        let _ = write!(
            h,
            "<tr><th>total</th><th class=\"n\">{} of {} bills</th></tr>\
             <tr><td>accepted sends at the mock providers</td><td class=\"n\">{}</td></tr>\
             <tr><td>duplicates (a delivery, channel and round accepted more than once)</td><td class=\"n\">{}</td></tr>\
             <tr><td>sends in a forbidden slot</td><td class=\"n\">{}</td></tr></table>",
            o.sent_email + o.sent_sms + o.dead + o.waiting,
            o.bills,
            o.accepted_sends,
            o.duplicates,
            o.forbidden_slot_sends
        );
        let f = &self.faults;
        let _ = write!(
            h,
            "<h2>Faults</h2><p>Profile <code>{}</code>: {}.</p><table><tr><th>switch</th><th>resource</th>\
             <th>calls faulted</th></tr>",
            esc(&f.profile),
            esc(&f.description)
        );
        for (switch, by_resource) in &f.fired {
            for (resource, n) in by_resource {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"n\">{n}</td></tr>",
                    esc(switch),
                    esc(resource)
                );
            }
        }
        let _ = write!(
            h,
            "<tr><th colspan=\"2\">total</th><th class=\"n\">{}</th></tr></table><p>{} dispatch runs run again \
             after a failure; {} slots after the month for dispatch's re-checks; {:.2} AWS requests per delivery \
             (dispatch and senders).</p>",
            f.fired_total, f.dispatch_retries, f.tail_slots, o.requests_per_delivery
        );
        h.push_str("<h2>Sends per slot</h2>");
        h.push_str(&sends_chart(&self.slots));
        h.push_str("<h2>Queue depth after each dispatch run</h2>");
        h.push_str(&queues_chart(&self.slots));
        h.push_str("<h2>Phases</h2><table><tr><th>phase</th><th>seconds</th><th>items</th><th>per second</th></tr>");
        for p in &self.phases {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{} {}</td><td class=\"n\">{:.1}</td></tr>",
                esc(&p.name),
                p.seconds,
                p.items,
                esc(&p.unit),
                p.per_second()
            );
        }
        h.push_str("</table>");
        if !self.slowest_shards.is_empty() {
            h.push_str("<table><tr><th>function</th><th>slowest shard</th><th>seconds</th><th>mean</th></tr>");
            for s in &self.slowest_shards {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td></tr>",
                    esc(&s.function),
                    s.shard.map_or("-".to_owned(), |n| n.to_string()),
                    s.seconds,
                    s.mean_seconds
                );
            }
            h.push_str("</table>");
        }
        let _ = write!(
            h,
            "<h2>AWS requests</h2><p>{} requests, {:.2} per invoice (counted by the emulator; this runner's own \
             polling excluded).</p><table><tr><th>service</th><th>requests</th><th>per invoice</th></tr>",
            self.requests.values().sum::<u64>(),
            self.requests_per_invoice
        );
        let bills = o.bills.max(1) as f64;
        for (k, v) in &self.requests_by_service {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{v}</td><td class=\"n\">{:.3}</td></tr>",
                esc(k),
                *v as f64 / bills
            );
        }
        h.push_str("</table><details><summary>by operation</summary><table>");
        for (k, v) in &self.requests {
            let _ = write!(h, "<tr><td>{}</td><td class=\"n\">{v}</td></tr>", esc(k));
        }
        h.push_str("</table></details>");
        let c = &self.cost;
        let _ = write!(
            h,
            "<h2>Projected AWS cost per 1,000,000 invoices</h2><p>List prices of {} ({}, {}), from <code>{}</code>; \
             this run's {} invoices scaled up.</p>",
            esc(&c.prices_as_of),
            esc(&c.region),
            esc(&c.currency),
            esc(&c.price_file),
            c.invoices
        );
        cost_table(&mut h, &c.aws, "AWS", c.aws_usd_per_million_invoices);
        h.push_str("<h3>Message fees (separate)</h3>");
        cost_table(
            &mut h,
            &c.message_fees,
            "message fees",
            c.message_fees.iter().map(|l| l.usd_per_million_invoices).sum(),
        );
        h.push_str("<h3>Assumptions</h3><ul>");
        for a in &c.assumptions {
            let _ = write!(h, "<li>{}</li>", esc(a));
        }
        h.push_str(
            "</ul><h3>Lambda</h3><table><tr><th>function</th><th>invocations</th><th>seconds</th><th>MB</th></tr>",
        );
        for l in &self.lambda {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td></tr>",
                esc(&l.function),
                l.invocations,
                l.seconds,
                l.memory_mb
            );
        }
        h.push_str("</table></body></html>\n");
        h
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1120px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border-bottom:1px solid #ddd;padding:.25em .75em;text-align:left}\
.n{text-align:right;font-variant-numeric:tabular-nums}.ok{color:#176b2c;font-weight:bold}.bad{color:#a11;font-weight:bold}\
svg{max-width:100%;height:auto}";

fn cost_table(h: &mut String, lines: &[CostLine], what: &str, total: f64) {
    h.push_str(
        "<table><tr><th>service</th><th>item</th><th>this run</th><th>price</th><th>USD per 1,000,000 invoices</th></tr>",
    );
    for l in lines {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}{}</td><td class=\"n\">{} {}</td><td class=\"n\">${} per {} </td><td class=\"n\">{:.2}</td></tr>",
            esc(&l.service),
            esc(&l.item),
            if l.fixed { " (fixed)" } else { "" },
            quantity(l.quantity),
            esc(&l.unit),
            l.price,
            quantity(l.per),
            l.usd_per_million_invoices
        );
    }
    let _ = write!(
        h,
        "<tr><th colspan=\"4\">{}</th><th class=\"n\">{total:.2}</th></tr></table>",
        esc(what)
    );
}

fn quantity(q: f64) -> String {
    if q.fract() == 0.0 || q >= 100.0 {
        format!("{q:.0}")
    } else {
        format!("{q:.3}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const EMAIL_COLOR: &str = "#2f6db5";
const SMS_COLOR: &str = "#e0892b";
const W: f64 = 1080.0;
const H: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;

/// A round upper bound for an axis: 1, 2 or 5 times a power of ten.
fn nice_max(v: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= v.max(1) {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// The frame of a chart over the month's slots: title, legend, y grid and day labels.
fn frame(svg: &mut String, title: &str, slots: &[SlotPoint], y_max: u64, legend: &[(&str, &str)]) {
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" \
         font-family=\"sans-serif\" font-size=\"11\"><rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\
         <text x=\"{LEFT}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        esc(title)
    );
    let mut x = W - RIGHT - 180.0;
    for (label, color) in legend {
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"7\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"16\">{}</text>",
            x + 14.0,
            esc(label)
        );
        x += 90.0;
    }
    let plot_h = H - TOP - BOTTOM;
    for i in 0..=4u64 {
        let v = y_max * i / 4;
        let y = TOP + plot_h - plot_h * i as f64 / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let n = slots.len().max(1) as f64;
    let slot_w = (W - LEFT - RIGHT) / n;
    // A label at the start of day 1 and every fifth day (12 slots a day).
    for (i, s) in slots.iter().enumerate().filter(|(i, _)| i % 12 == 0) {
        let day = s.slot.get(8..10).unwrap_or("").trim_start_matches('0');
        let x = LEFT + slot_w * i as f64;
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#bbb\"/>",
            TOP + plot_h,
            TOP + plot_h + 4.0
        );
        if day == "1" || day.parse::<u32>().is_ok_and(|d| d % 5 == 0) {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                TOP + plot_h + 16.0,
                esc(s.slot.get(5..10).unwrap_or(""))
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">day of the month (two-hour slots, Asia/Seoul)</text>",
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 6.0
    );
}

/// Sends per slot over the month, stacked by channel.
pub fn sends_chart(slots: &[SlotPoint]) -> String {
    let y_max = nice_max(slots.iter().map(|s| s.sent_email + s.sent_sms).max().unwrap_or(0));
    let mut svg = String::new();
    frame(
        &mut svg,
        "Sends per two-hour slot, by channel",
        slots,
        y_max,
        &[("email", EMAIL_COLOR), ("SMS", SMS_COLOR)],
    );
    let plot_h = H - TOP - BOTTOM;
    let slot_w = (W - LEFT - RIGHT) / slots.len().max(1) as f64;
    let bar_w = (slot_w * 0.9).max(0.5);
    for (i, s) in slots.iter().enumerate() {
        let x = LEFT + slot_w * i as f64;
        let base = TOP + plot_h;
        let e = plot_h * s.sent_email as f64 / y_max as f64;
        let m = plot_h * s.sent_sms as f64 / y_max as f64;
        if s.sent_email > 0 {
            let _ = write!(
                svg,
                "<rect x=\"{x:.2}\" y=\"{:.2}\" width=\"{bar_w:.2}\" height=\"{e:.2}\" fill=\"{EMAIL_COLOR}\"><title>{} email {}</title></rect>",
                base - e,
                esc(&s.slot),
                s.sent_email
            );
        }
        if s.sent_sms > 0 {
            let _ = write!(
                svg,
                "<rect x=\"{x:.2}\" y=\"{:.2}\" width=\"{bar_w:.2}\" height=\"{m:.2}\" fill=\"{SMS_COLOR}\"><title>{} SMS {}</title></rect>",
                base - e - m,
                esc(&s.slot),
                s.sent_sms
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// Queue depth after each slot's dispatch run, one line per queue.
pub fn queues_chart(slots: &[SlotPoint]) -> String {
    let y_max = nice_max(slots.iter().map(|s| s.depth_email.max(s.depth_sms)).max().unwrap_or(0));
    let mut svg = String::new();
    frame(
        &mut svg,
        "Messages on the queues after each dispatch run",
        slots,
        y_max,
        &[("email", EMAIL_COLOR), ("SMS", SMS_COLOR)],
    );
    let plot_h = H - TOP - BOTTOM;
    let slot_w = (W - LEFT - RIGHT) / slots.len().max(1) as f64;
    for (color, depth) in [
        (EMAIL_COLOR, (|s: &SlotPoint| s.depth_email) as fn(&SlotPoint) -> u64),
        (SMS_COLOR, |s: &SlotPoint| s.depth_sms),
    ] {
        let points: Vec<String> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{:.1},{:.1}",
                    LEFT + slot_w * (i as f64 + 0.5),
                    TOP + plot_h - plot_h * depth(s) as f64 / y_max as f64
                )
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            points.join(" ")
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> Prices {
        let root = local_aws::project_root().unwrap();
        Prices::load(&root.join("infra/prices.json")).unwrap()
    }

    #[test]
    fn the_price_table_is_dated_and_sourced() {
        let p = prices();
        assert!(
            chrono::NaiveDate::parse_from_str(&p.as_of, "%Y-%m-%d").is_ok(),
            "{}",
            p.as_of
        );
        for service in ["lambda", "dynamodb", "sqs", "s3", "step_functions", "ses"] {
            assert!(
                p.sources.get(service).is_some_and(|u| u.starts_with("https://")),
                "{service}"
            );
        }
    }

    #[test]
    fn the_projection_prices_each_unit_and_scales_to_a_million() {
        let mut usage = Usage::default();
        usage.requests.insert("dynamodb:PutItem".into(), 2_000);
        usage.requests.insert("dynamodb:BatchWriteItem".into(), 40);
        usage.requests.insert("dynamodb:Query".into(), 500);
        usage.requests.insert("sqs:SendMessageBatch".into(), 100);
        usage.requests.insert("s3:PutObject".into(), 1_000);
        usage.requests.insert("kms:Decrypt".into(), 3);
        usage.lambda.push(LambdaUse {
            function: "SendEmailFunction".into(),
            invocations: 100,
            seconds: 120.0,
            memory_mb: 256,
            emulator_bound: false,
        });
        usage.lambda.push(LambdaUse {
            function: "RenderShardFunction".into(),
            invocations: 1,
            seconds: 10.0,
            memory_mb: 1024,
            emulator_bound: true,
        });
        usage.emails = 900;
        usage.sms = 100;
        let cost = project(&prices(), "infra/prices.json", &usage, 1_000);
        let wru = cost.aws.iter().find(|l| l.item == "write request units").unwrap();
        // 2,000 puts + 40 batches × 25 bills × 1.21 units.
        assert!((wru.quantity - 3_210.0).abs() < 1e-9, "{}", wru.quantity);
        assert!((wru.usd_per_million_invoices - 3_210.0 * 0.625 / 1e6 * 1_000.0).abs() < 1e-9);
        let gbs = |what: &str| cost.aws.iter().find(|l| l.item.contains(what)).unwrap().quantity;
        assert!((gbs("provider") - 30.0).abs() < 1e-9);
        assert!((gbs("emulator") - 10.0).abs() < 1e-9);
        let sum: f64 = cost.aws.iter().map(|l| l.usd_per_million_invoices).sum();
        assert!((cost.aws_usd_per_million_invoices - sum).abs() < 1e-9);
        // SES at $0.10 per 1,000: 900 emails per 1,000 invoices → $90 per million.
        assert!((cost.message_fees[0].usd_per_million_invoices - 90.0).abs() < 1e-9);
        // The SMS price is unset: no total, and the report says why; unknown requests are named.
        assert_eq!(cost.message_fees_usd_per_million_invoices, None);
        assert!(cost.assumptions.iter().any(|a| a.contains("kms:Decrypt")));
        assert!(cost.assumptions.iter().any(|a| a.starts_with("SMS fees not shown")));
    }

    #[test]
    fn charts_have_a_bar_per_busy_slot_and_a_line_per_queue() {
        let slots: Vec<SlotPoint> = (0..24)
            .map(|i| SlotPoint {
                slot: format!(
                    "2026-12-{:02} {:02}:00-{:02}:00",
                    1 + i / 12,
                    (i % 12) * 2,
                    (i % 12) * 2 + 2
                ),
                open: true,
                sent_email: if i == 4 { 30 } else { 0 },
                sent_sms: if i == 5 { 7 } else { 0 },
                depth_email: i,
                ..SlotPoint::default()
            })
            .collect();
        let svg = sends_chart(&slots);
        assert_eq!(
            svg.matches("<rect x=").count() - 2,
            2,
            "two bars besides the legend: {svg}"
        );
        assert!(svg.contains("2026-12-01 08:00-10:00 email 30"));
        assert_eq!(queues_chart(&slots).matches("<polyline").count(), 2);
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(37), 50);
        assert_eq!(nice_max(101), 200);
    }
}
