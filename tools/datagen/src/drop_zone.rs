//! The files a deployed stack's drop zone takes (`incoming/` in its data
//! bucket): the catalog, one customers file with the contact data in clear
//! (a CRM export; ingest seals it with the stack's keyring) and one usage
//! file per shard. The same population as [`crate::write_dataset`] writes for
//! the same settings: ingested, it bills exactly like the local data set.
//!
//! ```text
//! <dir>/catalog/<version>.json                  the catalog, verbatim
//! <dir>/customers/customers-<cycle>.jsonl       every customer, contact in clear
//! <dir>/usage/<cycle>/shard-00000.csv           the usage file of shard 0 (the data set's bytes)
//! <dir>/drop-zone.json                          what was written, the keys to upload to, in order
//! ```

use std::io::Write as _;
use std::path::Path;

use domain::{Cycle, QuietWindow, SlotSet};
use serde::{Deserialize, Serialize};

use crate::error::DatagenError;
use crate::generator::{Generator, ShardData};
use crate::write::usage_file;

/// The prefix of the drop zone in a stack's data bucket.
pub const DROP_ZONE_PREFIX: &str = "incoming/";

/// The largest customers file the drop zone takes (2 GiB). The writer starts
/// a new part before a file would grow past it.
pub const CUSTOMERS_FILE_LIMIT: u64 = 2 << 30;

/// Contact data in clear, as a CRM export holds it ([`domain::ClearContact`]).
pub use domain::ClearContact;

/// One line of a drop-zone customers file ([`domain::ClearCustomer`]): the fields of
/// [`domain::Customer`] in the same order and form, `contact` in clear. `with_contact` makes
/// one from a generated customer; `seal` makes the stored record, as ingest seals it (sealing
/// is deterministic, so the development keyring gives the bytes of the local data set).
pub type CrmCustomer = domain::ClearCustomer;

/// The kinds of bad customer lines `--bad-lines` writes, in turn. Each
/// breaks exactly one thing of an otherwise valid line whose customer id
/// is not in the population, so the lines the file applies are the
/// population and nothing else.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadCustomerKind {
    /// `dnd` holds every slot of the day: no slot is left to send in.
    NoAllowedSlot,
    /// `plan` is empty. (A code no catalog has would not do: ingest stores
    /// customers without looking at a catalog; settlement names such a plan.)
    EmptyPlan,
    /// `joined_on` is February 30th.
    BadDate,
    /// The line stops before its `contact` field: not a JSON object.
    MalformedJson,
}

impl BadCustomerKind {
    pub const ALL: [BadCustomerKind; 4] = [
        BadCustomerKind::NoAllowedSlot,
        BadCustomerKind::EmptyPlan,
        BadCustomerKind::BadDate,
        BadCustomerKind::MalformedJson,
    ];

    /// The kind of the `j`-th bad line.
    pub fn of(j: u64) -> BadCustomerKind {
        Self::ALL[(j % 4) as usize]
    }

    /// The field the line gets wrong (`line` when it is not a record at all).
    pub fn field(self) -> &'static str {
        match self {
            BadCustomerKind::NoAllowedSlot => "dnd",
            BadCustomerKind::EmptyPlan => "plan",
            BadCustomerKind::BadDate => "joined_on",
            BadCustomerKind::MalformedJson => "line",
        }
    }
}

/// How many bad lines `percent` % of `customers` lines is (rounded up, so
/// any percentage above zero writes at least one).
pub fn bad_lines_for(customers: u32, percent: f64) -> Result<u32, DatagenError> {
    if !(0.0..=100.0).contains(&percent) {
        return Err(DatagenError::Config("the share of bad lines must be 0-100 %".into()));
    }
    Ok((f64::from(customers) * percent / 100.0).ceil() as u32)
}

/// One file of the drop zone, in the order to upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropFile {
    /// `catalog`, `customers` or `usage`.
    pub kind: String,
    /// Relative to the drop-zone directory, with `/`.
    pub path: String,
    /// The key to upload it to in the stack's data bucket (`incoming/<path>`).
    pub key: String,
    pub bytes: u64,
    /// Lines (newline characters) in the file; a usage file's header is one.
    pub lines: u64,
}

/// A bad line written on purpose, as the ingest report names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadCustomerLine {
    /// The customers file (its `path`).
    pub file: String,
    /// 1-based line number in that file.
    pub line: u64,
    pub customer_id: String,
    pub kind: BadCustomerKind,
    pub field: String,
}

