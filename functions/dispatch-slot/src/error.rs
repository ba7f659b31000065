//! How a run fails: [`DispatchError`], and the `errorType` each variant
//! reports to the runtime.

use adapters::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("invalid event: {0}")]
    InvalidInput(String),
    #[error("could not continue the run: {0}")]
    Continuation(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The email provider's quota could not be read: no email is planned
    /// blind; the retry or the next slot's run catches up.
    #[error("could not read the email quota: {0}")]
    Quota(providers::ProviderError),
}

impl runtime::ErrorType for DispatchError {
    fn error_type(&self) -> &'static str {
        match self {
            DispatchError::InvalidInput(_) => "InvalidInput",
            DispatchError::Continuation(_) => "Transient",
            DispatchError::Store(s) => runtime::store_error_type(s),
            DispatchError::Quota(e) if e.is_retryable() => "Transient",
            DispatchError::Quota(_) => "QuotaUnavailable",
        }
    }
}

runtime::diagnostic_from!(DispatchError);
