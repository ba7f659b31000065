//! Loading a generated data set into the stores, the way production data
//! arrives: the catalog is published, the customer sync writes customers and
//! the shard directory, the mediation system drops one usage file per shard.
//!
//! Every customer is checked before it is stored (`Customer::validate`
//! against the quiet window, contact data that opens with the keyring, the
//! shard it is filed under); a bad record is counted and named — file, line,
//! customer id — and left out, never stored half-checked.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adapters::catalog_store::CatalogStore;
use adapters::customers::CustomerStore;
use adapters::data_bucket::{DataBucket, SHARD_DIRECTORY_KEY, ShardDirectory, ShardEntry};
use adapters::{ConfigError, PutOutcome, Vars};
use anyhow::Context;
use billing::Catalog;
use datagen::Manifest;
use domain::QuietWindow;
use domain::pii::Keyring;
use futures::{StreamExt, TryStreamExt, stream};

/// The stores a load writes to.
#[derive(Clone)]
pub struct Stores {
    pub customers: CustomerStore,
    pub catalogs: CatalogStore,
    pub bucket: DataBucket,
}

impl Stores {
    /// The stores of a provisioned stack, named by its variables
    /// (`CUSTOMERS_TABLE`, `CATALOG_TABLE`, `DATA_BUCKET`).
    pub fn of(config: &aws_config::SdkConfig, vars: &impl Vars) -> Result<Stores, ConfigError> {
        let ddb = adapters::dynamodb_client(config);
        Ok(Stores {
            customers: CustomerStore::new(ddb.clone(), vars.required("CUSTOMERS_TABLE")?),
            catalogs: CatalogStore::new(ddb, vars.required("CATALOG_TABLE")?),
            bucket: DataBucket::new(adapters::s3_client(config), vars.required("DATA_BUCKET")?),
        })
    }
}

#[derive(Debug, Default)]
pub struct LoadReport {
    pub cycle: String,
    pub catalog_version: String,
    pub catalog_outcome: Option<PutOutcome>,
    pub shards: u32,
    pub customers_loaded: u64,
    /// Loaded customers with at least one day of service in the cycle.
    pub billable_loaded: u64,
    /// One message per rejected customer record (file, line or id, rule).
    pub rejected: Vec<String>,
    pub usage_files: u32,
    pub usage_bytes: u64,
    pub dynamodb_requests: u64,
    pub s3_requests: u64,
    pub elapsed: Duration,
}

/// Loads the data set in `dir` (written by `datagen generate`).
/// `on_shard` is called after each shard is stored.
pub async fn load_dataset(
    dir: &Path,
    stores: &Stores,
    keys: &Keyring,
    quiet: QuietWindow,
    concurrency: usize,
    on_shard: &(dyn Fn(u32) + Sync),
) -> anyhow::Result<LoadReport> {
    let started = Instant::now();
    let manifest = Manifest::load(dir).with_context(|| format!("no complete data set in {}", dir.display()))?;
    let catalog_path = dir.join(&manifest.catalog_file);
    let catalog_json =
        std::fs::read_to_string(&catalog_path).with_context(|| format!("cannot read {}", catalog_path.display()))?;
    let catalog = Catalog::from_json(&catalog_json, &manifest.catalog_file)?;
    let catalog_outcome = stores.catalogs.publish(&catalog).await?;

    let ddb_requests = AtomicU64::new(1);
    let s3_requests = AtomicU64::new(0);
    let results: Vec<(ShardEntry, u64, Vec<String>, u64)> = stream::iter(manifest.shards.iter())
        .map(|entry| {
            let ddb_requests = &ddb_requests;
            let s3_requests = &s3_requests;
            let manifest = &manifest;
            async move {
                let (customers_path, usage_path) = manifest.shard_paths(dir, entry);
                let (customers, line_errors) = datagen::read_customers(&customers_path)?;
                let mut rejected: Vec<String> = line_errors.iter().map(ToString::to_string).collect();
                let file = entry.customers_file.as_str();
                let good: Vec<_> = customers
                    .into_iter()
                    .filter(|c| {
                        let problem = if c.shard != entry.shard {
                            Some(format!(
                                "filed under shard {} but the record says shard {}",
                                entry.shard, c.shard
                            ))
                        } else if let Err(e) = c.validate(quiet) {
                            Some(e.reason)
                        } else if let Err(e) = c.check_contact(keys) {
                            Some(e.reason)
                        } else {
                            None
                        };
                        if let Some(p) = &problem {
                            rejected.push(format!("{file} (customer {}): {p}", c.customer_id));
                        }
                        problem.is_none()
                    })
                    .collect();
                let billable = good.iter().filter(|c| c.is_billable(manifest.cycle)).count() as u64;
                let stats = stores.customers.put_all(&good).await?;
                ddb_requests.fetch_add(stats.requests as u64, Ordering::Relaxed);
                let usage = tokio::fs::read(&usage_path)
                    .await
                    .with_context(|| format!("cannot read {}", usage_path.display()))?;
                let bytes = usage.len() as u64;
                stores.bucket.put(manifest.cycle, entry.shard, usage).await?;
                s3_requests.fetch_add(1, Ordering::Relaxed);
                on_shard(entry.shard);
                Ok::<_, anyhow::Error>((
                    ShardEntry {
                        shard: entry.shard,
                        customers: good.len() as u64,
                    },
                    billable,
                    rejected,
                    bytes,
                ))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;

    let mut report = LoadReport {
        cycle: manifest.cycle.to_string(),
        catalog_version: catalog.version().to_owned(),
        catalog_outcome: Some(catalog_outcome),
        shards: manifest.shard_count,
        ..Default::default()
    };
    let mut directory = ShardDirectory {
        shards: Vec::with_capacity(results.len()),
    };
    for (entry, billable, rejected, bytes) in results {
        report.customers_loaded += entry.customers;
        report.billable_loaded += billable;
        report.rejected.extend(rejected);
        report.usage_files += 1;
        report.usage_bytes += bytes;
        directory.shards.push(entry);
    }
    directory.shards.sort_by_key(|e| e.shard);
    report.rejected.sort();
    stores.bucket.put_json(SHARD_DIRECTORY_KEY, &directory).await?;
    report.s3_requests = s3_requests.into_inner() + 1;
    report.dynamodb_requests = ddb_requests.into_inner();
    report.elapsed = started.elapsed();
    Ok(report)
}
