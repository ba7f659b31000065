//! The first step: the file checked as a whole, and applied here when it is small (a catalog,
//! a usage file) or cut into chunks for the map (a customers file).

use adapters::PutOutcome;
use adapters::StoreError;
use adapters::data_bucket::usage_key;
use billing::Catalog;
use chrono::Utc;
use domain::Cycle;
use serde::{Deserialize, Serialize};

use crate::event::{Chunk, FileRef, PlanInput, PlanOutput, PlanStatus, Work};
use crate::finish::write_report;
use crate::lines::{BOM, Splitter};
use crate::planner::{CustomerPlanner, FileProblem};
use crate::records::{Problem, Rejection};
use crate::report::Report;
use crate::store::{self, Read, quoted};
use crate::usage::check_usage;
use crate::zone::{self, Kind, Target};
use crate::{Deps, IngestError};

/// The note a report carries when the file began with a byte-order mark.
pub const BOM_NOTE: &str = "a UTF-8 byte-order mark was skipped";

/// What the plan of a customers file leaves for the last step (`ingest/<id>/plan.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanDoc {
    pub records: u64,
    pub accepted: u64,
    pub rejected_lines: u64,
    pub rejections: Vec<Rejection>,
    pub rejections_truncated: u64,
    pub notes: Vec<String>,
    pub shards: Vec<u32>,
}

pub(crate) async fn plan(deps: &Deps, input: PlanInput) -> Result<PlanOutput, IngestError> {
    let started_at = Utc::now();
    let ev = &input.event;
    if ev.detail.bucket.name != deps.bucket_name {
        return Err(IngestError::InvalidInput(
            "the event names a bucket other than this stack's data bucket".into(),
        ));
    }
    let key = ev.detail.object.key.clone();
    if !key.starts_with(zone::INCOMING) {
        return Err(IngestError::InvalidInput(
            "the object is not in the drop zone (incoming/)".into(),
        ));
    }
    let etag = quoted(ev.detail.object.etag.as_deref().unwrap_or_default());
    let id = input
        .execution
        .as_deref()
        .and_then(|e| e.rsplit(':').next())
        .filter(|n| !n.is_empty())
        .unwrap_or(&ev.id)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(80)
        .collect::<String>();
    let file = FileRef {
        id,
        bucket: deps.bucket_name.clone(),
        key: key.clone(),
        etag: etag.clone(),
        size: ev.detail.object.size,
        uploaded_at: ev.time,
        execution: input.execution.clone(),
        started_at,
    };
    let target = zone::classify(&key);
    let mut report = Report::new(&key, &etag, target.ok().map(Target::kind), started_at);
    report.execution = input.execution.clone();
    tracing::info!(kind = ?report.kind, size = file.size, "planning an upload");
    let target = match target {
        Ok(t) => t,
        Err(reason) => return rejected(deps, report, Problem::new("key", reason)).await,
    };
    let kind = target.kind();
    let limit = match kind {
        Kind::Catalog => deps.config.limits.catalog,
        Kind::Customers => deps.config.limits.customers,
        Kind::Usage => deps.config.limits.usage,
    };
    if file.size == 0 {
        return rejected(deps, report, Problem::new("file", "is empty")).await;
    }
    if file.size > limit {
        return rejected(deps, report, over_limit(file.size, limit, kind)).await;
    }
    match target {
        Target::Catalog => catalog(deps, &file, report, limit).await,
        Target::Usage { cycle, shard } => usage(deps, &file, report, limit, cycle, shard).await,
        Target::Customers => customers(deps, file, report, limit).await,
    }
}

fn over_limit(size: u64, limit: u64, kind: Kind) -> Problem {
    Problem::new(
        "file",
        format!(
            "is {size} bytes, over the limit of {limit} bytes for a {} file",
            kind.as_str()
        ),
    )
}

/// The answer when the object was replaced or deleted before it was read: the newer upload
/// has its own execution and report; this one writes nothing.
fn replaced(kind: Kind) -> PlanOutput {
    tracing::info!("the object was replaced or deleted before it was read; the newer upload is ingested on its own");
    PlanOutput {
        status: PlanStatus::Done,
        kind: Some(kind),
        report: None,
        work: None,
    }
}

async fn rejected(deps: &Deps, mut report: Report, problem: Problem) -> Result<PlanOutput, IngestError> {
    report.reject_file(problem);
    let at = write_report(deps, &mut report).await?;
    Ok(PlanOutput {
        status: PlanStatus::Rejected,
        kind: report.kind,
        report: Some(at),
        work: None,
    })
}

