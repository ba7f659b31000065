//! Dispatch on a virtual clock: every slot of the month a settled cycle's
//! invoices go out, run against the emulator; then the checks of DESIGN §4.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use adapters::deliveries::partition_key;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use chrono::{DateTime, Utc};
use dispatch_slot::{DispatchEvent, DispatchReport};
use domain::delivery::start_of_day;
use domain::dispatch::SlotRun;
use domain::{ContactWindow, Cycle, DeliveryState, QuietWindow};
use integration_tests::{CYCLE, Month, generate};
use lambda_runtime::{Context as LambdaContext, LambdaEvent};

fn cycle() -> Cycle {
    CYCLE.parse().unwrap()
}

fn event(scheduled: DateTime<Utc>, run_id: Option<&str>) -> LambdaEvent<DispatchEvent> {
    let mut ctx = LambdaContext::default();
    let deadline = SystemTime::now() + Duration::from_secs(900);
    ctx.deadline = u64::try_from(deadline.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    LambdaEvent::new(
        DispatchEvent {
            scheduled_time: scheduled.to_rfc3339(),
            run_id: run_id.map(str::to_owned),
        },
        ctx,
    )
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
