//! `datagen generate` writes a deterministic data set for one cycle (or,
//! with `--drop-zone`, the same population as a deployed stack's drop zone
//! takes it);
//! `datagen check` reads one back the way settlement would and reports every
//! bad record.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use billing::{Catalog, parse_usage, settle};
use clap::{Args, Parser, Subcommand};
use datagen::{
    DropZoneManifest, DropZoneOptions, GenConfig, Generator, Manifest, UsageOrder, bad_lines_for, keyring_from_spec,
    read_customers, write_dataset, write_drop_zone,
};
use domain::{Cycle, QuietWindow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "datagen",
    version,
    about = "Deterministic customers and usage files for one billing cycle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate customers, usage files, the catalog copy and a manifest.
    Generate(GenerateArgs),
    /// Read a data set back (customers, usage, settlement) and report bad records.
    Check(CheckArgs),
}

#[derive(Args)]
struct GenerateArgs {
    /// Number of customers (ids C0000001 …).
    #[arg(long, default_value_t = 2000)]
    customers: u32,
    /// Seed: the output depends only on the seed and the settings below.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Billing cycle, YYYY-MM. All dates are derived from it, never from the clock.
    #[arg(long, default_value = "2026-11")]
    cycle: Cycle,
    /// Customers per shard.
    #[arg(long, default_value_t = 1000)]
    shard_size: u32,
    /// Output directory.
    #[arg(long, default_value = "out/data")]
    out: PathBuf,
    /// Worker threads (the bytes written do not depend on it).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Append this many malformed usage lines, spread over the shards (wrong
    /// column count, negative quantity, unknown product, non-numeric amount in turn).
    #[arg(long, default_value_t = 0)]
    inject_bad: u32,
    /// Order of the lines in a usage file.
    #[arg(long, value_enum, default_value_t = UsageOrder::Shuffled)]
    usage_order: UsageOrder,
    /// Quiet window every customer must leave a slot outside of (HH:MM-HH:MM, Asia/Seoul).
    #[arg(long, default_value = "21:00-08:00")]
    quiet_window: QuietWindow,
    /// Write the files of a deployed stack's drop zone into DIR instead of the
    /// local data set: the catalog, one customers file with the contact data in
    /// clear, the same usage files, and drop-zone.json (the keys to upload to).
    #[arg(long, value_name = "DIR")]
    drop_zone: Option<PathBuf>,
    /// With --drop-zone: mix this share (0-100 %) of bad lines into the
    /// customers file (no slot left by the DND, empty plan, impossible date,
    /// malformed JSON in turn), for customers outside the population.
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0, requires = "drop_zone")]
    bad_lines: f64,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct CheckArgs {
    /// Data set directory (holding manifest.json).
    #[arg(long, default_value = "out/data")]
    dir: PathBuf,
    /// Print at most this many errors.
    #[arg(long, default_value_t = 20)]
    max_errors: usize,
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Generate(a) => generate(a),
        Command::Check(a) => check(a),
    }
}

/// The sealing keyring: `PII_KEYS` if set, else the development key.
fn keyring() -> anyhow::Result<(domain::pii::Keyring, bool)> {
    let spec = std::env::var("PII_KEYS").ok();
    let keys = keyring_from_spec(spec.as_deref()).context("PII_KEYS is set but is not a valid keyring")?;
    Ok((keys, spec.is_none()))
}

