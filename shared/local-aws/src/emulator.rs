//! Finding or starting the AWS emulator (moto server behind the Lambda router of
//! `shared/local-aws/emulator.py`) and building an `SdkConfig` for it. What the router
//! adds to moto is in [`faults`] (the fault switches and their counts) and [`router`] (the
//! Lambda routes and the request counts).

mod capacity;
mod faults;
mod router;

pub use capacity::{Capacity, IndexCapacity, TableCapacity, Units};
pub use faults::{Fault, FaultBound, FaultCounts, LostAnswer, Throttled, WriteOperation};

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

    /// The error for an answer the emulator's router would not give: the endpoint is
    /// something else, most likely a plain moto server.
    fn no_router(&self, status: u16, text: &str) -> Error {
        Error::NoLambdaRouter {
            endpoint: self.endpoint.clone(),
            detail: format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()),
        }
    }
}

/// An `SdkConfig` for any endpoint, with dummy static credentials and region [`REGION`].
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(adapters::https_client())
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
