//! Settling a month locally: the deployable state machine
//! (`infra/statemachines/settlement.asl.json`, created in the emulator from
//! template.yaml) runs on the emulator's Step Functions engine, and its
//! Lambda tasks reach our real handlers, hosted in this process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_config::SdkConfig;
use aws_sdk_sfn::types::ExecutionStatus;
use domain::Cycle;
use domain::settlement::{FinishOutput, ShardTask};
use local_aws::lambda::LambdaHost;
use local_aws::{Emulator, Resources};

pub const BEGIN: &str = "SettleBeginFunction";
pub const SHARD: &str = "SettleShardFunction";
pub const FINISH: &str = "SettleFinishFunction";
pub const RENDER: &str = "RenderShardFunction";
pub const STATE_MACHINE: &str = "SettlementStateMachine";

/// Lambda timeouts: template.yaml's for the short functions; for the shard
/// functions, Lambda's maximum of 15 minutes instead of the template's 5. The
/// emulator answers the requests of every shard in flight one at a time, so a
/// shard that takes 2 s on AWS takes minutes here (the slowest render shard of
/// a 10,000-customer month took 258 s, one of a later run passed 300 s and the
/// cycle did not reconcile).
const BEGIN_TIMEOUT: Duration = Duration::from_secs(60);
const SHARD_TIMEOUT: Duration = Duration::from_secs(900);
const FINISH_TIMEOUT: Duration = Duration::from_secs(300);
const RENDER_TIMEOUT: Duration = Duration::from_secs(900);

/// A function's environment as the local stack gives it: as template.yaml
/// declares it, the globals included. It holds no key: the functions that open
/// contact data find the stack's keyring secret in `PII_KEYS_SECRET` and read
/// it from the emulator's Secrets Manager, as deployed.
pub fn local_function_env(resources: &Resources, logical_id: &str) -> std::collections::BTreeMap<String, String> {
    resources.function_env(logical_id)
}

/// Physical name of a function of the provisioned stack.
pub fn function_name(resources: &Resources, logical_id: &str) -> anyhow::Result<String> {
    resources
        .function_name(logical_id)
        .map(str::to_owned)
        .with_context(|| format!("template.yaml declares no function {logical_id}"))
}

/// Hosts the four settlement functions of `resources` in `host`, each with
/// the environment template.yaml gives it, and routes the emulator's
/// invocations to them.
pub async fn host_settlement(
    host: &LambdaHost,
    emulator: &Emulator,
    sdk: &SdkConfig,
    resources: &Resources,
) -> anyhow::Result<()> {
    host_settlement_timed(host, emulator, sdk, resources, Arc::new(Timings::default())).await
}

