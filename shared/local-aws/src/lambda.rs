//! Lambda handlers served from this process, for the emulator's Step Functions engine.
//!
//! moto cannot run our Rust functions. The emulator (`shared/local-aws/emulator.py`)
//! therefore routes Lambda `Invoke` of *registered* function names to an HTTP endpoint;
//! [`LambdaHost`] is that endpoint: a small HTTP/1 server on a loopback port of this process
//! that calls the registered handlers — the real ones, with their real dependencies —
//! concurrently.
//!
//! ```no_run
//! # use std::time::Duration;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lambda_runtime::LambdaEvent;
//! use local_aws::lambda::LambdaHost;
//!
//! let emulator = local_aws::Emulator::shared().await?;
//! let stack = local_aws::fresh_stack("settles").await?;
//! let host = LambdaHost::start().await?;
//! let name = stack.resources.function_name("SettleShardFunction").ok_or("not in template.yaml")?;
//! host.register_fn(emulator, name, Duration::from_secs(60), |event: LambdaEvent<serde_json::Value>| async move {
//!     Ok::<_, lambda_runtime::Diagnostic>(event.payload)
//! })
//! .await?;
//! // Executions of the stack's state machines now invoke the handler above.
//! # Ok(()) }
//! ```
//!
//! The host runs on the Tokio runtime that started it and stops when it is dropped. A
//! function's route in the emulator outlives the host: invoking it afterwards gives the
//! function error `Local.HandlerUnavailable`. Use names unique to the test (the provisioned
//! `{prefix}-{LogicalId}` names are) so that test processes sharing one emulator never
//! take each other's routes.
//!
//! Errors are reported as Lambda does: HTTP 200, header `X-Amz-Function-Error: Unhandled`
//! and the body `{"errorType": ..., "errorMessage": ...}`. Step Functions turns `errorType`
//! into the state's error name, so `Retry`/`Catch` on the handlers' error names work.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use crate::provision::function_arn;
use crate::{Emulator, Error};

/// The error type of a payload that is not what the handler takes: the deployed functions'
/// (`runtime::decode_payload`), so a local run reports what AWS would.
pub const INVALID_INPUT: &str = runtime::INVALID_INPUT;
/// The error type of a handler that panicked.
pub const PANIC_ERROR: &str = "Runtime.Panic";
/// The error type of a handler that ran past its timeout.
pub const TIMEOUT_ERROR: &str = "Sandbox.Timedout";
/// The error type of an invocation of a name no handler is registered under in this host.
pub const NOT_REGISTERED_ERROR: &str = "Local.FunctionNotRegistered";

/// A function error as Lambda reports it: `{"errorType": ..., "errorMessage": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
}

impl FunctionError {
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            error_message: error_message.into(),
        }
    }
}

impl From<Diagnostic> for FunctionError {
    fn from(d: Diagnostic) -> Self {
        Self::new(d.error_type, d.error_message)
    }
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

impl std::error::Error for FunctionError {}

/// One invocation in progress: the handler's output or its error.
pub type Invocation = BoxFuture<'static, Result<Value, FunctionError>>;

/// A handler over raw JSON payloads. [`handler_fn`] makes one from a typed Lambda handler;
/// tests can wrap one in another to inject faults.
pub type Handler = Arc<dyn Fn(Value) -> Invocation + Send + Sync>;

/// Runs instead of a function's handler and decides what happens: call the handler (given
/// as the second argument) once, twice or not at all, fail, delay. For fault injection.
pub type Interceptor = Arc<dyn Fn(Value, Handler) -> Invocation + Send + Sync>;

#[derive(Clone)]
struct Function {
    handler: Handler,
    interceptor: Option<Interceptor>,
}

#[derive(Default)]
struct Registry {
    functions: Mutex<HashMap<String, Function>>,
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl Registry {
    fn function(&self, name: &str) -> Option<Function> {
        lock(&self.functions).get(name).cloned()
    }

    fn counter(&self, name: &str) -> Arc<AtomicU64> {
        lock(&self.counters).entry(name.to_owned()).or_default().clone()
    }
}

/// A lock that keeps working after a panic elsewhere: the maps stay consistent because
/// every critical section is a single insert, remove or lookup.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An HTTP server in this process that the emulator sends Lambda invocations to
/// (`POST /invoke/{function_name}`, the payload as body, Lambda's Invoke answer back).
pub struct LambdaHost {
    addr: SocketAddr,
    registry: Arc<Registry>,
    server: JoinHandle<()>,
}

impl fmt::Debug for LambdaHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = lock(&self.registry.functions).keys().cloned().collect();
        names.sort();
        f.debug_struct("LambdaHost")
            .field("addr", &self.addr)
            .field("functions", &names)
            .finish()
    }
}

