//! The AWS adapter layer: every call to DynamoDB, S3, SQS and Secrets Manager goes through here.
//!
//! * Clients come from one [`aws_config::SdkConfig`] ([`load_sdk_config`]),
//!   which honours `AWS_ENDPOINT_URL`, so the same code talks to AWS or to the
//!   local emulator; S3 switches to path-style addressing under an endpoint
//!   override.
//! * Errors are typed ([`StoreError`]) and say whether a retry can help.
//! * A failed condition is a domain outcome ([`PutOutcome`]), not an error.
//! * The personal-data keyring is read from Secrets Manager and cached for the
//!   instance (`keyring`, feature `keyring`), never from the environment.
//! * Batch writes enforce the AWS limit of 25 items themselves (the emulator
//!   does not) and re-drive unprocessed items with exponential backoff and
//!   full jitter.
//!
//! Each store is behind a cargo feature so a function compiles only the SDK
//! clients it uses.

pub mod deadline;
// Built with no store feature (as `runtime` needs it: config and errors only), the SDK error
// wrapping has no caller.
#[cfg_attr(
    not(any(feature = "dynamodb", feature = "s3", feature = "sqs")),
    allow(dead_code, unused_imports)
)]
mod error;
pub mod retry;

#[cfg(feature = "dynamodb")]
pub mod bills;
#[cfg(feature = "dynamodb")]
pub mod catalog_store;
#[cfg(feature = "dynamodb")]
pub mod corrections;
#[cfg(feature = "dynamodb")]
pub mod customers;
#[cfg(feature = "dynamodb")]
pub mod cycles;
#[cfg(feature = "s3")]
pub mod data_bucket;
#[cfg(feature = "dynamodb")]
pub mod deliveries;
#[cfg(feature = "dynamodb")]
pub mod dispatch_ledger;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
#[cfg(feature = "dynamodb")]
pub mod evidence;
#[cfg(feature = "dynamodb")]
pub mod failures;
#[cfg(feature = "keyring")]
pub mod keyring;
/// Invoice links that last: their keys from Secrets Manager (`domain::link`).
#[cfg(feature = "keyring")]
pub mod links;
#[cfg(feature = "dynamodb")]
pub mod pacing;
#[cfg(feature = "sqs")]
pub mod queue;
/// Keys in a Secrets Manager secret, cached for the instance (the keyring's and the links').
#[cfg(feature = "keyring")]
pub mod secret_keys;
#[cfg(feature = "dynamodb")]
pub mod settings;
#[cfg(all(feature = "dynamodb", feature = "s3"))]
pub mod snapshots;
#[cfg(feature = "dynamodb")]
pub mod suppressions;

pub use error::StoreError;

use aws_config::{BehaviorVersion, SdkConfig};

/// The longest one attempt of an AWS call may take (a hung connection, a
/// service that does not answer), and one call with the SDK's retries. Below
/// every function's timeout (60 s for the senders), so no call outlives the
/// invocation that made it; handlers that need less bound their calls by the
/// time they have left as well.
pub const SDK_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
pub const SDK_OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(25);

/// Loads the shared SDK configuration from the environment (region,
/// credentials, `AWS_ENDPOINT_URL`), with the call timeouts above. Build it
/// once per process, in `main`.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(sdk_timeouts())
        .load()
        .await
}

/// The SDK's HTTPS client: hyper with rustls on the ring crypto provider
/// (the SDK's `default-https-client` would link aws-lc, 1.5 MB of every bootstrap).
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::{Builder, tls};
    Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// [`SDK_ATTEMPT_TIMEOUT`] and [`SDK_OPERATION_TIMEOUT`], with the SDK's
/// connect timeout.
pub fn sdk_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_millis(3_100))
        .operation_attempt_timeout(SDK_ATTEMPT_TIMEOUT)
        .operation_timeout(SDK_OPERATION_TIMEOUT)
        .build()
}

/// Outcome of a conditional create.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// The item was already there (the condition failed); nothing changed.
    AlreadyExists,
}

/// Where a function reads its configuration: the process environment on
/// Lambda, a map of the provisioned stack's variables when hosted locally.
pub trait Vars {
    fn lookup(&self, name: &str) -> Option<String>;

    /// A required variable, named in the error when it is missing or blank.
    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        match self.lookup(name) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(ConfigError::Missing(name)),
        }
    }

    /// An optional variable parsed with `FromStr`, `default` when absent.
    fn parsed<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError> {
        match self.lookup(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
                name,
                reason: format!("{v:?} cannot be parsed"),
            }),
        }
    }
}

/// The process environment.
pub struct ProcessEnv;

impl Vars for ProcessEnv {
    fn lookup(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Vars for std::collections::BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Vars for std::collections::HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

#[cfg(feature = "s3")]
/// An S3 client from the shared configuration; path-style addressing when an
/// endpoint override (the emulator) is configured.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let b = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(b.build())
}

#[cfg(feature = "sqs")]
pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

#[cfg(feature = "dynamodb")]
pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}
