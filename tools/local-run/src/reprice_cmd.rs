//! `local-run reprice`: a data set's month settled in a fresh stack of the emulator, then
//! re-priced with a catalog version on the reprice state machine, the summary printed and
//! the run's files copied to `--out`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use datagen::{GenConfig, Generator, keyring_from_spec, write_dataset};
use local_aws::lambda::LambdaHost;
use local_run::reprice::{self, Repriced};
use local_run::settle;

use crate::args::RepriceArgs;
use crate::stack::{bar, load_and_report, provision_stack};

/// The longest the settlement, then the re-pricing, may take.
const LIMIT: Duration = Duration::from_secs(3600);

pub(crate) async fn reprice(a: RepriceArgs) -> anyhow::Result<ExitCode> {
    // The data set: the one given, or a generated one.
    if !a.data.join("manifest.json").is_file() {
        let keys = keyring_from_spec(std::env::var("PII_KEYS").ok().as_deref())?;
        let mut cfg = GenConfig::new(a.customers, a.cycle);
        cfg.seed = a.seed;
        cfg.shard_size = a.shard_size;
        cfg.quiet_window = a.quiet_window;
        let generator = Generator::new(cfg, keys)?;
        let pb = bar(u64::from(generator.shard_count()), "generate");
        let summary = write_dataset(&generator, &a.data, 2, &|_| pb.inc(1))?;
        pb.finish_and_clear();
        println!(
            "generated  {} customers in {} shards → {}",
            summary.manifest.customers,
            summary.manifest.shard_count,
            a.data.display()
        );
    }
    let stack = provision_stack(&a.out, "reprice").await?;
    let report = load_and_report(&a.data, &stack.stores, a.quiet_window).await?;
    if report.cycle != a.cycle.to_string() {
        anyhow::bail!(
            "the data set in {} is for cycle {}, not {} (--cycle)",
            a.data.display(),
            report.cycle,
            a.cycle
        );
    }
    let host = LambdaHost::start().await?;
    settle::host_settlement(&host, stack.emulator, &stack.config, &stack.resources).await?;
    reprice::host_reprice(&host, stack.emulator, &stack.config, &stack.resources).await?;
    let sfn = aws_sdk_sfn::Client::new(&stack.config);
    let arn = |id: &str| {
        stack
            .resources
            .arn(id)
            .map(str::to_owned)
            .with_context(|| format!("template.yaml declares no {id}"))
    };

    let t = Instant::now();
    let name = format!("settle-{}", a.cycle);
    let settled = settle::settle_cycle(&sfn, &arn(settle::STATE_MACHINE)?, a.cycle, &name, LIMIT, &|_| {}).await?;
    let Some(f) = settled.finish_output() else {
        println!(
            "settlement {name} ended {:?}: {} {}",
            settled.status,
            settled.error.unwrap_or_default(),
            settled.cause.unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    };
    println!(
        "settled    cycle {}: {:?}, {} bills in {} shards [{:.1?}]",
        f.cycle,
        f.status,
        f.bills,
        f.shards,
        t.elapsed()
    );

    if reprice::publish_if_missing(&stack.config, &stack.resources, &a.catalog).await? {
        println!("published  catalog {} (shipped in catalog/)", a.catalog);
    }
    let t = Instant::now();
    let name = reprice::execution_name(a.cycle, &a.catalog);
    match reprice::run(&sfn, &arn(reprice::STATE_MACHINE)?, a.cycle, &a.catalog, &name, LIMIT).await? {
        Repriced::Done(done) => {
            println!("execution  {name} [{:.1?}]", t.elapsed());
            print!("{}", reprice::render(&done.summary));
            let dir = a.out.join(&name);
            let files = reprice::download(&stack.config, &stack.resources, &done, &dir).await?;
            println!("files      s3://{}/{}/ → {}", done.bucket, done.prefix, dir.display());
            for f in files {
                println!("           {}", f.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Repriced::Failed { status, error, cause } => {
            println!("re-pricing {name} ended {status:?}: {error} {cause}");
            Ok(ExitCode::FAILURE)
        }
    }
}