impl Drop for LambdaHost {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LambdaHost {
    /// Start serving on a free port of 127.0.0.1, on the current Tokio runtime.
    pub async fn start() -> Result<LambdaHost, Error> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::LambdaHost(format!("cannot listen on 127.0.0.1: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Error::LambdaHost(e.to_string()))?;
        let registry = Arc::new(Registry::default());
        let served = registry.clone();
        let server = tokio::spawn(crate::http::serve(listener, "lambda host", move |req| {
            let registry = served.clone();
            async move { answer(&registry, req).await }
        }));
        tracing::debug!(%addr, "lambda host listening");
        Ok(LambdaHost { addr, registry, server })
    }

    /// The address the host listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL the emulator invokes `function_name` at.
    pub fn url(&self, function_name: &str) -> String {
        format!("http://{}/invoke/{function_name}", self.addr)
    }

    /// Serve `function_name` with `handler` (replacing an earlier handler of that name) and
    /// route the emulator's invocations of it here.
    ///
    /// Fails with [`Error::NoLambdaRouter`] if the emulator is a plain moto server.
    pub async fn register(&self, emulator: &Emulator, function_name: &str, handler: Handler) -> Result<(), Error> {
        validate_name(function_name)?;
        let previous = lock(&self.registry.functions).insert(
            function_name.to_owned(),
            Function {
                handler,
                interceptor: None,
            },
        );
        if let Err(e) = emulator
            .register_lambda_route(function_name, &self.url(function_name))
            .await
        {
            let mut functions = lock(&self.registry.functions);
            match previous {
                Some(p) => functions.insert(function_name.to_owned(), p),
                None => functions.remove(function_name),
            };
            return Err(e);
        }
        tracing::debug!(function_name, url = %self.url(function_name), "lambda registered");
        Ok(())
    }

    /// Serve `function_name` with a typed Lambda handler, as `lambda_runtime::run` would:
    /// see [`handler_fn`] for the payload, context, errors, timeout and panics.
    pub async fn register_fn<In, Out, E, F, Fut>(
        &self,
        emulator: &Emulator,
        function_name: &str,
        timeout: Duration,
        f: F,
    ) -> Result<(), Error>
    where
        In: DeserializeOwned + Send + 'static,
        Out: Serialize + 'static,
        E: Into<Diagnostic> + 'static,
        F: Fn(LambdaEvent<In>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Out, E>> + Send + 'static,
    {
        self.register(emulator, function_name, handler_fn(function_name, timeout, f))
            .await
    }

    /// Stop serving `function_name` here and in the emulator.
    pub async fn unregister(&self, emulator: &Emulator, function_name: &str) -> Result<(), Error> {
        lock(&self.registry.functions).remove(function_name);
        emulator.unregister_lambda_route(function_name).await
    }

    /// Put `interceptor` in front of a registered function's handler (replacing an earlier
    /// one). Errors if no handler is registered under `function_name`.
    pub fn intercept(&self, function_name: &str, interceptor: Interceptor) -> Result<(), Error> {
        match lock(&self.registry.functions).get_mut(function_name) {
            Some(f) => {
                f.interceptor = Some(interceptor);
                Ok(())
            }
            None => Err(Error::LambdaHost(format!("{function_name} is not registered"))),
        }
    }

    /// Remove a function's interceptor, if any.
    pub fn clear_interceptor(&self, function_name: &str) {
        if let Some(f) = lock(&self.registry.functions).get_mut(function_name) {
            f.interceptor = None;
        }
    }

    /// How many invocations of `function_name` reached this host (each delivery counts,
    /// whatever its outcome; 0 for an unknown name).
    pub fn invocations(&self, function_name: &str) -> u64 {
        lock(&self.registry.counters)
            .get(function_name)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Invocation counts of every function invoked so far, by name.
    pub fn all_invocations(&self) -> HashMap<String, u64> {
        lock(&self.registry.counters)
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Lambda function names: 1–64 of `[A-Za-z0-9_-]` (they are also a URL path segment here).
fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::LambdaHost(format!(
            "invalid function name {name:?}: 1 to 64 of A-Z a-z 0-9 - _"
        )))
    }
}

/// A [`Handler`] that calls a typed Lambda handler as `lambda_runtime` does:
///
/// - the payload is decoded into `In` with `domain::decode`, as the deployed functions'
///   `runtime::run` does ([`runtime::decode_payload`]); failure is the error `InvalidInput`, naming the field
///   and what was expected, never the value;
/// - the context has a unique `request_id`, `deadline` = now + `timeout` (epoch
///   milliseconds), `invoked_function_arn` = [`function_arn`]`(function_name)` and the
///   function name and version `$LATEST` in `env_config`;
/// - `Err(e)` is reported with the `error_type` and `error_message` of `e.into()`
///   ([`Diagnostic`]);
/// - running past `timeout` is the error `Sandbox.Timedout` (the handler is dropped);
/// - a panic is caught by the host and reported as `Runtime.Panic`.
pub fn handler_fn<In, Out, E, F, Fut>(function_name: &str, timeout: Duration, f: F) -> Handler
where
    In: DeserializeOwned + Send + 'static,
    Out: Serialize + 'static,
    E: Into<Diagnostic> + 'static,
    F: Fn(LambdaEvent<In>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Out, E>> + Send + 'static,
{
    let f = Arc::new(f);
    let config = Arc::new(lambda_runtime::Config {
        function_name: function_name.to_owned(),
        version: "$LATEST".to_owned(),
        ..lambda_runtime::Config::default()
    });
    let arn = function_arn(function_name);
    Arc::new(move |value: Value| {
        let f = f.clone();
        let config = config.clone();
        let arn = arn.clone();
        Box::pin(async move {
            let payload: In =
                runtime::decode_payload(value).map_err(|d| FunctionError::new(&d.error_type, d.error_message))?;
            let mut context = Context::default();
            context.request_id = request_id();
            context.deadline = deadline_ms(timeout);
            context.invoked_function_arn = arn;
            context.env_config = config;
            match tokio::time::timeout(timeout, f(LambdaEvent::new(payload, context))).await {
                Err(_) => Err(FunctionError::new(
                    TIMEOUT_ERROR,
                    format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
                )),
                Ok(Err(e)) => Err(FunctionError::from(e.into())),
                Ok(Ok(out)) => serde_json::to_value(out)
                    .map_err(|e| FunctionError::new("Runtime.SerializationError", e.to_string())),
            }
        })
    })
}

fn deadline_ms(timeout: Duration) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from((now + timeout).as_millis()).unwrap_or(u64::MAX)
}

/// A random UUID-shaped request id (unique within and across processes).
fn request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut h = state.build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        h.write_u32(std::process::id());
        h.finish()
    };
    let (a, b) = (half(1), half(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

async fn answer(registry: &Registry, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let name = match (req.method(), req.uri().path().strip_prefix("/invoke/")) {
        (&Method::POST, Some(name)) if !name.is_empty() && !name.contains('/') => name.to_owned(),
        _ => return plain(StatusCode::NOT_FOUND, "POST /invoke/{function_name}"),
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("reading the payload: {e}")),
    };
    registry.counter(&name).fetch_add(1, Ordering::Relaxed);
    let outcome = match registry.function(&name) {
        None => Err(FunctionError::new(
            NOT_REGISTERED_ERROR,
            format!("no handler is registered for {name} in this process"),
        )),
        Some(function) => invoke(function, &body).await,
    };
    match outcome {
        Ok(value) => json(&value, None),
        Err(e) => {
            tracing::debug!(function_name = %name, error = %e, "function error");
            json(&e, Some("Unhandled"))
        }
    }
}

async fn invoke(function: Function, body: &[u8]) -> Result<Value, FunctionError> {
    let payload: Value = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        domain::decode::from_slice(body)
            .map_err(|e| FunctionError::new(INVALID_INPUT, domain::text::reason(&format!("invalid input: {e}"))))?
    };
    // The handler is called inside the future so that a panic while building its future
    // is caught as well.
    let run = async move {
        match function.interceptor {
            Some(interceptor) => interceptor(payload, function.handler).await,
            None => (function.handler)(payload).await,
        }
    };
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the handler panicked".to_owned());
            Err(FunctionError::new(PANIC_ERROR, message))
        }
    }
}

