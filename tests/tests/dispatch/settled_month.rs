//! A month the settlement state machine settled, dispatched on a virtual clock: each delivery
//! in its first allowed slot, late and concurrent runs, scheduled sends, corrupt entries, the
//! channel policy, messages SQS refuses, and runs that continue through the queue.

use std::collections::HashMap;
use std::time::Duration;

use adapters::deliveries::partition_key;
use adapters::failures::FailureStage;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use chrono::{DateTime, Utc};
use dispatch_slot::{DispatchEvent, DispatchReport};
use domain::delivery::start_of_day;
use domain::dispatch::SlotRun;
use domain::{ContactWindow, DeliveryState, QuietWindow};
use integration_tests::Month;
use integration_tests::setup::loaded;
use lambda_runtime::LambdaEvent;

use super::{cycle, dispatch, dispatch_deps, drain, event, failure_log, set_on, state_of, utc};

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
    let (_data, month) = loaded("dispatch-month", 300, 300).await.unwrap();
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    let mut deps = dispatch_deps(&month).await;
    // No sender runs here: keep queued deliveries from being re-checked within the month.
    deps.config.recheck_after = chrono::Duration::days(60);
    let quiet = QuietWindow::default_korea();
    assert_eq!(deps.config.quiet, quiet);

    // A malformed event is a clear error.
    let mut bad = event(Utc::now(), None);
    bad.payload.scheduled_time = "next tuesday".into();
    let e = dispatch_slot::dispatch(&deps, bad).await.unwrap_err();
    assert!(
        e.to_string().contains("scheduled_time is not an RFC 3339 instant") && !e.to_string().contains("tuesday"),
        "{e}"
    );

    let mut total = DispatchReport::default();
    let mut per_slot = Vec::new();
    for slot in SlotRun::issue_month(cycle()) {
        let r = dispatch(&deps, slot.start(), None).await.unwrap();
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
    let again = dispatch(&deps, busiest.start(), Some("again")).await.unwrap();
    assert_eq!(again.enqueued_email + again.enqueued_sms, 0, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_catch_up_scheduled_sends_policy_and_bad_entries() {
    let (_data, month) = loaded("dispatch-rules", 120, 120).await.unwrap();
    assert_eq!(
        month.settle("settle-2026-11").await.unwrap().status,
        ExecutionStatus::Succeeded
    );
    let deps = dispatch_deps(&month).await;
    let deliveries = month.deliveries.shard(cycle(), 0).await.unwrap();
    let quiet = QuietWindow::default_korea();

    // Runs were missed until 20 December, 10:00 (slot 5). Of the deliveries due by then whose
    // customers allow slot 5, one is scheduled for the 28th and one's index entry is corrupt.
    let late = utc("2026-12-20T01:00:00Z");
    let slot = SlotRun::containing(late);
    let early: Vec<_> = deliveries
        .iter()
        .filter(|d| start_of_day(d.send_date) <= late && !d.dnd.contains(slot.slot))
        .collect();
    let scheduled = early[0];
    let dec28 = utc("2026-12-28T01:00:00Z");
    set_on(
        &month,
        scheduled,
        "SET available_at = :t",
        &[(":t", "2026-12-28T01:00:00Z")],
    )
    .await;
    let corrupt = early[1];
    set_on(&month, corrupt, "SET preferred_channel = :c", &[(":c", "fax")]).await;

    // Two runs of that slot at once: each of the others is enqueued exactly once.
    let (a, b) = tokio::join!(
        dispatch(&deps, late, Some("run-a")),
        dispatch(&deps, late, Some("run-b"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let due = &early[2..];
    assert!(due.len() > 20, "{}", due.len());
    let enqueued = a.enqueued_email + a.enqueued_sms + b.enqueued_email + b.enqueued_sms;
    assert_eq!(enqueued, due.len() as u64, "{a:?} {b:?}");
    assert_eq!(
        a.corrupt + b.corrupt,
        1,
        "the corrupt entry is parked once: {a:?} {b:?}"
    );
    // ... with a failure record an operator can act on (ids and the reason, nothing personal),
    let failures = failure_log(&month);
    let record = failures
        .get(Some(cycle()), &corrupt.id(), FailureStage::Dispatch)
        .await
        .unwrap()
        .expect("a failure record for the corrupt entry");
    assert_eq!(record.code, "corrupt-entry");
    assert!(record.reason.contains("preferred_channel"), "{}", record.reason);
    assert!(record.reason.contains("\"fax\""), "{}", record.reason);
    assert!(record.occurrences >= 1 && record.occurrences <= 2, "{record:?}");
    // ... and out of the due index: later runs do not see it again.
    let parked = state_of(&month, corrupt).await;
    assert!(!parked.contains_key("due_pk"), "{parked:?}");
    assert!(parked.contains_key("parked_reason"));
    let mut messages = drain(&month, "EmailQueue").await;
    messages.extend(drain(&month, "SmsQueue").await);
    let mut ids: Vec<_> = messages.iter().map(|m| m.delivery_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), messages.len(), "one message per delivery");
    assert_eq!(ids.len(), due.len());
    assert!(!ids.contains(&scheduled.id()), "a scheduled send waits");

    // Repaired (the data, and back in the index, as an operator's resend does), it is due like
    // any other.
    let original = corrupt.preferred_channel.as_str();
    let due_pk = adapters::deliveries::due_key(cycle(), corrupt.due_bucket());
    let repaired = [(":c", original), (":b", due_pk.as_str())];
    let repair = "SET preferred_channel = :c, due_pk = :b REMOVE parked_reason, parked_at";
    set_on(&month, corrupt, repair, &repaired).await;

    // Nothing stays QUEUED without a message: a QUEUED delivery no sender took (here, none
    // runs) is enqueued again by the first run after its re-check time, once per delivery.
    let stale = dispatch(&deps, late + chrono::Duration::hours(4), None).await.unwrap();
    let slot7 = SlotRun::containing(late + chrono::Duration::hours(4)).slot;
    let stale_due = due.iter().filter(|d| !d.dnd.contains(slot7)).count();
    assert!(stale_due > 0);
    assert_eq!(stale.requeued, stale_due as u64, "{stale:?}");
    drain(&month, "EmailQueue").await;
    drain(&month, "SmsQueue").await;

    // The scheduled one goes on the 28th in its first allowed slot, not before.
    let window = ContactWindow::new(scheduled.dnd, quiet).unwrap();
    let its_slot = window.next_allowed_slot_start(dec28);
    let before = dispatch(&deps, its_slot - chrono::Duration::hours(2), None)
        .await
        .unwrap();
    let at = dispatch(&deps, its_slot, None).await.unwrap();
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

    // Channel policy: with email disabled, email customers go to SMS; with none, delivery
    // pauses (everything stays READY and due). The operators' runtime setting overrides the
    // configured policy from the next run on.
    let deps = dispatch_deps(&month).await;
    let settings = deps.settings.clone().expect("DispatchSlot reads the runtime settings");
    set_policy(&month, &settings, "sms", 0).await;
    let end = utc("2026-12-31T03:00:00Z"); // 12:00 Seoul
    let r = dispatch(&deps, end, None).await.unwrap();
    assert_eq!(
        (r.policy.as_str(), r.policy_source.as_str()),
        ("sms", "setting"),
        "{r:?}"
    );
    assert_eq!(r.enqueued_email, 0, "{r:?}");
    for m in drain(&month, "SmsQueue").await {
        assert_eq!(m.channel, domain::Channel::Sms);
    }
    set_policy(&month, &settings, "none", 1).await;
    let next = end + chrono::Duration::hours(2);
    let ready_now = |ds: &[domain::Delivery]| -> u64 {
        ds.iter()
            .filter(|d| d.state == DeliveryState::Ready && !d.dnd.contains(SlotRun::containing(next).slot))
            .count() as u64
    };
    let before = month.deliveries.shard(cycle(), 0).await.unwrap();
    let r = dispatch(&deps, next, None).await.unwrap();
    // Paused: the READY ones this slot allows, and QUEUED ones due for their re-check.
    assert_eq!(r.enqueued_email + r.enqueued_sms, 0, "{r:?}");
    assert!(r.paused >= ready_now(&before) && r.paused > 0, "{r:?}");
    let after = month.deliveries.shard(cycle(), 0).await.unwrap();
    let states = |ds: &[domain::Delivery]| -> Vec<(String, DeliveryState)> {
        ds.iter()
            .map(|d| (d.customer_id.as_str().to_owned(), d.state))
            .collect()
    };
    assert_eq!(states(&after), states(&before), "a paused run changes no delivery");
    // A stored value that does not parse stops the run with the setting named.
    set_policy(&month, &settings, "fax", 2).await;
    let e = dispatch(&deps, next, None).await.unwrap_err();
    assert!(e.to_string().contains("channel-policy"), "{e}");
    // Without a setting the configured policy applies.
    delete_setting(&month, &settings).await;
    let mut email_only = deps;
    email_only.config.policy = "email".parse().unwrap();
    let r = dispatch(&email_only, next, None).await.unwrap();
    assert_eq!(
        (r.policy.as_str(), r.policy_source.as_str()),
        ("email", "config"),
        "{r:?}"
    );
    assert_eq!(r.enqueued_sms, 0, "{r:?}");
}

/// Writes revision `previous + 1` of the channel policy, as the admin API does.
async fn set_policy(month: &Month, settings: &adapters::settings::SettingsStore, value: &str, previous: u64) {
    let put = settings
        .put(
            adapters::settings::CHANNEL_POLICY,
            value,
            previous,
            &format!("test-{previous}"),
            "arn:aws:iam::123456789012:user/test",
            Utc::now(),
        )
        .unwrap();
    adapters::dynamodb_client(&month.config)
        .transact_write_items()
        .transact_items(aws_sdk_dynamodb::types::TransactWriteItem::builder().put(put).build())
        .send()
        .await
        .unwrap();
}

async fn delete_setting(month: &Month, settings: &adapters::settings::SettingsStore) {
    adapters::dynamodb_client(&month.config)
        .delete_item()
        .table_name(settings.table())
        .key(
            "pk",
            AttributeValue::S(adapters::settings::key(adapters::settings::CHANNEL_POLICY)),
        )
        .send()
        .await
        .unwrap();
}

/// The continuation queue's SQS event for one received job, as Lambda delivers it.
fn sqs_event(job: &adapters::queue::Job) -> serde_json::Value {
    serde_json::json!({"Records": [{
        "messageId": job.message_id,
        "receiptHandle": job.receipt_handle,
        "body": job.body,
        "attributes": {},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:ap-northeast-2:123456789012:continuation",
        "awsRegion": "ap-northeast-2"
    }]})
}

async fn invoke(deps: &dispatch_slot::Deps, payload: serde_json::Value) -> Result<serde_json::Value, String> {
    let ctx = local_run::invocation(Duration::from_secs(900));
    dispatch_slot::handle(deps, LambdaEvent::new(payload, ctx))
        .await
        .map_err(|e| e.to_string())
}

/// Follows a run's continuations through the queue, as its SQS trigger
/// would (bounded: at most 60); returns the reports and the events.
async fn follow(deps: &dispatch_slot::Deps, first: DispatchReport) -> (Vec<DispatchReport>, Vec<DispatchEvent>) {
    let queue = deps.continuation.as_ref().expect("a continuation queue");
    let (mut reports, mut events) = (vec![first], Vec::new());
    for _ in 0..60 {
        if !reports.last().unwrap().continued {
            break;
        }
        let jobs = queue.receive(10, 1).await.unwrap();
        assert_eq!(jobs.len(), 1, "one continuation per run");
        events.push(dispatch_slot::parse_event(&jobs[0].body).unwrap());
        let answer = invoke(deps, sqs_event(&jobs[0])).await.unwrap();
        let mut got: Vec<DispatchReport> = serde_json::from_value(answer).unwrap();
        assert_eq!(got.len(), 1);
        queue.delete(&jobs[0]).await.unwrap();
        reports.push(got.remove(0));
    }
    (reports, events)
}

fn enqueued(reports: &[DispatchReport]) -> u64 {
    reports.iter().map(|r| r.enqueued_email + r.enqueued_sms).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_messages_are_put_back_and_runs_near_their_deadline_continue_through_the_queue() {
    let (_data, month) = loaded("dispatch-continue", 120, 120).await.unwrap();
    assert_eq!(
        month.settle("settle-2026-11").await.unwrap().status,
        ExecutionStatus::Succeeded
    );
    let mut deps = dispatch_deps(&month).await;
    deps.config.recheck_after = chrono::Duration::days(60);
    deps.email.backoff = adapters::retry::Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
        max_attempts: 5,
    };
    let ready_for = |slot: SlotRun, all: &[domain::delivery::Delivery]| -> Vec<String> {
        all.iter()
            .filter(|d| d.state == DeliveryState::Ready && start_of_day(d.send_date) <= slot.start())
            .filter(|d| !d.dnd.contains(slot.slot))
            .map(|d| d.id())
            .collect()
    };

    // SQS keeps refusing part of every email batch: what it still refuses after the retries
    // goes back to READY, unchanged; nothing is QUEUED without a message.
    let dec20 = SlotRun::containing(utc("2026-12-20T01:00:00Z"));
    let before = month.deliveries.shard(cycle(), 0).await.unwrap();
    let due = ready_for(dec20, &before);
    let email_queue = month.resources.queue_url("EmailQueue").unwrap();
    let email_name = email_queue.rsplit('/').next().unwrap();
    month.emulator.fail_send_batch(email_name, 1000, false).await.unwrap();
    let r = dispatch(&deps, dec20.start(), Some("refused")).await.unwrap();
    month.emulator.fail_send_batch(email_name, 0, false).await.unwrap();
    assert!(r.reverted > 0, "{r:?}");
    assert_eq!(
        r.enqueued_email + r.enqueued_sms + r.reverted,
        due.len() as u64,
        "{r:?}"
    );
    let mut messages = drain(&month, "EmailQueue").await;
    messages.extend(drain(&month, "SmsQueue").await);
    let after = month.deliveries.shard(cycle(), 0).await.unwrap();
    let queued: Vec<String> = after
        .iter()
        .filter(|d| d.state == DeliveryState::Queued)
        .map(|d| d.id())
        .collect();
    let mut sent: Vec<String> = messages.iter().map(|m| m.delivery_id.clone()).collect();
    sent.sort();
    let mut queued_sorted = queued.clone();
    queued_sorted.sort();
    assert_eq!(
        sent, queued_sorted,
        "exactly the QUEUED deliveries have a message, once"
    );
    let put_back: Vec<&domain::delivery::Delivery> = after
        .iter()
        .filter(|d| due.contains(&d.id()) && d.state == DeliveryState::Ready)
        .collect();
    assert_eq!(put_back.len() as u64, r.reverted);
    for d in &put_back {
        let was = before.iter().find(|b| b.id() == d.id()).unwrap();
        assert_eq!(d.available_at, was.available_at, "put back as it was");
    }
    // The same slot again (SQS answering again) enqueues exactly those.
    let again = dispatch(&deps, dec20.start(), Some("again")).await.unwrap();
    assert_eq!(again.enqueued_email + again.enqueued_sms, r.reverted, "{again:?}");
    assert_eq!(again.reverted, 0);
    let mut resent: Vec<String> = drain(&month, "EmailQueue")
        .await
        .into_iter()
        .map(|m| m.delivery_id)
        .collect();
    resent.extend(drain(&month, "SmsQueue").await.into_iter().map(|m| m.delivery_id));
    resent.sort();
    let mut expected: Vec<String> = put_back.iter().map(|d| d.id()).collect();
    expected.sort();
    assert_eq!(resent, expected);

    // Every run "nears its deadline" after one entry of each bucket: it stops, and continues
    // through the continuation queue, which invokes the function with an SQS event.
    deps.config.page_size = 1;
    deps.config.deadline_margin = Duration::from_secs(3600);
    let dec31 = SlotRun::containing(utc("2026-12-31T03:00:00Z"));
    let due = ready_for(dec31, &month.deliveries.shard(cycle(), 0).await.unwrap());
    assert!(due.len() > 40, "{}", due.len());

    // With one continuation allowed, the chain stops after it; the rest stays due.
    deps.config.max_continuations = 1;
    let scheduled = serde_json::json!({"scheduled_time": dec31.start().to_rfc3339()});
    let first: DispatchReport = serde_json::from_value(invoke(&deps, scheduled.clone()).await.unwrap()).unwrap();
    assert!(!first.complete && first.continued, "{first:?}");
    let (short, events) = follow(&deps, first).await;
    assert_eq!(short.len(), 2, "{short:?}");
    let last = short.last().unwrap();
    assert!(!last.complete && !last.continued, "{last:?}");
    assert_eq!(events[0].continuation, 1);
    assert_eq!(events[0].run_id.as_deref(), Some(short[0].run_id.as_str()));
    assert_eq!(events[0].scheduled_time, dec31.start().to_rfc3339());
    let queue = deps.continuation.as_ref().unwrap();
    assert!(queue.receive(10, 0).await.unwrap().is_empty(), "no third run");

    // The next run of the slot goes on, continuing as often as it takes, and ends complete.
    deps.config.max_continuations = 100;
    let first: DispatchReport = serde_json::from_value(invoke(&deps, scheduled).await.unwrap()).unwrap();
    let (long, events) = follow(&deps, first).await;
    let (last, before) = long.split_last().unwrap();
    assert!(before.iter().all(|r| r.continued && !r.complete), "{long:?}");
    assert!(last.complete && !last.continued, "{last:?}");
    assert_eq!(
        events.iter().map(|e| e.continuation).collect::<Vec<_>>(),
        (1..long.len() as u32).collect::<Vec<_>>()
    );
    assert_eq!(enqueued(&short) + enqueued(&long), due.len() as u64);
    let mut messages = drain(&month, "EmailQueue").await;
    messages.extend(drain(&month, "SmsQueue").await);
    let mut ids: Vec<String> = messages.into_iter().map(|m| m.delivery_id).collect();
    ids.sort();
    let mut due = due;
    due.sort();
    assert_eq!(ids, due, "each due delivery enqueued once over the runs");

    // Events that are not a dispatch event get a clear error, and change nothing.
    let e = invoke(&deps, serde_json::json!({"scheduled": "2026-12-31T03:00:00Z"}))
        .await
        .unwrap_err();
    assert!(
        e.contains(r#"expected {"scheduled_time""#) && e.contains("field `scheduled`: unknown field"),
        "{e}"
    );
    let job = adapters::queue::Job {
        message_id: "m-1".into(),
        receipt_handle: "r".into(),
        body: "not json".into(),
    };
    let e = invoke(&deps, sqs_event(&job)).await.unwrap_err();
    assert!(e.contains("continuation message m-1"), "{e}");
}
