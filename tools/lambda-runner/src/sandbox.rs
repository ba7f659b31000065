//! Function instances as Lambda runs them on an OS-only runtime (`provided.al2023`): the
//! package's `bootstrap` started with the function's environment and the variables Lambda
//! sets, talking to its own Lambda Runtime API (`/2018-06-01/runtime/...` on a loopback
//! port of this process), one invocation at a time.
//!
//! A [`Pool`] keeps up to `instances` instances of one function: an invocation takes an idle
//! one or starts one (a cold start), and waits when all are busy. What Lambda reports, this
//! reports the same way:
//!
//! - an error the function posts (`/invocation/{id}/error`) is the Invoke's function error,
//!   its body `{"errorType", "errorMessage"}` as posted;
//! - an instance that runs past the function's `Timeout` is killed: `Sandbox.Timedout`,
//!   "Task timed out after N.00 seconds";
//! - an instance that exits (during its init or an invocation) or reports an init error:
//!   `Runtime.ExitError` / the posted init error, and the instance is gone;
//! - the init phase may take up to [`INIT_LIMIT`], as Lambda's does, on top of the timeout.
//!
//! The deadline an invocation is given (`Lambda-Runtime-Deadline-Ms`) is on the function's
//! clock: the virtual clock when the runner has one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::discover::FunctionSpec;

/// How long an instance's init phase may take (Lambda's limit for on-demand functions).
pub const INIT_LIMIT: Duration = Duration::from_secs(10);

pub const TIMEOUT_ERROR: &str = "Sandbox.Timedout";
pub const EXIT_ERROR: &str = "Runtime.ExitError";
pub const ENTRYPOINT_ERROR: &str = "Runtime.InvalidEntrypoint";

/// A function error as Lambda reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
}

impl FunctionError {
    pub fn new(error_type: &str, error_message: impl Into<String>) -> Self {
        FunctionError {
            error_type: error_type.to_owned(),
            error_message: error_message.into(),
        }
    }
}

/// What an invocation answered: the function's response bytes, or a function error (whose
/// body, as Lambda returns it, is kept as the function posted it).
#[derive(Debug)]
pub enum Outcome {
    Ok(Bytes),
    Err { error: FunctionError, body: Bytes },
}

impl Outcome {
    fn error(error: FunctionError) -> Outcome {
        let body = Bytes::from(serde_json::to_vec(&error).unwrap_or_default());
        Outcome::Err { error, body }
    }
}

/// How instances are started: the clock and the environment every function gets.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The emulator's endpoint, given to the functions as `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    pub region: String,
    /// The virtual clock, and libfaketime to put the instances on it.
    pub clock: Option<(Clock, PathBuf)>,
    /// Each function's output goes to `<logs>/<function>.log`.
    pub logs: PathBuf,
}

impl Launch {
    fn now_ms(&self) -> u64 {
        let now = match &self.clock {
            Some((c, _)) => c.now().unwrap_or_else(|_| chrono::Utc::now()),
            None => chrono::Utc::now(),
        };
        u64::try_from(now.timestamp_millis()).unwrap_or(0)
    }

