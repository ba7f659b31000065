//! What the month asked of AWS, in the units AWS bills, and what that costs per 1,000,000
//! invoices at list prices.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Prices;

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
    /// Of `seconds`, the time the invocations waited on the mock provider (the senders'):
    /// the union of each invocation's calls (`provider_wait`).
    #[serde(default)]
    pub provider_wait_seconds: f64,
    /// The mock provider's latency in this run (0: no mock provider).
    #[serde(default)]
    pub provider_latency_ms: u64,
}

impl LambdaUse {
    /// The time AWS would bill with the real providers: the mock's wait scaled to
    /// `assumed_call_ms` a call (the calls overlapping as they did here), and the part of
    /// the mock's wait beyond that.
    pub fn with_real_providers(&self, assumed_call_ms: u64) -> (f64, f64) {
        if self.provider_latency_ms == 0 || self.provider_wait_seconds <= 0.0 {
            return (self.seconds, 0.0);
        }
        let ratio = (assumed_call_ms as f64 / self.provider_latency_ms as f64).min(1.0);
        let wait = self.provider_wait_seconds.min(self.seconds);
        let beyond = wait * (1.0 - ratio);
        (self.seconds - beyond, beyond)
    }
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
    /// DynamoDB capacity units the emulator counted by DynamoDB's rules, per table and
    /// index, over the same span as `requests`; `None` when it was not measured (the
    /// projection then assumes units per request).
    pub capacity: Option<local_aws::Capacity>,
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
    /// What only the mock provider needs (its send log table): counted apart from AWS's
    /// total, like the message fees.
    #[serde(default)]
    pub mock_provider: Vec<CostLine>,
    /// The mock provider's lines per 1,000,000 invoices (not in `aws_usd_per_million_invoices`).
    pub mock_provider_usd_per_million_invoices: f64,
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
    let assumed_call_ms = prices.providers.assumed_call_ms;
    let gb_seconds = |emulator_bound: bool| -> f64 {
        usage
            .lambda
            .iter()
            .filter(|l| l.emulator_bound == emulator_bound)
            .map(|l| l.with_real_providers(assumed_call_ms).0 * l.memory_mb as f64 / 1024.0)
            .sum()
    };
    let mock_wait_gb_seconds: f64 = usage
        .lambda
        .iter()
        .map(|l| l.with_real_providers(assumed_call_ms).1 * l.memory_mb as f64 / 1024.0)
        .sum();
    let mock_latency_ms = usage.lambda.iter().map(|l| l.provider_latency_ms).max().unwrap_or(0);
    let gb_month = usage.stored_bytes as f64 / 1e9;
    // DynamoDB: measured per table and index when the emulator counted capacity, else
    // assumed from the requests.
    let per_invoice = |q: f64| q / invoices.max(1) as f64;
    let mut mock_provider = Vec::new();
    let (mut aws, fixed_reads) = match &usage.capacity {
        Some(capacity) => {
            // Each dispatch Query of the Due index takes at least half a read unit (eventually
            // consistent), whatever the population: that part is the month's fixed cost.
            let fixed = usage.fixed_requests.get("dynamodb:Query").copied().unwrap_or(0) as f64 * 0.5;
            let mut fixed_left = fixed;
            let mut lines = Vec::new();
            for (name, t) in &capacity.tables {
                let label = table_label(name);
                let target = if is_mock_send_log(name) {
                    &mut mock_provider
                } else {
                    &mut lines
                };
                // Scans are the local runner's (deliveries left waiting), not the pipeline's.
                let scans = t.operations.get("Scan").map_or(0.0, |u| u.read_units);
                let mut quantities = vec![
                    (format!("{label}: write units"), t.units.write_units, true),
                    (format!("{label}: read units"), t.units.read_units - scans, false),
                ];
                for (index, i) in &t.indexes {
                    let mut reads = i.units.read_units;
                    if index == "Due" {
                        let queries = i.operations.get("Query").map_or(0.0, |u| u.read_units);
                        let take = fixed_left.min(queries);
                        reads -= take;
                        fixed_left -= take;
                    }
                    quantities.push((
                        format!("{label}, index {index}: write units"),
                        i.units.write_units,
                        true,
                    ));
                    quantities.push((format!("{label}, index {index}: read units"), reads, false));
                }
                for (item, q, write) in quantities {
                    if q <= 0.0 {
                        continue;
                    }
                    let item = format!("{item}, {:.2} per invoice", per_invoice(q));
                    target.push(if write {
                        line("DynamoDB", &item, q, "WRU", d.per_million_write_units, 1e6)
                    } else {
                        line("DynamoDB", &item, q, "RRU", d.per_million_read_units, 1e6)
                    });
                }
            }
            (lines, fixed - fixed_left)
        }
        None => (
            vec![
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
            ],
            fixed_reads,
        ),
    };
    aws.extend([
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
    ]);
    if mock_wait_gb_seconds > 0.0 {
        mock_provider.push(line(
            "Lambda",
            &format!(
                "compute (arm64): the senders waiting on the mock's {mock_latency_ms} ms a call beyond the \
                 {assumed_call_ms} ms assumed of SES and End User Messaging"
            ),
            mock_wait_gb_seconds,
            "GB-s",
            prices.lambda.per_gb_second_arm64,
            1.0,
        ));
    }
    let aws_total: f64 = aws.iter().map(|l| l.usd_per_million_invoices).sum();
    let mock_total: f64 = mock_provider.iter().map(|l| l.usd_per_million_invoices).sum();
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
    let dynamodb_assumptions = if usage.capacity.is_some() {
        vec![
            "DynamoDB measured: the emulator counted the write and read units of every request per table and \
             index by DynamoDB's rules: item sizes (attribute names and values), 1 KB per write unit and 4 KB \
             per read unit, the larger of the item before and after a write, conditional writes that fail \
             (the existing item's units), index entries put, moved (two writes) and removed, reads before \
             their filter, half a unit for eventually consistent reads, twice for transactions"
                .to_owned(),
            "DynamoDB still assumed: on-demand prices without the free tier; an index entry's size is its key \
             and projected attributes without the 100 bytes of storage overhead; Scans are the local runner's \
             (deliveries left waiting) and are left out; each dispatch Query of the Due index takes at least \
             half a unit, counted once a month as fixed, and what it reads beyond that scales with the invoices"
                .to_owned(),
            "DynamoDB mock provider: its send log (one item per accepted send) is counted apart and left out of \
             the AWS total: with SES no such table is written"
                .to_owned(),
        ]
    } else {
        vec![
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
            "DynamoDB reads: one read unit per request (an upper bound: eventually consistent reads of small items \
             take half)"
                .to_owned(),
        ]
    };
    let mut assumptions = dynamodb_assumptions;
    assumptions.extend([
        "Lambda compute: the time each handler took here times the memory template.yaml gives the function, at \
         the arm64 price. The senders' time is mostly the provider's latency: the time their invocations \
         waited on the mock (measured per invocation, overlapping calls counted once) is priced at the latency \
         assumed of SES and End User Messaging (infra/prices.json, providers), and the rest of the mock's wait \
         apart with the mock's send log. The settlement, rendering and dispatch functions mostly wait on the \
         emulator, which answers their requests one at a time: their line is an upper bound, about ten times what AWS bills (BENCHMARKS.md projects \
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
    ]);
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
        mock_provider,
        mock_provider_usd_per_million_invoices: mock_total,
        assumptions,
    }
}

