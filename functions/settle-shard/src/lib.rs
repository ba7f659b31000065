//! `SettleShard`: one item of the settlement map.
//!
//! Reads the shard's customers and its usage file, computes every bill with
//! the shared rules, and writes them under deterministic keys (one write per
//! bill, lines embedded), and the rating snapshot the bills were computed
//! from (`adapters::snapshots`: the customers' billing attributes, no contact
//! data), which shadow re-pricing and corrections re-rate from. Then records
//! the shard's result (bill count, checksum, digest). Properties:
//!
//! * **Idempotent:** a shard already done for the same catalog version is
//!   skipped; any re-run writes identical items under identical keys.
//! * **Resumable:** bills are written in customer order in chunks; when the
//!   invocation nears its deadline, the shard records its cursor and returns
//!   the retryable `ShardIncomplete`, and the map's retry continues after the
//!   cursor. Every invocation writes at least one chunk, so it always
//!   progresses.
//! * **Strict:** a missing usage file, a bad usage line, an unknown product or
//!   plan, an undecodable customer or a customer count that disagrees with the
//!   shard directory fails the shard with an error naming the shard, file and
//!   line (or customer), and records it — never a silently short bill.
//! * **Gated:** only the run that owns the cycle, while it is `SETTLING` or
//!   `FAILED` (its own redrive), writes anything; a stray or replayed task
//!   of another run, or any task once the month is `SETTLED`, is refused
//!   with `NotOwner` and writes nothing. The shard record is written in one
//!   transaction with a check of the cycle item; the bills (a
//!   `BatchWriteItem`, which takes no condition) are written only after a
//!   consistent read of the cycle item says this run still owns it — at the
//!   start and before every chunk. What that leaves: a chunk whose check
//!   passed may land after the cycle changed hands. It cannot change a
//!   settled month: the cycle can only be `SETTLED` by a `FinishCycle` that
//!   read this shard's record, and a record this run writes after the
//!   chunk is refused. If this run finishes the month itself, the chunk
//!   holds the bills this run recorded (deterministic keys and content). If
//!   another run took the cycle over (only once this run's execution has
//!   ended), the chunk — at most `chunk` bills, sent in the single
//!   `BatchWriteItem` call that was in flight — lands within that call's
//!   retries, seconds, while the new run must still begin the cycle, write
//!   the manifest, start its map and settle, render and reconcile every
//!   shard before the month is `SETTLED`; and the new run's own settlement
//!   of this shard rewrites every bill after it read its inputs.
//! * **Bounded:** the run id and versions of the task are refused beyond
//!   [`domain::text::MAX_ID_BYTES`]; every error text recorded, answered or
//!   logged is cut to [`domain::text::MAX_REASON_BYTES`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use adapters::bills::{BillStore, shard_digest};
use adapters::catalog_store::CatalogStore;
use adapters::customers::CustomerStore;
use adapters::cycles::{CycleStore, Gated, NotOwned, ShardRecord, ShardStatus};
use adapters::data_bucket::{DataBucket, usage_key};
use adapters::{ConfigError, StoreError, Vars};
use aws_config::SdkConfig;
use billing::{Catalog, parse_usage, settle};
use chrono::{SecondsFormat, Utc};
use domain::Bill;
use domain::settlement::{ShardResult, ShardTask};
use domain::text::{MAX_ID_BYTES, check_id, check_len, reason};
use lambda_runtime::LambdaEvent;
use tokio::sync::Mutex;

/// How many error messages a shard record keeps (the count is exact).
pub const MAX_RECORDED_ERRORS: usize = adapters::cycles::MAX_SHARD_ERRORS;

pub struct Config {
    /// Stop this long before the invocation's deadline: more than one AWS
    /// call may take ([`adapters::SDK_OPERATION_TIMEOUT`]), so that no call
    /// started before the pause outlives the invocation.
    pub deadline_margin: Duration,
    /// Bills written between two deadline checks.
    pub chunk: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            deadline_margin: adapters::SDK_OPERATION_TIMEOUT + Duration::from_secs(5),
            chunk: 250,
        }
    }
}

