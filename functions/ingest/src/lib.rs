//! `Ingest`: the files dropped in the data bucket's `incoming/` zone, checked and applied.
//!
//! S3 tells EventBridge of every new object; a rule starts the ingest state machine
//! (`infra/statemachines/ingest.asl.json`) with the event. This one function serves its
//! three steps, told apart by the input's shape ([`event::Input`]):
//!
//! * **plan** (the event): works out the file's kind from its key ([`zone`]), checks the
//!   file as a whole (shape of the key, size limit, empty, UTF-8, every line decoded and
//!   validated, duplicate ids, customers filed under another shard, usage customers in the
//!   shard) while streaming it — never holding the file, only the ids seen and the
//!   rejections. A rejected file gets its report and nothing else. A catalog is published
//!   (immutably) and a usage file stored under the key settlement reads, in this step. A
//!   customers file is cut into chunks of whole lines; the plan and the chunk manifest go to
//!   `ingest/<id>/`, and the state machine's Distributed Map applies the chunks.
//! * **apply** (one chunk): reads the chunk's byte range of exactly the uploaded version,
//!   seals the contact data with the stack's keyring, reads the stored items (batches of
//!   100), leaves unchanged customers alone (the same file twice writes nothing the second
//!   time), keeps preferences set through the API after the upload, and writes the rest
//!   (batches of 25).
//! * **finish**: checks that every chunk reported, sums them, recounts the touched shards
//!   into the shard directory, writes the report and the metric line.
//!
//! **Never half-applied:** a rejected line is never written; a rejected file applies nothing.
//! **No personal value** in a report, an error or a log line: reasons name fields and rules.

pub mod event;
pub mod lines;
pub mod planner;
pub mod records;
pub mod report;
pub mod store;
pub mod usage;
pub mod zone;

pub mod apply;
mod finish;
mod plan;

use adapters::catalog_store::CatalogStore;
use adapters::customers::CustomerStore;
use adapters::data_bucket::DataBucket;
use adapters::keyring::PiiKeys;
use adapters::{ConfigError, StoreError, Vars};
use aws_config::SdkConfig;
use domain::QuietWindow;
use lambda_runtime::LambdaEvent;

use crate::event::{Input, Output};
use crate::planner::Cut;

/// The largest file of each kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub catalog: u64,
    pub customers: u64,
    pub usage: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            catalog: 1 << 20,
            customers: 2 << 30,
            usage: 256 << 20,
        }
    }
}

pub struct Config {
    pub limits: Limits,
    pub cut: Cut,
    /// Chunks applied at once by the map.
    pub max_concurrency: u32,
    /// `BatchWriteItem` requests in flight per chunk.
    pub write_concurrency: usize,
    pub quiet: QuietWindow,
    /// The catalog version usage lines are checked against (the stack's `CatalogVersion`).
    pub catalog_version: String,
    /// The metrics' `Stack` dimension.
    pub stack: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            cut: Cut::default(),
            max_concurrency: 10,
            write_concurrency: 4,
            quiet: QuietWindow::default_korea(),
            catalog_version: "2026-v1".to_owned(),
            stack: "billing".to_owned(),
        }
    }
}

