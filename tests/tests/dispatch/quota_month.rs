//! A month whose peak day holds more email than the provider's 24-hour quota: dispatch
//! spreads it over the following slots instead of cutting it — every invoice is enqueued,
//! each in a slot its customer allows, each partition's oldest first, the quota shared by
//! all the partitions, never more email in any 24 hours than the quota — and its reports
//! say so (the plan, what is carried and to which slot). SMS is not held back.

use std::collections::{BTreeMap, HashMap};

use dispatch_slot::DispatchReport;
use domain::delivery::{due_bucket, start_of_day};
use domain::dispatch::SlotRun;
use domain::{Channel, ContactWindow, QuietWindow, SlotSet};
use integration_tests::Month;

use super::written::{Spec, settled, write};
use super::{cycle, dispatch, drain, utc};

/// Email the provider takes in 24 hours (`MOCK_MAX_24H_SEND`), well under the peak day's.
const QUOTA: u64 = 40;
const DELIVERIES: usize = 240;

fn slots(list: &[u32]) -> SlotSet {
    SlotSet::from_bits(list.iter().fold(0u16, |bits, s| bits | (1 << s))).unwrap()
}

/// 240 deliveries: 150 due on 10 December (the peak), 40 on the 11th, the rest from the 12th
/// to the 16th; one in six prefers SMS; four DND patterns, one leaving only 18:00-20:00.
fn specs() -> Vec<Spec> {
    (0..DELIVERIES)
        .map(|i| Spec {
            shard: (i % 3) as u32,
            send_day: match i {
                0..150 => 10,
                150..190 => 11,
                _ => 12 + (i % 5) as u32,
            },
            preferred: if i % 6 == 5 { Channel::Sms } else { Channel::Email },
            dnd: match i % 4 {
                0 => SlotSet::EMPTY,
                1 => slots(&[4, 5]),
                2 => slots(&[6, 7, 8]),
                _ => slots(&[4, 5, 6, 7, 8]),
            },
            ..Spec::new(&format!("C{:07}", i + 1))
        })
        .collect()
}

