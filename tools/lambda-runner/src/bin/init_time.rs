//! `init-time`: the cold-start init time of each function's bootstrap, as Lambda reports it in
//! `INIT_REPORT Init Duration`: from the start of the process until its runtime asks the
//! Lambda Runtime API for its first event (`GET /2018-06-01/runtime/invocation/next`).
//!
//! ```text
//! init-time [--runs 7] [--env KEY=VALUE ...] DIR/FUNCTION/bootstrap ...
//! ```
//!
//! Each bootstrap is started `--runs` times, one at a time, with a clean environment: the
//! variables Lambda sets (`AWS_LAMBDA_RUNTIME_API` pointing at a stub of the Runtime API on a
//! loopback port of this process, the function's name, region, credentials, `TZ`), then each
//! `--env` pair (the function's own configuration; `AWS_ENDPOINT_URL` to reach an emulator).
//! The stub answers nothing: it notes when the first `invocation/next` arrives, then the
//! process is killed. A bootstrap that posts `init/error`, exits, or takes longer than
//! `--limit-ms` fails the measurement, with the error type it posted (never its message, which
//! may quote the configuration).
//!
//! Prints one line per function (median, minimum and maximum in milliseconds, and the runs),
//! and with `--json` the same as one JSON object per line.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "init-time",
    version,
    about = "Cold-start init time of Lambda bootstraps, measured locally"
)]
struct Cli {
    /// Starts of each bootstrap; the median of them is reported.
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// A variable of the functions' environment (repeatable): KEY=VALUE.
    #[arg(long = "env", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// How long one init may take before it counts as failed (Lambda's limit is 10 s).
    #[arg(long, default_value_t = 10_000)]
    limit_ms: u64,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Append each function's output to DIR/FUNCTION.log (by default it is discarded).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// The bootstraps: DIR/FUNCTION/bootstrap (the function's name is the directory's).
    #[arg(required = true)]
    bootstraps: Vec<PathBuf>,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err("an --env value is KEY=VALUE".to_owned()),
    }
}

/// What the stub of the Runtime API saw first.
enum Seen {
    /// `GET .../invocation/next`: the init is over.
    Next(Instant),
    /// `POST .../init/error`, with the `Lambda-Runtime-Function-Error-Type` it gave.
    InitError(String),
}

/// Reads one HTTP request's head from `stream`, reports it, and keeps the connection open
/// (the runtime waits on its long poll until the process is killed).
fn serve(stream: TcpStream, seen: mpsc::Sender<Seen>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let request = line.trim_end().to_owned();
        let arrived = Instant::now();
        let mut error_type = String::from("unnamed");
        let mut length = 0usize;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("lambda-runtime-function-error-type") {
                    error_type = value.trim().to_owned();
                } else if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if request.starts_with("GET /2018-06-01/runtime/invocation/next") {
            let _ = seen.send(Seen::Next(arrived));
        } else if request.starts_with("POST /2018-06-01/runtime/init/error") {
            let _ = seen.send(Seen::InitError(error_type));
        }
    }
}

/// One cold start of `bootstrap`: the time from spawning it to its first `invocation/next`.
fn once(name: &str, bootstrap: &Path, cli: &Cli) -> Result<Duration> {
    let limit = Duration::from_millis(cli.limit_ms);
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("the Runtime API stub cannot listen")?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            thread::spawn(move || serve(stream, tx));
        }
    });
    let dir = bootstrap.parent().unwrap_or(Path::new("."));
    let mut cmd = Command::new(bootstrap);
    cmd.current_dir(dir)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "init-time")
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("_HANDLER", "bootstrap")
        .env("LAMBDA_TASK_ROOT", dir)
        .env("AWS_REGION", "ap-northeast-2")
        .env("AWS_DEFAULT_REGION", "ap-northeast-2")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_SESSION_TOKEN", "test")
        .env("TZ", ":UTC")
        .env("LANG", "en_US.UTF-8")
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(cli.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    if let Some(logs) = &cli.log_dir {
        std::fs::create_dir_all(logs).with_context(|| format!("cannot create {}", logs.display()))?;
        let path = logs.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        cmd.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("{} does not start", bootstrap.display()))?;
    let outcome = loop {
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(Seen::Next(at)) => break Ok(at.duration_since(started)),
            Ok(Seen::InitError(error_type)) => break Err(anyhow::anyhow!("{name}: init failed ({error_type})")),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    break Err(anyhow::anyhow!("{name}: the bootstrap exited during init ({status})"));
                }
                if started.elapsed() > limit {
                    break Err(anyhow::anyhow!(
                        "{name}: init took longer than {} ms",
                        limit.as_millis()
                    ));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err(anyhow::anyhow!("{name}: the Runtime API stub stopped"));
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run(cli: &Cli) -> Result<()> {
    if cli.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !cli.json {
        println!(
            "{:<16} {:>10} {:>10} {:>10}  runs (ms)",
            "function", "median ms", "min ms", "max ms"
        );
    }
    for bootstrap in &cli.bootstraps {
        let name = bootstrap
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .unwrap_or("bootstrap")
            .to_owned();
        let mut runs = Vec::with_capacity(cli.runs);
        for _ in 0..cli.runs {
            runs.push(once(&name, bootstrap, cli)?);
        }
        let mut sorted = runs.clone();
        sorted.sort();
        let median = if sorted.len() % 2 == 1 {
            millis(sorted[sorted.len() / 2])
        } else {
            (millis(sorted[sorted.len() / 2 - 1]) + millis(sorted[sorted.len() / 2])) / 2.0
        };
        let min = millis(sorted[0]);
        let max = millis(sorted[sorted.len() - 1]);
        let each: Vec<String> = runs.iter().map(|d| format!("{:.1}", millis(*d))).collect();
        if cli.json {
            let line = serde_json::json!({
                "function": name,
                "median_ms": (median * 10.0).round() / 10.0,
                "min_ms": (min * 10.0).round() / 10.0,
                "max_ms": (max * 10.0).round() / 10.0,
                "runs_ms": runs.iter().map(|d| (millis(*d) * 10.0).round() / 10.0).collect::<Vec<_>>(),
            });
            println!("{line}");
        } else {
            println!("{name:<16} {median:>10.1} {min:>10.1} {max:>10.1}  {}", each.join(" "));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("init-time: {e:#}");
            ExitCode::FAILURE
        }
    }
}
