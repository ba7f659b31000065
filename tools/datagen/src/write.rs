//! Writing a data set to a directory, shards in parallel.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use domain::Cycle;
use domain::pii::Keyring;

use crate::error::DatagenError;
use crate::generator::Generator;
use crate::manifest::{Manifest, ShardEntry};

/// `customers/shard-00042.jsonl`
pub fn customers_file(shard: u32) -> String {
    format!("customers/shard-{shard:05}.jsonl")
}

/// `usage/2026-11/shard-00042.csv`
pub fn usage_file(cycle: Cycle, shard: u32) -> String {
    format!("usage/{cycle}/shard-{shard:05}.csv")
}

/// The keyring to seal with: `spec` in the `PII_KEYS` format
/// (`id:base64key[,…]`), or the development keyring when `None`. A spec that
/// is set but malformed is an error, never a silent fallback.
pub fn keyring_from_spec(spec: Option<&str>) -> Result<Keyring, DatagenError> {
    match spec {
        None => Ok(Keyring::dev()),
        Some(s) => Ok(Keyring::parse(s)?),
    }
}

/// What was written for one shard (reported as each shard finishes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub shard: u32,
    pub customers: u32,
    pub billable: u32,
    pub usage_lines: u32,
    pub bad_lines: u32,
    pub customers_bytes: u64,
    pub usage_bytes: u64,
}

/// What a whole run wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub manifest: Manifest,
    pub customers_bytes: u64,
    pub usage_bytes: u64,
    /// Catalog copy and manifest.
    pub other_bytes: u64,
}

impl Summary {
    pub fn total_bytes(&self) -> u64 {
        self.customers_bytes + self.usage_bytes + self.other_bytes
    }
}

/// Generates the data set into `out` with `threads` worker threads (the
/// bytes do not depend on it) and calls `progress` from the worker threads
/// as each shard is written.
///
/// The manifest is removed first and written last, so a failed run leaves
/// no manifest. Shard files of an earlier run in the same directory that
/// this run does not produce (an earlier, larger run) are removed, so the
/// directory always matches its manifest.
pub fn write_dataset(
    g: &Generator,
    out: &Path,
    threads: usize,
    progress: &(dyn Fn(&ShardStats) + Sync),
) -> Result<Summary, DatagenError> {
    let cfg = g.config();
    let version = g.catalog().version();
    check_file_name(version)?;
    let catalog_file = format!("catalog/{version}.json");
    let customers_dir = out.join("customers");
    let usage_dir = out.join("usage").join(cfg.cycle.to_string());
    for dir in [out.join("catalog"), customers_dir.clone(), usage_dir.clone()] {
        std::fs::create_dir_all(&dir).map_err(|e| DatagenError::io(&dir, "create the directory", e))?;
    }
    let manifest_path = out.join(Manifest::FILE_NAME);
    match std::fs::remove_file(&manifest_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(DatagenError::io(&manifest_path, "remove the old manifest", e)),
    }
    remove_stale_shards(&customers_dir, ".jsonl", g.shard_count())?;
    remove_stale_shards(&usage_dir, ".csv", g.shard_count())?;

    let catalog_path = out.join(&catalog_file);
    write_file(&catalog_path, g.catalog_json().as_bytes())?;

    let stats = write_shards(g, out, threads, progress)?;

    let shards: Vec<ShardEntry> = stats
        .iter()
        .map(|s| ShardEntry {
            shard: s.shard,
            customers_file: customers_file(s.shard),
            usage_file: usage_file(cfg.cycle, s.shard),
            customers: s.customers,
            billable_customers: s.billable,
            usage_lines: s.usage_lines,
            bad_usage_lines: s.bad_lines,
        })
        .collect();
    let manifest = Manifest {
        generator_version: crate::GENERATOR_VERSION.to_owned(),
        seed: cfg.seed,
        cycle: cfg.cycle,
        customers: cfg.customers,
        billable_customers: stats.iter().map(|s| s.billable).sum(),
        shard_size: cfg.shard_size,
        shard_count: g.shard_count(),
        usage_lines: stats.iter().map(|s| u64::from(s.usage_lines)).sum(),
        bad_usage_lines: stats.iter().map(|s| u64::from(s.bad_lines)).sum(),
        usage_order: cfg.usage_order,
        catalog_version: version.to_owned(),
        catalog_file,
        catalog_digest: g.catalog().digest().to_owned(),
        quiet_window: cfg.quiet_window,
        pii_key_id: g.keyring().active_key_id().to_owned(),
        shards,
    };
    manifest.save(&manifest_path)?;
    let manifest_bytes = std::fs::metadata(&manifest_path).map(|m| m.len()).unwrap_or(0);
    Ok(Summary {
        customers_bytes: stats.iter().map(|s| s.customers_bytes).sum(),
        usage_bytes: stats.iter().map(|s| s.usage_bytes).sum(),
        other_bytes: g.catalog_json().len() as u64 + manifest_bytes,
        manifest,
    })
}

