mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{config, generator, tree, write};
use datagen::{
    BadCustomerKind, CrmCustomer, DropZoneManifest, DropZoneOptions, GenConfig, Manifest, bad_lines_for,
    crm_customers_file, read_customers, write_drop_zone,
};
use domain::pii::Keyring;
use domain::{Customer, QuietWindow};

fn drop_zone(cfg: GenConfig, dir: &Path, opts: &DropZoneOptions) -> DropZoneManifest {
    write_drop_zone(&generator(cfg), dir, opts, &|_| {}).unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The local data set's customers, by id.
fn local_customers(dir: &Path, m: &Manifest) -> BTreeMap<String, Customer> {
    let mut out = BTreeMap::new();
    for s in &m.shards {
        let (customers, errors) = read_customers(m.shard_paths(dir, s).0).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        out.extend(customers.into_iter().map(|c| (c.customer_id.to_string(), c)));
    }
    out
}

#[test]
fn the_clear_contact_data_seals_to_the_local_data_sets_records() {
    let (local, zone) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = GenConfig {
        seed: 7,
        ..config(300, 200)
    };
    let summary = write(cfg.clone(), local.path(), 2);
    let m = drop_zone(cfg, zone.path(), &DropZoneOptions::default());
    let expected = local_customers(local.path(), &summary.manifest);
    let keys = Keyring::dev();
    let file = zone.path().join(crm_customers_file(m.cycle, 1));
    let mut seen = 0;
    for (i, line) in lines(&file).iter().enumerate() {
        let crm: CrmCustomer = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        let clear = crm.contact.clone();
        let sealed = crm.seal(&keys);
        let local = &expected[sealed.customer_id.as_str()];
        assert_eq!(
            &sealed,
            local,
            "line {}: the record ingest stores is the local one",
            i + 1
        );
        let opened = local.contact.open(&keys, &local.customer_id).unwrap();
        assert_eq!(opened.name.expose(), &clear.name);
        assert_eq!(opened.email.expose(), &clear.email);
        assert_eq!(opened.phone.expose(), &clear.phone);
        assert!(clear.email.contains('@') && clear.phone.starts_with("010-"));
        seen += 1;
    }
    assert_eq!(seen, 300, "every customer, once, in shard order");
    assert_eq!(
        (m.customers, m.billable_customers, m.usage_lines),
        (
            summary.manifest.customers,
            summary.manifest.billable_customers,
            summary.manifest.usage_lines
        )
    );
}

#[test]
fn the_files_are_named_for_the_drop_zone_and_the_usage_and_catalog_bytes_are_the_local_ones() {
    let (local, zone) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = GenConfig {
        inject_bad: 4,
        ..config(2_500, 1_000)
    };
    write(cfg.clone(), local.path(), 2);
    let m = drop_zone(cfg, zone.path(), &DropZoneOptions::default());
    let paths: Vec<(&str, &str, &str)> = m
        .files
        .iter()
        .map(|f| (f.kind.as_str(), f.path.as_str(), f.key.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("catalog", "catalog/2026-v1.json", "incoming/catalog/2026-v1.json"),
            (
                "customers",
                "customers/customers-2026-11.jsonl",
                "incoming/customers/customers-2026-11.jsonl"
            ),
            (
                "usage",
                "usage/2026-11/shard-00000.csv",
                "incoming/usage/2026-11/shard-00000.csv"
            ),
            (
                "usage",
                "usage/2026-11/shard-00001.csv",
                "incoming/usage/2026-11/shard-00001.csv"
            ),
            (
                "usage",
                "usage/2026-11/shard-00002.csv",
                "incoming/usage/2026-11/shard-00002.csv"
            ),
        ],
        "in the order to upload"
    );
    let files = tree(zone.path());
    let local_files = tree(local.path());
    for f in &m.files {
        let bytes = &files[&f.path];
        assert_eq!(bytes.len() as u64, f.bytes, "{}", f.path);
        assert_eq!(
            bytes.iter().filter(|b| **b == b'\n').count() as u64,
            f.lines,
            "{}",
            f.path
        );
        if f.kind != "customers" {
            assert_eq!(bytes, &local_files[&f.path], "{}: the local data set's bytes", f.path);
        }
    }
    assert_eq!(m.files[1].lines, 2_500);
    assert_eq!(
        m.bad_usage_lines, 4,
        "--inject-bad reaches the usage files as it does locally"
    );
    assert_eq!(
        files
            .keys()
            .filter(|k| !m.files.iter().any(|f| &f.path == *k))
            .collect::<Vec<_>>(),
        ["drop-zone.json"]
    );
    assert_eq!(DropZoneManifest::load(zone.path()).unwrap(), m);
}

#[test]
fn the_bytes_depend_on_the_settings_only() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let opts = |threads| DropZoneOptions {
        bad_lines: 9,
        threads,
        ..DropZoneOptions::default()
    };
    drop_zone(config(1_100, 100), a.path(), &opts(1));
    drop_zone(config(1_100, 100), b.path(), &opts(4));
    assert_eq!(tree(a.path()), tree(b.path()), "one thread or four");
    // A second run into the same directory, smaller, leaves nothing of the first.
    drop_zone(config(150, 100), a.path(), &opts(2));
    drop_zone(config(150, 100), b.path(), &opts(2));
    let after = tree(a.path());
    assert_eq!(after, tree(b.path()));
    assert!(after.contains_key("usage/2026-11/shard-00001.csv"));
    assert!(
        !after.contains_key("usage/2026-11/shard-00002.csv"),
        "stale shard files removed"
    );
}