/// `drop-zone.json`: what [`write_drop_zone`] wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropZoneManifest {
    pub generator_version: String,
    pub seed: u64,
    pub cycle: Cycle,
    pub customers: u32,
    pub billable_customers: u32,
    pub shard_size: u32,
    pub shard_count: u32,
    /// Good usage lines over all shards.
    pub usage_lines: u64,
    /// Malformed usage lines injected on purpose (`--inject-bad`).
    pub bad_usage_lines: u64,
    pub catalog_version: String,
    pub catalog_digest: String,
    /// The quiet window every good customer leaves a slot outside of.
    pub quiet_window: QuietWindow,
    /// Every file, in the order to upload: the catalog, the customers
    /// file(s), the usage files by shard.
    pub files: Vec<DropFile>,
    /// The bad customer lines (`--bad-lines`), by file and line.
    pub bad_customer_lines: Vec<BadCustomerLine>,
}

impl DropZoneManifest {
    pub const FILE_NAME: &'static str = "drop-zone.json";

    /// Reads `dir/drop-zone.json`.
    pub fn load(dir: &Path) -> Result<Self, DatagenError> {
        let path = dir.join(Self::FILE_NAME);
        let bytes = std::fs::read(&path).map_err(|e| DatagenError::io(&path, "read the drop-zone manifest", e))?;
        serde_json::from_slice(&bytes).map_err(|e| DatagenError::Format {
            path,
            what: "drop-zone manifest",
            message: e.to_string(),
        })
    }
}

/// `customers/customers-2026-11.jsonl`; part 2 and later (only when a file
/// would pass [`CUSTOMERS_FILE_LIMIT`]) `customers/customers-2026-11.part-2.jsonl`.
pub fn crm_customers_file(cycle: Cycle, part: u32) -> String {
    if part <= 1 {
        format!("customers/customers-{cycle}.jsonl")
    } else {
        format!("customers/customers-{cycle}.part-{part}.jsonl")
    }
}

/// Settings of [`write_drop_zone`] beyond the generator's.
#[derive(Clone, Debug)]
pub struct DropZoneOptions {
    /// Bad customer lines to mix into the customers file ([`bad_lines_for`]).
    pub bad_lines: u32,
    /// Worker threads (the bytes do not depend on it).
    pub threads: usize,
    /// A customers file is cut (between shards) before it would pass this.
    pub customers_file_limit: u64,
}

impl Default for DropZoneOptions {
    fn default() -> Self {
        DropZoneOptions {
            bad_lines: 0,
            threads: 2,
            customers_file_limit: CUSTOMERS_FILE_LIMIT,
        }
    }
}

