//! Delivery evidence against the emulator, through the real handler
//! (`delivery_events::handle_batch`): a bounce delivered three times and out of
//! order with its delivery receipt is applied once and sends the invoice on to
//! SMS once, and a copy that finds its fallback made by another copy records and
//! counts it once; a complaint after its delivery suppresses the contact and never
//! falls back; events that name nothing known are recorded and acknowledged;
//! an event that overtakes its sender's completion write waits for it; and,
//! end to end with dispatch and the SMS sender, a permanent bounce ends in
//! exactly one SMS, sent in an allowed slot.

use std::time::Duration;

use adapters::deliveries::DeliveryStore;
use adapters::deliveries::claims::ClaimKey;
use adapters::dynamo::Item;
use adapters::evidence::{EvidenceLog, EvidenceOutcome};
use adapters::suppressions::{SuppressionReason, SuppressionStore};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, TimeZone, Utc};
use delivery_events::{Count, EvidenceReport};
use domain::pii::Field;
use domain::slots::ContactWindow;
use domain::{Channel, DeliveryId, QuietWindow, SlotSet};
use integration_tests::senders::{Stack, mid_morning, pollers, stack};
use lambda_runtime::LambdaEvent;
use local_run::seed::{Seeded, seed_queued, sent_times};
use local_run::send::{VirtualClock, drain};
use serde_json::{Value, json};

/// 20:30 Asia/Seoul on 15 December 2026: the slot 20:00-22:00 touches the quiet window
/// (21:00-08:00), so an SMS may go at 08:00 the next morning at the earliest.
fn evening() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 15, 11, 30, 0).unwrap()
}

/// 08:00 Asia/Seoul on 16 December 2026.
fn next_morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 15, 23, 0, 0).unwrap()
}

struct Evidence {
    stack: Stack,
    deps: delivery_events::Deps,
    store: DeliveryStore,
    log: EvidenceLog,
    suppressions: SuppressionStore,
    seeded: Seeded,
}

/// A stack with `n` queued email deliveries (no DND), and the function's dependencies as
/// the template configures them, at `now`.
async fn setup(name: &str, n: u32, now: DateTime<Utc>) -> Evidence {
    let stack = stack(name).await;
    let seeded = seed_queued(&stack.config, &stack.resources, n, 100, 0, SlotSet::EMPTY)
        .await
        .unwrap();
    let env = stack.resources.function_env("DeliveryEventsFunction");
    let mut deps = delivery_events::Deps::load(&stack.config, &env).await.unwrap();
    deps.clock = std::sync::Arc::new(move || now);
    let ddb = adapters::dynamodb_client(&stack.config);
    Evidence {
        store: DeliveryStore::new(ddb.clone(), stack.var("DELIVERIES_TABLE")),
        log: EvidenceLog::new(ddb.clone(), env["EVIDENCE_TABLE"].clone()),
        suppressions: SuppressionStore::new(ddb, env["SUPPRESSION_TABLE"].clone()),
        deps,
        stack,
        seeded,
    }
}

impl Evidence {
    fn id(&self, i: usize) -> DeliveryId {
        DeliveryId::parse(&self.seeded.deliveries[i].0).unwrap()
    }

    /// The email sender's claim and completion with `mid`, as it records a send.
    async fn sent(&self, i: usize, mid: &str) {
        let key = self.claimed(i).await;
        let now = Utc::now();
        assert!(self.store.complete(&key, "test-claim", mid, now).await.is_applied());
    }

    /// The email sender's claim alone: the send is on its way, its completion not written.
    async fn claimed(&self, i: usize) -> ClaimKey {
        let key = ClaimKey {
            id: self.id(i),
            channel: Channel::Email,
        };
        let now = Utc::now();
        let lease = now + chrono::Duration::minutes(10);
        let outcome = self.store.claim(&key, "test-claim", lease, now).await.unwrap();
        assert!(
            matches!(outcome, adapters::deliveries::claims::ClaimOutcome::Claimed(_)),
            "{outcome:?}"
        );
        key
    }

    async fn item(&self, i: usize) -> Item {
        let id = self.id(i);
        self.store.raw(id.cycle, id.shard, &id.customer).await.unwrap().unwrap()
    }

    /// The keyed hash of the seeded customer's email, as the suppression list keys it.
    fn email_hash(&self, i: usize) -> String {
        let keys = datagen::keyring_from_spec(std::env::var("PII_KEYS").ok().as_deref()).unwrap();
        keys.lookup_hash(Field::Email, &self.seeded.emails[i])
    }

