//! Benchmarks of the generator and of the settlement hot path.
//!
//! ```text
//! cargo run --profile fast -p datagen --bin bench -- --customers 1000000
//! ```
//!
//! (a) generates N customers (~5N usage lines) into a temporary directory
//!     with 1 and 2 threads;
//! (b) on one thread, with every usage file already in memory: the bare
//!     parse (`billing::parse_usage`), parse + group + bill
//!     (`billing::settle`, customers already loaded), the grouping alone
//!     and the arithmetic alone (`billing::rate` over pre-parsed,
//!     pre-grouped input).
//!
//! Every figure is the best of `--runs` runs. Prints a markdown table.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use billing::{Catalog, UsageParse, UsageRecord, parse_usage, rate, settle};
use clap::Parser;
use datagen::{GenConfig, Generator, Manifest, read_customers, write_dataset};
use domain::pii::Keyring;
use domain::{Customer, Cycle, Krw};

/// The system allocator, counting allocations while [`COUNTING`] is on
/// (only in untimed passes; when off it costs one relaxed load).
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counter has no effect on the memory returned.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations (and reallocations) made by `f`.
fn count_allocations<T>(f: impl FnOnce() -> T) -> (u64, T) {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let out = f();
    COUNTING.store(false, Ordering::Relaxed);
    (ALLOCATIONS.load(Ordering::Relaxed), out)
}

#[derive(Parser)]
#[command(name = "bench", about = "Time the data generator and the settlement hot path")]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    customers: u32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value = "2026-11")]
    cycle: Cycle,
    #[arg(long, default_value_t = 1000)]
    shard_size: u32,
    /// Runs per measurement; the best is reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Where to create the temporary data set directories (default: the
    /// system's temporary directory).
    #[arg(long)]
    tmp: Option<PathBuf>,
    /// Skip (a) and benchmark settlement on an existing data set.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run only one step of (b) (for profiling), without the table.
    #[arg(long, value_enum)]
    only: Option<Step>,
}

#[derive(Copy, Clone, PartialEq, Eq, clap::ValueEnum)]
enum Step {
    Parse,
    Settle,
    Group,
    Rate,
}

struct Row {
    step: String,
    threads: &'static str,
    m: Measure,
    per_unit: String,
    notes: String,
}

/// One timed run. On a shared machine the wall time includes waiting for a
/// CPU; the CPU time does not, so single-thread steps are ranked by it.
#[derive(Copy, Clone, Debug, Default)]
struct Measure {
    wall: Duration,
    /// On-CPU time: of this thread for single-thread steps (nanosecond
    /// scheduler accounting), of the whole process for generation.
    cpu: Duration,
    /// Time this thread was runnable but waiting for a CPU (single-thread
    /// steps only): a measure of interference from other processes.
    waited: Option<Duration>,
    /// CPU time other processes used during the run, divided by the wall
    /// time: how many CPUs, on average, were busy with something else.
    others: Option<f64>,
}

/// Busy CPU time of the whole machine (all processes), from `/proc/stat`,
/// in 1/100 s ticks.
fn machine_busy() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = s.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = cpu.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal …
    let busy = f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7)?;
    Some(Duration::from_millis(busy * 10))
}

/// Tracks what the rest of the machine does while a run is timed.
struct Others {
    busy: Option<Duration>,
    ours: Option<Duration>,
}

impl Others {
    fn start() -> Others {
        Others {
            busy: machine_busy(),
            ours: process_cpu(),
        }
    }

    fn cpus(&self, wall: Duration) -> Option<f64> {
        let busy = machine_busy()?.checked_sub(self.busy?)?;
        let ours = process_cpu()?.checked_sub(self.ours?)?;
        Some(busy.saturating_sub(ours).as_secs_f64() / wall.as_secs_f64().max(1e-9))
    }
}

/// This thread's (on-CPU, waiting-for-CPU) times from the scheduler, if the
/// kernel exposes them.
fn thread_sched() -> Option<(Duration, Duration)> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some((Duration::from_nanos(it.next()??), Duration::from_nanos(it.next()??)))
}