impl Config {
    /// From the function's variables: `QUIET_WINDOW`, `CATALOG_VERSION`, `STACK_NAME`, and the
    /// optional `INGEST_MAX_BYTES_CATALOG`, `INGEST_MAX_BYTES_CUSTOMERS`,
    /// `INGEST_MAX_BYTES_USAGE`, `INGEST_CHUNK_LINES`, `INGEST_CHUNK_BYTES`,
    /// `INGEST_MAX_CONCURRENCY` (defaults: the contract's limits, 5,000 lines or 4 MiB, 10).
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let d = Config::default();
        let positive = |name: &'static str, v: u64| {
            if v == 0 {
                Err(ConfigError::Invalid {
                    name,
                    reason: "must be at least 1".into(),
                })
            } else {
                Ok(v)
            }
        };
        Ok(Config {
            limits: Limits {
                catalog: positive(
                    "INGEST_MAX_BYTES_CATALOG",
                    vars.parsed("INGEST_MAX_BYTES_CATALOG", d.limits.catalog)?,
                )?,
                customers: positive(
                    "INGEST_MAX_BYTES_CUSTOMERS",
                    vars.parsed("INGEST_MAX_BYTES_CUSTOMERS", d.limits.customers)?,
                )?,
                usage: positive(
                    "INGEST_MAX_BYTES_USAGE",
                    vars.parsed("INGEST_MAX_BYTES_USAGE", d.limits.usage)?,
                )?,
            },
            cut: Cut {
                max_lines: positive(
                    "INGEST_CHUNK_LINES",
                    vars.parsed("INGEST_CHUNK_LINES", d.cut.max_lines)?,
                )?,
                max_bytes: positive(
                    "INGEST_CHUNK_BYTES",
                    vars.parsed("INGEST_CHUNK_BYTES", d.cut.max_bytes)?,
                )?,
            },
            max_concurrency: positive(
                "INGEST_MAX_CONCURRENCY",
                vars.parsed("INGEST_MAX_CONCURRENCY", u64::from(d.max_concurrency))?,
            )?
            .min(1000) as u32,
            write_concurrency: d.write_concurrency,
            quiet: vars.parsed("QUIET_WINDOW", d.quiet)?,
            catalog_version: vars.required("CATALOG_VERSION")?,
            stack: vars.lookup("STACK_NAME").unwrap_or(d.stack),
        })
    }
}

pub struct Deps {
    pub customers: CustomerStore,
    pub catalogs: CatalogStore,
    pub bucket: DataBucket,
    pub ddb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub customers_table: String,
    pub bucket_name: String,
    /// The contact-data keyring, from the secret named by `PII_KEYS_SECRET`.
    pub keys: PiiKeys,
    pub config: Config,
}

impl Deps {
    /// Builds the dependencies from one SDK configuration and the function's variables
    /// (`CUSTOMERS_TABLE`, `CATALOG_TABLE`, `DATA_BUCKET`, `PII_KEYS_SECRET` (the keyring's
    /// secret, fetched here), and those of [`Config::from_vars`]).
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let keys = PiiKeys::load(sdk, vars).await?;
        Self::with_keys(sdk, vars, keys)
    }

    /// [`Deps::load`] with a keyring given (tests and local tools).
    pub fn with_keys(sdk: &SdkConfig, vars: &impl Vars, keys: PiiKeys) -> Result<Self, ConfigError> {
        let ddb = adapters::dynamodb_client(sdk);
        let s3 = adapters::s3_client(sdk);
        let customers_table = vars.required("CUSTOMERS_TABLE")?;
        let bucket_name = vars.required("DATA_BUCKET")?;
        Ok(Deps {
            customers: CustomerStore::new(ddb.clone(), customers_table.clone()),
            catalogs: CatalogStore::new(ddb.clone(), vars.required("CATALOG_TABLE")?),
            bucket: DataBucket::new(s3.clone(), bucket_name.clone()),
            ddb,
            s3,
            customers_table,
            bucket_name,
            keys,
            config: Config::from_vars(vars)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The object changed under a chunk that was planned on another version; the newer
    /// upload is ingested by its own execution.
    #[error("{0}")]
    ObjectChanged(String),
    /// A chunk's lines no longer match its plan (the object changed): nothing of the chunk
    /// was written.
    #[error("{0}")]
    ChunkInvalid(String),
    /// Some chunks did not report: the file is partly applied (report status `failed`).
    #[error("{0}")]
    ChunksFailed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl runtime::ErrorType for IngestError {
    fn error_type(&self) -> &'static str {
        match self {
            IngestError::InvalidInput(_) => "InvalidInput",
            IngestError::ObjectChanged(_) => "ObjectChanged",
            IngestError::ChunkInvalid(_) => "ChunkInvalid",
            IngestError::ChunksFailed(_) => "IngestChunksFailed",
            IngestError::Store(s) => runtime::store_error_type(s),
        }
    }
}

runtime::diagnostic_from!(IngestError);

#[tracing::instrument(skip_all)]
pub async fn handle(deps: &Deps, event: LambdaEvent<Input>) -> Result<Output, IngestError> {
    match event.payload {
        Input::Plan(p) => plan::plan(deps, *p).await.map(Output::Plan),
        Input::Apply(c) => apply::apply(deps, *c).await.map(Output::Apply),
        Input::Finish(f) => finish::finish(deps, *f).await.map(Output::Finish),
    }
}
