//! Ingest's CPU work per core, without AWS: the plan's check of a customers file (split,
//! decode, validate, duplicates), the apply step's work per customer (decode again, seal the
//! contact data, build the item, decide), and the check of a usage file; then the AWS
//! requests one million customers cost, from the chunking the plan does.
//!
//! `cargo bench -p ingest` (one thread; figures in lines or customers a second).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use billing::Catalog;
use domain::pii::Keyring;
use domain::{Cycle, QuietWindow};
use ingest::apply::{Decision, chunk_records, decide};
use ingest::event::{Chunk, FileRef};
use ingest::lines::Splitter;
use ingest::planner::{CustomerPlanner, Cut};
use ingest::usage::check_usage;

const CUSTOMERS: u32 = 200_000;
const USAGE_LINES: u32 = 1_000_000;

fn customers_file(n: u32) -> String {
    let mut out = String::with_capacity(n as usize * 330);
    for i in 0..n {
        let line = serde_json::json!({
            "customer_id": format!("C{i:07}"), "shard": i / 1000, "plan": "5G_STANDARD", "addons": ["ROAMING_PASS"],
            "family": null, "contract": {"start": "2025-01-01", "end": "2026-12-31"}, "birthday": "1987-03-14",
            "joined_on": "2020-05-01", "cancelled_on": null, "send_day": 1 + i % 28, "dnd": [0, 11],
            "preferred_channel": "email",
            "contact": {"name": "김민준", "email": format!("user{i:07}@example-mail.co.kr"),
                        "phone": format!("010-{:04}-{:04}", 2000 + i % 7000, i % 10_000)}
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

fn rate(n: u64, secs: f64) -> String {
    format!("{:>10.0}/s", n as f64 / secs)
}

/// A failed step of the bench, named (a bench that cannot run its input says which step, and
/// exits non-zero, instead of panicking).
fn failed<E: std::fmt::Debug>(step: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{step}: {e:?}")
}

fn main() -> Result<(), String> {
    let quiet = QuietWindow::default_korea();
    let file = customers_file(CUSTOMERS);
    println!(
        "customers file: {CUSTOMERS} lines, {:.1} MB ({} bytes a line)",
        file.len() as f64 / 1e6,
        file.len() / CUSTOMERS as usize
    );

    // Plan: split in 1 MiB pieces (as S3 hands the body over), check every line.
    let stored: HashMap<Box<str>, u32> = HashMap::new();
    let t = Instant::now();
    let mut planner = CustomerPlanner::new(quiet, &stored, Cut::default());
    let mut s = Splitter::new(0, 1);
    for piece in file.as_bytes().chunks(1 << 20) {
        s.push(piece, |l| planner.line(&l)).map_err(failed("UTF-8"))?;
    }
    s.finish(|l| planner.line(&l)).map_err(failed("UTF-8"))?;
    let planned = planner.finish();
    let plan_secs = t.elapsed().as_secs_f64();
    if planned.accepted != u64::from(CUSTOMERS) {
        return Err(format!("plan accepted {} of {CUSTOMERS} lines", planned.accepted));
    }
    println!(
        "plan  (split, decode, validate, duplicates): {} customers",
        rate(CUSTOMERS.into(), plan_secs)
    );

    // Apply: every chunk decoded again, sealed, turned into its item, decided (new customers).
    let keys = Keyring::dev();
    let open = |c: &domain::Customer| c.contact.open(&keys, &c.customer_id).ok();
    let at: chrono::DateTime<chrono::Utc> = "2026-11-20T00:00:00Z".parse().map_err(failed("time"))?;
    let file_ref = FileRef {
        id: "bench".into(),
        bucket: "b".into(),
        key: "incoming/customers/bench.jsonl".into(),
        etag: "\"e\"".into(),
        size: file.len() as u64,
        uploaded_at: at,
        execution: None,
        started_at: at,
    };
    let t = Instant::now();
    let mut written = 0u64;
    for c in &planned.chunks {
        let chunk = Chunk {
            file: file_ref.clone(),
            index: 0,
            start: c.start,
            end: c.end,
            first_line: c.first_line,
            skip: Vec::new(),
        };
        let bytes = &file.as_bytes()[c.start as usize..c.end as usize];
        for up in chunk_records(bytes, &chunk, quiet).map_err(failed("planned lines decode"))? {
            if let Decision::Write { item, .. } =
                decide(&up, up.seal(&keys), None, at, &open).map_err(failed("item"))?
            {
                written += 1;
                black_box(item);
            }
        }
    }
    let apply_secs = t.elapsed().as_secs_f64();
    println!(
        "apply (decode, seal, item, decide):          {} customers",
        rate(written, apply_secs)
    );

    // Re-upload: every customer compared with its stored item (unchanged).
    let stored_items: Vec<_> = file
        .lines()
        .take(50_000)
        .map(|l| {
            let up = ingest::records::check_customer_line(l.as_bytes(), quiet).map_err(failed("valid"))?;
            let item = ingest::apply::to_item(&up.seal(&keys)).map_err(failed("item"))?;
            Ok((up, item))
        })
        .collect::<Result<_, String>>()?;
    let t = Instant::now();
    let mut unchanged = 0u64;
    for (up, item) in &stored_items {
        if let Decision::Unchanged { .. } =
            decide(up, up.seal(&keys), Some(item), at, &open).map_err(failed("decide"))?
        {
            unchanged += 1;
        }
    }
    let same_secs = t.elapsed().as_secs_f64();
    if unchanged != stored_items.len() as u64 {
        return Err(format!(
            "{unchanged} of {} stored customers found unchanged",
            stored_items.len()
        ));
    }
    println!(
        "apply again (seal, compare with stored):     {} customers",
        rate(unchanged, same_secs)
    );

    // Usage: one large file checked against the catalog and a shard's customers.
    let catalog = Catalog::default_catalog().map_err(failed("catalog"))?;
    let cycle: Cycle = "2026-11".parse().map_err(failed("cycle"))?;
    let in_shard: HashMap<String, bool> = (0..1000).map(|i| (format!("C{i:07}"), true)).collect();
    let mut csv = String::from("customer_id,product,quantity,amount\n");
    for i in 0..USAGE_LINES {
        match i % 4 {
            0 => csv.push_str(&format!("C{:07},DATA,{},\n", i % 1000, 1000 + i % 5000)),
            1 => csv.push_str(&format!("C{:07},VOICE,{},\n", i % 1000, 60 + i % 600)),
            2 => csv.push_str(&format!("C{:07},SMS,{},\n", i % 1000, 1 + i % 10)),
            _ => csv.push_str(&format!("C{:07},MICROPAY,1,{}\n", i % 1000, 1000 + i % 9000)),
        }
    }
    let t = Instant::now();
    let checked = check_usage(csv.as_bytes(), &catalog, cycle, 0, &in_shard).map_err(failed("header"))?;
    let usage_secs = t.elapsed().as_secs_f64();
    if checked.rejections.count != 0 {
        return Err(format!(
            "usage rejected {} lines: {:?}",
            checked.rejections.count,
            checked.rejections.listed.first()
        ));
    }
    println!(
        "usage (parse, rate-check, customers, write): {} lines",
        rate(USAGE_LINES.into(), usage_secs)
    );

    // Requests per million customers, from the plan's chunking (5,000 lines a chunk).
    let million = 1_000_000u64;
    let chunks = million.div_ceil(Cut::default().max_lines);
    let shards = million / 1000;
    let gets = million.div_ceil(100);
    let writes = million.div_ceil(25);
    println!("requests per million customers (shards of 1,000, chunks of 5,000 lines):");
    println!(
        "  plan:   1 GetObject (streamed), Scan of the key index ~{} pages, 2 PutObject",
        million * 40 / (1 << 20) + 8
    );
    println!(
        "  apply:  {chunks} ranged GetObject, {gets} BatchGetItem, {writes} BatchWriteItem (first load; 0 when unchanged)"
    );
    println!(
        "  finish: {shards} Query (COUNT, one page each), shard directory GetObject + PutObject, 2 report PutObject"
    );
    println!(
        "  Step Functions: {} state transitions (4 per chunk's child execution + 6), {} Lambda invocations",
        chunks * 4 + 6,
        chunks + 2
    );
    Ok(())
}
