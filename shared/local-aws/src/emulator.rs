//! Finding or starting the AWS emulator (moto server behind the Lambda router of
//! `shared/local-aws/emulator.py`) and building an `SdkConfig` for it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use tokio::sync::OnceCell;

use crate::{Error, admin};

/// The region every local client uses.
pub const REGION: &str = "ap-northeast-2";
/// The account id the emulator reports (moto's default).
pub const ACCOUNT_ID: &str = "123456789012";

/// The emulator script (moto server with our Lambda router and fault switches in front),
/// next to this crate's manifest. The path is fixed when the crate is compiled, and the crate
/// is always compiled from the checkout that holds the script, so nothing is searched for at
/// run time. `scripts/emulator.sh` runs the same file.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/emulator.py");

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 3;

/// Starts the emulator in the background and stops it when standard input closes, that is
/// when the process owning the pipe exits for whatever reason (so tests never clean up
/// explicitly). It also exits when the emulator dies, which is how a failed start is
/// noticed early. `$0` = the venv's python, `$1` = the emulator script, `$2` = port,
/// `$3` = log file.
const WRAPPER: &str = r#"exec 3<&0
"$0" "$1" -H 127.0.0.1 -p "$2" >"$3" 2>&1 </dev/null 3<&- &
pid=$!
(read _ <&3; kill "$pid" 2>/dev/null) &
watcher=$!
wait "$pid"
kill "$watcher" 2>/dev/null
"#;

static SHARED: OnceCell<Emulator> = OnceCell::const_new();

/// An emulator endpoint: one that was given (`AWS_ENDPOINT_URL`) or one this process started.
#[derive(Debug)]
pub struct Emulator {
    endpoint: String,
    server: Option<Server>,
}

/// An emulator process owned by this process. Dropping it closes the wrapper's standard input,
/// which stops the server.
#[derive(Debug)]
struct Server {
    _child: Child,
    _stdin: ChildStdin,
}

