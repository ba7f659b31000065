//! Re-pricing's CPU work per shard, without AWS: one shard of 1,000 customers (about five
//! usage lines each) re-rated with 2026-v2 and diffed against its bills settled with 2026-v1
//! (`reprice::rerate`: parse the usage file, rate every customer, diff, the shard's figures
//! and its diff lines); then the shard objects merged as the finish merges them (parse each
//! diff line, write it as CSV).
//!
//! `cargo bench -p reprice` (one thread). docs/benchmarks/reprice.md projects a month of
//! 1,000,000 customers on AWS from these figures and the requests each shard makes.

use std::hint::black_box;
use std::time::Instant;

use adapters::snapshots::RatingCustomer;
use billing::{Catalog, parse_usage, settle};
use domain::Cycle;
use reprice::Rerated;
use reprice::diff::CustomerDiff;
use reprice::event::ShardItem;
use reprice::summary::Source;

const CUSTOMERS: u32 = 1_000;
const ROUNDS: u32 = 50;

fn catalog(version: &str) -> Catalog {
    Catalog::shipped(version).expect("a shipped catalog version")
}

/// A shard of customers as a rating snapshot holds them, and their usage file.
fn shard() -> (Vec<RatingCustomer>, Vec<u8>) {
    let plans = ["LTE_SLIM", "5G_LITE", "5G_STANDARD", "5G_PREMIUM", "5G_SIGNATURE"];
    let addons = ["VCOLORING", "INSURANCE", "OTT_BASIC", "MUSIC", "CLOUD_100G"];
    let mut customers = Vec::new();
    let mut usage = String::from("customer_id,product,quantity,amount\n");
    for i in 0..CUSTOMERS {
        let id = format!("C{:07}", 7_000 + i);
        let joined = match i % 10 {
            0 => "2026-11-12".to_owned(),
            1..=3 => format!("{}-03-01", 2010 + i % 14),
            _ => format!("{}-0{}-15", 2018 + i % 8, 1 + i % 9),
        };
        let contract = (i % 3 == 0).then(|| serde_json::json!({"start": "2025-01-01", "end": "2026-12-31"}));
        let c = serde_json::json!({
            "customer_id": id, "shard": 7, "plan": plans[(i % 5) as usize],
            "addons": addons.iter().take((i % 3) as usize).collect::<Vec<_>>(),
            "contract": contract, "birthday": format!("2000-{:02}-01", 1 + i % 12),
            "joined_on": joined, "cancelled_on": if i % 17 == 0 { Some("2026-11-20") } else { None },
            "send_day": 1 + i % 28, "preferred_channel": "email", "contact": null,
        });
        customers.push(serde_json::from_value::<RatingCustomer>(c).expect("a rating customer"));
        usage.push_str(&format!("{id},DATA,{},\n", 1_024 * (1 + i % 40)));
        usage.push_str(&format!("{id},VOICE,{},\n", 60 * (i % 300)));
        usage.push_str(&format!("{id},SMS,{},\n", i % 50));
        if i % 4 == 0 {
            usage.push_str(&format!("{id},MICROPAY,1,{}\n", 1_000 + i * 7));
        }
        if i % 7 == 0 {
            usage.push_str(&format!("{id},ROAM_DATA,{},\n", 100 * (i % 20)));
        }
    }
    (customers, usage.into_bytes())
}

fn main() {
    let cycle: Cycle = "2026-11".parse().expect("a cycle");
    let (v1, v2) = (catalog("2026-v1"), catalog("2026-v2"));
    let (customers, usage) = shard();
    let key = "usage/2026-11/shard-00007.csv";
    let live = settle(&v1, cycle, &customers, parse_usage(&usage, key, &v1), key);
    assert_eq!(live.error_count(), 0, "the generated shard rates");
    let item = ShardItem {
        cycle,
        catalog: "2026-v2".into(),
        live_catalog: "2026-v1".into(),
        run: "bench".into(),
        prefix: "shadow/2026-11/2026-v2/bench".into(),
        shard: 7,
    };
    let run = || -> Rerated {
        reprice::rerate(&v2, &item, &customers, &usage, key, &live.bills, Source::Snapshot).expect("re-rated")
    };
    let warm = run();
    let mut best = f64::MAX;
    let mut total = 0.0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        black_box(run());
        let s = t.elapsed().as_secs_f64();
        best = best.min(s);
        total += s;
    }
    let lines = warm.lines.clone();
    let mut merge_best = f64::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let mut csv = String::new();
        for l in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let d: CustomerDiff = serde_json::from_slice(l).expect("a diff line");
            csv.push_str(&reprice::report::csv_row(&d));
        }
        black_box(csv);
        merge_best = merge_best.min(t.elapsed().as_secs_f64());
    }
    let s = &warm.summary.summary;
    println!(
        "shard of {CUSTOMERS} customers ({} usage lines, {} bills live): {} changed, Σ delta {} won, {} B of diff lines",
        live.usage_lines,
        live.bills.len(),
        s.changed,
        s.sum_delta,
        warm.lines.len()
    );
    println!(
        "re-rate + diff + figures: best {:.2} ms, mean {:.2} ms ({:.2} µs per customer)",
        best * 1e3,
        total / f64::from(ROUNDS) * 1e3,
        best * 1e6 / f64::from(CUSTOMERS)
    );
    println!("finish, per shard (diff lines → CSV): best {:.2} ms", merge_best * 1e3);
    println!(
        "1,000,000 customers on one core: {:.1} s re-rating, {:.1} s merging",
        best * 1_000.0,
        merge_best * 1_000.0
    );
}
