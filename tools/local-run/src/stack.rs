//! The steps both commands of the `local-run` binary take: provisioning a stack in the
//! emulator, loading a data set into it, and the progress bars they show.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use datagen::keyring_from_spec;
use domain::QuietWindow;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use local_aws::Emulator;
use local_run::load::{LoadReport, Stores, load_dataset};
use local_run::settle;

/// A provisioned stack in the emulator and the stores the loader writes to.
pub(crate) struct Stack {
    pub(crate) emulator: &'static Emulator,
    pub(crate) config: aws_config::SdkConfig,
    pub(crate) resources: local_aws::Resources,
    pub(crate) stores: Stores,
}

/// Provisions every resource template.yaml declares under a fresh prefix and
/// writes the stack's variables to `out/stack.env` (for `cargo lambda`).
pub(crate) async fn provision_stack(out: &Path, name: &str) -> anyhow::Result<Stack> {
    let t = Instant::now();
    let emulator = Emulator::shared().await?;
    let config = emulator.sdk_config().await;
    let prefix = local_aws::unique_prefix(name);
    let resources = local_aws::provision(&config, &prefix).await?;
    let stores = Stores::of(&config, resources.env())?;
    // The stack's variables and every function's own (as template.yaml gives them).
    let mut env = resources.env().clone();
    for function in [
        settle::BEGIN,
        settle::SHARD,
        settle::RENDER,
        settle::FINISH,
        local_run::dispatch::DISPATCH,
        local_run::send::SEND_EMAIL,
        local_run::send::SEND_SMS,
        "RecordFailureFunction",
        "AdminApiFunction",
    ] {
        // As template.yaml gives them: the keyring is in the stack's own secret, which
        // PII_KEYS_SECRET names (the development keyring unless PII_KEYS is set).
        for (k, v) in settle::local_function_env(&resources, function) {
            env.entry(k).or_insert(v);
        }
    }
    std::fs::create_dir_all(out)?;
    let env_file = out.join("stack.env");
    let mut exports = format!("export AWS_ENDPOINT_URL={}\n", emulator.endpoint_url());
    for (k, v) in env {
        exports.push_str(&format!("export {k}={v}\n"));
    }
    std::fs::write(&env_file, exports).with_context(|| format!("cannot write {}", env_file.display()))?;
    println!(
        "provisioned {} resources from template.yaml as {prefix}-* on {} (variables: {}) [{:.1?}]",
        resources.iter().count(),
        emulator.endpoint_url(),
        env_file.display(),
        t.elapsed()
    );
    Ok(Stack {
        emulator,
        config,
        resources,
        stores,
    })
}

/// Loads a data set and prints what happened, rejected records included.
pub(crate) async fn load_and_report(dir: &Path, stores: &Stores, quiet: QuietWindow) -> anyhow::Result<LoadReport> {
    let manifest = datagen::Manifest::load(dir)?;
    let pb = bar(u64::from(manifest.shard_count), "load");
    let keys = keyring_from_spec(std::env::var("PII_KEYS").ok().as_deref())?;
    let report = load_dataset(dir, stores, &keys, quiet, 4, &|_| pb.inc(1)).await?;
    pb.finish_and_clear();
    println!(
        "loaded     {} customers, {} usage files ({} bytes), catalog {} ({}); {} DynamoDB and {} S3 requests [{:.1?}]",
        report.customers_loaded,
        report.usage_files,
        report.usage_bytes,
        report.catalog_version,
        match report.catalog_outcome {
            Some(adapters::PutOutcome::Created) => "published",
            _ => "already published",
        },
        report.dynamodb_requests,
        report.s3_requests,
        report.elapsed
    );
    if !report.rejected.is_empty() {
        println!("rejected   {} customer records:", report.rejected.len());
        for r in report.rejected.iter().take(10) {
            println!("           {r}");
        }
        if report.rejected.len() > 10 {
            println!("           … and {} more", report.rejected.len() - 10);
        }
    }
    Ok(report)
}

/// A progress bar of `len` steps on standard error, labelled `what`; hidden when standard
/// error is not a terminal.
pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_owned());
    pb
}
