//! `admin` bench: the operators' reads and one command against a stack holding a month of
//! deliveries, with the real handler (in process) and the local emulator; what each asks AWS
//! for, and what the funnel (the widest read) projects to for a million deliveries on AWS.
//!
//! ```sh
//! cargo bench -p admin-local --bench admin -- --deliveries 20000
//! ```
//!
//! The emulator answers requests one at a time, so its times say how fast the emulator is; the
//! request counts say what AWS would be asked, and the projection applies AWS's figures to them
//! (its assumptions are flags, printed with the result).

use std::time::Instant;

use admin_api::{Caller, Deps, Request, serve};
use chrono::Utc;
use domain::Cycle;
use serde_json::{Value, json};

struct Args {
    deliveries: u32,
    shard_size: u32,
    /// Times each read is repeated (the median is reported).
    repeat: usize,
    /// Projection: deliveries in the month.
    project: f64,
    /// Projection: in-region latency of a 1 MB Query page (ms).
    aws_page_ms: f64,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        deliveries: 20_000,
        shard_size: 1_000,
        repeat: 3,
        project: 1_000_000.0,
        aws_page_ms: 150.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--deliveries" => a.deliveries = value()?.parse()?,
            "--shard-size" => a.shard_size = value()?.parse()?,
            "--repeat" => a.repeat = value()?.parse()?,
            "--project" => a.project = value()?.parse()?,
            "--aws-page-ms" => a.aws_page_ms = value()?.parse()?,
            // What `cargo bench` passes to every bench target.
            "--bench" => {}
            other => {
                anyhow::bail!("unknown flag {other} (--deliveries, --shard-size, --repeat, --project, --aws-page-ms)")
            }
        }
    }
    anyhow::ensure!(
        a.deliveries > 0 && a.shard_size > 0 && a.repeat > 0,
        "positive numbers only"
    );
    Ok(a)
}

fn request(method: &str, path: &str, body: Option<Value>) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        query: Default::default(),
        body: body.map(|b| b.to_string()),
        caller: Some(Caller {
            arn: "arn:aws:sts::123456789012:assumed-role/billing-admin/bench".into(),
        }),
        request_id: "bench".into(),
    }
}

