//! Dispatch on a virtual clock: every slot of the month a settled cycle's
//! invoices go out, run against the emulator; then the checks of DESIGN §4.

use std::collections::HashMap;
use std::time::Duration;

use adapters::deliveries::partition_key;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use chrono::{DateTime, Utc};
use dispatch_slot::{DispatchEvent, DispatchReport};
use domain::delivery::start_of_day;
use domain::dispatch::SlotRun;
use domain::{ContactWindow, Cycle, DeliveryState, QuietWindow};
use integration_tests::{CYCLE, Month, generate};
use lambda_runtime::LambdaEvent;

fn cycle() -> Cycle {
    CYCLE.parse().unwrap()
}

fn event(scheduled: DateTime<Utc>, run_id: Option<&str>) -> LambdaEvent<DispatchEvent> {
    let event = DispatchEvent {
        scheduled_time: scheduled.to_rfc3339(),
        run_id: run_id.map(str::to_owned),
    };
    LambdaEvent::new(event, local_run::invocation(Duration::from_secs(900)))
}

/// The run id and channel each delivery of the shard was queued with.
async fn queued_by(month: &Month, shard: u32) -> HashMap<String, (String, String)> {
    let client = adapters::dynamodb_client(&month.config);
    let out = client
        .query()
        .table_name(month.deliveries.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(partition_key(cycle(), shard)))
        .send()
        .await
        .unwrap();
    let s = |i: &HashMap<String, AttributeValue>, k: &str| {
        i.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
    };
    out.items
        .unwrap_or_default()
        .iter()
        .map(|i| (s(i, "customer_id"), (s(i, "run_id"), s(i, "channel"))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delivery_goes_in_its_first_allowed_slot_once() {
    let data = generate(300, 300).unwrap();
    let month = Month::new("dispatch-month").await.unwrap();
    month.load(&data).await.unwrap();
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    let mut deps =
        dispatch_slot::Deps::from_vars(&month.config, &month.resources.function_env("DispatchSlotFunction")).unwrap();
    // No sender runs here: keep queued deliveries from being re-checked within the month.
    deps.config.recheck_after = chrono::Duration::days(60);
    let quiet = QuietWindow::default_korea();
    assert_eq!(deps.config.quiet, quiet);

    // A malformed event is a clear error.
    let mut bad = event(Utc::now(), None);
    bad.payload.scheduled_time = "next tuesday".into();
    let e = dispatch_slot::handle(&deps, bad).await.unwrap_err();
    assert!(
        e.to_string().contains("\"next tuesday\" is not an RFC 3339 instant"),
        "{e}"
    );

    let mut total = DispatchReport::default();
    let mut per_slot = Vec::new();
    for slot in SlotRun::issue_month(cycle()) {
        let r = dispatch_slot::handle(&deps, event(slot.start(), None)).await.unwrap();
        assert!(r.complete);
        assert_eq!(r.open, slot.is_open(quiet), "{slot}");
        if !r.open {
            assert_eq!(
                r.enqueued_email + r.enqueued_sms,
                0,
                "nothing in the quiet window: {slot}"
            );
        }
        per_slot.push((slot, r.enqueued_email + r.enqueued_sms));
        total.enqueued_email += r.enqueued_email;
        total.enqueued_sms += r.enqueued_sms;
        total.corrupt += r.corrupt;
    }
    let deliveries = month.deliveries.shard(cycle(), 0).await.unwrap();
    assert_eq!(
        total.enqueued_email + total.enqueued_sms,
        deliveries.len() as u64,
        "each once"
    );
    assert_eq!(total.corrupt, 0);
    let queued = queued_by(&month, 0).await;
    for d in &deliveries {
        assert_eq!(d.state, DeliveryState::Queued, "{}", d.customer_id);
        let (run_id, channel) = &queued[d.customer_id.as_str()];
        let at: DateTime<Utc> = DateTime::parse_from_rfc3339(run_id.trim_start_matches("dispatch-"))
            .unwrap()
            .with_timezone(&Utc);
        let window = ContactWindow::new(d.dnd, quiet).unwrap();
        let expected = window.next_allowed_slot_start(start_of_day(d.send_date));
        assert_eq!(at, expected, "{}: enqueued in its first allowed slot", d.customer_id);
        assert!(window.allows(at), "{}: never in a forbidden slot", d.customer_id);
        assert_eq!(channel, d.preferred_channel.as_str());
    }

    // The same slot again enqueues nothing new.
    let (busiest, _) = per_slot.iter().max_by_key(|(_, n)| *n).unwrap();
    let again = dispatch_slot::handle(&deps, event(busiest.start(), Some("again")))
        .await
        .unwrap();
    assert_eq!(again.enqueued_email + again.enqueued_sms, 0, "{again:?}");
}

async fn set(month: &Month, shard: u32, customer: &str, expr: &str, values: &[(&str, &str)]) {
    let mut req = adapters::dynamodb_client(&month.config)
        .update_item()
        .table_name(month.deliveries.table())
        .key("pk", AttributeValue::S(partition_key(cycle(), shard)))
        .key("customer_id", AttributeValue::S(customer.into()))
        .update_expression(expr);
    for (k, v) in values {
        req = req.expression_attribute_values(*k, AttributeValue::S((*v).into()));
    }
    req.send().await.unwrap();
}

/// Receives every message on a queue (bounded: at most 50 polls).
async fn drain(month: &Month, logical_id: &str) -> Vec<domain::delivery::DeliveryMessage> {
    let sqs = aws_sdk_sqs::Client::new(&month.config);
    let url = month.resources.queue_url(logical_id).unwrap().to_owned();
    let mut out = Vec::new();
    for _ in 0..50 {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            out.push(serde_json::from_str(m.body.as_deref().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_catch_up_scheduled_sends_policy_and_bad_entries() {
    let data = generate(120, 120).unwrap();
    let month = Month::new("dispatch-rules").await.unwrap();
    month.load(&data).await.unwrap();
    assert_eq!(
        month.settle("settle-2026-11").await.unwrap().status,
        ExecutionStatus::Succeeded
    );
    let deps =
        dispatch_slot::Deps::from_vars(&month.config, &month.resources.function_env("DispatchSlotFunction")).unwrap();
    let deliveries = month.deliveries.shard(cycle(), 0).await.unwrap();
    let quiet = QuietWindow::default_korea();

    // Runs were missed until 20 December, 10:00 (slot 5). Of the deliveries due by then whose
    // customers allow slot 5, one is scheduled for the 28th and one's index entry is corrupt.
    let late = DateTime::parse_from_rfc3339("2026-12-20T01:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let slot = SlotRun::containing(late);
    let early: Vec<_> = deliveries
        .iter()
        .filter(|d| start_of_day(d.send_date) <= late && !d.dnd.contains(slot.slot))
        .collect();
    let scheduled = early[0];
    let dec28 = DateTime::parse_from_rfc3339("2026-12-28T01:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    set(
        &month,
        0,
        scheduled.customer_id.as_str(),
        "SET available_at = :t",
        &[(":t", "2026-12-28T01:00:00Z")],
    )
    .await;
    let corrupt = early[1];
    set(
        &month,
        0,
        corrupt.customer_id.as_str(),
        "SET preferred_channel = :c",
        &[(":c", "fax")],
    )
    .await;

    // Two runs of that slot at once: each of the others is enqueued exactly once.
    let (a, b) = tokio::join!(
        dispatch_slot::handle(&deps, event(late, Some("run-a"))),
        dispatch_slot::handle(&deps, event(late, Some("run-b")))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let due = &early[2..];
    assert!(due.len() > 20, "{}", due.len());
    let enqueued = a.enqueued_email + a.enqueued_sms + b.enqueued_email + b.enqueued_sms;
    assert_eq!(enqueued, due.len() as u64, "{a:?} {b:?}");
    assert_eq!((a.corrupt, b.corrupt), (1, 1), "the corrupt entry is skipped and named");
    let mut messages = drain(&month, "EmailQueue").await;
    messages.extend(drain(&month, "SmsQueue").await);
    let mut ids: Vec<_> = messages.iter().map(|m| m.delivery_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), messages.len(), "one message per delivery");
    assert_eq!(ids.len(), due.len());
    assert!(!ids.contains(&scheduled.id()), "a scheduled send waits");

    // Repaired, the corrupt entry is due like any other.
    let original = corrupt.preferred_channel.as_str();
    set(
        &month,
        0,
        corrupt.customer_id.as_str(),
        "SET preferred_channel = :c",
        &[(":c", original)],
    )
    .await;

    // Nothing stays QUEUED without a message: a QUEUED delivery no sender took (here, none
    // runs) is enqueued again by the first run after its re-check time, once per delivery.
    let stale = dispatch_slot::handle(&deps, event(late + chrono::Duration::hours(4), None))
        .await
        .unwrap();
    let slot7 = SlotRun::containing(late + chrono::Duration::hours(4)).slot;
    let stale_due = due.iter().filter(|d| !d.dnd.contains(slot7)).count();
    assert!(stale_due > 0);
    assert_eq!(stale.requeued, stale_due as u64, "{stale:?}");
    drain(&month, "EmailQueue").await;
    drain(&month, "SmsQueue").await;

    // The scheduled one goes on the 28th in its first allowed slot, not before.
    let window = ContactWindow::new(scheduled.dnd, quiet).unwrap();
    let its_slot = window.next_allowed_slot_start(dec28);
    let before = dispatch_slot::handle(&deps, event(its_slot - chrono::Duration::hours(2), None))
        .await
        .unwrap();
    let at = dispatch_slot::handle(&deps, event(its_slot, None)).await.unwrap();
    let got = month
        .deliveries
        .get(cycle(), 0, &scheduled.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.state, DeliveryState::Queued, "{before:?} {at:?}");
    let queued = queued_by(&month, 0).await;
    assert_eq!(
        queued[scheduled.customer_id.as_str()].0,
        format!("dispatch-{}", domain::delivery::utc_seconds::format(&its_slot))
    );

    // Channel policy: with email disabled, email customers go to SMS; with none, they are held.
    let mut sms_only =
        dispatch_slot::Deps::from_vars(&month.config, &month.resources.function_env("DispatchSlotFunction")).unwrap();
    sms_only.config.policy = "sms".parse().unwrap();
    let end = DateTime::parse_from_rfc3339("2026-12-31T03:00:00Z")
        .unwrap()
        .with_timezone(&Utc); // 12:00 Seoul
    let r = dispatch_slot::handle(&sms_only, event(end, None)).await.unwrap();
    assert_eq!(r.enqueued_email, 0, "{r:?}");
    for m in drain(&month, "SmsQueue").await {
        assert_eq!(m.channel, domain::Channel::Sms);
    }
    let mut none = sms_only;
    none.config.policy = "none".parse().unwrap();
    let left = month
        .deliveries
        .shard(cycle(), 0)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| {
            d.state == DeliveryState::Ready
                && !d
                    .dnd
                    .contains(SlotRun::containing(end + chrono::Duration::hours(2)).slot)
        })
        .count() as u64;
    let r = dispatch_slot::handle(&none, event(end + chrono::Duration::hours(2), None))
        .await
        .unwrap();
    assert_eq!((r.enqueued_email + r.enqueued_sms, r.held), (0, left), "{r:?}");
}
