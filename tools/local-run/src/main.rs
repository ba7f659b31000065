//! `local-run month`: the README's main job; `local-run load`: a data set into a fresh stack.

mod args;
mod month;
mod reprice_cmd;
mod stack;
mod summary;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::stack::{load_and_report, provision_stack};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // The senders warn about every failed send (1% with the mock, by design); the run
                // reports them as counts instead. RUST_LOG=warn shows them.
                "warn,sender=error".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Month(a) => {
            let out = a.out.clone();
            tokio::select! {
                r = month::month(a) => r,
                _ = tokio::signal::ctrl_c() => {
                    // Dropping the run stops its tasks; what it wrote so far stays in the
                    // emulator under this run's prefix and is not reused.
                    eprintln!(
                        "\ninterrupted: nothing more is sent. A re-run starts fresh: a new stack in the \
                         emulator, the same data set (generation is deterministic); {} is overwritten.",
                        out.display()
                    );
                    Ok(ExitCode::from(130))
                }
            }
        }
        Command::Reprice(a) => reprice_cmd::reprice(a).await,
        Command::Load(a) => {
            let stack = provision_stack(&a.out, "load").await?;
            let report = load_and_report(&a.dir, &stack.stores, a.quiet_window).await?;
            Ok(if report.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}
