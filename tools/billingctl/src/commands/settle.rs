//! `settle start --cycle YYYY-MM` and `settle status [--cycle YYYY-MM]`: the settlement state
//! machine of the stack (its `SettlementStateMachineArn` output) run as from the Step
//! Functions console (execution `settle-YYYY-MM`, input `{"cycle":"YYYY-MM"}`), and where a
//! run stands: the execution and the cycle's record in the cycles table
//! (`CyclesTableName`).

use std::str::FromStr;

use adapters::cycles::{CycleStore, ShardStatus};
use aws_config::SdkConfig;
use aws_sdk_sfn::operation::describe_execution::{DescribeExecutionError, DescribeExecutionOutput};
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::error::display::DisplayErrorContext;
use domain::Cycle;
use serde_json::{Value, json};

use crate::api::Failure;
use crate::output::{Output, fields, text};
use crate::stack::Stack;

/// The execution name of a cycle's run, as the console run is named (docs/deploy.md).
pub(crate) fn execution_name(cycle: Cycle) -> String {
    format!("settle-{cycle}")
}

/// The ARN of execution `name` of the state machine `machine`
/// (`arn:…:states:…:stateMachine:M` → `arn:…:states:…:execution:M:name`).
pub(crate) fn execution_arn(machine: &str, name: &str) -> Result<String, Failure> {
    match machine.split_once(":stateMachine:") {
        Some((head, machine_name)) => Ok(format!("{head}:execution:{machine_name}:{name}")),
        None => Err(Failure::Other(
            "the stack's SettlementStateMachineArn is not a state machine ARN".into(),
        )),
    }
}

/// The console page of an execution.
pub(crate) fn console_link(region: &str, execution_arn: &str) -> String {
    format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
    )
}

fn parse_cycle(cycle: &str) -> Result<Cycle, Failure> {
    Cycle::from_str(cycle).map_err(|_| Failure::Exit {
        code: 2,
        message: "--cycle is YYYY-MM with a month 01-12".into(),
    })
}

fn sfn_failure(what: &str, e: impl std::error::Error) -> Failure {
    Failure::Other(format!("Step Functions {what}: {}", DisplayErrorContext(e)))
}

/// `settle start`: StartExecution, unless an execution of that name exists (running or
/// closed: names are unique), which is shown instead (exit 4).
pub(crate) async fn start(sdk: &SdkConfig, stack: &Stack, out: Output, cycle: &str) -> Result<(), Failure> {
    let cycle = parse_cycle(cycle)?;
    let machine = stack.output("SettlementStateMachineArn")?;
    let name = execution_name(cycle);
    let arn = execution_arn(machine, &name)?;
    let sfn = aws_sdk_sfn::Client::new(sdk);
    // A StartExecution with the name and input of a running execution succeeds without
    // starting anything: look first, so that an existing run is never reported as started.
    if let Some(existing) = describe(&sfn, &arn).await? {
        return already(stack, out, &existing);
    }
    let input = json!({ "cycle": cycle.to_string() }).to_string();
    match sfn
        .start_execution()
        .state_machine_arn(machine)
        .name(&name)
        .input(&input)
        .send()
        .await
    {
        Ok(started) => {
            let v = json!({
                "started": true,
                "name": name,
                "execution": started.execution_arn(),
                "input": input,
                "start_date": date(Some(started.start_date())),
                "console": console_link(&stack.region, started.execution_arn()),
            });
            let human = format!(
                "started {name} with input {input}\nexecution  {}\nconsole    {}\nfollow it: billingctl --stack {} settle status --cycle {cycle}",
                started.execution_arn(),
                text(&v["console"]),
                stack.name
            );
            out.print(&v, human);
            Ok(())
        }
        Err(e) => match e.into_service_error() {
            StartExecutionError::ExecutionAlreadyExists(_) => match describe(&sfn, &arn).await? {
                Some(existing) => already(stack, out, &existing),
                None => Err(Failure::Exit {
                    code: 4,
                    message: format!("an execution named {name} exists already"),
                }),
            },
            other => Err(sfn_failure("StartExecution", other)),
        },
    }
}

/// An execution of that name exists: its state, exit code 4.
fn already(stack: &Stack, out: Output, existing: &DescribeExecutionOutput) -> Result<(), Failure> {
    let v = execution_view(&stack.region, existing);
    let mut view = v.clone();
    view["started"] = json!(false);
    out.print(
        &view,
        fields(
            &v,
            &[
                ("execution", "name"),
                ("status", "status"),
                ("started", "start_date"),
                ("stopped", "stop_date"),
                ("console", "console"),
            ],
        ),
    );
    Err(Failure::Exit {
        code: 4,
        message: format!(
            "execution {} exists already ({}): execution names are unique for 90 days; the console's \
             Redrive or New execution with another name runs it again",
            text(&v["name"]),
            text(&v["status"])
        ),
    })
}

