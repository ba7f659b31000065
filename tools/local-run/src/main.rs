//! `local-run month`: the README's main job.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use datagen::{GenConfig, Generator, keyring_from_spec, write_dataset};
use domain::dispatch::SlotRun;
use domain::{Cycle, QuietWindow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use local_aws::Emulator;
use local_aws::lambda::LambdaHost;
use local_run::deliver::Delivery;
use local_run::faults::FaultProfile;
use local_run::load::{Stores, load_dataset};
use local_run::report::{LambdaUse, MonthReport, Phase, Prices, SlowShard, Usage, by_service, project, request_delta};
use local_run::settle;

#[derive(Parser)]
#[command(
    name = "local-run",
    version,
    about = "Run the billing month locally against the AWS emulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a population, provision the stack, load the data and settle the month.
    Month(MonthArgs),
    /// Provision a fresh stack and load a data set written by `datagen generate` into it.
    Load(LoadArgs),
}

#[derive(Args)]
struct LoadArgs {
    /// Data set directory (holding manifest.json).
    #[arg(long, default_value = "out/data")]
    dir: PathBuf,
    /// Where the stack's variables are written (stack.env).
    #[arg(long, default_value = "out/load")]
    out: PathBuf,
    /// System quiet window (Asia/Seoul) customers are checked against.
    #[arg(long, default_value = "21:00-08:00")]
    quiet_window: QuietWindow,
}

#[derive(Args)]
struct MonthArgs {
    /// Customers to generate (up to 1,000,000; the emulator, not our code, sets the pace).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    customers: u32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Billing cycle to settle, YYYY-MM.
    #[arg(long, default_value = "2026-11")]
    cycle: Cycle,
    /// Customers per shard (one usage file and one Distributed Map item each).
    #[arg(long, default_value_t = 500)]
    shard_size: u32,
    /// Output folder (data set, stack variables and the report).
    #[arg(long, default_value = "out/month")]
    out: PathBuf,
    /// System quiet window (Asia/Seoul).
    #[arg(long, default_value = "21:00-08:00")]
    quiet_window: QuietWindow,
    /// Mock provider latency per send (ms): 1,000 as deployed; less compresses big runs
    /// (the report says so).
    #[arg(long, default_value_t = 1000)]
    provider_latency_ms: u64,
    /// Price table for the cost projection (default: infra/prices.json).
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Faults switched on while the invoices go out (dispatch and senders), each bounded:
    /// lost DynamoDB answers, throttling, slow invoice reads, provider hangs (with a provider
    /// that can be asked, or one that cannot), or all of them. The report counts what fired.
    #[arg(long, value_enum, default_value_t = FaultProfile::None)]
    fault_profile: FaultProfile,
}

/// A provisioned stack in the emulator and the stores the loader writes to.
struct Stack {
    emulator: &'static Emulator,
    config: aws_config::SdkConfig,
    resources: local_aws::Resources,
    stores: Stores,
}

/// Provisions every resource template.yaml declares under a fresh prefix and
/// writes the stack's variables to `out/stack.env` (for `cargo lambda`).
async fn provision_stack(out: &std::path::Path, name: &str) -> anyhow::Result<Stack> {
    let t = Instant::now();
    let emulator = Emulator::shared().await?;
    let config = emulator.sdk_config().await;
    let prefix = local_aws::unique_prefix(name);
    let resources = local_aws::provision(&config, &prefix).await?;
    let stores = Stores::of(&config, resources.env())?;
    // The stack's variables and every function's own (as template.yaml gives them).
    let mut env = resources.env().clone();
    for function in [
        settle::BEGIN,
        settle::SHARD,
        settle::RENDER,
        settle::FINISH,
        local_run::dispatch::DISPATCH,
        local_run::send::SEND_EMAIL,
        local_run::send::SEND_SMS,
        "RecordFailureFunction",
        "AdminApiFunction",
    ] {
        // As template.yaml gives them, and the contact-data keyring a deployed stack
        // resolves from Secrets Manager (the development keyring unless PII_KEYS is set).
        for (k, v) in settle::local_function_env(&resources, function) {
            env.entry(k).or_insert(v);
        }
    }
    std::fs::create_dir_all(out)?;
    let env_file = out.join("stack.env");
    let mut exports = format!("export AWS_ENDPOINT_URL={}\n", emulator.endpoint_url());
    for (k, v) in env {
        exports.push_str(&format!("export {k}={v}\n"));
    }
    std::fs::write(&env_file, exports).with_context(|| format!("cannot write {}", env_file.display()))?;
    println!(
        "provisioned {} resources from template.yaml as {prefix}-* on {} (variables: {}) [{:.1?}]",
        resources.iter().count(),
        emulator.endpoint_url(),
        env_file.display(),
        t.elapsed()
    );
    Ok(Stack {
        emulator,
        config,
        resources,
        stores,
    })
}