/// How long each hosted invocation took, by function (logical id) and shard.
#[derive(Debug, Default)]
pub struct Timings(std::sync::Mutex<Vec<(&'static str, Option<u32>, Duration)>>);

/// One function's invocations, summed.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct FunctionTime {
    pub logical_id: String,
    pub invocations: u64,
    pub seconds: f64,
    /// The slowest invocation: its shard (when it had one) and seconds.
    pub slowest_shard: Option<u32>,
    pub slowest_seconds: f64,
}

impl Timings {
    pub fn record(&self, logical_id: &'static str, shard: Option<u32>, took: Duration) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((logical_id, shard, took));
    }

    /// Per function, in the order first invoked.
    pub fn summary(&self) -> Vec<FunctionTime> {
        let all = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<FunctionTime> = Vec::new();
        for (id, shard, took) in all.iter() {
            let i = match out.iter().position(|f| f.logical_id == *id) {
                Some(i) => i,
                None => {
                    out.push(FunctionTime {
                        logical_id: (*id).to_owned(),
                        ..FunctionTime::default()
                    });
                    out.len() - 1
                }
            };
            let f = &mut out[i];
            let s = took.as_secs_f64();
            f.invocations += 1;
            f.seconds += s;
            if s >= f.slowest_seconds {
                f.slowest_seconds = s;
                f.slowest_shard = *shard;
            }
        }
        out
    }
}

/// [`host_settlement`], recording every invocation's time in `timings`.
pub async fn host_settlement_timed(
    host: &LambdaHost,
    emulator: &Emulator,
    sdk: &SdkConfig,
    resources: &Resources,
    timings: Arc<Timings>,
) -> anyhow::Result<()> {
    let begin = Arc::new(settle_begin::Deps::load(sdk, &resources.function_env(BEGIN)).await?);
    let t = timings.clone();
    host.register_fn(emulator, &function_name(resources, BEGIN)?, BEGIN_TIMEOUT, move |ev| {
        let (deps, t) = (begin.clone(), t.clone());
        async move {
            let s = Instant::now();
            let r = settle_begin::handle(&deps, ev).await;
            t.record(BEGIN, None, s.elapsed());
            r
        }
    })
    .await?;
    let shard = Arc::new(settle_shard::Deps::load(sdk, &resources.function_env(SHARD)).await?);
    let t = timings.clone();
    host.register_fn(
        emulator,
        &function_name(resources, SHARD)?,
        SHARD_TIMEOUT,
        move |ev: lambda_runtime::LambdaEvent<ShardTask>| {
            let (deps, t) = (shard.clone(), t.clone());
            async move {
                let (s, n) = (Instant::now(), ev.payload.shard);
                let r = settle_shard::handle(&deps, ev).await;
                t.record(SHARD, Some(n), s.elapsed());
                r
            }
        },
    )
    .await?;
    let render = Arc::new(render_shard::Deps::load(sdk, &local_function_env(resources, RENDER)).await?);
    let t = timings.clone();
    host.register_fn(
        emulator,
        &function_name(resources, RENDER)?,
        RENDER_TIMEOUT,
        move |ev: lambda_runtime::LambdaEvent<ShardTask>| {
            let (deps, t) = (render.clone(), t.clone());
            async move {
                let (s, n) = (Instant::now(), ev.payload.shard);
                let r = render_shard::handle(&deps, ev).await;
                t.record(RENDER, Some(n), s.elapsed());
                r
            }
        },
    )
    .await?;
    let finish = Arc::new(settle_finish::Deps::load(sdk, &resources.function_env(FINISH)).await?);
    let t = timings;
    host.register_fn(
        emulator,
        &function_name(resources, FINISH)?,
        FINISH_TIMEOUT,
        move |ev| {
            let (deps, t) = (finish.clone(), t.clone());
            async move {
                let s = Instant::now();
                let r = settle_finish::handle(&deps, ev).await;
                t.record(FINISH, None, s.elapsed());
                r
            }
        },
    )
    .await?;
    Ok(())
}

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct ExecutionOutcome {
    pub execution_arn: String,
    pub status: ExecutionStatus,
    /// The execution's output (JSON), when it succeeded.
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub elapsed: Duration,
}

impl ExecutionOutcome {
    /// The reconciliation, when the execution ran `FinishCycle` to success.
    pub fn finish_output(&self) -> Option<FinishOutput> {
        self.output.as_deref().and_then(|o| serde_json::from_str(o).ok())
    }
}

/// Starts the settlement of `cycle` (execution name `name`) without waiting.
pub async fn start_settlement(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    cycle: Cycle,
    name: &str,
) -> anyhow::Result<String> {
    let out = sfn
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(serde_json::json!({ "cycle": cycle.to_string() }).to_string())
        .send()
        .await
        .context("StartExecution")?;
    Ok(out.execution_arn)
}

/// Waits for an execution to end (polling, at most `limit`); `on_poll` sees
/// the time waited so far.
pub async fn wait_for(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    limit: Duration,
    on_poll: &(dyn Fn(Duration) + Sync),
) -> anyhow::Result<ExecutionOutcome> {
    let started = Instant::now();
    loop {
        let d = sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .context("DescribeExecution")?;
        if d.status != ExecutionStatus::Running {
            return Ok(ExecutionOutcome {
                execution_arn: execution_arn.to_owned(),
                status: d.status,
                output: d.output,
                error: d.error,
                cause: d.cause,
                elapsed: started.elapsed(),
            });
        }
        if started.elapsed() > limit {
            bail!("execution {execution_arn} still running after {limit:?}");
        }
        on_poll(started.elapsed());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Starts and waits for the settlement of `cycle`.
pub async fn settle_cycle(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    cycle: Cycle,
    name: &str,
    limit: Duration,
    on_poll: &(dyn Fn(Duration) + Sync),
) -> anyhow::Result<ExecutionOutcome> {
    let arn = start_settlement(sfn, state_machine_arn, cycle, name).await?;
    wait_for(sfn, &arn, limit, on_poll).await
}

/// What rendering left behind for a cycle.
#[derive(Debug, Default, Clone)]
pub struct RenderedSummary {
    /// Deliveries by state (`READY`, ...).
    pub states: std::collections::BTreeMap<String, u64>,
    /// Shards with a render record, and the gzip bytes their last renders uploaded.
    pub shards_rendered: u32,
    pub bytes_uploaded: u64,
    /// Template versions the shards were rendered with.
    pub template_versions: std::collections::BTreeSet<String>,
}

impl RenderedSummary {
    pub fn deliveries(&self) -> u64 {
        self.states.values().sum()
    }

    pub fn ready(&self) -> u64 {
        self.states.get("READY").copied().unwrap_or(0)
    }
}

/// Reads the shard records and the deliveries of every shard of `cycle`.
pub async fn rendered_summary(sdk: &SdkConfig, resources: &Resources, cycle: Cycle) -> anyhow::Result<RenderedSummary> {
    use adapters::Vars;
    use futures::{StreamExt, TryStreamExt, stream};
    let env = resources.env();
    let ddb = adapters::dynamodb_client(sdk);
    let cycles = adapters::cycles::CycleStore::new(ddb.clone(), env.required("CYCLES_TABLE")?);
    let deliveries = adapters::deliveries::DeliveryStore::new(ddb, env.required("DELIVERIES_TABLE")?);
    let shards = cycles.shards(cycle).await?;
    let mut out = RenderedSummary::default();
    for r in shards.values().filter_map(|s| s.render.as_ref()) {
        out.shards_rendered += 1;
        out.bytes_uploaded += r.bytes_uploaded;
        out.template_versions.insert(r.template_version.clone());
    }
    let summaries: Vec<Vec<adapters::deliveries::Existing>> = stream::iter(shards.keys().copied())
        .map(|shard| {
            let deliveries = deliveries.clone();
            async move { deliveries.shard_summary(cycle, shard).await }
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    for e in summaries.into_iter().flatten() {
        *out.states.entry(e.state).or_default() += 1;
    }
    Ok(out)
}
