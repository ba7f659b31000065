//! The report as one self-contained HTML page: the figures formatted as the page shows them
//! (numbers rounded, tables in rows), laid out by `templates/month.html`.

use serde::Serialize;

use super::{CostLine, MonthReport, Outcome, charts, templates};
use crate::deliver::FaultReport;

/// Everything `month.html` shows.
#[derive(Serialize)]
struct Page<'a> {
    cycle: &'a str,
    month_sent: &'a str,
    ok: bool,
    reconciled: bool,
    problems: String,
    customers: u64,
    billable: u64,
    shards: u64,
    seed: u64,
    quiet_window: &'a str,
    provider_latency_ms: u64,
    latency_compressed: bool,
    failure_percent: String,
    seconds: String,
    outcome: &'a Outcome,
    waiting_by_state: Vec<Count<'a>>,
    /// Bills that ended or wait (the unconfirmed are not counted in the total row).
    ended: u64,
    faults: &'a FaultReport,
    faults_fired: Vec<Fired<'a>>,
    requests_per_delivery: String,
    sends_chart: String,
    queues_chart: String,
    phases: Vec<PhaseRow<'a>>,
    slowest_shards: Vec<ShardRow<'a>>,
    requests: u64,
    requests_per_invoice: String,
    requests_by_service: Vec<ServiceRow<'a>>,
    requests_by_operation: Vec<Count<'a>>,
    prices_as_of: &'a str,
    region: &'a str,
    currency: &'a str,
    price_file: &'a str,
    invoices: u64,
    aws: CostTable<'a>,
    message_fees: CostTable<'a>,
    mock_provider: CostTable<'a>,
    assumptions: &'a [String],
    lambda: Vec<LambdaRow<'a>>,
    evidence: &'a crate::evidence::EvidenceTotals,
    lifecycle: Vec<Count<'a>>,
    bounce_percent: String,
    complaint_percent: String,
    sms_failed_percent: String,
    suppressed: u64,
    quota_plan: &'a str,
}

/// A name and a count: a waiting state, an operation.
#[derive(Serialize)]
struct Count<'a> {
    name: &'a str,
    count: u64,
}

/// Calls a fault switch faulted on one resource.
#[derive(Serialize)]
struct Fired<'a> {
    switch: &'a str,
    resource: &'a str,
    calls: u64,
}

#[derive(Serialize)]
struct PhaseRow<'a> {
    name: &'a str,
    seconds: String,
    items: u64,
    unit: &'a str,
    per_second: String,
}

#[derive(Serialize)]
struct ShardRow<'a> {
    function: &'a str,
    /// The shard's number, `-` when unknown.
    shard: String,
    seconds: String,
    mean_seconds: String,
}

#[derive(Serialize)]
struct ServiceRow<'a> {
    service: &'a str,
    requests: u64,
    per_invoice: String,
}

/// Priced lines and their total, named in the total row.
#[derive(Serialize)]
struct CostTable<'a> {
    lines: Vec<CostRow<'a>>,
    what: &'static str,
    total: String,
}

#[derive(Serialize)]
struct CostRow<'a> {
    service: &'a str,
    item: &'a str,
    fixed: bool,
    quantity: String,
    unit: &'a str,
    price: String,
    per: String,
    usd_per_million_invoices: String,
}

#[derive(Serialize)]
struct LambdaRow<'a> {
    function: &'a str,
    invocations: u64,
    seconds: String,
    memory_mb: u64,
}

