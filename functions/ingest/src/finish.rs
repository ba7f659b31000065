//! The last step of a customers file, and the report every step that ends an ingestion
//! writes.

use adapters::StoreError;
use adapters::data_bucket::{SHARD_DIRECTORY_KEY, ShardDirectory, ShardEntry};
use chrono::Utc;
use futures::{StreamExt, TryStreamExt, stream};

use crate::event::{ChunkResult, FinishInput, FinishOutput};
use crate::plan::PlanDoc;
use crate::report::{FileError, Report, Status, rfc3339};
use crate::store;
use crate::zone::{self, Kind};
use crate::{Deps, IngestError};

/// Attempts at the shard directory's conditional write before giving up (another ingestion
/// wrote it in between each time).
const DIRECTORY_ATTEMPTS: u32 = 8;

/// Writes `report` (its `finished_at` set now) to `ingest-reports/…`, and to `rejected/…`
/// when anything was rejected (else a stale `rejected/…` of an earlier upload under the same
/// key is removed); logs its metric line. Returns the report's key.
pub(crate) async fn write_report(deps: &Deps, report: &mut Report) -> Result<String, StoreError> {
    let now = Utc::now();
    report.finished_at = rfc3339(now);
    let key = zone::report_key(&report.file);
    let rejected = zone::rejected_key(&report.file);
    deps.bucket.put_json(&key, report).await?;
    if report.has_rejections() {
        deps.bucket.put_json(&rejected, report).await?;
    } else {
        store::delete(&deps.s3, &deps.bucket_name, &rejected).await?;
    }
    println!("{}", report.emf_line(&deps.config.stack, now));
    tracing::info!(
        status = report.status.as_str(),
        lines = report.lines,
        applied = report.applied,
        unchanged = report.unchanged,
        rejected_lines = report.rejected_lines,
        report = %key,
        "ingest report written"
    );
    Ok(key)
}

pub(crate) async fn finish(deps: &Deps, input: FinishInput) -> Result<FinishOutput, IngestError> {
    let work = input.work;
    let file = &work.file;
    let doc: PlanDoc = deps
        .bucket
        .get_json(&work.plan_key)
        .await?
        .ok_or_else(|| IngestError::InvalidInput("the plan of this ingestion is missing".into()))?;
    let mut report = Report::new(&file.key, &file.etag, Some(Kind::Customers), file.started_at);
    report.execution = file.execution.clone();
    report.lines = doc.records;
    report.rejected_lines = doc.rejected_lines;
    report.rejections = doc.rejections;
    report.rejections_truncated = doc.rejections_truncated;
    report.notes = doc.notes;
    report.shards = Some(doc.shards.clone());

    let reported: std::collections::BTreeMap<u32, ChunkResult> = input
        .results
        .into_iter()
        .filter_map(|v| serde_json::from_value::<ChunkResult>(v).ok())
        .map(|r| (r.index, r))
        .collect();
    let mut missing = Vec::new();
    let mut kept = 0;
    for i in 0..work.chunks {
        match reported.get(&i) {
            Some(r) => {
                report.applied += r.applied;
                report.unchanged += r.unchanged;
                kept += r.preferences_kept;
            }
            None => missing.push(i),
        }
    }
    if kept > 0 {
        report.notes.push(format!(
            "preferences set through the API after the upload were kept for {kept} customers"
        ));
    }
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(20).map(u32::to_string).collect();
        let message = format!(
            "{} of {} chunks did not finish (chunks {}{}): the lines of the other chunks are applied; upload the file again to apply it whole",
            missing.len(),
            work.chunks,
            shown.join(", "),
            if missing.len() > shown.len() { ", …" } else { "" }
        );
        report.status = Status::Failed;
        report.file_error = Some(FileError {
            field: "file".into(),
            reason: message.clone(),
        });
        write_report(deps, &mut report).await?;
        return Err(IngestError::ChunksFailed(message));
    }
    update_directory(deps, &doc.shards).await?;
    report.settle_status();
    let at = write_report(deps, &mut report).await?;
    Ok(FinishOutput {
        status: report.status.as_str().to_owned(),
        report: at,
        applied: report.applied,
        unchanged: report.unchanged,
        rejected_lines: report.rejected_lines,
    })
}

/// Sets the customer count of each of `shards` in the shard directory, counted from the
/// table (a shard left with none leaves the directory); the others stay as they are. The
/// directory is written only if no one wrote it since it was read.
pub(crate) async fn update_directory(deps: &Deps, shards: &[u32]) -> Result<(), IngestError> {
    if shards.is_empty() {
        return Ok(());
    }
    let counts: Vec<(u32, u64)> = stream::iter(shards.iter().copied())
        .map(|shard| async move {
            store::count_shard(&deps.ddb, &deps.customers_table, shard)
                .await
                .map(|n| (shard, n))
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    for _ in 0..DIRECTORY_ATTEMPTS {
        let current =
            store::get_json_versioned::<ShardDirectory>(&deps.s3, &deps.bucket_name, SHARD_DIRECTORY_KEY).await?;
        let (mut dir, etag) = match current {
            Some((d, e)) => (d, Some(e)),
            None => (ShardDirectory { shards: Vec::new() }, None),
        };
        for &(shard, customers) in &counts {
            dir.shards.retain(|e| e.shard != shard);
            if customers > 0 {
                dir.shards.push(ShardEntry { shard, customers });
            }
        }
        dir.shards.sort_by_key(|e| e.shard);
        let body = serde_json::to_vec(&dir).map_err(|e| StoreError::Decode {
            resource: SHARD_DIRECTORY_KEY.into(),
            what: "shard directory".into(),
            message: e.to_string(),
        })?;
        if store::put_if_unchanged(&deps.s3, &deps.bucket_name, SHARD_DIRECTORY_KEY, etag.as_deref(), body).await? {
            tracing::info!(
                shards = counts.len(),
                total = dir.shards.len(),
                "shard directory updated"
            );
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200 + fastrand_ms())).await;
    }
    Err(IngestError::Store(StoreError::Unprocessed {
        op: "PutObject",
        resource: SHARD_DIRECTORY_KEY.into(),
        unprocessed: 1,
        attempts: DIRECTORY_ATTEMPTS,
    }))
}

/// A little jitter, from the clock (no random source needed for this).
fn fastrand_ms() -> u64 {
    u64::from(Utc::now().timestamp_subsec_millis() % 300)
}