/// Writes the drop-zone files of `g`'s population into `dir` and returns
/// their manifest (also written, last, as `drop-zone.json`). `progress` is
/// called with each shard's customer count as it is written.
pub fn write_drop_zone(
    g: &Generator,
    dir: &Path,
    opts: &DropZoneOptions,
    progress: &(dyn Fn(u32) + Sync),
) -> Result<DropZoneManifest, DatagenError> {
    let cfg = g.config();
    let n = cfg.customers;
    if u64::from(n) + u64::from(opts.bad_lines) > u64::from(crate::MAX_CUSTOMERS) {
        return Err(DatagenError::Config(format!(
            "{n} customers and {} bad lines need more ids than the {} seven digits give",
            opts.bad_lines,
            crate::MAX_CUSTOMERS
        )));
    }
    if opts.bad_lines > 0 && n == 0 {
        return Err(DatagenError::Config(
            "cannot mix bad lines into an empty customers file".into(),
        ));
    }
    let version = g.catalog().version();
    crate::write::check_file_name(version)?;
    let manifest_path = dir.join(DropZoneManifest::FILE_NAME);
    match std::fs::remove_file(&manifest_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(DatagenError::io(&manifest_path, "remove the old manifest", e)),
    }
    let customers_dir = dir.join("customers");
    let usage_dir = dir.join("usage").join(cfg.cycle.to_string());
    for d in [dir.join("catalog"), customers_dir.clone(), usage_dir.clone()] {
        std::fs::create_dir_all(&d).map_err(|e| DatagenError::io(&d, "create the directory", e))?;
    }
    crate::write::remove_stale_shards(&usage_dir, ".csv", g.shard_count())?;
    remove_stale_parts(&customers_dir, cfg.cycle)?;

    let catalog_path = format!("catalog/{version}.json");
    write_file(&dir.join(&catalog_path), g.catalog_json().as_bytes())?;
    let catalog = g.catalog_json().as_bytes();
    let mut files = vec![drop_file(
        "catalog",
        &catalog_path,
        catalog.len() as u64,
        chunk_lines(catalog),
    )];

    let mut customers = PartWriter::new(dir, cfg.cycle, opts.customers_file_limit);
    let mut usage_files = Vec::with_capacity(g.shard_count() as usize);
    let mut bad_lines = Vec::with_capacity(opts.bad_lines as usize);
    let (mut billable, mut usage_lines, mut bad_usage) = (0u32, 0u64, 0u64);
    let mut next_bad = 0u32;
    let workers = opts.threads.max(1) as u32;
    let mut first = 0u32;
    while first < g.shard_count() {
        let last = first.saturating_add(workers).min(g.shard_count());
        for data in generate_window(g, first..last)? {
            let range = g.shard_range(data.shard);
            let mut lines = data.customers_jsonl.split_inclusive(|b| *b == b'\n');
            let mut chunk = Vec::with_capacity(data.customers_jsonl.len() + 1024);
            let mut planned = Vec::new();
            for index in range {
                while next_bad < opts.bad_lines && bad_position(next_bad, opts.bad_lines, n) == index {
                    let (line, kind, id) = g.bad_customer_line(next_bad, data.shard)?;
                    planned.push((chunk_lines(&chunk), kind, id));
                    chunk.extend_from_slice(line.as_bytes());
                    chunk.push(b'\n');
                    next_bad += 1;
                }
                chunk.extend_from_slice(lines.next().unwrap_or_default());
            }
            let (file, first_line) = customers.write_shard(&chunk)?;
            for (at, kind, customer_id) in planned {
                bad_lines.push(BadCustomerLine {
                    file: file.clone(),
                    line: first_line + at,
                    customer_id,
                    kind,
                    field: kind.field().to_owned(),
                });
            }
            let usage_path = usage_file(cfg.cycle, data.shard);
            write_file(&dir.join(&usage_path), &data.usage_csv)?;
            let usage_line_count = data.usage_csv.iter().filter(|b| **b == b'\n').count() as u64;
            usage_files.push(drop_file(
                "usage",
                &usage_path,
                data.usage_csv.len() as u64,
                usage_line_count,
            ));
            billable += data.billable;
            usage_lines += u64::from(data.usage_lines);
            bad_usage += u64::from(data.bad_lines);
            progress(data.customers.len() as u32);
        }
        first = last;
    }
    files.extend(customers.finish()?);
    files.extend(usage_files);
    let manifest = DropZoneManifest {
        generator_version: crate::GENERATOR_VERSION.to_owned(),
        seed: cfg.seed,
        cycle: cfg.cycle,
        customers: n,
        billable_customers: billable,
        shard_size: cfg.shard_size,
        shard_count: g.shard_count(),
        usage_lines,
        bad_usage_lines: bad_usage,
        catalog_version: version.to_owned(),
        catalog_digest: g.catalog().digest().to_owned(),
        quiet_window: cfg.quiet_window,
        files,
        bad_customer_lines: bad_lines,
    };
    let mut json = serde_json::to_vec_pretty(&manifest).map_err(|e| DatagenError::Format {
        path: manifest_path.clone(),
        what: "drop-zone manifest",
        message: e.to_string(),
    })?;
    json.push(b'\n');
    write_file(&manifest_path, &json)?;
    Ok(manifest)
}

/// The customer index bad line `j` of `k` is written before: the lines are
/// spread evenly over the `n` customers, never first, never last.
fn bad_position(j: u32, k: u32, n: u32) -> u32 {
    ((u64::from(j) + 1) * u64::from(n) / (u64::from(k) + 1)) as u32
}

fn chunk_lines(chunk: &[u8]) -> u64 {
    chunk.iter().filter(|b| **b == b'\n').count() as u64
}

fn drop_file(kind: &str, path: &str, bytes: u64, lines: u64) -> DropFile {
    DropFile {
        kind: kind.to_owned(),
        path: path.to_owned(),
        key: format!("{DROP_ZONE_PREFIX}{path}"),
        bytes,
        lines,
    }
}

/// Generates the shards `range` in parallel, one thread each, in order.
fn generate_window(g: &Generator, range: std::ops::Range<u32>) -> Result<Vec<ShardData>, DatagenError> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = range.map(|shard| scope.spawn(move || g.crm_shard(shard))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(DatagenError::Config("a generator thread panicked".into())))
            })
            .collect()
    })
}

/// Writes the customers file, starting a new part between shards when the
/// current one would pass the limit.
struct PartWriter<'a> {
    dir: &'a Path,
    cycle: Cycle,
    limit: u64,
    part: u32,
    out: Option<(String, std::io::BufWriter<std::fs::File>)>,
    bytes: u64,
    lines: u64,
    done: Vec<DropFile>,
}