/// Loads a data set and prints what happened, rejected records included.
async fn load_and_report(
    dir: &std::path::Path,
    stores: &Stores,
    quiet: QuietWindow,
) -> anyhow::Result<local_run::load::LoadReport> {
    let manifest = datagen::Manifest::load(dir)?;
    let pb = bar(u64::from(manifest.shard_count), "load");
    let keys = keyring_from_spec(std::env::var("PII_KEYS").ok().as_deref())?;
    let report = load_dataset(dir, stores, &keys, quiet, 4, &|_| pb.inc(1)).await?;
    pb.finish_and_clear();
    println!(
        "loaded     {} customers, {} usage files ({} bytes), catalog {} ({}); {} DynamoDB and {} S3 requests [{:.1?}]",
        report.customers_loaded,
        report.usage_files,
        report.usage_bytes,
        report.catalog_version,
        match report.catalog_outcome {
            Some(adapters::PutOutcome::Created) => "published",
            _ => "already published",
        },
        report.dynamodb_requests,
        report.s3_requests,
        report.elapsed
    );
    if !report.rejected.is_empty() {
        println!("rejected   {} customer records:", report.rejected.len());
        for r in report.rejected.iter().take(10) {
            println!("           {r}");
        }
        if report.rejected.len() > 10 {
            println!("           … and {} more", report.rejected.len() - 10);
        }
    }
    Ok(report)
}