impl Emulator {
    /// The emulator for this process, found or started once.
    ///
    /// If `AWS_ENDPOINT_URL` is set it is used as it is and nothing is started (this is how
    /// `scripts/test.sh` shares one emulator between all test processes). Otherwise a private
    /// emulator (`shared/local-aws/emulator.py`: moto and the Lambda router) is started from
    /// the project's `.venv` on a free loopback port; it lives until this process exits.
    pub async fn shared() -> Result<&'static Emulator, Error> {
        SHARED
            .get_or_try_init(|| async {
                match std::env::var("AWS_ENDPOINT_URL") {
                    Ok(url) if !url.trim().is_empty() => {
                        tracing::debug!(endpoint = %url, "using the emulator from AWS_ENDPOINT_URL");
                        Ok(Emulator::external(url.trim()))
                    }
                    _ => Emulator::start().await,
                }
            })
            .await
    }

    /// An emulator somebody else runs, at `endpoint` (e.g. `http://127.0.0.1:5000`).
    pub fn external(endpoint: &str) -> Emulator {
        Emulator {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            server: None,
        }
    }

    /// Start a new private emulator (`shared/local-aws/emulator.py`: moto server with the
    /// Lambda router), wait until it answers and enable Step Functions execution. It stops when
    /// the returned value is dropped or the process exits.
    pub async fn start() -> Result<Emulator, Error> {
        let root = crate::project_root()?;
        let moto = root.join(".venv/bin/moto_server");
        if !moto.is_file() {
            return Err(Error::NotInstalled(moto));
        }
        let python = root.join(".venv/bin/python");
        let script = Path::new(SCRIPT);
        if !script.is_file() {
            return Err(Error::NotInstalled(script.to_path_buf()));
        }
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match start_once(&python, script).await {
                Ok(emulator) => {
                    emulator.enable_stepfunctions_execution().await?;
                    return Ok(emulator);
                }
                // Another process may have taken the port between probing and binding.
                Err(e @ Error::Exited { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(Error::Spawn(std::io::Error::other("no start attempt made"))))
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint
    }

    /// Whether this process started (and so owns) the emulator.
    pub fn is_owned(&self) -> bool {
        self.server.is_some()
    }

    /// An `SdkConfig` for this emulator (dummy credentials, region [`REGION`]).
    ///
    /// Build one per async runtime: clients keep connections that belong to the runtime
    /// that opened them.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint).await
    }

    /// Let the emulator run Step Functions state machines for real (by default moto only
    /// stores them). Applies to state machines created afterwards.
    pub async fn enable_stepfunctions_execution(&self) -> Result<(), Error> {
        admin::expect_ok(
            &self.endpoint,
            "POST",
            "/moto-api/config",
            Some(r#"{"stepfunctions":{"execute_state_machine":true}}"#),
        )
        .await
        .map(drop)
    }

    /// Drop every resource in the emulator (`POST /moto-api/reset`), and every fault switch
    /// and count.
    ///
    /// Only for a tool that owns the emulator: with a shared one (tests running in
    /// parallel) this pulls the resources from under the other tests. Step Functions
    /// execution has to be enabled again afterwards; this does it.
    pub async fn reset(&self) -> Result<(), Error> {
        admin::expect_ok(&self.endpoint, "POST", "/moto-api/reset", None).await?;
        self.enable_stepfunctions_execution().await
    }

    /// Route the emulator's Lambda `Invoke` of `function_name` (as a Step Functions task
    /// makes it) to `url`, a loopback HTTP endpoint that answers like Lambda's Invoke API
    /// (normally a `local_aws::lambda::LambdaHost`, which calls this itself).
    /// Replaces an earlier route of the same name.
    ///
    /// Fails with [`Error::NoLambdaRouter`] when the emulator is a plain moto server
    /// rather than `shared/local-aws/emulator.py`.
    pub async fn register_lambda_route(&self, function_name: &str, url: &str) -> Result<(), Error> {
        let body = serde_json::json!({ "function_name": function_name, "url": url }).to_string();
        let path = "/_local/lambda/register";
        let (status, text) = admin::request(&self.endpoint, "POST", path, Some(&body)).await?;
        let answer: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        let registered = answer
            .as_ref()
            .and_then(|a| a.get("registered"))
            .and_then(|v| v.as_str());
        match (status, registered) {
            (200..300, Some(name)) if name == function_name => Ok(()),
            (400, _) if answer.is_some() => Err(Error::Admin {
                path: path.to_owned(),
                detail: text.chars().take(200).collect(),
            }),
            _ => Err(self.no_router(status, &text)),
        }
    }

    /// Fault injection: the next `calls` `BatchWriteItem` requests that write to `table` store
    /// only the first half of that table's requests and return the rest as
    /// `UnprocessedItems`, as DynamoDB does under throttling (moto never does by itself).
    pub async fn leave_unprocessed(&self, table: &str, calls: u32) -> Result<(), Error> {
        let body = serde_json::json!({ "table": table, "calls": calls }).to_string();
        let path = "/_local/faults/dynamodb/unprocessed";
        let (status, text) = admin::request(&self.endpoint, "POST", path, Some(&body)).await?;
        if (200..300).contains(&status) && text.contains("\"calls\"") {
            Ok(())
        } else {
            Err(self.no_router(status, &text))
        }
    }

    /// Fault injection: the next `calls` `SendMessageBatch` requests to the queue named
    /// `queue_name` (the last segment of its URL) send only the first half of their entries,
    /// rounded up, and return the others as `Failed` entries, as SQS does when it accepts part
    /// of a batch (moto never does by itself). The failures have code `InternalError`, or
    /// `InvalidParameterValue` with `SenderFault` set when `sender_fault` is true. A request of
    /// a single entry has that entry fail, so 10 entries go 5, 3, 1, 0, 0, … while calls last.
    pub async fn fail_send_batch(&self, queue_name: &str, calls: u32, sender_fault: bool) -> Result<(), Error> {
        let body = serde_json::json!({ "queue": queue_name, "calls": calls, "sender_fault": sender_fault }).to_string();
        let path = "/_local/faults/sqs/send-batch";
        let (status, text) = admin::request(&self.endpoint, "POST", path, Some(&body)).await?;
        if (200..300).contains(&status) && text.contains("\"calls\"") {
            Ok(())
        } else {
            Err(self.no_router(status, &text))
        }
    }

    /// Fault injection: the next `calls` `operation` requests that name `table` (for a
    /// transaction or a batch, among its tables) are applied as usual and their answer is then
    /// lost: an HTTP 500 `InternalServerError` ([`LostAnswer::Error`]) or a connection closed
    /// without an answer ([`LostAnswer::Drop`]). The SDKs' standard retry sends the same
    /// request again, and a conditional write then fails its own condition. `calls` 0 removes
    /// the switch. Count what fired with [`faults_fired`](Self::faults_fired)
    /// ([`Fault::LostAnswer`], by table).
    pub async fn lose_answers(
        &self,
        table: &str,
        operation: WriteOperation,
        calls: u32,
        mode: LostAnswer,
    ) -> Result<(), Error> {
        let body = serde_json::json!({
            "table": table,
            "operation": operation.as_str(),
            "calls": calls,
            "mode": mode.as_str(),
        });
        self.set_fault("/_local/faults/dynamodb/lose-answer", &body).await
    }

    /// Fault injection: requests that name `table` and match `requests` are answered HTTP 400
    /// `ProvisionedThroughputExceededException`, without being applied, while `bound` lasts
    /// (a number of calls, a duration of at most an hour, or both). Replaces an earlier
    /// throttle of the table; [`FaultBound::Calls`]`(0)` removes it. Counted as
    /// [`Fault::Throttle`], by table.
    pub async fn throttle(&self, table: &str, bound: FaultBound, requests: Throttled) -> Result<(), Error> {
        let (calls, seconds) = match bound {
            FaultBound::Calls(n) => (Some(n), None),
            FaultBound::For(d) => (None, Some(d.as_secs_f64())),
            FaultBound::CallsWithin(n, d) => (Some(n), Some(d.as_secs_f64())),
        };
        let (requests, operation) = match &requests {
            Throttled::All => ("all", None),
            Throttled::Reads => ("reads", None),
            Throttled::Writes => ("writes", None),
            Throttled::Operation(op) => ("all", Some(op.as_str())),
        };
        let mut body = serde_json::json!({ "table": table, "requests": requests });
        for (k, v) in [
            ("calls", calls.map(serde_json::Value::from)),
            ("seconds", seconds.map(serde_json::Value::from)),
            ("operation", operation.map(serde_json::Value::from)),
        ] {
            if let Some(v) = v {
                body[k] = v;
            }
        }
        self.set_fault("/_local/faults/dynamodb/throttle", &body).await
    }

    /// Fault injection: the next `calls` `GetObject` requests on `bucket` whose key starts with
    /// `key_prefix` ("" for every key) wait `delay` (at most two minutes) before they are
    /// answered; a delay longer than the caller's timeout makes the read hang for it. Only the
    /// delayed requests wait. Replaces an earlier delay of the bucket; `calls` 0 removes it.
    /// Counted as [`Fault::SlowGet`], by bucket.
    pub async fn delay_get_object(
        &self,
        bucket: &str,
        key_prefix: &str,
        calls: u32,
        delay: Duration,
    ) -> Result<(), Error> {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let body = serde_json::json!({
            "bucket": bucket,
            "prefix": key_prefix,
            "calls": calls,
            "delay_ms": delay_ms,
        });
        self.set_fault("/_local/faults/s3/slow-get", &body).await
    }

    /// Removes every fault switch set on the table, queue or bucket named `resource`, and its
    /// counts. Other resources' switches (other tests') stay.
    pub async fn clear_faults(&self, resource: &str) -> Result<(), Error> {
        let body = serde_json::json!({ "resource": resource });
        self.set_fault("/_local/faults/clear", &body).await
    }

    /// How many calls each fault switch has faulted since the emulator started or its counts
    /// were cleared, by switch and resource: a test asserts that its fault fired.
    pub async fn faults_fired(&self) -> Result<FaultCounts, Error> {
        let (status, text) = admin::request(&self.endpoint, "GET", "/_local/faults", None).await?;
        #[derive(serde::Deserialize)]
        struct Report {
            fired: BTreeMap<String, BTreeMap<String, u64>>,
        }
        match serde_json::from_str::<Report>(&text) {
            Ok(r) if (200..300).contains(&status) => Ok(FaultCounts(r.fired)),
            _ => Err(self.no_router(status, &text)),
        }
    }

    async fn set_fault(&self, path: &str, body: &serde_json::Value) -> Result<(), Error> {
        let (status, text) = admin::request(&self.endpoint, "POST", path, Some(&body.to_string())).await?;
        match status {
            200..300 => Ok(()),
            // The router refused the switch (a plain moto server answers 404 or its own page).
            400 if text.contains("\"error\"") => Err(Error::Admin {
                path: path.to_owned(),
                detail: text.chars().take(200).collect(),
            }),
            _ => Err(self.no_router(status, &text)),
        }
    }

    /// The AWS requests the emulator answered (since it started), by `service:Operation`
    /// (`dynamodb:PutItem`, `s3:PutObject`, `sqs:SendMessageBatch`, `lambda:Invoke`, …), for
    /// resources whose name contains `contains` — a stack's prefix counts one stack's
    /// requests. What AWS would be asked, for cost figures; moto's own internal calls (its
    /// Step Functions engine reading S3) are not requests and are not counted.
    pub async fn request_counts(&self, contains: &str) -> Result<BTreeMap<String, u64>, Error> {
        let path = format!("/_local/requests?contains={}", percent_encode(contains));
        let (status, text) = admin::request(&self.endpoint, "GET", &path, None).await?;
        #[derive(serde::Deserialize)]
        struct Counts {
            requests: BTreeMap<String, u64>,
        }
        match serde_json::from_str::<Counts>(&text) {
            Ok(c) if (200..300).contains(&status) => Ok(c.requests),
            _ => Err(self.no_router(status, &text)),
        }
    }

    /// Remove the route of `function_name` (see [`register_lambda_route`](Self::register_lambda_route)).
    pub async fn unregister_lambda_route(&self, function_name: &str) -> Result<(), Error> {
        let body = serde_json::json!({ "function_name": function_name }).to_string();
        let (status, text) = admin::request(&self.endpoint, "POST", "/_local/lambda/unregister", Some(&body)).await?;
        if (200..300).contains(&status) && text.contains("unregistered") {
            Ok(())
        } else {
            Err(self.no_router(status, &text))
        }
    }

    /// The Lambda routes the emulator knows: function name → handler URL.
    pub async fn lambda_routes(&self) -> Result<BTreeMap<String, String>, Error> {
        let (status, text) = admin::request(&self.endpoint, "GET", "/_local/lambda", None).await?;
        #[derive(serde::Deserialize)]
        struct Routes {
            routes: BTreeMap<String, String>,
        }
        match serde_json::from_str::<Routes>(&text) {
            Ok(r) if (200..300).contains(&status) => Ok(r.routes),
            _ => Err(self.no_router(status, &text)),
        }
    }

    fn no_router(&self, status: u16, text: &str) -> Error {
        Error::NoLambdaRouter {
            endpoint: self.endpoint.clone(),
            detail: format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()),
        }
    }
}