fn json<T: Serialize>(value: &T, function_error: Option<&str>) -> Response<Full<Bytes>> {
    let body = match serde_json::to_vec(value) {
        Ok(b) => b,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json");
    if let Some(kind) = function_error {
        builder = builder.header("X-Amz-Function-Error", kind);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_uuid_shaped() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 1000);
        let id = request_id();
        let groups: Vec<_> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("p-SettleShardFunction_1").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name(&"f".repeat(65)).is_err());
    }

    #[tokio::test]
    async fn typed_handlers_report_errors_like_the_runtime() {
        #[derive(Deserialize)]
        struct In {
            n: u32,
        }
        let h = handler_fn("p-F", Duration::from_millis(200), |e: LambdaEvent<In>| async move {
            assert_eq!(e.context.invoked_function_arn, function_arn("p-F"));
            assert!(!e.context.request_id.is_empty());
            match e.payload.n {
                0 => Err(Diagnostic {
                    error_type: "Transient".into(),
                    error_message: "try again".into(),
                }),
                1 => panic!("boom"),
                2 => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(0)
                }
                n => Ok(n * 2),
            }
        });
        let f = |h: &Handler| Function {
            handler: h.clone(),
            interceptor: None,
        };
        assert_eq!(invoke(f(&h), br#"{"n": 21}"#).await, Ok(Value::from(42)));
        assert_eq!(
            invoke(f(&h), br#"{"n": 0}"#).await,
            Err(FunctionError::new("Transient", "try again"))
        );
        let e = invoke(f(&h), br#"{"n": "x"}"#).await.unwrap_err();
        assert_eq!(e.error_type, INVALID_INPUT);
        assert_eq!(e.error_message, "invalid input: field `n`: expected u32", "{e}");
        assert_eq!(invoke(f(&h), b"not json").await.unwrap_err().error_type, INVALID_INPUT);
        assert_eq!(
            invoke(f(&h), br#"{"n": 1}"#).await,
            Err(FunctionError::new(PANIC_ERROR, "boom"))
        );
        assert_eq!(
            invoke(f(&h), br#"{"n": 2}"#).await.unwrap_err().error_type,
            TIMEOUT_ERROR
        );
    }
}