/// One run of the month and what it put on the queues.
struct Run {
    slot: SlotRun,
    report: DispatchReport,
    email: Vec<String>,
    sms: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peak_day_over_the_quota_is_spread_over_the_next_slots_and_every_invoice_goes() {
    let month = Month::new("dispatch-quota").await.unwrap();
    settled(&month, cycle()).await;
    let specs = specs();
    let ds = write(&month, cycle(), &specs).await;
    let by_id: HashMap<String, &domain::Delivery> = ds.iter().map(|d| (d.id(), d)).collect();
    let mut env = month.resources.function_env("DispatchSlotFunction");
    env.insert("MOCK_MAX_24H_SEND".into(), QUOTA.to_string());
    let mut deps = dispatch_slot::Deps::load(&month.config, &env).await.unwrap();
    // No sender runs here: what is enqueued is not re-checked within the month.
    deps.config.recheck_after = chrono::Duration::days(60);
    let quiet = QuietWindow::default_korea();
    assert_eq!(deps.config.quiet, quiet);
    let email_due: usize = ds.iter().filter(|d| d.preferred_channel == Channel::Email).count();
    let peak_email = ds
        .iter()
        .filter(|d| d.preferred_channel == Channel::Email && d.send_date.format("%d").to_string() == "10")
        .count();
    assert!(
        peak_email as u64 > 2 * QUOTA,
        "the peak day's email is well over the quota"
    );

    // Every slot from 10 December, 00:00 Asia/Seoul, until twelve slots after the last
    // enqueue (bounded by the end of the month).
    let mut runs: Vec<Run> = Vec::new();
    let mut slot = SlotRun::containing(utc("2026-12-09T15:00:00Z"));
    let end = SlotRun::containing(utc("2026-12-31T14:59:59Z"));
    let mut enqueued = 0usize;
    let mut after_last = 0;
    while slot.start() <= end.start() && after_last < 12 {
        let report = dispatch(&deps, slot.start(), None).await.unwrap();
        assert!(report.complete, "{slot}: {report:?}");
        let email: Vec<String> = drain(&month, "EmailQueue")
            .await
            .into_iter()
            .map(|m| m.delivery_id)
            .collect();
        let sms: Vec<String> = drain(&month, "SmsQueue")
            .await
            .into_iter()
            .map(|m| m.delivery_id)
            .collect();
        assert_eq!(
            (email.len() as u64, sms.len() as u64),
            (report.enqueued_email, report.enqueued_sms),
            "{slot}"
        );
        enqueued += email.len() + sms.len();
        if enqueued == DELIVERIES {
            after_last += 1;
        }
        runs.push(Run {
            slot,
            report,
            email,
            sms,
        });
        slot = slot.next();
    }

    // Every invoice is enqueued, once, on its customer's channel, in a slot the customer
    // allows, never before its send date.
    let mut at: HashMap<String, (usize, Channel)> = HashMap::new();
    for (k, run) in runs.iter().enumerate() {
        for (ids, ch) in [(&run.email, Channel::Email), (&run.sms, Channel::Sms)] {
            for id in ids {
                assert!(at.insert(id.clone(), (k, ch)).is_none(), "{id} enqueued twice");
            }
        }
    }
    assert_eq!(at.len(), DELIVERIES, "every invoice is enqueued");
    for d in &ds {
        let (k, ch) = at[&d.id()];
        let slot = runs[k].slot;
        assert_eq!(ch, d.preferred_channel, "{}", d.customer_id);
        let window = ContactWindow::new(d.dnd, quiet).unwrap();
        assert!(
            window.allows(slot.start()),
            "{}: enqueued in {slot}, not allowed",
            d.customer_id
        );
        assert!(slot.start() >= start_of_day(d.send_date), "{}", d.customer_id);
        if ch == Channel::Sms {
            // SMS is not held back by the email quota: its first allowed slot.
            assert_eq!(
                slot.start(),
                window.next_allowed_slot_start(start_of_day(d.send_date)),
                "{}",
                d.customer_id
            );
        }
    }
    for shard in 0..3 {
        let stored = month.deliveries.shard(cycle(), shard).await.unwrap();
        assert!(
            stored.iter().all(|d| d.state == domain::DeliveryState::Queued),
            "shard {shard}"
        );
    }

    // Never more email in any 24 hours (twelve consecutive slots) than the quota, and the
    // plan in every report that read the index: its ledger is what the runs before enqueued.
    let per_run: Vec<u64> = runs.iter().map(|r| r.email.len() as u64).collect();
    for (k, run) in runs.iter().enumerate() {
        let before: u64 = per_run[k.saturating_sub(11)..k].iter().sum();
        assert!(
            before + per_run[k] <= QUOTA,
            "{}: {} in 24 hours",
            run.slot,
            before + per_run[k]
        );
        let r = &run.report;
        if !r.open {
            assert!(r.quota.is_none() && per_run[k] == 0, "{}: {r:?}", run.slot);
            continue;
        }
        let plan = r
            .quota
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no plan: {r:?}", run.slot));
        assert_eq!(plan.source, "fixed");
        assert_eq!(plan.max_24h, Some(QUOTA));
        assert_eq!(
            (plan.sent_24h, plan.enqueued_24h, plan.used_24h),
            (0, before, before),
            "{}",
            run.slot
        );
        assert_eq!(plan.budget, Some(QUOTA - before), "{}", run.slot);
        assert!(r.enqueued_email <= QUOTA - before, "{}", run.slot);
        if r.over_quota > 0 {
            // Spread, not cut: the rest goes with the next open slot's run...
            let mut next = run.slot.next();
            while !next.is_open(quiet) {
                next = next.next();
            }
            assert_eq!(r.carried_to, Some(next.to_string()), "{}", run.slot);
            // ... and the run used all the quota it had.
            assert_eq!(r.enqueued_email, QUOTA - before, "{}: {r:?}", run.slot);
        } else {
            assert_eq!(r.carried_to, None);
        }
    }
    let carried: u64 = runs.iter().map(|r| r.report.over_quota).sum();
    assert!(carried > 0, "the peak day was carried over");
    let last_email = per_run.iter().rposition(|n| *n > 0).unwrap();
    let days = (runs[last_email].slot.date - runs[0].slot.date).num_days();
    assert!(days >= (email_due as u64 / QUOTA) as i64 - 1, "spread over {days} days");

    // The first run of the peak day (08:00) had more due than its budget: it took every
    // partition's oldest — each partition that had any email due in the slot got some.
    let first = runs.iter().position(|r| r.report.enqueued_email > 0).unwrap();
    let run = &runs[first];
    assert!(run.report.over_quota > 0, "{:?}", run.report);
    let eligible = |d: &domain::Delivery, slot: SlotRun| {
        d.preferred_channel == Channel::Email
            && ContactWindow::new(d.dnd, quiet).unwrap().allows(slot.start())
            && start_of_day(d.send_date) <= slot.start()
    };
    let mut wanted: BTreeMap<u32, usize> = BTreeMap::new();
    for d in ds.iter().filter(|d| eligible(d, run.slot)) {
        *wanted.entry(due_bucket(&d.customer_id)).or_default() += 1;
    }
    let mut got: BTreeMap<u32, usize> = BTreeMap::new();
    for id in &run.email {
        *got.entry(due_bucket(&by_id[id].customer_id)).or_default() += 1;
    }
    assert!(wanted.len() as u64 <= QUOTA);
    for bucket in wanted.keys() {
        assert!(
            got.contains_key(bucket),
            "bucket {bucket} had email due and got none: {got:?}"
        );
    }

    // In every run that carried email, each partition sent its oldest: none it enqueued is
    // younger than one it left (eligible in that slot and still waiting after it).
    for (k, run) in runs.iter().enumerate().filter(|(_, r)| r.report.over_quota > 0) {
        // A partition of the `Due` index: the cycle (one here) and the due bucket.
        let mut newest_sent: HashMap<u32, chrono::DateTime<chrono::Utc>> = HashMap::new();
        for id in &run.email {
            let d = by_id[id];
            let key = due_bucket(&d.customer_id);
            let e = newest_sent.entry(key).or_insert(d.available_at);
            *e = (*e).max(d.available_at);
        }
        for d in ds.iter().filter(|d| eligible(d, run.slot) && at[&d.id()].0 > k) {
            let key = due_bucket(&d.customer_id);
            if let Some(newest) = newest_sent.get(&key) {
                assert!(
                    *newest <= d.available_at,
                    "{}: {} left while a younger one of its partition went",
                    run.slot,
                    d.customer_id
                );
            }
        }
    }
}

/// Dispatch's ledger counts each email it enqueued once: through ledger writes whose answers
/// are lost (the SDK sends them again), a run that continues itself many times through the
/// queue, and a retried run of the same slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_counts_each_email_once_through_lost_answers_continuations_and_retries() {
    use local_aws::{Fault, LostAnswer};
    let month = Month::new("dispatch-ledger").await.unwrap();
    settled(&month, cycle()).await;
    let specs: Vec<Spec> = (0..60)
        .map(|i| Spec {
            shard: i % 3,
            ..Spec::new(&format!("C{:07}", i + 1))
        })
        .collect();
    write(&month, cycle(), &specs).await;
    let mut env = month.resources.function_env("DispatchSlotFunction");
    env.insert("MOCK_MAX_24H_SEND".into(), "50".into());
    let mut deps = dispatch_slot::Deps::load(&month.config, &env).await.unwrap();
    deps.config.recheck_after = chrono::Duration::days(60);
    // Every invocation "nears its deadline" after one entry of each bucket, and continues.
    deps.config.page_size = 1;
    deps.config.deadline_margin = std::time::Duration::from_secs(3600);
    deps.config.max_continuations = 100;

