//! The map's step: one shard re-rated with the named catalog and diffed against its live
//! bills.

use std::collections::HashMap;

use adapters::snapshots::{RatingCustomer, load_shard_inputs};
use billing::{Catalog, parse_usage, settle};
use domain::Bill;
use domain::text::reason;

use crate::diff::{ShardDiff, diff_shard};
use crate::event::{ShardItem, ShardOutput};
use crate::summary::{ShardSummary, Source, Summary};
use crate::{Deps, RepriceError, is_key_segment, run_prefix, shard_diff_key, shard_summary_key};

/// A shard re-rated: the diff, its figures and its diff lines (JSON lines, changed
/// customers in customer-id order).
#[derive(Debug)]
pub struct Rerated {
    pub diff: ShardDiff,
    pub summary: ShardSummary,
    pub lines: Vec<u8>,
}

/// The shard's bills rated again with `catalog` from `customers` and the usage file, diffed
/// against `live`: CPU only, no I/O (what the benchmark times). A usage line or a customer
/// the catalog cannot rate is an error naming the file and line (or the customer).
pub fn rerate(
    catalog: &Catalog,
    item: &ShardItem,
    customers: &[RatingCustomer],
    usage: &[u8],
    usage_key: &str,
    live: &[Bill],
    source: Source,
) -> Result<Rerated, String> {
    let parsed = parse_usage(usage, usage_key, catalog);
    let s = settle(catalog, item.cycle, customers, parsed, usage_key);
    let errors: Vec<String> = s
        .usage_errors
        .iter()
        .map(|e| e.to_string())
        .chain(s.rating_errors.iter().map(|e| e.to_string()))
        .collect();
    if let Some(first) = errors.first() {
        return Err(format!(
            "{} inputs cannot be rated with the catalog asked for, first: {first}",
            errors.len()
        ));
    }
    let plans: HashMap<String, String> = customers
        .iter()
        .map(|c| (c.customer_id.as_str().to_owned(), c.plan.clone()))
        .collect();
    let diff = diff_shard(item.shard, &plans, live, &s.bills);
    let mut lines = Vec::new();
    for c in &diff.changed {
        // A diff holds strings and integers: it always serialises.
        if serde_json::to_writer(&mut lines, c).is_ok() {
            lines.push(b'\n');
        }
    }
    let summary = Summary::empty(&item.cycle.to_string(), &item.catalog, &item.live_catalog, &item.run).of_shard(
        customers.len() as u64,
        &diff,
        source,
    );
    Ok(Rerated {
        summary: ShardSummary {
            shard: item.shard,
            source,
            diff_lines: diff.changed.len() as u64,
            summary,
        },
        diff,
        lines,
    })
}

fn check_item(item: &ShardItem) -> Result<(), RepriceError> {
    let ok = is_key_segment(&item.catalog)
        && is_key_segment(&item.live_catalog)
        && is_key_segment(&item.run)
        && item.prefix == run_prefix(item.cycle, &item.catalog, &item.run);
    if ok {
        Ok(())
    } else {
        Err(RepriceError::InvalidInput(
            "shard: catalog, live_catalog and run are names of 1 to 80 letters, digits, '.', '_' or '-', and prefix is \
             shadow/{cycle}/{catalog}/{run}"
                .into(),
        ))
    }
}

#[tracing::instrument(skip_all, fields(cycle = %item.cycle, shard = item.shard))]
pub(crate) async fn shard(deps: &Deps, item: ShardItem) -> Result<ShardOutput, RepriceError> {
    check_item(&item)?;
    let bad = |message: String| RepriceError::ShardInputInvalid {
        shard: item.shard,
        message: reason(&message),
    };
    let (catalog, inputs, live) = tokio::try_join!(
        deps.catalog(&item.catalog),
        load_shard_inputs(&deps.bucket, &deps.customers, item.cycle, item.shard),
        deps.bills.shard(item.cycle, item.shard),
    )?;
    let catalog = catalog.ok_or(RepriceError::CatalogMissing)?;
    if let Some(first) = inputs.errors.first() {
        return Err(bad(format!(
            "{} customer records cannot be read, first: {first}",
            inputs.errors.len()
        )));
    }
    let usage = inputs.usage.ok_or_else(|| {
        bad(format!(
            "usage file s3://{}/{} is missing",
            deps.bucket.bucket(),
            inputs.usage_key
        ))
    })?;
    let source = Source::from(inputs.source);
    let customers = inputs.customers;
    let usage_key = inputs.usage_key;
    let task = item.clone();
    let rerated =
        tokio::task::spawn_blocking(move || rerate(&catalog, &task, &customers, &usage, &usage_key, &live, source))
            .await
            .map_err(|e| bad(format!("re-rating worker failed: {e}")))?
            .map_err(bad)?;
    let diff_key = shard_diff_key(&item.prefix, item.shard);
    let summary_key = shard_summary_key(&item.prefix, item.shard);
    tokio::try_join!(
        deps.bucket.put_bytes(&diff_key, rerated.lines, "application/x-ndjson"),
        deps.bucket.put_json(&summary_key, &rerated.summary),
    )?;
    let s = &rerated.summary.summary;
    tracing::info!(
        customers = s.customers,
        changed = s.changed,
        sum_delta = s.sum_delta,
        source = ?source,
        "shard re-priced"
    );
    Ok(ShardOutput {
        shard: item.shard,
        customers: s.customers,
        changed: s.changed,
        sum_delta: s.sum_delta,
        diff_key,
        summary_key,
    })
}