/// User + system CPU time of the whole process (all threads, living or
/// finished), in the kernel's 1/100 s ticks.
fn process_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Runs `f` once on this thread and measures it.
fn measure<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(Measure, T)> {
    let before = thread_sched();
    let others = Others::start();
    let t = Instant::now();
    let out = f()?;
    let wall = t.elapsed();
    let others = others.cpus(wall);
    let m = match (before, thread_sched()) {
        (Some((c0, w0)), Some((c1, w1))) => Measure {
            wall,
            cpu: c1.saturating_sub(c0),
            waited: Some(w1.saturating_sub(w0)),
            others,
        },
        _ => Measure {
            wall,
            cpu: wall,
            waited: None,
            others,
        },
    };
    Ok((m, out))
}

fn best_of<T>(runs: u32, mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(Measure, T)> {
    best_of_with_setup(runs, || (), |()| f())
}

/// The run with the least CPU time out of `runs`, each after an untimed
/// `setup`.
fn best_of_with_setup<S, T>(
    runs: u32,
    mut setup: impl FnMut() -> S,
    mut f: impl FnMut(S) -> anyhow::Result<T>,
) -> anyhow::Result<(Measure, T)> {
    let mut best: Option<(Measure, T)> = None;
    for _ in 0..runs.max(1) {
        let input = setup();
        let (m, out) = measure(|| f(input))?;
        if best.as_ref().is_none_or(|(b, _)| m.cpu < b.cpu) {
            best = Some((m, out));
        }
    }
    best.context("no run")
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mut rows = Vec::new();
    let tmp_base = a.tmp.clone().unwrap_or_else(std::env::temp_dir);
    // The last generated data set, removed when the benchmark ends.
    let mut _keep_alive = None;

    let data_dir: PathBuf = match &a.data {
        Some(d) => d.clone(),
        None => {
            let cfg = GenConfig {
                seed: a.seed,
                shard_size: a.shard_size,
                ..GenConfig::new(a.customers, a.cycle)
            };
            let g = Generator::new(cfg, Keyring::dev())?;
            let mut last = None;
            for threads in [1usize, 2] {
                eprintln!(
                    "generating {} customers with {threads} thread(s), best of {}…",
                    a.customers, a.runs
                );
                let mut best: Option<(Measure, datagen::Summary)> = None;
                for _ in 0..a.runs.max(1) {
                    drop(last.take()); // the previous run's directory goes (not timed)
                    let dir = tempfile::Builder::new()
                        .prefix("datagen-bench-")
                        .tempdir_in(&tmp_base)?;
                    let cpu0 = process_cpu();
                    let others = Others::start();
                    let t = Instant::now();
                    let s = write_dataset(&g, dir.path(), threads, &|_| {})?;
                    let wall = t.elapsed();
                    let others = others.cpus(wall);
                    let cpu = match (cpu0, process_cpu()) {
                        (Some(a), Some(b)) => b.saturating_sub(a),
                        _ => wall,
                    };
                    if best.as_ref().is_none_or(|(b, _)| wall < b.wall) {
                        best = Some((
                            Measure {
                                wall,
                                cpu,
                                waited: None,
                                others,
                            },
                            s,
                        ));
                    }
                    last = Some(dir);
                }
                let (d, summary) = best.context("no run")?;
                let m = &summary.manifest;
                rows.push(Row {
                    step: format!(
                        "generate {} customers / {} usage lines (`write_dataset`)",
                        thousands(u64::from(m.customers)),
                        thousands(m.usage_lines)
                    ),
                    threads: if threads == 1 { "1" } else { "2" },
                    m: d,
                    per_unit: format!(
                        "{:.2} µs/customer wall, {:.2} µs CPU",
                        per(d.wall, u64::from(m.customers)),
                        per(d.cpu, u64::from(m.customers))
                    ),
                    notes: format!(
                        "{:.0} MB written; best by wall time",
                        summary.total_bytes() as f64 / 1e6
                    ),
                });
            }
            let dir = last.context("no data set was generated")?;
            let path = dir.path().to_path_buf();
            _keep_alive = Some(dir);
            path
        }
    };

    // (b) Load everything first (not timed).
    eprintln!("loading {} …", data_dir.display());
    let t = Instant::now();
    let loaded = load(&data_dir)?;
    eprintln!(
        "loaded {} customers and {} MB of usage in {:.1} s",
        loaded.customers.iter().map(Vec::len).sum::<usize>(),
        loaded.usage.iter().map(|u| u.1.len()).sum::<usize>() / 1_000_000,
        t.elapsed().as_secs_f64()
    );
    let Loaded {
        manifest: m,
        catalog,
        customers,
        usage,
    } = loaded;
    let cycle = m.cycle;
    if let Some(step) = a.only {
        return only(step, a.runs, &catalog, cycle, &customers, &usage);
    }

    let b = bills_for(&customers, cycle);
    eprintln!("parse, best of {}…", a.runs);
    let parse_all = |usage: &[(String, Vec<u8>)]| {
        let mut n = 0usize;
        for (name, bytes) in usage {
            let p = parse_usage(bytes, name, &catalog);
            n += p.records.len() + p.errors.len();
        }
        n
    };
    let (parse_t, lines) = best_of(a.runs, || Ok(parse_all(&usage) as u64))?;
    let (parse_allocs, _) = count_allocations(|| parse_all(&usage));

    eprintln!("settle, best of {}…", a.runs);
    let settle_all = |usage: &[(String, Vec<u8>)]| {
        let (mut bills, mut errors, mut sum) = (0u64, 0usize, Krw::ZERO);
        for ((name, bytes), list) in usage.iter().zip(&customers) {
            let s = settle(&catalog, cycle, list, parse_usage(bytes, name, &catalog), name);
            bills += s.bills.len() as u64;
            errors += s.error_count();
            sum += s.checksum;
        }
        (bills, errors, sum)
    };
    let (settle_t, (bills, errors, settle_sum)) = best_of(a.runs, || Ok(settle_all(&usage)))?;
    let (settle_allocs, _) = count_allocations(|| settle_all(&usage));
    if errors > 0 {
        eprintln!("warning: settlement reported {errors} errors");
    }
    if bills != b {
        bail!("settle made {bills} bills for {b} billable customers");
    }

    // Pre-parsed, pre-grouped input for the arithmetic alone.
    let parsed: Vec<UsageParse<'_>> = usage.iter().map(|(name, b)| parse_usage(b, name, &catalog)).collect();
    let grouped: Vec<Grouped<'_>> = parsed
        .iter()
        .zip(&customers)
        .map(|(p, list)| {
            let mut records = p.records.clone();
            records.sort_by(|x, y| x.customer_id.cmp(y.customer_id).then(x.line.cmp(&y.line)));
            let ranges = group(list, records.clone());
            (records, ranges)
        })
        .collect();
    eprintln!("rate alone, best of {}…", a.runs);
    let rate_all = || -> anyhow::Result<(u64, Krw)> {
        let (mut n, mut sum) = (0u64, Krw::ZERO);
        for ((records, ranges), list) in grouped.iter().zip(&customers) {
            for (ci, range) in ranges {
                if let Some(bill) = rate(&catalog, cycle, &list[*ci], &records[range.clone()])? {
                    n += 1;
                    sum += bill.total;
                }
            }
        }
        Ok((n, sum))
    };
    let (rate_t, (rated, rate_sum)) = best_of(a.runs, rate_all)?;
    let (rate_allocs, _) = count_allocations(rate_all);
    if rated != bills || rate_sum != settle_sum {
        bail!("rate alone gave {rated} bills / {rate_sum} but settle gave {bills} / {settle_sum}");
    }

    // Diagnostics: where settle's time goes beyond parse + rate.
    eprintln!("group alone (sort + walk, no rating), best of {}…", a.runs);
    let (group_t, _) = best_of_with_setup(
        a.runs,
        || parsed.iter().map(|p| p.records.clone()).collect::<Vec<_>>(),
        |all| {
            let mut n = 0usize;
            for (records, list) in all.into_iter().zip(&customers) {
                n += group(list, records).len();
            }
            Ok(n)
        },
    )?;
    drop(grouped);
    drop(parsed);
    let usage_by_customer: Vec<(String, Vec<u8>)> = usage
        .iter()
        .map(|(name, bytes)| (name.clone(), lines_by_customer(bytes)))
        .collect();
    eprintln!("settle on customer-ordered files, best of {}…", a.runs);
    let (sorted_t, (sorted_bills, _, sorted_sum)) = best_of(a.runs, || Ok(settle_all(&usage_by_customer)))?;
    drop(usage_by_customer);
    eprintln!("parse + bucket + rate, best of {}…", a.runs);
    let bucket_all = || -> anyhow::Result<(u64, Krw)> {
        let (mut n, mut sum) = (0u64, Krw::ZERO);
        for ((name, bytes), list) in usage.iter().zip(&customers) {
            let (bn, bs) = settle_bucketed(&catalog, cycle, list, parse_usage(bytes, name, &catalog))?;
            n += bn;
            sum += bs;
        }
        Ok((n, sum))
    };
    let (bucket_t, (bucket_bills, bucket_sum)) = best_of(a.runs, bucket_all)?;
    if (sorted_bills, sorted_sum) != (bills, settle_sum) || (bucket_bills, bucket_sum) != (bills, settle_sum) {
        bail!("the diagnostic variants disagree with settle on bills or totals");
    }

    let ratio = settle_t.cpu.as_secs_f64() / parse_t.cpu.as_secs_f64().max(1e-12);
    rows.push(Row {
        step: format!("parse {} usage lines (`parse_usage`)", thousands(lines)),
        threads: "1",
        m: parse_t,
        per_unit: format!(
            "{:.3} µs/line = {:.2} µs/bill",
            per(parse_t.cpu, lines),
            per(parse_t.cpu, bills)
        ),
        notes: format!(
            "{} shard files; {:.2} allocations/line",
            usage.len(),
            ratio_of(parse_allocs, lines)
        ),
    });
    rows.push(Row {
        step: format!("parse + group + bill (`settle`, {} bills)", thousands(bills)),
        threads: "1",
        m: settle_t,
        per_unit: format!("{:.2} µs/bill", per(settle_t.cpu, bills)),
        notes: format!(
            "**settle / parse = {ratio:.2}×**; {:.1} allocations/bill",
            ratio_of(settle_allocs, bills)
        ),
    });
    rows.push(Row {
        step: "arithmetic alone (`rate`, pre-parsed, pre-grouped)".into(),
        threads: "1",
        m: rate_t,
        per_unit: format!("{:.3} µs/bill", per(rate_t.cpu, bills)),
        notes: format!(
            "same bills and totals as `settle`; {:.1} allocations/bill",
            ratio_of(rate_allocs, bills)
        ),
    });
    rows.push(Row {
        step: "diagnostic: `settle`'s grouping alone (stable sort by id + walk)".into(),
        threads: "1",
        m: group_t,
        per_unit: format!("{:.2} µs/bill", per(group_t.cpu, bills)),
        notes: "records cloned outside the timing".into(),
    });
    rows.push(Row {
        step: "diagnostic: `settle` on the same lines grouped by customer".into(),
        threads: "1",
        m: sorted_t,
        per_unit: format!("{:.2} µs/bill", per(sorted_t.cpu, bills)),
        notes: "the sort finds one run: what sorting costs on shuffled files".into(),
    });
    rows.push(Row {
        step: "diagnostic: `parse_usage` + O(n) bucket by customer + `rate`".into(),
        threads: "1",
        m: bucket_t,
        per_unit: format!("{:.2} µs/bill", per(bucket_t.cpu, bills)),
        notes: "counting sort on the customer's position instead of comparing ids; same totals".into(),
    });

    println!("{}", machine());
    println!();
    println!(
        "| step | threads | CPU time (best of {}) | wall | waited for a CPU | other processes | per unit | notes |",
        a.runs
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.3} s | {:.3} s | {} | {} | {} | {} |",
            r.step,
            r.threads,
            r.m.cpu.as_secs_f64(),
            r.m.wall.as_secs_f64(),
            r.m.waited
                .map_or_else(|| "—".to_owned(), |w| format!("{:.3} s", w.as_secs_f64())),
            r.m.others.map_or_else(|| "—".to_owned(), |o| format!("{o:.2} CPUs")),
            r.per_unit,
            r.notes
        );
    }
    println!();
    println!(
        "settle / parse = {ratio:.2}× (CPU time); per bill: parse {:.2} µs, settle {:.2} µs, rate alone {:.3} µs",
        per(parse_t.cpu, bills),
        per(settle_t.cpu, bills),
        per(rate_t.cpu, bills)
    );
    Ok(())
}

