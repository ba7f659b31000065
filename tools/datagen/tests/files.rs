mod common;

use std::process::Command;

use billing::usage::UsageErrorKind;
use billing::{Catalog, parse_usage, settle};
use common::{config, nov, tree, write};
use datagen::{GenConfig, Manifest, read_customers};
use domain::pii::Keyring;

fn catalog_of(dir: &std::path::Path, m: &Manifest) -> Catalog {
    let json = std::fs::read_to_string(dir.join(&m.catalog_file)).unwrap();
    Catalog::from_json(&json, &m.catalog_file).unwrap()
}

#[test]
fn the_written_set_parses_and_settles_with_no_errors() {
    let dir = tempfile::tempdir().unwrap();
    let summary = write(config(3_000, 1_000), dir.path(), 2);
    let m = Manifest::load(dir.path()).unwrap();
    assert_eq!(m, summary.manifest);
    assert_eq!(m.catalog_file, "catalog/2026-v1.json");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(&m.catalog_file)).unwrap(),
        billing::catalog::DEFAULT_CATALOG_JSON,
        "the catalog is a verbatim copy"
    );
    let catalog = catalog_of(dir.path(), &m);
    assert_eq!(catalog.digest(), m.catalog_digest);
    assert_eq!((m.shard_count, m.shards.len(), m.customers, m.seed), (3, 3, 3_000, 42));
    assert_eq!(m.quiet_window.to_string(), "21:00-08:00");
    assert_eq!(m.generator_version, datagen::GENERATOR_VERSION);
    let (mut bills, mut lines, mut billable) = (0, 0u64, 0);
    for s in &m.shards {
        let (cpath, upath) = m.shard_paths(dir.path(), s);
        let (customers, errors) = read_customers(&cpath).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(customers.len() as u32, s.customers);
        assert!(customers.iter().all(|c| c.shard == s.shard));
        let first = format!("C{:07}", s.shard * 1_000 + 1);
        assert_eq!(customers[0].customer_id.as_str(), first);
        let bytes = std::fs::read(&upath).unwrap();
        let parsed = parse_usage(&bytes, &s.usage_file, &catalog);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors.first());
        assert_eq!(parsed.records.len() as u32, s.usage_lines);
        let settled = settle(&catalog, m.cycle, &customers, parsed, &s.usage_file);
        assert_eq!(settled.error_count(), 0);
        assert_eq!(settled.bills.len() as u32, s.billable_customers);
        assert_eq!(settled.bills.len() as u32 + settled.not_billable, s.customers);
        bills += settled.bills.len() as u32;
        billable += s.billable_customers;
        lines += u64::from(s.usage_lines);
    }
    assert_eq!(
        (bills, billable, lines),
        (m.billable_customers, m.billable_customers, m.usage_lines)
    );
    assert!(m.usage_lines > 13_000 && m.usage_lines < 17_000, "{}", m.usage_lines);
}

