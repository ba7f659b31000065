//! `shard-bench`: the cost of one settlement shard, split into compute and
//! I/O, and the requests it makes; then the same for rendering the shard
//! (requests counted by the emulator) and for rendering it again.
//!
//! ```sh
//! cargo run --profile fast -p local-run --bin shard-bench -- --customers 1000 --runs 3
//! ```
//!
//! Compute (parse the usage file, rate every customer, encode every bill as
//! a DynamoDB item) is timed in-process, best of `--runs`. The whole handler
//! is then timed against the local emulator, whose speed is not AWS's: its
//! I/O figure says how slow the emulator is, the request counts say what AWS
//! would be asked.

use std::time::{Duration, Instant};

use adapters::Vars;
use adapters::dynamo::{BATCH_WRITE_LIMIT, item_size};
use billing::{Catalog, parse_usage, settle};
use clap::Parser;
use datagen::{GenConfig, Generator, write_dataset};
use domain::QuietWindow;
use domain::pii::Keyring;
use domain::settlement::ShardTask;
use lambda_runtime::LambdaEvent;
use local_aws::Emulator;
use local_run::load::{Stores, load_dataset};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    customers: u32,
    #[arg(long, default_value_t = 3)]
    runs: u32,
}

fn best<T>(runs: u32, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        out = Some(v);
    }
    (best, out.unwrap_or_else(|| unreachable!("runs ≥ 1")))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut cfg = GenConfig::new(a.customers, "2026-11".parse()?);
    cfg.shard_size = a.customers;
    let g = Generator::new(cfg, Keyring::dev())?;
    let summary = write_dataset(&g, &data, 1, &|_| {})?;
    let m = &summary.manifest;
    let entry = &m.shards[0];
    let (customers_path, usage_path) = m.shard_paths(&data, entry);
    let (customers, _) = datagen::read_customers(&customers_path)?;
    let usage = std::fs::read(&usage_path)?;
    let catalog = Catalog::default_catalog()?;

    // Compute: parse + rate + encode, one thread.
    let (t_rate, settled) = best(a.runs, || {
        let parsed = parse_usage(&usage, &entry.usage_file, &catalog);
        settle(&catalog, m.cycle, &customers, parsed, &entry.usage_file)
    });
    let (t_encode, sizes) = best(a.runs, || {
        settled
            .bills
            .iter()
            .map(|b| adapters::bills::encode(b).map(|i| item_size(&i)))
            .collect::<Result<Vec<_>, _>>()
    });
    let sizes = sizes?;
    let bills = settled.bills.len();
    let avg_item = sizes.iter().sum::<usize>() as f64 / bills.max(1) as f64;
    let max_item = sizes.iter().copied().max().unwrap_or(0);
    let wcu: usize = sizes.iter().map(|s| s.div_ceil(1024)).sum();

    // The whole handler against the emulator.
    let emulator = Emulator::shared().await?;
    let config = emulator.sdk_config().await;
    let resources = local_aws::provision(&config, &local_aws::unique_prefix("shard-bench")).await?;
    let stores = Stores::of(&config, resources.env())?;
    let ddb = adapters::dynamodb_client(&config);
    load_dataset(
        &data,
        &stores,
        &Keyring::dev(),
        QuietWindow::default_korea(),
        1,
        &|_| {},
    )
    .await?;
    let deps = settle_shard::Deps::load(&config, &resources.function_env("SettleShardFunction")).await?;
    let cycles = adapters::cycles::CycleStore::new(ddb.clone(), resources.env().required("CYCLES_TABLE")?);
    let task = ShardTask {
        cycle: m.cycle,
        shard: 0,
        catalog_version: catalog.version().to_owned(),
        template_version: "v1".into(),
        run_id: "bench".into(),
        expected_customers: u64::from(entry.customers),
    };
    // The functions write only into a cycle their run owns while it settles.
    cycles
        .begin(&adapters::cycles::CycleRecord {
            cycle: m.cycle,
            status: adapters::cycles::CycleStatus::Settling,
            run_id: task.run_id.clone(),
            catalog_version: task.catalog_version.clone(),
            template_version: task.template_version.clone(),
            cutoff: String::new(),
            shard_count: 1,
            manifest_key: String::new(),
            started_at: chrono::Utc::now().to_rfc3339(),
            finished_at: None,
            runs: 1,
            shards_done: 0,
            customers: 0,
            bills: 0,
            not_billable: 0,
            checksum: 0,
            reasons: Vec::new(),
        })
        .await?;
    let mut t_handler = Duration::MAX;
    for _ in 0..a.runs.max(1) {
        // Forget the shard's result so that every run does the whole work.
        ddb.delete_item()
            .table_name(cycles.table())
            .key("cycle", aws_sdk_dynamodb::types::AttributeValue::S(m.cycle.to_string()))
            .key(
                "item",
                aws_sdk_dynamodb::types::AttributeValue::S(adapters::cycles::shard_item(0)),
            )
            .send()
            .await?;
        let ctx = local_run::invocation(Duration::from_secs(900));
        let t = Instant::now();
        let out = settle_shard::handle(&deps, LambdaEvent::new(task.clone(), ctx))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        t_handler = t_handler.min(t.elapsed());
        anyhow::ensure!(
            out.bills as usize == bills,
            "the handler billed {} of {bills}",
            out.bills
        );
    }
    // RenderShard on the settled shard: first render, then a re-render (a no-op), each with
    // the requests the emulator answered for this stack.
    let render_deps = render_shard::Deps::load(
        &config,
        &local_run::settle::local_function_env(&resources, "RenderShardFunction"),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let prefix = resources.prefix().to_owned();
    let mut render_runs = Vec::new();
    for _ in 0..2 {
        let ctx = local_run::invocation(Duration::from_secs(900));
        let before = emulator.request_counts(&prefix).await?;
        let t = Instant::now();
        let out = render_shard::handle(&render_deps, LambdaEvent::new(task.clone(), ctx))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let took = t.elapsed();
        let after = emulator.request_counts(&prefix).await?;
        let delta: std::collections::BTreeMap<String, u64> = after
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect();
        render_runs.push((took, out, delta));
    }
    let deliveries =
        adapters::deliveries::DeliveryStore::new(ddb.clone(), resources.env().required("DELIVERIES_TABLE")?);
    let stored = deliveries.shard(m.cycle, 0).await?;
    let delivery_sizes: Vec<usize> = stored
        .iter()
        .map(|d| deliveries.encode(d).map(|i| item_size(&i)))
        .collect::<Result<_, _>>()?;
    let avg_delivery = delivery_sizes.iter().sum::<usize>() as f64 / stored.len().max(1) as f64;
    let max_delivery = delivery_sizes.iter().copied().max().unwrap_or(0);

    let compute = t_rate + t_encode;
    let batch_writes = bills.div_ceil(BATCH_WRITE_LIMIT);
    // GetItem shard record, GetItem catalog (first invocation of a warm instance only),
    // Query customers (1 MB pages), GetObject usage, BatchWriteItem × n, PutItem shard record.
    let customer_bytes = std::fs::metadata(&customers_path)?.len();
    let query_pages = (customer_bytes as usize).div_ceil(1 << 20).max(1);
    let requests = 1 + 1 + query_pages + 1 + batch_writes + 1;

    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| customers in the shard | {} ({} bills, {} usage lines) |",
        a.customers, bills, settled.usage_lines
    );
    println!(
        "| compute: parse + rate (1 thread) | {:.2} ms ({:.2} µs per bill) |",
        ms(t_rate),
        us(t_rate) / bills as f64
    );
    println!(
        "| compute: encode bills as DynamoDB items | {:.2} ms ({:.2} µs per bill) |",
        ms(t_encode),
        us(t_encode) / bills as f64
    );
    println!("| whole handler against the local emulator | {:.0} ms |", ms(t_handler));
    println!(
        "| of which I/O (emulator) | {:.0} ms ({:.1}%) |",
        ms(t_handler.saturating_sub(compute)),
        100.0 * (1.0 - compute.as_secs_f64() / t_handler.as_secs_f64())
    );
    println!("| bill item size | {avg_item:.0} B average, {max_item} B largest |");
    println!(
        "| write units | {wcu} for {bills} bills ({:.2} per bill) |",
        wcu as f64 / bills as f64
    );
    println!(
        "| requests per shard | {requests}: {query_pages} Query page(s), 1 S3 GET, {batch_writes} BatchWriteItem, 2 GetItem, 1 PutItem |"
    );
    println!("| requests per bill | {:.4} |", requests as f64 / bills as f64);
    for (i, (took, out, delta)) in render_runs.iter().enumerate() {
        let what = if i == 0 {
            "render"
        } else {
            "re-render (nothing changed)"
        };
        let total: u64 = delta.values().sum();
        let list = delta
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "| {what}: whole handler against the local emulator | {:.0} ms; {} created, {} unchanged, {} KB gzip uploaded |",
            ms(*took),
            out.created,
            out.unchanged,
            out.bytes_uploaded / 1024
        );
        println!(
            "| {what}: requests | {total} ({:.3} per invoice): {list} |",
            total as f64 / bills as f64
        );
    }
    println!(
        "| delivery item size | {avg_delivery:.0} B average, {max_delivery} B largest (1 write unit each, + 1 for the Due index) |"
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