pub struct Deps {
    pub customers: CustomerStore,
    pub catalogs: CatalogStore,
    pub bills: BillStore,
    pub cycles: CycleStore,
    pub bucket: DataBucket,
    pub config: Config,
    /// Catalog versions already loaded by this (warm) Lambda instance.
    pub catalog_cache: Mutex<HashMap<String, Arc<Catalog>>>,
}

impl Deps {
    pub fn new(
        customers: CustomerStore,
        catalogs: CatalogStore,
        bills: BillStore,
        cycles: CycleStore,
        bucket: DataBucket,
        config: Config,
    ) -> Self {
        Deps {
            customers,
            catalogs,
            bills,
            cycles,
            bucket,
            config,
            catalog_cache: Mutex::default(),
        }
    }

    /// Builds the dependencies from one SDK configuration and the function's
    /// variables (`CUSTOMERS_TABLE`, `CATALOG_TABLE`, `BILLS_TABLE`,
    /// `CYCLES_TABLE`, `DATA_BUCKET`).
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let ddb = adapters::dynamodb_client(sdk);
        Ok(Deps::new(
            CustomerStore::new(ddb.clone(), vars.required("CUSTOMERS_TABLE")?),
            CatalogStore::new(ddb.clone(), vars.required("CATALOG_TABLE")?),
            BillStore::new(ddb.clone(), vars.required("BILLS_TABLE")?),
            CycleStore::new(ddb, vars.required("CYCLES_TABLE")?),
            DataBucket::new(adapters::s3_client(sdk), vars.required("DATA_BUCKET")?),
            Config::default(),
        ))
    }

    async fn catalog(&self, version: &str) -> Result<Arc<Catalog>, ShardError> {
        let mut cache = self.catalog_cache.lock().await;
        if let Some(c) = cache.get(version) {
            return Ok(c.clone());
        }
        let c = Arc::new(
            self.catalogs
                .get(version)
                .await?
                .ok_or_else(|| ShardError::CatalogMissing(version.to_owned()))?,
        );
        cache.insert(version.to_owned(), c.clone());
        Ok(c)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A stray or replayed task: the cycle is not this run's to write.
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    /// The version is kept for the caller, not shown (it comes from the execution's input).
    #[error("the catalog version asked for is not published")]
    CatalogMissing(String),
    #[error("shard {shard}: {message}")]
    BadInput { shard: u32, message: String },
    #[error(
        "shard {shard}: wrote {written} of {total} bills before the deadline; the retry continues after customer {cursor}"
    )]
    Incomplete {
        shard: u32,
        written: usize,
        total: usize,
        cursor: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl runtime::ErrorType for ShardError {
    fn error_type(&self) -> &'static str {
        match self {
            ShardError::InvalidInput(_) => "InvalidInput",
            ShardError::NotOwned(_) => "NotOwner",
            ShardError::CatalogMissing(_) => "CatalogMissing",
            ShardError::BadInput { .. } => "ShardInputInvalid",
            ShardError::Incomplete { .. } => "ShardIncomplete",
            ShardError::Store(s) => runtime::store_error_type(s),
        }
    }
}

runtime::diagnostic_from!(ShardError);

pub use adapters::deadline::pause_point;

/// Refuses a task whose identifiers are over-long, naming the field.
fn check_task(task: &ShardTask) -> Result<(), ShardError> {
    for (field, value) in [
        ("run_id", &task.run_id),
        ("catalog_version", &task.catalog_version),
        ("template_version", &task.template_version),
    ] {
        check_len(field, value, MAX_ID_BYTES).map_err(|e| ShardError::InvalidInput(e.to_string()))?;
    }
    if task.run_id.trim().is_empty() {
        return Err(ShardError::InvalidInput("run_id is empty".into()));
    }
    check_id("run_id", &task.run_id, MAX_ID_BYTES).map_err(|e| ShardError::InvalidInput(e.to_string()))?;
    Ok(())
}

/// Writes the shard record through the gate.
async fn record(deps: &Deps, task: &ShardTask, rec: &ShardRecord) -> Result<(), ShardError> {
    match deps.cycles.put_shard(task.cycle, rec).await? {
        Gated::Applied | Gated::Stale => Ok(()),
        Gated::NotOwned(n) => Err(refused(n)),
    }
}

