//! Send rate against the quota: four paced email senders (each its own
//! instance, pacer and mock) sending to a mock that enforces `N` per second,
//! for N = 5, 10, 20, 50, against the local emulator. Prints one line per N:
//! the sends, the seconds they spanned in the send log, the achieved rate, the
//! busiest second and the throttles. Bounded: each run stops after its limit.
//!
//! `cargo bench --profile test -p integration-tests --bench pacing` (with the emulator:
//! `source scripts/lib.sh && use_emulator`); `PACING_BENCH_RATES=5,10` to
//! choose the rates, `PACING_BENCH_SECONDS` (8) for how many seconds of
//! sending at the quota each run is given.

use std::time::Duration;

use integration_tests::pacing::{run, sends_per_second};

const CONSUMERS: usize = 4;

fn main() {
    let rates: Vec<u64> = std::env::var("PACING_BENCH_RATES")
        .unwrap_or_else(|_| "5,10,20,50".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let seconds: u64 = std::env::var("PACING_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!("| quota N/s | consumers | sends | seconds in log | achieved/s | busiest second | throttled | wall s |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in rates {
        let deliveries = u32::try_from(n * seconds).unwrap_or(u32::MAX);
        let limit = Duration::from_secs(seconds * 6 + 60);
        let r = rt.block_on(run(&format!("pace-bench-{n}"), deliveries, CONSUMERS, n, true, limit));
        let per_second = rt.block_on(sends_per_second(&r.stack));
        let sends: u64 = per_second.values().sum();
        // Whole seconds from the first to the last send (the first and last partly used).
        let span = match (per_second.keys().next(), per_second.keys().last()) {
            (Some(a), Some(b)) => (b - a + 1) as u64,
            _ => 0,
        };
        // The rate over the seconds strictly between the first and the last (both partial).
        let inner: Vec<u64> = per_second.values().copied().skip(1).collect();
        let inner = &inner[..inner.len().saturating_sub(1)];
        let achieved = if inner.is_empty() {
            0.0
        } else {
            inner.iter().sum::<u64>() as f64 / inner.len() as f64
        };
        println!(
            "| {n} | {CONSUMERS} | {sends} | {span} | {achieved:.1} | {} | {} | {:.1} |{}",
            per_second.values().max().copied().unwrap_or(0),
            r.stats.report.throttled,
            r.took.as_secs_f64(),
            if r.drained { "" } else { " (not drained)" }
        );
    }
}
