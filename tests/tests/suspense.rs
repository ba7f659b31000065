//! Usage of a customer with no day of service in the cycle: the shard settles everyone else,
//! and the usage goes into suspense — listed on the shard record and in
//! `suspense/<cycle>/shard-NNNNN.csv` — instead of failing the shard or entering a bill.

use adapters::cycles::{CycleStatus, ShardStatus, SuspendedLine};
use aws_sdk_sfn::types::ExecutionStatus;
use chrono::NaiveDate;
use domain::settlement::FinishStatus;
use domain::{Customer, Cycle};
use integration_tests::{CYCLE, Month, generate, usage_path};

fn cycle() -> Cycle {
    CYCLE.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_of_a_customer_without_service_is_suspended_not_billed_and_the_shard_settles() {
    let data = generate(400, 200).unwrap(); // 2 shards
    let entry = data.manifest.shards[1].clone();
    let (customers_path, _) = data.manifest.shard_paths(&data.path, &entry);
    let usage_file = usage_path(&data, 1);

    // The first customer of shard 1 with usage becomes one who left before the cycle.
    let usage = std::fs::read_to_string(&usage_file).unwrap();
    let customers = std::fs::read_to_string(&customers_path).unwrap();
    let mut records: Vec<Customer> = customers.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let gone = records
        .iter()
        .position(|c| usage.lines().any(|l| l.starts_with(&format!("{},", c.customer_id))))
        .unwrap();
    records[gone].joined_on = NaiveDate::from_ymd_opt(2019, 3, 1).unwrap();
    records[gone].cancelled_on = Some(NaiveDate::from_ymd_opt(2026, 10, 20).unwrap());
    let gone_id = records[gone].customer_id.to_string();
    let text: String = records
        .iter()
        .map(|c| serde_json::to_string(c).unwrap() + "\n")
        .collect();
    std::fs::write(&customers_path, text).unwrap();
    let key = adapters::data_bucket::usage_key(cycle(), 1);
    let want: Vec<SuspendedLine> = usage
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with(&format!("{gone_id},")))
        .map(|(i, l)| SuspendedLine {
            file: key.clone(),
            line: i as u32 + 1,
            customer_id: gone_id.clone(),
            product: l.split(',').nth(1).unwrap().to_owned(),
        })
        .collect();
    assert!(!want.is_empty());

    let month = Month::new("suspense").await.unwrap();
    let load = month.load(&data).await.unwrap();
    assert!(load.rejected.is_empty(), "{:?}", load.rejected);
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    let f = run.finish_output().unwrap();
    assert_eq!(f.status, FinishStatus::Settled);
    assert_eq!(f.bills, u64::from(data.manifest.billable_customers) - 1);

    // The shard settled, its record lists the suspended lines (not as errors) …
    let s1 = month.cycles.get_shard(cycle(), 1).await.unwrap().unwrap();
    assert_eq!(s1.status, ShardStatus::Done);
    assert_eq!(s1.error_count, 0);
    let suspense = s1.suspense.clone().expect("a suspense list on shard 1");
    assert_eq!(suspense.count, want.len() as u64);
    assert_eq!(suspense.key, "suspense/2026-11/shard-00001.csv");
    assert_eq!(suspense.first, want.iter().take(20).cloned().collect::<Vec<_>>());
    let s0 = month.cycles.get_shard(cycle(), 0).await.unwrap().unwrap();
    assert_eq!(s0.suspense, None);

    // … the suspense file lists every one of them …
    let csv = month.bucket.get_bytes(&suspense.key).await.unwrap().unwrap();
    let mut expected = String::from("file,line,customer_id,product\n");
    for w in &want {
        expected.push_str(&format!("{},{},{},{}\n", w.file, w.line, w.customer_id, w.product));
    }
    assert_eq!(String::from_utf8(csv).unwrap(), expected);

    // … and no bill carries them.
    let bills = month.all_bills(2).await.unwrap();
    assert!(bills.iter().all(|b| b.customer_id.as_str() != gone_id));
    assert_eq!(bills.len() as u64, f.bills);
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_eq!(record.status, CycleStatus::Settled);
}
