//! The emulator's fast paths (`shared/local-aws/speed.py`, `emulator.py`) answer DynamoDB and
//! SQS requests with moto's own bytes: `tests/same_answers.py` sends the same requests to moto's
//! server application and to the emulator's, each in a process of its own, and compares every
//! answer's status, headers and body.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};

#[test]
fn fast_paths_answer_as_moto_does() -> Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let python = root.join(".venv/bin/python");
    ensure!(python.exists(), "{} is missing: run scripts/setup.sh", python.display());
    let out = Command::new(&python)
        .arg(manifest.join("tests/same_answers.py"))
        .output()
        .context("running tests/same_answers.py")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "the answers differ:\n{stdout}\n{stderr}");
    ensure!(stdout.contains("answers the same"), "unexpected report: {stdout}");
    Ok(())
}
