//! Monthly settlement end to end: the deployable state machine on the
//! emulator's Step Functions engine, the real handlers, the real stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use adapters::cycles::{CycleStatus, ShardStatus};
use aws_sdk_sfn::types::ExecutionStatus;
use domain::settlement::FinishStatus;
use domain::{Cycle, LineKind};
use integration_tests::setup::{loaded, rehost};
use integration_tests::{CYCLE, DataSet, Month, append, count_items, digest, expected_bills, generate, usage_path};
use local_aws::lambda::{FunctionError, Handler, Interceptor};
use local_run::settle::{ExecutionOutcome, RENDER, SHARD, local_function_env};

fn cycle() -> Cycle {
    CYCLE.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settles_one_bill_per_billable_customer_and_a_rerun_changes_nothing() {
    let data = generate(2_000, 250).unwrap(); // 8 shards
    let month = Month::new("settle-once").await.unwrap();
    let load = month.load(&data).await.unwrap();
    assert!(load.rejected.is_empty(), "{:?}", load.rejected);

    let first = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(first.status, ExecutionStatus::Succeeded, "{first:?}");
    let f = first.finish_output().unwrap();
    assert_eq!(f.status, FinishStatus::Settled);
    assert_eq!((f.shards, f.shards_done), (8, 8));
    assert_eq!(f.customers, 2_000);

    // Exactly one bill per billable customer, each equal to the shared rules
    // applied to the generated files here, without the functions.
    let expected = expected_bills(&data).unwrap();
    let bills = month.all_bills(8).await.unwrap();
    assert_eq!(bills.len(), expected.len());
    assert_eq!(f.bills, expected.len() as u64);
    assert_eq!(u64::from(data.manifest.billable_customers), f.bills);
    for b in &bills {
        assert_eq!(
            Some(b),
            expected.get(b.customer_id.as_str()),
            "bill of {}",
            b.customer_id
        );
    }
    let checksum: i64 = expected.values().map(|b| b.total.won()).sum();
    assert_eq!(f.checksum, checksum);
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_eq!(record.status, CycleStatus::Settled);
    assert_eq!(
        (record.bills, record.checksum, record.catalog_version.as_str()),
        (f.bills, checksum, "2026-v1")
    );

    // Customers with no usage get fixed-fee bills; cancelled before the cycle, none.
    let mut used: std::collections::HashSet<String> = Default::default();
    for s in 0..8 {
        let text = std::fs::read_to_string(usage_path(&data, s)).unwrap();
        used.extend(
            text.lines()
                .skip(1)
                .filter_map(|l| l.split(',').next())
                .map(String::from),
        );
    }
    let no_usage: Vec<_> = bills
        .iter()
        .filter(|b| !used.contains(b.customer_id.as_str()))
        .collect();
    assert!(!no_usage.is_empty(), "the generator makes zero-usage customers");
    for b in no_usage {
        assert!(b.lines.iter().all(|l| l.kind != LineKind::Usage), "{}", b.customer_id);
        assert!(b.total.won() > 0);
    }
    assert!(
        f.not_billable > 0,
        "the generator cancels some customers before the cycle"
    );
    let billed: std::collections::HashSet<&str> = bills.iter().map(|b| b.customer_id.as_str()).collect();
    for s in 0..8 {
        let shard = month.customers.shard(s).await.unwrap();
        for c in shard.customers.iter().filter(|c| !c.is_billable(cycle())) {
            assert!(
                !billed.contains(c.customer_id.as_str()),
                "{} has no service in the cycle",
                c.customer_id
            );
        }
    }

    // Starting it again is harmless: the settled cycle short-circuits.
    let again = month.settle("settle-2026-11-again").await.unwrap();
    assert_eq!(again.status, ExecutionStatus::Succeeded);
    assert!(
        again.output.as_deref().unwrap_or_default().contains("ALREADY_SETTLED"),
        "{again:?}"
    );

    // Wipe the progress records and settle the whole month again: every bill is
    // recomputed and rewritten, byte for byte the same, with no extra item.
    let before = digest(&bills);
    let ddb = month.resources.table("CyclesTable").unwrap().to_owned();
    let client = adapters::dynamodb_client(&month.config);
    // (A handful of items: one page.)
    let items = client
        .scan()
        .table_name(&ddb)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    for item in items {
        client
            .delete_item()
            .table_name(&ddb)
            .key("cycle", item["cycle"].clone())
            .key("item", item["item"].clone())
            .send()
            .await
            .unwrap();
    }
    let rerun = month.settle("settle-2026-11-rerun").await.unwrap();
    assert_eq!(rerun.status, ExecutionStatus::Succeeded, "{rerun:?}");
    let again = month.all_bills(8).await.unwrap();
    assert_eq!(digest(&again), before);
    let stored = count_items(&month.config, month.resources.table("BillsTable").unwrap())
        .await
        .unwrap();
    assert_eq!(stored, bills.len() as u64);
}

/// Fails the first attempt of one shard after the handler did its work (a
/// crash before the answer), and pauses every shard after each chunk so that
/// the map's retries resume shards mid-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_failing_or_pausing_midway_ends_with_identical_bills() {
    let data = generate(600, 200).unwrap(); // 3 shards
    let clean = Month::new("settle-clean").await.unwrap();
    clean.load(&data).await.unwrap();
    assert_eq!(clean.settle("clean").await.unwrap().status, ExecutionStatus::Succeeded);
    let clean_digest = digest(&clean.all_bills(3).await.unwrap());

    let month = Month::new("settle-faults").await.unwrap();
    month.load(&data).await.unwrap();
    // Re-host SettleShard with small chunks and a deadline margin that always
    // trips: every invocation writes one chunk of 64 bills and pauses.
    let mut deps = settle_shard::Deps::load(&month.config, &month.resources.function_env(SHARD))
        .await
        .unwrap();
    deps.config.chunk = 64;
    deps.config.deadline_margin = std::time::Duration::from_secs(600);
    rehost(&month, SHARD, deps, |deps, ev| async move {
        settle_shard::handle(&deps, ev).await
    })
    .await
    .unwrap();
    // Shard 1: the first call does its work, then "crashes" with a transient error.
    let crashed = Arc::new(AtomicU32::new(0));
    let c = crashed.clone();
    let interceptor: Interceptor = Arc::new(move |payload: serde_json::Value, handler: Handler| {
        let c = c.clone();
        Box::pin(async move {
            let is_shard_1 = payload["shard"] == 1;
            let out = handler(payload).await;
            if is_shard_1 && c.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(FunctionError::new("Transient", "injected: lost the answer"));
            }
            out
        })
    });
    month.host.intercept(&month.function(SHARD), interceptor).unwrap();

    let run = month.settle("faults").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    assert!(crashed.load(Ordering::SeqCst) >= 1);
    // 200 customers per shard in chunks of 64 → 4 invocations per shard, plus the crash.
    assert!(
        month.host.invocations(&month.function(SHARD)) >= 12,
        "{:?}",
        month.host.all_invocations()
    );
    let bills = month.all_bills(3).await.unwrap();
    assert_eq!(digest(&bills), clean_digest);
    for s in 0..3 {
        let r = month.cycles.get_shard(cycle(), s).await.unwrap().unwrap();
        assert_eq!(r.status, ShardStatus::Done);
        assert!(r.attempts >= 4, "shard {s} settled in {} attempts", r.attempts);
    }
}

