//! Shadow re-pricing end to end: a month of 2,000 customers settled on the emulator's Step
//! Functions engine, then re-priced by the reprice state machine with the hosted handler.
//!
//! - With the version the month was settled with: 0 customers changed.
//! - With 2026-v2 (a plan price and a discount rate changed): for every customer, the delta is
//!   what an independent reading of the rules (`billing-oracle`) gives with 2026-v2 minus what
//!   it gives with 2026-v1, from the month's rating snapshot and usage file; the changed set is
//!   exactly the customers whose two oracle totals differ; the CSV holds the same rows.
//! - The bills table, the deliveries table and the invoice objects (keys and ETags) are the
//!   same before and after; every object the runs wrote is under `shadow/`.
//! - A month not settled, a malformed cycle, a catalog that is not published and an unknown
//!   field are refused, naming the field and not echoing the value.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use billing_oracle::UsageLine;
use domain::Cycle;
use integration_tests::ingest::canonical;
use integration_tests::setup::loaded;
use integration_tests::{CYCLE, Month};
use local_run::reprice::{self as local, Repriced};
use reprice::diff::CustomerDiff;
use reprice::event::FinishOutput;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(600);

fn cycle() -> Cycle {
    CYCLE.parse().unwrap()
}

fn catalog_doc(version: &str) -> Value {
    let path = local_aws::project_root()
        .unwrap()
        .join("catalog")
        .join(format!("{version}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every item of a table, each as its attributes in name order (a raw `Scan`).
async fn table(month: &Month, name: &str) -> BTreeSet<String> {
    let ddb = adapters::dynamodb_client(&month.config);
    let mut out = BTreeSet::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = ddb
            .scan()
            .table_name(name)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            let sorted: BTreeMap<&String, String> = item.iter().map(|(k, v)| (k, canonical(v))).collect();
            out.insert(format!("{sorted:?}"));
        }
        start = page.last_evaluated_key.clone().filter(|k| !k.is_empty());
        if start.is_none() {
            return out;
        }
    }
}

/// Every object of the data bucket: key → ETag.
async fn objects(month: &Month) -> BTreeMap<String, String> {
    let s3 = adapters::s3_client(&month.config);
    let mut out = BTreeMap::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(month.bucket.bucket())
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for o in page.unwrap().contents() {
            out.insert(o.key().unwrap().to_owned(), o.e_tag().unwrap_or_default().to_owned());
        }
    }
    out
}

/// What the live side holds: the bills and deliveries tables, and the invoices (keys, ETags).
async fn live(month: &Month) -> (BTreeSet<String>, BTreeSet<String>, BTreeMap<String, String>) {
    let env = month.resources.env();
    let invoices = objects(month)
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with("invoices/"))
        .collect();
    (
        table(month, &env["BILLS_TABLE"]).await,
        table(month, &env["DELIVERIES_TABLE"]).await,
        invoices,
    )
}

async fn start(month: &Month, input: &str, name: &str) -> (ExecutionStatus, String, String) {
    let sm = month.resources.arn(local::STATE_MACHINE).unwrap();
    let started = month
        .sfn
        .start_execution()
        .state_machine_arn(sm)
        .name(name)
        .input(input)
        .send()
        .await
        .unwrap();
    let o = local_run::settle::wait_for(&month.sfn, &started.execution_arn, LIMIT, &|_| {})
        .await
        .unwrap();
    (o.status, o.error.unwrap_or_default(), o.cause.unwrap_or_default())
}

