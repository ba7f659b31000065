#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use datagen::{GenConfig, Generator, Summary, write_dataset};
use domain::Cycle;
use domain::pii::Keyring;

pub fn nov() -> Cycle {
    "2026-11".parse().unwrap()
}

pub fn config(customers: u32, shard_size: u32) -> GenConfig {
    GenConfig {
        shard_size,
        ..GenConfig::new(customers, nov())
    }
}

pub fn generator(cfg: GenConfig) -> Generator {
    Generator::new(cfg, Keyring::dev()).unwrap()
}

pub fn write(cfg: GenConfig, dir: &Path, threads: usize) -> Summary {
    write_dataset(&generator(cfg), dir, threads, &|_| {}).unwrap()
}

/// Every file under `dir`, by relative path.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}
