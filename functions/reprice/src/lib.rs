//! `Reprice`: shadow re-pricing of a settled month with another catalog version, or with the
//! one it was settled with, as an audit.
//!
//! The reprice state machine (`infra/statemachines/reprice.asl.json`) is started with
//! `{"cycle": "2026-11", "catalog": "2026-v2"}`. This one function serves its three steps,
//! told apart by the input's key ([`event::Input`]):
//!
//! * **plan**: the cycle must be `SETTLED` and the catalog version published, else the run is
//!   refused naming the field. Writes the item manifest of the map (one item per shard the
//!   settlement settled) to `shadow/{cycle}/{catalog}/{run}/manifest.json` (`run` is the
//!   execution's name) and answers where.
//! * **shard**: re-rates one shard from what it was rated on (its rating snapshot and usage
//!   file, `adapters::snapshots::load_shard_inputs`) with the named catalog, reads the shard's
//!   live bills, and diffs them per customer ([`diff`]); writes the changed customers
//!   (`shards/shard-NNNNN.jsonl`) and the shard's figures (`shards/shard-NNNNN.summary.json`).
//!   Deterministic: a re-run writes the same objects.
//! * **finish**: checks that every shard reported, merges the figures into `summary.json`,
//!   streams the shards' lines into `diff.jsonl` and `diff.csv` ([`upload::ObjectWriter`]:
//!   bounded memory for any month), and writes `report.html` ([`report`]).
//!
//! **Shadow only:** it writes nothing but objects under `shadow/` — never a bill, a delivery,
//! an invoice or a cycle record — and its role grants no other write. **No personal data:**
//! the inputs hold none (snapshots keep billing attributes only), and the files name
//! customers by id.

pub mod diff;
pub mod event;
pub mod report;
pub mod summary;
pub mod upload;

mod finish;
mod plan;
mod shard;

pub use shard::{Rerated, rerate};

use std::collections::HashMap;
use std::sync::Arc;

use adapters::bills::BillStore;
use adapters::catalog_store::CatalogStore;
use adapters::customers::CustomerStore;
use adapters::cycles::CycleStore;
use adapters::data_bucket::DataBucket;
use adapters::{ConfigError, StoreError, Vars};
use aws_config::SdkConfig;
use billing::Catalog;
use domain::Cycle;
use lambda_runtime::LambdaEvent;
use tokio::sync::Mutex;

use crate::event::{Input, Output};

/// Where a run writes: `shadow/{cycle}/{catalog}/{run}`.
pub fn run_prefix(cycle: Cycle, catalog: &str, run: &str) -> String {
    format!("shadow/{cycle}/{catalog}/{run}")
}

pub fn manifest_key(prefix: &str) -> String {
    format!("{prefix}/manifest.json")
}

pub fn shard_diff_key(prefix: &str, shard: u32) -> String {
    format!("{prefix}/shards/shard-{shard:05}.jsonl")
}

pub fn shard_summary_key(prefix: &str, shard: u32) -> String {
    format!("{prefix}/shards/shard-{shard:05}.summary.json")
}

pub fn summary_key(prefix: &str) -> String {
    format!("{prefix}/summary.json")
}

pub fn diff_jsonl_key(prefix: &str) -> String {
    format!("{prefix}/diff.jsonl")
}

pub fn diff_csv_key(prefix: &str) -> String {
    format!("{prefix}/diff.csv")
}

pub fn report_key(prefix: &str) -> String {
    format!("{prefix}/report.html")
}

/// The longest catalog version or run name accepted (they name S3 folders).
pub const MAX_NAME_BYTES: usize = 80;

/// `s` is 1 to [`MAX_NAME_BYTES`] ASCII letters, digits, `.`, `_` or `-`, beginning with a
/// letter or digit: safe as one segment of an object key.
pub fn is_key_segment(s: &str) -> bool {
    s.len() <= MAX_NAME_BYTES
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

pub struct Config {
    /// Shards re-priced at once by the map (`REPRICE_MAX_CONCURRENCY`, default 40).
    pub max_concurrency: u32,
    /// Shard files the finish reads ahead while streaming the diff.
    pub read_ahead: usize,
    /// Multipart part size of the finish's diff files.
    pub part_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_concurrency: 40,
            read_ahead: 8,
            part_size: upload::PART_SIZE,
        }
    }
}

impl Config {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let d = Config::default();
        let max_concurrency: u32 = vars.parsed("REPRICE_MAX_CONCURRENCY", d.max_concurrency)?;
        if !(1..=1000).contains(&max_concurrency) {
            return Err(ConfigError::Invalid {
                name: "REPRICE_MAX_CONCURRENCY",
                reason: "must be 1 to 1000".into(),
            });
        }
        Ok(Config { max_concurrency, ..d })
    }
}

pub struct Deps {
    pub customers: CustomerStore,
    pub catalogs: CatalogStore,
    pub bills: BillStore,
    pub cycles: CycleStore,
    pub bucket: DataBucket,
    pub s3: aws_sdk_s3::Client,
    pub config: Config,
    /// Catalog versions already loaded by this (warm) instance.
    catalog_cache: Mutex<HashMap<String, Arc<Catalog>>>,
}