/// A month of 400 customers in 2 shards, loaded into a fresh stack named after `name` and
/// settled once (execution `settle-2026-11`) with SettleShard failing hard for shard 0 (see
/// [`fail_shard_0`]).
async fn settled_with_shard_0_failing(name: &str) -> (DataSet, Month, ExecutionOutcome) {
    let (data, month) = loaded(name, 400, 200).await.unwrap();
    fail_shard_0(&month);
    let failed = month.settle("settle-2026-11").await.unwrap();
    (data, month, failed)
}

/// Makes SettleShard fail hard for shard 0 (the others run as deployed) until the interceptor
/// is cleared.
fn fail_shard_0(month: &Month) {
    let interceptor: Interceptor = Arc::new(move |payload: serde_json::Value, handler: Handler| {
        Box::pin(async move {
            if payload["shard"] == 0 {
                return Err(FunctionError::new("StoreError", "injected: permanent failure"));
            }
            handler(payload).await
        })
    });
    month.host.intercept(&month.function(SHARD), interceptor).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_shard_fails_the_cycle_and_a_new_run_completes_it() {
    // Shard 0 fails hard on this run.
    let (data, month, failed) = settled_with_shard_0_failing("settle-redrive").await;
    // The emulator does not fail a Distributed Map when a child fails, so the
    // reconciliation is what must fail the run (on AWS the map fails first).
    assert_eq!(failed.status, ExecutionStatus::Failed, "{failed:?}");
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    if failed.error.as_deref() == Some("CycleReconciliationFailed") {
        assert_eq!(record.status, CycleStatus::Failed);
        assert!(
            record.reasons.iter().any(|r| r == "shard 0: not settled"),
            "{:?}",
            record.reasons
        );
    } else {
        assert_eq!(
            record.status,
            CycleStatus::Settling,
            "the failed run still owns the cycle"
        );
    }
    assert!(month.bills.count(cycle(), 0).await.unwrap() == 0);

    // Fixed: a new run takes the cycle back, skips the settled shard, completes.
    month.host.clear_interceptor(&month.function(SHARD));
    let run = month.settle("settle-2026-11-retry").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    let f = run.finish_output().unwrap();
    assert_eq!(f.bills, u64::from(data.manifest.billable_customers));
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_eq!(record.status, CycleStatus::Settled);
    assert_eq!(record.runs, 2);
    let expected = expected_bills(&data).unwrap();
    let bills = month.all_bills(2).await.unwrap();
    assert_eq!(bills.len(), expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_settle_once() {
    let (data, month) = loaded("settle-concurrent", 400, 200).await.unwrap();
    let c = cycle();
    let a = local_run::settle::start_settlement(&month.sfn, &month.state_machine, c, "run-a")
        .await
        .unwrap();
    let b = local_run::settle::start_settlement(&month.sfn, &month.state_machine, c, "run-b")
        .await
        .unwrap();
    let limit = std::time::Duration::from_secs(300);
    let (ra, rb) = tokio::join!(
        local_run::settle::wait_for(&month.sfn, &a, limit, &|_| {}),
        local_run::settle::wait_for(&month.sfn, &b, limit, &|_| {})
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let record = month.cycles.get(c).await.unwrap().unwrap();
    assert_eq!(record.status, CycleStatus::Settled);
    assert_eq!(record.runs, 1, "no run took the cycle from the other");
    let (winner, loser) = if record.run_id == ra.execution_arn {
        (&ra, &rb)
    } else {
        (&rb, &ra)
    };
    assert_eq!(record.run_id, winner.execution_arn);
    assert_eq!(winner.status, ExecutionStatus::Succeeded, "{winner:?}");
    match loser.status {
        // Refused while the winner was running …
        ExecutionStatus::Failed => {
            assert_eq!(loser.error.as_deref(), Some("CycleBusy"), "{loser:?}");
            assert!(
                loser.cause.as_deref().unwrap_or_default().contains("still running"),
                "{loser:?}"
            );
        }
        // … or it began after the winner had finished.
        _ => assert!(
            loser.output.as_deref().unwrap_or_default().contains("ALREADY_SETTLED"),
            "{loser:?}"
        ),
    }
    assert_eq!(
        month.host.invocations(&month.function(SHARD)),
        2,
        "each shard settled once"
    );
    let bills = month.all_bills(2).await.unwrap();
    assert_eq!(bills.len() as u64, u64::from(data.manifest.billable_customers));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_fails_the_run_naming_shard_file_and_line() {
    let data = generate(400, 200).unwrap();
    // Shard 1: a line with an unknown product and one with a malformed amount.
    let path = usage_path(&data, 1);
    let lines_before = std::fs::read_to_string(&path).unwrap().lines().count();
    append(&path, "C0000201,TELEPORT,1,\nC0000202,MICROPAY,1,12x\n").unwrap();
    let month = Month::new("settle-bad-usage").await.unwrap();
    month.load(&data).await.unwrap();
    // Shard 0: its usage file is missing.
    let client = local_aws::s3_client(&month.config);
    client
        .delete_object()
        .bucket(month.bucket.bucket())
        .key(adapters::data_bucket::usage_key(cycle(), 0))
        .send()
        .await
        .unwrap();

    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Failed, "{run:?}");
    let s0 = month.cycles.get_shard(cycle(), 0).await.unwrap().unwrap();
    assert_eq!(s0.status, ShardStatus::Failed);
    assert!(
        s0.errors[0].contains("usage/2026-11/shard-00000.csv is missing"),
        "{:?}",
        s0.errors
    );
    let s1 = month.cycles.get_shard(cycle(), 1).await.unwrap().unwrap();
    assert_eq!(s1.status, ShardStatus::Failed);
    assert_eq!(s1.error_count, 2);
    let want = [
        format!(
            "usage/2026-11/shard-00001.csv line {} (customer C0000201): unknown product code \"TELEPORT\"",
            lines_before + 1
        ),
        format!(
            "usage/2026-11/shard-00001.csv line {} (customer C0000202): amount is not a whole number",
            lines_before + 2
        ),
    ];
    assert_eq!(s1.errors, want);
    // Never a silently short bill: the failed shards wrote none.
    assert_eq!(month.bills.count(cycle(), 0).await.unwrap(), 0);
    assert_eq!(month.bills.count(cycle(), 1).await.unwrap(), 0);
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_ne!(record.status, CycleStatus::Settled);
}

/// BeginCycle pins the template version the operators activated (the `template-version`
/// setting) unless the execution's input names one; an activated version this build does not
/// carry stops the run at BeginCycle, before a single shard, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_cycle_pins_the_activated_template_version() {
    use adapters::settings::TEMPLATE_VERSION;
    use domain::settlement::{BeginInput, StartInput};

    let (_data, month) = loaded("settle-template", 200, 100).await.unwrap();
    let deps = settle_begin::Deps::load(&month.config, &month.resources.function_env("SettleBeginFunction"))
        .await
        .unwrap();
    let settings = deps.settings.clone().expect("BeginCycle reads the operators' settings");
    let activate = |version: &'static str, previous: u64| {
        let put = settings
            .put(
                TEMPLATE_VERSION,
                version,
                previous,
                &format!("activate-{previous}"),
                "arn:aws:iam::123456789012:user/test",
                chrono::Utc::now(),
            )
            .unwrap();
        let client = adapters::dynamodb_client(&month.config);
        async move {
            client
                .transact_write_items()
                .transact_items(aws_sdk_dynamodb::types::TransactWriteItem::builder().put(put).build())
                .send()
                .await
                .unwrap();
        }
    };
    let begin = |template_version: Option<&str>| {
        let input = BeginInput {
            input: StartInput {
                cycle: Some(CYCLE.into()),
                template_version: template_version.map(str::to_owned),
                ..StartInput::default()
            },
            run_id: "arn:aws:states:ap-northeast-2:123456789012:execution:settlement:settle-2026-11".into(),
        };
        settle_begin::handle(&deps, lambda_runtime::LambdaEvent::new(input, Default::default()))
    };

    activate("v9", 0).await;
    let e = begin(None).await.unwrap_err();
    assert!(
        matches!(&e, settle_begin::BeginError::TemplateMissing(m) if m.contains("is not known") && !m.contains("v9")),
        "{e}"
    );
    assert!(month.cycles.get(cycle()).await.unwrap().is_none(), "nothing begun");

    activate("v1", 1).await;
    let out = begin(None).await.unwrap();
    assert_eq!(out.template_version, "v1", "{out:?}");
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_eq!(record.template_version, "v1");
}

/// A run id that is not the one that owns the cycle: an older execution's.
const STRAY_RUN: &str = "arn:aws:states:ap-northeast-2:123456789012:execution:settlement:settle-2026-11-older";

/// An invocation with five minutes to go.
fn invocation<T>(payload: T) -> lambda_runtime::LambdaEvent<T> {
    lambda_runtime::LambdaEvent::new(payload, local_run::invocation(std::time::Duration::from_secs(300)))
}

struct Handlers {
    shard: settle_shard::Deps,
    render: render_shard::Deps,
    finish: settle_finish::Deps,
}

impl Handlers {
    /// FinishCycle of the month's cycle, for the run `run_id`.
    async fn finish_cycle(&self, run_id: &str) -> Result<domain::settlement::FinishOutput, settle_finish::FinishError> {
        let input = domain::settlement::FinishInput {
            cycle: cycle(),
            run_id: run_id.into(),
        };
        settle_finish::handle(&self.finish, invocation(input)).await
    }
}

async fn handlers(month: &Month) -> Handlers {
    Handlers {
        shard: settle_shard::Deps::load(&month.config, &month.resources.function_env(SHARD))
            .await
            .unwrap(),
        render: render_shard::Deps::load(&month.config, &local_function_env(&month.resources, RENDER))
            .await
            .unwrap(),
        finish: settle_finish::Deps::load(&month.config, &month.resources.function_env("SettleFinishFunction"))
            .await
            .unwrap(),
    }
}

/// The shard tasks the map reads: the manifest BeginCycle wrote for the cycle's run.
async fn manifest(month: &Month) -> Vec<domain::settlement::ShardTask> {
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    month.bucket.get_json(&record.manifest_key).await.unwrap().unwrap()
}

/// What a reader of the month can see: the cycle, its shard and render records, every bill
/// and every delivery.
async fn snapshot(month: &Month, shards: u32) -> String {
    let cycle_record = month.cycles.get(cycle()).await.unwrap();
    let mut records: Vec<_> = month.cycles.shards(cycle()).await.unwrap().into_iter().collect();
    records.sort_by_key(|(s, _)| *s);
    let mut deliveries = Vec::new();
    for s in 0..shards {
        deliveries.extend(month.deliveries.shard(cycle(), s).await.unwrap());
    }
    format!(
        "{cycle_record:?}\n{records:?}\n{}\n{deliveries:?}",
        digest(&month.all_bills(shards).await.unwrap())
    )
}

/// A replayed or stray map task — another run's, or the owning run's once the month is
/// settled — is refused by name and writes nothing: no shard record (not even a failed one
/// for a shard the month never had), no bill, no render record, no delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_task_cannot_write_into_a_settled_month() {
    let (_data, month) = loaded("settle-stray", 400, 200).await.unwrap(); // 2 shards
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    let before = snapshot(&month, 2).await;
    let h = handlers(&month).await;
    let tasks = manifest(&month).await;
    let other = |mut t: domain::settlement::ShardTask| {
        t.run_id = STRAY_RUN.into();
        t
    };
    // Another run's task for a settled shard, for a shard the month never had, and the
    // owning run's own task replayed after the month settled.
    let mut unknown = other(tasks[0].clone());
    unknown.shard = 7;
    let strays = [other(tasks[0].clone()), unknown, tasks[1].clone()];
    for task in strays {
        let e = settle_shard::handle(&h.shard, invocation(task.clone()))
            .await
            .expect_err("SettleShard refuses a stray task");
        let settle_shard::ShardError::NotOwned(n) = &e else {
            panic!("shard {}: {e}", task.shard)
        };
        assert_eq!((n.cycle, n.status), (cycle(), Some(CycleStatus::Settled)), "{e}");
        let d: lambda_runtime::Diagnostic = e.into();
        assert_eq!(d.error_type, "NotOwner");
        assert!(
            d.error_message.contains("cycle 2026-11 is not owned by this run"),
            "{}",
            d.error_message
        );
        assert!(!d.error_message.contains("older"), "the task's run id is not echoed");

        let e = render_shard::handle(&h.render, invocation(task.clone()))
            .await
            .expect_err("RenderShard refuses a stray task");
        assert!(
            matches!(e, render_shard::RenderError::NotOwned(_)),
            "shard {}: {e}",
            task.shard
        );
        let d: lambda_runtime::Diagnostic = e.into();
        assert_eq!(d.error_type, "NotOwner");
    }
    assert_eq!(snapshot(&month, 2).await, before, "the settled month is unchanged");
    assert!(month.cycles.get_shard(cycle(), 7).await.unwrap().is_none());
}

/// The console's Redrive of a FAILED execution. The engine here has no RedriveExecution, so
/// the test drives what a redrive re-runs: the states that did not exit. A failed
/// reconciliation now fails the FinishCycle task itself (not a Fail state, which a redrive
/// would only enter again), so a redrive re-runs the failed shard's SettleShard and
/// RenderShard (on AWS the map failed) and FinishCycle, with the same run id; BeginCycle
/// does not run again. The cycle, FAILED under that run, ends SETTLED with exact counts,
/// and another run is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_of_the_failed_execution_settles_its_failed_cycle() {
    let (data, month, failed) = settled_with_shard_0_failing("settle-redrive-same").await;
    assert_eq!(failed.status, ExecutionStatus::Failed, "{failed:?}");
    assert_eq!(failed.error.as_deref(), Some("CycleReconciliationFailed"), "{failed:?}");
    // The state that failed is the FinishCycle task: the one a redrive runs again.
    let request = month.sfn.get_execution_history().execution_arn(&failed.execution_arn);
    let history = request.max_results(1000).send().await.unwrap();
    let last_entered = history
        .events()
        .iter()
        .filter_map(|e| e.state_entered_event_details().map(|d| (e.id, d.name().to_owned())))
        .max_by_key(|(id, _)| *id)
        .map(|(_, name)| name);
    assert_eq!(last_entered.as_deref(), Some("FinishCycle"), "{:?}", history.events());
    let run_id = failed.execution_arn.clone();
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.run_id.as_str()),
        (CycleStatus::Failed, run_id.as_str())
    );
    assert!(
        record.reasons.iter().any(|r| r == "shard 0: not settled"),
        "{:?}",
        record.reasons
    );

    let h = handlers(&month).await;
    let tasks = manifest(&month).await;
    assert!(tasks.iter().all(|t| t.run_id == run_id));
    // Another run may not finish, settle or render the failed cycle.
    let e = h.finish_cycle(STRAY_RUN).await.unwrap_err();
    assert!(matches!(e, settle_finish::FinishError::NotOwner { .. }), "{e}");
    let mut stray = tasks[0].clone();
    stray.run_id = STRAY_RUN.into();
    let e = settle_shard::handle(&h.shard, invocation(stray.clone()))
        .await
        .unwrap_err();
    assert!(matches!(e, settle_shard::ShardError::NotOwned(_)), "{e}");
    let e = render_shard::handle(&h.render, invocation(stray)).await.unwrap_err();
    assert!(matches!(e, render_shard::RenderError::NotOwned(_)), "{e}");
    assert!(month.cycles.get_shard(cycle(), 0).await.unwrap().is_none());

    // The cause is fixed; the redrive re-runs the failed map item, then FinishCycle.
    month.host.clear_interceptor(&month.function(SHARD));
    let settled = settle_shard::handle(&h.shard, invocation(tasks[0].clone()))
        .await
        .unwrap();
    assert!(!settled.skipped, "{settled:?}");
    let rendered = render_shard::handle(&h.render, invocation(tasks[0].clone()))
        .await
        .unwrap();
    assert_eq!(rendered.deliveries, settled.bills);
    let f = h.finish_cycle(&run_id).await.unwrap();
    let expected = expected_bills(&data).unwrap();
    let checksum: i64 = expected.values().map(|b| b.total.won()).sum();
    assert_eq!(f.status, FinishStatus::Settled, "{:?}", f.reasons);
    assert_eq!(
        (f.shards, f.shards_done, f.customers, f.bills, f.checksum),
        (2, 2, 400, expected.len() as u64, checksum)
    );
    assert_eq!(f.bills + f.not_billable, 400);
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.run_id.as_str(), record.runs),
        (CycleStatus::Settled, run_id.as_str(), 1),
        "the same run settled it, no new run took it"
    );
    assert!(record.reasons.is_empty(), "{:?}", record.reasons);
    assert_eq!((record.bills, record.checksum), (expected.len() as u64, checksum));
    let bills = month.all_bills(2).await.unwrap();
    assert_eq!(bills.len(), expected.len());
    for b in &bills {
        assert_eq!(
            Some(b),
            expected.get(b.customer_id.as_str()),
            "bill of {}",
            b.customer_id
        );
    }
    for s in 0..2 {
        assert_eq!(
            month.deliveries.count(cycle(), s).await.unwrap(),
            month.bills.count(cycle(), s).await.unwrap()
        );
    }
    // FinishCycle again (a retry) answers the same; now settled, nothing more is written.
    let again = h.finish_cycle(&run_id).await.unwrap();
    assert_eq!(again, f);
    let e = settle_shard::handle(&h.shard, invocation(tasks[0].clone()))
        .await
        .unwrap_err();
    assert!(matches!(e, settle_shard::ShardError::NotOwned(_)), "{e}");
}

