//! State machines on the emulator's Step Functions engine, with their Lambda tasks served
//! by handlers in this test process (`LambdaHost`), provisioned from a test-only template
//! (`tests/fixtures/template.yaml`).
//!
//! Run with `--features sfn,lambda` (or `--all-features`); `--nocapture` shows timings.
#![cfg(all(feature = "sfn", feature = "lambda"))]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::types::ExecutionStatus;
use lambda_runtime::{Diagnostic, LambdaEvent};
use local_aws::lambda::{FunctionError, Handler, Interceptor, LambdaHost, function_arn};
use local_aws::{Emulator, Error, Stack, Template, provision_template, unique_prefix};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const EXECUTION_TIMEOUT: Duration = Duration::from_secs(60);
const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
struct Job {
    #[serde(default)]
    id: u32,
    n: u32,
    /// Fail with this error type instead of answering.
    #[serde(default)]
    fail: Option<String>,
    #[serde(default)]
    panic: bool,
}

#[derive(Debug, Serialize)]
struct Done {
    id: u32,
    doubled: u32,
    big: bool,
}

/// How often the worker saw each job id.
type Seen = Arc<Mutex<BTreeMap<u32, u32>>>;

/// The worker handler: doubles `n`, records the job id, fails or panics on request, and
/// checks the context the host built.
async fn worker(event: LambdaEvent<Job>, seen: Seen, function_name: String) -> Result<Done, Diagnostic> {
    let (job, context) = event.into_parts();
    assert_eq!(context.invoked_function_arn, function_arn(&function_name));
    assert_eq!(context.env_config.function_name, function_name);
    assert!(!context.request_id.is_empty());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    assert!(context.deadline > now_ms && context.deadline <= now_ms + HANDLER_TIMEOUT.as_millis() as u64);

    *seen.lock().unwrap().entry(job.id).or_default() += 1;
    if job.panic {
        panic!("worker asked to panic");
    }
    if let Some(error_type) = job.fail {
        return Err(Diagnostic {
            error_type,
            error_message: format!("job {} failed on request", job.id),
        });
    }
    Ok(Done {
        id: job.id,
        doubled: job.n * 2,
        big: job.n >= 10,
    })
}

