//! The senders against the emulator: exactly one accepted send per delivery
//! and channel whatever SQS and crashes do, sends only in allowed slots, bad
//! input parked without harming its batch, and no personal data in logs or
//! on the queues.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::failures::FailureLog;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{TimeZone, Utc};
use domain::delivery::{DeliveryMessage, utc_seconds};
use domain::dispatch::SlotRun;
use domain::slots::{ContactWindow, Slot};
use domain::{Channel, QuietWindow, SlotSet};
use integration_tests::senders::{Stack, mid_morning, pollers, stack, stack_on_own_emulator};
use lambda_runtime::LambdaEvent;
use local_run::seed::{Seeded, seed_queued, sent_times};
use local_run::send::{PollStats, VirtualClock, drain};
use providers::{Accepted, BoxFuture, EmailProvider, OutgoingEmail, ProviderError};
use sender::CrashPoint;

/// Neither the logs nor any queue body nor any failure record holds a
/// generated address or phone number.
async fn assert_no_personal_data(
    stack: &Stack,
    seeded: &Seeded,
    logs: &Arc<Mutex<Vec<u8>>>,
    bodies: &Arc<Mutex<Vec<String>>>,
) {
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logs.len() > 1000, "the logs were captured ({} bytes)", logs.len());
    let bodies = bodies.lock().unwrap().join("\n");
    assert!(!bodies.is_empty());
    let failures = FailureLog::new(adapters::dynamodb_client(&stack.config), stack.var("FAILURES_TABLE"));
    let records = format!("{:?}", failures.page(Some(seeded.cycle), 1000, None).await.unwrap());
    for secret in seeded.emails.iter().chain(&seeded.phones) {
        let digits: String = secret.chars().filter(char::is_ascii_digit).collect();
        for text in [&logs, &bodies, &records] {
            assert!(!text.contains(secret.as_str()), "{secret} leaked");
            if secret.contains('-') {
                assert!(!text.contains(&digits), "{digits} leaked");
            }
        }
    }
}

/// Every accepted send, by idempotency key; no key twice.
async fn assert_one_send_each(stack: &Stack) -> BTreeMap<String, u64> {
    let counts = stack.log().count_by_key().await.unwrap();
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "accepted more than once: {dups:?}");
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_messages_and_four_consumers_never_send_twice() {
    let logs = local_run::logs::capture();
    let stack = stack("send-dup").await;
    let seeded = seed_queued(&stack.config, &stack.resources, 200, 100, 5, SlotSet::EMPTY)
        .await
        .unwrap();
    // Every message again, a third of them twice again: 2-3 copies of each.
    let sqs = adapters::sqs_client(&stack.config);
    for (i, (id, channel)) in seeded.deliveries.iter().enumerate() {
        let url = stack.var(if *channel == Channel::Email {
            "EMAIL_QUEUE_URL"
        } else {
            "SMS_QUEUE_URL"
        });
        let body = serde_json::to_string(&DeliveryMessage {
            delivery_id: id.clone(),
            channel: *channel,
            run_id: "copy".into(),
            copies: 0,
        })
        .unwrap();
        for _ in 0..(1 + usize::from(i % 3 == 0)) {
            sqs.send_message()
                .queue_url(&url)
                .message_body(&body)
                .send()
                .await
                .unwrap();
        }
    }
    let clock = VirtualClock::at(mid_morning());
    // Failures, and answers lost after the provider accepted.
    let deps = [
        stack.deps(Channel::Email, 0.05, 0.03, &clock).await,
        stack.deps(Channel::Sms, 0.05, 0.03, &clock).await,
    ];
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let pollers = pollers(&stack, deps, &bodies, None);
    let (stats, drained) = drain(&pollers, 4, Duration::from_secs(300)).await.unwrap();
    assert!(drained, "{stats:?}");

    let states = stack.states().await;
    let sent = states.get("SENT_EMAIL").copied().unwrap_or(0) + states.get("SENT_SMS").copied().unwrap_or(0);
    assert_eq!(sent + states.get("DEAD").copied().unwrap_or(0), 200, "{states:?}");
    let counts = assert_one_send_each(&stack).await;
    assert_eq!(counts.len() as u64, sent, "one accepted send per sent delivery");
    let r = &stats.report;
    assert!(r.duplicates_suppressed >= 200, "{r:?}");
    assert!(
        r.retried > 0 && r.recovered > 0,
        "failures and lost answers happened: {r:?}"
    );
    assert_eq!(r.unconfirmed, 0, "the mock can be asked: {r:?}");
    assert_no_personal_data(&stack, &seeded, &logs, &bodies).await;
}