/// A DynamoDB write operation, for [`Emulator::lose_answers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOperation {
    PutItem,
    UpdateItem,
    DeleteItem,
    BatchWriteItem,
    TransactWriteItems,
}

impl WriteOperation {
    /// The operation's name in DynamoDB's API.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOperation::PutItem => "PutItem",
            WriteOperation::UpdateItem => "UpdateItem",
            WriteOperation::DeleteItem => "DeleteItem",
            WriteOperation::BatchWriteItem => "BatchWriteItem",
            WriteOperation::TransactWriteItems => "TransactWriteItems",
        }
    }
}

/// How an applied write's answer is lost ([`Emulator::lose_answers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostAnswer {
    /// HTTP 500 `InternalServerError`, in DynamoDB's JSON.
    Error,
    /// The connection is closed without an answer: the SDK sees an incomplete message, a
    /// transient I/O error.
    Drop,
}

impl LostAnswer {
    fn as_str(self) -> &'static str {
        match self {
            LostAnswer::Error => "error",
            LostAnswer::Drop => "drop",
        }
    }
}

/// How long a fault lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultBound {
    /// The next n matching calls (0 removes the switch).
    Calls(u32),
    /// Every matching call for this long (at most an hour).
    For(Duration),
    /// The next n matching calls, within this long.
    CallsWithin(u32, Duration),
}

