//! `FinishCycle`: the reconciliation that decides whether a cycle is
//! settled.
//!
//! It does not trust the map's status (the local emulator does not even fail
//! a Distributed Map when a child fails): it checks that every shard of the
//! run's manifest is done with the pinned catalog version, that each shard
//! read as many customers as the shard directory lists and billed every
//! billable one, that the bills table holds exactly the recorded number of
//! bills per shard (so nobody is billed twice or left over from an older
//! run), that every shard's invoices are rendered — one delivery per bill,
//! rendered from the bills the shard recorded with the pinned template
//! version, and exactly that many items in the deliveries table — and sums
//! the checksums. Then it marks the cycle `SETTLED`, or
//! `FAILED` with the reasons, with a write conditioned on this run still
//! owning the cycle (`SETTLING` or `FAILED`).
//!
//! **A failed reconciliation fails this task** (`CycleReconciliationFailed`,
//! after the `FAILED` record is written), not a later `Fail` state: a
//! redrive of the execution re-runs the states that did not exit — a `Fail`
//! state never exits, so a redrive that started there would only fail again.
//! Failing here, a redrive runs the failed map items and then this
//! reconciliation again, for the same run: a `FAILED` cycle owned by that run
//! is reconciled again and becomes `SETTLED` once its causes are fixed. A
//! cycle owned by another run is refused (`NotOwner`), and a `SETTLED` one
//! answers its settled reconciliation unchanged.
//!
//! Reasons are bounded: at most [`MAX_REASONS`] of at most
//! [`domain::text::MAX_REASON_BYTES`] each on the record, and the error
//! answered (and logged) is cut to the same size.

use std::collections::HashSet;

use adapters::bills::BillStore;
use adapters::cycles::{CycleRecord, CycleStatus, CycleStore, ShardRecord, ShardStatus};
use adapters::data_bucket::DataBucket;
use adapters::deliveries::DeliveryStore;
use adapters::{ConfigError, StoreError, Vars};
use aws_config::SdkConfig;
use chrono::{SecondsFormat, Utc};
use domain::Cycle;
use domain::settlement::{FinishInput, FinishOutput, FinishStatus, ShardTask};
use domain::text::{MAX_ID_BYTES, check_id, reason};
use futures::{StreamExt, TryStreamExt, stream};
use lambda_runtime::LambdaEvent;

/// Reasons kept on the cycle record (the output says how many there were).
pub const MAX_REASONS: usize = 50;
/// Bill-count queries in flight.
pub const COUNT_CONCURRENCY: usize = 16;

pub struct Deps {
    pub cycles: CycleStore,
    pub bills: BillStore,
    pub deliveries: DeliveryStore,
    pub bucket: DataBucket,
}

