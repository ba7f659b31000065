//! The functions as users run them without Docker: a `cargo lambda watch`
//! server as a child process and `cargo lambda invoke` calls against it.
//!
//! What `cargo lambda` does, which these helpers rely on:
//!
//! * `watch` starts a function with `cargo run --bin <name>` on its first
//!   invocation; later ones reuse the running instance. On a cold build
//!   cache that compiles the function, which took longer than a test may
//!   wait, so `scripts/test.sh` builds every function first, in the
//!   configuration `cargo run --bin` uses (same profile, features and
//!   `CARGO_TARGET_DIR`), and the first invoke only starts it. A first invoke
//!   that finds cargo compiling (`Compiling …` in the `watch` output) fails
//!   at once, saying so, instead of timing out minutes later.
//! * The function process inherits the environment of `watch` (plus the
//!   `--env-var`/`--env-file` ones); that is how it gets its tables, bucket
//!   and `AWS_ENDPOINT_URL`.
//! * An invoke request has no time limit of its own: a function that fails
//!   to start is restarted by `watch` again and again while the invoke
//!   waits. Every call here is therefore bounded by a timeout.
//! * A function error makes `invoke` exit with 1, print nothing on stdout
//!   and describe the error on stderr. With `NO_GRAPHICS` set (as here) the
//!   description is one unwrapped message line and the error type:
//!   `Error: <message>` … `diagnostic code: <errorType>`. Without it, the
//!   type comes first (`Error: <errorType>`) and the message is wrapped to
//!   80 columns.
//! * The deadline `watch` hands the function is `600000` ms after the epoch
//!   (1970, whatever `--timeout` says), so `Context::deadline()` has always
//!   passed: `settle-shard` writes one chunk (250 bills) per invoke before
//!   it answers `ShardIncomplete`. Keep shards driven this way at most 250
//!   bills, or invoke again until done.
//! * When nothing listens, `invoke` fails with "error sending request to
//!   the runtime emulator"; that (and only that) is retried.
//!
//! [`Watch`] runs in its own process group, stopped as a whole when it is
//! dropped (also while a failing test unwinds), and on Linux it is also sent
//! SIGTERM if the test process is killed outright. `watch` starts each
//! function instance in a process group of its own and stops them on
//! SIGTERM; an instance whose `watch` was killed outright exits by itself
//! once the runtime API is gone. So nothing outlives the test.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;

/// How long the first invoke of a binary may take: cargo checks that the
/// function is built (and may wait for another cargo's lock), then it starts.
pub const FIRST_INVOKE_LIMIT: Duration = Duration::from_secs(300);
/// How often a first invoke looks for cargo compiling in the `watch` output.
const COMPILE_POLL: Duration = Duration::from_millis(500);
/// What a first invoke that finds cargo compiling says to do.
pub const BUILD_FIRST: &str = "run scripts/test.sh, which builds the functions first";
/// How long any later invoke may take.
pub const INVOKE_LIMIT: Duration = Duration::from_secs(120);
/// How long `watch` may take to listen.
pub const READY_LIMIT: Duration = Duration::from_secs(60);
/// How long the process group gets to stop after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of the `watch` output quoted in error messages.
const LOG_TAIL_LINES: usize = 80;
const START_ATTEMPTS: usize = 3;
/// What `cargo lambda invoke` prints when it cannot reach `watch`.
const NOT_REACHED: &str = "error sending request to the runtime emulator";

