//! Shadow re-pricing locally: the deployable state machine
//! (`infra/statemachines/reprice.asl.json`, created in the emulator from template.yaml) runs
//! on the emulator's Step Functions engine, and its Lambda tasks reach the reprice handler,
//! hosted in this process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use adapters::catalog_store::CatalogStore;
use adapters::data_bucket::DataBucket;
use adapters::{PutOutcome, Vars};
use anyhow::{Context, bail};
use aws_config::SdkConfig;
use aws_sdk_sfn::types::ExecutionStatus;
use billing::Catalog;
use domain::Cycle;
use local_aws::lambda::LambdaHost;
use local_aws::{Emulator, Resources};
use reprice::event::FinishOutput;
pub use reprice::summary::{audit_line, render_terminal as render};

use crate::settle::{function_name, wait_for};

pub const FUNCTION: &str = "RepriceFunction";
pub const STATE_MACHINE: &str = "RepriceStateMachine";

/// Lambda's maximum: the emulator answers the requests of every shard in flight one at a
/// time (see `settle`'s timeouts).
const TIMEOUT: Duration = Duration::from_secs(900);

/// Hosts the reprice function of `resources` in `host`, with the environment template.yaml
/// gives it.
pub async fn host_reprice(
    host: &LambdaHost,
    emulator: &Emulator,
    sdk: &SdkConfig,
    resources: &Resources,
) -> anyhow::Result<()> {
    let deps = Arc::new(reprice::Deps::load(sdk, &resources.function_env(FUNCTION)).await?);
    host.register_fn(emulator, &function_name(resources, FUNCTION)?, TIMEOUT, move |ev| {
        let deps = deps.clone();
        async move { reprice::handle(&deps, ev).await }
    })
    .await?;
    Ok(())
}

/// The file of a catalog version the repository ships (`catalog/{version}.json`).
pub fn shipped_catalog_path(version: &str) -> anyhow::Result<PathBuf> {
    if !reprice::is_key_segment(version) {
        bail!("--catalog is a catalog version such as 2026-v2");
    }
    Ok(local_aws::project_root()?
        .join("catalog")
        .join(format!("{version}.json")))
}

/// Publishes the shipped catalog `version` to the stack's catalog store when it is not
/// there (a version the repository does not ship is left to the run to refuse). Answers
/// whether it published it.
pub async fn publish_if_missing(sdk: &SdkConfig, resources: &Resources, version: &str) -> anyhow::Result<bool> {
    let store = CatalogStore::new(
        adapters::dynamodb_client(sdk),
        resources.env().required("CATALOG_TABLE")?,
    );
    if store.get(version).await?.is_some() {
        return Ok(false);
    }
    let path = shipped_catalog_path(version)?;
    if !path.is_file() {
        return Ok(false);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let catalog = Catalog::from_json(&text, &path.display().to_string())?;
    if catalog.version() != version {
        bail!("{} holds version {}, not {version}", path.display(), catalog.version());
    }
    Ok(store.publish(&catalog).await? == PutOutcome::Created)
}

/// How a re-pricing execution ended.
#[derive(Debug)]
pub enum Repriced {
    Done(Box<FinishOutput>),
    /// The execution did not succeed: its status, error and cause.
    Failed {
        status: ExecutionStatus,
        error: String,
        cause: String,
    },
}

/// Starts the re-pricing of `cycle` with `catalog` (execution `name`) and waits for it.
pub async fn run(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    cycle: Cycle,
    catalog: &str,
    name: &str,
    limit: Duration,
) -> anyhow::Result<Repriced> {
    let started = sfn
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(serde_json::json!({"cycle": cycle.to_string(), "catalog": catalog}).to_string())
        .send()
        .await
        .context("StartExecution")?;
    let outcome = wait_for(sfn, &started.execution_arn, limit, &|_| {}).await?;
    if outcome.status != ExecutionStatus::Succeeded {
        return Ok(Repriced::Failed {
            status: outcome.status,
            error: outcome.error.unwrap_or_default(),
            cause: outcome.cause.unwrap_or_default(),
        });
    }
    let output = outcome.output.unwrap_or_default();
    let done: FinishOutput = serde_json::from_str(&output).context("the execution's output")?;
    Ok(Repriced::Done(Box::new(done)))
}

/// A new execution name for a re-pricing (names are unique per state machine).
pub fn execution_name(cycle: Cycle, catalog: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("reprice-{cycle}-{catalog}-{ms}")
}

/// Copies the run's summary, diff files and report from the data bucket to `dir`; answers
/// the paths written.
pub async fn download(
    sdk: &SdkConfig,
    resources: &Resources,
    done: &FinishOutput,
    dir: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let bucket = DataBucket::new(adapters::s3_client(sdk), resources.env().required("DATA_BUCKET")?);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for key in [
        &done.files.summary,
        &done.files.diff_jsonl,
        &done.files.diff_csv,
        &done.files.report,
    ] {
        let bytes = bucket
            .get_bytes(key)
            .await?
            .with_context(|| format!("s3://{}/{key} is missing", bucket.bucket()))?;
        let name = key.rsplit('/').next().unwrap_or(key);
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
