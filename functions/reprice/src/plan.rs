//! The first step: the run checked and its map's items written.

use adapters::cycles::CycleStatus;
use domain::Cycle;
use domain::settlement::ShardTask;

use crate::event::{PlanInput, ShardItem, Work};
use crate::{Deps, RepriceError, is_key_segment, manifest_key, run_prefix};

/// Checks the execution's input without echoing it.
pub(crate) fn check_input(p: &PlanInput) -> Result<(Cycle, String, String), RepriceError> {
    let invalid = |m: &str| RepriceError::InvalidInput(m.to_owned());
    let cycle: Cycle = p
        .input
        .cycle
        .parse()
        .map_err(|_| invalid("cycle is YYYY-MM with a month 01-12 (e.g. 2026-11)"))?;
    if !is_key_segment(&p.input.catalog) {
        return Err(invalid(
            "catalog is a catalog version: 1 to 80 letters, digits, '.', '_' or '-' (e.g. 2026-v2)",
        ));
    }
    // The execution's name (or, given an ARN, its last part).
    let run = p.execution.rsplit(':').next().unwrap_or_default();
    if !is_key_segment(run) {
        return Err(invalid(
            "execution is the execution's name: 1 to 80 letters, digits, '.', '_' or '-'",
        ));
    }
    Ok((cycle, p.input.catalog.clone(), run.to_owned()))
}

fn status_name(s: CycleStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{s:?}"))
}

pub(crate) async fn plan(deps: &Deps, p: PlanInput) -> Result<Work, RepriceError> {
    let (cycle, catalog, run) = check_input(&p)?;
    let (record, published) = tokio::try_join!(deps.cycles.get(cycle), deps.catalog(&catalog))?;
    let Some(record) = record else {
        return Err(RepriceError::NotSettled(
            "cycle: the month has no settlement record; only a SETTLED month is re-priced".into(),
        ));
    };
    if record.status != CycleStatus::Settled {
        return Err(RepriceError::NotSettled(format!(
            "cycle: the month is {}, not SETTLED; only a SETTLED month is re-priced",
            status_name(record.status)
        )));
    }
    if published.is_none() {
        return Err(RepriceError::CatalogMissing);
    }
    let tasks: Vec<ShardTask> = deps.bucket.get_json(&record.manifest_key).await?.ok_or_else(|| {
        RepriceError::NotSettled(format!(
            "cycle: the settlement's shard manifest s3://{}/{} is missing",
            deps.bucket.bucket(),
            record.manifest_key
        ))
    })?;
    let mut shards: Vec<u32> = tasks.iter().map(|t| t.shard).collect();
    shards.sort_unstable();
    shards.dedup();
    let prefix = run_prefix(cycle, &catalog, &run);
    let items: Vec<ShardItem> = shards
        .iter()
        .map(|&shard| ShardItem {
            cycle,
            catalog: catalog.clone(),
            live_catalog: record.catalog_version.clone(),
            run: run.clone(),
            prefix: prefix.clone(),
            shard,
        })
        .collect();
    let key = manifest_key(&prefix);
    deps.bucket.put_json(&key, &items).await?;
    tracing::info!(shards = shards.len(), catalog = %catalog, live_catalog = %record.catalog_version, "re-pricing planned");
    Ok(Work {
        cycle,
        catalog,
        live_catalog: record.catalog_version,
        run,
        bucket: deps.bucket.bucket().to_owned(),
        prefix,
        shards,
        manifest_bucket: deps.bucket.bucket().to_owned(),
        manifest_key: key,
        max_concurrency: deps.config.max_concurrency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::StartInput;

    fn input(cycle: &str, catalog: &str, execution: &str) -> PlanInput {
        PlanInput {
            input: StartInput {
                cycle: cycle.into(),
                catalog: catalog.into(),
            },
            execution: execution.into(),
        }
    }

    #[test]
    fn a_bad_input_is_refused_naming_the_field_not_the_value() {
        let ok = check_input(&input("2026-11", "2026-v2", "reprice-1")).unwrap();
        assert_eq!(ok.1, "2026-v2");
        assert_eq!(ok.2, "reprice-1");
        let arn = "arn:aws:states:ap-northeast-2:123456789012:execution:billing-reprice:r-7";
        assert_eq!(check_input(&input("2026-11", "2026-v2", arn)).unwrap().2, "r-7");
        for (i, field, value) in [
            (input("2026-13", "2026-v2", "r"), "cycle", "2026-13"),
            (input("kim@example.com", "2026-v2", "r"), "cycle", "kim@"),
            (input("2026-11", "../v1", "r"), "catalog", "../v1"),
            (input("2026-11", "010-1234-5678 x", "r"), "catalog", "1234"),
            (input("2026-11", "2026-v2", "a b"), "execution", "a b"),
        ] {
            let e = check_input(&i).unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid input: {field} ")), "{e}");
            assert!(!e.contains(value), "{e}");
        }
    }
}