struct Fixture {
    emulator: &'static Emulator,
    stack: Stack,
    host: LambdaHost,
    /// Physical name of WorkerFunction, registered with `host`.
    worker: String,
    seen: Seen,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

async fn stack_on(emulator: &Emulator, name: &str) -> Result<Stack> {
    let config = emulator.sdk_config().await;
    let template = Template::load(&fixtures().join("template.yaml"))?;
    let resources = provision_template(&config, &template, &unique_prefix(name)).await?;
    Ok(Stack { config, resources })
}

/// A fresh copy of the fixture stack with the worker registered in a new host.
async fn fixture(name: &str) -> Result<Fixture> {
    let emulator = Emulator::shared().await?;
    let stack = stack_on(emulator, name).await?;
    let host = LambdaHost::start().await?;
    let worker_name = stack
        .resources
        .function_name("WorkerFunction")
        .context("WorkerFunction is named")?
        .to_owned();
    let seen = register_worker(&host, emulator, &worker_name).await?;
    Ok(Fixture {
        emulator,
        stack,
        host,
        worker: worker_name,
        seen,
    })
}

async fn register_worker(host: &LambdaHost, emulator: &Emulator, name: &str) -> Result<Seen> {
    let seen = Seen::default();
    let (s, n) = (seen.clone(), name.to_owned());
    host.register_fn(emulator, name, HANDLER_TIMEOUT, move |e| {
        worker(e, s.clone(), n.clone())
    })
    .await?;
    Ok(seen)
}

/// Start an execution (always with a unique name: see `runs_need_unique_names`) and poll
/// until it ends, for at most [`EXECUTION_TIMEOUT`].
async fn run(stack: &Stack, machine: &str, input: Value) -> Result<DescribeExecutionOutput> {
    let sfn = stack.sfn();
    let arn = stack
        .resources
        .state_machine_arn(machine)
        .with_context(|| format!("{machine} is provisioned"))?;
    let started = sfn
        .start_execution()
        .state_machine_arn(arn)
        .name(unique_prefix("run"))
        .input(input.to_string())
        .send()
        .await?;
    wait(&sfn, started.execution_arn()).await
}

/// [`run`] of the `FlowStateMachine`.
async fn flow(stack: &Stack, input: Value) -> Result<DescribeExecutionOutput> {
    run(stack, "FlowStateMachine", input).await
}

/// Writes `items` as JSON to the `ItemsBucket` under `key`, for the `FanOutStateMachine` to read.
async fn put_items(stack: &Stack, key: &str, items: &impl Serialize) -> Result<()> {
    let bucket = stack.resources.bucket("ItemsBucket").context("bucket")?;
    stack
        .s3()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(serde_json::to_vec(items)?.into())
        .send()
        .await?;
    Ok(())
}

async fn wait(sfn: &aws_sdk_sfn::Client, execution_arn: &str) -> Result<DescribeExecutionOutput> {
    let deadline = Instant::now() + EXECUTION_TIMEOUT;
    loop {
        let d = sfn.describe_execution().execution_arn(execution_arn).send().await?;
        if d.status() != &ExecutionStatus::Running {
            return Ok(d);
        }
        if Instant::now() > deadline {
            bail!("{execution_arn} still running after {EXECUTION_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The engine's own start-to-stop time of an execution.
fn engine_time(d: &DescribeExecutionOutput) -> Result<Duration> {
    let start = d.start_date();
    let stop = d.stop_date().context("no stop date")?;
    let nanos = |t: &aws_sdk_sfn::primitives::DateTime| t.secs() as i128 * 1_000_000_000 + i128::from(t.subsec_nanos());
    Ok(Duration::from_nanos(u64::try_from(nanos(stop) - nanos(start))?))
}

fn output(d: &DescribeExecutionOutput) -> Result<Value> {
    Ok(serde_json::from_str(d.output().context("no output")?)?)
}

#[tokio::test]
async fn provisions_functions_and_state_machines_from_the_template() -> Result<()> {
    let f = fixture("sfn-provision").await?;
    let res = &f.stack.resources;
    let prefix = res.prefix();
    assert_eq!(f.worker, format!("{prefix}-WorkerFunction"));
    let flow_arn = res.state_machine_arn("FlowStateMachine").context("flow")?;
    let flow = res.get("FlowStateMachine").context("flow")?;
    assert_eq!(flow.name, format!("{prefix}-FlowStateMachine"));

    // Functions → state machines → the functions' environment.
    let env = res.function_env("WorkerFunction");
    assert_eq!(env["FLOW_ARN"], flow_arn);
    assert_eq!(env["FLOW_NAME"], flow.name);
    assert_eq!(env["SELF_ARN"], function_arn(&f.worker));
    assert_eq!(env["ITEMS_BUCKET"], res.bucket("ItemsBucket").context("bucket")?);

    // DefinitionSubstitutions applied, including across state machines.
    let sfn = f.stack.sfn();
    let def = sfn.describe_state_machine().state_machine_arn(flow_arn).send().await?;
    assert!(def.definition().contains(&function_arn(&f.worker)));
    assert!(def.definition().contains("(stage test)"));
    assert!(!def.definition().contains("${"), "{}", def.definition());
    assert_eq!(def.role_arn(), format!("arn:aws:iam::123456789012:role/{prefix}-sfn"));
    let fan_out = res.state_machine_arn("FanOutStateMachine").context("fan-out")?;
    let def = sfn.describe_state_machine().state_machine_arn(fan_out).send().await?;
    assert!(def.definition().contains(flow_arn));

    // An inline Definition, its intrinsics resolved; a direct Lambda ARN as Task resource.
    let direct = res.state_machine_arn("DirectStateMachine").context("direct")?;
    let def = sfn.describe_state_machine().state_machine_arn(direct).send().await?;
    let def: Value = serde_json::from_str(def.definition())?;
    assert_eq!(def["States"]["Work"]["Resource"], function_arn(&f.worker));
    assert_eq!(def["States"]["Work"]["TimeoutSeconds"], 30);
    let d = run(&f.stack, "DirectStateMachine", json!({"id": 5, "n": 10})).await?;
    assert_eq!(d.status(), &ExecutionStatus::Succeeded, "{d:?}");
    assert_eq!(output(&d)?, json!({"id": 5, "doubled": 20, "big": true}));

    let mut skipped: Vec<_> = res
        .skipped()
        .iter()
        .map(|(id, kind)| (id.as_str(), kind.as_str()))
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            ("FlowRole", "AWS::IAM::Role"),
            ("NightlySchedule", "AWS::Scheduler::Schedule")
        ]
    );
    assert!(f.emulator.lambda_routes().await?.contains_key(&f.worker));
    Ok(())
}

#[tokio::test]
async fn task_then_choice_runs_the_in_process_handler() -> Result<()> {
    let f = fixture("sfn-choice").await?;

    let started = Instant::now();
    let big = flow(&f.stack, json!({"id": 1, "n": 21})).await?;
    let first = started.elapsed();
    assert_eq!(big.status(), &ExecutionStatus::Succeeded, "{big:?}");
    assert_eq!(output(&big)?, json!({"size": "big", "value": 42}));

    let runs = 10;
    let started = Instant::now();
    let mut engine = Duration::ZERO;
    for i in 0..runs {
        let small = flow(&f.stack, json!({"id": 100 + i, "n": 2})).await?;
        assert_eq!(small.status(), &ExecutionStatus::Succeeded, "{small:?}");
        assert_eq!(output(&small)?, json!({"size": "small", "value": 4}));
        engine += engine_time(&small)?;
    }
    eprintln!(
        "task → choice execution: first {first:?}; then {:?} each from StartExecution to \
         SUCCEEDED seen (50 ms polls), {:?} start to stop date",
        started.elapsed() / runs,
        engine / runs
    );
    assert_eq!(f.host.invocations(&f.worker), 1 + u64::from(runs));
    assert!(f.seen.lock().unwrap().values().all(|&n| n == 1));
    Ok(())
}

#[tokio::test]
async fn transient_errors_are_retried() -> Result<()> {
    let f = fixture("sfn-retry").await?;
    // Fault injection: the first delivery fails with Transient before reaching the handler.
    let failed = Arc::new(AtomicU32::new(0));
    let counter = failed.clone();
    let flaky: Interceptor = Arc::new(move |payload: Value, handler: Handler| {
        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
        Box::pin(async move {
            if first {
                Err(FunctionError::new("Transient", "injected: try again"))
            } else {
                handler(payload).await
            }
        })
    });
    f.host.intercept(&f.worker, flaky)?;

    let d = flow(&f.stack, json!({"id": 7, "n": 3})).await?;
    assert_eq!(d.status(), &ExecutionStatus::Succeeded, "{d:?}");
    assert_eq!(output(&d)?, json!({"size": "small", "value": 6}));
    assert_eq!(f.host.invocations(&f.worker), 2, "one failure and one retry");
    assert_eq!(f.seen.lock().unwrap().get(&7), Some(&1), "the handler ran once");

    // Retry gives up after MaxAttempts (2 retries): the error name ends the execution.
    f.host.clear_interceptor(&f.worker);
    let d = flow(&f.stack, json!({"id": 8, "n": 3, "fail": "Transient"})).await?;
    assert_eq!(d.status(), &ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("Transient"));
    assert_eq!(f.seen.lock().unwrap().get(&8), Some(&3));
    Ok(())
}

#[tokio::test]
async fn other_errors_fail_the_execution_with_their_name() -> Result<()> {
    let f = fixture("sfn-errors").await?;

    let d = flow(&f.stack, json!({"id": 1, "n": 3, "fail": "Permanent"})).await?;
    assert_eq!(d.status(), &ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("Permanent"));
    let cause: Value = serde_json::from_str(d.cause().context("cause")?)?;
    assert_eq!(cause["errorMessage"], "job 1 failed on request");
    assert_eq!(f.host.invocations(&f.worker), 1, "not retried");

    let d = flow(&f.stack, json!({"id": 2, "n": 3, "panic": true})).await?;
    assert_eq!(d.status(), &ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("Runtime.Panic"));

    let d = flow(&f.stack, json!({"id": 3, "n": "three"})).await?;
    assert_eq!(d.error(), Some("InvalidInput"), "as the deployed runtime reports it");
    assert_eq!(f.host.invocations(&f.worker), 3);

    // A handler whose host is gone: an error name, not a hung or crashed emulator.
    let Fixture {
        stack, host, worker, ..
    } = f;
    drop(host);
    let d = flow(&stack, json!({"id": 4, "n": 3})).await?;
    assert_eq!(d.status(), &ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("Local.HandlerUnavailable"), "{d:?}");
    assert!(d.cause().unwrap_or_default().contains(&worker));
    Ok(())
}

#[tokio::test]
async fn distributed_map_invokes_the_handler_once_per_item() -> Result<()> {
    const ITEMS: u32 = 40;
    let f = fixture("sfn-map").await?;
    let items: Vec<Value> = (0..ITEMS).map(|id| json!({"id": id, "n": id})).collect();
    put_items(&f.stack, "jobs/items.json", &items).await?;

    let started = Instant::now();
    let d = run(&f.stack, "FanOutStateMachine", json!({"key": "jobs/items.json"})).await?;
    let took = started.elapsed();
    let engine = engine_time(&d)?;
    eprintln!(
        "distributed map: {ITEMS} items in {took:?} ({engine:?} start to stop date), {:?} per \
         item (MaxConcurrency 8)",
        engine / ITEMS
    );
    assert_eq!(d.status(), &ExecutionStatus::Succeeded, "{d:?}");
    let seen = f.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), ITEMS as usize, "every item handled");
    assert!(seen.values().all(|&n| n == 1), "exactly once: {seen:?}");
    assert_eq!(f.host.invocations(&f.worker), u64::from(ITEMS));
    Ok(())
}

/// moto's engine (5.2.5): an item that fails does not fail a DISTRIBUTED map (on AWS, with
/// no `ToleratedFailure*`, the map and the execution fail with
/// `States.ExceedToleratedFailureThreshold`); its output is `null`. The map run's item
/// counts do record it: check `DescribeMapRun` (or reconcile) rather than the status.
/// If this test fails, moto fixed it.
#[tokio::test]
async fn a_failed_item_does_not_fail_a_distributed_map() -> Result<()> {
    let f = fixture("sfn-map-failure").await?;
    let items = json!([{"id": 0, "n": 0}, {"id": 1, "n": 1, "fail": "Permanent"}, {"id": 2, "n": 2}]);
    put_items(&f.stack, "items.json", &items).await?;
    let d = run(&f.stack, "FanOutStateMachine", json!({"key": "items.json"})).await?;
    assert_eq!(d.status(), &ExecutionStatus::Succeeded, "moto now fails the map: {d:?}");
    assert_eq!(f.host.invocations(&f.worker), 3);

    let sfn = f.stack.sfn();
    let runs = sfn.list_map_runs().execution_arn(d.execution_arn()).send().await?;
    let [map_run] = runs.map_runs() else {
        bail!("expected one map run: {runs:?}")
    };
    let described = sfn.describe_map_run().map_run_arn(map_run.map_run_arn()).send().await?;
    let counts = described.item_counts().context("item counts")?;
    assert_eq!((counts.total(), counts.succeeded(), counts.failed()), (3, 2, 1));
    Ok(())
}

/// The router itself: Invoke by name, full ARN with a qualifier and partial ARN; function
/// errors; asynchronous invocations; unregistered names go to moto.
#[tokio::test]
async fn the_router_forwards_invoke_like_lambda() -> Result<()> {
    let f = fixture("sfn-router").await?;
    let endpoint = f.emulator.endpoint_url();
    let path = |id: &str| format!("/2015-03-31/functions/{}/invocations", encode(id));

    let started = Instant::now();
    let calls = 50;
    for i in 0..calls {
        let r = http(endpoint, &path(&f.worker), &[], &json!({"id": i, "n": 4}).to_string()).await?;
        assert_eq!(r.status, 200);
    }
    eprintln!(
        "Invoke through the emulator's router to the in-process handler: {:?} each",
        started.elapsed() / calls
    );

    let arn = format!("{}:$LATEST", function_arn(&f.worker));
    let r = http(endpoint, &path(&arn), &[], r#"{"id": 1000, "n": 4}"#).await?;
    assert_eq!((r.status, r.header("x-amz-executed-version")), (200, Some("$LATEST")));
    assert_eq!(
        serde_json::from_str::<Value>(&r.body)?,
        json!({"id": 1000, "doubled": 8, "big": false})
    );
    assert_eq!(r.header("x-amz-function-error"), None);

    let partial = format!("123456789012:function:{}", f.worker);
    let r = http(
        endpoint,
        &path(&partial),
        &[],
        r#"{"id": 1001, "n": 1, "fail": "Nope"}"#,
    )
    .await?;
    assert_eq!((r.status, r.header("x-amz-function-error")), (200, Some("Unhandled")));
    assert_eq!(serde_json::from_str::<Value>(&r.body)?["errorType"], "Nope");

    let r = http(
        endpoint,
        &path(&f.worker),
        &[("X-Amz-Invocation-Type", "Event")],
        r#"{"id": 1002, "n": 1}"#,
    )
    .await?;
    assert_eq!(r.status, 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.seen.lock().unwrap().get(&1002).is_none() {
        ensure!(Instant::now() < deadline, "the Event invocation never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let lambda_auth = "AWS4-HMAC-SHA256 Credential=test/20260101/ap-northeast-2/lambda/aws4_request, \
                       SignedHeaders=host, Signature=0";
    let r = http(
        endpoint,
        &path(&format!("{}-unknown", f.worker)),
        &[("Authorization", lambda_auth)],
        "{}",
    )
    .await?;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("ResourceNotFound"), "{}", r.body);

    f.host.unregister(f.emulator, &f.worker).await?;
    assert!(!f.emulator.lambda_routes().await?.contains_key(&f.worker));
    Ok(())
}

/// A plain moto server (or anything else without the router) gives a clear error.
#[tokio::test]
async fn registering_needs_the_router() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 404 NOT FOUND\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")
                .await;
        }
    });
    let plain = Emulator::external(&format!("http://{addr}"));
    let host = LambdaHost::start().await?;
    let err = host
        .register_fn(
            &plain,
            "some-function",
            HANDLER_TIMEOUT,
            |e: LambdaEvent<Value>| async move { Ok::<_, Diagnostic>(e.payload) },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoLambdaRouter { .. }), "{err}");
    assert!(err.to_string().contains("scripts/emulator.sh start"), "{err}");
    assert!(matches!(plain.lambda_routes().await, Err(Error::NoLambdaRouter { .. })));
    Ok(())
}