fn write_shards(
    g: &Generator,
    out: &Path,
    threads: usize,
    progress: &(dyn Fn(&ShardStats) + Sync),
) -> Result<Vec<ShardStats>, DatagenError> {
    let count = g.shard_count();
    let next = AtomicU32::new(0);
    let failed = AtomicBool::new(false);
    let workers = threads.clamp(1, count.max(1) as usize);
    let results: Vec<Result<Vec<ShardStats>, (u32, DatagenError)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let shard = next.fetch_add(1, Ordering::Relaxed);
                        if shard >= count || failed.load(Ordering::Relaxed) {
                            return Ok(done);
                        }
                        match write_one(g, out, shard) {
                            Ok(s) => {
                                progress(&s);
                                done.push(s);
                            }
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err((shard, e));
                            }
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err((u32::MAX, DatagenError::Config("a generator thread panicked".into()))))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(count as usize);
    let mut first_error: Option<(u32, DatagenError)> = None;
    for r in results {
        match r {
            Ok(v) => all.extend(v),
            Err((shard, e)) => {
                if first_error.as_ref().is_none_or(|(s, _)| shard < *s) {
                    first_error = Some((shard, e));
                }
            }
        }
    }
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    all.sort_by_key(|s| s.shard);
    Ok(all)
}

fn write_one(g: &Generator, out: &Path, shard: u32) -> Result<ShardStats, DatagenError> {
    let data = g.shard(shard)?;
    write_file(&out.join(customers_file(shard)), &data.customers_jsonl)?;
    write_file(&out.join(usage_file(g.config().cycle, shard)), &data.usage_csv)?;
    Ok(ShardStats {
        shard,
        customers: data.customers.len() as u32,
        billable: data.billable,
        usage_lines: data.usage_lines,
        bad_lines: data.bad_lines,
        customers_bytes: data.customers_jsonl.len() as u64,
        usage_bytes: data.usage_csv.len() as u64,
    })
}

/// A catalog version names the catalog's file: letters, digits, `.`, `_`, `-`, not
/// starting with `.`.
pub(crate) fn check_file_name(version: &str) -> Result<(), DatagenError> {
    if version.starts_with('.')
        || !version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(DatagenError::Config(format!(
            "catalog version {version:?} cannot be used as a file name (letters, digits, '.', '_', '-')"
        )));
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DatagenError> {
    std::fs::write(path, bytes).map_err(|e| DatagenError::io(path, "write", e))
}

/// Removes `shard-NNNNN<ext>` files with `NNNNN >= keep` from `dir`.
pub(crate) fn remove_stale_shards(dir: &Path, ext: &str, keep: u32) -> Result<(), DatagenError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DatagenError::io(dir, "list the directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DatagenError::io(dir, "list the directory", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(n) = name.strip_prefix("shard-").and_then(|r| r.strip_suffix(ext)) else {
            continue;
        };
        if n.len() == 5
            && let Ok(n) = n.parse::<u32>()
            && n >= keep
        {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| DatagenError::io(&path, "remove a stale shard file", e))?;
        }
    }
    Ok(())
}
