//! The month job's delivery half under a fault profile: 120 `READY`
//! deliveries due on 15 December, the day's twelve slots run as the month job
//! runs them (dispatch at each slot's start, the senders draining the queues
//! on the virtual clock), the profile's faults switched on, then the slots
//! after it that dispatch's re-checks need. Every delivery ends sent, dead or
//! unconfirmed, or waits in the `Due` index; no (delivery, channel, round) is
//! accepted twice; the faults fired.

use domain::dispatch::SlotRun;
use domain::{Cycle, QuietWindow, SlotSet};
use local_aws::Emulator;
use local_run::deliver::{Options, deliver};
use local_run::faults::FaultProfile;
use local_run::seed::seed_ready;

const N: u32 = 120;

async fn run(profile: FaultProfile) -> local_run::deliver::Delivery {
    let emulator = Emulator::shared().await.unwrap();
    let config = emulator.sdk_config().await;
    let prefix = local_aws::unique_prefix(&format!("month-{}", profile.name()));
    let resources = local_aws::provision(&config, &prefix).await.unwrap();
    // Due on the 15th, one in five preferring SMS, no DND.
    let seeded = seed_ready(&config, &resources, N, 60, 5, SlotSet::EMPTY).await.unwrap();
    let cycle: Cycle = seeded.cycle;
    let day: Vec<SlotRun> = SlotRun::issue_month(cycle).skip(14 * 12).take(12).collect();
    assert_eq!(day[0].date.to_string(), "2026-12-15");
    let options = Options {
        quiet: QuietWindow::default_korea(),
        provider_latency_ms: 0,
        profile,
        max_tail_slots: 12,
        sender_workers: local_run::deliver::SENDER_WORKERS,
        // Every accepted message's delivery receipt goes through the delivery-events function
        // under the same faults; no bounces (the seeded deliveries have no customers to suppress).
        evidence: providers::EvidenceRates::default(),
        email_quota_24h: None,
    };
    deliver(emulator, &config, &resources, day, u64::from(N), &options, &|_, _| {})
        .await
        .unwrap()
}

fn assert_nothing_lost_nothing_twice(d: &local_run::deliver::Delivery) {
    let o = &d.outcome;
    assert_eq!(
        o.sent_email + o.sent_sms + o.dead + o.unconfirmed + o.waiting,
        u64::from(N),
        "every delivery is counted once: {o:?}"
    );
    assert_eq!(o.duplicates, 0, "no (delivery, channel, round) accepted twice: {o:?}");
    assert_eq!(
        o.waiting_in_due_index, o.waiting,
        "whatever waits, waits where dispatch finds it: {o:?}"
    );
    assert!(o.holds(), "{o:?}");
    assert!(
        o.sent_email > 0 && o.sent_sms > 0,
        "both channels carried invoices: {o:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_months_delivery_under_lost_answers_loses_nothing_and_sends_nothing_twice() {
    let d = run(FaultProfile::LostAnswers).await;
    assert_nothing_lost_nothing_twice(&d);
    let lost = d.faults.fired.get("dynamodb/lose-answer").cloned().unwrap_or_default();
    assert!(lost.values().sum::<u64>() > 0, "answers were lost: {:?}", d.faults);
    // A lost answer retried by the SDK is recognised as ours: nothing is left to an operator.
    assert_eq!(d.outcome.unconfirmed, 0, "{:?}", d.outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_months_delivery_with_an_unaskable_provider_that_hangs_never_sends_twice() {
    let d = run(FaultProfile::ProviderHangUnaskable).await;
    assert_nothing_lost_nothing_twice(&d);
    let r = &d.sends.report;
    assert!(
        r.failed + r.unconfirmed > 0,
        "some provider calls hung past the timeout: {r:?}"
    );
}