    fn now_text(&self) -> String {
        let now = match &self.clock {
            Some((c, _)) => c.now().unwrap_or_else(|_| chrono::Utc::now()),
            None => chrono::Utc::now(),
        };
        now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

struct Job {
    id: String,
    payload: Bytes,
    handed: oneshot::Sender<()>,
    done: oneshot::Sender<Outcome>,
}

/// The Runtime API of one instance.
struct Api {
    jobs: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    inflight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<(FunctionError, Bytes)>>,
    init_failed: tokio::sync::Notify,
    spec: Arc<FunctionSpec>,
    launch: Arc<Launch>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn respond(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}

fn accepted() -> Response<Full<Bytes>> {
    respond(StatusCode::ACCEPTED, Bytes::from_static(br#"{"status":"OK"}"#))
}

fn error_of(body: &Bytes, header_type: Option<&str>) -> FunctionError {
    serde_json::from_slice::<FunctionError>(body).unwrap_or_else(|_| {
        FunctionError::new(
            header_type.unwrap_or("Runtime.Unknown"),
            String::from_utf8_lossy(body).chars().take(1000).collect::<String>(),
        )
    })
}

impl Api {
    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
            return respond(StatusCode::NOT_FOUND, Bytes::from_static(b"not a Runtime API path"));
        };
        let rest = rest.to_owned();
        let method = req.method().clone();
        let error_type = req
            .headers()
            .get("Lambda-Runtime-Function-Error-Type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return respond(StatusCode::BAD_REQUEST, Bytes::new()),
        };
        match (method, rest.as_str()) {
            (Method::GET, "invocation/next") => self.next().await,
            (Method::POST, "init/error") => {
                let error = error_of(&body, error_type.as_deref());
                *lock(&self.init_error) = Some((error, body));
                self.init_failed.notify_waiters();
                accepted()
            }
            (Method::POST, r) => {
                let Some((id, kind)) = r.strip_prefix("invocation/").and_then(|r| r.split_once('/')) else {
                    return respond(StatusCode::NOT_FOUND, Bytes::new());
                };
                let Some(done) = lock(&self.inflight).remove(id) else {
                    return respond(
                        StatusCode::BAD_REQUEST,
                        Bytes::from_static(br#"{"errorType":"InvalidRequestID","errorMessage":"unknown request id"}"#),
                    );
                };
                let outcome = match kind {
                    "response" => Outcome::Ok(body),
                    "error" => Outcome::Err {
                        error: error_of(&body, error_type.as_deref()),
                        body,
                    },
                    _ => return respond(StatusCode::NOT_FOUND, Bytes::new()),
                };
                let _ = done.send(outcome);
                accepted()
            }
            _ => respond(StatusCode::NOT_FOUND, Bytes::new()),
        }
    }

    /// The long poll: waits for this instance's next invocation.
    async fn next(&self) -> Response<Full<Bytes>> {
        let job = self.jobs.lock().await.recv().await;
        let Some(job) = job else {
            return respond(StatusCode::GONE, Bytes::from_static(b"the instance is shutting down"));
        };
        let deadline = self.launch.now_ms() + u64::try_from(self.spec.timeout.as_millis()).unwrap_or(u64::MAX / 2);
        lock(&self.inflight).insert(job.id.clone(), job.done);
        let _ = job.handed.send(());
        Response::builder()
            .status(StatusCode::OK)
            .header("Content-Type", "application/json")
            .header("Lambda-Runtime-Aws-Request-Id", &job.id)
            .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
            .header("Lambda-Runtime-Invoked-Function-Arn", &self.spec.arn)
            .header(
                "Lambda-Runtime-Trace-Id",
                format!(
                    "Root=1-{:08x}-{};Sampled=0",
                    deadline / 1000,
                    &job.id.replace('-', "")[..24]
                ),
            )
            .body(Full::new(job.payload))
            .unwrap_or_else(|_| respond(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new()))
    }
}

/// One running instance of a function.
struct Instance {
    jobs: mpsc::Sender<Job>,
    api: Arc<Api>,
    exited: tokio::sync::watch::Receiver<Option<String>>,
    /// Dropped to kill the process.
    _kill: oneshot::Sender<()>,
    server: JoinHandle<()>,
    fresh: bool,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
    }
}

static INSTANCE_SEQ: AtomicU64 = AtomicU64::new(0);

impl Instance {
    async fn start(spec: Arc<FunctionSpec>, launch: Arc<Launch>) -> Result<Instance, FunctionError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| FunctionError::new(ENTRYPOINT_ERROR, format!("{what}: {e}"));
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| fail("the Runtime API cannot listen", &e))?;
        let port = listener.local_addr().map_err(|e| fail("the Runtime API", &e))?.port();
        let (tx, rx) = mpsc::channel(1);
        let api = Arc::new(Api {
            jobs: tokio::sync::Mutex::new(rx),
            inflight: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            init_failed: tokio::sync::Notify::new(),
            spec: spec.clone(),
            launch: launch.clone(),
        });
        let served = api.clone();
        let server = tokio::spawn(local_aws::http::serve(listener, "runtime API", move |req| {
            served.clone().answer(req)
        }));

        let seq = INSTANCE_SEQ.fetch_add(1, Ordering::Relaxed);
        let stream = format!(
            "{}/[$LATEST]{:016x}{:016x}",
            chrono::Utc::now().format("%Y/%m/%d"),
            std::process::id(),
            seq
        );
        let mut cmd = tokio::process::Command::new(spec.task_dir.join(spec.handler_binary()));
        cmd.current_dir(&spec.task_dir)
            .env_clear()
            .envs(&spec.env)
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory_mb.to_string())
            .env("AWS_LAMBDA_LOG_GROUP_NAME", &spec.log_group)
            .env("AWS_LAMBDA_LOG_STREAM_NAME", &stream)
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("_HANDLER", &spec.handler)
            .env("LAMBDA_TASK_ROOT", &spec.task_dir)
            .env("LAMBDA_RUNTIME_DIR", &spec.task_dir)
            .env("AWS_REGION", &launch.region)
            .env("AWS_DEFAULT_REGION", &launch.region)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_SESSION_TOKEN", "test")
            .env("TZ", ":UTC")
            .env("LANG", "en_US.UTF-8")
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            // The one deviation from Lambda: the AWS SDKs in the function talk to the emulator.
            .env("AWS_ENDPOINT_URL", &launch.endpoint)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(format) = &spec.log_format {
            cmd.env("AWS_LAMBDA_LOG_FORMAT", format);
        }
        if let Some((clock, lib)) = &launch.clock {
            cmd.env("LD_PRELOAD", lib)
                .env("FAKETIME_TIMESTAMP_FILE", clock.path())
                .env("FAKETIME_NO_CACHE", "1")
                .env("DONT_FAKE_MONOTONIC", "1");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(launch.logs.join(format!("{}.log", spec.name)))
            .map_err(|e| fail("the function's log file", &e))?;
        let log2 = log.try_clone().map_err(|e| fail("the function's log file", &e))?;
        cmd.stdout(Stdio::from(log)).stderr(Stdio::from(log2));
        let mut child = cmd.spawn().map_err(|e| fail("the bootstrap does not start", &e))?;
        let (exit_tx, exited) = tokio::sync::watch::channel(None);
        let (kill, mut killed) = oneshot::channel::<()>();
        tokio::spawn(async move {
            tokio::select! {
                status = child.wait() => {
                    let s = match status {
                        Ok(s) => s.to_string(),
                        Err(e) => e.to_string(),
                    };
                    let _ = exit_tx.send(Some(s));
                }
                _ = &mut killed => {
                    let _ = child.kill().await;
                    let _ = exit_tx.send(Some("killed".to_owned()));
                }
            }
        });
        Ok(Instance {
            jobs: tx,
            api,
            exited,
            _kill: kill,
            server,
            fresh: true,
        })
    }

    fn alive(&self) -> bool {
        self.exited.borrow().is_none()
    }

    /// One invocation; whether the instance can take another.
    async fn invoke(&mut self, id: String, payload: Bytes, launch: &Launch) -> (Outcome, bool) {
        let (handed_tx, handed) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let timeout = self.api.spec.timeout;
        let job = Job {
            id: id.clone(),
            payload,
            handed: handed_tx,
            done: done_tx,
        };
        let exit_error = |status: &str| {
            Outcome::error(FunctionError::new(
                EXIT_ERROR,
                format!("RequestId: {id} Error: Runtime exited with error: {status}"),
            ))
        };
        if self.jobs.send(job).await.is_err() {
            return (exit_error("the instance's Runtime API is gone"), false);
        }
        let init_limit = if self.fresh {
            INIT_LIMIT
        } else {
            Duration::from_secs(3600)
        };
        self.fresh = false;
        let mut exited = self.exited.clone();
        let api = self.api.clone();
        let init_failed = api.init_failed.notified();
        tokio::pin!(init_failed);
        init_failed.as_mut().enable();
        if let Some((error, body)) = lock(&api.init_error).take() {
            return (Outcome::Err { error, body }, false);
        }
        tokio::select! {
            biased;
            r = handed => {
                if r.is_err() {
                    return (exit_error("the invocation was dropped"), false);
                }
            }
            _ = &mut init_failed => {
                let (error, body) = lock(&api.init_error).take()
                    .unwrap_or_else(|| (FunctionError::new("Runtime.Unknown", "init failed"), Bytes::new()));
                return (Outcome::Err { error, body }, false);
            }
            r = exited.wait_for(Option::is_some) => {
                let status = r.ok().and_then(|s| s.clone()).unwrap_or_default();
                return (exit_error(&status), false);
            }
            _ = tokio::time::sleep(init_limit) => {
                return (Outcome::error(FunctionError::new(
                    TIMEOUT_ERROR,
                    format!("{} {id} INIT_REPORT Init Duration: {} ms Phase: init Status: timeout",
                        launch.now_text(), init_limit.as_millis()),
                )), false);
            }
        }
        tokio::select! {
            biased;
            r = done => match r {
                Ok(outcome) => (outcome, true),
                Err(_) => (exit_error("the invocation was dropped"), false),
            },
            r = exited.wait_for(Option::is_some) => {
                let status = r.ok().and_then(|s| s.clone()).unwrap_or_default();
                (exit_error(&status), false)
            }
            _ = tokio::time::sleep(timeout) => (Outcome::error(FunctionError::new(
                TIMEOUT_ERROR,
                format!("{} {id} Task timed out after {:.2} seconds", launch.now_text(), timeout.as_secs_f64()),
            )), false),
        }
    }
}

impl FunctionSpec {
    /// The executable an OS-only runtime starts: `bootstrap` in the task directory.
    fn handler_binary(&self) -> &'static str {
        "bootstrap"
    }
}

