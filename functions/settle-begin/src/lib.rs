//! `BeginCycle`: the first state of the settlement state machine.
//!
//! Freezes the cycle for this run with a conditional write (open or failed →
//! `SETTLING`, pinning the catalog version and the usage cut-off) and writes
//! the shard manifest the Distributed Map reads. A cycle already `SETTLED`
//! short-circuits; a cycle `SETTLING` under another run is refused while that
//! run is alive and taken over once it has ended; the owning run's own retry
//! or redrive resumes. A cycle `FAILED` under another run is taken over too,
//! unless that run is running again (a redrive of it reconciles its own
//! failed cycle): then it is refused with `CycleBusy` like a `SETTLING` one.
//!
//! The run id and the versions of the input are refused beyond
//! [`domain::text::MAX_ID_BYTES`], naming the field; error answers are cut to
//! [`domain::text::MAX_REASON_BYTES`].
//!
//! The invoice template version a cycle pins: the input's `template_version`,
//! else the version the operators activated (`billingctl templates activate`,
//! the `template-version` setting of [`adapters::settings`]), else
//! `TEMPLATE_VERSION`.

use adapters::catalog_store::CatalogStore;
use adapters::cycles::{BeginOutcome, CycleRecord, CycleStatus, CycleStore};
use adapters::data_bucket::{DataBucket, SHARD_DIRECTORY_KEY, ShardDirectory};
use adapters::settings::{SettingsStore, TEMPLATE_VERSION};
use adapters::{ConfigError, StoreError, Vars};
use aws_config::SdkConfig;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_smithy_types::error::display::DisplayErrorContext;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::Cycle;
use domain::settlement::{BeginInput, BeginOutput, BeginStatus, ShardTask};
use domain::slots::{SEOUL, Slot};
use domain::text::{MAX_ID_BYTES, check_id, check_len};
use lambda_runtime::LambdaEvent;

pub struct Config {
    pub default_catalog_version: String,
    /// Invoice template version a cycle pins unless its input names another.
    pub default_template_version: String,
    pub max_concurrency: u32,
}

pub struct Deps {
    pub cycles: CycleStore,
    pub catalogs: CatalogStore,
    pub bucket: DataBucket,
    pub sfn: aws_sdk_sfn::Client,
    /// The operators' runtime settings (`ADMIN_TABLE`): the activated
    /// template version.
    pub settings: Option<SettingsStore>,
    /// The embedded invoice templates, parsed and validated once per instance.
    pub templates: invoice::Templates,
    pub config: Config,
}

