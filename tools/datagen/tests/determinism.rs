mod common;

use common::{config, generator, tree, write};
use datagen::{GenConfig, UsageOrder, read_customers};

fn odd_config() -> GenConfig {
    // A shard size that does not divide the count (last shard partial) and
    // is not a multiple of the family block; a few bad lines as well.
    GenConfig {
        inject_bad: 5,
        ..config(2_345, 300)
    }
}

#[test]
fn same_settings_give_identical_bytes_for_any_thread_count() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    for (dir, threads) in dirs.iter().zip([1, 2, 5]) {
        write(odd_config(), dir.path(), threads);
    }
    let first = tree(dirs[0].path());
    assert_eq!(
        first.len(),
        1 + 1 + 2 * 8,
        "catalog + manifest + 8 shards × 2: {:?}",
        first.keys()
    );
    for d in &dirs[1..] {
        let other = tree(d.path());
        assert_eq!(first.keys().collect::<Vec<_>>(), other.keys().collect::<Vec<_>>());
        for (name, bytes) in &first {
            assert!(bytes == &other[name], "{name} differs between thread counts");
        }
    }
    // Regenerating into the same directory gives the same bytes again.
    write(odd_config(), dirs[0].path(), 2);
    assert_eq!(tree(dirs[0].path()), first);
}

#[test]
fn another_seed_or_order_changes_the_bytes() {
    let a = generator(config(500, 250)).shard(1).unwrap();
    let b = generator(GenConfig {
        seed: 43,
        ..config(500, 250)
    })
    .shard(1)
    .unwrap();
    assert_ne!(a.customers_jsonl, b.customers_jsonl);
    assert_ne!(a.usage_csv, b.usage_csv);
    // Grouped by customer: the same lines in another order.
    let c = generator(GenConfig {
        usage_order: UsageOrder::Customer,
        ..config(500, 250)
    })
    .shard(1)
    .unwrap();
    assert_eq!(a.customers_jsonl, c.customers_jsonl);
    assert_ne!(a.usage_csv, c.usage_csv);
    let sorted = |b: &[u8]| {
        let mut l: Vec<&[u8]> = b.split(|&x| x == b'\n').collect();
        l.sort();
        l.into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>()
    };
    assert_eq!(sorted(&a.usage_csv), sorted(&c.usage_csv));
    let ids: Vec<&[u8]> = c
        .usage_csv
        .split(|&x| x == b'\n')
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| &l[..8])
        .collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "customer order is sorted by id");
}

#[test]
fn a_customer_or_shard_generated_alone_matches_the_files() {
    let dir = tempfile::tempdir().unwrap();
    write(odd_config(), dir.path(), 2);
    let g = generator(odd_config());
    for shard in [0, 3, 7] {
        let alone = g.shard(shard).unwrap();
        let path = dir.path().join(datagen::customers_file(shard));
        assert_eq!(std::fs::read(&path).unwrap(), alone.customers_jsonl);
        let usage = dir.path().join(datagen::usage_file(common::nov(), shard));
        assert_eq!(std::fs::read(&usage).unwrap(), alone.usage_csv);
        let (customers, errors) = read_customers(&path).unwrap();
        assert!(errors.is_empty());
        assert_eq!(customers, alone.customers);
        for c in customers.iter().step_by(37) {
            let index: u32 = c.customer_id.as_str()[1..].parse::<u32>().unwrap() - 1;
            assert_eq!(&g.customer(index).unwrap(), c);
            assert_eq!(c.shard, shard);
        }
    }
    assert!(g.customer(2_345).is_err());
}

#[test]
fn a_smaller_run_removes_the_shards_of_a_larger_one() {
    let dir = tempfile::tempdir().unwrap();
    write(config(2_000, 500), dir.path(), 2);
    let summary = write(config(900, 500), dir.path(), 2);
    assert_eq!(summary.manifest.shard_count, 2);
    let files = tree(dir.path());
    let shards = files.keys().filter(|k| k.contains("shard-")).count();
    assert_eq!(shards, 4, "{:?}", files.keys());
}
