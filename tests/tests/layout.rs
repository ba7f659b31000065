//! The workspace's arrows point down, and no Lambda links local-only code.
//!
//! - A crate under `functions/` or `shared/` depends (in any way, tests and benchmarks
//!   included) on no crate under `tools/`: tools are built on the product, never the
//!   other way round.
//! - What a function's binary links (its normal and build dependencies, with the
//!   features that building the function alone resolves, as `sam build` and
//!   `scripts/build.sh` build it) holds no local-only code: no crate under `tools/`,
//!   not the emulator launcher `local-aws`, not the invoice benchmark's hand-written
//!   renderer (`invoice`'s feature `floor`), and no HTTP server (`hyper`'s feature
//!   `server`: a function answers the Lambda runtime, it does not listen).
//!
//! Both read cargo's own view (`cargo metadata`, `cargo tree`), offline: no build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
        .to_path_buf()
}

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .arg("--offline")
        .current_dir(root())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo prints UTF-8")
}

/// The workspace's packages by name: the folder (`functions`, `shared`, `tools`, …) each
/// sits in, and the names of the workspace packages it depends on, in any way.
fn members() -> BTreeMap<String, (String, Vec<String>)> {
    let meta: serde_json::Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--no-deps"])).expect("metadata parses");
    let root = root();
    let mut out = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let manifest = Path::new(p["manifest_path"].as_str().expect("manifest_path"));
        let rel = manifest.strip_prefix(&root).expect("a member inside the workspace");
        let folder = rel
            .components()
            .next()
            .expect("a folder")
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        let deps = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["path"].is_string())
            .map(|d| d["name"].as_str().expect("name").to_string())
            .collect();
        out.insert(p["name"].as_str().expect("name").to_string(), (folder, deps));
    }
    out
}

#[test]
fn nothing_in_functions_or_shared_depends_on_a_tool() {
    let members = members();
    let tools: Vec<&String> = members
        .iter()
        .filter(|(_, (f, _))| f == "tools")
        .map(|(n, _)| n)
        .collect();
    assert!(!tools.is_empty(), "the workspace has tools: {members:?}");
    let mut wrong = Vec::new();
    for (name, (folder, deps)) in &members {
        if folder != "functions" && folder != "shared" {
            continue;
        }
        for d in deps {
            if tools.contains(&d) {
                wrong.push(format!("{folder}/{name} → tools/{d}"));
            }
        }
    }
    assert!(wrong.is_empty(), "arrows that point up: {wrong:#?}");
}

#[test]
fn no_function_links_local_only_code() {
    let members = members();
    let functions: Vec<&String> = members
        .iter()
        .filter(|(_, (f, _))| f == "functions")
        .map(|(n, _)| n)
        .collect();
    assert!(functions.len() >= 8, "the functions: {functions:?}");
    let local_only: Vec<&String> = members
        .iter()
        .filter(|(n, (f, _))| f == "tools" || n.as_str() == "local-aws")
        .map(|(n, _)| n)
        .collect();
    let mut wrong = Vec::new();
    for f in &functions {
        let tree = cargo(&[
            "tree",
            "-p",
            f,
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "-f",
            "{p}|{f}",
        ]);
        let mut saw_runtime = false;
        for line in tree.lines() {
            let (package, features) = line.split_once('|').unwrap_or((line, ""));
            let name = package.split(' ').next().unwrap_or_default();
            let features: Vec<&str> = features.trim_end_matches(" (*)").split(',').collect();
            saw_runtime |= name == "lambda_runtime";
            if local_only.iter().any(|l| l.as_str() == name) {
                wrong.push(format!("{f} links {name}"));
            }
            if name == "invoice" && features.contains(&"floor") {
                wrong.push(format!("{f} links invoice with the benchmark's floor renderer"));
            }
            if name == "hyper" && features.contains(&"server") {
                wrong.push(format!("{f} links an HTTP server (hyper/server)"));
            }
        }
        assert!(
            saw_runtime,
            "{f}: cargo tree lists its dependencies (lambda_runtime among them):\n{tree}"
        );
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "local-only code in a Lambda: {wrong:#?}");
}
