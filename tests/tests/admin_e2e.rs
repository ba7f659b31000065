//! End to end against the emulator: a provider that refuses every email and every SMS sends
//! the deliveries from email to SMS to `DEAD`; their dead letters on the delivery dead-letter
//! queue become RecordFailure's records; an operator's `resend`, once the provider works
//! again, sends each of them exactly once, and a replay of that command sends nothing more.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use adapters::failures::{FailureLog, FailureStage};
use admin_api::{Caller, Deps, Request, Response, serve};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::{DateTime, Utc};
use domain::delivery::DeliveryId;
use domain::dispatch::SlotRun;
use domain::{Channel, SlotSet};
use integration_tests::admin::{ADMINISTRATOR, drain_all, senders};
use lambda_runtime::LambdaEvent;
use local_run::seed::{Seeded, seed_queued};
use local_run::send::{VirtualClock, sender_env};
use providers::DynamoLog;
use serde_json::{Value, json};

/// Deliveries seeded, all queued on email.
const DELIVERIES: u32 = 3;
/// How long the senders get to drain their queues.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// `text` holds none of the seeded customers' addresses and phone numbers (nor the
/// numbers' digits run together).
fn assert_no_contact_data(what: &str, text: &str, seeded: &Seeded) {
    for secret in seeded.emails.iter().chain(&seeded.phones) {
        assert!(!text.contains(secret.as_str()), "{what} holds {secret}");
        if secret.contains('-') {
            let digits: String = secret.chars().filter(char::is_ascii_digit).collect();
            assert!(!text.contains(&digits), "{what} holds {digits}");
        }
    }
}

/// An operator's request to the admin API at `now`.
async fn call(deps: &Deps, method: &str, path: &str, body: Option<Value>, now: DateTime<Utc>) -> Response {
    let req = Request {
        method: method.into(),
        path: path.into(),
        query: HashMap::new(),
        body: body.map(|b| b.to_string()),
        caller: Some(Caller {
            arn: ADMINISTRATOR.into(),
        }),
        request_id: "e2e-request".into(),
    };
    serve(deps, &req, now).await
}

/// The senders' variables: the mock provider failing every attempt (`failure_rate` 1) or
/// none (0), no timeouts, and retries one or two seconds apart.
fn sender_overrides(failure_rate: &str) -> [(&str, &str); 4] {
    [
        ("MOCK_FAILURE_RATE", failure_rate),
        ("MOCK_TIMEOUT_RATE", "0"),
        ("RETRY_BASE_DELAY_SECONDS", "1"),
        ("RETRY_MAX_DELAY_SECONDS", "2"),
    ]
}

/// RecordFailure as its event source mapping runs it on the delivery dead-letter queue:
/// receive up to ten, invoke the handler with them, delete what it did not report back;
/// until the queue is empty (at most `rounds` receives). The bodies received.
async fn record_failures(
    stack: &local_aws::Stack,
    deps: &record_failure::Deps,
    dlq: &str,
    rounds: usize,
) -> Vec<String> {
    let sqs = adapters::sqs_client(&stack.config);
    let mut bodies = Vec::new();
    for _ in 0..rounds {
        let out = sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        let event = local_run::send::sqs_event(&messages);
        bodies.extend(messages.iter().filter_map(|m| m.body.clone()));
        let response = record_failure::handle(deps, LambdaEvent::new(event, lambda_runtime::Context::default()))
            .await
            .unwrap();
        assert!(
            response.batch_item_failures.is_empty(),
            "every dead letter recorded: {:?}",
            response.batch_item_failures
        );
        let all: Vec<&aws_sdk_sqs::types::Message> = messages.iter().collect();
        local_run::send::delete_messages(&sqs, dlq, &all).await.unwrap();
    }
    panic!("the dead-letter queue still has messages after {rounds} receives");
}