/// Which requests of a table are throttled ([`Emulator::throttle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Throttled {
    /// Reads and writes.
    All,
    /// GetItem, BatchGetItem, Query, Scan, TransactGetItems.
    Reads,
    /// PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems.
    Writes,
    /// One operation, by its name in DynamoDB's API (`"Query"`, `"UpdateItem"`, …).
    Operation(String),
}

/// A fault switch of the emulator, as [`FaultCounts`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// [`Emulator::leave_unprocessed`], by table.
    Unprocessed,
    /// [`Emulator::fail_send_batch`], by queue name.
    SendBatch,
    /// [`Emulator::lose_answers`], by table.
    LostAnswer,
    /// [`Emulator::throttle`], by table.
    Throttle,
    /// [`Emulator::delay_get_object`], by bucket.
    SlowGet,
}

impl Fault {
    /// The switch's name in the emulator's report (`GET /_local/faults`).
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Unprocessed => "dynamodb/unprocessed",
            Fault::SendBatch => "sqs/send-batch",
            Fault::LostAnswer => "dynamodb/lose-answer",
            Fault::Throttle => "dynamodb/throttle",
            Fault::SlowGet => "s3/slow-get",
        }
    }
}

/// How many calls each fault switch faulted ([`Emulator::faults_fired`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts(BTreeMap<String, BTreeMap<String, u64>>);