/// One step alone, `runs` times, for a profiler.
fn only(
    step: Step,
    runs: u32,
    catalog: &Catalog,
    cycle: Cycle,
    customers: &[Vec<Customer>],
    usage: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    let parsed: Vec<UsageParse<'_>> = match step {
        Step::Group | Step::Rate => usage.iter().map(|(name, b)| parse_usage(b, name, catalog)).collect(),
        _ => Vec::new(),
    };
    let grouped: Vec<_> = match step {
        Step::Rate => parsed
            .iter()
            .zip(customers)
            .map(|(p, list)| {
                let mut records = p.records.clone();
                records.sort_by(|x, y| x.customer_id.cmp(y.customer_id).then(x.line.cmp(&y.line)));
                let ranges = group(list, records.clone());
                (records, ranges)
            })
            .collect(),
        _ => Vec::new(),
    };
    let t = Instant::now();
    let mut n = 0usize;
    for _ in 0..runs.max(1) {
        match step {
            Step::Parse => {
                for (name, bytes) in usage {
                    n += parse_usage(bytes, name, catalog).records.len();
                }
            }
            Step::Settle => {
                for ((name, bytes), list) in usage.iter().zip(customers) {
                    n += settle(catalog, cycle, list, parse_usage(bytes, name, catalog), name)
                        .bills
                        .len();
                }
            }
            Step::Group => {
                for (p, list) in parsed.iter().zip(customers) {
                    n += group(list, p.records.clone()).len();
                }
            }
            Step::Rate => {
                for ((records, ranges), list) in grouped.iter().zip(customers) {
                    for (ci, range) in ranges {
                        n += usize::from(rate(catalog, cycle, &list[*ci], &records[range.clone()])?.is_some());
                    }
                }
            }
        }
    }
    eprintln!("{n} items in {:.3} s", t.elapsed().as_secs_f64());
    Ok(())
}

