//! The drop-zone files against the ingest function's own checks (its pure part, no I/O):
//! every good customer line passes and seals to the local data set's record, every bad line
//! is refused at the line and for the field `drop-zone.json` names, and every usage line is
//! kept byte for byte.

mod common;

use std::collections::{BTreeMap, HashMap};

use billing::Catalog;
use common::{config, generator, write};
use datagen::{DropZoneManifest, DropZoneOptions, GenConfig, crm_customers_file, read_customers, write_drop_zone};
use domain::pii::Keyring;
use domain::{Customer, QuietWindow};
use ingest::lines::Splitter;
use ingest::planner::{CustomerPlanner, Cut};
use ingest::records::check_customer_line;
use ingest::usage::{check_usage, in_service};

struct Pair {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    zone: std::path::PathBuf,
    manifest: DropZoneManifest,
    /// The local data set's customers by shard.
    local: BTreeMap<u32, Vec<Customer>>,
}

fn pair(cfg: GenConfig, bad_lines: u32) -> Pair {
    let (local, zone) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let summary = write(cfg.clone(), local.path(), 2);
    let opts = DropZoneOptions {
        bad_lines,
        ..DropZoneOptions::default()
    };
    let manifest = write_drop_zone(&generator(cfg), zone.path(), &opts, &|_| {}).unwrap();
    let mut by_shard = BTreeMap::new();
    for s in &summary.manifest.shards {
        let (customers, errors) = read_customers(summary.manifest.shard_paths(local.path(), s).0).unwrap();
        assert!(errors.is_empty());
        by_shard.insert(s.shard, customers);
    }
    Pair {
        zone: zone.path().to_path_buf(),
        _dirs: (local, zone),
        manifest,
        local: by_shard,
    }
}

#[test]
fn every_good_line_passes_ingest_and_seals_to_the_local_record() {
    let p = pair(
        GenConfig {
            seed: 7,
            ..config(300, 200)
        },
        0,
    );
    let local: HashMap<&str, &Customer> = p
        .local
        .values()
        .flatten()
        .map(|c| (c.customer_id.as_str(), c))
        .collect();
    let text = std::fs::read(p.zone.join(crm_customers_file(p.manifest.cycle, 1))).unwrap();
    let keys = Keyring::dev();
    let mut n = 0;
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let up = check_customer_line(line, QuietWindow::default_korea()).unwrap_or_else(|e| panic!("{e:?}"));
        let sealed = up.seal(&keys);
        assert_eq!(&&sealed, &local[sealed.customer_id.as_str()]);
        n += 1;
    }
    assert_eq!(n, 300);
}

#[test]
fn ingest_refuses_exactly_the_bad_lines_drop_zone_json_names() {
    let p = pair(config(1_000, 250), 12);
    let file = &p.manifest.files[1];
    assert_eq!(file.kind, "customers");
    let bytes = std::fs::read(p.zone.join(&file.path)).unwrap();
    let stored = HashMap::new();
    let mut planner = CustomerPlanner::new(QuietWindow::default_korea(), &stored, Cut::default());
    let mut splitter = Splitter::new(0, 1);
    for piece in bytes.chunks(4096) {
        splitter.push(piece, |l| planner.line(&l)).unwrap();
    }
    splitter.finish(|l| planner.line(&l)).unwrap();
    let planned = planner.finish();
    assert_eq!((planned.records, planned.accepted), (1_012, 1_000));
    let refused: Vec<(u64, String)> = planned
        .rejections
        .listed
        .iter()
        .map(|r| (r.line, r.field.clone()))
        .collect();
    let expected: Vec<(u64, String)> = p
        .manifest
        .bad_customer_lines
        .iter()
        .map(|b| (b.line, b.field.clone()))
        .collect();
    assert_eq!(refused, expected);
    assert_eq!(planned.shards.into_iter().collect::<Vec<_>>(), [0, 1, 2, 3]);
}

#[test]
fn every_usage_line_is_kept_byte_for_byte() {
    let p = pair(config(600, 200), 0);
    let catalog = Catalog::default_catalog().unwrap();
    for f in p.manifest.files.iter().filter(|f| f.kind == "usage") {
        let shard: u32 = f
            .path
            .trim_end_matches(".csv")
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let bytes = std::fs::read(p.zone.join(&f.path)).unwrap();
        let in_shard = in_service(&p.local[&shard], p.manifest.cycle);
        let checked = check_usage(&bytes, &catalog, p.manifest.cycle, shard, &in_shard).unwrap();
        assert_eq!(checked.rejections.count, 0, "{}", f.path);
        assert_eq!(checked.output, bytes, "{}: stored as uploaded", f.path);
    }
}