#[test]
fn injected_bad_lines_give_exactly_k_named_errors_spread_over_shards() {
    let dir = tempfile::tempdir().unwrap();
    let k = 11;
    let cfg = GenConfig {
        inject_bad: k,
        ..config(2_500, 500)
    };
    let m = write(cfg, dir.path(), 2).manifest;
    assert_eq!(m.bad_usage_lines, u64::from(k));
    let catalog = catalog_of(dir.path(), &m);
    let mut kinds = Vec::new();
    let mut good = 0;
    for s in &m.shards {
        assert!((2..=3).contains(&s.bad_usage_lines), "spread evenly: {s:?}");
        let (customers, _) = read_customers(dir.path().join(&s.customers_file)).unwrap();
        let bytes = std::fs::read(dir.path().join(&s.usage_file)).unwrap();
        let parsed = parse_usage(&bytes, &s.usage_file, &catalog);
        assert_eq!(parsed.errors.len() as u32, s.bad_usage_lines);
        assert_eq!(parsed.records.len() as u32, s.usage_lines);
        for e in &parsed.errors {
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("{} line ", s.usage_file)), "{msg}");
            let id = e.customer_id.as_deref().unwrap();
            assert!(
                customers.iter().any(|c| c.customer_id.as_str() == id),
                "{id} is a customer of the shard"
            );
            kinds.push(e.kind.clone());
        }
        good += parsed.records.len();
        // Bad lines are rejected by the parser and never reach rating.
        let settled = settle(&catalog, m.cycle, &customers, parsed, &s.usage_file);
        assert_eq!(settled.usage_errors.len() as u32, s.bad_usage_lines);
        assert!(settled.rating_errors.is_empty());
    }
    assert_eq!(kinds.len(), k as usize);
    assert_eq!(good as u64, m.usage_lines);
    assert!(kinds.contains(&UsageErrorKind::ColumnCount(3)));
    assert!(kinds.contains(&UsageErrorKind::Negative { column: "quantity" }));
    assert!(kinds.contains(&UsageErrorKind::UnknownProduct("DATA_6G".into())));
    assert!(kinds.contains(&UsageErrorKind::NotANumber { column: "amount" }));
}

#[test]
fn read_customers_keeps_good_lines_and_names_bad_ones() {
    let g = common::generator(config(10, 10));
    let good: Vec<serde_json::Value> = (0..5)
        .map(|i| serde_json::to_value(g.customer(i).unwrap()).unwrap())
        .collect();
    let with = |i: usize, key: &str, v: serde_json::Value| {
        let mut x = good[i].clone();
        x[key] = v;
        x.to_string()
    };
    let mut missing_plan = good[4].clone();
    missing_plan.as_object_mut().unwrap().remove("plan");
    let lines: Vec<Vec<u8>> = vec![
        good[0].to_string().into_bytes(),                                    // 1 ok
        b"{not json".to_vec(),                                               // 2
        with(1, "send_day", 0.into()).into_bytes(),                          // 3
        with(2, "send_day", 32.into()).into_bytes(),                         // 4
        Vec::new(),                                                          // 5 blank
        with(3, "preferred_channel", "kim@example.com".into()).into_bytes(), // 6
        missing_plan.to_string().into_bytes(),                               // 7
        good[0].to_string().into_bytes(),                                    // 8 duplicate
        b"{\"customer_id\":\"C\xff\xfe\"}".to_vec(),                         // 9 not UTF-8
        with(1, "dnd", serde_json::json!([3, 12])).into_bytes(),             // 10
        with(2, "customer_id", "not an id!".into()).into_bytes(),            // 11
        good[1].to_string().into_bytes(),                                    // 12 ok
        b"  \r".to_vec(),                                                    // 13 blank
        good[2].to_string().into_bytes(),                                    // 14 ok (no newline)
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard-00000.jsonl");
    std::fs::write(&path, lines.join(&b"\n"[..])).unwrap();
    let (customers, errors) = read_customers(&path).unwrap();
    let ids: Vec<&str> = customers.iter().map(|c| c.customer_id.as_str()).collect();
    assert_eq!(ids, ["C0000001", "C0000002", "C0000003"]);
    let got: Vec<(u32, Option<&str>)> = errors.iter().map(|e| (e.line, e.customer_id.as_deref())).collect();
    assert_eq!(
        got,
        [
            (2, None),
            (3, Some("C0000002")),
            (4, Some("C0000003")),
            (6, Some("C0000004")),
            (7, Some("C0000005")),
            (8, Some("C0000001")),
            (9, None),
            (10, Some("C0000002")),
            (11, None),
        ]
    );
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let file = path.display().to_string();
    assert!(
        text.iter().all(|t| t.starts_with(&format!("{file} line "))),
        "{text:#?}"
    );
    assert!(text[1].contains("expected a send day of 1-31"), "{}", text[1]);
    assert!(text[2].contains("expected a send day of 1-31"), "{}", text[2]);
    assert!(text[3].contains("unknown variant"), "{}", text[3]);
    assert!(text[4].contains("missing field `plan`"), "{}", text[4]);
    assert!(text[5].contains("appears again (first on line 1)"), "{}", text[5]);
    assert!(text[7].contains("expected slot numbers 0-11"), "{}", text[7]);
    assert!(
        text.iter().all(|t| !t.contains("kim@") && !t.contains("not an id")),
        "no values quoted: {text:#?}"
    );

    let missing = read_customers(dir.path().join("nope.jsonl")).unwrap_err().to_string();
    assert!(
        missing.contains("nope.jsonl") && missing.contains("cannot open"),
        "{missing}"
    );
}

#[test]
fn manifest_round_trips_and_names_its_file_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(config(50, 20), dir.path(), 1).manifest;
    let copy = dir.path().join("copy.json");
    m.save(&copy).unwrap();
    assert_eq!(Manifest::load(&copy).unwrap(), m);
    std::fs::write(&copy, "{\"seed\": 1}").unwrap();
    let e = Manifest::load(&copy).unwrap_err().to_string();
    assert!(e.contains("copy.json") && e.contains("not a valid manifest"), "{e}");
}

