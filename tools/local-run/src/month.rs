//! `local-run month`, phase by phase: generate, provision, load, settle and render on the
//! Step Functions emulator, dispatch and deliver every slot of the month, report.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use datagen::{GenConfig, Generator, Manifest, keyring_from_spec, write_dataset};
use domain::dispatch::SlotRun;
use domain::pii::Keyring;
use domain::settlement::FinishOutput;
use local_aws::lambda::LambdaHost;
use local_run::deliver::Delivery;
use local_run::faults::FaultProfile;
use local_run::report::{
    Evidence, LambdaUse, MonthReport, Phase, Prices, SlowShard, Usage, by_service, project, request_delta,
};
use local_run::settle::{self, RenderedSummary};

use crate::args::MonthArgs;
use crate::stack::{Stack, bar, load_and_report, provision_stack};
use crate::summary::print_summary;

/// The longest a local settlement may take before the runner gives up.
const SETTLE_LIMIT: Duration = Duration::from_secs(3600);

/// The mock provider's failure rate as deployed (template.yaml's `MockFailureRate` default).
const MOCK_FAILURE_RATE: f64 = 0.01;

/// Runs the whole month and writes its report to `a.out`; the exit code says whether it
/// reconciled.
pub(crate) async fn month(a: MonthArgs) -> anyhow::Result<ExitCode> {
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
    let data_dir = a.out.join("data");
    let manifest = generate(&a, keys, &data_dir, &mut phases)?;

    // 2. Provision every resource template.yaml declares, under a fresh prefix.
    let t = Instant::now();
    let stack = provision_stack(&a.out, "month").await?;
    phases.push(Phase::new(
        "provision",
        t.elapsed(),
        stack.resources.iter().count() as u64,
        "resources",
    ));

    // 3. Load.
    let report = load_and_report(&data_dir, &stack.stores, a.quiet_window).await?;
    phases.push(Phase::new("load", report.elapsed, report.customers_loaded, "customers"));

    // 4. Settle: the deployable state machine on the emulator's engine, our handlers in-process.
    let capacity_before = stack.emulator.capacity(stack.resources.prefix()).await?;
    let Some(settled) = settle_and_render(&a, &stack, manifest.shard_count).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let f = &settled.finish;
    let rendered = &settled.rendered;
    phases.push(Phase::new("settle + render", settled.elapsed, f.bills, "invoices"));
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
    let delivery = deliver_month(&a, &stack, f.bills).await?;
    // DynamoDB capacity units of settling, rendering, dispatch and sending (by DynamoDB's rules).
    let capacity = stack
        .emulator
        .capacity(stack.resources.prefix())
        .await?
        .since(&capacity_before);
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
    let mut requests = settled.requests;
    for (k, v) in &delivery.requests {
        *requests.entry(k.clone()).or_insert(0) += v;
    }
    let (lambda, slowest_shards) = lambda_use(&settled.timings, &delivery)?;
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
        capacity: Some(capacity),
    };
    let cost = project(&prices, &shown(&prices_path), &usage, f.bills);
    let sent: u64 = requests.values().sum();
    let month_report = MonthReport {
        cycle: a.cycle.to_string(),
        month_sent: a.cycle.next().to_string(),
        customers: u64::from(manifest.customers),
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
        evidence: Evidence {
            bounce_rate: a.bounce_rate,
            complaint_rate: a.complaint_rate,
            sms_failed_rate: a.sms_failed_rate,
            handled: delivery.evidence.clone(),
        },
        quota_plan: delivery.quota_plan.clone(),
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

/// Writes the month's data set to `data_dir` and prints what it holds.
fn generate(a: &MonthArgs, keys: Keyring, data_dir: &Path, phases: &mut Vec<Phase>) -> anyhow::Result<Manifest> {
    let t = Instant::now();
    let mut cfg = GenConfig::new(a.customers, a.cycle);
    cfg.seed = a.seed;
    cfg.shard_size = a.shard_size;
    cfg.quiet_window = a.quiet_window;
    let generator = Generator::new(cfg, keys)?;
    let pb = bar(u64::from(generator.shard_count()), "generate");
    let summary = write_dataset(&generator, data_dir, 2, &|_| pb.inc(1))?;
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
    Ok(summary.manifest)
}

/// What the settlement left for the rest of the month.
struct Settled {
    /// Serves the settlement's handlers; kept until the month ends.
    _host: LambdaHost,
    timings: Arc<settle::Timings>,
    finish: FinishOutput,
    /// How long the execution took.
    elapsed: Duration,
    rendered: RenderedSummary,
    /// The AWS requests of settling and rendering, without this runner's polling.
    requests: BTreeMap<String, u64>,
}

/// Runs the settlement's execution with the handlers hosted in this process, and prints
/// how it ended, what it rendered and the requests it made. `None` when the execution did
/// not succeed (what it ended with is printed).
async fn settle_and_render(a: &MonthArgs, stack: &Stack, shard_count: u32) -> anyhow::Result<Option<Settled>> {
    let Stack {
        emulator,
        config,
        resources,
        ..
    } = stack;
    let host = LambdaHost::start().await?;
    let timings = Arc::new(settle::Timings::default());
    settle::host_settlement_timed(&host, emulator, config, resources, timings.clone()).await?;
    let sm = resources
        .arn(settle::STATE_MACHINE)
        .with_context(|| format!("template.yaml declares no {}", settle::STATE_MACHINE))?
        .to_owned();
    let sfn = aws_sdk_sfn::Client::new(config);
    let shard_fn = settle::function_name(resources, settle::SHARD)?;
    let render_fn = settle::function_name(resources, settle::RENDER)?;
    let pb = bar(u64::from(shard_count), "settle+render");
    let name = format!("settle-{}", a.cycle);
    let requests_before = emulator.request_counts(resources.prefix()).await?;
    let outcome = settle::settle_cycle(&sfn, &sm, a.cycle, &name, SETTLE_LIMIT, &|_| {
        pb.set_position(host.invocations(&render_fn).min(u64::from(shard_count)));
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
        return Ok(None);
    };
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
            .get(&settle::function_name(resources, settle::BEGIN)?)
            .unwrap_or(&0),
        invocations.get(&shard_fn).unwrap_or(&0),
        invocations.get(&render_fn).unwrap_or(&0),
        invocations
            .get(&settle::function_name(resources, settle::FINISH)?)
            .unwrap_or(&0),
    );
    let rendered = settle::rendered_summary(config, resources, a.cycle).await?;
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
    let settle_total: u64 = requests.values().sum();
    println!(
        "requests   settle+render: {settle_total} AWS requests, {:.2} per invoice (and {polls} status polls by this runner): {}",
        settle_total as f64 / f.bills.max(1) as f64,
        list(&requests)
    );
    Ok(Some(Settled {
        _host: host,
        timings,
        finish: f,
        elapsed: outcome.elapsed,
        rendered,
        requests,
    }))
}

/// The delivery half of the month: every slot of the month after the cycle, as the
/// schedule would run them, under the fault profile asked for (see
/// [`local_run::deliver::deliver`]); writes `dispatch.json`.
async fn deliver_month(a: &MonthArgs, stack: &Stack, bills: u64) -> anyhow::Result<Delivery> {
    let slots: Vec<SlotRun> = SlotRun::issue_month(a.cycle).collect();
    let pb = bar(slots.len() as u64, "deliver");
    let options = local_run::deliver::Options {
        quiet: a.quiet_window,
        provider_latency_ms: a.provider_latency_ms,
        profile: a.fault_profile,
        max_tail_slots: local_run::deliver::TAIL_SLOTS,
        sender_workers: a.sender_workers,
        evidence: providers::EvidenceRates {
            bounce: a.bounce_rate,
            complaint: a.complaint_rate,
            sms_failed: a.sms_failed_rate,
        },
        email_quota_24h: a.email_quota_24h,
    };
    let delivery = local_run::deliver::deliver(
        stack.emulator,
        &stack.config,
        &stack.resources,
        slots,
        bills,
        &options,
        &|run, sends| {
            pb.inc(1);
            pb.set_message(format!(
                "{run}: {} sent so far",
                sends.report.sent + sends.report.recovered
            ));
        },
    )
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

/// Each function's use over the month (the settlement's as timed, dispatch's, the senders'),
/// and the slowest shard of each settlement function.
fn lambda_use(timings: &settle::Timings, delivery: &Delivery) -> anyhow::Result<(Vec<LambdaUse>, Vec<SlowShard>)> {
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
            ..Default::default()
        });
    }
    lambda.push(LambdaUse {
        function: local_run::dispatch::DISPATCH.to_owned(),
        invocations: delivery.dispatch_runs,
        seconds: delivery.dispatch_time.as_secs_f64(),
        memory_mb: memory_mb(local_run::dispatch::DISPATCH)?,
        emulator_bound: true,
        ..Default::default()
    });
    lambda.push(LambdaUse {
        function: format!("{} + {}", local_run::send::SEND_EMAIL, local_run::send::SEND_SMS),
        invocations: delivery.sends.invocations,
        seconds: delivery.sends.handler_ms as f64 / 1000.0,
        memory_mb: memory_mb(local_run::send::SEND_EMAIL)?,
        emulator_bound: false,
        provider_wait_seconds: delivery.sends.provider_wait_ms as f64 / 1000.0,
        provider_latency_ms: delivery.provider_latency_ms,
    });
    Ok((lambda, slowest_shards))
}

/// The price table's path as the report shows it: relative to the project root when under it.
fn shown(prices_path: &Path) -> String {
    local_aws::project_root()
        .ok()
        .and_then(|root| prices_path.strip_prefix(root).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| prices_path.display().to_string())
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
