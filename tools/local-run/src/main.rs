//! `local-run month`: the README's main job.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use datagen::{GenConfig, Generator, keyring_from_spec, write_dataset};
use domain::{Channel, Cycle, QuietWindow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use local_aws::Emulator;
use local_aws::lambda::LambdaHost;
use local_run::load::{Stores, load_dataset};
use local_run::report::{
    LambdaUse, MonthReport, Outcome, Phase, Prices, SlotPoint, SlowShard, Usage, by_service, project,
};
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

/// What the delivery half of the month did.
struct Delivery {
    slots: Vec<SlotPoint>,
    outcome: Outcome,
    sends: local_run::send::PollStats,
    /// The pipeline's requests (this runner's queue-depth checks excluded).
    requests: BTreeMap<String, u64>,
    dispatch_runs: u64,
    enqueued: u64,
    dispatch_time: Duration,
    send_time: Duration,
}

/// Runs every slot of the month after the cycle as the schedule would, with
/// the real handlers on a virtual clock: dispatch at the slot's start, then
/// the senders consume both queues until they are empty, their clock at the
/// slot. Prints the per-slot grid, the final states, the duplicates and the
/// forbidden-slot sends, and writes `dispatch.json`.
async fn deliver_month(
    a: &MonthArgs,
    emulator: &Emulator,
    config: &aws_config::SdkConfig,
    resources: &local_aws::Resources,
    bills: u64,
) -> anyhow::Result<Delivery> {
    use local_run::send::{VirtualClock, depth, drain};
    let mut deps = local_run::dispatch::dispatch_deps(config, resources)?;
    deps.config.quiet = a.quiet_window;
    let clock = VirtualClock::default();
    // The mock as deployed (1% failures), its latency as flagged; retries back off in
    // seconds instead of minutes so that a slot's retries finish while the clock stands.
    let overrides = [
        ("MOCK_LATENCY_MS", a.provider_latency_ms.to_string()),
        ("QUIET_WINDOW", a.quiet_window.to_string()),
        ("RETRY_BASE_DELAY_SECONDS", "1".to_owned()),
        ("RETRY_MAX_DELAY_SECONDS", "4".to_owned()),
    ];
    let pollers = local_run::send::pollers(config, resources, &overrides, &clock)?;
    let slots = domain::dispatch::SlotRun::issue_month(a.cycle).count();
    let pb = bar(slots as u64, "deliver");
    let before = emulator.request_counts(resources.prefix()).await?;
    let mut runs = Vec::with_capacity(slots);
    let mut points = Vec::with_capacity(slots);
    let mut sends = local_run::send::PollStats::default();
    let (mut dispatch_time, mut send_time) = (Duration::ZERO, Duration::ZERO);
    for run in domain::dispatch::SlotRun::issue_month(a.cycle) {
        clock.set(run.start() + chrono::Duration::minutes(1));
        let d = Instant::now();
        let r = local_run::dispatch::run_slot(&deps, run).await?;
        dispatch_time += d.elapsed();
        let mut point = SlotPoint {
            slot: run.to_string(),
            open: r.open,
            enqueued_email: r.enqueued_email,
            enqueued_sms: r.enqueued_sms,
            ..SlotPoint::default()
        };
        if r.enqueued_email + r.enqueued_sms > 0 {
            for p in &pollers {
                let n = depth(&p.sqs, &p.url).await?;
                match p.deps.config.channel {
                    Channel::Email => point.depth_email = n,
                    Channel::Sms => point.depth_sms = n,
                }
            }
            let s = Instant::now();
            let (stats, drained) = drain(&pollers, 4, Duration::from_secs(1800)).await?;
            send_time += s.elapsed();
            anyhow::ensure!(drained, "the queues of {run} did not drain in 30 minutes: {stats:?}");
            sends += &stats;
        }
        pb.inc(1);
        pb.set_message(format!(
            "{run}: {} sent so far",
            sends.report.sent + sends.report.recovered
        ));
        points.push(point);
        runs.push((run, r));
    }
    pb.finish_and_clear();
    let mut requests = request_delta(&before, &emulator.request_counts(resources.prefix()).await?);
    // The queue-depth checks are this runner's (the SQS event source needs none).
    requests.remove("sqs:GetQueueAttributes");
    let mut total = dispatch_slot::DispatchReport::default();
    for (_, r) in &runs {
        total += r.clone();
    }
    let enqueued = total.enqueued_email + total.enqueued_sms;
    let open = runs.iter().filter(|(_, r)| r.open).count();
    println!(
        "dispatched {enqueued} messages ({} email, {} SMS) in {} runs, one per two-hour slot of {} \
         ({open} open, {} closed by the quiet window {}); paused {}, corrupt {}, re-enqueued {}, put back {} [{dispatch_time:.1?}]",
        total.enqueued_email,
        total.enqueued_sms,
        runs.len(),
        a.cycle.next(),
        runs.len() - open,
        a.quiet_window,
        total.paused,
        total.corrupt,
        total.requeued,
        total.reverted
    );
    println!("           enqueued per slot (Asia/Seoul), deferred deliveries counted again in their next slot:");
    print!("{}", local_run::dispatch::slot_grid(&runs));
    let r = &sends.report;
    println!(
        "sent       {} messages handled in {} sender invocations [{send_time:.1?}, mock latency {} ms]: \
         {} sent, {} recovered after a lost answer, {} retried, {} fell back to SMS, {} dead, {} deferred, \
         {} duplicates suppressed, {} parked",
        r.messages,
        sends.invocations,
        a.provider_latency_ms,
        r.sent,
        r.recovered,
        r.retried,
        r.fallback,
        r.dead,
        r.deferred,
        r.duplicates_suppressed,
        r.parked
    );
    let env = resources.function_env(local_run::send::SEND_EMAIL);
    let table = env.get("DELIVERIES_TABLE").context("DELIVERIES_TABLE")?;
    let states = local_run::seed::states(config, table).await?;
    let get = |s: &str| states.get(s).copied().unwrap_or(0);
    let (email, sms, dead) = (get("SENT_EMAIL"), get("SENT_SMS"), get("DEAD"));
    let waiting = states.values().sum::<u64>() - email - sms - dead;
    let log = providers::DynamoLog::new(
        adapters::dynamodb_client(config),
        env.get("MOCK_SENDS_TABLE").context("MOCK_SENDS_TABLE")?.clone(),
    );
    let accepted = log.count_by_key().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let duplicates = providers::duplicates_of(&accepted);
    let mut forbidden = 0u64;
    let index: BTreeMap<String, usize> = points.iter().enumerate().map(|(i, p)| (p.slot.clone(), i)).collect();
    for sent in local_run::seed::sends(config, table).await? {
        let allowed = domain::ContactWindow::new(sent.dnd, a.quiet_window).is_ok_and(|w| w.allows(sent.at));
        forbidden += u64::from(!allowed);
        let slot = domain::dispatch::SlotRun::containing(sent.at).to_string();
        if let Some(p) = index.get(&slot).and_then(|&i| points.get_mut(i)) {
            match sent.state.as_str() {
                "SENT_SMS" => p.sent_sms += 1,
                "SENT_EMAIL" => p.sent_email += 1,
                _ => {}
            }
        }
    }
    let outcome = Outcome {
        bills,
        sent_email: email,
        sent_sms: sms,
        dead,
        waiting,
        accepted_sends: accepted.len() as u64,
        duplicates: duplicates.len() as u64,
        forbidden_slot_sends: forbidden,
    };
    println!(
        "final      {email} SENT_EMAIL + {sms} SENT_SMS + {dead} DEAD + {waiting} still waiting = {} of {bills} bills; \
         {} accepted sends at the mock providers, {} keys accepted more than once, {forbidden} sends in a forbidden slot",
        email + sms + dead + waiting,
        accepted.len(),
        duplicates.len()
    );
    let sum: u64 = requests.values().sum();
    println!(
        "requests   dispatch + delivery: {sum} AWS requests, {:.2} per bill: {}",
        sum as f64 / bills.max(1) as f64,
        list(&requests)
    );
    let json: Vec<serde_json::Value> = runs
        .iter()
        .map(|(run, r)| serde_json::json!({"slot": run.to_string(), "report": r}))
        .collect();
    let path = a.out.join("dispatch.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&json)?).with_context(|| format!("writing {}", path.display()))?;
    Ok(Delivery {
        slots: points,
        outcome,
        sends,
        requests,
        dispatch_runs: runs.len() as u64,
        enqueued,
        dispatch_time,
        send_time,
    })
}

/// `op n, op n, …`
fn list(requests: &BTreeMap<String, u64>) -> String {
    requests
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What was asked between two readings of the emulator's request counts.
fn request_delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect()
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
    if !delivery.outcome.reconciled() {
        problems.push("the final states, the accepted sends and the bills do not match (see above)".to_owned());
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
    let o = &delivery.outcome;
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
