//! The face every function shows the Lambda runtime, in one place.
//!
//! A function's `main` is one call:
//!
//! ```ignore
//! #[tokio::main]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     runtime::run(settle_shard::Deps::load, settle_shard::handle).await
//! }
//! ```
//!
//! [`run`] installs the runtime's log subscriber, loads the SDK configuration with the
//! project's timeouts ([`adapters::load_sdk_config`]), builds the function's `Deps` from the
//! process environment with its `async fn load` (which may call AWS: the functions that open
//! contact data fetch the keyring from Secrets Manager there, `adapters::keyring`; a missing
//! or invalid variable or secret fails the cold start, named in the error), and serves
//! `handle(&deps, event)` until the runtime stops. Every handler returns
//! its own typed error; the runtime reports it to the caller as the error's type name and
//! message (`lambda_runtime::Diagnostic`), which is what Step Functions' `Retry`/`Catch`
//! match on and what an SQS trigger treats as "the whole batch failed".
//!
//! **Errors.** Every function's error type names, for each of its variants, the
//! `errorType` its caller sees ([`ErrorType`]); [`diagnostic_from!`] turns it into the
//! runtime's `Diagnostic` with the message bounded ([`domain::text::reason`]), so no error,
//! however long its cause, fills a Step Functions history or a log line. A store error is
//! `Transient` when a retry may succeed ([`store_error_type`]), which is what the state
//! machines' `Retry` blocks match.
//!
//! SQS-triggered functions report partial failures (`ReportBatchItemFailures`) with
//! [`batch_response`].

pub mod emf;
use std::future::Future;

use adapters::ProcessEnv;
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde::{Serialize, de::DeserializeOwned};

/// Starts a function: `deps` builds its dependencies from the SDK configuration and the
/// environment (awaited once, at cold start), `handle` serves each event with them.
///
/// The dependencies live as long as the process (they are leaked once, at cold start), so
/// that `handle` can be the function's plain `async fn handle(&Deps, LambdaEvent<E>)`.
/// Each invocation's future is boxed, so that no handler's depth of nested futures counts
/// against the compiler's limit in `main`.
pub async fn run<D, C, H, F, E, R, Err>(
    deps: impl AsyncFnOnce(&SdkConfig, &ProcessEnv) -> Result<D, C>,
    handle: H,
) -> Result<(), Error>
where
    D: Sync + 'static,
    C: std::error::Error + Send + Sync + 'static,
    H: Fn(&'static D, LambdaEvent<E>) -> F,
    F: Future<Output = Result<R, Err>>,
    E: DeserializeOwned,
    R: Serialize,
    Err: Into<Diagnostic> + std::fmt::Debug,
{
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = adapters::load_sdk_config().await;
    let deps: &'static D = Box::leak(Box::new(deps(&sdk, &ProcessEnv).await?));
    // Each invocation's future is boxed (one allocation per event): a handler's future nests
    // every step it awaits, and laid out inline inside the runtime's own futures and `main`'s
    // it reaches the compiler's type-depth limit as handlers grow.
    //
    // The payload is decoded here, not by the runtime: the runtime's message quotes the value
    // it refused, ours names the field and what it expected ([`decode_payload`]).
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let LambdaEvent { payload, context } = event;
        let call = decode_payload::<E>(payload).map(|payload| handle(deps, LambdaEvent::new(payload, context)));
        Box::pin(async move {
            match call {
                Ok(serve) => serve.await.map_err(Into::into),
                Err(invalid) => Err(invalid),
            }
        })
    }))
    .await
}

/// The `errorType` of a payload that does not decode into the function's input.
pub const INVALID_INPUT: &str = "InvalidInput";

/// Decodes a function's payload with [`domain::decode`]: an input that is not what the
/// function takes is the error [`INVALID_INPUT`], whose message gives the field's path and
/// what was expected there, never the value (which may be anyone's contact data).
pub fn decode_payload<E: DeserializeOwned>(payload: serde_json::Value) -> Result<E, Diagnostic> {
    domain::decode::from_value(payload).map_err(|e| Diagnostic {
        error_type: INVALID_INPUT.into(),
        error_message: domain::text::reason(&format!("invalid input: {e}")),
    })
}

