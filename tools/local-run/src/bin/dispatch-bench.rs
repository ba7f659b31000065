//! `dispatch-bench`: one dispatch run of a slot in which every delivery is
//! due at once (everybody chose the 15th), against the local emulator, with
//! the real handler; then what it asked AWS for, and what that projects to
//! on AWS.
//!
//! ```sh
//! cargo run --profile fast -p local-run --bin dispatch-bench -- --deliveries 20000
//! ```
//!
//! The deliveries are written straight into the deliveries table (`READY`,
//! send day 15, no DND, one in five preferring SMS, items of the size
//! rendering writes) of a settled cycle 2026-11; the run is the schedule's
//! for 15 December 2026, 10:00 Asia/Seoul. The emulator answers requests one
//! at a time, so its rate says how fast the emulator is; the request counts
//! say what AWS would be asked, and the projection applies AWS's figures to
//! them (the assumptions are flags, printed with the result).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use dispatch_slot::DispatchEvent;
use domain::Cycle;
use domain::dispatch::SlotRun;
use lambda_runtime::LambdaEvent;

#[derive(Parser)]
struct Args {
    /// Deliveries due in the slot.
    #[arg(long, default_value_t = 20_000)]
    deliveries: u32,
    /// Customers per shard (deliveries table partition).
    #[arg(long, default_value_t = 1000)]
    shard_size: u32,
    /// Projection: median latency of a conditional UpdateItem on AWS, in-region (ms).
    #[arg(long, default_value_t = 6.0)]
    aws_update_ms: f64,
    /// Projection: median latency of a SendMessageBatch of 10 on AWS, in-region (ms).
    #[arg(long, default_value_t = 15.0)]
    aws_batch_ms: f64,
    /// Projection: write request units a second the deliveries table sustains (a new
    /// on-demand table: 4,000; twice its previous peak after that; more with warm throughput).
    #[arg(long, default_value_t = 4000.0)]
    table_wru: f64,
    /// Projection: deliveries due in the slot.
    #[arg(long, default_value_t = 1_000_000.0)]
    project: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let cycle: Cycle = "2026-11".parse()?;
    let stack = local_run::bench::month_stack("dispatch-bench", cycle, a.deliveries, a.shard_size).await?;
    let (emulator, config, prefix, resources) = (stack.emulator, &stack.config, &stack.prefix, &stack.resources);
    println!(
        "loaded     {} READY deliveries (items up to {} B) due on 2026-12-15 [{:.1?}]",
        a.deliveries, stack.item_size, stack.load_time
    );

    // The run.
    let mut deps = local_run::dispatch::dispatch_deps(config, resources).await?;
    deps.config.recheck_after = chrono::Duration::days(62);
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-12-15T10:00:00+09:00")?.with_timezone(&Utc);
    let slot = SlotRun::containing(at);
    let before = emulator.request_counts(prefix).await?;
    let t = Instant::now();
    let ctx = local_run::invocation(Duration::from_secs(900));
    let report = dispatch_slot::dispatch(&deps, LambdaEvent::new(DispatchEvent::at(at), ctx))
        .await
        .map_err(|e| anyhow::anyhow!("dispatch of {slot}: {e}"))?;
    let elapsed = t.elapsed();
    let after = emulator.request_counts(prefix).await?;
    let enqueued = report.enqueued_email + report.enqueued_sms;
    anyhow::ensure!(report.complete, "the run did not complete: {report:?}");
    anyhow::ensure!(
        enqueued == u64::from(a.deliveries),
        "{enqueued} of {} enqueued: {report:?}",
        a.deliveries
    );
    let requests: Vec<(String, u64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect();
    let total: u64 = requests.iter().map(|(_, v)| v).sum();
    let n = enqueued as f64;
    println!(
        "dispatched {enqueued} ({} email, {} SMS) in one run of {slot} [{elapsed:.1?}]: {:.0} enqueued/s against the emulator",
        report.enqueued_email,
        report.enqueued_sms,
        n / elapsed.as_secs_f64()
    );
    println!("requests   {total} in all, {:.3} per delivery:", total as f64 / n);
    for (k, v) in &requests {
        println!("             {k:<28} {v:>8}  {:.3} per delivery", *v as f64 / n);
    }

    // Projection on AWS. Every UpdateItem moves the delivery's index entry (its available_at
    // is the index's sort key): 1 write unit on the table and 2 on the index for an item
    // under 1 KB. Each index partition (one per bucket) takes at most 1,000 write units a
    // second.
    let c = &deps.config;
    let buckets = domain::delivery::DUE_BUCKETS as f64;
    let in_flight = c.bucket_concurrency as f64;
    // Per bucket, ten conditional writes in parallel, then their SendMessageBatch.
    let latency_rate = in_flight * 10.0 / ((a.aws_update_ms + a.aws_batch_ms) / 1000.0);
    let table_rate = a.table_wru / 3.0;
    let index_rate = buckets * 1000.0 / 2.0;
    let rate = latency_rate.min(table_rate).min(index_rate);
    let secs = a.project / rate;
    println!(
        "projection {:.0} due in one slot on AWS: {:.0} deliveries/s, {:.0} s ({:.1} min) in one run; bounds: \
         {:.0}/s by latency ({} buckets at once x 10 writes, {} ms UpdateItem + {} ms SendMessageBatch), \
         {:.0}/s by the table ({:.0} WRU/s, 3 per delivery), {:.0}/s by the index ({} partitions x 1,000 WRU/s, 2 per delivery)",
        a.project,
        rate,
        secs,
        secs / 60.0,
        latency_rate,
        c.bucket_concurrency,
        a.aws_update_ms,
        a.aws_batch_ms,
        table_rate,
        a.table_wru,
        index_rate,
        domain::delivery::DUE_BUCKETS,
    );
    Ok(())
}