/// The customer records of the deliveries the bench reads and commands (fictional contact
/// data, sealed with the stack's keyring: the one the API read from the stack's secret).
async fn customers(deps: &Deps, numbers: &[u32], shard_size: u32) -> anyhow::Result<()> {
    use chrono::NaiveDate;
    use domain::customer::{Contact, Customer};
    let keys = deps.keys.current().await;
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| anyhow::anyhow!("date"));
    let mut out = Vec::new();
    for &i in numbers {
        let id = domain::CustomerId::new(format!("C{i:07}")).map_err(|e| anyhow::anyhow!(e.reason))?;
        out.push(Customer {
            shard: i / shard_size,
            plan: "5G-STANDARD".into(),
            addons: Vec::new(),
            family: None,
            contract: None,
            soldier: None,
            welfare: None,
            premium_contract: None,
            wired: vec![],
            birthday: date(1990, 1, 1)?,
            joined_on: date(2020, 1, 1)?,
            cancelled_on: None,
            send_day: domain::SendDay::new(15).map_err(anyhow::Error::msg)?,
            dnd: domain::SlotSet::EMPTY,
            preferred_channel: domain::Channel::Email,
            contact: Contact::seal(&keys, &id, "벤치", &format!("bench{i}@example.net"), "010-0000-0000"),
            customer_id: id,
        });
    }
    deps.customers.put_all(&out).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let cycle: Cycle = "2026-11".parse()?;
    let stack = local_run::bench::month_stack("admin-bench", cycle, a.deliveries, a.shard_size).await?;
    let (emulator, config, prefix, resources) = (stack.emulator, &stack.config, &stack.prefix, &stack.resources);
    let size = stack.item_size;
    let now = Utc::now();
    println!(
        "loaded     {} READY deliveries in {} shards (items up to {size} B) [{:.1?}]",
        a.deliveries,
        a.deliveries.div_ceil(a.shard_size),
        stack.load_time
    );
    let env = local_run::settle::local_function_env(resources, "AdminApiFunction");
    let deps = Deps::load(config, &env).await?;
    customers(&deps, &[7, 11], a.shard_size).await?;

    let at = (now + chrono::Duration::days(3))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let calls: Vec<(&str, Request)> = vec![
        ("GET /cycles/{cycle}", request("GET", "/cycles/2026-11", None)),
        (
            "GET /cycles/{cycle}/funnel",
            request("GET", "/cycles/2026-11/funnel", None),
        ),
        (
            "GET /cycles/{cycle}/deliveries/{customer}",
            request("GET", "/cycles/2026-11/deliveries/C0000007", None),
        ),
        ("GET /settings", request("GET", "/settings", None)),
    ];
    let mut funnel_requests = 0u64;
    for (name, req) in &calls {
        let mut times = Vec::new();
        let mut requests = 0;
        for _ in 0..a.repeat {
            let before = emulator.request_counts(prefix).await?;
            let t = Instant::now();
            let r = serve(&deps, req, Utc::now()).await;
            times.push(t.elapsed());
            anyhow::ensure!(r.status == 200, "{name}: {} {}", r.status, r.body);
            if name.contains("funnel") {
                anyhow::ensure!(
                    r.body["deliveries"] == u64::from(a.deliveries),
                    "the funnel counted {} of {}",
                    r.body["deliveries"],
                    a.deliveries
                );
            }
            let after = emulator.request_counts(prefix).await?;
            requests = after
                .iter()
                .map(|(k, v)| v.saturating_sub(before.get(k).copied().unwrap_or(0)))
                .sum::<u64>();
        }
        times.sort();
        let median = times[times.len() / 2];
        if name.contains("funnel") {
            funnel_requests = requests;
        }
        println!(
            "{name:<44} {median:>10.1?} median of {}  {requests:>6} requests",
            a.repeat
        );
    }

    // One command, applied (its effect and record in one transaction), then replayed.
    let schedule = request(
        "POST",
        "/cycles/2026-11/deliveries/C0000011/schedule",
        Some(json!({"command_id": "bench-1", "reason": "bench", "available_at": at})),
    );
    for what in ["applied", "replayed"] {
        let before = emulator.request_counts(prefix).await?;
        let t = Instant::now();
        let r = serve(&deps, &schedule, Utc::now()).await;
        let took = t.elapsed();
        anyhow::ensure!(r.status == 200, "schedule: {} {}", r.status, r.body);
        anyhow::ensure!((r.body["replayed"] == true) == (what == "replayed"), "{}", r.body);
        let after = emulator.request_counts(prefix).await?;
        let requests = after
            .iter()
            .map(|(k, v)| v.saturating_sub(before.get(k).copied().unwrap_or(0)))
            .sum::<u64>();
        println!(
            "{:<44} {took:>10.1?}                {requests:>6} requests",
            format!("POST …/schedule, {what}")
        );
    }

    // The funnel on AWS: one projected Query per shard (pages of 1 MB of items read, whatever
    // the projection), 16 shards at a time; eventually consistent reads cost half a read unit
    // per 4 KB read.
    let shards_projected = (a.project / f64::from(a.shard_size)).ceil();
    let bytes_per_shard = size as f64 * f64::from(a.shard_size);
    let pages_per_shard = (bytes_per_shard / 1_048_576.0).ceil().max(1.0);
    let pages = shards_projected * pages_per_shard;
    let read_units = a.project * size as f64 / 4096.0 * 0.5;
    let secs =
        (shards_projected / admin_api::FUNNEL_CONCURRENCY as f64).ceil() * pages_per_shard * a.aws_page_ms / 1000.0;
    println!(
        "projection the funnel of {:.0} deliveries on AWS: {pages:.0} Query pages ({} here for {}), {read_units:.0} read units \
         (${:.3} a call at $0.125 per million on demand), about {secs:.1} s ({} shards at once, {} ms a 1 MB page)",
        a.project,
        funnel_requests.saturating_sub(1),
        a.deliveries,
        read_units * 0.125 / 1e6,
        admin_api::FUNNEL_CONCURRENCY,
        a.aws_page_ms
    );
    Ok(())
}