impl Deps {
    /// From one SDK configuration and the function's variables (`CUSTOMERS_TABLE`,
    /// `CATALOG_TABLE`, `BILLS_TABLE`, `CYCLES_TABLE`, `DATA_BUCKET`, and
    /// `REPRICE_MAX_CONCURRENCY`).
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let ddb = adapters::dynamodb_client(sdk);
        let s3 = adapters::s3_client(sdk);
        Ok(Deps {
            customers: CustomerStore::new(ddb.clone(), vars.required("CUSTOMERS_TABLE")?),
            catalogs: CatalogStore::new(ddb.clone(), vars.required("CATALOG_TABLE")?),
            bills: BillStore::new(ddb.clone(), vars.required("BILLS_TABLE")?),
            cycles: CycleStore::new(ddb, vars.required("CYCLES_TABLE")?),
            bucket: DataBucket::new(s3.clone(), vars.required("DATA_BUCKET")?),
            s3,
            config: Config::from_vars(vars)?,
            catalog_cache: Mutex::default(),
        })
    }

    /// A published catalog version; `None` when it is not published.
    pub async fn catalog(&self, version: &str) -> Result<Option<Arc<Catalog>>, StoreError> {
        let mut cache = self.catalog_cache.lock().await;
        if let Some(c) = cache.get(version) {
            return Ok(Some(c.clone()));
        }
        let Some(c) = self.catalogs.get(version).await? else {
            return Ok(None);
        };
        let c = Arc::new(c);
        cache.insert(version.to_owned(), c.clone());
        Ok(Some(c))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RepriceError {
    /// The input names the field and what it should be, never its value.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotSettled(String),
    /// The version is not named: it comes from the execution's input.
    #[error("catalog: the version asked for is not published in the catalog store (publish it first)")]
    CatalogMissing,
    #[error("shard {shard}: {message}")]
    ShardInputInvalid { shard: u32, message: String },
    #[error("{0}")]
    ShardsMissing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl runtime::ErrorType for RepriceError {
    fn error_type(&self) -> &'static str {
        match self {
            RepriceError::InvalidInput(_) => "InvalidInput",
            RepriceError::NotSettled(_) => "CycleNotSettled",
            RepriceError::CatalogMissing => "CatalogMissing",
            RepriceError::ShardInputInvalid { .. } => "ShardInputInvalid",
            RepriceError::ShardsMissing(_) => "ShardsMissing",
            RepriceError::Store(s) => runtime::store_error_type(s),
        }
    }
}

runtime::diagnostic_from!(RepriceError);

#[tracing::instrument(skip_all)]
pub async fn handle(deps: &Deps, event: LambdaEvent<Input>) -> Result<Output, RepriceError> {
    match event.payload {
        Input::Plan(p) => plan::plan(deps, p).await.map(Output::Plan),
        Input::Shard(s) => shard::shard(deps, s).await.map(Output::Shard),
        Input::Finish(f) => finish::finish(deps, f.work).await.map(|o| Output::Finish(Box::new(o))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_run() {
        let cycle: Cycle = "2026-11".parse().unwrap();
        let p = run_prefix(cycle, "2026-v2", "reprice-1");
        assert_eq!(p, "shadow/2026-11/2026-v2/reprice-1");
        assert_eq!(
            shard_diff_key(&p, 7),
            "shadow/2026-11/2026-v2/reprice-1/shards/shard-00007.jsonl"
        );
        assert_eq!(
            shard_summary_key(&p, 7),
            "shadow/2026-11/2026-v2/reprice-1/shards/shard-00007.summary.json"
        );
        for k in [
            manifest_key(&p),
            summary_key(&p),
            diff_jsonl_key(&p),
            diff_csv_key(&p),
            report_key(&p),
        ] {
            assert!(k.starts_with("shadow/"), "{k}");
        }
        assert!(is_key_segment("2026-v2") && is_key_segment("reprice-2026-11.a_b"));
        for bad in ["", "../x", "a/b", "kim@example.com", "-x", &"a".repeat(81)] {
            assert!(!is_key_segment(bad), "{bad}");
        }
    }

    #[test]
    fn inputs_decode_by_their_key_and_a_bad_one_names_the_field() {
        let v = serde_json::json!({"plan": {"input": {"cycle": "2026-11", "catalog": "2026-v2"}, "execution": "r1"}});
        let i: Input = domain::decode::from_value(v).unwrap();
        assert!(matches!(i, Input::Plan(_)));
        let v = serde_json::json!({"plan": {"input": {"cycle": "2026-11", "catalgo": "x@y.kr"}, "execution": "r1"}});
        let e = domain::decode::from_value::<Input>(v).unwrap_err().to_string();
        assert!(e.contains("plan.input") && !e.contains("x@y.kr"), "{e}");
    }
}
