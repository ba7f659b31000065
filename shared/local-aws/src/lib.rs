//! The local AWS harness used by tests and local tools.
//!
//! - [`Emulator::shared`] finds the emulator (`AWS_ENDPOINT_URL`) or starts a private one
//!   for this process from the project's `.venv` (see `scripts/setup.sh`): moto server with
//!   the small Lambda router of `shared/local-aws/emulator.py` in front of it.
//! - [`provision`] creates the storage declared in the project's `template.yaml` — the one
//!   source of truth for tables, buckets and queues — under a name prefix, names the
//!   functions, creates the state machines (feature `sfn`) and resolves the functions'
//!   environment variables against all of it. The stack's contact-data keyring is a Secrets
//!   Manager secret of its own ([`PII_KEYS_SECRET_PARAMETER`]), as on AWS: the functions'
//!   environment names it, and they read it as deployed.
//! - [`fresh_stack`] does both with a unique prefix, so every test gets its own resources and
//!   tests can run in parallel against one emulator.
//! - `lambda::LambdaHost` (feature `lambda`) serves Lambda handlers from this process; the
//!   emulator's Step Functions engine invokes them through the router, so the project's real
//!   state machines run against the real handlers.
//!
//! Features: `sqs` (queues), `sfn` (state machines, `Stack::sfn`), `lambda` (the host).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let stack = local_aws::fresh_stack("settles-once").await?;
//! let table = stack.resources.table("CustomersTable").ok_or("not in template.yaml")?;
//! let ddb = stack.dynamodb();
//! ddb.describe_table().table_name(table).send().await?;
//! assert_eq!(stack.env()["CUSTOMERS_TABLE"], table);
//! # Ok(()) }
//! ```

mod admin;
mod emulator;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;
mod provision;
pub mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aws_config::SdkConfig;

pub use emulator::{
    ACCOUNT_ID, Capacity, Emulator, Fault, FaultBound, FaultCounts, IndexCapacity, LostAnswer, REGION, TableCapacity,
    Throttled, Units, WriteOperation, sdk_config_for,
};
pub use provision::{
    Kind, LocalSecret, Provisioned, Resources, function_arn, provision_template, provision_template_with, s3_client,
    secret_name, unique_prefix,
};
pub use template::{Template, TemplateError};

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no template.yaml found in {0} or any parent directory")]
    NoProjectRoot(PathBuf),
    #[error("the emulator is not installed ({0} is missing): run scripts/setup.sh")]
    NotInstalled(PathBuf),
    #[error("could not start the emulator: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the emulator at {url} did not answer within {waited_secs} s (log: {})", log.display())]
    NotReady {
        url: String,
        waited_secs: u64,
        log: PathBuf,
    },
    #[error("the emulator exited while starting (log: {}): {tail}", log.display())]
    Exited { log: PathBuf, tail: String },
    #[error("emulator admin call {path} failed: {detail}")]
    Admin { path: String, detail: String },
    /// The emulator does not route Lambda invocations: it is a plain moto server, not
    /// `shared/local-aws/emulator.py` (start it with `scripts/emulator.sh start`).
    #[error(
        "the emulator at {endpoint} has no Lambda router (a plain moto server?): start it with \
         scripts/emulator.sh start or let local-aws start one ({detail})"
    )]
    NoLambdaRouter { endpoint: String, detail: String },
    /// The in-process Lambda host could not start or register a function.
    #[error("lambda host: {0}")]
    LambdaHost(String),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("provisioning {logical_id}: {source}")]
    Provision {
        logical_id: String,
        #[source]
        source: Box<ServiceError>,
    },
}

/// A typed error from an AWS service call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error(transparent)]
    DynamoDb(#[from] aws_sdk_dynamodb::Error),
    #[error(transparent)]
    S3(#[from] aws_sdk_s3::Error),
    #[cfg(feature = "sqs")]
    #[error(transparent)]
    Sqs(#[from] aws_sdk_sqs::Error),
    #[cfg(feature = "sfn")]
    #[error(transparent)]
    Sfn(#[from] aws_sdk_sfn::Error),
    #[error(transparent)]
    SecretsManager(#[from] aws_sdk_secretsmanager::Error),
}

/// The project root: the nearest directory holding `template.yaml`, searched upwards from
/// this crate's source directory, then from the current directory.
pub fn project_root() -> Result<PathBuf, Error> {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    if let Some(root) = ROOT.get() {
        return Ok(root.clone());
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = find_up(manifest_dir).or_else(|| std::env::current_dir().ok().and_then(|cwd| find_up(&cwd)));
    match found {
        Some(root) => Ok(ROOT.get_or_init(|| root).clone()),
        None => Err(Error::NoProjectRoot(manifest_dir.to_path_buf())),
    }
}

fn find_up(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join("template.yaml").is_file())
        .map(Path::to_path_buf)
}

/// The project's `template.yaml`, parsed once.
pub fn project_template() -> Result<&'static Template, Error> {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    if let Some(t) = TEMPLATE.get() {
        return Ok(t);
    }
    let t = Template::load(&project_root()?.join("template.yaml"))?;
    Ok(TEMPLATE.get_or_init(|| t))
}

/// The template parameter that names the Secrets Manager secret holding the contact-data
/// keyring.
pub const PII_KEYS_SECRET_PARAMETER: &str = "PiiKeysSecretName";

/// The secrets a local stack of the project has: the contact-data keyring, holding `PII_KEYS`
/// when that is set (the keyring the local tools seal with), else the published development
/// keyring.
pub fn project_secrets() -> Vec<LocalSecret> {
    let keyring = std::env::var("PII_KEYS")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| domain::pii::DEV_KEYRING.to_owned());
    vec![LocalSecret {
        parameter: PII_KEYS_SECRET_PARAMETER.to_owned(),
        value: keyring,
    }]
}

/// Provision the project template's storage under `prefix`, with its secrets
/// ([`project_secrets`]; see [`provision_template_with`]).
pub async fn provision(config: &SdkConfig, prefix: &str) -> Result<Resources, Error> {
    provision_template_with(config, project_template()?, prefix, &project_secrets()).await
}

/// A test's own copy of the project's storage in the shared emulator.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Points at the emulator; build clients from it.
    pub config: SdkConfig,
    pub resources: Resources,
}

impl Stack {
    /// A DynamoDB client for the emulator.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.config)
    }

    /// An S3 client for the emulator (path-style addressing).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        s3_client(&self.config)
    }

    /// An SQS client for the emulator.
    #[cfg(feature = "sqs")]
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config)
    }

    /// A Step Functions client for the emulator.
    #[cfg(feature = "sfn")]
    pub fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.config)
    }

    /// The functions' shared environment (see [`Resources::env`]).
    pub fn env(&self) -> &BTreeMap<String, String> {
        self.resources.env()
    }
}

/// Provision the project template's storage with a prefix unique to this call (derived from
/// `name`, usually the test's name) in this process's emulator ([`Emulator::shared`]).
pub async fn fresh_stack(name: &str) -> Result<Stack, Error> {
    let emulator = Emulator::shared().await?;
    let config = emulator.sdk_config().await;
    let resources = provision(&config, &unique_prefix(name)).await?;
    Ok(Stack { config, resources })
}