/// A shard's records sorted by customer, and each customer's slice of them.
type Grouped<'a> = (Vec<UsageRecord<'a>>, Vec<(usize, std::ops::Range<usize>)>);

struct Loaded {
    manifest: Manifest,
    catalog: Catalog,
    customers: Vec<Vec<Customer>>,
    /// (file name as named in errors, bytes) per shard.
    usage: Vec<(String, Vec<u8>)>,
}

fn load(dir: &Path) -> anyhow::Result<Loaded> {
    let manifest = Manifest::load(dir)?;
    let json = std::fs::read_to_string(dir.join(&manifest.catalog_file))
        .with_context(|| format!("reading {}", manifest.catalog_file))?;
    let catalog = Catalog::from_json(&json, &manifest.catalog_file)?;
    let mut customers = Vec::with_capacity(manifest.shards.len());
    let mut usage = Vec::with_capacity(manifest.shards.len());
    for s in &manifest.shards {
        let (cpath, upath) = manifest.shard_paths(dir, s);
        let (list, errors) = read_customers(&cpath)?;
        if let Some(e) = errors.first() {
            bail!("{e}");
        }
        customers.push(list);
        usage.push((
            s.usage_file.clone(),
            std::fs::read(&upath).with_context(|| format!("reading {}", upath.display()))?,
        ));
    }
    Ok(Loaded {
        manifest,
        catalog,
        customers,
        usage,
    })
}

