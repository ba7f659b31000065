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
pub const STATE_MACHINE: &str = "SettlementStateMachine";

/// Lambda timeouts as in template.yaml.
const BEGIN_TIMEOUT: Duration = Duration::from_secs(60);
const SHARD_TIMEOUT: Duration = Duration::from_secs(300);
const FINISH_TIMEOUT: Duration = Duration::from_secs(300);

/// Physical name of a function of the provisioned stack.
pub fn function_name(resources: &Resources, logical_id: &str) -> anyhow::Result<String> {
    resources
        .function_name(logical_id)
        .map(str::to_owned)
        .with_context(|| format!("template.yaml declares no function {logical_id}"))
}

/// Hosts the three settlement functions of `resources` in `host`, each with
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