/// The `cargo-lambda` executable: the project venv's, else the one on `PATH`.
pub fn cargo_lambda() -> PathBuf {
    local_aws::project_root()
        .ok()
        .map(|root| root.join(".venv/bin/cargo-lambda"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("cargo-lambda"))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// A `cargo lambda watch -A 127.0.0.1 -P <port>` server, run from the
/// project root. Dropping it stops its whole process group.
pub struct Watch {
    child: Mutex<Child>,
    port: u16,
    root: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    _logs: tempfile::TempDir,
    /// Binaries that have answered once (compiled and running).
    answered: Mutex<HashSet<String>>,
}

impl Watch {
    /// Starts `watch` with `env` added to this process's environment (which
    /// passes on `PATH`, `CARGO_TARGET_DIR` and the toolchain) and waits until
    /// it listens. Code changes made while it runs are not reloaded
    /// (`--ignore-changes`), so a test runs the code it started with.
    pub fn start(env: &BTreeMap<String, String>) -> anyhow::Result<Watch> {
        let root = local_aws::project_root()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let logs = tempfile::tempdir()?;
            let port = free_port()?;
            let stdout = logs.path().join("watch.out");
            let stderr = logs.path().join("watch.err");
            let mut command = Command::new(cargo_lambda());
            command
                .args(["lambda", "watch", "--ignore-changes", "-A", "127.0.0.1", "-P"])
                .arg(port.to_string())
                .current_dir(&root)
                .envs(env)
                .env("NO_COLOR", "1")
                .env("CARGO_TERM_COLOR", "never")
                .stdin(Stdio::null())
                .stdout(File::create(&stdout)?)
                .stderr(File::create(&stderr)?)
                .process_group(0);
            stop_with_this_process(&mut command);
            let child = command
                .spawn()
                .with_context(|| format!("cannot run {}: is cargo-lambda installed?", cargo_lambda().display()))?;
            let watch = Watch {
                child: Mutex::new(child),
                port,
                root: root.clone(),
                stdout,
                stderr,
                _logs: logs,
                answered: Mutex::default(),
            };
            // On failure `watch` is dropped here, which stops it.
            match watch.wait_listening() {
                Ok(()) => return Ok(watch),
                // Somebody may have taken the port between probing and binding.
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("cargo lambda watch was not started")))
    }

    fn wait_listening(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_LIMIT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while Instant::now() < deadline {
            if let Some(status) = self.exit_status() {
                bail!(
                    "cargo lambda watch exited ({status}) before listening:\n{}",
                    self.log_tail()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "cargo lambda watch did not listen on {addr} within {READY_LIMIT:?}:\n{}",
            self.log_tail()
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The last lines of what `watch` and the functions printed (stderr,
    /// then stdout).
    pub fn log_tail(&self) -> String {
        let tail = |path: &Path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        };
        format!(
            "--- cargo lambda watch stderr (last {LOG_TAIL_LINES} lines):\n{}\n--- stdout (last {LOG_TAIL_LINES} lines):\n{}",
            tail(&self.stderr),
            tail(&self.stdout)
        )
    }

    /// Where the `watch` output ends now (stderr, stdout).
    fn log_marks(&self) -> (u64, u64) {
        let len = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        (len(&self.stderr), len(&self.stdout))
    }

    /// A line of cargo compiling (`   Compiling <crate> v…`) that `watch`
    /// printed after `marks`.
    fn compiling_since(&self, marks: (u64, u64)) -> Option<String> {
        let since = |path: &Path, from: u64| {
            let mut text = String::new();
            let mut file = File::open(path).ok()?;
            file.seek(SeekFrom::Start(from)).ok()?;
            // Bounded: what one poll interval of output can hold is far less.
            file.take(4 << 20).read_to_string(&mut text).ok()?;
            compiling_line(&text).map(str::to_owned)
        };
        since(&self.stderr, marks.0).or_else(|| since(&self.stdout, marks.1))
    }

    /// `cargo lambda invoke <function> --data-file <data_file> -A 127.0.0.1
    /// -P <port>`, run from the project root (so `data_file` may be
    /// `events/…`). The first invoke of a binary may take
    /// [`FIRST_INVOKE_LIMIT`] (cargo checks the function is built, then it
    /// starts), later ones [`INVOKE_LIMIT`]; until `watch` is reached the
    /// call is retried within that time. A first invoke that finds cargo
    /// compiling the function fails at once (it was not built beforehand:
    /// [`BUILD_FIRST`]). A function error is an `Ok` [`Invocation`] with
    /// [`Invocation::error`] set; no answer in time is an `Err` quoting the
    /// `watch` output.
    pub async fn invoke(&self, function: &str, data_file: &str) -> anyhow::Result<Invocation> {
        let first = !self.lock_answered().contains(function);
        let limit = if first { FIRST_INVOKE_LIMIT } else { INVOKE_LIMIT };
        let started = Instant::now();
        let deadline = started + limit;
        let marks = self.log_marks();
        loop {
            if let Some(status) = self.exit_status() {
                bail!("cargo lambda watch exited ({status}):\n{}", self.log_tail());
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let run = tokio::process::Command::new(cargo_lambda())
                .args([
                    "lambda",
                    "invoke",
                    function,
                    "--data-file",
                    data_file,
                    "-A",
                    "127.0.0.1",
                    "-P",
                ])
                .arg(self.port.to_string())
                .current_dir(&self.root)
                .env("NO_GRAPHICS", "1")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output();
            let run = tokio::time::timeout(remaining, run);
            tokio::pin!(run);
            // Bounded by the timeout of `run`; on a first invoke, polled for cargo compiling.
            let out = loop {
                tokio::select! {
                    out = &mut run => break out,
                    () = tokio::time::sleep(COMPILE_POLL), if first => {
                        if let Some(line) = self.compiling_since(marks) {
                            // `run` is dropped on return, which kills the invoke.
                            bail!(
                                "cargo lambda watch is compiling {function} (`{line}`): it was not built \
                                 before the test, and a build may take longer than the test can wait; \
                                 {BUILD_FIRST} (or, from the project root with the same CARGO_TARGET_DIR, \
                                 cargo build --bin {function})\n{}",
                                self.log_tail()
                            );
                        }
                    }
                }
            };
            let out = match out {
                Ok(out) => out.with_context(|| format!("cannot run {}", cargo_lambda().display()))?,
                Err(_) => bail!(
                    "{function} gave no answer to {data_file} within {limit:?}{}:\n{}",
                    if first { " (its first invoke)" } else { "" },
                    self.log_tail()
                ),
            };
            let invocation = Invocation {
                function: function.to_owned(),
                exit_code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                elapsed: started.elapsed(),
            };
            if !out.status.success() && invocation.stderr.contains(NOT_REACHED) {
                if Instant::now() + Duration::from_secs(1) >= deadline {
                    bail!(
                        "cannot reach cargo lambda watch on port {} within {limit:?}: {}\n{}",
                        self.port,
                        invocation.stderr.trim(),
                        self.log_tail()
                    );
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            self.lock_answered().insert(function.to_owned());
            return Ok(invocation);
        }
    }

    fn lock_answered(&self) -> MutexGuard<'_, HashSet<String>> {
        self.answered.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The exit status of `watch` if it has ended.
    fn exit_status(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        child.try_wait().ok().flatten()
    }
}

/// The first line of `text` in which cargo reports compiling a crate
/// (`   Compiling adapters v0.1.0 (…)`), trimmed.
fn compiling_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| l.starts_with("Compiling "))
}

/// Has `watch` sent SIGTERM when the thread that started it ends, which also
/// covers this process being killed outright (no `Drop` runs then); on
/// SIGTERM `watch` stops its function instances itself.
#[cfg(target_os = "linux")]
fn stop_with_this_process(command: &mut Command) {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the request took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_this_process(_: &mut Command) {}

impl Drop for Watch {
    /// Stops the process group of `watch` (which stops its function
    /// instances): SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL.
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
            return;
        };
        // SAFETY: plain signal sends to the process group created for `watch`
        // (its id is the leader's pid, reserved until the leader is reaped).
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            // SAFETY: signal 0 only checks whether a member of the group is left.
            let group_left = unsafe { libc::kill(-pgid, 0) } == 0;
            let leader_exited = !matches!(child.try_wait(), Ok(None));
            if leader_exited && !group_left {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
    }
}

/// What one `cargo lambda invoke` printed.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub function: String,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Including compilation on a first invoke, and retries.
    pub elapsed: Duration,
}

/// A function error as `cargo lambda invoke` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
}

impl Invocation {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// The function's answer, parsed (an error if the invoke failed).
    pub fn output<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        if !self.succeeded() {
            bail!(
                "{} failed (exit code {:?}): {}",
                self.function,
                self.exit_code,
                self.stderr.trim()
            );
        }
        serde_json::from_str(self.stdout.trim()).with_context(|| {
            format!(
                "{} answered something unexpected: {}",
                self.function,
                self.stdout.trim()
            )
        })
    }

    /// The function error, if the invoke failed with one. Reads the
    /// `NO_GRAPHICS` form (`Error: <message>` … `diagnostic code: <type>`)
    /// and, failing that, the graphical one (`Error: <type>`, then the
    /// wrapped message after `×`/`│`).
    pub fn error(&self) -> Option<FunctionError> {
        if self.succeeded() {
            return None;
        }
        let lines: Vec<&str> = self.stderr.lines().collect();
        let first = lines.iter().position(|l| l.starts_with("Error: "))?;
        let head = lines[first].trim_start_matches("Error: ").trim();
        if let Some(code) = lines[first..]
            .iter()
            .find_map(|l| l.trim().strip_prefix("diagnostic code: "))
        {
            return Some(FunctionError {
                error_type: code.trim().to_owned(),
                error_message: head.to_owned(),
            });
        }
        let message: Vec<&str> = lines[first + 1..]
            .iter()
            .map(|l| l.trim())
            .take_while(|l| !l.starts_with("Was this behavior unexpected?"))
            .filter_map(|l| l.strip_prefix('×').or_else(|| l.strip_prefix('│')))
            .map(str::trim)
            .collect();
        Some(FunctionError {
            error_type: head.to_owned(),
            error_message: message.join(" "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stderr: &str) -> Invocation {
        Invocation {
            function: "f".into(),
            exit_code: Some(1),
            stdout: String::new(),
            stderr: stderr.into(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn finds_cargo_compiling_in_the_watch_output() {
        let fresh = "INFO starting lambda function function=\"settle-begin\"\n    Finished `dev` profile [unoptimized + debuginfo] target(s) in 0.61s\n     Running `/t/debug/settle-begin`\n{\"level\":\"INFO\",\"message\":\"Compiling templates\"}\n";
        assert_eq!(compiling_line(fresh), None);
        let cold = "    Blocking waiting for file lock on build directory\n   Compiling aws-sdk-s3 v1.157.0\n   Compiling adapters v0.1.0 (/w/shared/adapters)\n";
        assert_eq!(compiling_line(cold), Some("Compiling aws-sdk-s3 v1.157.0"));
    }

    #[test]
    fn reads_both_error_forms() {
        let narrated = failed(
            "Error: invalid input: cycle \"2026-13\" is not of the form YYYY-MM\n    Diagnostic severity: error\ndiagnostic code: InvalidInput\nWas this behavior unexpected?\n",
        );
        assert_eq!(
            narrated.error(),
            Some(FunctionError {
                error_type: "InvalidInput".into(),
                error_message: "invalid input: cycle \"2026-13\" is not of the form YYYY-MM".into(),
            })
        );
        let graphical = failed(
            "Error: InvalidInput\n\n  × invalid input: cycle \"2026-13\" is not of the\n  │ form YYYY-MM\n\n  Was this behavior unexpected?\n  Start a thread in …\n",
        );
        assert_eq!(
            graphical.error(),
            Some(FunctionError {
                error_type: "InvalidInput".into(),
                error_message: "invalid input: cycle \"2026-13\" is not of the form YYYY-MM".into(),
            })
        );
        let ok = Invocation {
            exit_code: Some(0),
            stdout: "{\"a\":1}".into(),
            ..failed("")
        };
        assert_eq!(ok.error(), None);
        assert_eq!(ok.output::<serde_json::Value>().unwrap()["a"], 1);
    }
}