#[tokio::test]
async fn email_fails_then_sms_then_dead_letter_recorded_and_a_resend_sends_once() {
    let logs = local_run::logs::capture();
    let stack = local_aws::fresh_stack("e2e-dead-resend").await.unwrap();
    let seeded = seed_queued(&stack.config, &stack.resources, DELIVERIES, 3, 0, SlotSet::EMPTY)
        .await
        .unwrap();
    assert!(seeded.deliveries.iter().all(|(_, ch)| *ch == Channel::Email));
    let api = Deps::load(
        &stack.config,
        &local_run::settle::local_function_env(&stack.resources, "AdminApiFunction"),
    )
    .await
    .unwrap();
    let sender_vars = sender_env(&stack.resources, Channel::Email, &[]);
    let dlq = sender_vars["DEAD_LETTER_QUEUE_URL"].clone();
    let sends = DynamoLog::new(
        adapters::dynamodb_client(&stack.config),
        &sender_vars["MOCK_SENDS_TABLE"],
    );
    assert_eq!(
        sender_env(&stack.resources, Channel::Sms, &[])["MOCK_SENDS_TABLE"],
        sender_vars["MOCK_SENDS_TABLE"],
        "one send log for both channels"
    );
    // 10:00 in Seoul on the customers' send day: an open slot.
    let t0: DateTime<Utc> = "2026-12-15T01:00:00Z".parse().unwrap();
    let clock = VirtualClock::at(t0);
    let customer = |id: &str| id.rsplit('#').next().unwrap().to_owned();
    let view = |id: &str| format!("/cycles/2026-11/deliveries/{}", customer(id));

    // 1. Every attempt fails: email gives up, SMS takes over and gives up, the delivery is DEAD.
    let failing = senders(&stack, &clock, &sender_overrides("1")).await;
    let (email_attempts, sms_attempts) = {
        let retry = &failing[0].deps.config.retry;
        (u64::from(retry.email_attempts), u64::from(retry.sms_attempts))
    };
    let sms_queue = failing[1].url.clone();
    assert_eq!(failing[1].deps.config.channel, Channel::Sms);
    assert!(drain_all(&failing, DRAIN_LIMIT).await, "every message handled");
    assert_eq!(
        sends.count_by_key().await.unwrap(),
        BTreeMap::new(),
        "the provider accepted nothing"
    );
    for (id, _) in &seeded.deliveries {
        let d = call(&api, "GET", &view(id), None, t0).await;
        assert_eq!(d.status, 200, "{}", d.body);
        assert_eq!(d.body["state"], "DEAD", "{id}: {}", d.body);
        assert_eq!(
            d.body["attempts"],
            json!({"email": email_attempts, "sms": sms_attempts}),
            "{id}: every email attempt, then every SMS attempt: {}",
            d.body
        );
        assert_eq!(d.body["send_round"], 0, "{}", d.body);
    }
    // The SMS queue carried them (and is empty now).
    assert_eq!(
        local_run::send::depth(&adapters::sqs_client(&stack.config), &sms_queue)
            .await
            .unwrap(),
        0
    );

    // 2. Their dead letters wait on the delivery dead-letter queue: RecordFailure records them.
    let recorder_env = local_run::settle::local_function_env(&stack.resources, "RecordFailureFunction");
    assert_eq!(
        stack.resources.queue_url("DeliveryDeadLetterQueue"),
        Some(dlq.as_str()),
        "the senders' dead letters go to the queue RecordFailure consumes"
    );
    let recorder = record_failure::Deps::load(&stack.config, &recorder_env).await.unwrap();
    let letters = record_failures(&stack, &recorder, &dlq, 10).await;
    assert_eq!(
        letters.len(),
        DELIVERIES as usize,
        "one dead letter per delivery: {letters:?}"
    );
    let failures = FailureLog::new(
        adapters::dynamodb_client(&stack.config),
        &recorder_env["FAILURES_TABLE"],
    );
    let page = failures.page(Some(seeded.cycle), 100, None).await.unwrap();
    assert!(page.bad.is_empty(), "{:?}", page.bad);
    let dead_letters: Vec<_> = page
        .records
        .iter()
        .filter(|r| r.stage == FailureStage::DeadLetter)
        .collect();
    let subjects: HashSet<&str> = dead_letters.iter().map(|r| r.subject.as_str()).collect();
    let seeded_ids: HashSet<&str> = seeded.deliveries.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(subjects, seeded_ids, "one record per delivery");
    assert_eq!(dead_letters.len(), seeded_ids.len(), "{dead_letters:?}");
    for r in &dead_letters {
        assert_eq!(
            (r.code.as_str(), r.channel, u64::from(r.attempts), r.occurrences),
            ("MockTransient", Some(Channel::Sms), sms_attempts, 1),
            "{r:?}"
        );
        assert!(
            r.reason.contains(&format!(
                "gave up at 2026-12-15T01:00:00Z after {sms_attempts} attempts"
            )),
            "{}",
            r.reason
        );
        assert!(r.replay.is_some(), "what replays it is kept: {r:?}");
    }
    // The operators' failure log lists them too.
    let listed = call(&api, "GET", "/cycles/2026-11/failures", None, t0).await;
    assert_eq!(listed.status, 200, "{}", listed.body);

    // 3. The provider works again: an operator resends each DEAD delivery.
    let working = senders(&stack, &clock, &sender_overrides("0")).await;
    let resend = |id: &str| {
        json!({
            "command_id": format!("e2e-resend-{}", customer(id)),
            "reason": "the provider was down all morning",
        })
    };
    for (id, _) in &seeded.deliveries {
        let r = call(&api, "POST", &format!("{}/resend", view(id)), Some(resend(id)), t0).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            (r.body["state"].as_str(), r.body["send_round"].as_u64()),
            (Some("READY"), Some(1)),
            "{}",
            r.body
        );
    }
    // The next slot's dispatch enqueues them; the senders send each once.
    let next = SlotRun::containing(t0).next();
    clock.set(next.start());
    let dispatch = local_run::dispatch::dispatch_deps(&stack.config, &stack.resources)
        .await
        .unwrap();
    let report = local_run::dispatch::run_slot(&dispatch, next).await.unwrap();
    assert_eq!(
        (report.enqueued_email, report.enqueued_sms),
        (u64::from(DELIVERIES), 0),
        "{report:?}"
    );
    assert!(drain_all(&working, DRAIN_LIMIT).await, "every message handled");
    let round_one: BTreeMap<String, u64> = seeded
        .deliveries
        .iter()
        .map(|(id, _)| {
            let id: DeliveryId = id.parse().unwrap();
            let key = sender::round_key(&id, Channel::Email, 1);
            assert!(key.ends_with("#email#r1"), "{key}");
            (key, 1)
        })
        .collect();
    let accepted = sends.count_by_key().await.unwrap();
    assert_eq!(accepted, round_one, "each delivery sent once, in round 1, by email");
    for (id, _) in &seeded.deliveries {
        let d = call(&api, "GET", &view(id), None, next.start()).await;
        assert_eq!(
            (d.body["state"].as_str(), d.body["send_round"].as_u64()),
            (Some("SENT_EMAIL"), Some(1)),
            "{}",
            d.body
        );
    }

    // A replay of the resend (its command id, as first sent) answers what it answered and
    // starts nothing: the slot after sends nothing more.
    let (first, _) = &seeded.deliveries[0];
    let again = call(
        &api,
        "POST",
        &format!("{}/resend", view(first)),
        Some(resend(first)),
        t0,
    )
    .await;
    assert_eq!(
        (again.status, &again.body["replayed"]),
        (200, &json!(true)),
        "{}",
        again.body
    );
    let later = next.next();
    clock.set(later.start());
    let report = local_run::dispatch::run_slot(&dispatch, later).await.unwrap();
    assert_eq!(report.enqueued_email + report.enqueued_sms, 0, "{report:?}");
    assert!(drain_all(&working, DRAIN_LIMIT).await, "every message handled");
    assert_eq!(sends.count_by_key().await.unwrap(), round_one, "nothing sent again");
    let d = call(&api, "GET", &view(first), None, later.start()).await;
    assert_eq!(
        (d.body["state"].as_str(), d.body["send_round"].as_u64()),
        (Some("SENT_EMAIL"), Some(1)),
        "{}",
        d.body
    );

    // No contact data in the dead letters, the failure records, the admin API's answers or
    // the logs.
    assert_no_contact_data("the dead letters", &letters.join("\n"), &seeded);
    let records = format!("{:?}", failures.page(Some(seeded.cycle), 1000, None).await.unwrap());
    assert_no_contact_data("the failure records", &records, &seeded);
    assert_no_contact_data("the failure log's answer", &listed.body.to_string(), &seeded);
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logs.contains("delivery dead"), "the logs were captured");
    assert_no_contact_data("the logs", &logs, &seeded);
}
