//! How fast the console shows a month of 10,000 deliveries: admin-api-local on the local
//! stack, `billingctl console` in front of it, and headless Chromium loading each page five
//! times (a full load from a blank page each time).
//!
//! ```sh
//! source scripts/lib.sh && use_emulator && cargo bench -p billingctl --bench console
//! ```
//!
//! A page's time runs from the navigation's start to the moment the page says its data is
//! shown (`document.body.dataset.ready`, observed by a script the browser runs before the
//! page's own); the Customer row adds the search of one customer, from the click to its
//! delivery's state. The API rows are the page's calls through the console to the admin API
//! (the browser's resource timing: request start to response end). "funnel (first of a
//! console)" is a fresh console's Funnel page opened right after its login's Month page: the
//! funnel's first read, which the Month page started.
//!
//! The month is seeded (`local_run::seed::seed_ready`: 10,000 `READY` deliveries in shards of
//! 1,000 with their customers and a settled cycle record, cycle 2026-11): settling and rendering
//! 10,000 customers on the emulator takes longer than the five minutes a benchmark may take.
//! `CONSOLE_BENCH_SETTLE=1` settles a generated month of 10,000 instead.

#[allow(dead_code)]
#[path = "../tests/console/month.rs"]
mod month;
#[allow(dead_code)]
#[path = "../tests/console/webdriver.rs"]
mod webdriver;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use month::{ADMIN_KEY, Console, LocalMonth};
use serde_json::json;
use webdriver::Browser;

const DELIVERIES: u32 = 10_000;
const SHARD_SIZE: u32 = 1_000;
const LOADS: usize = 5;
const PAGES: [&str; 5] = ["month", "funnel", "customer", "failures", "settings"];
const LIMIT: Duration = Duration::from_secs(60);

/// Records, for each value `document.body.dataset.ready` takes, when it first took it
/// (`performance.now()`, from the navigation's start), and the search's time.
const OBSERVER: &str = "window.__marks = {};
new MutationObserver(() => {
  const b = document.body; if (!b) return;
  const r = b.dataset.ready;
  if (r && !(r in window.__marks)) window.__marks[r] = performance.now();
  const d = document.getElementById('delivery-state');
  if (window.__searchAt !== undefined && d && d.dataset.state && window.__marks.search === undefined)
    window.__marks.search = performance.now() - window.__searchAt;
}).observe(document, {subtree: true, childList: true, attributes: true});";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a runtime");
    if let Err(e) = rt.block_on(bench()) {
        eprintln!("console bench: {e:#}");
        std::process::exit(1);
    }
}

/// Median and maximum of `v` (milliseconds).
fn stats(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let median = if v.is_empty() { 0.0 } else { v[v.len() / 2] };
    (median, v.last().copied().unwrap_or(0.0))
}