/// The mock, but unable to answer "was this key accepted?", as SES.
struct CannotBeAsked(Arc<dyn EmailProvider>);

impl EmailProvider for CannotBeAsked {
    fn send_email<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        self.0.send_email(email)
    }
}

/// Crashes a fifth of the deliveries once each, at one of the three points.
/// The senders' clock runs sixty times faster than real time, so that a
/// dead sender's lease (the invocation's 60 s and the margin) ends after
/// about a real second. One invocation at a time per queue: a live
/// invocation that took longer than a real second (a loaded machine) would
/// otherwise see its claim taken over by a concurrent one, which on AWS
/// cannot happen (the lease outlasts the invocation's deadline). Returns the
/// pollers' stats and the ids crashed after the provider accepted.
async fn crash_run(stack: &Stack, can_ask: bool) -> (PollStats, HashSet<String>) {
    let start = mid_morning();
    let t0 = std::time::Instant::now();
    let fast: sender::Clock = Arc::new(move || {
        start + chrono::Duration::from_std(t0.elapsed() * 60).unwrap_or_else(|_| chrono::Duration::zero())
    });
    let clock = VirtualClock::at(start);
    let mut deps = stack.deps(Channel::Email, 0.0, 0.0, &clock).await;
    deps.clock = fast;
    deps.config.busy_delay_max = Duration::from_secs(1);
    let point_of = |id: &str| -> Option<CrashPoint> {
        let n: u32 = id.rsplit('C').next().and_then(|d| d.parse().ok()).unwrap_or(1);
        match (n % 5, n / 5 % 3) {
            (0, 0) => Some(CrashPoint::AfterClaim),
            (0, 1) => Some(CrashPoint::AfterAccept),
            (0, _) => Some(CrashPoint::AfterComplete),
            _ => None,
        }
    };
    let crashed = Arc::new(Mutex::new(HashSet::<String>::new()));
    let plan_crashed = crashed.clone();
    deps.crash = Some(Arc::new(move |id: &str, point: CrashPoint| {
        point_of(id) == Some(point) && plan_crashed.lock().unwrap().insert(id.to_owned())
    }));
    if !can_ask {
        deps.email = Arc::new(CannotBeAsked(deps.email.clone()));
    }
    let sms = stack.deps(Channel::Sms, 0.0, 0.0, &clock).await;
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let pollers = pollers(stack, [deps, sms], &bodies, Some(1));
    let (stats, drained) = drain(&pollers, 1, Duration::from_secs(240)).await.unwrap();
    assert!(drained, "{stats:?}");
    let crashed = crashed.lock().unwrap().clone();
    assert_eq!(crashed.len(), 12, "every planned crash happened");
    let after_accept = crashed
        .into_iter()
        .filter(|id| point_of(id) == Some(CrashPoint::AfterAccept))
        .collect();
    (stats, after_accept)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_lose_nothing_and_never_send_twice_even_with_a_provider_that_cannot_be_asked() {
    // A provider that can be asked: no crash sends twice.
    let stack_a = stack("send-crash").await;
    seed_queued(&stack_a.config, &stack_a.resources, 60, 60, 0, SlotSet::EMPTY)
        .await
        .unwrap();
    let (stats, after_accept) = crash_run(&stack_a, true).await;
    assert!(stats.crashed >= 4, "several invocations crashed: {stats:?}");
    assert!(!after_accept.is_empty());
    assert_eq!(
        stack_a.states().await.get("SENT_EMAIL").copied(),
        Some(60),
        "nothing lost"
    );
    let counts = assert_one_send_each(&stack_a).await;
    assert_eq!(counts.len(), 60);
    // (Recoveries are counted only by invocations that did not crash afterwards.)
    assert!(stats.report.recovered > 0, "{stats:?}");

    // A provider that cannot be asked (SES): the sender marks each call as started before
    // making it. The deliveries crashed between the provider's accept and the completion
    // write, and only those, are found with a call in doubt by the sender that takes them
    // over: UNCONFIRMED, each with a failure record, for an operator — never sent twice.
    let stack_b = stack("send-crash-ses").await;
    seed_queued(&stack_b.config, &stack_b.resources, 60, 60, 0, SlotSet::EMPTY)
        .await
        .unwrap();
    let (stats_b, after_accept) = crash_run(&stack_b, false).await;
    let states_b = stack_b.states().await;
    assert_eq!(
        states_b.get("SENT_EMAIL").copied(),
        Some(60 - after_accept.len() as u64),
        "{states_b:?}"
    );
    assert_eq!(
        states_b.get("UNCONFIRMED").copied(),
        Some(after_accept.len() as u64),
        "{states_b:?}"
    );
    // (Counted only by invocations that did not crash afterwards: the table above is exact.)
    assert!(stats_b.report.unconfirmed <= after_accept.len() as u64, "{stats_b:?}");
    let counts = stack_b.log().count_by_key().await.unwrap();
    assert!(counts.values().all(|n| *n == 1), "no delivery sent twice: {counts:?}");
    let unconfirmed: HashSet<String> = stack_b.deliveries_in("UNCONFIRMED").await.into_iter().collect();
    assert_eq!(
        unconfirmed, after_accept,
        "UNCONFIRMED exactly where a crash hit the window"
    );
    let records = FailureLog::new(
        adapters::dynamodb_client(&stack_b.config),
        stack_b.var("FAILURES_TABLE"),
    );
    let cycle = domain::Cycle::new(2026, 11).unwrap();
    let page = records.page(Some(cycle), 100, None).await.unwrap();
    let recorded: HashSet<String> = page
        .records
        .iter()
        .filter(|r| r.code == "send-unconfirmed")
        .map(|r| r.subject.clone())
        .collect();
    assert_eq!(
        recorded, after_accept,
        "each UNCONFIRMED delivery has its failure record"
    );
    println!(
        "crash window: {} of 60 deliveries crashed after the provider accepted; 0 sent twice, {} left UNCONFIRMED for an operator",
        after_accept.len(),
        unconfirmed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_start_only_in_allowed_slots_and_deferred_ones_go_in_the_next() {
    let stack = stack("send-slots").await;
    // Everybody's DND is 10:00-12:00.
    let dnd = SlotSet::EMPTY.with(Slot::new(5).unwrap());
    let seeded = seed_queued(&stack.config, &stack.resources, 40, 40, 4, dnd)
        .await
        .unwrap();
    let quiet = QuietWindow::default_korea();
    let clock = VirtualClock::at(Utc.with_ymd_and_hms(2026, 12, 14, 13, 30, 0).unwrap()); // 22:30 Seoul
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let pollers = pollers(
        &stack,
        [
            stack.deps(Channel::Email, 0.0, 0.0, &clock).await,
            stack.deps(Channel::Sms, 0.0, 0.0, &clock).await,
        ],
        &bodies,
        None,
    );
    // The queue backed up into the quiet window: nothing is sent, everything waits for 08:00.
    let (stats, drained) = drain(&pollers, 2, Duration::from_secs(120)).await.unwrap();
    assert!(drained);
    assert_eq!((stats.report.deferred, stats.report.sent), (40, 0), "{stats:?}");
    assert_eq!(stack.states().await.get("READY").copied(), Some(40));
    assert!(stack.log().count_by_key().await.unwrap().is_empty());

    let dispatch = dispatch_slot::Deps::load(&stack.config, &stack.resources.function_env("DispatchSlotFunction"))
        .await
        .unwrap();
    let at = |h: u32| Utc.with_ymd_and_hms(2026, 12, 14, 23, 0, 0).unwrap() + chrono::Duration::hours(i64::from(h) - 8);
    let run = |h: u32| {
        let dispatch = &dispatch;
        async move {
            let ctx = local_run::invocation(Duration::from_secs(900));
            dispatch_slot::dispatch(dispatch, LambdaEvent::new(dispatch_slot::DispatchEvent::at(at(h)), ctx))
                .await
                .unwrap()
        }
    };
    // 08:00: dispatch enqueues them all; the senders only get to them at 10:30, in the DND.
    let r = run(8).await;
    assert_eq!(r.enqueued_email + r.enqueued_sms, 40, "{r:?}");
    clock.set(at(10) + chrono::Duration::minutes(30));
    let (stats, _) = drain(&pollers, 2, Duration::from_secs(120)).await.unwrap();
    assert_eq!((stats.report.deferred, stats.report.sent), (40, 0), "{stats:?}");
    // 10:00's run has nothing for them; 12:00's does, and they go.
    let r = run(10).await;
    assert_eq!(r.enqueued_email + r.enqueued_sms, 0, "{r:?}");
    let r = run(12).await;
    assert_eq!(r.enqueued_email + r.enqueued_sms, 40, "{r:?}");
    clock.set(at(12) + chrono::Duration::minutes(1));
    let (stats, _) = drain(&pollers, 2, Duration::from_secs(120)).await.unwrap();
    assert_eq!(stats.report.sent, 40, "{stats:?}");
    let sent = sent_times(&stack.config, &stack.var("DELIVERIES_TABLE")).await.unwrap();
    assert_eq!(sent.len(), 40);
    for (id, t, dnd) in sent {
        let window = ContactWindow::new(dnd, quiet).unwrap();
        assert!(
            window.allows(t),
            "{id} sent at {} in a forbidden slot",
            utc_seconds::format(&t)
        );
        assert_eq!(SlotRun::containing(t), SlotRun::containing(at(12)), "{id}");
    }
    assert_one_send_each(&stack).await;
    let _ = seeded;
}

fn sqs_message(id: &str, body: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.receipt_handle = Some(format!("receipt-{id}"));
    m.body = Some(body.into());
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_parked_and_the_rest_of_their_batch_is_sent() {
    let logs = local_run::logs::capture();
    let stack = stack("send-bad").await;
    let seeded = seed_queued(&stack.config, &stack.resources, 4, 4, 0, SlotSet::EMPTY)
        .await
        .unwrap();
    let clock = VirtualClock::at(mid_morning());
    let deps = stack.deps(Channel::Email, 0.0, 0.0, &clock).await;
    let good = |i: usize| {
        serde_json::to_string(&DeliveryMessage {
            delivery_id: seeded.deliveries[i].0.clone(),
            channel: Channel::Email,
            run_id: "r".into(),
            copies: 0,
        })
        .unwrap()
    };
    let cycle = seeded.cycle;
    let bad = [
        (
            "not-json",
            "this is not json".to_owned(),
            "-",
            "malformed-message",
            "is not a delivery message",
        ),
        (
            "missing",
            r#"{"delivery_id":"2026-11#00000#C0000001"}"#.to_owned(),
            "-",
            "malformed-message",
            "missing field",
        ),
        (
            "bad-id",
            r#"{"delivery_id":"nonsense","channel":"email","run_id":"r"}"#.to_owned(),
            "-",
            "malformed-message",
            "not cycle#shard#customer",
        ),
        (
            "unknown",
            r#"{"delivery_id":"2026-11#00000#C9999999","channel":"email","run_id":"r"}"#.to_owned(),
            "2026-11",
            "unknown-delivery",
            "no delivery 2026-11#00000#C9999999 exists",
        ),
        (
            "wrong-channel",
            format!(
                r#"{{"delivery_id":"{}","channel":"sms","run_id":"r"}}"#,
                seeded.deliveries[3].0
            ),
            "2026-11",
            "wrong-channel",
            "a sms message on the email queue",
        ),
        (
            "extra-field",
            format!(
                r#"{{"delivery_id":"{}","channel":"email","run_id":"r","email":"x@y.z"}}"#,
                seeded.deliveries[2].0
            ),
            "-",
            "malformed-message",
            "unknown field",
        ),
        (
            "email-as-channel",
            format!(
                r#"{{"delivery_id":"{}","channel":"kim.minjun.1987@example-mail.co.kr","run_id":"r"}}"#,
                seeded.deliveries[2].0
            ),
            "-",
            "malformed-message",
            "field `channel`: unknown variant, expected email or sms",
        ),
        (
            "phone-as-run-id",
            format!(
                r#"{{"delivery_id":"{}","channel":"email","run_id":"+82 10-1234-5678"}}"#,
                seeded.deliveries[2].0
            ),
            "-",
            "malformed-message",
            "run_id must be",
        ),
    ];
    let mut event = SqsEvent::default();
    for (i, (id, body, ..)) in bad.iter().enumerate() {
        event.records.push(sqs_message(id, body));
        if i < 4 {
            event.records.push(sqs_message(&format!("good-{i}"), &good(i)));
        }
    }
    let ctx = local_run::invocation(Duration::from_secs(60));
    let (response, report) = sender::handle_batch(&deps, LambdaEvent::new(event, ctx)).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(report.parked, 8, "{report:?}");
    assert_eq!(report.sent, 4, "{report:?}");

    let failures = FailureLog::new(adapters::dynamodb_client(&stack.config), stack.var("FAILURES_TABLE"));
    for (id, _, partition, code, reason) in bad {
        let page = failures
            .page(if partition == "-" { None } else { Some(cycle) }, 100, None)
            .await
            .unwrap();
        let found = page
            .records
            .iter()
            .find(|r| r.code == code && r.reason.contains(reason))
            .unwrap_or_else(|| panic!("{id}: no {code} record with {reason:?}: {:?}", page.records));
        for value in ["x@y.z", "kim.minjun.1987@example-mail.co.kr", "+82 10-1234-5678"] {
            assert!(!domain::text::echoes(&found.reason, value), "{}", found.reason);
        }
        assert!(found.replay.is_none() || code != "malformed-message", "{id}: {found:?}");
    }
    assert_one_send_each(&stack).await;
    let bodies = Arc::new(Mutex::new(vec![good(0)]));
    assert_no_personal_data(&stack, &seeded, &logs, &bodies).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_deliveries_at_one_percent_failures_all_end_and_reconcile() {
    let stack = stack_on_own_emulator("send-10k").await;
    let n = 10_000u64;
    let seeded = seed_queued(&stack.config, &stack.resources, n as u32, 1000, 5, SlotSet::EMPTY)
        .await
        .unwrap();
    let clock = VirtualClock::at(mid_morning());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let mut pollers = pollers(
        &stack,
        [
            stack.deps(Channel::Email, 0.01, 0.0, &clock).await,
            stack.deps(Channel::Sms, 0.01, 0.0, &clock).await,
        ],
        &bodies,
        None,
    );
    for p in &mut pollers {
        p.bodies = None;
    }
    let (stats, drained) = drain(&pollers, 4, Duration::from_secs(1500)).await.unwrap();
    assert!(drained, "{stats:?}");
    let states = stack.states().await;
    let get = |s: &str| states.get(s).copied().unwrap_or(0);
    let (email, sms, dead) = (get("SENT_EMAIL"), get("SENT_SMS"), get("DEAD"));
    assert_eq!(email + sms + dead, n, "every delivery ends: {states:?}");
    assert_eq!(
        states.len(),
        [email, sms, dead].iter().filter(|c| **c > 0).count(),
        "{states:?}"
    );
    let counts = assert_one_send_each(&stack).await;
    assert_eq!(
        counts.len() as u64,
        email + sms,
        "accepted sends reconcile with sent deliveries"
    );
    let by_channel = |suffix: &str| counts.keys().filter(|k| k.ends_with(suffix)).count() as u64;
    assert_eq!((by_channel("#email"), by_channel("#sms")), (email, sms));
    let r = &stats.report;
    assert!(r.retried > 0, "1% of sends failed and were retried: {r:?}");
    assert_eq!(r.sent + r.recovered, email + sms, "{r:?}");
    println!(
        "10,000 deliveries: {email} by email, {sms} by SMS, {dead} dead; {} retries, {} fallbacks; {} invocations",
        r.retried, r.fallback, stats.invocations
    );
    let _ = seeded;
}