    async fn batch(&self, records: Vec<SqsMessage>) -> (SqsBatchResponse, EvidenceReport) {
        let mut event = SqsEvent::default();
        event.records = records;
        let ctx = local_run::invocation(Duration::from_secs(30));
        delivery_events::handle_batch(&self.deps, LambdaEvent::new(event, ctx))
            .await
            .unwrap()
    }
}

fn text<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name).and_then(|v| v.as_s().ok()).map_or("", String::as_str)
}

fn number(item: &Item, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

fn failures(r: &SqsBatchResponse) -> Vec<&str> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

/// An SQS record of the evidence queue, received `receives` times.
fn record(message_id: &str, body: &str, receives: u32) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(message_id.into());
    m.receipt_handle = Some(format!("receipt-{message_id}"));
    m.body = Some(body.into());
    m.event_source = Some("aws:sqs".into());
    m.attributes
        .insert("ApproximateReceiveCount".into(), receives.to_string());
    m
}

/// The message tags the email sender gives a delivery (`evidence_tags`), as SES echoes them.
fn tags(id: &DeliveryId) -> Value {
    json!({
        "ses:configuration-set": ["evidence-test"],
        "cycle": [id.cycle.to_string()], "shard": [format!("{:05}", id.shard)],
        "customer": [id.customer.as_str()], "channel": ["email"], "round": ["0"], "template": ["v1"],
    })
}