impl Deps {
    /// Builds the dependencies from one SDK configuration and the function's
    /// variables (`CYCLES_TABLE`, `CATALOG_TABLE`, `DATA_BUCKET`,
    /// `CATALOG_VERSION`, `TEMPLATE_VERSION`, optional `ADMIN_TABLE` and
    /// `MAX_CONCURRENCY`).
    /// The embedded templates are validated here, and the default version must
    /// be one of them: a bad deployment fails at cold start, not mid-month.
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let ddb = adapters::dynamodb_client(sdk);
        let default_template_version = vars.required("TEMPLATE_VERSION")?;
        let templates = invoice::Templates::embedded()
            .and_then(|t| t.version(&default_template_version).map(|_| ()).map(|()| t))
            .map_err(|e| ConfigError::Invalid {
                name: "TEMPLATE_VERSION",
                reason: e.to_string(),
            })?;
        Ok(Deps {
            cycles: CycleStore::new(ddb.clone(), vars.required("CYCLES_TABLE")?),
            catalogs: CatalogStore::new(ddb.clone(), vars.required("CATALOG_TABLE")?),
            settings: vars
                .lookup("ADMIN_TABLE")
                .filter(|t| !t.trim().is_empty())
                .map(|t| SettingsStore::new(ddb, t)),
            bucket: DataBucket::new(adapters::s3_client(sdk), vars.required("DATA_BUCKET")?),
            sfn: aws_sdk_sfn::Client::new(sdk),
            templates,
            config: Config {
                default_catalog_version: vars.required("CATALOG_VERSION")?,
                default_template_version,
                max_concurrency: vars.parsed("MAX_CONCURRENCY", 40)?,
            },
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The version is kept for the caller, not shown (it comes from the execution's input).
    #[error("the catalog version asked for is not published")]
    CatalogMissing(String),
    #[error("invoice templates: {0}")]
    TemplateMissing(String),
    #[error("no shard directory at s3://{bucket}/{key}: load customers first")]
    ShardDirectoryMissing { bucket: String, key: String },
    #[error("cycle {cycle} is being settled by another run that is still running: {run_id}")]
    CycleBusy { cycle: Cycle, run_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl runtime::ErrorType for BeginError {
    fn error_type(&self) -> &'static str {
        match self {
            BeginError::InvalidInput(_) => "InvalidInput",
            BeginError::CatalogMissing(_) => "CatalogMissing",
            BeginError::TemplateMissing(_) => "TemplateMissing",
            BeginError::ShardDirectoryMissing { .. } => "ShardDirectoryMissing",
            BeginError::CycleBusy { .. } => "CycleBusy",
            BeginError::Store(s) => runtime::store_error_type(s),
        }
    }
}

runtime::diagnostic_from!(BeginError);

/// The cycle an execution settles: `cycle` if given, else the month before
/// the scheduler's `scheduled_time` (in Asia/Seoul).
pub fn resolve_cycle(input: &BeginInput) -> Result<Cycle, BeginError> {
    if let Some(c) = &input.input.cycle {
        return c
            .parse()
            .map_err(|e: domain::CycleError| BeginError::InvalidInput(e.to_string()));
    }
    if let Some(t) = &input.input.scheduled_time {
        let t: DateTime<Utc> = DateTime::parse_from_rfc3339(t)
            .map_err(|_| BeginError::InvalidInput("scheduled_time is not an RFC 3339 time".into()))?
            .with_timezone(&Utc);
        let (date, _) = Slot::of_instant(t);
        return Cycle::containing(date)
            .map(Cycle::prev)
            .map_err(|e| BeginError::InvalidInput(e.to_string()));
    }
    Err(BeginError::InvalidInput(
        "give either \"cycle\" (YYYY-MM) or \"scheduled_time\"".into(),
    ))
}

pub fn manifest_key(cycle: Cycle) -> String {
    format!("manifests/{cycle}/shards.json")
}

/// Usage recorded at or after this instant belongs to the next cycle: the
/// first moment of the next month in Asia/Seoul.
pub fn cutoff(cycle: Cycle) -> String {
    let next = cycle.next().first_day();
    let local = next.and_hms_opt(0, 0, 0).unwrap_or_default();
    match local.and_local_timezone(SEOUL).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        None => local.to_string(),
    }
}

#[tracing::instrument(skip_all, fields(run_id = %event.payload.run_id))]
pub async fn handle(deps: &Deps, event: LambdaEvent<BeginInput>) -> Result<BeginOutput, BeginError> {
    let input = event.payload;
    if input.run_id.trim().is_empty() {
        return Err(BeginError::InvalidInput("run_id is empty".into()));
    }
    let ids = [
        ("run_id", Some(&input.run_id)),
        ("catalog_version", input.input.catalog_version.as_ref()),
        ("template_version", input.input.template_version.as_ref()),
    ];
    for (field, value) in ids {
        if let Some(v) = value {
            check_len(field, v, MAX_ID_BYTES).map_err(|e| BeginError::InvalidInput(e.to_string()))?;
        }
    }
    check_id("run_id", &input.run_id, MAX_ID_BYTES).map_err(|e| BeginError::InvalidInput(e.to_string()))?;
    let cycle = resolve_cycle(&input)?;
    let catalog_version = input
        .input
        .catalog_version
        .clone()
        .unwrap_or_else(|| deps.config.default_catalog_version.clone());

    // Settled already? Then nothing else matters (not even the catalog).
    let current = deps.cycles.get(cycle).await?;
    if let Some(current) = current.as_ref().filter(|c| c.status == CycleStatus::Settled) {
        return Ok(output(
            deps,
            current,
            BeginStatus::AlreadySettled,
            format!(
                "cycle {cycle} was settled by {} with {} bills; nothing to do",
                current.run_id, current.bills
            ),
        ));
    }
    if deps.catalogs.get(&catalog_version).await?.is_none() {
        return Err(BeginError::CatalogMissing(catalog_version));
    }
    let template_version = match (&input.input.template_version, &deps.settings) {
        (Some(v), _) => v.clone(),
        (None, Some(settings)) => match settings.get(TEMPLATE_VERSION).await? {
            Some(active) => active.value,
            None => deps.config.default_template_version.clone(),
        },
        (None, None) => deps.config.default_template_version.clone(),
    };
    // A version that does not exist fails now, before a single shard is
    // settled, not in every RenderShard.
    deps.templates
        .version(&template_version)
        .map_err(|e| BeginError::TemplateMissing(e.to_string()))?;
    let directory: ShardDirectory =
        deps.bucket
            .get_json(SHARD_DIRECTORY_KEY)
            .await?
            .ok_or_else(|| BeginError::ShardDirectoryMissing {
                bucket: deps.bucket.bucket().to_owned(),
                key: SHARD_DIRECTORY_KEY.to_owned(),
            })?;
    if directory.shards.is_empty() {
        return Err(BeginError::InvalidInput(format!(
            "the shard directory {SHARD_DIRECTORY_KEY} lists no shards"
        )));
    }

    let record = CycleRecord {
        cycle,
        status: CycleStatus::Settling,
        run_id: input.run_id.clone(),
        catalog_version,
        template_version,
        cutoff: cutoff(cycle),
        shard_count: u32::try_from(directory.shards.len()).unwrap_or(u32::MAX),
        manifest_key: manifest_key(cycle),
        started_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        finished_at: None,
        // Counts the runs that took the cycle: a restart after FAILED is the next one.
        runs: current.as_ref().map_or(1, |c| c.runs + 1),
        shards_done: 0,
        customers: 0,
        bills: 0,
        not_billable: 0,
        checksum: 0,
        reasons: Vec::new(),
    };
    // A failed cycle whose run is being redriven is that run's to reconcile.
    if let Some(failed) = current
        .as_ref()
        .filter(|c| c.status == CycleStatus::Failed && c.run_id != input.run_id)
        && run_is_alive(deps, &failed.run_id).await
    {
        return Err(BeginError::CycleBusy {
            cycle,
            run_id: failed.run_id.clone(),
        });
    }
    let (owned, status, message) = match deps.cycles.begin(&record).await? {
        BeginOutcome::Started(r) => (r, BeginStatus::Started, format!("cycle {cycle} frozen for this run")),
        BeginOutcome::Resumed(r) => (r, BeginStatus::Resumed, format!("cycle {cycle}: this run resumes")),
        BeginOutcome::AlreadySettled(r) => {
            let msg = format!(
                "cycle {cycle} was settled by {} with {} bills; nothing to do",
                r.run_id, r.bills
            );
            return Ok(output(deps, &r, BeginStatus::AlreadySettled, msg));
        }
        BeginOutcome::OwnedByAnotherRun(current) => {
            if run_is_alive(deps, &current.run_id).await {
                return Err(BeginError::CycleBusy {
                    cycle,
                    run_id: current.run_id,
                });
            }
            let taken = CycleRecord {
                runs: current.runs + 1,
                ..record
            };
            if !deps.cycles.take_over(&current.run_id, &taken).await? {
                return Err(BeginError::CycleBusy {
                    cycle,
                    run_id: current.run_id,
                });
            }
            let msg = format!("cycle {cycle}: taken over from ended run {}", current.run_id);
            (taken, BeginStatus::Started, msg)
        }
    };
    // The manifest is derived from the directory and the owned record, so
    // rewriting it on a resume is harmless.
    let tasks: Vec<ShardTask> = directory
        .shards
        .iter()
        .map(|s| ShardTask {
            cycle,
            shard: s.shard,
            catalog_version: owned.catalog_version.clone(),
            template_version: owned.template_version.clone(),
            run_id: owned.run_id.clone(),
            expected_customers: s.customers,
        })
        .collect();
    deps.bucket.put_json(&owned.manifest_key, &tasks).await?;
    tracing::info!(%cycle, shards = tasks.len(), catalog = %owned.catalog_version, ?status, "cycle begun");
    Ok(output(deps, &owned, status, message))
}

fn output(deps: &Deps, r: &CycleRecord, status: BeginStatus, message: String) -> BeginOutput {
    BeginOutput {
        cycle: r.cycle,
        run_id: r.run_id.clone(),
        status,
        catalog_version: r.catalog_version.clone(),
        template_version: r.template_version.clone(),
        shard_count: r.shard_count,
        manifest_bucket: deps.bucket.bucket().to_owned(),
        manifest_key: r.manifest_key.clone(),
        max_concurrency: deps.config.max_concurrency,
        message,
    }
}

/// Whether the execution that owns a cycle is still running. An execution
/// that cannot be found (deleted history, or an id that is not an execution
/// ARN) counts as ended; an API failure counts as alive (refuse rather than
/// risk two owners).
async fn run_is_alive(deps: &Deps, run_id: &str) -> bool {
    match deps.sfn.describe_execution().execution_arn(run_id).send().await {
        Ok(out) => out.status == ExecutionStatus::Running,
        Err(e) => {
            let gone = e
                .as_service_error()
                .is_some_and(|x| x.is_execution_does_not_exist() || x.is_invalid_arn());
            if !gone {
                tracing::warn!(run_id, error = %DisplayErrorContext(&e), "cannot tell whether the owning run is alive");
            }
            !gone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::settlement::StartInput;

    fn input(cycle: Option<&str>, scheduled: Option<&str>) -> BeginInput {
        BeginInput {
            input: StartInput {
                cycle: cycle.map(String::from),
                scheduled_time: scheduled.map(String::from),
                catalog_version: None,
                template_version: None,
            },
            run_id: "run".into(),
        }
    }

    #[test]
    fn resolves_the_cycle() {
        assert_eq!(
            resolve_cycle(&input(Some("2026-11"), None)).unwrap().to_string(),
            "2026-11"
        );
        // 1 December 02:00 KST is 30 November 17:00 UTC: settles November.
        assert_eq!(
            resolve_cycle(&input(None, Some("2026-11-30T17:00:00Z")))
                .unwrap()
                .to_string(),
            "2026-11"
        );
        assert_eq!(
            resolve_cycle(&input(None, Some("2027-01-01T00:00:00+09:00")))
                .unwrap()
                .to_string(),
            "2026-12"
        );
        for bad in [
            input(None, None),
            input(Some("2026-13"), None),
            input(None, Some("yesterday")),
        ] {
            let e = resolve_cycle(&bad).unwrap_err();
            assert!(matches!(e, BeginError::InvalidInput(_)), "{e}");
        }
    }

    #[test]
    fn cutoff_is_next_month_in_seoul() {
        assert_eq!(cutoff("2026-11".parse().unwrap()), "2026-12-01T00:00:00+09:00");
        assert_eq!(cutoff("2026-12".parse().unwrap()), "2027-01-01T00:00:00+09:00");
    }

    #[test]
    fn errors_have_stable_types() {
        let d: lambda_runtime::Diagnostic = BeginError::CycleBusy {
            cycle: "2026-11".parse().unwrap(),
            run_id: "r".into(),
        }
        .into();
        assert_eq!(d.error_type, "CycleBusy");
        assert!(d.error_message.contains("2026-11"));
    }
}
