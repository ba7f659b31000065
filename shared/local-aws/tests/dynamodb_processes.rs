//! DynamoDB in processes of its own (`emulator.py --dynamodb-process`, `processes.py`), the
//! mode of the large month: `tests/dynamodb_processes.py` starts the emulator that way and checks
//! through boto3 and the router's API that the processes answer as one emulator (routing by
//! table, ListTables, transactions, fault switches, request and capacity counts, resets) and end
//! with it.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};

#[test]
fn dynamodb_processes_answer_as_one_emulator() -> Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = manifest.join("../../.venv/bin/python");
    ensure!(python.exists(), "{} is missing: run scripts/setup.sh", python.display());
    let out = Command::new(&python)
        .arg(manifest.join("tests/dynamodb_processes.py"))
        .output()
        .context("running tests/dynamodb_processes.py")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "the check failed:\n{stdout}\n{stderr}");
    ensure!(stdout.contains("dynamodb processes: ok"), "unexpected report: {stdout}");
    Ok(())
}