/// The run's diff lines, as the finish wrote them.
async fn diff_lines(month: &Month, done: &FinishOutput) -> Vec<CustomerDiff> {
    let bytes = month.bucket.get_bytes(&done.files.diff_jsonl).await.unwrap().unwrap();
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

async fn run(month: &Month, catalog: &str, name: &str) -> FinishOutput {
    let sm = month.resources.arn(local::STATE_MACHINE).unwrap();
    match local::run(&month.sfn, sm, cycle(), catalog, name, LIMIT).await.unwrap() {
        Repriced::Done(done) => *done,
        failed => panic!("{failed:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_month_re_priced_with_2026_v2_moves_exactly_what_the_rules_move_and_nothing_live() {
    let (data, month) = loaded("reprice", 2_000, 500).await.unwrap();
    local::host_reprice(&month.host, month.emulator, &month.config, &month.resources)
        .await
        .unwrap();

    // Not settled yet: refused, naming the field.
    let input = serde_json::json!({"cycle": CYCLE, "catalog": "2026-v1"}).to_string();
    let (status, error, cause) = start(&month, &input, "too-early").await;
    assert_eq!(
        (status, error.as_str()),
        (ExecutionStatus::Failed, "CycleNotSettled"),
        "{cause}"
    );
    assert!(cause.contains("cycle: the month has no settlement record"), "{cause}");

    let settled = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(settled.status, ExecutionStatus::Succeeded, "{settled:?}");
    let before = live(&month).await;
    let objects_before = objects(&month).await;
    assert!(!before.0.is_empty() && !before.1.is_empty() && !before.2.is_empty());

    // Bad inputs: named, never echoed.
    for (input, name, error, field, value) in [
        (
            r#"{"cycle": "2026-13", "catalog": "2026-v2"}"#,
            "bad-cycle",
            "InvalidInput",
            "cycle",
            "2026-13",
        ),
        (
            r#"{"cycle": "kim@example.com", "catalog": "2026-v2"}"#,
            "bad-cycle-2",
            "InvalidInput",
            "cycle",
            "kim@",
        ),
        (
            r#"{"cycle": "2026-11", "catalog": "2027-v9"}"#,
            "no-catalog",
            "CatalogMissing",
            "catalog",
            "2027-v9",
        ),
        (
            r#"{"cycle": "2026-11", "catalog": "a b@c"}"#,
            "bad-catalog",
            "InvalidInput",
            "catalog",
            "a b@c",
        ),
        (
            r#"{"cycle": "2026-11", "katalog": "x"}"#,
            "unknown-field",
            "InvalidInput",
            "plan.input",
            "\"x\"",
        ),
    ] {
        let (status, got, cause) = start(&month, input, name).await;
        assert_eq!(
            (status, got.as_str()),
            (ExecutionStatus::Failed, error),
            "{name}: {cause}"
        );
        assert!(cause.contains(field), "{name}: {cause}");
        assert!(!cause.contains(value), "{name} echoes the value: {cause}");
    }

    // The same version: an audit, nothing changed.
    let audit = run(&month, "2026-v1", "audit").await;
    let s = &audit.summary;
    assert_eq!((s.changed, s.sum_delta, s.shards), (0, 0, 4), "{s:?}");
    assert_eq!(s.customers, 2_000);
    assert_eq!(s.bills_old, s.bills_new);
    assert_eq!(s.inputs.snapshot, 4);
    assert!(diff_lines(&month, &audit).await.is_empty());

    // 2026-v2 against the oracle, customer by customer, from the snapshot and the usage file.
    local::publish_if_missing(&month.config, &month.resources, "2026-v2")
        .await
        .unwrap();
    let v2 = run(&month, "2026-v2", "v2").await;
    let (doc1, doc2) = (catalog_doc("2026-v1"), catalog_doc("2026-v2"));
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let mut customers = 0;
    for shard in 0..data.manifest.shard_count {
        let snapshot = month
            .bucket
            .get_bytes(&adapters::snapshots::snapshot_key(cycle(), shard))
            .await
            .unwrap()
            .expect("the settlement wrote the shard's snapshot");
        let usage = month.bucket.get(cycle(), shard).await.unwrap().unwrap();
        let mut by_customer: HashMap<String, Vec<UsageLine>> = HashMap::new();
        for line in String::from_utf8(usage)
            .unwrap()
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
        {
            let f: Vec<&str> = line.split(',').collect();
            by_customer.entry(f[0].to_owned()).or_default().push(UsageLine {
                product: f[1].to_owned(),
                quantity: f[2].parse().unwrap(),
                amount: if f[3].is_empty() { 0 } else { f[3].parse().unwrap() },
            });
        }
        for line in String::from_utf8(snapshot).unwrap().lines().filter(|l| !l.is_empty()) {
            let c: Value = serde_json::from_str(line).unwrap();
            let id = c["customer_id"].as_str().unwrap().to_owned();
            let usage = by_customer.remove(&id).unwrap_or_default();
            let o1 = billing_oracle::total(&doc1, CYCLE, &c, &usage).unwrap();
            let o2 = billing_oracle::total(&doc2, CYCLE, &c, &usage).unwrap();
            customers += 1;
            if o1 != o2 {
                expected.insert(id, o2.unwrap_or(0) - o1.unwrap_or(0));
            }
        }
    }
    assert_eq!(customers, 2_000);
    assert!(
        expected.len() > 100,
        "2026-v2 changes a plan price and a discount rate: {} customers",
        expected.len()
    );
    let lines = diff_lines(&month, &v2).await;
    let got: BTreeMap<String, i64> = lines.iter().map(|d| (d.customer_id.clone(), d.delta)).collect();
    assert_eq!(got.len(), lines.len(), "one line per customer");
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(c, d)| got.get(*c) != Some(d))
        .map(|(c, d)| (c, Some(*d), got.get(c).copied()))
        .chain(
            got.iter()
                .filter(|(c, _)| !expected.contains_key(*c))
                .map(|(c, d)| (c, None, Some(*d))),
        )
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "(customer, oracle delta, re-priced delta) that differ: {wrong:?}"
    );
    for d in &lines {
        assert!(!d.lines.is_empty(), "{} changed with no line listed", d.customer_id);
        assert_eq!(d.new_total.unwrap_or(0) - d.old_total.unwrap_or(0), d.delta);
    }
    let s = &v2.summary;
    assert_eq!(s.changed, expected.len() as u64);
    assert_eq!(s.sum_delta, expected.values().sum::<i64>());
    assert_eq!(s.sum_new - s.sum_old, s.sum_delta);
    assert_eq!(s.histogram.total(), s.changed);
    assert_eq!(s.top.len(), 20);
    assert_eq!(s.by_plan.values().map(|p| p.changed).sum::<u64>(), s.changed);
    assert!(s.by_plan["5G_STANDARD"].changed > 0, "{:?}", s.by_plan);
    let csv = month.bucket.get_bytes(&v2.files.diff_csv).await.unwrap().unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count(), lines.len() + 1);
    assert!(csv.starts_with(reprice::report::CSV_HEADER));
    let page = month.bucket.get_bytes(&v2.files.report).await.unwrap().unwrap();
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("<svg") && page.contains(&s.top[0].customer_id));
    let summary: reprice::summary::Summary =
        serde_json::from_slice(&month.bucket.get_bytes(&v2.files.summary).await.unwrap().unwrap()).unwrap();
    assert_eq!(&summary, s);

    // A shard re-run writes the same objects.
    let shard_key = reprice::shard_diff_key(&v2.prefix, 1);
    let summary_key = reprice::shard_summary_key(&v2.prefix, 1);
    let first = (
        month.bucket.get_bytes(&shard_key).await.unwrap(),
        month.bucket.get_bytes(&summary_key).await.unwrap(),
    );
    let deps = reprice::Deps::load(&month.config, &month.resources.function_env(local::FUNCTION))
        .await
        .unwrap();
    let item = reprice::event::ShardItem {
        cycle: cycle(),
        catalog: "2026-v2".into(),
        live_catalog: "2026-v1".into(),
        run: "v2".into(),
        prefix: v2.prefix.clone(),
        shard: 1,
    };
    let event = lambda_runtime::LambdaEvent::new(
        reprice::event::Input::Shard(item),
        local_run::invocation(Duration::from_secs(60)),
    );
    reprice::handle(&deps, event).await.unwrap();
    let again = (
        month.bucket.get_bytes(&shard_key).await.unwrap(),
        month.bucket.get_bytes(&summary_key).await.unwrap(),
    );
    assert!(first.0.is_some() && first == again);

    // Nothing live moved; everything written is under shadow/.
    assert!(
        live(&month).await == before,
        "the live bills, deliveries or invoices changed"
    );
    let objects_after = objects(&month).await;
    for (k, etag) in &objects_before {
        assert_eq!(objects_after.get(k), Some(etag), "{k}");
    }
    let written: Vec<&String> = objects_after
        .keys()
        .filter(|k| !objects_before.contains_key(*k))
        .collect();
    assert!(!written.is_empty());
    assert!(written.iter().all(|k| k.starts_with("shadow/")), "{written:?}");
}