/// A table's name without the stack's prefix: its last `-` part (`Deliveries…`).
fn table_label(name: &str) -> &str {
    name.rsplit('-').find(|p| !p.is_empty()).unwrap_or(name)
}

/// Whether `name` is the mock provider's send log (`MockSendsTable`), which SES does not need.
fn is_mock_send_log(name: &str) -> bool {
    name.to_ascii_lowercase().contains("mocksend")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Prices;

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
            // 100 of the 120 s waiting on the mock's 1,000 ms calls.
            provider_wait_seconds: 100.0,
            provider_latency_ms: 1_000,
        });
        usage.lambda.push(LambdaUse {
            function: "RenderShardFunction".into(),
            invocations: 1,
            seconds: 10.0,
            memory_mb: 1024,
            emulator_bound: true,
            ..Default::default()
        });
        usage.emails = 900;
        usage.sms = 100;
        let cost = project(&prices(), "infra/prices.json", &usage, 1_000);
        let wru = cost.aws.iter().find(|l| l.item == "write request units").unwrap();
        // 2,000 puts + 40 batches × 25 bills × 1.21 units.
        assert!((wru.quantity - 3_210.0).abs() < 1e-9, "{}", wru.quantity);
        assert!((wru.usd_per_million_invoices - 3_210.0 * 0.625 / 1e6 * 1_000.0).abs() < 1e-9);
        let gbs = |what: &str| cost.aws.iter().find(|l| l.item.contains(what)).unwrap().quantity;
        // The wait at the assumed 150 ms a call: 120 - 100 × 0.85 = 35 s at 256 MB; the 85 s
        // beyond it are the mock's, apart.
        assert_eq!(prices().providers.assumed_call_ms, 150);
        assert!((gbs("provider") - 8.75).abs() < 1e-9, "{}", gbs("provider"));
        let mock_wait = cost
            .mock_provider
            .iter()
            .find(|l| l.item.contains("mock's 1000 ms"))
            .unwrap();
        assert!((mock_wait.quantity - 21.25).abs() < 1e-9);
        assert!(!cost.aws.iter().any(|l| l.item.contains("mock")));
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

    fn units(write_units: f64, read_units: f64) -> local_aws::Units {
        local_aws::Units {
            write_units,
            read_units,
        }
    }

    #[test]
    fn measured_capacity_prices_each_table_and_index_and_keeps_the_mock_log_apart() {
        let mut capacity = local_aws::Capacity::default();
        let mut deliveries = local_aws::TableCapacity {
            units: units(4_000.0, 900.0),
            ..Default::default()
        };
        deliveries.operations.insert("Scan".into(), units(0.0, 100.0));
        let mut due = local_aws::IndexCapacity {
            units: units(3_000.0, 700.0),
            ..Default::default()
        };
        due.operations.insert("Query".into(), units(0.0, 700.0));
        deliveries.indexes.insert("Due".into(), due);
        capacity.tables.insert("stack-DeliveriesTable".into(), deliveries);
        capacity.tables.insert(
            "stack-MockSendsTable".into(),
            local_aws::TableCapacity {
                units: units(1_000.0, 0.0),
                ..Default::default()
            },
        );
        let mut usage = Usage {
            capacity: Some(capacity),
            ..Default::default()
        };
        // 200 dispatch queries: 100 read units of the Due index's 700 are the month's fixed part.
        usage.requests.insert("dynamodb:Query".into(), 300);
        usage.fixed_requests.insert("dynamodb:Query".into(), 200);
        usage.requests.insert("dynamodb:PutItem".into(), 5_000);
        let cost = project(&prices(), "infra/prices.json", &usage, 1_000);
        let q = |item: &str| {
            cost.aws
                .iter()
                .find(|l| l.item.starts_with(item))
                .unwrap_or_else(|| panic!("no line {item}: {:?}", cost.aws))
                .quantity
        };
        assert_eq!(q("DeliveriesTable: write units"), 4_000.0);
        // The runner's Scans are left out.
        assert_eq!(q("DeliveriesTable: read units"), 800.0);
        assert_eq!(q("DeliveriesTable, index Due: write units"), 3_000.0);
        assert_eq!(q("DeliveriesTable, index Due: read units"), 600.0);
        assert_eq!(q("dispatch index reads"), 100.0);
        assert!(
            cost.aws
                .iter()
                .any(|l| l.item == "DeliveriesTable: write units, 4.00 per invoice")
        );
        // The assumed lines are gone, and the mock provider's log is apart, out of the total.
        assert!(!cost.aws.iter().any(|l| l.item == "write request units"));
        assert!(!cost.aws.iter().any(|l| l.item.contains("MockSends")));
        assert_eq!(cost.mock_provider.len(), 1);
        let mock = &cost.mock_provider[0];
        assert_eq!(mock.quantity, 1_000.0);
        assert!((cost.mock_provider_usd_per_million_invoices - 1_000.0 * 0.625 / 1e6 * 1_000.0).abs() < 1e-9);
        let sum: f64 = cost.aws.iter().map(|l| l.usd_per_million_invoices).sum();
        assert!((cost.aws_usd_per_million_invoices - sum).abs() < 1e-9);
        assert!(cost.assumptions.iter().any(|a| a.starts_with("DynamoDB measured")));
    }
}