impl<'a> PartWriter<'a> {
    fn new(dir: &'a Path, cycle: Cycle, limit: u64) -> Self {
        PartWriter {
            dir,
            cycle,
            limit,
            part: 0,
            out: None,
            bytes: 0,
            lines: 0,
            done: Vec::new(),
        }
    }

    /// Appends one shard's lines; answers the file and the number of the
    /// first line written.
    fn write_shard(&mut self, chunk: &[u8]) -> Result<(String, u64), DatagenError> {
        let len = chunk.len() as u64;
        if self.out.is_none() || (self.bytes > 0 && self.bytes + len > self.limit) {
            self.close()?;
            self.part += 1;
            let rel = crm_customers_file(self.cycle, self.part);
            let path = self.dir.join(&rel);
            let f = std::fs::File::create(&path).map_err(|e| DatagenError::io(&path, "create", e))?;
            self.out = Some((rel, std::io::BufWriter::with_capacity(1 << 20, f)));
        }
        let Some((rel, w)) = self.out.as_mut() else {
            unreachable!("a part was opened above")
        };
        w.write_all(chunk)
            .map_err(|e| DatagenError::io(self.dir.join(rel.as_str()), "write", e))?;
        let first = self.lines + 1;
        self.bytes += len;
        self.lines += chunk_lines(chunk);
        Ok((rel.clone(), first))
    }

    fn close(&mut self) -> Result<(), DatagenError> {
        if let Some((rel, mut w)) = self.out.take() {
            w.flush()
                .map_err(|e| DatagenError::io(self.dir.join(&rel), "write", e))?;
            self.done.push(drop_file("customers", &rel, self.bytes, self.lines));
        }
        self.bytes = 0;
        self.lines = 0;
        Ok(())
    }

    /// Closes the last part (an empty population still gets one, empty, file).
    fn finish(mut self) -> Result<Vec<DropFile>, DatagenError> {
        if self.out.is_none() && self.done.is_empty() {
            self.write_shard(&[])?;
        }
        self.close()?;
        Ok(self.done)
    }
}

/// Removes customers files of `cycle` left by an earlier, larger run (its
/// parts 2 and later); part 1 is always rewritten.
fn remove_stale_parts(dir: &Path, cycle: Cycle) -> Result<(), DatagenError> {
    let prefix = format!("customers-{cycle}.part-");
    let entries = std::fs::read_dir(dir).map_err(|e| DatagenError::io(dir, "list the directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DatagenError::io(dir, "list the directory", e))?;
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".jsonl"))
        {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| DatagenError::io(&path, "remove a stale customers file", e))?;
        }
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DatagenError> {
    std::fs::write(path, bytes).map_err(|e| DatagenError::io(path, "write", e))
}

impl Generator {
    /// Bad customer line `j`, filed under `shard`: a customer beyond the
    /// population (id `C` + customers + j + 1) with one thing wrong. Answers
    /// the line, its kind and its customer id.
    pub(crate) fn bad_customer_line(
        &self,
        j: u32,
        shard: u32,
    ) -> Result<(String, BadCustomerKind, String), DatagenError> {
        let index = self.cfg.customers + j;
        let (customer, clear, _) = self.make_customer_clear(index, None)?;
        let mut crm = customer.with_contact(clear);
        crm.shard = shard;
        let kind = BadCustomerKind::of(u64::from(j));
        match kind {
            BadCustomerKind::NoAllowedSlot => crm.dnd = SlotSet::ALL,
            BadCustomerKind::EmptyPlan => crm.plan.clear(),
            BadCustomerKind::BadDate | BadCustomerKind::MalformedJson => {}
        }
        let id = crm.customer_id.to_string();
        let mut line = serde_json::to_string(&crm).map_err(|e| DatagenError::Format {
            path: "customers".into(),
            what: "customer record",
            message: e.to_string(),
        })?;
        match kind {
            BadCustomerKind::BadDate => {
                let good = format!("\"joined_on\":\"{}\"", crm.joined_on);
                let bad = format!("\"joined_on\":\"{}-02-30\"", chrono::Datelike::year(&crm.joined_on));
                line = line.replacen(&good, &bad, 1);
            }
            BadCustomerKind::MalformedJson => {
                if let Some(at) = line.find(",\"contact\":") {
                    line.truncate(at);
                }
            }
            BadCustomerKind::NoAllowedSlot | BadCustomerKind::EmptyPlan => {}
        }
        Ok((line, kind, id))
    }
}
