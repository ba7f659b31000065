//! Pacing to the provider's send rate, against the emulator: four consumers
//! (four sender instances, each with its own mock provider and pacer) sending
//! a few hundred emails to a mock that enforces its own quota of `N` per
//! second, shared through DynamoDB as SES shares an account's.
//!
//! * Paced: every delivery sent, none failed, none fallen back, no attempt
//!   counted beyond the one that sent it, and the send log's timestamps never
//!   show more than `N` sends in one second.
//! * Unpaced: the mock throttles; still every delivery sent, with no attempt
//!   counted for a throttle, no fallback and nothing `DEAD`.

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::pacing::{Run, email_attempts, run, sends_per_second};

/// The mock's quota and the pacer's rate, emails per second.
const N: u64 = 10;
/// Deliveries sent in each test.
const DELIVERIES: u32 = 200;
/// Sender instances polling the email queue at once.
const CONSUMERS: usize = 4;
/// The longest a drain may take (the paced one needs DELIVERIES / N = 20 s of sending).
const LIMIT: Duration = Duration::from_secs(120);

/// Every delivery `SENT_EMAIL` after one counted attempt each (no failures
/// were injected: a throttle that counted would show as a second), none failed
/// or fallen back.
async fn assert_all_sent_once(run: &Run) {
    assert!(run.drained, "the queue drained: {:?}", run.stats);
    let r = &run.stats.report;
    let states = run.stack.states().await;
    assert_eq!(
        states.get("SENT_EMAIL").copied(),
        Some(u64::from(DELIVERIES)),
        "{states:?} {r:?}"
    );
    assert_eq!((r.failed, r.retried, r.fallback, r.dead), (0, 0, 0, 0), "{r:?}");
    assert_eq!(r.sent, u64::from(DELIVERIES), "{r:?}");
    assert_eq!(
        email_attempts(&run.stack).await,
        BTreeMap::from([(1, u64::from(DELIVERIES))]),
        "one counted attempt each: throttles are not attempts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_paced_senders_stay_within_the_send_rate() {
    let run = run("pace-on", DELIVERIES, CONSUMERS, N, true, LIMIT).await;
    assert_all_sent_once(&run).await;
    let per_second = sends_per_second(&run.stack).await;
    let busiest = per_second.values().max().copied().unwrap_or(0);
    eprintln!(
        "paced at {N}/s: {} sends in {:.1} s over {} seconds of the log, busiest second {busiest}, throttled {}",
        per_second.values().sum::<u64>(),
        run.took.as_secs_f64(),
        per_second.len(),
        run.stats.report.throttled
    );
    assert!(
        per_second.values().all(|n| *n <= N),
        "more than {N} sends in a second: {per_second:?}"
    );
    // The pacer spreads each second's tokens over its first 800 ms, so the mock (same clock,
    // no latency) should not have to throttle; a rare one after a scheduling stall of more
    // than 200 ms on this shared machine is tolerated, and counted as no attempt (above).
    assert!(run.stats.report.throttled <= 3, "{:?}", run.stats.report);
    // The rate is the limit: the sends took at least DELIVERIES / N seconds.
    assert!(per_second.len() as u64 >= u64::from(DELIVERIES) / N, "{per_second:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaced_senders_are_throttled_and_still_send_everything_once() {
    let run = run("pace-off", DELIVERIES, CONSUMERS, N, false, LIMIT).await;
    let per_second = sends_per_second(&run.stack).await;
    eprintln!(
        "unpaced, mock at {N}/s: {} sends in {:.1} s, busiest second {:?}, throttled {}",
        per_second.values().sum::<u64>(),
        run.took.as_secs_f64(),
        per_second.values().max(),
        run.stats.report.throttled
    );
    assert!(
        run.stats.report.throttled > 0,
        "the mock throttled: {:?}",
        run.stats.report
    );
    assert_all_sent_once(&run).await;
    assert!(
        per_second.values().all(|n| *n <= N),
        "the mock lets no more than {N} a second through: {per_second:?}"
    );
}
