//! The command line of the `local-run` binary: its two commands and their options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use domain::{Cycle, QuietWindow};
use local_run::faults::FaultProfile;

#[derive(Parser)]
#[command(
    name = "local-run",
    version,
    about = "Run the billing month locally against the AWS emulator"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Generate a population, provision the stack, load the data and settle the month.
    Month(MonthArgs),
    /// Provision a fresh stack and load a data set written by `datagen generate` into it.
    Load(LoadArgs),
    /// Settle a data set's month in a fresh stack, then re-price it with a catalog version
    /// (shadow re-pricing, docs/reprice.md).
    Reprice(RepriceArgs),
}

#[derive(Args)]
pub(crate) struct RepriceArgs {
    /// Billing cycle to settle and re-price, YYYY-MM.
    #[arg(long, default_value = "2026-11")]
    pub(crate) cycle: Cycle,
    /// Catalog version to re-price with (a shipped one is published if the store lacks it);
    /// the version the month was settled with is an audit.
    #[arg(long)]
    pub(crate) catalog: String,
    /// Data set directory (holding manifest.json); generated there when it has none.
    #[arg(long, default_value = "out/month/data")]
    pub(crate) data: PathBuf,
    /// Where the stack's variables and the run's files (summary, diff, report) are written.
    #[arg(long, default_value = "out/reprice")]
    pub(crate) out: PathBuf,
    /// Customers to generate when the data set is missing.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) customers: u32,
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Customers per shard when generating.
    #[arg(long, default_value_t = 500)]
    pub(crate) shard_size: u32,
    /// System quiet window (Asia/Seoul).
    #[arg(long, default_value = "21:00-08:00")]
    pub(crate) quiet_window: QuietWindow,
}

#[derive(Args)]
pub(crate) struct LoadArgs {
    /// Data set directory (holding manifest.json).
    #[arg(long, default_value = "out/data")]
    pub(crate) dir: PathBuf,
    /// Where the stack's variables are written (stack.env).
    #[arg(long, default_value = "out/load")]
    pub(crate) out: PathBuf,
    /// System quiet window (Asia/Seoul) customers are checked against.
    #[arg(long, default_value = "21:00-08:00")]
    pub(crate) quiet_window: QuietWindow,
}

#[derive(Args)]
pub(crate) struct MonthArgs {
    /// Customers to generate (up to 1,000,000; the emulator, not our code, sets the pace).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) customers: u32,
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Billing cycle to settle, YYYY-MM.
    #[arg(long, default_value = "2026-11")]
    pub(crate) cycle: Cycle,
    /// Customers per shard (one usage file and one Distributed Map item each).
    #[arg(long, default_value_t = 500)]
    pub(crate) shard_size: u32,
    /// Output folder (data set, stack variables and the report).
    #[arg(long, default_value = "out/month")]
    pub(crate) out: PathBuf,
    /// System quiet window (Asia/Seoul).
    #[arg(long, default_value = "21:00-08:00")]
    pub(crate) quiet_window: QuietWindow,
    /// Mock provider latency per send (ms): 1,000 as deployed; less compresses big runs
    /// (the report says so).
    #[arg(long, default_value_t = 1000)]
    pub(crate) provider_latency_ms: u64,
    /// Concurrent invocations of each sender at most while a slot's queues drain (the
    /// deployed event source allows 50: `SenderMaxConcurrency` in template.yaml).
    #[arg(long, default_value_t = local_run::deliver::SENDER_WORKERS, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=1000), usize::from))]
    pub(crate) sender_workers: usize,
    /// Price table for the cost projection (default: infra/prices.json).
    #[arg(long)]
    pub(crate) prices: Option<PathBuf>,
    /// Faults switched on while the invoices go out (dispatch and senders), each bounded:
    /// lost DynamoDB answers, throttling, slow invoice reads, provider hangs (with a provider
    /// that can be asked, or one that cannot), or all of them. The report counts what fired.
    #[arg(long, value_enum, default_value_t = FaultProfile::None)]
    pub(crate) fault_profile: FaultProfile,
    /// Share of accepted emails the mock provider's evidence bounces permanently (the
    /// delivery-events function then sends them by SMS in the customer's next allowed slot).
    #[arg(long, default_value_t = 0.02)]
    pub(crate) bounce_rate: f64,
    /// Share of accepted emails marked as spam afterwards (no SMS; the contact is suppressed).
    #[arg(long, default_value_t = 0.0005)]
    pub(crate) complaint_rate: f64,
    /// Share of accepted SMS the carrier cannot deliver.
    #[arg(long, default_value_t = 0.005)]
    pub(crate) sms_failed_rate: f64,
    /// The email provider's 24-hour quota as dispatch reads it (default: the mock's, unlimited):
    /// below the busiest day's email, dispatch carries the rest to the following slots and the
    /// report shows the plan.
    #[arg(long)]
    pub(crate) email_quota_24h: Option<u64>,
}