    // The first write to the ledger (the reservation) is applied and its answer lost, twice:
    // the SDK's third attempt gets its answer. Set three times, it counts once.
    let table = month.cycles.table().to_owned();
    let update = local_aws::WriteOperation::UpdateItem;
    month
        .emulator
        .lose_answers(&table, update, 2, LostAnswer::Error)
        .await
        .unwrap();
    let dec10 = SlotRun::containing(utc("2026-12-09T23:00:00Z")); // 08:00 Asia/Seoul
    let r = local_run::dispatch::run_slot(&deps, dec10).await.unwrap();
    let lost = month
        .emulator
        .faults_fired()
        .await
        .unwrap()
        .fired(Fault::LostAnswer, &table);
    month
        .emulator
        .lose_answers(&table, update, 0, LostAnswer::Error)
        .await
        .unwrap();
    assert_eq!(lost, 2, "two ledger answers were lost");
    assert!(r.continued, "the run continued: {r:?}");
    assert_eq!((r.enqueued_email, r.over_quota), (50, 10), "{r:?}");
    assert_eq!(
        r.quota.as_ref().and_then(|q| q.budget),
        Some(50),
        "the first invocation's plan"
    );
    assert_eq!(drain(&month, "EmailQueue").await.len(), 50);
    let ledger = adapters::dispatch_ledger::EmailLedger::new(adapters::dynamodb_client(&month.config), &table);
    assert_eq!(ledger.enqueued_between(dec10.start(), dec10.start()).await.unwrap(), 50);

    // A retried run of the slot (one invocation, no continuation) finds the quota spent and
    // enqueues nothing.
    // (Pages big enough for the slot: the 50 on their way keep their place in the index,
    // left out until their re-check time, and would fill one-entry pages.)
    deps.config.max_continuations = 0;
    deps.config.page_size = 100;
    let again = dispatch(&deps, dec10.start(), Some("retried")).await.unwrap();
    deps.config.max_continuations = 100;
    deps.config.page_size = 1;
    let plan = again.quota.clone().unwrap();
    assert_eq!((plan.enqueued_24h, plan.budget), (50, Some(0)), "{again:?}");
    assert_eq!(again.enqueued_email, 0);
    assert!(again.over_quota > 0 && again.carried_to.is_some(), "{again:?}");
    assert_eq!(ledger.enqueued_between(dec10.start(), dec10.start()).await.unwrap(), 50);

    // 24 hours on, the rest goes.
    let dec11 = SlotRun::containing(dec10.start() + chrono::Duration::days(1));
    let r = local_run::dispatch::run_slot(&deps, dec11).await.unwrap();
    assert_eq!((r.enqueued_email, r.over_quota), (10, 0), "{r:?}");
    assert_eq!(r.quota.and_then(|q| q.budget), Some(50));
    assert_eq!(drain(&month, "EmailQueue").await.len(), 10);
}
