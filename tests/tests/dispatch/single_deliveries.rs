//! Deliveries and cycle records written one by one: the horizon of past cycles, the gate on
//! cycles not settled, customers with no allowed slot, re-checks, and enqueues whose answers
//! are lost or never come.

use std::collections::HashMap;

use adapters::failures::FailureStage;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use domain::{ContactWindow, Cycle, QuietWindow};
use integration_tests::Month;

use super::{dispatch, dispatch_deps, drain, failure_log, set_on, state_of, utc};

/// 20 December 2026, 10:00 Asia/Seoul (slot 5): the runs below.
fn dec20() -> DateTime<Utc> {
    utc("2026-12-20T01:00:00Z")
}

fn cycle_of(text: &str) -> Cycle {
    text.parse().unwrap()
}

/// The cycle record of `cycle` with `status`, as settlement leaves it.
async fn cycle_record(month: &Month, cycle: Cycle, status: adapters::cycles::CycleStatus) {
    let status = match status {
        adapters::cycles::CycleStatus::Settling => "SETTLING",
        adapters::cycles::CycleStatus::Settled => "SETTLED",
        adapters::cycles::CycleStatus::Failed => "FAILED",
    };
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let item: HashMap<String, AttributeValue> = [
        ("cycle", s(&cycle.to_string())),
        ("item", s(adapters::cycles::CYCLE_ITEM)),
        ("status", s(status)),
        ("run_id", s(&format!("settle-{cycle}"))),
        ("catalog_version", s("2026-v1")),
        ("template_version", s("v1")),
        ("cutoff", s(&format!("{}T00:00:00+09:00", cycle.next().first_day()))),
        ("shard_count", AttributeValue::N("1".into())),
        ("manifest_key", s("")),
        ("started_at", s("2026-12-01T00:00:00Z")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    adapters::dynamodb_client(&month.config)
        .put_item()
        .table_name(month.cycles.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

/// A `READY` delivery of `cycle` (shard 0), due from its send date (the 10th of the month after).
async fn ready(month: &Month, cycle: Cycle, customer: &str, dnd: domain::SlotSet) -> domain::Delivery {
    let d = domain::Delivery::ready(
        cycle,
        0,
        domain::CustomerId::new(customer).unwrap(),
        domain::SendDay::new(10).unwrap(),
        dnd,
        domain::Channel::Email,
        domain::Krw(55_000),
        domain::delivery::DeliveryContent {
            email_range: None,
            template_version: "v1".into(),
            content_hash: format!("{:064x}", customer.len()),
            email_key: format!("invoices/{cycle}/{customer}.html"),
            subject: "invoice".into(),
            sms_text: "invoice [[INVOICE_LINK]]".into(),
            sms_range: None,
        },
        dec20(),
    );
    assert_eq!(
        month.deliveries.create(&d).await.unwrap(),
        adapters::PutOutcome::Created
    );
    d
}

/// Leaves `d` SENDING on email under `claim`, its lease until `lease_until` and its re-check
/// at `recheck`, as an enqueue and a sender's claim leave it (the enqueue sets `recheck_at`).
async fn leave_sending(month: &Month, d: &domain::Delivery, claim: &str, lease_until: &str, recheck: &str) {
    let expr = "SET #st = :s, claim_id = :c, lease_until = :l, recheck_at = :a, channel = :ch";
    let values = [
        (":s", "SENDING"),
        (":c", claim),
        (":l", lease_until),
        (":a", recheck),
        (":ch", "email"),
    ];
    set_on(month, d, expr, &values).await;
}

/// Leaves `d` QUEUED on email with its re-check at `recheck`, by the run `run_id` when given.
async fn leave_queued(month: &Month, d: &domain::Delivery, recheck: &str, run_id: Option<&str>) {
    let mut expr = "SET #st = :s, recheck_at = :a, channel = :ch".to_owned();
    let mut values = vec![(":s", "QUEUED"), (":a", recheck), (":ch", "email")];
    if let Some(run_id) = run_id {
        expr.push_str(", run_id = :r");
        values.push((":r", run_id));
    }
    set_on(month, d, &expr, &values).await;
}

fn text(item: &HashMap<String, AttributeValue>, k: &str) -> String {
    item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

async fn messages(month: &Month) -> Vec<String> {
    let mut ids: Vec<String> = drain(month, "EmailQueue")
        .await
        .into_iter()
        .chain(drain(month, "SmsQueue").await)
        .map(|m| m.delivery_id)
        .collect();
    ids.sort();
    ids
}

/// How often `fault` has fired on `table`.
async fn fired(month: &Month, fault: local_aws::Fault, table: &str) -> u64 {
    month.emulator.faults_fired().await.unwrap().fired(fault, table)
}

/// The next `calls` UpdateItem requests on `table` are applied and their answers lost, in `mode`.
async fn lose_update_answers(month: &Month, table: &str, calls: u32, mode: local_aws::LostAnswer) {
    let emulator = month.emulator;
    let update = local_aws::WriteOperation::UpdateItem;
    emulator.lose_answers(table, update, calls, mode).await.unwrap();
}

async fn deps_of(month: &Month) -> dispatch_slot::Deps {
    let mut deps = dispatch_deps(month).await;
    // No sender runs here: what is enqueued is not re-checked within these tests.
    deps.config.recheck_after = chrono::Duration::days(60);
    deps
}

/// A fresh stack named after `name` with November 2026's cycle record SETTLED, DispatchSlot's
/// dependencies over it (see [`deps_of`]) and that cycle.
async fn settled_november(name: &str) -> (Month, dispatch_slot::Deps, Cycle) {
    let month = Month::new(name).await.unwrap();
    let deps = deps_of(&month).await;
    let nov = cycle_of("2026-11");
    cycle_record(&month, nov, adapters::cycles::CycleStatus::Settled).await;
    (month, deps, nov)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_delivery_of_a_settled_cycle_months_old_is_enqueued() {
    use adapters::cycles::CycleStatus;
    let month = Month::new("dispatch-horizon").await.unwrap();
    let deps = deps_of(&month).await;
    // Settled five months before the run's month: an operator's resend or a schedule made it due.
    let july = cycle_of("2026-07");
    cycle_record(&month, july, CycleStatus::Settled).await;
    let old = ready(&month, july, "C0000001", domain::SlotSet::EMPTY).await;
    // Past the horizon (fifteen cycles back from December 2026's run: 2025-09 is the oldest).
    let too_old = cycle_of("2025-08");
    cycle_record(&month, too_old, CycleStatus::Settled).await;
    let older = ready(&month, too_old, "C0000002", domain::SlotSet::EMPTY).await;

    let r = dispatch(&deps, dec20(), Some("horizon")).await.unwrap();
    assert!(r.complete, "{r:?}");
    assert_eq!(r.cycles, vec!["2026-07".to_owned()], "{r:?}");
    assert_eq!((r.enqueued_email, r.enqueued_sms), (1, 0), "{r:?}");
    assert_eq!(messages(&month).await, vec![old.id()]);
    let item = state_of(&month, &old).await;
    assert_eq!(
        (text(&item, "state").as_str(), text(&item, "run_id").as_str()),
        ("QUEUED", "horizon")
    );
    assert_eq!(text(&state_of(&month, &older).await, "state"), "READY");
    assert!(!domain::dispatch::dispatched_cycles(dec20().date_naive()).contains(&too_old));
    // Once: the next run finds nothing due.
    let again = dispatch(&deps, dec20() + chrono::Duration::hours(2), None)
        .await
        .unwrap();
    assert_eq!(again.enqueued_email + again.enqueued_sms, 0, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_against_a_failed_or_settling_cycle_enqueues_nothing() {
    use adapters::cycles::CycleStatus;
    let month = Month::new("dispatch-gate").await.unwrap();
    let deps = deps_of(&month).await;
    let mut waiting = Vec::new();
    for (cycle, status, customer) in [
        ("2026-11", CycleStatus::Settling, "C0000001"),
        ("2026-10", CycleStatus::Failed, "C0000002"),
        ("2026-06", CycleStatus::Failed, "C0000003"),
    ] {
        cycle_record(&month, cycle_of(cycle), status).await;
        waiting.push(ready(&month, cycle_of(cycle), customer, domain::SlotSet::EMPTY).await);
    }
    // A cycle with READY deliveries and no cycle record at all: not settled either.
    waiting.push(ready(&month, cycle_of("2026-09"), "C0000004", domain::SlotSet::EMPTY).await);

    let r = dispatch(&deps, dec20(), None).await.unwrap();
    assert!(r.open && r.complete, "{r:?}");
    assert!(r.cycles.is_empty(), "{r:?}");
    assert_eq!(
        r.unsettled,
        vec!["2026-06 FAILED", "2026-10 FAILED", "2026-11 SETTLING"],
        "{r:?}"
    );
    assert_eq!(r.enqueued_email + r.enqueued_sms, 0, "{r:?}");
    assert!(messages(&month).await.is_empty());
    for d in &waiting {
        assert_eq!(text(&state_of(&month, d).await, "state"), "READY", "{}", d.id());
    }

    // Settled at last (a redrive reconciled it): the next run takes its deliveries, only them.
    cycle_record(&month, cycle_of("2026-10"), CycleStatus::Settled).await;
    let r = dispatch(&deps, dec20() + chrono::Duration::hours(2), None)
        .await
        .unwrap();
    assert_eq!(r.cycles, vec!["2026-10".to_owned()], "{r:?}");
    assert_eq!(messages(&month).await, vec![waiting[1].id()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_with_no_allowed_slot_ends_dead_with_a_failure_record() {
    use domain::{Slot, SlotSet};
    let (month, mut deps, nov) = settled_november("dispatch-noslot").await;
    let quiet = QuietWindow::default_korea();
    let open_slots = quiet.forbidden_slots().complement();
    let slot = |i: u32| Slot::new(i).unwrap();
    // DND over every slot the quiet window leaves (08:00-20:00): never sendable.
    let none_left = ready(&month, nov, "C0000001", open_slots).await;
    // DND leaving only 18:00-20:00: sendable until the quiet window grows to 18:00.
    let evening_only = open_slots.complement().with(slot(9)).complement();
    let evening = ready(&month, nov, "C0000002", evening_only).await;
    let anyone = ready(&month, nov, "C0000003", SlotSet::EMPTY).await;
    assert!(ContactWindow::new(none_left.dnd, quiet).is_err());
    assert!(ContactWindow::new(evening.dnd, quiet).is_ok());

    let r = dispatch(&deps, dec20(), Some("noslot")).await.unwrap();
    assert_eq!(r.no_allowed_slot, 1, "{r:?}");
    assert_eq!(r.enqueued_email, 1, "{r:?}");
    assert_eq!(r.not_this_slot, 1, "the evening customer waits for 18:00: {r:?}");
    assert_eq!(messages(&month).await, vec![anyone.id()]);
    let dead = state_of(&month, &none_left).await;
    assert_eq!(text(&dead, "state"), "DEAD", "{dead:?}");
    assert_eq!(text(&dead, "last_error"), "no-allowed-slot");
    assert!(!dead.contains_key("due_pk"), "out of the Due index: {dead:?}");
    let failures = failure_log(&month);
    let record = failures
        .get(Some(nov), &none_left.id(), FailureStage::Dispatch)
        .await
        .unwrap()
        .expect("a failure record for the delivery no slot can carry");
    assert_eq!(record.code, "no-allowed-slot");
    assert_eq!(record.occurrences, 1);
    for named in ["08:00-10:00", "18:00-20:00", "21:00-08:00"] {
        assert!(record.reason.contains(named), "{named} in {}", record.reason);
    }
    assert!(
        !record.reason.contains("C0000001"),
        "ids go in the subject: {}",
        record.reason
    );

    // The operators move the quiet window's start to 18:00: from the next run on, the evening
    // customer has no slot left either.
    deps.config.quiet = "18:00-08:00".parse().unwrap();
    let r = dispatch(&deps, dec20() + chrono::Duration::hours(2), None)
        .await
        .unwrap();
    assert_eq!(r.no_allowed_slot, 1, "{r:?}");
    assert_eq!(text(&state_of(&month, &evening).await, "state"), "DEAD");
    assert!(
        failures
            .get(Some(nov), &evening.id(), FailureStage::Dispatch)
            .await
            .unwrap()
            .is_some()
    );
    // Dead once: later runs do not see them again.
    let r = dispatch(&deps, dec20() + chrono::Duration::hours(4), None)
        .await
        .unwrap();
    assert_eq!((r.no_allowed_slot, r.enqueued_email + r.enqueued_sms), (0, 0), "{r:?}");
    let again = failures
        .get(Some(nov), &none_left.id(), FailureStage::Dispatch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.occurrences, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_and_queued_deliveries_whose_recheck_came_are_enqueued_again_once() {
    let (month, deps, nov) = settled_november("dispatch-recheck").await;
    let empty = domain::SlotSet::EMPTY;
    // Its sender died: the lease ended, and the re-check time it was queued with has come.
    let lapsed = ready(&month, nov, "C0000001", empty).await;
    leave_sending(
        &month,
        &lapsed,
        "claim-1",
        "2020-01-01T00:00:00Z",
        "2026-12-20T00:30:00Z",
    )
    .await;
    // Its sender is still at it (a live lease), though the re-check time has come.
    let live = ready(&month, nov, "C0000002", empty).await;
    leave_sending(&month, &live, "claim-2", "2099-01-01T00:00:00Z", "2026-12-20T00:30:00Z").await;
    // Queued, and no sender claimed it by its re-check time.
    let unclaimed = ready(&month, nov, "C0000003", empty).await;
    leave_queued(&month, &unclaimed, "2026-12-20T00:30:00Z", Some("an-earlier-run")).await;
    // Queued, re-check still to come.
    let fresh = ready(&month, nov, "C0000004", empty).await;
    leave_queued(&month, &fresh, "2026-12-20T04:00:00Z", None).await;
    // Queued as dispatch once did: its sort key moved to the re-check time, no recheck_at. The
    // index shows it as waiting; the enqueue's condition reads QUEUED on the item and takes it.
    let legacy = ready(&month, nov, "C0000005", empty).await;
    set_on(
        &month,
        &legacy,
        "SET #st = :s, available_at = :a, channel = :ch",
        &[(":s", "QUEUED"), (":a", "2026-12-20T00:30:00Z"), (":ch", "email")],
    )
    .await;

    let r = dispatch(&deps, dec20(), Some("recheck")).await.unwrap();
    assert_eq!((r.enqueued_email, r.requeued), (3, 2), "{r:?}");
    assert_eq!(r.lost_races, 1, "the live lease keeps its delivery: {r:?}");
    let mut expected = vec![lapsed.id(), unclaimed.id(), legacy.id()];
    expected.sort();
    assert_eq!(messages(&month).await, expected);
    let taken = state_of(&month, &lapsed).await;
    assert_eq!(
        (text(&taken, "state").as_str(), text(&taken, "run_id").as_str()),
        ("QUEUED", "recheck")
    );
    assert!(
        !taken.contains_key("claim_id") && !taken.contains_key("lease_until"),
        "{taken:?}"
    );
    let kept = state_of(&month, &live).await;
    assert_eq!(
        (text(&kept, "state").as_str(), text(&kept, "claim_id").as_str()),
        ("SENDING", "claim-2")
    );
    assert_eq!(text(&state_of(&month, &fresh).await, "state"), "QUEUED");
    // Enqueued again once: a second run of the slot takes nothing.
    let again = dispatch(&deps, dec20(), Some("recheck-again")).await.unwrap();
    assert_eq!((again.enqueued_email, again.requeued), (0, 0), "{again:?}");
    assert!(messages(&month).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_applied_with_its_answer_lost_is_taken_once() {
    use local_aws::{Fault, LostAnswer};
    let (month, deps, nov) = settled_november("dispatch-lost").await;
    let table = month.deliveries.table().to_owned();
    for (round, mode) in [(0u32, LostAnswer::Error), (1, LostAnswer::Drop)] {
        let first = ready(&month, nov, &format!("C00000{round}1"), domain::SlotSet::EMPTY).await;
        let requeue = ready(&month, nov, &format!("C00000{round}2"), domain::SlotSet::EMPTY).await;
        leave_queued(&month, &requeue, "2026-12-20T00:30:00Z", None).await;
        // Both enqueues are applied, and their answers lost: the SDK sends them again, and
        // their conditions refuse them.
        let before = fired(&month, Fault::LostAnswer, &table).await;
        lose_update_answers(&month, &table, 2, mode).await;
        let at = dec20() + chrono::Duration::hours(2 * i64::from(round));
        let r = dispatch(&deps, at, Some(&format!("lost-{round}"))).await.unwrap();
        let fired = fired(&month, Fault::LostAnswer, &table).await;
        lose_update_answers(&month, &table, 0, mode).await;
        assert_eq!(fired - before, 2, "{mode:?}: both answers were lost");
        assert_eq!(
            (r.enqueued_email, r.requeued, r.lost_races, r.unknown),
            (2, 1, 0, 0),
            "{mode:?}: taken, once each: {r:?}"
        );
        let mut expected = vec![first.id(), requeue.id()];
        expected.sort();
        assert_eq!(messages(&month).await, expected, "{mode:?}");
        for d in [&first, &requeue] {
            let item = state_of(&month, d).await;
            assert_eq!(
                (text(&item, "state"), text(&item, "run_id")),
                ("QUEUED".to_owned(), format!("lost-{round}"))
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_that_gets_no_answer_fails_the_run_and_is_never_counted() {
    use local_aws::{Fault, FaultBound, Throttled};
    let (month, deps, nov) = settled_november("dispatch-throttled").await;
    let d = ready(&month, nov, "C0000001", domain::SlotSet::EMPTY).await;
    let table = month.deliveries.table().to_owned();
    // Every UpdateItem throttled, through all of the SDK's attempts; reads still answer.
    month
        .emulator
        .throttle(&table, FaultBound::Calls(50), Throttled::Operation("UpdateItem".into()))
        .await
        .unwrap();
    let e = dispatch(&deps, dec20(), Some("throttled")).await.unwrap_err();
    let fired = fired(&month, Fault::Throttle, &table).await;
    month.emulator.clear_faults(&table).await.unwrap();
    assert!(fired > 0, "the throttle fired");
    assert!(e.to_string().contains("UpdateItem"), "{e}");
    assert!(messages(&month).await.is_empty(), "nothing taken, nothing sent");
    assert_eq!(text(&state_of(&month, &d).await, "state"), "READY");
    // The retry of the run takes it, once.
    let r = dispatch(&deps, dec20(), Some("throttled")).await.unwrap();
    assert_eq!((r.enqueued_email, r.unknown), (1, 0), "{r:?}");
    assert_eq!(messages(&month).await, vec![d.id()]);
}
