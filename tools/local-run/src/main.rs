//! `local-run month`: the README's main job.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use datagen::{GenConfig, Generator, keyring_from_spec, write_dataset};
use domain::{Cycle, QuietWindow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use local_aws::Emulator;
use local_aws::lambda::LambdaHost;
use local_run::load::{Stores, load_dataset};
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
    #[arg(long, default_value_t = 10_000)]
    customers: u32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Billing cycle to settle, YYYY-MM.
    #[arg(long, default_value = "2026-11")]
    cycle: Cycle,
    #[arg(long, default_value_t = 1000)]
    shard_size: u32,
    /// Output folder (data set and reports).
    #[arg(long, default_value = "out/month")]
    out: PathBuf,
    /// System quiet window (Asia/Seoul).
    #[arg(long, default_value = "21:00-08:00")]
    quiet_window: QuietWindow,
    /// Mock provider latency per send (ms): 1,000 as deployed; less compresses big runs.
    #[arg(long, default_value_t = 1000)]
    provider_latency_ms: u64,
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
    ] {
        for (k, v) in resources.function_env(function) {
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
        Command::Month(a) => month(a).await,
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

/// Runs every slot of the month after the cycle as the schedule would, with
/// the real handlers on a virtual clock: dispatch at the slot's start, then
/// the senders consume both queues until they are empty, their clock at the
/// slot. Prints the per-slot grid, the final states, the duplicates and the
/// forbidden-slot sends, and writes `dispatch.json` and `delivery.json`.
/// False when anything does not reconcile.
async fn deliver_month(
    a: &MonthArgs,
    emulator: &Emulator,
    config: &aws_config::SdkConfig,
    resources: &local_aws::Resources,
    bills: u64,
) -> anyhow::Result<bool> {
    use local_run::send::{VirtualClock, drain};
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
    let t = Instant::now();
    let before = emulator.request_counts(resources.prefix()).await?;
    let mut runs = Vec::with_capacity(slots);
    let mut sends = local_run::send::PollStats::default();
    let mut send_time = std::time::Duration::ZERO;
    for run in domain::dispatch::SlotRun::issue_month(a.cycle) {
        clock.set(run.start() + chrono::Duration::minutes(1));
        let r = local_run::dispatch::run_slot(&deps, run).await?;
        if r.enqueued_email + r.enqueued_sms > 0 {
            let s = Instant::now();
            let (stats, drained) = drain(&pollers, 4, std::time::Duration::from_secs(1800)).await?;
            send_time += s.elapsed();
            anyhow::ensure!(drained, "the queues of {run} did not drain in 30 minutes: {stats:?}");
            sends += &stats;
        }
        pb.inc(1);
        pb.set_message(format!(
            "{run}: {} sent so far",
            sends.report.sent + sends.report.recovered
        ));
        runs.push((run, r));
    }
    pb.finish_and_clear();
    let elapsed = t.elapsed();
    let requests = request_delta(&before, &emulator.request_counts(resources.prefix()).await?);
    let mut total = dispatch_slot::DispatchReport::default();
    for (_, r) in &runs {
        total += r.clone();
    }
    let enqueued = total.enqueued_email + total.enqueued_sms;
    let open = runs.iter().filter(|(_, r)| r.open).count();
    println!(
        "dispatched {enqueued} messages ({} email, {} SMS) in {} runs, one per two-hour slot of {} \
         ({open} open, {} closed by the quiet window {}); held {}, corrupt {}, re-enqueued {}, put back {}",
        total.enqueued_email,
        total.enqueued_sms,
        runs.len(),
        a.cycle.next(),
        runs.len() - open,
        a.quiet_window,
        total.held,
        total.corrupt,
        total.requeued,
        total.reverted
    );
    println!("           enqueued per slot (Asia/Seoul), deferred deliveries counted again in their next slot:");
    print!("{}", local_run::dispatch::slot_grid(&runs));
    let r = &sends.report;
    println!(
        "sent       {} messages handled in {} sender invocations [{send_time:.1?} of sending, mock latency {} ms]: \
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
    for (_, at, dnd) in local_run::seed::sent_times(config, table).await? {
        let allowed = domain::ContactWindow::new(dnd, a.quiet_window).is_ok_and(|w| w.allows(at));
        forbidden += u64::from(!allowed);
    }
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
        requests
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("           [{elapsed:.1?}]");
    let json: Vec<serde_json::Value> = runs
        .iter()
        .map(|(run, r)| serde_json::json!({"slot": run.to_string(), "report": r}))
        .collect();
    let path = a.out.join("dispatch.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&json)?).with_context(|| format!("writing {}", path.display()))?;
    let delivery = serde_json::json!({
        "bills": bills,
        "states": states,
        "accepted_sends": accepted.len(),
        "duplicates": duplicates,
        "forbidden_slot_sends": forbidden,
        "senders": sends,
        "mock_latency_ms": a.provider_latency_ms,
        "requests": requests,
        "seconds": elapsed.as_secs_f64(),
    });
    let path = a.out.join("delivery.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&delivery)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("           reports → {}, dispatch.json", path.display());
    let ok = email + sms + dead == bills
        && waiting == 0
        && duplicates.is_empty()
        && forbidden == 0
        && accepted.len() as u64 == email + sms;
    if !ok {
        println!("           MISMATCH: the month does not reconcile (see above)");
    }
    Ok(ok)
}

/// What was asked between two readings of the emulator's request counts.
fn request_delta(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect()
}

async fn month(a: MonthArgs) -> anyhow::Result<ExitCode> {
    let total = Instant::now();
    let keys = keyring_from_spec(std::env::var("PII_KEYS").ok().as_deref())?;

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
    let Stack {
        emulator,
        config,
        resources,
        stores,
    } = provision_stack(&a.out, "month").await?;

    // 3. Load.
    let report = load_and_report(&data_dir, &stores, a.quiet_window).await?;

    // 4. Settle: the deployable state machine on the emulator's engine, our handlers in-process.
    let host = LambdaHost::start().await?;
    settle::host_settlement(&host, emulator, &config, &resources).await?;
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
    match outcome.finish_output() {
        Some(f) => {
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
            let mut requests = request_delta(&requests_before, &emulator.request_counts(resources.prefix()).await?);
            // This runner's own polling of the execution is not part of the pipeline.
            let polls = requests.remove("states:DescribeExecution").unwrap_or(0);
            let total: u64 = requests.values().sum();
            println!(
                "requests   settle+render: {total} AWS requests, {:.2} per invoice (and {polls} status polls by this runner): {}",
                total as f64 / f.bills.max(1) as f64,
                requests
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if f.bills != report.billable_loaded || rendered.deliveries() != f.bills {
                println!(
                    "           MISMATCH: {} billable customers were loaded, {} bills settled, {} deliveries rendered",
                    report.billable_loaded,
                    f.bills,
                    rendered.deliveries()
                );
                return Ok(ExitCode::FAILURE);
            }
            // 5. Dispatch and delivery: every slot of the month the invoices go out, on a
            //    virtual clock, the senders consuming the queues.
            if !deliver_month(&a, emulator, &config, &resources, f.bills).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        None => {
            println!(
                "settlement execution {name} ended {:?}: {} {}",
                outcome.status,
                outcome.error.unwrap_or_default(),
                outcome.cause.unwrap_or_default()
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    println!("done in {:.1?}", total.elapsed());
    Ok(ExitCode::SUCCESS)
}