/// A call's path as a pattern: the cycle and customer ids replaced, no query.
fn pattern(url: &str, cycle: &str) -> String {
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    path.split('/')
        .map(|seg| {
            let b = seg.as_bytes();
            if seg == cycle {
                "{cycle}"
            } else if b.len() == 8 && b[0] == b'C' && b[1..].iter().all(u8::is_ascii_digit) {
                "{customer}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn bench() -> anyhow::Result<()> {
    let t = Instant::now();
    let m = if std::env::var("CONSOLE_BENCH_SETTLE").is_ok_and(|v| v == "1") {
        LocalMonth::settled("console-bench", DELIVERIES, SHARD_SIZE, Duration::from_secs(3600)).await?
    } else {
        LocalMonth::seeded("console-bench", DELIVERIES, SHARD_SIZE).await?
    };
    let cycle = m.cycle.to_string();
    println!(
        "month: {} deliveries in {} shards of cycle {cycle} [{:.1?}]",
        m.deliveries,
        m.shards,
        t.elapsed()
    );
    let api = m.admin_api().await?;
    let console = Console::start(&api.url, m.cycle, ADMIN_KEY).await?;
    let b = Browser::start().await?;
    b.set_window_size(1280, 800).await?;
    b.on_new_document(OBSERVER).await?;
    b.navigate(&console.login_url).await?;
    let customer = format!("C{:07}", DELIVERIES / 2 + 17);

    let mut pages: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut calls: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    // One warm-up load of each page (the admin API's cold start, the browser's cache of the
    // embedded files), not counted.
    for round in 0..=LOADS {
        for page in PAGES {
            b.navigate("about:blank").await?;
            b.navigate(&format!("{}/#{page}", console.origin)).await?;
            let at = b
                .wait_js(
                    &format!("the {page} page's data"),
                    LIMIT,
                    "return window.__marks && window.__marks[arguments[0]];",
                    vec![json!(page)],
                )
                .await?;
            let mut searched = None;
            if page == "customer" {
                b.execute(
                    "const i = document.getElementById('customer-search'); i.value = arguments[0];
                     i.dispatchEvent(new Event('input', {bubbles: true}));
                     window.__searchAt = performance.now();
                     document.getElementById('customer-search-button').click();",
                    vec![json!(customer)],
                )
                .await?;
                searched = Some(
                    b.wait_js(
                        "the customer's delivery",
                        LIMIT,
                        "return window.__marks && window.__marks.search;",
                        vec![],
                    )
                    .await?,
                );
            }
            if round == 0 {
                continue;
            }
            pages
                .entry(page.to_owned())
                .or_default()
                .push(at.as_f64().unwrap_or(0.0));
            if let Some(s) = searched {
                pages
                    .entry("customer (search)".to_owned())
                    .or_default()
                    .push(s.as_f64().unwrap_or(0.0));
            }
            let entries = b
                .execute(
                    "return performance.getEntriesByType('resource')
                       .filter(e => e.name.includes('/api/') || e.name.includes('/console/'))
                       .map(e => [e.name, e.responseEnd - e.startTime]);",
                    vec![],
                )
                .await?;
            for e in entries.as_array().into_iter().flatten() {
                let (Some(name), Some(ms)) = (e[0].as_str(), e[1].as_f64()) else {
                    continue;
                };
                calls.entry(pattern(name, &cycle)).or_default().push(ms);
            }
        }
    }
    // The first Funnel of a console: a fresh console, its login (the Month page, which reads
    // the funnel ahead), then the Funnel page at once. Later Funnel pages of a console show
    // the funnel it keeps and read it again behind the page.
    for _ in 0..3 {
        let fresh = Console::start(&api.url, m.cycle, ADMIN_KEY).await?;
        b.navigate("about:blank").await?;
        b.navigate(&fresh.login_url).await?;
        b.wait_js(
            "the fresh console's month page",
            LIMIT,
            "return window.__marks && window.__marks.month;",
            vec![],
        )
        .await?;
        b.navigate(&format!("{}/#funnel", fresh.origin)).await?;
        let at = b
            .wait_js(
                "the fresh console's funnel page",
                LIMIT,
                "return window.__marks && window.__marks.funnel;",
                vec![],
            )
            .await?;
        pages
            .entry("funnel (first of a console)".to_owned())
            .or_default()
            .push(at.as_f64().unwrap_or(0.0));
    }
    b.quit().await;

    println!();
    println!(
        "{:<34} {:>5} {:>10} {:>8}",
        "page (navigation → data shown)", "loads", "median ms", "max ms"
    );
    for (page, v) in &mut pages {
        let n = v.len();
        let (median, max) = stats(v);
        println!("{page:<34} {n:>5} {median:>10.0} {max:>8.0}");
    }
    println!();
    println!(
        "{:<48} {:>5} {:>10} {:>8}",
        "call (through the console)", "calls", "median ms", "max ms"
    );
    for (call, v) in &mut calls {
        let n = v.len();
        let (median, max) = stats(v);
        println!("{call:<48} {n:>5} {median:>10.0} {max:>8.0}");
    }
    Ok(())
}