/// `settle status`: the execution `settle-YYYY-MM` and the cycle's record.
pub(crate) async fn status(sdk: &SdkConfig, stack: &Stack, out: Output, cycle: Option<&str>) -> Result<(), Failure> {
    let machine = stack.output("SettlementStateMachineArn")?;
    let sfn = aws_sdk_sfn::Client::new(sdk);
    let cycle = match cycle {
        Some(c) => parse_cycle(c)?,
        None => latest_cycle(&sfn, machine, stack).await?,
    };
    let name = execution_name(cycle);
    let execution = describe(&sfn, &execution_arn(machine, &name)?)
        .await?
        .map(|e| execution_view(&stack.region, &e));
    let store = CycleStore::new(aws_sdk_dynamodb::Client::new(sdk), stack.output("CyclesTableName")?);
    let record = store
        .get(cycle)
        .await
        .map_err(|e| Failure::Other(format!("the cycles table: {e}")))?;
    if execution.is_none() && record.is_none() {
        return Err(Failure::Exit {
            code: 3,
            message: format!(
                "no execution {name} and no record of cycle {cycle}: start it with billingctl --stack {} settle start --cycle {cycle}",
                stack.name
            ),
        });
    }
    let shards = match &record {
        Some(r) => {
            let shards = store
                .shards(cycle)
                .await
                .map_err(|e| Failure::Other(format!("the cycles table: {e}")))?;
            let count = |s: ShardStatus| shards.values().filter(|r| r.status == s).count();
            json!({
                "total": r.shard_count,
                "done": count(ShardStatus::Done),
                "in_progress": count(ShardStatus::InProgress),
                "failed": count(ShardStatus::Failed),
                "not_started": (r.shard_count as usize).saturating_sub(shards.len()),
                "rendered": shards.values().filter(|r| r.render.is_some()).count(),
            })
        }
        None => Value::Null,
    };
    let record = record
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    let v = json!({
        "cycle": cycle.to_string(),
        "execution": execution,
        "record": record,
        "shards": shards,
    });
    out.print(&v, show_status(&v));
    Ok(())
}

fn show_status(v: &Value) -> String {
    let mut names: Vec<(&str, &str)> = vec![("cycle", "cycle")];
    if v["execution"].is_null() {
        names.push(("execution", "execution"));
    } else {
        names.extend([
            ("execution", "execution.name"),
            ("  status", "execution.status"),
            ("  started", "execution.start_date"),
            ("  stopped", "execution.stop_date"),
            ("  error", "execution.error"),
            ("  console", "execution.console"),
        ]);
    }
    if v["record"].is_null() {
        names.push(("state", "record"));
    } else {
        names.extend([
            ("state", "record.status"),
            ("run", "record.run_id"),
            ("runs", "record.runs"),
            ("catalog", "record.catalog_version"),
            ("template", "record.template_version"),
            ("shards", "shards.total"),
            ("  done", "shards.done"),
            ("  in progress", "shards.in_progress"),
            ("  failed", "shards.failed"),
            ("  not started", "shards.not_started"),
            ("  rendered", "shards.rendered"),
            ("customers", "record.customers"),
            ("bills", "record.bills"),
            ("not billable", "record.not_billable"),
            ("checksum (KRW)", "record.checksum"),
            ("started", "record.started_at"),
            ("finished", "record.finished_at"),
        ]);
    }
    let mut out = fields(v, &names);
    if v["execution"].is_null() {
        out.push_str("\n(no execution of that name)");
    }
    if v["record"].is_null() {
        out.push_str("\n(no record: the run has not begun the cycle)");
    }
    for r in v["record"]["reasons"].as_array().into_iter().flatten() {
        out.push_str(&format!("\nreason: {}", text(r)));
    }
    out
}

/// DescribeExecution; `None` when there is no execution of that ARN.
async fn describe(sfn: &aws_sdk_sfn::Client, arn: &str) -> Result<Option<DescribeExecutionOutput>, Failure> {
    match sfn.describe_execution().execution_arn(arn).send().await {
        Ok(d) => Ok(Some(d)),
        Err(e) => match e.into_service_error() {
            DescribeExecutionError::ExecutionDoesNotExist(_) => Ok(None),
            other => Err(sfn_failure("DescribeExecution", other)),
        },
    }
}

/// The cycle of the latest `settle-YYYY-MM` execution (ListExecutions answers newest first).
async fn latest_cycle(sfn: &aws_sdk_sfn::Client, machine: &str, stack: &Stack) -> Result<Cycle, Failure> {
    let listed = sfn
        .list_executions()
        .state_machine_arn(machine)
        .max_results(100)
        .send()
        .await
        .map_err(|e| sfn_failure("ListExecutions", e.into_service_error()))?;
    listed
        .executions()
        .iter()
        .find_map(|e| e.name().strip_prefix("settle-").and_then(|c| Cycle::from_str(c).ok()))
        .ok_or_else(|| Failure::Exit {
            code: 3,
            message: format!(
                "no settle-YYYY-MM execution in the stack's latest 100: give --cycle, or start one with \
                 billingctl --stack {} settle start --cycle YYYY-MM",
                stack.name
            ),
        })
}

fn date(d: Option<&DateTime>) -> Value {
    d.and_then(|d| d.fmt(Format::DateTime).ok())
        .map(Value::String)
        .unwrap_or(Value::Null)
}

fn execution_view(region: &str, e: &DescribeExecutionOutput) -> Value {
    json!({
        "name": e.name(),
        "arn": e.execution_arn(),
        "status": e.status().as_str(),
        "start_date": date(Some(e.start_date())),
        "stop_date": date(e.stop_date()),
        "input": e.input(),
        "error": e.error(),
        "console": console_link(region, e.execution_arn()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns_of_a_run() {
        let cycle = Cycle::from_str("2026-11").ok().unwrap();
        assert_eq!(execution_name(cycle), "settle-2026-11");
        assert_eq!(
            execution_arn(
                "arn:aws:states:ap-northeast-2:123456789012:stateMachine:billing-settlement",
                "settle-2026-11"
            )
            .ok()
            .unwrap(),
            "arn:aws:states:ap-northeast-2:123456789012:execution:billing-settlement:settle-2026-11"
        );
        assert!(execution_arn("arn:aws:lambda:x", "settle-2026-11").is_err());
    }
}
