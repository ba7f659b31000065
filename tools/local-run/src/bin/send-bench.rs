//! `send-bench`: the senders against the local emulator, with the real
//! handlers and the mock provider: the wall time of one invocation of ten
//! messages at the mock's latency, then the drain of `--deliveries` queued
//! deliveries by `--workers` concurrent invocations per queue, what that
//! asked AWS for, and what it projects to on AWS.
//!
//! ```sh
//! cargo run --profile fast -p local-run --bin send-bench -- --deliveries 10000 --workers 4
//! ```

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use clap::Parser;
use domain::delivery::DeliveryMessage;
use domain::{Channel, SlotSet};
use lambda_runtime::LambdaEvent;
use local_aws::Emulator;
use local_run::seed::seed_queued;
use local_run::send::{VirtualClock, drain, sender_deps};

#[derive(Parser)]
struct Args {
    /// Deliveries queued for the drain (one in five on SMS).
    #[arg(long, default_value_t = 10_000)]
    deliveries: u32,
    /// Concurrent invocations per queue (the event source's concurrency).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Mock latency in the drain (ms); the ten-message invocation always uses 1,000.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Mock failure rate in the drain.
    #[arg(long, default_value_t = 0.01)]
    failure_rate: f64,
    /// Projection: the senders' MaximumConcurrency on AWS.
    #[arg(long, default_value_t = 200.0)]
    max_concurrency: f64,
    /// Projection: provider latency on AWS (ms).
    #[arg(long, default_value_t = 1000.0)]
    provider_ms: f64,
    /// Projection: our own time per message on AWS besides the provider (ms): claim, customer
    /// read, invoice read, completion, in-region.
    #[arg(long, default_value_t = 40.0)]
    overhead_ms: f64,
    /// Projection: write request units a second the deliveries table sustains.
    #[arg(long, default_value_t = 4000.0)]
    table_wru: f64,
    /// Projection: deliveries to drain.
    #[arg(long, default_value_t = 1_000_000.0)]
    project: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    // Warnings and errors of the handlers (ids and codes only) on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    let emulator = Emulator::shared().await?;
    let config = emulator.sdk_config().await;
    let clock = VirtualClock::at(chrono::DateTime::parse_from_rfc3339("2026-12-15T10:30:00+09:00")?.into());

    // One invocation of ten messages with the provider's one second.
    let prefix = local_aws::unique_prefix("send-bench-10");
    let resources = local_aws::provision(&config, &prefix).await?;
    let seeded = seed_queued(&config, &resources, 10, 10, 0, SlotSet::EMPTY).await?;
    let overrides = [
        ("MOCK_LATENCY_MS", "1000".to_owned()),
        ("MOCK_FAILURE_RATE", "0".to_owned()),
    ];
    let mut deps = sender_deps(&config, &resources, Channel::Email, &overrides).await?;
    deps.clock = clock.clock();
    let mut event = SqsEvent::default();
    for (i, (id, channel)) in seeded.deliveries.iter().enumerate() {
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("m{i}"));
        m.receipt_handle = Some(format!("r{i}"));
        m.body = Some(serde_json::to_string(&DeliveryMessage {
            delivery_id: id.clone(),
            channel: *channel,
            run_id: "bench".into(),
            copies: 0,
        })?);
        event.records.push(m);
    }
    let t = Instant::now();
    let (_, report) = sender::handle_batch(
        &deps,
        LambdaEvent::new(event, local_run::invocation(Duration::from_secs(60))),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let one = t.elapsed();
    anyhow::ensure!(report.sent == 10, "{report:?}");
    println!(
        "invocation 10 messages at 1,000 ms provider latency, concurrency {}: {one:.2?}",
        deps.config.concurrency
    );

    // The drain.
    let prefix = local_aws::unique_prefix("send-bench");
    let resources = local_aws::provision(&config, &prefix).await?;
    let t = Instant::now();
    seed_queued(&config, &resources, a.deliveries, 1000, 5, SlotSet::EMPTY).await?;
    println!(
        "seeded     {} queued deliveries and their messages [{:.1?}]",
        a.deliveries,
        t.elapsed()
    );
    let overrides = [
        ("MOCK_LATENCY_MS", a.latency_ms.to_string()),
        ("MOCK_FAILURE_RATE", a.failure_rate.to_string()),
        ("RETRY_BASE_DELAY_SECONDS", "1".to_owned()),
        ("RETRY_MAX_DELAY_SECONDS", "4".to_owned()),
    ];
    let pollers = local_run::send::pollers(&config, &resources, &overrides, &clock).await?;
    let before = emulator.request_counts(&prefix).await?;
    let t = Instant::now();
    let (stats, drained) = drain(&pollers, a.workers, Duration::from_secs(3600)).await?;
    let elapsed = t.elapsed();
    anyhow::ensure!(drained, "did not drain: {stats:?}");
    let after = emulator.request_counts(&prefix).await?;
    let n = f64::from(a.deliveries);
    let r = &stats.report;
    println!(
        "drained    {} deliveries with {} invocations at a time per queue, mock latency {} ms, failure rate {}: \
         {elapsed:.1?}, {:.0} deliveries/s against the emulator; {} invocations, {} sent, {} retried, {} fell back, {} dead; \
         {} busy, {} released, {} errors",
        a.deliveries,
        a.workers,
        a.latency_ms,
        a.failure_rate,
        n / elapsed.as_secs_f64(),
        stats.invocations,
        r.sent + r.recovered,
        r.retried,
        r.fallback,
        r.dead,
        r.busy,
        r.released,
        r.errors
    );
    let requests: Vec<(String, u64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect();
    let total: u64 = requests.iter().map(|(_, v)| v).sum();
    println!("requests   {total} in all, {:.3} per delivery:", total as f64 / n);
    for (k, v) in &requests {
        println!("             {k:<30} {v:>8}  {:.3} per delivery", *v as f64 / n);
    }
    // Projection: MaximumConcurrency invocations, each ten messages at once, each message the
    // provider's latency plus our overhead; and the deliveries table: the claim (1 WRU, plus 1
    // on the Due index it leaves) and the completion (1 WRU) for items under 1 KB.
    let latency_rate = a.max_concurrency * 10.0 / ((a.provider_ms + a.overhead_ms) / 1000.0);
    let table_rate = a.table_wru / 3.0;
    let rate = latency_rate.min(table_rate);
    let secs = a.project / rate;
    println!(
        "projection {:.0} deliveries on AWS at MaximumConcurrency {:.0}: {:.0}/s, {:.0} s ({:.1} min); bounds: \
         {:.0}/s by the senders ({:.0} x 10 in flight, {} ms provider + {} ms ours), {:.0}/s by the table ({:.0} WRU/s, 3 per delivery)",
        a.project,
        a.max_concurrency,
        rate,
        secs,
        secs / 60.0,
        latency_rate,
        a.max_concurrency,
        a.provider_ms,
        a.overhead_ms,
        table_rate,
        a.table_wru
    );
    Ok(())
}