/// An SES event as its configuration set's EventBridge destination publishes it, with a
/// recipient in every place SES puts one.
fn ses(event_id: &str, kind: &str, mid: &str, tags: Value) -> String {
    let recipient = "seed.customer0000000@example.net";
    let (detail_type, object) = match kind {
        "Delivery" => (
            "Email Delivered",
            json!({"delivery": {"timestamp": "2026-12-15T01:31:01.200Z", "recipients": [recipient], "smtpResponse": "250 ok"}}),
        ),
        "Bounce" => (
            "Email Bounced",
            json!({"bounce": {"bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2026-12-15T01:31:02.000Z",
                "bouncedRecipients": [{"emailAddress": recipient, "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}}),
        ),
        "Complaint" => (
            "Email Complaint Received",
            json!({"complaint": {"complaintFeedbackType": "abuse", "timestamp": "2026-12-15T02:00:00.000Z",
                "complainedRecipients": [{"emailAddress": recipient}]}}),
        ),
        other => panic!("{other}"),
    };
    let mut detail = json!({
        "eventType": kind,
        "mail": {"timestamp": "2026-12-15T01:31:00.000Z", "source": "billing@example.com", "messageId": mid,
            "destination": [recipient], "tags": tags},
    });
    for (k, v) in object.as_object().unwrap() {
        detail[k] = v.clone();
    }
    json!({
        "version": "0", "id": event_id, "detail-type": detail_type, "source": "aws.ses",
        "account": "123456789012", "time": "2026-12-15T01:31:05Z", "region": "ap-northeast-2",
        "resources": ["arn:aws:ses:ap-northeast-2:123456789012:configuration-set/evidence-test"],
        "detail": detail,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_delivered_three_times_and_out_of_order_is_applied_once_and_falls_back_once() {
    let e = setup("evidence-bounce", 2, evening()).await;
    e.sent(0, "ses-m0").await;
    e.sent(1, "ses-m1").await;
    let (d0, d1) = (e.id(0), e.id(1));
    let bounce0 = ses("e-b0", "Bounce", "ses-m0", tags(&d0));
    let delivery0 = ses("e-d0", "Delivery", "ses-m0", tags(&d0));
    let delivery1 = ses("e-d1", "Delivery", "ses-m1", tags(&d1));
    let bounce1 = ses("e-b1", "Bounce", "ses-m1", tags(&d1));

    // D0: the bounce, then its delivery receipt with the bounce again, then the bounce a
    // third time. D1: its delivery receipt, then its bounce.
    let mut fallbacks = 0;
    let batches = [
        vec![record("q1", &bounce0, 1), record("q2", &delivery1, 1)],
        vec![
            record("q3", &delivery0, 1),
            record("q4", &bounce0, 2),
            record("q5", &bounce1, 1),
        ],
        vec![record("q6", &bounce0, 3)],
    ];
    for batch in batches {
        let (response, report) = e.batch(batch).await;
        assert!(failures(&response).is_empty(), "{response:?}");
        fallbacks += report.total(Count::EvidenceFallbacks);
    }
    assert_eq!(fallbacks, 2, "one fallback per bounced delivery");

    for (i, event) in [(0, "e-b0"), (1, "e-b1")] {
        let item = e.item(i).await;
        assert_eq!(
            (text(&item, "state"), text(&item, "route"), text(&item, "evidence")),
            ("READY", "sms", "BOUNCED"),
            "{i}: {item:?}"
        );
        assert_eq!(number(&item, "evidence_rank"), Some(2));
        assert_eq!(text(&item, "evidence_type"), "Bounce/Permanent/General");
        assert_eq!(text(&item, "evidence_channel"), "email");
        // Due at 08:00 the next morning, back in the Due index; the send's history kept.
        assert_eq!(text(&item, "available_at"), "2026-12-15T23:00:00Z");
        assert!(!text(&item, "due_pk").is_empty());
        assert_eq!(text(&item, "provider_message_id"), format!("ses-m{i}"));
        assert_eq!(number(&item, "attempts_email"), Some(1));
        assert!(!item.contains_key("claim_id") && !item.contains_key("lease_until"));
        let logged = e.log.get(event).await.unwrap().unwrap();
        assert_eq!(logged.outcome, Some(EvidenceOutcome::Applied), "{logged:?}");
        assert_eq!(logged.delivery_id.as_deref(), Some(e.seeded.deliveries[i].0.as_str()));
        // The contact is suppressed, under the keyed hash of its address.
        let s = e
            .suppressions
            .get(&e.email_hash(i), true)
            .await
            .unwrap()
            .expect("suppressed");
        assert_eq!((s.reason, s.source.as_str()), (SuppressionReason::Bounce, event));
    }
    // The receipt that came after D0's bounce changed nothing; D1's was applied before its bounce.
    let d0_receipt = e.log.get("e-d0").await.unwrap().unwrap();
    assert_eq!(d0_receipt.outcome, Some(EvidenceOutcome::Stale));
    let d1_receipt = e.log.get("e-d1").await.unwrap().unwrap();
    assert_eq!(d1_receipt.outcome, Some(EvidenceOutcome::Applied));

    // Another permanent bounce of the same message (a new event id) after the fallback:
    // nothing moves, nothing falls back again.
    let again = ses("e-b0-again", "Bounce", "ses-m0", tags(&d0));
    let (response, report) = e.batch(vec![record("q7", &again, 1)]).await;
    assert!(failures(&response).is_empty());
    assert_eq!(report.total(Count::EvidenceFallbacks), 0);
    assert_eq!(
        e.log.get("e-b0-again").await.unwrap().unwrap().outcome,
        Some(EvidenceOutcome::Stale)
    );
    assert_eq!(text(&e.item(0).await, "available_at"), "2026-12-15T23:00:00Z");
}

/// Two copies of one bounce: the first makes the fallback and is stopped before it records
/// the event (a crash, a timeout, or a copy in the same batch that loses the race to the
/// log); the second finds the fallback done under the event's own token. It records the
/// event as applied and counts the one fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_whose_fallback_another_copy_made_is_recorded_applied_and_counted_once() {
    let e = setup("evidence-copies", 1, evening()).await;
    e.sent(0, "ses-c0").await;
    let bounce = ses("e-c0", "Bounce", "ses-c0", tags(&e.id(0)));
    let update =
        adapters::deliveries::evidence::EvidenceUpdate::of(&domain::evidence::parse(&bounce).unwrap()).unwrap();
    let first = e
        .store
        .fall_back_on_evidence(&update, QuietWindow::default_korea(), evening())
        .await
        .unwrap();
    assert!(
        matches!(first, adapters::deliveries::evidence::FallBack::Applied { .. }),
        "{first:?}"
    );

    let (response, report) = e.batch(vec![record("q1", &bounce, 2)]).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert_eq!(report.total(Count::EvidenceFallbacks), 1, "{report:?}");
    assert_eq!(
        e.log.get("e-c0").await.unwrap().unwrap().outcome,
        Some(EvidenceOutcome::Applied)
    );
    let item = e.item(0).await;
    assert_eq!(
        (text(&item, "state"), text(&item, "route"), text(&item, "available_at")),
        ("READY", "sms", "2026-12-15T23:00:00Z")
    );

    // A third copy, after the event is recorded: nothing more is counted.
    let (response, report) = e.batch(vec![record("q2", &bounce, 3)]).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert_eq!(report.total(Count::EvidenceFallbacks), 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_after_its_delivery_suppresses_the_contact_and_never_falls_back() {
    let e = setup("evidence-complaint", 1, mid_morning()).await;
    e.sent(0, "ses-c0").await;
    let d0 = e.id(0);
    let (r1, first) = e
        .batch(vec![record("q1", &ses("e-d", "Delivery", "ses-c0", tags(&d0)), 1)])
        .await;
    let (r2, second) = e
        .batch(vec![record("q2", &ses("e-c", "Complaint", "ses-c0", tags(&d0)), 1)])
        .await;
    // A second receipt of the same message (another event id) after the complaint.
    let (r3, third) = e
        .batch(vec![record("q3", &ses("e-d2", "Delivery", "ses-c0", tags(&d0)), 1)])
        .await;
    for r in [&r1, &r2, &r3] {
        assert!(failures(r).is_empty(), "{r:?}");
    }
    assert_eq!(first.total(Count::Delivered), 1);
    assert_eq!(
        (
            second.total(Count::Complained),
            second.total(Count::SuppressedContacts),
            second.total(Count::EvidenceFallbacks)
        ),
        (1, 1, 0)
    );
    assert_eq!(third.total(Count::Delivered), 0);
    let item = e.item(0).await;
    assert_eq!(
        (
            text(&item, "state"),
            text(&item, "evidence"),
            number(&item, "evidence_rank")
        ),
        ("SENT_EMAIL", "COMPLAINED", Some(3))
    );
    assert!(!item.contains_key("route") && !item.contains_key("due_pk"), "{item:?}");
    assert_eq!(text(&item, "evidence_type"), "Complaint/abuse");
    let s = e
        .suppressions
        .get(&e.email_hash(0), true)
        .await
        .unwrap()
        .expect("suppressed");
    assert_eq!(s.reason, SuppressionReason::Complaint);
    assert_eq!(s.delivery_id.as_deref(), Some(e.seeded.deliveries[0].0.as_str()));
    assert_eq!(
        e.log.get("e-d2").await.unwrap().unwrap().outcome,
        Some(EvidenceOutcome::Stale)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_that_name_nothing_known_are_recorded_and_acknowledged() {
    let logs = local_run::logs::capture();
    let e = setup("evidence-unknown", 1, mid_morning()).await;
    let unknown = DeliveryId::parse("2026-11#00000#C9999999").unwrap();
    let no_tags = json!({"ses:configuration-set": ["evidence-test"]});
    let email = "kim.minjun.1987@example-mail.co.kr";
    let mut odd_tags = tags(&e.id(0));
    odd_tags["customer"] = json!([email]);
    let records = vec![
        record("q1", &ses("e-u1", "Delivery", "ses-x1", tags(&unknown)), 1),
        record("q2", &ses("e-u2", "Bounce", "ses-x2", no_tags), 1),
        record("q3", "not json at all", 1),
        record("q4", &ses("e-u4", "Delivery", "ses-x4", odd_tags), 1),
    ];
    let (response, report) = e.batch(records).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert_eq!(report.total(Count::UnknownEvidence), 4, "{report:?}");
    for id in ["e-u1", "e-u2"] {
        let r = e.log.get(id).await.unwrap().unwrap();
        assert_eq!(r.outcome, Some(EvidenceOutcome::UnknownMessage), "{r:?}");
    }
    assert_eq!(
        e.log.get("e-u1").await.unwrap().unwrap().delivery_id.as_deref(),
        Some("2026-11#00000#C9999999")
    );
    // The odd event is not recorded; nothing of it (nor of any recipient) is logged.
    assert!(e.log.get("e-u4").await.unwrap().is_none());
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logs.contains("detail.mail.tags.customer"), "the field is named: {logs}");
    for secret in [email, "seed.customer0000000@example.net"] {
        assert!(!logs.contains(secret), "{secret} leaked");
    }
    // The bounce without tags suppressed nobody.
    assert!(e.suppressions.get(&e.email_hash(0), true).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_ahead_of_its_senders_completion_waits_for_it_then_applies() {
    let e = setup("evidence-early", 2, mid_morning()).await;
    let key = e.claimed(0).await;
    e.claimed(1).await;
    let receipt = ses("e-early", "Delivery", "ses-late", tags(&e.id(0)));
    let (response, report) = e.batch(vec![record("q1", &receipt, 1)]).await;
    assert_eq!(failures(&response), ["q1"], "handed back to wait");
    assert_eq!(report.retried, 1);
    assert!(!e.item(0).await.contains_key("evidence"));
    assert!(
        e.log.get("e-early").await.unwrap().is_none(),
        "not recorded while it waits"
    );

    // The completion lands; the event comes again.
    assert!(
        e.store
            .complete(&key, "test-claim", "ses-late", Utc::now())
            .await
            .is_applied()
    );
    let (response, report) = e.batch(vec![record("q1", &receipt, 2)]).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert_eq!(report.total(Count::Delivered), 1);
    let item = e.item(0).await;
    assert_eq!(
        (text(&item, "state"), text(&item, "evidence")),
        ("SENT_EMAIL", "DELIVERED")
    );

    // A completion that never comes: after its receives, the event is recorded stale.
    let orphan = ses("e-orphan", "Delivery", "ses-never", tags(&e.id(1)));
    let (response, _) = e.batch(vec![record("q2", &orphan, 5)]).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert_eq!(
        e.log.get("e-orphan").await.unwrap().unwrap().outcome,
        Some(EvidenceOutcome::Stale)
    );
    assert_eq!(text(&e.item(1).await, "state"), "SENDING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_bounce_ends_in_exactly_one_sms_sent_in_an_allowed_slot() {
    let e = setup("evidence-e2e", 2, evening()).await;
    let quiet = QuietWindow::default_korea();
    // The email goes at 10:30 through the real sender and the mock provider.
    let clock = VirtualClock::at(mid_morning());
    let bodies = Default::default();
    let senders = pollers(
        &e.stack,
        [
            e.stack.deps(Channel::Email, 0.0, 0.0, &clock).await,
            e.stack.deps(Channel::Sms, 0.0, 0.0, &clock).await,
        ],
        &bodies,
        None,
    );
    let (stats, drained) = drain(&senders, 2, Duration::from_secs(120)).await.unwrap();
    assert!(drained && stats.report.sent == 2, "{stats:?}");
    let mid = text(&e.item(0).await, "provider_message_id").to_owned();
    assert!(!mid.is_empty());

    // Its permanent bounce arrives at 20:30 (twice): the invoice is due by SMS at 08:00.
    let bounce = ses("e-bounce", "Bounce", &mid, tags(&e.id(0)));
    let (r, report) = e.batch(vec![record("q1", &bounce, 1), record("q2", &bounce, 2)]).await;
    assert!(failures(&r).is_empty(), "{r:?}");
    assert_eq!(report.total(Count::EvidenceFallbacks), 1);

    let dispatch = dispatch_slot::Deps::load(&e.stack.config, &e.stack.resources.function_env("DispatchSlotFunction"))
        .await
        .unwrap();
    let run = |at: DateTime<Utc>| {
        let dispatch = &dispatch;
        async move {
            let ctx = local_run::invocation(Duration::from_secs(900));
            dispatch_slot::dispatch(dispatch, LambdaEvent::new(dispatch_slot::DispatchEvent::at(at), ctx))
                .await
                .unwrap()
        }
    };
    // 18:00: not yet due. 08:00 the next morning: on SMS only.
    let r = run(Utc.with_ymd_and_hms(2026, 12, 15, 9, 0, 0).unwrap()).await;
    assert_eq!(r.enqueued_email + r.enqueued_sms, 0, "{r:?}");
    let r = run(next_morning()).await;
    assert_eq!((r.enqueued_email, r.enqueued_sms), (0, 1), "{r:?}");
    clock.set(next_morning() + chrono::Duration::minutes(1));
    let (stats, _) = drain(&senders, 2, Duration::from_secs(120)).await.unwrap();
    assert_eq!(stats.report.sent, 1, "{stats:?}");
    // The same bounce once more, and the next slot's run: nothing more.
    let (_, report) = e.batch(vec![record("q3", &bounce, 3)]).await;
    assert_eq!(report.total(Count::EvidenceFallbacks), 0);
    let r = run(next_morning() + chrono::Duration::hours(2)).await;
    assert_eq!(r.enqueued_email + r.enqueued_sms, 0, "{r:?}");

    let counts = e.stack.log().count_by_key().await.unwrap();
    let (d0, d1) = (&e.seeded.deliveries[0].0, &e.seeded.deliveries[1].0);
    assert_eq!(counts.get(&format!("{d0}#email")), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&format!("{d0}#sms")), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&format!("{d1}#sms")), None, "{counts:?}");
    assert_eq!(counts.values().sum::<u64>(), 3, "{counts:?}");
    let item = e.item(0).await;
    assert_eq!(text(&item, "state"), "SENT_SMS");
    let sent = sent_times(&e.stack.config, &e.stack.var("DELIVERIES_TABLE"))
        .await
        .unwrap();
    let (_, at, dnd) = sent.iter().find(|(id, ..)| id == d0).expect("the SMS's send time");
    assert!(ContactWindow::new(*dnd, quiet).unwrap().allows(*at), "sent at {at}");
    assert!(*at >= next_morning(), "sent at {at}");
}
