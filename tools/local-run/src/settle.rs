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
use domain::settlement::FinishOutput;
use local_aws::lambda::LambdaHost;
use local_aws::{Emulator, Resources};

pub const BEGIN: &str = "SettleBeginFunction";
pub const SHARD: &str = "SettleShardFunction";
pub const FINISH: &str = "SettleFinishFunction";
pub const RENDER: &str = "RenderShardFunction";
pub const STATE_MACHINE: &str = "SettlementStateMachine";

/// Lambda timeouts as in template.yaml.
const BEGIN_TIMEOUT: Duration = Duration::from_secs(60);
const SHARD_TIMEOUT: Duration = Duration::from_secs(300);
const FINISH_TIMEOUT: Duration = Duration::from_secs(300);
const RENDER_TIMEOUT: Duration = Duration::from_secs(300);

/// A function's environment as template.yaml gives it, plus what a deployed
/// stack resolves from Secrets Manager: the contact-data keyring, from
/// `PII_KEYS` when set, else the published development keyring.
pub fn local_function_env(resources: &Resources, logical_id: &str) -> std::collections::BTreeMap<String, String> {
    let mut env = resources.function_env(logical_id);
    let keys = std::env::var("PII_KEYS").unwrap_or_else(|_| domain::pii::DEV_KEYRING.to_owned());
    env.entry("PII_KEYS".to_owned()).or_insert(keys);
    env
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
    let begin = Arc::new(settle_begin::Deps::new(sdk, &resources.function_env(BEGIN))?);
    host.register_fn(emulator, &function_name(resources, BEGIN)?, BEGIN_TIMEOUT, move |ev| {
        let deps = begin.clone();
        async move { settle_begin::handle(&deps, ev).await }
    })
    .await?;
    let shard = Arc::new(settle_shard::Deps::from_vars(sdk, &resources.function_env(SHARD))?);
    host.register_fn(emulator, &function_name(resources, SHARD)?, SHARD_TIMEOUT, move |ev| {
        let deps = shard.clone();
        async move { settle_shard::handle(&deps, ev).await }
    })
    .await?;
    let render = Arc::new(render_shard::Deps::from_vars(
        sdk,
        &local_function_env(resources, RENDER),
    )?);
    host.register_fn(
        emulator,
        &function_name(resources, RENDER)?,
        RENDER_TIMEOUT,
        move |ev| {
            let deps = render.clone();
            async move { render_shard::handle(&deps, ev).await }
        },
    )
    .await?;
    let finish = Arc::new(settle_finish::Deps::new(sdk, &resources.function_env(FINISH))?);
    host.register_fn(
        emulator,
        &function_name(resources, FINISH)?,
        FINISH_TIMEOUT,
        move |ev| {
            let deps = finish.clone();
            async move { settle_finish::handle(&deps, ev).await }
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
