//! `manifest.json`: what a data set holds and how it was made. Written last,
//! so a data set without a manifest is incomplete.

use std::path::{Path, PathBuf};

use domain::{Cycle, QuietWindow};
use serde::{Deserialize, Serialize};

use crate::error::DatagenError;
use crate::generator::UsageOrder;

/// The manifest of a data set. Paths are relative to the data set's root
/// and use `/`, as S3 keys do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`crate::GENERATOR_VERSION`] of the generator that wrote the set.
    pub generator_version: String,
    pub seed: u64,
    pub cycle: Cycle,
    pub customers: u32,
    /// Customers with at least one day of service in the cycle (one bill each).
    pub billable_customers: u32,
    pub shard_size: u32,
    pub shard_count: u32,
    /// Good usage lines over all shards (headers and bad lines excluded).
    pub usage_lines: u64,
    /// Malformed lines injected on purpose (`--inject-bad`).
    pub bad_usage_lines: u64,
    pub usage_order: UsageOrder,
    pub catalog_version: String,
    pub catalog_file: String,
    /// [`billing::Catalog::digest`] of the catalog copied into the set.
    pub catalog_digest: String,
    /// The quiet window every customer was validated against.
    pub quiet_window: QuietWindow,
    /// Id of the key the contact data is sealed with (not the key).
    pub pii_key_id: String,
    pub shards: Vec<ShardEntry>,
}

/// One shard of the set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    pub shard: u32,
    pub customers_file: String,
    pub usage_file: String,
    pub customers: u32,
    pub billable_customers: u32,
    pub usage_lines: u32,
    pub bad_usage_lines: u32,
}

impl Manifest {
    pub const FILE_NAME: &'static str = "manifest.json";

    /// Reads `path` (a manifest file, or a data set directory holding one).
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest, DatagenError> {
        let path = manifest_path(path.as_ref());
        let bytes = std::fs::read(&path).map_err(|e| DatagenError::io(&path, "read the manifest", e))?;
        serde_json::from_slice(&bytes).map_err(|e| DatagenError::Format {
            path,
            what: "manifest",
            message: e.to_string(),
        })
    }

    /// Writes the manifest to `path` (a file, or a directory to hold
    /// `manifest.json`), pretty-printed with a final newline.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), DatagenError> {
        let path = manifest_path(path.as_ref());
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| DatagenError::Format {
            path: path.clone(),
            what: "manifest",
            message: e.to_string(),
        })?;
        json.push(b'\n');
        std::fs::write(&path, json).map_err(|e| DatagenError::io(&path, "write the manifest", e))
    }

    /// Absolute paths of a shard's customer and usage files under `root`.
    pub fn shard_paths(&self, root: &Path, shard: &ShardEntry) -> (PathBuf, PathBuf) {
        (root.join(&shard.customers_file), root.join(&shard.usage_file))
    }
}

fn manifest_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join(Manifest::FILE_NAME)
    } else {
        p.to_path_buf()
    }
}