async fn done(deps: &Deps, mut report: Report) -> Result<PlanOutput, IngestError> {
    report.settle_status();
    let at = write_report(deps, &mut report).await?;
    Ok(PlanOutput {
        status: PlanStatus::Done,
        kind: report.kind,
        report: Some(at),
        work: None,
    })
}

/// The whole object, if it is still the uploaded version and within `limit`.
async fn read_whole(deps: &Deps, file: &FileRef, limit: u64) -> Result<Option<Result<Vec<u8>, Problem>>, StoreError> {
    let resource = format!("s3://{}/{}", file.bucket, file.key);
    let Read::Body(mut body) = store::read_version(&deps.s3, &file.bucket, &file.key, &file.etag, None).await? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(file.size.min(limit) as usize);
    while let Some(piece) = body.try_next().await.map_err(|e| store::body_error(&resource, e))? {
        if (out.len() + piece.len()) as u64 > limit {
            let kind = zone::classify(&file.key).map_or(Kind::Customers, Target::kind);
            return Ok(Some(Err(over_limit(
                out.len() as u64 + piece.len() as u64,
                limit,
                kind,
            ))));
        }
        out.extend_from_slice(&piece);
    }
    Ok(Some(Ok(out)))
}

/// Strips a byte-order mark (noted) and checks the text is UTF-8, naming the first bad line.
fn text(bytes: &[u8], report: &mut Report) -> Result<usize, Problem> {
    let start = if bytes.starts_with(BOM) {
        report.notes.push(BOM_NOTE.to_owned());
        BOM.len()
    } else {
        0
    };
    match std::str::from_utf8(&bytes[start..]) {
        Ok(_) => Ok(start),
        Err(e) => {
            let line = bytes[..start + e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
            Err(Problem::new(
                "file",
                format!("is not UTF-8 (first bad byte on line {line})"),
            ))
        }
    }
}

async fn catalog(deps: &Deps, file: &FileRef, mut report: Report, limit: u64) -> Result<PlanOutput, IngestError> {
    let bytes = match read_whole(deps, file, limit).await? {
        None => return Ok(replaced(Kind::Catalog)),
        Some(Err(p)) => return rejected(deps, report, p).await,
        Some(Ok(b)) => b,
    };
    let start = match text(&bytes, &mut report) {
        Ok(s) => s,
        Err(p) => return rejected(deps, report, p).await,
    };
    let json = String::from_utf8_lossy(&bytes[start..]);
    report.lines = 1;
    let catalog = match Catalog::from_json(&json, &file.key) {
        Ok(c) => c,
        Err(e) => {
            let reason = domain::text::reason(&format!("is not a valid catalog: {e}"));
            return rejected(deps, report, Problem::new("file", reason)).await;
        }
    };
    report.catalog_version = Some(catalog.version().to_owned());
    match deps.catalogs.publish(&catalog).await {
        Ok(PutOutcome::Created) => report.applied = 1,
        Ok(PutOutcome::AlreadyExists) => report.unchanged = 1,
        Err(StoreError::Conflict { .. }) => {
            let reason = format!(
                "catalog version {} is already published with different content; publish it under a new version",
                catalog.version()
            );
            return rejected(deps, report, Problem::new("version", reason)).await;
        }
        Err(e) => return Err(e.into()),
    }
    done(deps, report).await
}

async fn usage(
    deps: &Deps,
    file: &FileRef,
    mut report: Report,
    limit: u64,
    cycle: Cycle,
    shard: u32,
) -> Result<PlanOutput, IngestError> {
    report.cycle = Some(cycle.to_string());
    report.shard = Some(shard);
    let bytes = match read_whole(deps, file, limit).await? {
        None => return Ok(replaced(Kind::Usage)),
        Some(Err(p)) => return rejected(deps, report, p).await,
        Some(Ok(b)) => b,
    };
    let start = match text(&bytes, &mut report) {
        Ok(s) => s,
        Err(p) => return rejected(deps, report, p).await,
    };
    let version = deps.config.catalog_version.clone();
    report.catalog_version = Some(version.clone());
    let Some(catalog) = deps.catalogs.get(&version).await? else {
        let reason = format!(
            "usage is checked against catalog version {version} (the stack's CatalogVersion), which is not published; upload the catalog first"
        );
        return rejected(deps, report, Problem::new("file", reason)).await;
    };
    let customers = deps.customers.shard(shard).await?;
    let mut in_shard = crate::usage::in_service(&customers.customers, cycle);
    // A stored record that does not decode still names a customer of the shard (settlement
    // reports it): its usage is not refused here.
    in_shard.extend(customers.errors.iter().map(|e| (e.customer_id.clone(), true)));
    let checked = check_usage(&bytes[start..], &catalog, cycle, shard, &in_shard);
    let checked = match checked {
        Ok(c) => c,
        Err(FileProblem(reason)) => return rejected(deps, report, Problem::new("file", reason)).await,
    };
    let key = usage_key(cycle, shard);
    store::put(
        &deps.s3,
        &deps.bucket_name,
        &key,
        "text/csv; charset=utf-8",
        checked.output,
    )
    .await?;
    report.lines = checked.records;
    report.rejected_lines = checked.rejections.count;
    report.rejections_truncated = checked.rejections.truncated();
    report.rejections = checked.rejections.listed;
    report.applied = report.lines - report.rejected_lines;
    report.usage_key = Some(key);
    done(deps, report).await
}

async fn customers(deps: &Deps, file: FileRef, mut report: Report, limit: u64) -> Result<PlanOutput, IngestError> {
    let resource = format!("s3://{}/{}", file.bucket, file.key);
    let (stored, pages) = store::customer_shards(&deps.ddb, &deps.customers_table).await?;
    tracing::info!(stored = stored.len(), pages, "stored customers' shards read");
    let Read::Body(mut body) = store::read_version(&deps.s3, &file.bucket, &file.key, &file.etag, None).await? else {
        return Ok(replaced(Kind::Customers));
    };
    let mut planner = CustomerPlanner::new(deps.config.quiet, &stored, deps.config.cut);
    let mut splitter = Splitter::new(0, 1);
    let mut read = 0u64;
    let mut problem: Option<Problem> = None;
    while let Some(piece) = body.try_next().await.map_err(|e| store::body_error(&resource, e))? {
        read += piece.len() as u64;
        if read > limit {
            problem = Some(over_limit(read, limit, Kind::Customers));
            break;
        }
        if let Err(FileProblem(reason)) = splitter.push(&piece, |l| planner.line(&l)) {
            problem = Some(Problem::new("file", reason));
            break;
        }
        if splitter.pending() > crate::records::MAX_LINE_BYTES * 4 {
            // A line this long is refused anyway; holding more of it would only cost memory.
            problem = Some(Problem::new(
                "file",
                format!("has a line longer than {} bytes", crate::records::MAX_LINE_BYTES * 4),
            ));
            break;
        }
    }
    let bom = splitter.bom;
    if problem.is_none()
        && let Err(FileProblem(reason)) = splitter.finish(|l| planner.line(&l))
    {
        problem = Some(Problem::new("file", reason));
    }
    if bom {
        report.notes.push(BOM_NOTE.to_owned());
    }
    if let Some(p) = problem {
        return rejected(deps, report, p).await;
    }
    let planned = planner.finish();
    drop(stored);
    if planned.records == 0 {
        return rejected(
            deps,
            report,
            Problem::new("file", "holds no records (only blank lines)"),
        )
        .await;
    }
    let doc = PlanDoc {
        records: planned.records,
        accepted: planned.accepted,
        rejected_lines: planned.rejections.count,
        rejections_truncated: planned.rejections.truncated(),
        rejections: planned.rejections.listed.clone(),
        notes: report.notes.clone(),
        shards: planned.shards.iter().copied().collect(),
    };
    tracing::info!(
        records = doc.records,
        rejected = doc.rejected_lines,
        chunks = planned.chunks.len(),
        "customers file planned"
    );
    if planned.accepted == 0 {
        report.lines = doc.records;
        report.rejected_lines = doc.rejected_lines;
        report.rejections = doc.rejections;
        report.rejections_truncated = doc.rejections_truncated;
        report.shards = Some(Vec::new());
        return done(deps, report).await;
    }
    let skips = planned.skips();
    let chunks: Vec<Chunk> = planned
        .chunks
        .iter()
        .zip(skips)
        .enumerate()
        .map(|(i, (c, skip))| Chunk {
            file: file.clone(),
            index: i as u32,
            start: c.start,
            end: c.end,
            first_line: c.first_line,
            skip,
        })
        .collect();
    let plan_key = zone::plan_key(&file.id);
    let manifest_key = zone::chunks_key(&file.id);
    deps.bucket.put_json(&plan_key, &doc).await?;
    deps.bucket.put_json(&manifest_key, &chunks).await?;
    Ok(PlanOutput {
        status: PlanStatus::Planned,
        kind: Some(Kind::Customers),
        report: None,
        work: Some(Work {
            file,
            manifest_bucket: deps.bucket_name.clone(),
            manifest_key,
            plan_key,
            chunks: chunks.len() as u32,
            max_concurrency: deps.config.max_concurrency,
        }),
    })
}
