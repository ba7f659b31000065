//! The `preview` command renders files and validates versions.

use std::process::Command;

fn preview(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_preview")).args(args).output().unwrap()
}

#[test]
fn renders_every_sample_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("preview");
    let out = preview(&["--version", "v1", "--out", out_dir.to_str().unwrap(), "--sample", "all"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for key in invoice::samples::SAMPLE_KEYS {
        assert!(stdout.contains(key), "{stdout}");
        let html = std::fs::read_to_string(out_dir.join(format!("{key}.html"))).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        let subject = std::fs::read_to_string(out_dir.join(format!("{key}.subject.txt"))).unwrap();
        assert_eq!(subject, "[한빛텔레콤] 2026년 11월 이용요금 청구서");
        let sms = std::fs::read_to_string(out_dir.join(format!("{key}.sms.txt"))).unwrap();
        assert!(sms.contains("https://") && !sms.contains(invoice::LINK_PLACEHOLDER));
        assert!(invoice::euc_kr_len(&sms).unwrap() <= invoice::LMS_MAX_BYTES);
    }
}

#[test]
fn renders_a_customer_json_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = invoice::samples::birthday().unwrap();
    let json = serde_json::json!({ "bill": s.bill, "name": "Jane <Doe>", "phone": "010-9999-0000" });
    let file = dir.path().join("jane.json");
    std::fs::write(&file, json.to_string()).unwrap();
    let out = preview(&[
        "--version",
        "v1",
        "--out",
        dir.path().to_str().unwrap(),
        "--customer-json",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(dir.path().join("jane.html")).unwrap();
    assert!(html.contains("J********&gt; 고객님") && !html.contains("Jane"));
    assert!(!html.contains("9999"));
}

#[test]
fn validates_and_reports_bad_arguments() {
    let out = preview(&["validate"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("template v1: ok"));
    let out = preview(&["--version", "v0", "--out", "/nonexistent/never"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("known versions: v1"));
    let out = preview(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: preview"));
}