impl FaultCounts {
    /// Calls faulted by `fault` on the resource named exactly `resource`.
    pub fn fired(&self, fault: Fault, resource: &str) -> u64 {
        self.0
            .get(fault.as_str())
            .and_then(|by_resource| by_resource.get(resource))
            .copied()
            .unwrap_or(0)
    }

    /// Every count: switch name → resource → calls.
    pub fn all(&self) -> &BTreeMap<String, BTreeMap<String, u64>> {
        &self.0
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An `SdkConfig` for any endpoint, with dummy static credentials and region [`REGION`].
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "local"))
        .load()
        .await
}

async fn start_once(python: &Path, script: &Path) -> Result<Emulator, Error> {
    let port = free_port().map_err(Error::Spawn)?;
    let log = std::env::temp_dir().join(format!("local-aws-moto-{}-{port}.log", std::process::id()));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(WRAPPER)
        .arg(python)
        .arg(script)
        .arg(port.to_string())
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(Error::Spawn)?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| Error::Spawn(std::io::Error::other("no stdin pipe")))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    tracing::debug!(%endpoint, log = %log.display(), "starting the emulator");

    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(Error::Exited {
                tail: log_tail(&log),
                log,
            });
        }
        // moto answers the config GET with 201; the router is in front of it.
        let answer = admin::request(&endpoint, "GET", "/moto-api/config", None).await;
        if matches!(answer, Ok((status, _)) if (200..300).contains(&status)) {
            tracing::info!(%endpoint, elapsed_ms = started.elapsed().as_millis() as u64, "emulator ready");
            return Ok(Emulator {
                endpoint,
                server: Some(Server {
                    _child: child,
                    _stdin: stdin,
                }),
            });
        }
        if started.elapsed() > READY_TIMEOUT {
            // Dropping the pipe stops the server.
            drop(stdin);
            return Err(Error::NotReady {
                url: endpoint,
                waited_secs: READY_TIMEOUT.as_secs(),
                log,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn log_tail(log: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}