/// The grouping `settle` does: records sorted by customer, customers sorted
/// by id, one walk pairing each customer with its slice of records.
fn group(customers: &[Customer], mut records: Vec<UsageRecord<'_>>) -> Vec<(usize, std::ops::Range<usize>)> {
    records.sort_by(|a, b| a.customer_id.cmp(b.customer_id).then(a.line.cmp(&b.line)));
    let mut order: Vec<usize> = (0..customers.len()).collect();
    order.sort_by(|&a, &b| customers[a].customer_id.cmp(&customers[b].customer_id));
    let mut out = Vec::with_capacity(order.len());
    let mut i = 0;
    for ci in order {
        let id = customers[ci].customer_id.as_str();
        while i < records.len() && records[i].customer_id < id {
            i += 1;
        }
        let start = i;
        while i < records.len() && records[i].customer_id == id {
            i += 1;
        }
        out.push((ci, start..i));
    }
    out
}

/// Customers with a day of service in the cycle (one bill each).
fn bills_for(customers: &[Vec<Customer>], cycle: Cycle) -> u64 {
    customers.iter().flatten().filter(|c| c.is_billable(cycle)).count() as u64
}

/// The same usage file with its lines grouped by customer (a stable sort
/// on the id column), as an upstream that sorts its output would drop it.
fn lines_by_customer(bytes: &[u8]) -> Vec<u8> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    if lines.len() > 1 {
        let id = |l: &[u8]| -> Vec<u8> { l.split(|&b| b == b',').next().unwrap_or_default().to_vec() };
        lines[1..].sort_by_cached_key(|l| id(l));
    }
    let mut out = Vec::with_capacity(bytes.len());
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// A small multiplicative hasher for short keys (ids), standing in for the
/// default SipHash in the grouping prototype.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
}

