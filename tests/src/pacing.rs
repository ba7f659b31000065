//! Pacing fixtures: several email senders (each its own instance: its own mock
//! provider and pacer) against a mock that enforces its own send rate, and
//! what the send log and the deliveries show afterwards. Used by
//! tests/tests/pacing.rs and the pacing bench (tests/benches/pacing.rs).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{Channel, SlotSet};
use local_run::seed::seed_queued;
use local_run::send::{PollStats, Poller, VirtualClock, drain};

use crate::senders::{Stack, mid_morning, stack};

/// `consumers` email senders of `stack` with the mock's quota at `rate` per
/// second (and, with `paced`, the pacer at the same rate); no injected
/// failures, no provider latency.
pub async fn consumers(stack: &Stack, clock: &VirtualClock, consumers: usize, rate: u64, paced: bool) -> Vec<Poller> {
    let rate = rate.to_string();
    let mut extra = vec![("MOCK_MAX_SEND_RATE", rate.as_str()), ("SEND_CONCURRENCY", "10")];
    if !paced {
        extra.push(("PACING_TABLE", ""));
    }
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let mut out = Vec::with_capacity(consumers);
    for _ in 0..consumers {
        let d = stack.deps_with(Channel::Email, 0.0, clock, &extra).await;
        assert_eq!(d.pacer.is_some(), paced, "paced: {paced}");
        let mut p = Poller::new(&stack.config, Arc::new(d));
        p.bodies = Some(bodies.clone());
        out.push(p);
    }
    out
}

/// What one run did.
pub struct Run {
    pub stack: Stack,
    pub stats: PollStats,
    /// From the first poll to the drained queue.
    pub took: Duration,
    pub drained: bool,
}

/// Seeds `deliveries` queued emails in a fresh stack named `name` and sends
/// them with `n` consumers (one poller each) at `rate`, for at most `limit`.
pub async fn run(name: &str, deliveries: u32, n: usize, rate: u64, paced: bool, limit: Duration) -> Run {
    let stack = stack(name).await;
    seed_queued(&stack.config, &stack.resources, deliveries, 120, 0, SlotSet::EMPTY)
        .await
        .unwrap();
    let clock = VirtualClock::at(mid_morning());
    let pollers = consumers(&stack, &clock, n, rate, paced).await;
    let started = std::time::Instant::now();
    let (stats, drained) = drain(&pollers, 1, limit).await.unwrap();
    Run {
        took: started.elapsed(),
        stack,
        stats,
        drained,
    }
}

/// Every item of `table`, page by page (bounded).
async fn scan(stack: &Stack, table: &str) -> Vec<adapters::dynamo::Item> {
    let ddb = adapters::dynamodb_client(&stack.config);
    let mut out = Vec::new();
    let mut start = None;
    for _ in 0..10_000 {
        let page = ddb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        out.extend(page.items().iter().cloned());
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            break;
        }
    }
    out
}

/// The accepted email sends of the send log, by second (UTC epoch) of their
/// timestamps.
pub async fn sends_per_second(stack: &Stack) -> BTreeMap<i64, u64> {
    let mut per_second = BTreeMap::new();
    for item in scan(stack, &stack.var("MOCK_SENDS_TABLE")).await {
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        if text("channel") != "email" {
            continue;
        }
        let at = DateTime::parse_from_rfc3339(&text("accepted_at"))
            .unwrap()
            .with_timezone(&Utc);
        *per_second.entry(at.timestamp()).or_insert(0) += 1;
    }
    per_second
}

/// How many deliveries have each count of email attempts on their item.
pub async fn email_attempts(stack: &Stack) -> BTreeMap<u64, u64> {
    let mut by_count = BTreeMap::new();
    for item in scan(stack, &stack.var("DELIVERIES_TABLE")).await {
        if !item.contains_key("customer_id") {
            continue;
        }
        let n = item
            .get("attempts_email")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        *by_count.entry(n).or_insert(0) += 1;
    }
    by_count
}