const CHILD_ENDPOINT: &str = "LOCAL_AWS_TEST_CHILD_ENDPOINT";
const CHILD_TEST: &str = "child_process_serves_its_own_function";

/// Two test processes on one emulator, at once: each registers its own function (from its
/// own stack) in its own host, and each one's executions reach only its own handler.
#[tokio::test]
async fn two_processes_share_one_emulator() -> Result<()> {
    let f = fixture("sfn-parent").await?;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--exact", CHILD_TEST, "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENDPOINT, f.emulator.endpoint_url())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let child_function = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            // libtest prints "test <name> ... " before the test's own output, on the same line.
            if let Some(name) = line.split("READY ").nth(1).and_then(|r| r.split_whitespace().next()) {
                return Ok(name.to_owned());
            }
        }
        bail!("the child exited before registering")
    })
    .await??;
    assert_ne!(child_function, f.worker);
    let routes = f.emulator.lambda_routes().await?;
    assert!(routes.contains_key(&child_function) && routes.contains_key(&f.worker));
    assert_ne!(routes[&child_function], routes[&f.worker], "different hosts");

    // Run while the child runs its own executions.
    for i in 0..5 {
        let d = flow(&f.stack, json!({"id": i, "n": 1})).await?;
        assert_eq!(d.status(), &ExecutionStatus::Succeeded, "{d:?}");
    }
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait()).await??;
    assert!(status.success(), "child failed: {status}");
    assert_eq!(f.host.invocations(&f.worker), 5);
    assert_eq!(f.host.invocations(&child_function), 0);
    Ok(())
}

