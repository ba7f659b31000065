//! The deployment path rehearsed with the real tools (`scripts/rehearse.sh`), twice, into one
//! emulator of its own: two stacks (stages) of template.yaml side by side, each deployed with
//! the SAM CLI's `sam deploy`, fed a generated population through its drop zone with
//! `billingctl --stack … upload`, settled by an execution the AWS CLI starts with the console's
//! input, and its deliveries dispatched and sent by the deployed functions — the first for the
//! whole of December, the second for its first day. Each reconciles (the script exits non-zero
//! otherwise), and each stack's bills are exactly those of the same population loaded and
//! settled the local way: every shard's bill digest, the bill count and the checksum agree.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use adapters::cycles::CycleStore;
use domain::Cycle;
use integration_tests::{CYCLE, Month, generate};
use local_aws::{Emulator, REGION};

/// The population the script generates by default (and the sample events name): 300
/// customers in shards of 200, seed 7 — as `integration_tests::generate` makes it.
const CUSTOMERS: u32 = 300;
const SHARD_SIZE: u32 = 200;

fn root() -> PathBuf {
    local_aws::project_root().expect("the project root")
}

/// `scripts/rehearse.sh ARGS` against `emulator`; its output is shown when it fails.
fn rehearse(emulator: &Emulator, args: &[&str]) -> String {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg("scripts/rehearse.sh")
        .args(args)
        .current_dir(root())
        .env("AWS_ENDPOINT_URL", emulator.endpoint_url())
        .env("AWS_REGION", REGION)
        .env_remove("AWS_PROFILE")
        .output()
        .expect("bash runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "rehearse.sh {args:?} failed:\n{text}");
    eprintln!("rehearsal: rehearse.sh {args:?} took {:.0?}", started.elapsed());
    text
}

/// A stack output, read with the AWS CLI.
fn output(emulator: &Emulator, stack: &str, key: &str) -> String {
    let out = Command::new(root().join(".venv/bin/aws"))
        .args(["cloudformation", "describe-stacks", "--stack-name", stack, "--query"])
        .arg(format!("Stacks[0].Outputs[?OutputKey=='{key}'].OutputValue"))
        .args(["--output", "text"])
        .env("AWS_ENDPOINT_URL", emulator.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", REGION)
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the AWS CLI runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What must agree between two settlements of one population: the cycle's bill count and
/// checksum, and each shard's bills, count and digest (SHA-256 over its bills in customer
/// order).
#[derive(Debug, PartialEq, Eq)]
struct Settled {
    bills: u64,
    checksum: i64,
    shards: BTreeMap<u32, (u64, i64, String)>,
}

async fn settled(cycles: &CycleStore) -> Settled {
    let cycle: Cycle = CYCLE.parse().unwrap();
    let record = cycles.get(cycle).await.unwrap().expect("the cycle record");
    let shards = cycles
        .shards(cycle)
        .await
        .unwrap()
        .into_iter()
        .map(|(n, s)| (n, (s.bills, s.checksum, s.digest)))
        .collect();
    Settled {
        bills: record.bills,
        checksum: record.checksum,
        shards,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stacks_deployed_fed_and_run_with_the_real_tools_bill_as_the_local_way() {
    let emulator = Emulator::start().await.unwrap();

    // The first stage: built, deployed, fed, settled, and the whole month sent.
    let first = rehearse(&emulator, &["--stack", "billing"]);
    assert!(first.contains("298 bills for 298 billable customers"), "{first}");
    assert!(first.contains("keys accepted more than once: 0"), "{first}");
    // The second stage beside it, from the same build: settled, and the first day sent.
    let second = rehearse(
        &emulator,
        &["--stack", "billing-qa", "--no-build", "--to", "2026-12-01"],
    );
    assert!(second.contains("298 bills for 298 billable customers"), "{second}");

    // The two stacks hold their own resources.
    let tables: Vec<String> = ["billing", "billing-qa"]
        .iter()
        .map(|s| output(&emulator, s, "CyclesTableName"))
        .collect();
    assert_ne!(tables[0], tables[1]);
    for s in ["billing", "billing-qa"] {
        assert!(
            output(&emulator, s, "SettlementStateMachineArn").ends_with(&format!(":{s}-settlement")),
            "{s}'s state machine carries its name"
        );
    }
    let config = emulator.sdk_config().await;
    let ddb = adapters::dynamodb_client(&config);
    let rehearsed: Vec<Settled> = {
        let mut v = Vec::new();
        for t in &tables {
            v.push(settled(&CycleStore::new(ddb.clone(), t)).await);
        }
        v
    };

    // The same population loaded and settled the local way, in the suite's shared emulator.
    let data = generate(CUSTOMERS, SHARD_SIZE).unwrap();
    let month = Month::new("rehearsal-local").await.unwrap();
    let load = month.load(&data).await.unwrap();
    assert!(load.rejected.is_empty(), "{:?}", load.rejected);
    month.settle("settle-2026-11").await.unwrap();
    let local = settled(&month.cycles).await;
    assert_eq!(local.bills, 298, "{local:?}");
    assert_eq!(local.shards.len(), 2, "{local:?}");

    for (stack, r) in ["billing", "billing-qa"].iter().zip(&rehearsed) {
        assert_eq!(
            r, &local,
            "{stack}: the bills settled through the drop zone vs the local way"
        );
    }
}