fn refused(n: NotOwned) -> ShardError {
    tracing::warn!(status = ?n.status, "refused: the cycle is not this run's to write");
    ShardError::NotOwned(n)
}

/// The gate, read: this run may still write the cycle.
async fn check_gate(deps: &Deps, task: &ShardTask) -> Result<(), ShardError> {
    deps.cycles
        .owned_by(task.cycle, &task.run_id)
        .await?
        .map(drop)
        .map_err(refused)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[tracing::instrument(skip_all, fields(cycle = %event.payload.cycle, shard = event.payload.shard))]
pub async fn handle(deps: &Deps, event: LambdaEvent<ShardTask>) -> Result<ShardResult, ShardError> {
    let (task, ctx) = event.into_parts();
    let stop_at = pause_point(ctx.deadline(), SystemTime::now(), deps.config.deadline_margin);
    check_task(&task)?;
    check_gate(deps, &task).await?;
    let existing = deps.cycles.get_shard(task.cycle, task.shard).await?;
    if let Some(done) = existing
        .as_ref()
        .filter(|r| r.status == ShardStatus::Done && r.catalog_version == task.catalog_version)
    {
        tracing::info!(
            bills = done.bills,
            "shard already settled for this catalog version; skipped"
        );
        return Ok(ShardResult {
            cycle: task.cycle,
            shard: task.shard,
            skipped: true,
            bills: done.bills,
            not_billable: done.not_billable,
            checksum: done.checksum,
        });
    }
    let attempts = existing.as_ref().map_or(0, |r| r.attempts) + 1;
    let mut record = ShardRecord {
        shard: task.shard,
        status: ShardStatus::InProgress,
        run_id: task.run_id.clone(),
        catalog_version: task.catalog_version.clone(),
        cursor: None,
        customers: 0,
        bills: 0,
        not_billable: 0,
        usage_lines: 0,
        checksum: 0,
        digest: String::new(),
        error_count: 0,
        errors: Vec::new(),
        attempts,
        updated_at: now(),
        render: None,
        suspense: None,
    };

    let bills = match compute(deps, &task, &mut record).await {
        Ok(bills) => bills,
        Err(ShardError::BadInput { shard, message }) => {
            record.status = ShardStatus::Failed;
            if record.errors.is_empty() {
                record.errors.push(message.clone());
                record.error_count = 1;
            }
            record.updated_at = now();
            self::record(deps, &task, &record).await?;
            tracing::warn!(errors = record.error_count, "shard failed on its input");
            return Err(ShardError::BadInput { shard, message });
        }
        Err(e) => return Err(e),
    };

    // Resume after the cursor of an earlier attempt with the same catalog
    // version (bills are deterministic, so what was written is what we'd write).
    let resume_after = existing
        .filter(|r| r.status == ShardStatus::InProgress && r.catalog_version == task.catalog_version)
        .and_then(|r| r.cursor);
    let start = resume_after
        .as_deref()
        .map_or(0, |c| bills.partition_point(|b| b.customer_id.as_str() <= c));
    let mut written = start;
    for chunk in bills[start..].chunks(deps.config.chunk.max(1)) {
        check_gate(deps, &task).await?;
        deps.bills.put_all(chunk).await?;
        written += chunk.len();
        if written < bills.len() && stop_at.is_some_and(|t| SystemTime::now() >= t) {
            let cursor = chunk.last().map(|b| b.customer_id.to_string()).unwrap_or_default();
            record.cursor = Some(cursor.clone());
            record.updated_at = now();
            self::record(deps, &task, &record).await?;
            tracing::info!(written, total = bills.len(), "deadline near: shard paused");
            return Err(ShardError::Incomplete {
                shard: task.shard,
                written,
                total: bills.len(),
                cursor,
            });
        }
    }

    record.status = ShardStatus::Done;
    record.cursor = None;
    record.updated_at = now();
    self::record(deps, &task, &record).await?;
    tracing::info!(bills = record.bills, checksum = record.checksum, "shard settled");
    Ok(ShardResult {
        cycle: task.cycle,
        shard: task.shard,
        skipped: false,
        bills: record.bills,
        not_billable: record.not_billable,
        checksum: record.checksum,
    })
}

/// Reads the inputs and computes the shard's bills, filling the counts of
/// `record`. Any input problem is `BadInput` with the errors in `record`.
async fn compute(deps: &Deps, task: &ShardTask, record: &mut ShardRecord) -> Result<Vec<Bill>, ShardError> {
    let shard = task.shard;
    let bad = |message: String| ShardError::BadInput {
        shard,
        message: reason(&message),
    };
    let catalog = deps.catalog(&task.catalog_version).await?;
    let (customers, usage) = tokio::try_join!(deps.customers.shard(shard), deps.bucket.get(task.cycle, shard))?;
    record.customers = customers.customers.len() as u64 + customers.errors.len() as u64;
    if !customers.errors.is_empty() {
        record.error_count = customers.errors.len() as u64;
        record.errors = customers
            .errors
            .iter()
            .take(MAX_RECORDED_ERRORS)
            .map(|e| reason(&e.to_string()))
            .collect();
        return Err(bad(format!(
            "{} customer records cannot be read, first: {}",
            customers.errors.len(),
            record.errors[0]
        )));
    }
    if record.customers != task.expected_customers {
        return Err(bad(format!(
            "the store holds {} customers but the shard directory says {}",
            record.customers, task.expected_customers
        )));
    }
    let file = usage_key(task.cycle, shard);
    let usage = usage.ok_or_else(|| bad(format!("usage file s3://{}/{file} is missing", deps.bucket.bucket())))?;

    // Parsing and rating are CPU work: keep them off the I/O threads. The rating snapshot
    // (what a shadow re-pricing or a correction re-rates from later) is written meanwhile.
    let catalog2 = catalog.clone();
    let cycle = task.cycle;
    let file2 = file.clone();
    let customers = customers.customers;
    let snapshot = deps
        .bucket
        .put_snapshot(cycle, shard, adapters::snapshots::document(&customers));
    let rating = tokio::task::spawn_blocking(move || {
        let parsed = parse_usage(&usage, &file2, &catalog2);
        let s = settle(&catalog2, cycle, &customers, parsed, &file2);
        let errors: Vec<String> = s
            .usage_errors
            .iter()
            .map(|e| reason(&e.to_string()))
            .chain(s.rating_errors.iter().map(|e| reason(&e.to_string())))
            .collect();
        (s, errors)
    });
    let (settled, ()) = tokio::try_join!(
        async { rating.await.map_err(|e| bad(format!("settlement worker failed: {e}"))) },
        async { snapshot.await.map_err(ShardError::from) },
    )?;
    let (s, errors) = settled;
    record.usage_lines = u64::from(s.usage_lines);
    if !errors.is_empty() {
        record.error_count = errors.len() as u64;
        record.errors = errors.iter().take(MAX_RECORDED_ERRORS).cloned().collect();
        return Err(bad(format!(
            "{} bad inputs in {file}, first: {}",
            errors.len(),
            errors[0]
        )));
    }
    // Usage of customers with no day of service is not an error: it is set aside in a suspense
    // file beside the usage (re-written the same by a re-run) and listed on the shard record,
    // for operators to re-rate or drop (docs/billing-rules.md).
    if !s.suspended.is_empty() {
        let key = billing::suspense_key(task.cycle, shard);
        deps.bucket
            .put_bytes(&key, billing::suspense_csv(&s.suspended), "text/csv")
            .await?;
        record.suspense = Some(adapters::cycles::SuspenseRecord {
            count: s.suspended.len() as u64,
            key,
            first: s
                .suspended
                .iter()
                .take(MAX_RECORDED_ERRORS)
                .map(|x| adapters::cycles::SuspendedLine {
                    file: x.file.clone(),
                    line: x.line,
                    customer_id: x.customer_id.clone(),
                    product: x.product.clone(),
                })
                .collect(),
        });
        tracing::warn!(
            suspended = s.suspended.len(),
            "usage of customers with no day of service set aside"
        );
    }
    record.bills = s.bills.len() as u64;
    record.not_billable = u64::from(s.not_billable);
    record.checksum = s.checksum.won();
    record.digest = shard_digest(&s.bills);
    Ok(s.bills)
}