#[test]
fn another_keyring_seals_the_contacts() {
    use base64::Engine;
    let spec = format!("k2:{}", base64::engine::general_purpose::STANDARD.encode([9u8; 32]));
    let keys = datagen::keyring_from_spec(Some(&spec)).unwrap();
    let g = datagen::Generator::new(config(20, 20), keys).unwrap();
    let c = g.customer(3).unwrap();
    c.check_contact(&Keyring::parse(&spec).unwrap()).unwrap();
    assert!(c.check_contact(&Keyring::dev()).is_err());
    assert!(datagen::keyring_from_spec(Some("garbage")).is_err());
}

#[test]
fn settings_out_of_range_are_rejected() {
    for cfg in [
        config(10, 0),
        config(10_000_000, 1_000),
        config(200_000, 1),
        GenConfig {
            inject_bad: 1,
            ..config(0, 10)
        },
    ] {
        let e = datagen::Generator::new(cfg, Keyring::dev()).unwrap_err().to_string();
        assert!(e.starts_with("invalid generator settings"), "{e}");
    }
    // A quiet window covering the day leaves no slot for anyone.
    let cfg = GenConfig {
        quiet_window: "00:00-23:59".parse().unwrap(),
        ..config(10, 10)
    };
    let e = common::generator(cfg).shard(0).unwrap_err().to_string();
    assert!(e.contains("no slot outside the quiet window"), "{e}");
}

#[test]
fn the_command_line_generates_and_checks_a_set() {
    let exe = env!("CARGO_BIN_EXE_datagen");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    let run = |args: &[&str]| Command::new(exe).args(args).env_remove("PII_KEYS").output().unwrap();
    let o = run(&[
        "generate",
        "--customers",
        "120",
        "--shard-size",
        "50",
        "--out",
        out.to_str().unwrap(),
        "--inject-bad",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("120 customers") && stdout.contains("3 shards"),
        "{stdout}"
    );
    assert!(stdout.contains("development key"), "{stdout}");
    let files = tree(&out);
    assert!(files.contains_key("usage/2026-11/shard-00002.csv") && files.contains_key("manifest.json"));
    assert_eq!(Manifest::load(&out).unwrap().cycle, nov());

    let o = run(&["check", "--dir", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "bad lines make check fail");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("2 errors") && stdout.contains("line "), "{stdout}");

    let o = Command::new(exe)
        .args([
            "generate",
            "--customers",
            "5",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .env("PII_KEYS", "k1:c2VjcmV0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("PII_KEYS") && !stderr.contains("c2VjcmV0"), "{stderr}");
}