/// Prototype of an O(n) grouping for `billing::settle`: each record is
/// mapped to its customer's position (hash of the id, once per record) and
/// placed with a counting sort, which keeps file order within a customer;
/// then `billing::rate` runs per customer in id order, as `settle` does.
/// Returns the number of bills and the sum of their totals. (Unknown
/// customers' records land in a last bucket that is not rated; `settle`
/// would report them.)
fn settle_bucketed(
    catalog: &Catalog,
    cycle: Cycle,
    customers: &[Customer],
    usage: UsageParse<'_>,
) -> anyhow::Result<(u64, Krw)> {
    let mut order: Vec<usize> = (0..customers.len()).collect();
    order.sort_by(|&a, &b| customers[a].customer_id.cmp(&customers[b].customer_id));
    let mut position: HashMap<&str, u32, BuildHasherDefault<IdHasher>> =
        HashMap::with_capacity_and_hasher(customers.len(), BuildHasherDefault::default());
    for (rank, &ci) in order.iter().enumerate() {
        position.insert(customers[ci].customer_id.as_str(), rank as u32);
    }
    let unknown = customers.len() as u32;
    let records = usage.records;
    let pos: Vec<u32> = records
        .iter()
        .map(|r| position.get(r.customer_id).copied().unwrap_or(unknown))
        .collect();
    let mut start = vec![0usize; customers.len() + 2];
    for &p in &pos {
        start[p as usize + 1] += 1;
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    let mut next = start.clone();
    let mut perm = vec![0u32; records.len()];
    for (i, &p) in pos.iter().enumerate() {
        perm[next[p as usize]] = i as u32;
        next[p as usize] += 1;
    }
    let grouped: Vec<UsageRecord<'_>> = perm.iter().map(|&i| records[i as usize]).collect();
    // Bills are kept until the shard is done, as `settle` returns them.
    let mut bills = Vec::with_capacity(customers.len());
    for (rank, &ci) in order.iter().enumerate() {
        if let Some(bill) = rate(catalog, cycle, &customers[ci], &grouped[start[rank]..start[rank + 1]])? {
            bills.push(bill);
        }
    }
    Ok((bills.len() as u64, bills.iter().map(|b| b.total).sum()))
}

fn ratio_of(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}

fn per(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1e6 / (n.max(1) as f64)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "machine: {cpus} logical CPUs, {model}; rustc profile: {}",
        if cfg!(debug_assertions) { "debug" } else { "optimised" }
    )
}
