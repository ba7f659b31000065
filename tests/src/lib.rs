//! Shared fixtures for the end-to-end tests: a generated month loaded into a
//! fresh copy of the stack in the emulator, with the settlement functions
//! hosted in the test process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use adapters::bills::{BillStore, bill_digest};
use adapters::catalog_store::CatalogStore;
use adapters::customers::CustomerStore;
use adapters::cycles::CycleStore;
use adapters::data_bucket::DataBucket;
use adapters::deliveries::DeliveryStore;
use aws_config::SdkConfig;
use billing::{Catalog, parse_usage, rate};
use datagen::{GenConfig, Generator, Manifest, write_dataset};
use domain::pii::Keyring;
use domain::{Bill, Cycle, QuietWindow};
use local_aws::lambda::LambdaHost;
use local_aws::{Emulator, Resources};
use local_run::load::{LoadReport, Stores, load_dataset};
use local_run::settle::{self, ExecutionOutcome};
use sha2::{Digest, Sha256};
pub mod admin;
pub mod corpus;
pub mod ingest;
pub mod lambda_cli;
pub mod pacing;
pub mod senders;
pub mod setup;

pub const CYCLE: &str = "2026-11";

/// A generated data set on disk.
pub struct DataSet {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub manifest: Manifest,
}

/// Generates `customers` customers in shards of `shard_size` (seed 7).
pub fn generate(customers: u32, shard_size: u32) -> anyhow::Result<DataSet> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data");
    let mut cfg = GenConfig::new(customers, CYCLE.parse()?);
    cfg.seed = 7;
    cfg.shard_size = shard_size;
    let g = Generator::new(cfg, Keyring::dev())?;
    let summary = write_dataset(&g, &path, 2, &|_| {})?;
    Ok(DataSet {
        _dir: dir,
        path,
        manifest: summary.manifest,
    })
}

/// A fresh stack in the shared emulator with the settlement functions hosted
/// in this process.
pub struct Month {
    pub emulator: &'static Emulator,
    pub config: SdkConfig,
    pub resources: Resources,
    pub host: LambdaHost,
    pub sfn: aws_sdk_sfn::Client,
    pub state_machine: String,
    pub customers: CustomerStore,
    pub catalogs: CatalogStore,
    pub bucket: DataBucket,
    pub bills: BillStore,
    pub cycles: CycleStore,
    pub deliveries: DeliveryStore,
}

impl Month {
    pub async fn new(name: &str) -> anyhow::Result<Month> {
        let emulator = Emulator::shared().await?;
        let config = emulator.sdk_config().await;
        let resources = local_aws::provision(&config, &local_aws::unique_prefix(name)).await?;
        let host = LambdaHost::start().await?;
        settle::host_settlement(&host, emulator, &config, &resources).await?;
        let env = resources.env().clone();
        let var = |k: &str| {
            env.get(k)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no {k} in template.yaml"))
        };
        let ddb = adapters::dynamodb_client(&config);
        let state_machine = resources
            .arn(settle::STATE_MACHINE)
            .ok_or_else(|| anyhow::anyhow!("no state machine"))?
            .to_owned();
        Ok(Month {
            customers: CustomerStore::new(ddb.clone(), var("CUSTOMERS_TABLE")?),
            catalogs: CatalogStore::new(ddb.clone(), var("CATALOG_TABLE")?),
            bills: BillStore::new(ddb.clone(), var("BILLS_TABLE")?),
            cycles: CycleStore::new(ddb.clone(), var("CYCLES_TABLE")?),
            deliveries: DeliveryStore::new(ddb, var("DELIVERIES_TABLE")?),
            bucket: DataBucket::new(adapters::s3_client(&config), var("DATA_BUCKET")?),
            sfn: aws_sdk_sfn::Client::new(&config),
            state_machine,
            emulator,
            config,
            resources,
            host,
        })
    }

    pub fn stores(&self) -> Stores {
        Stores {
            customers: self.customers.clone(),
            catalogs: self.catalogs.clone(),
            bucket: self.bucket.clone(),
        }
    }

    pub async fn load(&self, data: &DataSet) -> anyhow::Result<LoadReport> {
        load_dataset(
            &data.path,
            &self.stores(),
            &Keyring::dev(),
            QuietWindow::default_korea(),
            4,
            &|_| {},
        )
        .await
    }

    pub fn function(&self, logical_id: &str) -> String {
        settle::function_name(&self.resources, logical_id).unwrap_or_default()
    }

    /// Runs a settlement execution to its end (at most five minutes).
    pub async fn settle(&self, execution_name: &str) -> anyhow::Result<ExecutionOutcome> {
        settle::settle_cycle(
            &self.sfn,
            &self.state_machine,
            CYCLE.parse()?,
            execution_name,
            Duration::from_secs(300),
            &|_| {},
        )
        .await
    }

    /// Every stored bill of the cycle, by shard, in customer order.
    pub async fn all_bills(&self, shards: u32) -> anyhow::Result<Vec<Bill>> {
        let cycle: Cycle = CYCLE.parse()?;
        let mut out = Vec::new();
        for shard in 0..shards {
            out.extend(self.bills.shard(cycle, shard).await?);
        }
        Ok(out)
    }
}

/// Number of items in a table (a paginated `Scan` with `Select=COUNT`).
pub async fn count_items(config: &SdkConfig, table: &str) -> anyhow::Result<u64> {
    let client = adapters::dynamodb_client(config);
    let mut n = 0u64;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        n += u64::try_from(page.count)?;
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return Ok(n);
        }
    }
}

/// SHA-256 over the digests of `bills` in order: equal bill sets, equal digests.
pub fn digest(bills: &[Bill]) -> String {
    let mut h = Sha256::new();
    for b in bills {
        h.update(bill_digest(b).as_bytes());
    }
    hex::encode(h.finalize())
}

/// The bills the shared rules give for the data set, computed here from the
/// generated files without the functions or the stores: customer id → bill.
pub fn expected_bills(data: &DataSet) -> anyhow::Result<HashMap<String, Bill>> {
    let catalog = Catalog::from_json(
        &std::fs::read_to_string(data.path.join(&data.manifest.catalog_file))?,
        "catalog",
    )?;
    let cycle = data.manifest.cycle;
    let mut out = HashMap::new();
    for shard in &data.manifest.shards {
        let (customers_path, usage_path) = data.manifest.shard_paths(&data.path, shard);
        let (customers, errors) = datagen::read_customers(&customers_path)?;
        anyhow::ensure!(errors.is_empty(), "generated customers are valid");
        let bytes = std::fs::read(&usage_path)?;
        let usage = parse_usage(&bytes, &shard.usage_file, &catalog);
        anyhow::ensure!(usage.errors.is_empty(), "generated usage is valid");
        let mut by_customer: HashMap<&str, Vec<_>> = HashMap::new();
        for r in &usage.records {
            by_customer.entry(r.customer_id).or_default().push(*r);
        }
        for c in &customers {
            let records = by_customer.remove(c.customer_id.as_str()).unwrap_or_default();
            if let Some(bill) = rate(&catalog, cycle, c, &records)? {
                out.insert(c.customer_id.to_string(), bill);
            }
        }
    }
    Ok(out)
}

/// Path of a shard's usage file in a data set.
pub fn usage_path(data: &DataSet, shard: u32) -> PathBuf {
    let entry = &data.manifest.shards[shard as usize];
    data.manifest.shard_paths(&data.path, entry).1
}

/// Appends lines to a file.
pub fn append(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}