/// The other process of `two_processes_share_one_emulator` (does nothing when run alone).
#[tokio::test]
#[ignore = "run by two_processes_share_one_emulator"]
async fn child_process_serves_its_own_function() -> Result<()> {
    let Ok(endpoint) = std::env::var(CHILD_ENDPOINT) else {
        return Ok(());
    };
    let emulator = Emulator::external(&endpoint);
    let stack = stack_on(&emulator, "sfn-child").await?;
    let host = LambdaHost::start().await?;
    let name = stack.resources.function_name("WorkerFunction").context("worker")?;
    let seen = register_worker(&host, &emulator, name).await?;
    println!("READY {name}");
    for i in 0..5 {
        let d = flow(&stack, json!({"id": i, "n": 30})).await?;
        assert_eq!(d.status(), &ExecutionStatus::Succeeded, "{d:?}");
        assert_eq!(output(&d)?, json!({"size": "big", "value": 60}));
    }
    assert_eq!(host.invocations(name), 5);
    assert_eq!(seen.lock().unwrap().len(), 5);
    Ok(())
}

/// moto's engine (5.2.5): StartExecution without a name names the execution "None", so a
/// second unnamed start is a duplicate. Pass a name (`run` does). If this test fails, moto
/// fixed it.
#[tokio::test]
async fn runs_need_unique_names() -> Result<()> {
    let f = fixture("sfn-unnamed").await?;
    let sfn = f.stack.sfn();
    let arn = f
        .stack
        .resources
        .state_machine_arn("FlowStateMachine")
        .context("flow")?;
    let first = sfn
        .start_execution()
        .state_machine_arn(arn)
        .input(r#"{"n": 1}"#)
        .send()
        .await?;
    assert!(first.execution_arn().ends_with(":None"), "{}", first.execution_arn());
    wait(&sfn, first.execution_arn()).await?;
    let second = sfn
        .start_execution()
        .state_machine_arn(arn)
        .input(r#"{"n": 2}"#)
        .send()
        .await;
    assert!(second.is_err(), "a second unnamed execution was accepted");
    Ok(())
}

// --- a raw HTTP client for the router tests -----------------------------------------------

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn http(endpoint: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Result<Answer> {
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(authority).await?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(body); // one write: no Nagle / delayed-ACK stall between head and body
    stream.write_all(head.as_bytes()).await?;
    // Read up to Content-Length, as SDK clients do (the server may linger before closing).
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    let text = loop {
        let n = stream.read(&mut chunk).await?;
        raw.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            if n == 0 || length.is_some_and(|len| body.len() >= len) {
                break text;
            }
        }
        ensure!(n > 0, "connection closed before the end of the headers");
    };
    let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}