#[test]
fn bad_lines_are_spread_named_by_number_and_outside_the_population() {
    let zone = tempfile::tempdir().unwrap();
    let bad = bad_lines_for(300, 1.0).unwrap();
    assert_eq!(bad, 3);
    assert_eq!(bad_lines_for(300, 0.0).unwrap(), 0);
    assert_eq!(bad_lines_for(10, 0.5).unwrap(), 1, "rounded up");
    assert!(bad_lines_for(10, 101.0).is_err());
    let m = drop_zone(
        config(300, 200),
        zone.path(),
        &DropZoneOptions {
            bad_lines: 8,
            ..DropZoneOptions::default()
        },
    );
    let all = lines(&zone.path().join(crm_customers_file(m.cycle, 1)));
    assert_eq!(all.len(), 308);
    assert_eq!(m.bad_customer_lines.len(), 8);
    let kinds: Vec<BadCustomerKind> = m.bad_customer_lines.iter().map(|b| b.kind).collect();
    assert_eq!(kinds[..4], BadCustomerKind::ALL, "the kinds in turn");
    let quiet = QuietWindow::default_korea();
    let mut numbers = Vec::new();
    for b in &m.bad_customer_lines {
        assert_eq!(b.file, "customers/customers-2026-11.jsonl");
        assert_eq!(b.field, b.kind.field());
        let line = &all[(b.line - 1) as usize];
        assert!(
            line.contains(&format!("\"customer_id\":\"{}\"", b.customer_id)),
            "line {}",
            b.line
        );
        let id: u32 = b.customer_id[1..].parse().unwrap();
        assert!(id > 300, "{} is outside the population", b.customer_id);
        let parsed = serde_json::from_str::<CrmCustomer>(line);
        match b.kind {
            BadCustomerKind::NoAllowedSlot => {
                let c = parsed.unwrap().seal(&Keyring::dev());
                let e = c.validate(quiet).unwrap_err();
                assert!(e.reason.contains("no allowed slot") || e.reason.contains("slot"), "{e}");
            }
            BadCustomerKind::EmptyPlan => {
                let c = parsed.unwrap().seal(&Keyring::dev());
                assert_eq!(c.validate(quiet).unwrap_err().reason, "plan code is empty");
            }
            BadCustomerKind::BadDate => {
                assert!(line.contains("-02-30\""));
                assert!(parsed.unwrap_err().to_string().contains("input"));
            }
            BadCustomerKind::MalformedJson => {
                assert!(parsed.unwrap_err().is_eof());
                assert!(!line.contains("contact"), "a malformed line carries no contact data");
            }
        }
        numbers.push(b.line);
    }
    assert!(numbers.windows(2).all(|w| w[0] < w[1]));
    assert!(
        numbers[0] > 1 && *numbers.last().unwrap() < 308,
        "never first, never last"
    );
    // Every other line is the population, in order.
    let good: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| !numbers.contains(&(*i as u64 + 1)))
        .map(|(_, l)| serde_json::from_str::<CrmCustomer>(l).unwrap().customer_id.to_string())
        .collect();
    let expected: Vec<String> = (1..=300).map(|i| format!("C{i:07}")).collect();
    assert_eq!(good, expected);
}

#[test]
fn a_customers_file_over_the_limit_is_cut_between_shards() {
    let zone = tempfile::tempdir().unwrap();
    let opts = DropZoneOptions {
        bad_lines: 5,
        customers_file_limit: 150_000,
        ..DropZoneOptions::default()
    };
    let m = drop_zone(config(1_000, 100), zone.path(), &opts);
    let parts: Vec<_> = m.files.iter().filter(|f| f.kind == "customers").collect();
    assert!(parts.len() > 2, "{parts:?}");
    assert_eq!(parts[0].path, "customers/customers-2026-11.jsonl");
    assert_eq!(parts[1].path, "customers/customers-2026-11.part-2.jsonl");
    assert!(parts.iter().all(|p| p.bytes <= 150_000));
    assert_eq!(parts.iter().map(|p| p.lines).sum::<u64>(), 1_005);
    for b in &m.bad_customer_lines {
        let all = lines(&zone.path().join(&b.file));
        assert!(all[(b.line - 1) as usize].contains(&b.customer_id), "{b:?}");
    }
    // Fewer parts next time: the stale ones go.
    let m2 = drop_zone(config(200, 100), zone.path(), &DropZoneOptions::default());
    assert_eq!(m2.files.iter().filter(|f| f.kind == "customers").count(), 1);
    assert!(!zone.path().join("customers/customers-2026-11.part-2.jsonl").exists());
}

#[test]
fn clear_contact_data_never_shows_in_debug_output() {
    let g = generator(config(3, 3));
    let data = g.crm_shard(0).unwrap();
    let text = String::from_utf8(data.customers_jsonl).unwrap();
    let crm: CrmCustomer = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let shown = format!("{crm:?}");
    for value in [&crm.contact.name, &crm.contact.email, &crm.contact.phone] {
        assert!(!shown.contains(value.as_str()));
    }
    assert!(!shown.contains(&crm.birthday.to_string()));
}