/// A customer whose plan name is 250 KB fails its shard with bounded texts: the shard
/// record, the cycle's reasons and the functions' error answers stay small. An over-long run
/// id is refused by field name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_are_bounded_and_an_over_long_run_id_is_refused() {
    use domain::text::{ELLIPSIS, MAX_REASON_BYTES};

    let (_data, month) = loaded("settle-bounded", 200, 200).await.unwrap(); // 1 shard
    // A stored customer whose plan name is 250 KB: the rating error names it.
    let mut customer = month.customers.shard(0).await.unwrap().customers.remove(0);
    customer.plan = "P".repeat(250_000);
    month.customers.put_all(&[customer]).await.unwrap();
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Failed, "{run:?}");
    assert!(
        run.cause.as_deref().unwrap_or_default().len() < 4 * MAX_REASON_BYTES,
        "{} bytes of cause",
        run.cause.as_deref().unwrap_or_default().len()
    );
    let s0 = month.cycles.get_shard(cycle(), 0).await.unwrap().unwrap();
    assert_eq!((s0.status, s0.error_count), (ShardStatus::Failed, 1));
    assert!(s0.errors[0].len() <= MAX_REASON_BYTES, "{} bytes", s0.errors[0].len());
    assert!(s0.errors[0].starts_with("customer C"), "{}", &s0.errors[0][..80]);
    assert!(s0.errors[0].ends_with(ELLIPSIS), "{}", s0.errors[0]);
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert!(!record.reasons.is_empty());
    assert!(
        record.reasons.iter().all(|r| r.len() <= MAX_REASON_BYTES),
        "{:?}",
        record.reasons.iter().map(String::len).collect::<Vec<_>>()
    );

    // Over-long identifiers: refused, naming the field, without echoing the value.
    let long = format!(
        "arn:aws:states:ap-northeast-2:123456789012:execution:settlement:{}",
        "x".repeat(300)
    );
    let begin = settle_begin::Deps::load(&month.config, &month.resources.function_env("SettleBeginFunction"))
        .await
        .unwrap();
    let e = settle_begin::handle(
        &begin,
        invocation(domain::settlement::BeginInput {
            input: domain::settlement::StartInput {
                cycle: Some(CYCLE.into()),
                ..Default::default()
            },
            run_id: long.clone(),
        }),
    )
    .await
    .unwrap_err();
    let d: lambda_runtime::Diagnostic = e.into();
    assert_eq!(d.error_type, "InvalidInput");
    assert!(
        d.error_message.contains("run_id") && !d.error_message.contains("xxxx"),
        "{}",
        d.error_message
    );
    let h = handlers(&month).await;
    let mut task = manifest(&month).await[0].clone();
    task.run_id = long;
    let e = settle_shard::handle(&h.shard, invocation(task.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, settle_shard::ShardError::InvalidInput(m) if m.contains("run_id")),
        "{e}"
    );
    let e = render_shard::handle(&h.render, invocation(task)).await.unwrap_err();
    assert!(
        matches!(&e, render_shard::RenderError::InvalidInput(m) if m.contains("run_id")),
        "{e}"
    );
}
