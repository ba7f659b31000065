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
pub async fn dispatch_deps(sdk: &SdkConfig, resources: &Resources) -> anyhow::Result<dispatch_slot::Deps> {
    dispatch_slot::Deps::load(sdk, &resources.function_env(DISPATCH))
        .await
        .with_context(|| format!("environment of {DISPATCH}"))
}

/// Runs the slot `run` as the schedule would, with the function's 900 s
/// timeout, and its continuations as the continuation queue's trigger would:
/// the report adds them up.
pub async fn run_slot(deps: &dispatch_slot::Deps, run: SlotRun) -> anyhow::Result<DispatchReport> {
    let invoke = |event: DispatchEvent| async move {
        dispatch_slot::dispatch(
            deps,
            LambdaEvent::new(event, crate::invocation(Duration::from_secs(900))),
        )
        .await
        .map_err(|e| anyhow::anyhow!("dispatch of {run}: {e}"))
    };
    let mut report = invoke(DispatchEvent::at(run.start())).await?;
    let mut continued = report.continued;
    // Bounded: a run continues itself at most `max_continuations` times.
    for _ in 0..deps.config.max_continuations {
        if !continued {
            break;
        }
        let Some(queue) = &deps.continuation else { break };
        let jobs = queue.receive(1, 1).await?;
        let Some(job) = jobs.first() else {
            anyhow::bail!("dispatch of {run} continued, but no continuation is on the queue");
        };
        let event = dispatch_slot::parse_event(&job.body).map_err(|e| anyhow::anyhow!("continuation: {e}"))?;
        let next = invoke(event).await?;
        queue.delete(job).await?;
        continued = next.continued;
        let complete = next.complete;
        report += next;
        report.complete = complete;
    }
    Ok(report)
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

/// The month's runs as a grid people can read: one line per day, one column
/// per two-hour slot (Asia/Seoul), the deliveries each run enqueued; `-` for a
/// slot the quiet window closes.
pub fn slot_grid(runs: &[(SlotRun, DispatchReport)]) -> String {
    let mut out = String::from("           day    ");
    for h in (0..24).step_by(2) {
        out.push_str(&format!("{h:>6}"));
    }
    out.push_str("   total\n");
    let mut day: Option<chrono::NaiveDate> = None;
    let mut line = String::new();
    let mut day_total = 0u64;
    let flush = |line: &mut String, total: u64, out: &mut String| {
        if !line.is_empty() {
            out.push_str(line);
            out.push_str(&format!("{total:>8}\n"));
            line.clear();
        }
    };
    for (run, r) in runs {
        if day != Some(run.date) {
            flush(&mut line, day_total, &mut out);
            day = Some(run.date);
            day_total = 0;
            line.push_str(&format!("           {}", run.date.format("%m-%d %a")));
        }
        let n = r.enqueued_email + r.enqueued_sms;
        day_total += n;
        if r.open {
            line.push_str(&format!("{n:>6}"));
        } else {
            line.push_str(&format!("{:>6}", "-"));
        }
    }
    flush(&mut line, day_total, &mut out);
    out
}
