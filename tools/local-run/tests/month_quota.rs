//! The month job's delivery half under a 24-hour email quota below the busiest day's email:
//! 120 `READY` deliveries due on 15 December (one in five preferring SMS, so 96 emails that
//! day), a quota of 40 emails in 24 hours, and the slots of four days run as the month job
//! runs them (dispatch at each slot's start, the senders and the delivery-events function
//! draining their queues on the virtual clock). Every invoice goes out, each in an allowed
//! slot, with no throttled send, never more than the quota's emails in any 24 hours, and the
//! plan — the email carried to later slots — in the run's report.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use domain::dispatch::SlotRun;
use domain::{Cycle, QuietWindow, SlotSet};
use local_aws::Emulator;
use local_run::deliver::{Options, deliver};
use local_run::faults::FaultProfile;
use local_run::seed::{seed_ready, sends};

const N: u32 = 120;
const QUOTA: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_below_the_busiest_day_spreads_the_email_over_the_following_slots_and_sends_everything() {
    let emulator = Emulator::shared().await.unwrap();
    let config = emulator.sdk_config().await;
    let prefix = local_aws::unique_prefix("month-quota");
    let resources = local_aws::provision(&config, &prefix).await.unwrap();
    // Due on the 15th, one in five preferring SMS; DND on slot 5 (10:00-12:00) for everyone.
    let dnd = SlotSet::EMPTY.with(domain::Slot::new(5).unwrap());
    let seeded = seed_ready(&config, &resources, N, 60, 5, dnd).await.unwrap();
    let cycle: Cycle = seeded.cycle;
    let days: Vec<SlotRun> = SlotRun::issue_month(cycle).skip(14 * 12).take(4 * 12).collect();
    assert_eq!(days[0].date.to_string(), "2026-12-15");
    let quiet = QuietWindow::default_korea();
    let options = Options {
        quiet,
        provider_latency_ms: 0,
        profile: FaultProfile::None,
        max_tail_slots: 12,
        sender_workers: local_run::deliver::SENDER_WORKERS,
        evidence: providers::EvidenceRates::default(),
        email_quota_24h: Some(QUOTA),
    };
    let d = deliver(emulator, &config, &resources, days, u64::from(N), &options, &|_, _| {})
        .await
        .unwrap();
    let o = &d.outcome;
    assert!(o.reconciled(), "every invoice sent, once: {o:?}");
    assert_eq!(o.sent_email + o.sent_sms, u64::from(N), "{o:?}");
    assert!(o.sent_email > QUOTA, "more email than one day's quota went out: {o:?}");
    assert_eq!(o.forbidden_slot_sends, 0, "{o:?}");
    assert_eq!(
        d.sends.report.throttled, 0,
        "no send was throttled: {:?}",
        d.sends.report
    );
    assert_eq!(
        d.sends.report.fallback, 0,
        "no email fell back to SMS: {:?}",
        d.sends.report
    );

    // Never more than the quota's emails in any 24 hours of sends.
    let table = resources.env().get("DELIVERIES_TABLE").cloned().unwrap();
    let email: Vec<DateTime<Utc>> = sends(&config, &table)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.state == "SENT_EMAIL")
        .map(|s| s.at)
        .collect();
    for start in &email {
        let within = email
            .iter()
            .filter(|t| **t >= *start && **t < *start + Duration::hours(24))
            .count() as u64;
        assert!(within <= QUOTA, "{within} emails in the 24 hours from {start}");
    }
    let mut by_day: BTreeMap<String, u64> = BTreeMap::new();
    for t in &email {
        *by_day
            // Asia/Seoul is UTC+9 all year.
            .entry((*t + Duration::hours(9)).date_naive().to_string())
            .or_default() += 1;
    }
    assert!(
        by_day.len() >= 3,
        "the email was spread over the following days: {by_day:?}"
    );

    // The plan: the runs of the 15th carried email to a later slot, and the report says so.
    let carried: Vec<&dispatch_slot::DispatchReport> = d
        .runs
        .iter()
        .filter(|(run, r)| run.date.to_string() == "2026-12-15" && r.over_quota > 0)
        .map(|(_, r)| r)
        .collect();
    assert!(!carried.is_empty(), "the 15th's runs carried email: {:?}", d.runs);
    assert!(carried.iter().all(|r| r.carried_to.is_some()), "{carried:?}");
    let plan = d.runs.iter().find_map(|(_, r)| r.quota.clone()).unwrap();
    assert_eq!(plan.max_24h, Some(QUOTA), "{plan:?}");
    assert!(
        d.quota_plan.contains("40 emails in 24 hours") && d.quota_plan.contains("2026-12-15: "),
        "{}",
        d.quota_plan
    );
}
