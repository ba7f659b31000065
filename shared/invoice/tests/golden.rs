//! Golden files: the v1 email HTML, subject and text message of every
//! built-in sample, compared byte for byte with `tests/golden/`.
//!
//! After an intended template change, regenerate them and review the diff:
//! `UPDATE_GOLDEN=1 cargo test -p invoice --test golden`.

use std::path::PathBuf;

use invoice::{Templates, samples};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check(file: &str, actual: &str, update: bool, failures: &mut Vec<String>) {
    let path = golden_dir().join(file);
    if update {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => {
            let line = expected
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
            failures.push(format!(
                "{file} differs from the rendered output from line {}",
                line + 1
            ));
        }
        Err(e) => failures.push(format!("{file}: {e}")),
    }
}

#[test]
fn v1_matches_the_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let templates = Templates::embedded().unwrap();
    let v1 = templates.version("v1").unwrap();
    let mut failures = Vec::new();
    let all = samples::all().unwrap();
    assert_eq!(all.len(), 5);
    for s in &all {
        let r = v1.render_bill(&s.bill, &s.name, &s.phone).unwrap();
        check(&format!("{}.html", s.key), &r.html, update, &mut failures);
        check(&format!("{}.subject.txt", s.key), &r.subject, update, &mut failures);
        check(&format!("{}.sms.txt", s.key), &r.sms, update, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "golden files differ (if the change is intended, run with UPDATE_GOLDEN=1 and review the diff):\n{}",
        failures.join("\n")
    );
}
