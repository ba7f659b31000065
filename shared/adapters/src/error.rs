use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes that mean "slow down and try again".
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TooManyRequestsException",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "TransactionInProgressException",
];

/// An error from a store. Messages name the operation and resource (table,
/// bucket, key) and never contain personal data: item contents are never
/// echoed, only ids.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The AWS call failed. `transient` is true for throttling, timeouts,
    /// dispatch failures and 5xx errors — a retry may succeed.
    #[error("{op} on {resource} failed: {message}")]
    Aws {
        op: &'static str,
        resource: String,
        message: String,
        transient: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored item or object could not be decoded.
    #[error("{resource}: {what} cannot be decoded: {message}")]
    Decode {
        resource: String,
        what: String,
        message: String,
    },
    /// Items were still unprocessed after every retry.
    #[error("{op} on {resource}: {unprocessed} items still unprocessed after {attempts} attempts")]
    Unprocessed {
        op: &'static str,
        resource: String,
        unprocessed: usize,
        attempts: u32,
    },
    /// A write that would break an invariant (e.g. a different document under
    /// an already published catalog version).
    #[error("{resource}: {message}")]
    Conflict { resource: String, message: String },
    /// The call did not finish within the time its caller had left (the
    /// invocation's deadline): whether a write took effect is unknown.
    #[error("{op} on {resource} did not finish within {limit_ms} ms")]
    Deadline {
        op: &'static str,
        resource: String,
        limit_ms: u128,
    },
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Aws { transient: true, .. } | StoreError::Unprocessed { .. } | StoreError::Deadline { .. }
        )
    }

    /// Runs `call`, giving up after `limit` with [`StoreError::Deadline`].
    pub async fn within<T>(
        limit: std::time::Duration,
        op: &'static str,
        resource: &str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(limit, call).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Deadline {
                op,
                resource: resource.to_owned(),
                limit_ms: limit.as_millis(),
            }),
        }
    }

    /// Wraps an SDK error, classifying it as transient or not.
    pub(crate) fn aws<E>(op: &'static str, resource: impl Into<String>, err: SdkError<E, HttpResponse>) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        let transient = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(se) => {
                se.raw().status().is_server_error() || se.err().code().is_some_and(|c| THROTTLING_CODES.contains(&c))
            }
            _ => false,
        };
        StoreError::Aws {
            op,
            resource: resource.into(),
            message: DisplayErrorContext(&err).to_string(),
            transient,
            source: Box::new(err),
        }
    }
}
