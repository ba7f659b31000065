//! What the AWS SDK's transport errors say about a request: whether it can
//! have reached the provider. Shared by the SDK-backed providers (SES, End
//! User Messaging), whose retries are the sender's, never the SDK's: only a
//! request that provably never left may be tried again as if nothing happened.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::result::DispatchFailure;

/// Whether a dispatch failure happened before the request could be written:
/// no connection was made (the connector reports no connection metadata) and
/// the error chain names a failure to connect ([`failed_to_connect`]). The SDK
/// reports a connection reset mid-request as an I/O error like a refused
/// connection, so anything else may have been sent.
pub(crate) fn never_sent(failure: &DispatchFailure) -> bool {
    failure
        .as_connector_error()
        .is_some_and(|c| c.connection_metadata().is_none() && failed_to_connect(c))
}

/// Whether the connector failed before the request could be written: while
/// establishing the connection (hyper-util's connect error, which covers DNS,
/// TCP, TLS and the connect timeout), resolving the host, or refused by the
/// peer. Anything else on the chain (reset, broken pipe, closed, read timeout)
/// may come after bytes were sent.
pub(crate) fn failed_to_connect(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
            || e.is::<aws_smithy_runtime_api::client::dns::ResolveDnsError>()
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// What a failed SDK call that carries no answer of the service means (every
/// `SdkError` but `ServiceError`, which the caller classifies by the service's
/// own codes), for a request of `key` to `service` (its name in messages,
/// e.g. `SES`); the codes are `code_prefix` followed by `Connect`,
/// `Dispatch`, `Timeout`, `ResponseError`, `NotSent` or `Error`:
/// - retryable: a request that never left (the connection could not be made:
///   `…Connect`; it could not be built, e.g. no credentials: `…NotSent`);
/// - unknown (the service may have taken it): a failure on a connection that
///   was made (`…Dispatch`), a timeout, an answer that could not be read, or
///   anything else.
pub(crate) fn without_answer<E, R>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
    service: &str,
    code_prefix: &str,
    key: &str,
) -> crate::ProviderError
where
    E: StdError + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    // The SDKs re-export one type from the smithy runtime.
    use aws_sdk_sesv2::error::DisplayErrorContext;

    use crate::ProviderError;
    let code = |suffix: &str| format!("{code_prefix}{suffix}");
    match err {
        SdkError::DispatchFailure(d) => {
            // SdkError's Display says only "dispatch failure"; the context is in its
            // sources, which describe the connection, never the message.
            let detail = DisplayErrorContext(err);
            if never_sent(d) {
                ProviderError::retryable(
                    code("Connect"),
                    format!("{service} request for {key} not sent: {detail}"),
                )
            } else {
                ProviderError::unknown(
                    code("Dispatch"),
                    format!("{service} request for {key} failed on the way, it may have been sent: {detail}"),
                )
            }
        }
        SdkError::TimeoutError(_) => ProviderError::unknown(
            code("Timeout"),
            format!("no answer from {service} for {key} in time; it may have been sent"),
        ),
        SdkError::ResponseError(_) => ProviderError::unknown(
            code("ResponseError"),
            format!("the answer of {service} for {key} could not be read; it may have been sent"),
        ),
        SdkError::ConstructionFailure(_) => ProviderError::retryable(
            code("NotSent"),
            format!(
                "{service} request for {key} could not be built (credentials, endpoint?): {}",
                DisplayErrorContext(err)
            ),
        ),
        _ => ProviderError::unknown(
            code("Error"),
            format!("{service} request for {key} failed: {}", DisplayErrorContext(err)),
        ),
    }
}
