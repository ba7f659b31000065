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