/// The instances of one function.
pub struct Pool {
    pub spec: Arc<FunctionSpec>,
    launch: Arc<Launch>,
    slots: Semaphore,
    idle: Mutex<Vec<Instance>>,
    pub invocations: AtomicU64,
    pub cold_starts: AtomicU64,
    pub errors: AtomicU64,
}

impl Pool {
    pub fn new(spec: FunctionSpec, launch: Arc<Launch>, instances: usize) -> Pool {
        Pool {
            spec: Arc::new(spec),
            launch,
            slots: Semaphore::new(instances.max(1)),
            idle: Mutex::new(Vec::new()),
            invocations: AtomicU64::new(0),
            cold_starts: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Invokes the function with `payload` (JSON) and waits for its answer.
    pub async fn invoke(&self, payload: Bytes) -> Outcome {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        let Ok(_permit) = self.slots.acquire().await else {
            return Outcome::error(FunctionError::new(EXIT_ERROR, "the runner is stopping"));
        };
        let found = {
            let mut idle = lock(&self.idle);
            idle.retain(Instance::alive);
            idle.pop()
        };
        let mut instance = match found {
            Some(i) => i,
            None => {
                self.cold_starts.fetch_add(1, Ordering::Relaxed);
                match Instance::start(self.spec.clone(), self.launch.clone()).await {
                    Ok(i) => i,
                    Err(e) => {
                        self.errors.fetch_add(1, Ordering::Relaxed);
                        return Outcome::error(e);
                    }
                }
            }
        };
        let (outcome, keep) = instance.invoke(request_id(), payload, &self.launch).await;
        if let Outcome::Err { error, .. } = &outcome {
            self.errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(function = %self.spec.name, error_type = %error.error_type, "function error");
        }
        if keep && instance.alive() {
            lock(&self.idle).push(instance);
        }
        outcome
    }

    /// Stops every idle instance.
    pub fn stop(&self) {
        self.slots.close();
        lock(&self.idle).clear();
    }
}

/// A UUID-shaped request id.
pub fn request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut h = state.build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    let (a, b) = (half(1), half(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}
