//! The last step: the shards' figures merged, their lines streamed into the month's diff
//! files, and the report.

use futures::{StreamExt, TryStreamExt, stream};

use crate::diff::CustomerDiff;
use crate::event::{Files, FinishOutput, Work};
use crate::report::{CSV_HEADER, csv_row, html};
use crate::summary::{ShardSummary, Summary};
use crate::upload::ObjectWriter;
use crate::{
    Deps, RepriceError, diff_csv_key, diff_jsonl_key, report_key, run_prefix, shard_diff_key, shard_summary_key,
    summary_key,
};

/// Merges the shards' summaries, in shard order (the merge does not depend on it).
pub fn merge(work: &Work, shards: &[ShardSummary]) -> Summary {
    let mut total = Summary::empty(&work.cycle.to_string(), &work.catalog, &work.live_catalog, &work.run);
    for s in shards {
        total.merge(&s.summary);
    }
    total
}

pub(crate) async fn finish(deps: &Deps, work: Work) -> Result<FinishOutput, RepriceError> {
    if work.prefix != run_prefix(work.cycle, &work.catalog, &work.run) {
        return Err(RepriceError::InvalidInput(
            "finish: work.prefix is shadow/{cycle}/{catalog}/{run}".into(),
        ));
    }
    let prefix = work.prefix.clone();
    // Every shard's figures, or the shards that did not report (a failed child does not
    // fail a distributed map everywhere: this check does).
    let found: Vec<(u32, Option<ShardSummary>)> = stream::iter(work.shards.clone())
        .map(|shard| {
            let key = shard_summary_key(&prefix, shard);
            async move { deps.bucket.get_json::<ShardSummary>(&key).await.map(|s| (shard, s)) }
        })
        .buffered(deps.config.read_ahead.max(1))
        .try_collect()
        .await?;
    let missing: Vec<u32> = found.iter().filter(|(_, s)| s.is_none()).map(|(n, _)| *n).collect();
    if let Some(first) = missing.first() {
        return Err(RepriceError::ShardsMissing(format!(
            "{} of {} shards did not report (first: shard {first}); redrive the execution to re-price them",
            missing.len(),
            work.shards.len()
        )));
    }
    let shards: Vec<ShardSummary> = found.into_iter().filter_map(|(_, s)| s).collect();
    let summary = merge(&work, &shards);

    // The diff files, streamed: the shards' lines in shard order, a few shard files read
    // ahead, each file's bytes buffered up to one multipart part.
    let bucket = deps.bucket.bucket().to_owned();
    let mut jsonl = ObjectWriter::with_part_size(
        deps.s3.clone(),
        &bucket,
        &diff_jsonl_key(&prefix),
        "application/x-ndjson",
        deps.config.part_size,
    );
    let mut csv = ObjectWriter::with_part_size(
        deps.s3.clone(),
        &bucket,
        &diff_csv_key(&prefix),
        "text/csv; charset=utf-8",
        deps.config.part_size,
    );
    csv.write(CSV_HEADER.as_bytes()).await?;
    let numbers: Vec<u32> = shards.iter().map(|s| s.shard).collect();
    let mut expected = shards.iter().map(|s| s.diff_lines).collect::<Vec<_>>().into_iter();
    let mut files = stream::iter(numbers)
        .map(|shard| {
            let key = shard_diff_key(&prefix, shard);
            async move { deps.bucket.get_bytes(&key).await.map(|b| (shard, key, b)) }
        })
        .buffered(deps.config.read_ahead.max(1));
    let mut lines_total = 0u64;
    while let Some((shard, key, bytes)) = files.try_next().await? {
        let want = expected.next().unwrap_or(0);
        let bytes = bytes.ok_or_else(|| {
            RepriceError::ShardsMissing(format!(
                "shard {shard} reported but its diff s3://{bucket}/{key} is missing; redrive the execution"
            ))
        })?;
        let mut rows = String::new();
        let mut n = 0u64;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let d: CustomerDiff = serde_json::from_slice(line).map_err(|e| {
                RepriceError::Store(adapters::StoreError::Decode {
                    resource: format!("s3://{bucket}/{key}"),
                    what: format!("diff line {}", n + 1),
                    message: e.to_string(),
                })
            })?;
            rows.push_str(&csv_row(&d));
            n += 1;
        }
        if n != want {
            return Err(RepriceError::ShardsMissing(format!(
                "shard {shard}: its diff holds {n} customers but its summary says {want}; redrive the execution"
            )));
        }
        lines_total += n;
        jsonl.write(&bytes).await?;
        csv.write(rows.as_bytes()).await?;
    }
    drop(files);
    let (jsonl_parts, csv_parts) = tokio::try_join!(jsonl.finish(), csv.finish())?;
    let files = Files {
        summary: summary_key(&prefix),
        diff_jsonl: diff_jsonl_key(&prefix),
        diff_csv: diff_csv_key(&prefix),
        report: report_key(&prefix),
    };
    let pretty = serde_json::to_vec_pretty(&summary).map_err(|e| {
        RepriceError::Store(adapters::StoreError::Decode {
            resource: files.summary.clone(),
            what: "summary".into(),
            message: e.to_string(),
        })
    })?;
    tokio::try_join!(
        deps.bucket.put_bytes(&files.summary, pretty, "application/json"),
        deps.bucket
            .put_bytes(&files.report, html(&summary).into_bytes(), "text/html; charset=utf-8"),
    )?;
    tracing::info!(
        shards = summary.shards,
        customers = summary.customers,
        changed = summary.changed,
        sum_delta = summary.sum_delta,
        diff_lines = lines_total,
        jsonl_parts,
        csv_parts,
        "re-pricing finished"
    );
    Ok(FinishOutput {
        bucket,
        prefix,
        files,
        summary,
    })
}