/// The page of `r`.
pub(super) fn render(r: &MonthReport) -> anyhow::Result<String> {
    let o = &r.outcome;
    let bills = o.bills.max(1) as f64;
    let c = &r.cost;
    let page = Page {
        cycle: &r.cycle,
        month_sent: &r.month_sent,
        ok: r.ok,
        reconciled: o.reconciled(),
        problems: r.problems.join("; "),
        customers: r.customers,
        billable: r.billable,
        shards: r.shards,
        seed: r.seed,
        quiet_window: &r.quiet_window,
        provider_latency_ms: r.provider_latency_ms,
        latency_compressed: r.latency_compressed,
        failure_percent: format!("{:.0}", r.provider_failure_rate * 100.0),
        seconds: format!("{:.1}", r.seconds),
        outcome: o,
        waiting_by_state: counts(&o.waiting_by_state),
        evidence: &r.evidence.handled,
        lifecycle: counts(&o.lifecycle),
        bounce_percent: format!("{}", r.evidence.bounce_rate * 100.0),
        complaint_percent: format!("{}", r.evidence.complaint_rate * 100.0),
        sms_failed_percent: format!("{}", r.evidence.sms_failed_rate * 100.0),
        suppressed: r.evidence.handled.get("SuppressedContacts"),
        quota_plan: &r.quota_plan,
        ended: o.sent_email + o.sent_sms + o.dead + o.waiting,
        faults: &r.faults,
        faults_fired: r
            .faults
            .fired
            .iter()
            .flat_map(|(switch, by_resource)| {
                by_resource.iter().map(move |(resource, calls)| Fired {
                    switch,
                    resource,
                    calls: *calls,
                })
            })
            .collect(),
        requests_per_delivery: format!("{:.2}", o.requests_per_delivery),
        sends_chart: charts::sends_chart(&r.slots)?,
        queues_chart: charts::queues_chart(&r.slots)?,
        phases: r
            .phases
            .iter()
            .map(|p| PhaseRow {
                name: &p.name,
                seconds: format!("{:.1}", p.seconds),
                items: p.items,
                unit: &p.unit,
                per_second: format!("{:.1}", p.per_second()),
            })
            .collect(),
        slowest_shards: r
            .slowest_shards
            .iter()
            .map(|s| ShardRow {
                function: &s.function,
                shard: s.shard.map_or("-".to_owned(), |n| n.to_string()),
                seconds: format!("{:.2}", s.seconds),
                mean_seconds: format!("{:.2}", s.mean_seconds),
            })
            .collect(),
        requests: r.requests.values().sum(),
        requests_per_invoice: format!("{:.2}", r.requests_per_invoice),
        requests_by_service: r
            .requests_by_service
            .iter()
            .map(|(service, v)| ServiceRow {
                service,
                requests: *v,
                per_invoice: format!("{:.3}", *v as f64 / bills),
            })
            .collect(),
        requests_by_operation: counts(&r.requests),
        prices_as_of: &c.prices_as_of,
        region: &c.region,
        currency: &c.currency,
        price_file: &c.price_file,
        invoices: c.invoices,
        aws: cost_table(&c.aws, "AWS", c.aws_usd_per_million_invoices),
        message_fees: cost_table(
            &c.message_fees,
            "message fees",
            c.message_fees.iter().map(|l| l.usd_per_million_invoices).sum(),
        ),
        mock_provider: cost_table(
            &c.mock_provider,
            "the mock provider",
            c.mock_provider_usd_per_million_invoices,
        ),
        assumptions: &c.assumptions,
        lambda: r
            .lambda
            .iter()
            .map(|l| LambdaRow {
                function: &l.function,
                invocations: l.invocations,
                seconds: format!("{:.1}", l.seconds),
                memory_mb: l.memory_mb,
            })
            .collect(),
    };
    templates::render("month.html", &page)
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> Vec<Count<'_>> {
    map.iter().map(|(name, count)| Count { name, count: *count }).collect()
}

fn cost_table<'a>(lines: &'a [CostLine], what: &'static str, total: f64) -> CostTable<'a> {
    CostTable {
        lines: lines
            .iter()
            .map(|l| CostRow {
                service: &l.service,
                item: &l.item,
                fixed: l.fixed,
                quantity: quantity(l.quantity),
                unit: &l.unit,
                price: l.price.to_string(),
                per: quantity(l.per),
                usd_per_million_invoices: format!("{:.2}", l.usd_per_million_invoices),
            })
            .collect(),
        what,
        total: format!("{total:.2}"),
    }
}

/// A whole number as it is; a fraction below 100 to three places.
fn quantity(q: f64) -> String {
    if q.fract() == 0.0 || q >= 100.0 {
        format!("{q:.0}")
    } else {
        format!("{q:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Prices, SlotPoint, Usage, project};
    use super::*;

    #[test]
    fn the_page_escapes_every_value_and_embeds_both_charts() {
        let prices = Prices::load(&local_aws::project_root().unwrap().join("infra/prices.json")).unwrap();
        let report = MonthReport {
            cycle: "2026-11".into(),
            month_sent: "2026-12".into(),
            customers: 1,
            billable: 1,
            shards: 1,
            seed: 7,
            quiet_window: "21:00-08:00".into(),
            provider_latency_ms: 20,
            latency_compressed: true,
            provider_failure_rate: 0.0,
            ok: false,
            problems: vec!["<b>lost</b> & \"found\"".into()],
            outcome: Outcome::default(),
            evidence: super::super::Evidence::default(),
            quota_plan: String::new(),
            faults: FaultReport::default(),
            phases: Vec::new(),
            slowest_shards: Vec::new(),
            slots: vec![SlotPoint {
                slot: "2026-12-01 08:00-10:00".into(),
                sent_email: 1,
                ..SlotPoint::default()
            }],
            senders: serde_json::Value::Null,
            requests: [("<op>".to_owned(), 3)].into(),
            requests_by_service: Default::default(),
            requests_per_invoice: 3.0,
            lambda: Vec::new(),
            cost: project(&prices, "infra/prices.json", &Usage::default(), 1),
            seconds: 1.0,
        };
        let html = report.html().unwrap();
        assert!(
            html.contains("Does not reconcile: &lt;b&gt;lost&lt;/b&gt; &amp; &quot;found&quot;"),
            "{html}"
        );
        assert!(html.contains("<td>&lt;op&gt;</td>"), "{html}");
        assert!(!html.contains("<b>") && !html.contains("<op>"), "{html}");
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("<p class=\"bad\">"));
    }
}