fn generate(a: GenerateArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (keys, dev_key) = keyring()?;
    let cfg = GenConfig {
        customers: a.customers,
        seed: a.seed,
        cycle: a.cycle,
        shard_size: a.shard_size,
        inject_bad: a.inject_bad,
        usage_order: a.usage_order,
        quiet_window: a.quiet_window,
    };
    let g = Generator::new(cfg, keys)?;
    let target = if a.quiet || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(u64::from(a.customers)), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} customers ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if let Some(dir) = &a.drop_zone {
        let opts = DropZoneOptions {
            bad_lines: bad_lines_for(a.customers, a.bad_lines)?,
            threads: a.threads,
            ..DropZoneOptions::default()
        };
        let m = write_drop_zone(&g, dir, &opts, &|n| bar.inc(u64::from(n)))
            .with_context(|| format!("writing the drop zone into {}", dir.display()))?;
        bar.finish_and_clear();
        if !a.quiet {
            let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
            println!(
                "datagen {}: drop zone of {} customers ({} billable, {} bad lines) in {} shards of {}, {} usage lines ({} bad) for {}",
                datagen::GENERATOR_VERSION,
                m.customers,
                m.billable_customers,
                m.bad_customer_lines.len(),
                m.shard_count,
                m.shard_size,
                m.usage_lines,
                m.bad_usage_lines,
                m.cycle
            );
            println!(
                "  wrote {} in {} files to {} in {:.2} s; contact data in clear: keep the directory private",
                mb(bytes),
                m.files.len(),
                dir.display(),
                started.elapsed().as_secs_f64()
            );
            println!("  upload in the order of {}'s files", DropZoneManifest::FILE_NAME);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let summary = write_dataset(&g, &a.out, a.threads, &|s| bar.inc(u64::from(s.customers)))
        .with_context(|| format!("generating into {}", a.out.display()))?;
    bar.finish_and_clear();
    if !a.quiet {
        let m = &summary.manifest;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "datagen {}: {} customers ({} billable) in {} shards of {}, {} usage lines ({} bad) for {}",
            datagen::GENERATOR_VERSION,
            m.customers,
            m.billable_customers,
            m.shard_count,
            m.shard_size,
            m.usage_lines,
            m.bad_usage_lines,
            m.cycle
        );
        println!(
            "  wrote {} (customers {}, usage {}) to {} in {:.2} s with {} thread(s), {:.0} customers/s",
            mb(summary.total_bytes()),
            mb(summary.customers_bytes),
            mb(summary.usage_bytes),
            a.out.display(),
            secs,
            a.threads.max(1),
            f64::from(m.customers) / secs.max(1e-9)
        );
        println!(
            "  seed {}, catalog {}, contact data sealed with key {:?}{}",
            m.seed,
            m.catalog_version,
            m.pii_key_id,
            if dev_key {
                " (the development key: PII_KEYS is not set)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (keys, _) = keyring()?;
    let m = Manifest::load(&a.dir)?;
    let catalog_path = a.dir.join(&m.catalog_file);
    let catalog_json = std::fs::read_to_string(&catalog_path)
        .with_context(|| format!("reading the catalog {}", catalog_path.display()))?;
    let catalog = Catalog::from_json(&catalog_json, &m.catalog_file)?;
    let mut errors: Vec<String> = Vec::new();
    let (mut customers, mut bills, mut usage_lines) = (0usize, 0usize, 0u64);
    for shard in &m.shards {
        let (cpath, upath) = m.shard_paths(&a.dir, shard);
        let (list, line_errors) = read_customers(&cpath)?;
        errors.extend(line_errors.iter().map(ToString::to_string));
        for c in &list {
            if let Err(e) = c.validate(m.quiet_window).and_then(|_| c.check_contact(&keys)) {
                errors.push(format!("{}: {e}", shard.customers_file));
            }
        }
        customers += list.len();
        let bytes = std::fs::read(&upath).with_context(|| format!("reading {}", upath.display()))?;
        let parsed = parse_usage(&bytes, &shard.usage_file, &catalog);
        let s = settle(&catalog, m.cycle, &list, parsed, &shard.usage_file);
        usage_lines += u64::from(s.usage_lines);
        bills += s.bills.len();
        errors.extend(s.usage_errors.iter().map(ToString::to_string));
        errors.extend(s.rating_errors.iter().map(ToString::to_string));
    }
    for e in errors.iter().take(a.max_errors) {
        println!("error: {e}");
    }
    if errors.len() > a.max_errors {
        println!("… and {} more", errors.len() - a.max_errors);
    }
    println!(
        "checked {} shards in {:.2} s: {customers} customers, {usage_lines} usage lines, {bills} bills, {} errors",
        m.shards.len(),
        started.elapsed().as_secs_f64(),
        errors.len()
    );
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