/// The longest a local settlement may take before the runner gives up.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(3600);

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_owned());
    pb
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // The senders warn about every failed send (1% with the mock, by design); the run
                // reports them as counts instead. RUST_LOG=warn shows them.
                "warn,sender=error".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Month(a) => {
            let out = a.out.clone();
            tokio::select! {
                r = month(a) => r,
                _ = tokio::signal::ctrl_c() => {
                    // Dropping the run stops its tasks; what it wrote so far stays in the
                    // emulator under this run's prefix and is not reused.
                    eprintln!(
                        "\ninterrupted: nothing more is sent. A re-run starts fresh: a new stack in the \
                         emulator, the same data set (generation is deterministic); {} is overwritten.",
                        out.display()
                    );
                    Ok(ExitCode::from(130))
                }
            }
        }
        Command::Load(a) => {
            let stack = provision_stack(&a.out, "load").await?;
            let report = load_and_report(&a.dir, &stack.stores, a.quiet_window).await?;
            Ok(if report.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

/// The delivery half of the month: every slot of the month after the cycle, as the
/// schedule would run them, under the fault profile asked for (see
/// [`local_run::deliver::deliver`]); writes `dispatch.json`.
async fn deliver_month(
    a: &MonthArgs,
    emulator: &Emulator,
    config: &aws_config::SdkConfig,
    resources: &local_aws::Resources,
    bills: u64,
) -> anyhow::Result<Delivery> {
    let slots: Vec<SlotRun> = SlotRun::issue_month(a.cycle).collect();
    let pb = bar(slots.len() as u64, "deliver");
    let options = local_run::deliver::Options {
        quiet: a.quiet_window,
        provider_latency_ms: a.provider_latency_ms,
        profile: a.fault_profile,
        max_tail_slots: local_run::deliver::TAIL_SLOTS,
    };
    let delivery = local_run::deliver::deliver(emulator, config, resources, slots, bills, &options, &|run, sends| {
        pb.inc(1);
        pb.set_message(format!(
            "{run}: {} sent so far",
            sends.report.sent + sends.report.recovered
        ));
    })
    .await;
    pb.finish_and_clear();
    let delivery = delivery?;
    let json: Vec<serde_json::Value> = delivery
        .runs
        .iter()
        .map(|(run, r)| serde_json::json!({"slot": run.to_string(), "report": r}))
        .collect();
    let path = a.out.join("dispatch.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&json)?).with_context(|| format!("writing {}", path.display()))?;
    Ok(delivery)
}

/// `op n, op n, …`
fn list(requests: &BTreeMap<String, u64>) -> String {
    requests
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The memory template.yaml gives a function (MB).
fn memory_mb(logical_id: &str) -> anyhow::Result<u64> {
    local_aws::project_template()?
        .function_memory_mb(logical_id)
        .with_context(|| format!("template.yaml gives {logical_id} no MemorySize"))
}

async fn month(a: MonthArgs) -> anyhow::Result<ExitCode> {
    let total = Instant::now();
    let keys = keyring_from_spec(std::env::var("PII_KEYS").ok().as_deref())?;
    let prices_path = match &a.prices {
        Some(p) => p.clone(),
        None => Prices::path()?,
    };
    // Read first: a broken price table should not cost a whole run.
    let prices = Prices::load(&prices_path)?;
    let mut phases = Vec::new();

    // 1. Generate (deterministic: a re-run writes the same bytes).
    let t = Instant::now();
    let mut cfg = GenConfig::new(a.customers, a.cycle);
    cfg.seed = a.seed;
    cfg.shard_size = a.shard_size;
    cfg.quiet_window = a.quiet_window;
    let generator = Generator::new(cfg, keys)?;
    let data_dir = a.out.join("data");
    let pb = bar(u64::from(generator.shard_count()), "generate");
    let summary = write_dataset(&generator, &data_dir, 2, &|_| pb.inc(1))?;
    pb.finish_and_clear();
    let generated = t.elapsed();
    phases.push(Phase::new(
        "generate",
        generated,
        u64::from(summary.manifest.customers),
        "customers",
    ));
    println!(
        "generated  {} customers ({} billable), {} usage lines in {} shards → {} [{:.1?}]",
        summary.manifest.customers,
        summary.manifest.billable_customers,
        summary.manifest.usage_lines,
        summary.manifest.shard_count,
        data_dir.display(),
        generated
    );

    // 2. Provision every resource template.yaml declares, under a fresh prefix.
    let t = Instant::now();
    let Stack {
        emulator,
        config,
        resources,
        stores,
    } = provision_stack(&a.out, "month").await?;
    phases.push(Phase::new(
        "provision",
        t.elapsed(),
        resources.iter().count() as u64,
        "resources",
    ));

    // 3. Load.
    let report = load_and_report(&data_dir, &stores, a.quiet_window).await?;
    phases.push(Phase::new("load", report.elapsed, report.customers_loaded, "customers"));

    // 4. Settle: the deployable state machine on the emulator's engine, our handlers in-process.
    let host = LambdaHost::start().await?;
    let timings = Arc::new(settle::Timings::default());
    settle::host_settlement_timed(&host, emulator, &config, &resources, timings.clone()).await?;
    let sm = resources
        .arn(settle::STATE_MACHINE)
        .with_context(|| format!("template.yaml declares no {}", settle::STATE_MACHINE))?
        .to_owned();
    let sfn = aws_sdk_sfn::Client::new(&config);
    let shard_fn = settle::function_name(&resources, settle::SHARD)?;
    let render_fn = settle::function_name(&resources, settle::RENDER)?;
    let pb = bar(u64::from(summary.manifest.shard_count), "settle+render");
    let name = format!("settle-{}", a.cycle);
    let requests_before = emulator.request_counts(resources.prefix()).await?;
    let outcome = settle::settle_cycle(&sfn, &sm, a.cycle, &name, SETTLE_LIMIT, &|_| {
        pb.set_position(
            host.invocations(&render_fn)
                .min(u64::from(summary.manifest.shard_count)),
        );
    })
    .await?;
    pb.finish_and_clear();
    let invocations = host.all_invocations();
    let Some(f) = outcome.finish_output() else {
        println!(
            "settlement execution {name} ended {:?}: {} {}",
            outcome.status,
            outcome.error.unwrap_or_default(),
            outcome.cause.unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    };
    phases.push(Phase::new("settle + render", outcome.elapsed, f.bills, "invoices"));
    println!(
        "settled    cycle {}: {:?}, {} bills for {} customers ({} not billable) in {}/{} shards, \
         checksum {} [{:.1?}]",
        f.cycle,
        f.status,
        f.bills,
        f.customers,
        f.not_billable,
        f.shards_done,
        f.shards,
        domain::Krw(f.checksum),
        outcome.elapsed
    );
    println!(
        "           execution {name}: {:?}; Lambda invocations: {} begin, {} settle-shard, {} render-shard, {} finish",
        outcome.status,
        invocations
            .get(&settle::function_name(&resources, settle::BEGIN)?)
            .unwrap_or(&0),
        invocations.get(&shard_fn).unwrap_or(&0),
        invocations.get(&render_fn).unwrap_or(&0),
        invocations
            .get(&settle::function_name(&resources, settle::FINISH)?)
            .unwrap_or(&0),
    );
    let rendered = settle::rendered_summary(&config, &resources, a.cycle).await?;
    println!(
        "rendered   {} invoices in {} shards with template {} ({} KB gzip HTML in S3); deliveries READY: {}",
        rendered.deliveries(),
        rendered.shards_rendered,
        rendered
            .template_versions
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        rendered.bytes_uploaded / 1024,
        rendered.ready()
    );
    let mut settle_requests = request_delta(&requests_before, &emulator.request_counts(resources.prefix()).await?);
    // This runner's own polling of the execution is not part of the pipeline.
    let polls = settle_requests.remove("states:DescribeExecution").unwrap_or(0);
    let settle_total: u64 = settle_requests.values().sum();
    println!(
        "requests   settle+render: {settle_total} AWS requests, {:.2} per invoice (and {polls} status polls by this runner): {}",
        settle_total as f64 / f.bills.max(1) as f64,
        list(&settle_requests)
    );
    let mut problems = Vec::new();
    if f.bills != report.billable_loaded || rendered.deliveries() != f.bills {
        problems.push(format!(
            "{} billable customers were loaded, {} bills settled, {} deliveries rendered",
            report.billable_loaded,
            f.bills,
            rendered.deliveries()
        ));
        println!("           MISMATCH: {}", problems.join("; "));
        return Ok(ExitCode::FAILURE);
    }

    // 5. Dispatch and delivery: every slot of the month the invoices go out, on a
    //    virtual clock, the senders consuming the queues.
    let delivery = deliver_month(&a, emulator, &config, &resources, f.bills).await?;
    phases.push(Phase::new(
        "dispatch",
        delivery.dispatch_time,
        delivery.enqueued,
        "messages",
    ));
    phases.push(Phase::new(
        "send",
        delivery.send_time,
        delivery.outcome.sent_email + delivery.outcome.sent_sms,
        "deliveries",
    ));
    let o = &delivery.outcome;
    if !o.holds() {
        problems.push(
            "the final states, the accepted sends and the bills do not match, or a waiting delivery is not in the \
             Due index (see above)"
                .to_owned(),
        );
    } else if a.fault_profile == FaultProfile::None && !o.reconciled() {
        problems.push(format!(
            "without faults every bill ends: {} waiting, {} unconfirmed",
            o.waiting, o.unconfirmed
        ));
    }

    // 6. The report.
    let mut requests = settle_requests;
    for (k, v) in &delivery.requests {
        *requests.entry(k.clone()).or_insert(0) += v;
    }
    let mut lambda = Vec::new();
    let mut slowest_shards = Vec::new();
    for t in timings.summary() {
        if t.slowest_shard.is_some() {
            slowest_shards.push(SlowShard {
                function: t.logical_id.clone(),
                shard: t.slowest_shard,
                seconds: t.slowest_seconds,
                mean_seconds: t.seconds / t.invocations.max(1) as f64,
            });
        }
        lambda.push(LambdaUse {
            memory_mb: memory_mb(&t.logical_id)?,
            function: t.logical_id,
            invocations: t.invocations,
            seconds: t.seconds,
            emulator_bound: true,
        });
    }
    lambda.push(LambdaUse {
        function: local_run::dispatch::DISPATCH.to_owned(),
        invocations: delivery.dispatch_runs,
        seconds: delivery.dispatch_time.as_secs_f64(),
        memory_mb: memory_mb(local_run::dispatch::DISPATCH)?,
        emulator_bound: true,
    });
    lambda.push(LambdaUse {
        function: format!("{} + {}", local_run::send::SEND_EMAIL, local_run::send::SEND_SMS),
        invocations: delivery.sends.invocations,
        seconds: delivery.sends.handler_ms as f64 / 1000.0,
        memory_mb: memory_mb(local_run::send::SEND_EMAIL)?,
        emulator_bound: false,
    });
    let usage = Usage {
        requests: requests.clone(),
        // Every dispatch run queries each bucket of its due date, whatever the population.
        fixed_requests: delivery
            .requests
            .get_key_value("dynamodb:Query")
            .map(|(k, v)| (k.clone(), *v))
            .into_iter()
            .collect(),
        lambda: lambda.clone(),
        // BeginCycle, AlreadySettled?, SettleShards, FinishCycle, Settled?, Settled; SettleShard
        // and RenderShard in each shard's child execution.
        state_transitions: 6 + 2 * u64::from(f.shards),
        // The dispatch schedule's runs and the settlement's.
        schedule_runs: delivery.dispatch_runs + 1,
        stored_bytes: rendered.bytes_uploaded,
        emails: o.sent_email,
        sms: o.sent_sms,
    };
    let shown = local_aws::project_root()
        .ok()
        .and_then(|root| prices_path.strip_prefix(root).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| prices_path.display().to_string());
    let cost = project(&prices, &shown, &usage, f.bills);
    let sent: u64 = requests.values().sum();
    let month_report = MonthReport {
        cycle: a.cycle.to_string(),
        month_sent: a.cycle.next().to_string(),
        customers: u64::from(summary.manifest.customers),
        billable: f.bills,
        shards: u64::from(f.shards),
        seed: a.seed,
        quiet_window: a.quiet_window.to_string(),
        provider_latency_ms: a.provider_latency_ms,
        latency_compressed: a.provider_latency_ms < 1000,
        provider_failure_rate: MOCK_FAILURE_RATE,
        ok: problems.is_empty(),
        problems,
        outcome: o.clone(),
        faults: delivery.faults.clone(),
        phases,
        slowest_shards,
        slots: delivery.slots,
        senders: serde_json::to_value(&delivery.sends)?,
        requests_by_service: by_service(&requests),
        requests_per_invoice: sent as f64 / f.bills.max(1) as f64,
        requests,
        lambda,
        cost,
        seconds: total.elapsed().as_secs_f64(),
    };
    let written = month_report.write(&a.out)?;
    print_summary(&month_report, &written);
    Ok(if month_report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The mock provider's failure rate as deployed (template.yaml's `MockFailureRate` default).
const MOCK_FAILURE_RATE: f64 = 0.01;

/// The end of the terminal output: phases, slowest shards, cost, where the report is.
fn print_summary(r: &MonthReport, written: &[PathBuf]) {
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|p| format!("{} {:.1} s ({:.0} {}/s)", p.name, p.seconds, p.per_second(), p.unit))
        .collect();
    println!("phases     {}", phases.join(" · "));
    let slow: Vec<String> = r
        .slowest_shards
        .iter()
        .map(|s| {
            format!(
                "{} shard {} in {:.2} s (mean {:.2} s)",
                s.function,
                s.shard.map_or("-".to_owned(), |n| n.to_string()),
                s.seconds,
                s.mean_seconds
            )
        })
        .collect();
    println!("slowest    {}", slow.join("; "));
    let c = &r.cost;
    let mut by_service: BTreeMap<&str, f64> = BTreeMap::new();
    for l in &c.aws {
        *by_service.entry(l.service.as_str()).or_insert(0.0) += l.usd_per_million_invoices;
    }
    println!(
        "cost       ≈ ${:.2} per 1,000,000 invoices on AWS at the list prices of {} ({}, {}): {}",
        c.aws_usd_per_million_invoices,
        c.prices_as_of,
        c.region,
        c.price_file,
        by_service
            .iter()
            .map(|(k, v)| format!("{k} ${v:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let fees: Vec<String> = c
        .message_fees
        .iter()
        .map(|l| format!("{} ${:.2}", l.service, l.usd_per_million_invoices))
        .collect();
    println!(
        "           message fees separately: {}{}",
        fees.join(", "),
        if c.message_fees_usd_per_million_invoices.is_none() {
            " (SMS unpriced: set sms.per_message in the price table)"
        } else {
            ""
        }
    );
    if !r.ok {
        println!("MISMATCH   {}", r.problems.join("; "));
    }
    let names: Vec<String> = written
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    println!(
        "report     {} in {} (open month.html in a browser)",
        names.join(", "),
        written
            .first()
            .and_then(|p| p.parent())
            .map_or(String::new(), |d| d.display().to_string())
    );
    println!("{} in {:.1} s", if r.ok { "done" } else { "FAILED" }, r.seconds);
}