/// The `errorType` of each of a function's errors: the name Step Functions' `Retry` and
/// `Catch` match on, and what an operator searches the logs for.
pub trait ErrorType: std::fmt::Display {
    fn error_type(&self) -> &'static str;
}

/// The `errorType` of a store error: `Transient` when a retry may succeed, else `StoreError`.
pub fn store_error_type(e: &adapters::StoreError) -> &'static str {
    if e.is_transient() { "Transient" } else { "StoreError" }
}

/// What the runtime reports for `e`: its [`ErrorType`] and its message, bounded.
pub fn diagnostic(e: &impl ErrorType) -> Diagnostic {
    Diagnostic {
        error_type: e.error_type().into(),
        error_message: domain::text::reason(&e.to_string()),
    }
}

/// `impl From<$error> for lambda_runtime::Diagnostic` through [`diagnostic`], for an error
/// type that implements [`ErrorType`] (the runtime and the local hosts take `Into<Diagnostic>`).
#[macro_export]
macro_rules! diagnostic_from {
    ($error:ty) => {
        impl From<$error> for ::lambda_runtime::Diagnostic {
            fn from(e: $error) -> Self {
                $crate::diagnostic(&e)
            }
        }
    };
}

/// The response of an SQS-triggered function: the messages named by `failed` (their message
/// ids) are handed back to the queue, every other message of the batch is deleted.
pub fn batch_response<I, S>(failed: I) -> SqsBatchResponse
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id.into();
            f
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_response_names_exactly_the_failed_messages() {
        let r = batch_response(["m-2", "m-7"]);
        let ids: Vec<&str> = r
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["m-2", "m-7"]);
        assert!(batch_response(Vec::<String>::new()).batch_item_failures.is_empty());
    }

    #[derive(Debug)]
    struct Slow(usize);
    impl std::fmt::Display for Slow {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", "x".repeat(self.0))
        }
    }
    impl ErrorType for Slow {
        fn error_type(&self) -> &'static str {
            "Slow"
        }
    }
    diagnostic_from!(Slow);

    #[test]
    fn a_diagnostic_carries_the_type_and_a_bounded_message() {
        let d: Diagnostic = Slow(10).into();
        assert_eq!(
            (d.error_type.as_str(), d.error_message.as_str()),
            ("Slow", "xxxxxxxxxx")
        );
        let long: Diagnostic = Slow(100_000).into();
        assert!(
            long.error_message.len() <= domain::text::MAX_REASON_BYTES,
            "{}",
            long.error_message.len()
        );
        assert!(long.error_message.starts_with("xxx"));
    }

    #[test]
    fn a_payload_that_does_not_decode_names_the_field_not_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Task {
            cycle: domain::Cycle,
            shard: u32,
        }
        let email = "kim.minjun.1987@example-mail.co.kr";
        for (payload, expected) in [
            (
                serde_json::json!({"cycle": email, "shard": 1}),
                "invalid input: field `cycle`: invalid value, expected a cycle as YYYY-MM",
            ),
            (
                serde_json::json!({"cycle": "2026-11", "shard": email}),
                "invalid input: field `shard`: expected u32",
            ),
        ] {
            let d = decode_payload::<Task>(payload).unwrap_err();
            assert_eq!(
                (d.error_type.as_str(), d.error_message.as_str()),
                (INVALID_INPUT, expected)
            );
            assert!(!domain::text::echoes(&d.error_message, email));
        }
        let t: Task = decode_payload(serde_json::json!({"cycle": "2026-11", "shard": 3})).unwrap();
        assert_eq!(t.shard, 3);
    }

    #[test]
    fn the_response_is_what_the_sqs_trigger_reads() {
        let v = serde_json::to_value(batch_response(["abc"])).unwrap();
        assert_eq!(v, serde_json::json!({"batchItemFailures": [{"itemIdentifier": "abc"}]}));
    }
}
