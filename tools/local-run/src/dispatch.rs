//! Dispatch on a virtual clock: the runs EventBridge Scheduler would start at
//! every two-hour slot of the month a cycle's invoices go out, one after the
//! other, against the local stack, with the real handler.

use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use dispatch_slot::{DispatchEvent, DispatchReport};
use domain::Cycle;
use domain::dispatch::SlotRun;
use lambda_runtime::LambdaEvent;
use local_aws::Resources;

pub const DISPATCH: &str = "DispatchSlotFunction";

/// The dispatch function of `resources`, configured as template.yaml configures it.
pub fn dispatch_deps(sdk: &SdkConfig, resources: &Resources) -> anyhow::Result<dispatch_slot::Deps> {
    dispatch_slot::Deps::from_vars(sdk, &resources.function_env(DISPATCH))
        .with_context(|| format!("environment of {DISPATCH}"))
}

/// Runs the slot `run` as the schedule would, with the function's 900 s timeout.
pub async fn run_slot(deps: &dispatch_slot::Deps, run: SlotRun) -> anyhow::Result<DispatchReport> {
    let ctx = crate::invocation(Duration::from_secs(900));
    let event = DispatchEvent {
        scheduled_time: run.start().to_rfc3339(),
        run_id: None,
    };
    dispatch_slot::handle(deps, LambdaEvent::new(event, ctx))
        .await
        .map_err(|e| anyhow::anyhow!("dispatch of {run}: {e}"))
}

/// Every slot of the month `cycle`'s invoices go out, in order.
pub async fn run_month(
    deps: &dispatch_slot::Deps,
    cycle: Cycle,
    on_slot: &(dyn Fn(SlotRun, &DispatchReport) + Sync),
) -> anyhow::Result<Vec<(SlotRun, DispatchReport)>> {
    let mut out = Vec::new();
    for run in SlotRun::issue_month(cycle) {
        let report = run_slot(deps, run).await?;
        on_slot(run, &report);
        out.push((run, report));
    }
    Ok(out)
}
