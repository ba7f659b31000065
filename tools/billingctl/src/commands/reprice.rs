//! `reprice --cycle YYYY-MM --catalog VERSION`: shadow re-pricing of a settled month on the
//! stack's reprice state machine (its `RepriceStateMachineArn` output), as from the Step
//! Functions console (input `{"cycle": "2026-11", "catalog": "2026-v2"}`): starts an
//! execution, waits for it, downloads the run's summary, diff and report from the data bucket
//! (`DataBucketName`) and prints the summary (docs/reprice.md).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_smithy_types::error::display::DisplayErrorContext;
use domain::Cycle;
use reprice::event::FinishOutput;
use serde_json::json;

use crate::api::Failure;
use crate::output::Output;
use crate::stack::{Stack, s3_client};

/// What `reprice` takes.
pub(crate) struct Args {
    pub(crate) cycle: String,
    pub(crate) catalog: String,
    pub(crate) out: Option<PathBuf>,
    pub(crate) timeout: u64,
}

fn usage(message: &str) -> Failure {
    Failure::Exit {
        code: 2,
        message: message.to_owned(),
    }
}

/// The execution's name: unique, and the run's folder under `shadow/{cycle}/{catalog}/`.
pub(crate) fn execution_name(cycle: Cycle, catalog: &str, ms: u128) -> String {
    format!("reprice-{cycle}-{catalog}-{ms}")
}

pub(crate) async fn reprice(sdk: &SdkConfig, stack: &Stack, out: Output, a: Args) -> Result<(), Failure> {
    let cycle = Cycle::from_str(&a.cycle).map_err(|_| usage("--cycle is YYYY-MM with a month 01-12"))?;
    if !reprice::is_key_segment(&a.catalog) {
        return Err(usage(
            "--catalog is a catalog version: 1 to 80 letters, digits, '.', '_' or '-' (e.g. 2026-v2)",
        ));
    }
    let machine = stack.output("RepriceStateMachineArn")?;
    let bucket = stack.output("DataBucketName")?.to_owned();
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let name = execution_name(cycle, &a.catalog, ms);
    let input = json!({"cycle": cycle.to_string(), "catalog": a.catalog}).to_string();
    let sfn = aws_sdk_sfn::Client::new(sdk);
    let started = sfn
        .start_execution()
        .state_machine_arn(machine)
        .name(&name)
        .input(&input)
        .send()
        .await
        .map_err(|e| Failure::Other(format!("Step Functions StartExecution: {}", DisplayErrorContext(&e))))?;
    if !out.json {
        eprintln!("started {name} with input {input}; waiting (up to {} s)", a.timeout);
    }
    let arn = started.execution_arn().to_owned();
    let t = Instant::now();
    let done = loop {
        let d =
            sfn.describe_execution().execution_arn(&arn).send().await.map_err(|e| {
                Failure::Other(format!("Step Functions DescribeExecution: {}", DisplayErrorContext(&e)))
            })?;
        match d.status() {
            ExecutionStatus::Running => {}
            ExecutionStatus::Succeeded => break d,
            other => {
                return Err(Failure::Exit {
                    code: 1,
                    message: format!(
                        "execution {name} ended {}: {}: {}",
                        other.as_str(),
                        d.error().unwrap_or_default(),
                        d.cause().unwrap_or_default()
                    ),
                });
            }
        }
        if t.elapsed() > Duration::from_secs(a.timeout) {
            return Err(Failure::Exit {
                code: 7,
                message: format!(
                    "execution {name} still running after {} s; it goes on: {arn}",
                    a.timeout
                ),
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let finished: FinishOutput = serde_json::from_str(done.output().unwrap_or_default())
        .map_err(|e| Failure::Other(format!("the execution's output does not read: {e}")))?;
    let dir = a.out.unwrap_or_else(|| PathBuf::from(&name));
    std::fs::create_dir_all(&dir).map_err(|e| Failure::Other(format!("creating {}: {e}", dir.display())))?;
    let s3 = s3_client(sdk);
    let mut files = Vec::new();
    for key in [
        &finished.files.summary,
        &finished.files.diff_jsonl,
        &finished.files.diff_csv,
        &finished.files.report,
    ] {
        let object =
            s3.get_object().bucket(&bucket).key(key).send().await.map_err(|e| {
                Failure::Other(format!("S3 GetObject s3://{bucket}/{key}: {}", DisplayErrorContext(&e)))
            })?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| Failure::Other(format!("reading s3://{bucket}/{key}: {e}")))?
            .into_bytes();
        let path = dir.join(key.rsplit('/').next().unwrap_or(key));
        std::fs::write(&path, &bytes).map_err(|e| Failure::Other(format!("writing {}: {e}", path.display())))?;
        files.push(path.display().to_string());
    }
    let v = json!({
        "execution": arn,
        "name": name,
        "bucket": bucket,
        "prefix": finished.prefix,
        "files": files,
        "summary": finished.summary,
    });
    let human = format!(
        "{}files      s3://{bucket}/{}/ → {}",
        reprice::summary::render_terminal(&finished.summary),
        finished.prefix,
        files.join(", ")
    );
    out.print(&v, human);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_named_after_its_cycle_and_catalog() {
        let cycle = Cycle::from_str("2026-11").ok().unwrap();
        let name = execution_name(cycle, "2026-v2", 1_700_000_000_000);
        assert_eq!(name, "reprice-2026-11-2026-v2-1700000000000");
        assert!(reprice::is_key_segment(&name) && name.len() <= 80);
    }
}