impl Deps {
    /// Builds the dependencies from one SDK configuration and the function's
    /// variables (`CYCLES_TABLE`, `BILLS_TABLE`, `DELIVERIES_TABLE`, `DATA_BUCKET`).
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let ddb = adapters::dynamodb_client(sdk);
        Ok(Deps {
            cycles: CycleStore::new(ddb.clone(), vars.required("CYCLES_TABLE")?),
            bills: BillStore::new(ddb.clone(), vars.required("BILLS_TABLE")?),
            deliveries: DeliveryStore::new(ddb, vars.required("DELIVERIES_TABLE")?),
            bucket: DataBucket::new(adapters::s3_client(sdk), vars.required("DATA_BUCKET")?),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error(
        "cycle {cycle} does not reconcile ({count} reasons, listed on the cycle record), first: {first}. \
         Fix the cause, then redrive this execution (the failed shards and this reconciliation run again) \
         or start a new one"
    )]
    NotReconciled { cycle: Cycle, count: usize, first: String },
    #[error("cycle {0} has not been begun")]
    UnknownCycle(Cycle),
    #[error("cycle {cycle} is {status:?} under run {owner}, not under this run")]
    NotOwner {
        cycle: Cycle,
        status: CycleStatus,
        owner: String,
    },
    #[error("the manifest s3://{bucket}/{key} is missing")]
    ManifestMissing { bucket: String, key: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl runtime::ErrorType for FinishError {
    fn error_type(&self) -> &'static str {
        match self {
            FinishError::InvalidInput(_) => "InvalidInput",
            FinishError::NotReconciled { .. } => "CycleReconciliationFailed",
            FinishError::UnknownCycle(_) => "UnknownCycle",
            FinishError::NotOwner { .. } => "NotOwner",
            FinishError::ManifestMissing { .. } => "ManifestMissing",
            FinishError::Store(s) => runtime::store_error_type(s),
        }
    }
}

runtime::diagnostic_from!(FinishError);

fn output(r: &CycleRecord, status: FinishStatus) -> FinishOutput {
    FinishOutput {
        cycle: r.cycle,
        run_id: r.run_id.clone(),
        status,
        shards: r.shard_count,
        shards_done: r.shards_done,
        customers: r.customers,
        bills: r.bills,
        not_billable: r.not_billable,
        checksum: r.checksum,
        reasons: r.reasons.clone(),
    }
}

/// Why a settled shard's rendering does not reconcile, if it does not.
fn render_problem(s: &ShardRecord, template_version: &str) -> Option<String> {
    let Some(r) = &s.render else {
        return Some("invoices not rendered".into());
    };
    if r.bills_digest != s.digest {
        Some("invoices were rendered from other bills than the ones settled".into())
    } else if r.template_version != template_version {
        Some(format!(
            "invoices rendered with template {} but the cycle pins {template_version}",
            r.template_version
        ))
    } else if r.deliveries != s.bills {
        Some(format!("{} deliveries for {} bills", r.deliveries, s.bills))
    } else {
        None
    }
}

#[tracing::instrument(skip_all, fields(cycle = %event.payload.cycle))]
pub async fn handle(deps: &Deps, event: LambdaEvent<FinishInput>) -> Result<FinishOutput, FinishError> {
    let FinishInput { cycle, run_id } = event.payload;
    check_id("run_id", &run_id, MAX_ID_BYTES).map_err(|e| FinishError::InvalidInput(e.to_string()))?;
    let rec = deps.cycles.get(cycle).await?.ok_or(FinishError::UnknownCycle(cycle))?;
    if rec.run_id != run_id {
        return Err(not_owner(cycle, &rec));
    }
    match rec.status {
        // A retry of a finish that already went through: same answer.
        CycleStatus::Settled => return Ok(output(&rec, FinishStatus::Settled)),
        // This run's own cycle failed reconciliation before: a redrive (or a
        // retry) reconciles it again.
        CycleStatus::Failed | CycleStatus::Settling => {}
    }
    let manifest: Vec<ShardTask> =
        deps.bucket
            .get_json(&rec.manifest_key)
            .await?
            .ok_or_else(|| FinishError::ManifestMissing {
                bucket: deps.bucket.bucket().to_owned(),
                key: rec.manifest_key.clone(),
            })?;
    let shards = deps.cycles.shards(cycle).await?;

    let mut reasons = Vec::new();
    let (mut customers, mut bills, mut not_billable, mut checksum, mut done) = (0u64, 0u64, 0u64, 0i64, 0u32);
    let in_manifest: HashSet<u32> = manifest.iter().map(|t| t.shard).collect();
    let mut to_count = Vec::new();
    for task in &manifest {
        let Some(s) = shards.get(&task.shard) else {
            reasons.push(format!("shard {}: not settled", task.shard));
            continue;
        };
        match s.status {
            ShardStatus::Done if s.catalog_version != rec.catalog_version => reasons.push(format!(
                "shard {}: settled with catalog {} but the cycle pins {}",
                task.shard, s.catalog_version, rec.catalog_version
            )),
            ShardStatus::Done => {
                if s.customers != task.expected_customers {
                    reasons.push(format!(
                        "shard {}: read {} customers, the directory lists {}",
                        task.shard, s.customers, task.expected_customers
                    ));
                } else if s.bills + s.not_billable != s.customers {
                    reasons.push(format!(
                        "shard {}: {} bills + {} not billable != {} customers",
                        task.shard, s.bills, s.not_billable, s.customers
                    ));
                } else if let Some(why) = render_problem(s, &rec.template_version) {
                    reasons.push(format!("shard {}: {why}", task.shard));
                } else {
                    done += 1;
                    customers += s.customers;
                    bills += s.bills;
                    not_billable += s.not_billable;
                    checksum += s.checksum;
                    to_count.push((task.shard, s.bills));
                }
            }
            ShardStatus::InProgress => reasons.push(format!("shard {}: still in progress", task.shard)),
            ShardStatus::Failed => reasons.push(format!(
                "shard {}: failed with {} errors: {}",
                task.shard,
                s.error_count,
                s.errors.first().map_or("(none recorded)", String::as_str)
            )),
        }
    }
    let mut strays: Vec<u32> = shards.keys().filter(|s| !in_manifest.contains(s)).copied().collect();
    strays.sort_unstable();
    for s in strays {
        reasons.push(format!("shard {s}: has a record but is not in this run's manifest"));
    }
    // The tables must hold exactly the recorded bills, and as many
    // deliveries, for every done shard.
    let counted: Vec<(u32, u64, u64, u64)> = stream::iter(to_count)
        .map(|(shard, expected)| async move {
            let (bills, deliveries) =
                tokio::try_join!(deps.bills.count(cycle, shard), deps.deliveries.count(cycle, shard))?;
            Ok::<_, StoreError>((shard, expected, bills, deliveries))
        })
        .buffer_unordered(COUNT_CONCURRENCY)
        .try_collect()
        .await?;
    let mut mismatched: Vec<_> = counted
        .into_iter()
        .filter(|(_, want, bills, deliveries)| want != bills || want != deliveries)
        .collect();
    mismatched.sort_unstable();
    for (shard, want, got_bills, got_deliveries) in mismatched {
        done -= 1;
        reasons.push(format!(
            "shard {shard}: the tables hold {got_bills} bills and {got_deliveries} deliveries, the shard recorded {want} bills"
        ));
    }

    let status = if reasons.is_empty() {
        CycleStatus::Settled
    } else {
        CycleStatus::Failed
    };
    let total_reasons = reasons.len();
    if total_reasons > MAX_REASONS {
        reasons.truncate(MAX_REASONS);
        reasons.push(format!("… and {} more", total_reasons - MAX_REASONS));
    }
    for r in &mut reasons {
        if r.len() > domain::text::MAX_REASON_BYTES {
            *r = reason(r);
        }
    }
    let finished = CycleRecord {
        status,
        finished_at: Some(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
        shards_done: done,
        customers,
        bills,
        not_billable,
        checksum,
        reasons,
        ..rec
    };
    if !deps.cycles.finish(&finished).await? {
        let now = deps.cycles.get(cycle).await?.ok_or(FinishError::UnknownCycle(cycle))?;
        // Our own write, applied, whose answer was lost (the SDK's retry was
        // refused by the condition it had just made false): it is ours.
        let ours =
            now.run_id == finished.run_id && now.status == finished.status && now.finished_at == finished.finished_at;
        if !ours {
            return Err(not_owner(cycle, &now));
        }
    }
    tracing::info!(?status, bills, checksum, reasons = total_reasons, "cycle reconciled");
    if status == CycleStatus::Settled {
        Ok(output(&finished, FinishStatus::Settled))
    } else {
        Err(FinishError::NotReconciled {
            cycle,
            count: total_reasons,
            first: finished.reasons.first().cloned().unwrap_or_default(),
        })
    }
}

fn not_owner(cycle: Cycle, rec: &CycleRecord) -> FinishError {
    FinishError::NotOwner {
        cycle,
        status: rec.status,
        owner: domain::text::bounded(&rec.run_id, MAX_ID_BYTES).into_owned(),
    }
}
