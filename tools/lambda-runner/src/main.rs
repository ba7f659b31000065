//! `lambda-runner`: runs a stack's deployed functions for the local emulator.
//!
//! ```text
//! lambda-runner serve --stack NAME [--instances 4] [--clock-file F | --real-clock]
//! lambda-runner serve --function NAME [--function NAME ...]
//! lambda-runner slots --stack NAME --from 2026-12-01 --to 2026-12-31 [--clock-file F]
//! lambda-runner package BOOTSTRAP OUT.zip
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lambda-runner",
    version,
    about = "Runs the functions of a stack deployed to the local emulator as Lambda would"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the functions: every Invoke of their names reaches their bootstraps, and their SQS
    /// event source mappings are polled. Prints `ready` on stdout once serving; stops on
    /// SIGINT or SIGTERM.
    Serve {
        /// The CloudFormation stack whose AWS::Lambda::Function resources to serve.
        #[arg(long, conflicts_with = "function")]
        stack: Option<String>,
        /// A function to serve by name (repeatable), without a stack.
        #[arg(long = "function", required_unless_present = "stack")]
        function: Vec<String>,
        /// Instances of one function at most (its concurrent invocations).
        #[arg(long, default_value_t = 4)]
        instances: usize,
        /// The virtual clock's timestamp file (created at the real time if missing); the
        /// default is one per stack in the temporary directory, the one `slots` uses.
        #[arg(long, env = "LAMBDA_RUNNER_CLOCK_FILE")]
        clock_file: Option<PathBuf>,
        /// Run the functions on the real clock, without libfaketime.
        #[arg(long, conflicts_with = "clock_file")]
        real_clock: bool,
        /// Where packages are unpacked and each function's output is written (logs/).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Seconds between listings of the event source mappings.
        #[arg(long, default_value_t = 5)]
        refresh_seconds: u64,
    },
    /// Play the dispatch schedule on the virtual clock of a `serve` runner of the same stack.
    Slots {
        #[arg(long)]
        stack: String,
        /// First day (Asia/Seoul), YYYY-MM-DD.
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day (Asia/Seoul), YYYY-MM-DD.
        #[arg(long)]
        to: chrono::NaiveDate,
        #[arg(long, env = "LAMBDA_RUNNER_CLOCK_FILE")]
        clock_file: Option<PathBuf>,
        /// Seconds each slot may take to drain the queues before the next slot starts.
        #[arg(long, default_value_t = 600)]
        drain_limit_seconds: u64,
    },
    /// Write a deployment package (a zip of one executable named bootstrap).
    Package { bootstrap: PathBuf, out: PathBuf },
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            stack,
            function,
            instances,
            clock_file,
            real_clock,
            work_dir,
            refresh_seconds,
        } => {
            let clock_file = match (real_clock, clock_file) {
                (true, _) => None,
                (false, Some(f)) => Some(f),
                (false, None) => Some(lambda_runner::default_clock_file(stack.as_deref())),
            };
            let work_dir = work_dir.unwrap_or_else(|| lambda_runner::default_work_dir(stack.as_deref()));
            lambda_runner::serve(lambda_runner::ServeOptions {
                stack,
                functions: function,
                instances: instances.max(1),
                clock_file,
                work_dir,
                refresh: Duration::from_secs(refresh_seconds.max(1)),
            })
            .await
        }
        Command::Slots {
            stack,
            from,
            to,
            clock_file,
            drain_limit_seconds,
        } => {
            let clock_file = clock_file.unwrap_or_else(|| lambda_runner::default_clock_file(Some(&stack)));
            lambda_runner::slots::run(lambda_runner::slots::SlotsOptions {
                stack,
                from,
                to,
                clock_file,
                drain_limit: Duration::from_secs(drain_limit_seconds),
            })
            .await
        }
        Command::Package { bootstrap, out } => {
            let bytes =
                std::fs::read(&bootstrap).map_err(|e| anyhow::anyhow!("reading {}: {e}", bootstrap.display()))?;
            std::fs::write(&out, lambda_runner::zip::single_file("bootstrap", &bytes))
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lambda-runner: {e:#}");
            ExitCode::FAILURE
        }
    }
}
