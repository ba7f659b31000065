//! The senders under the faults AWS really has (DESIGN G7), injected by the
//! emulator's switches: DynamoDB writes applied whose answer is lost (a 500,
//! or a connection dropped after the write), minutes of throttling, an S3
//! read that hangs past the time the invocation has left, and provider calls
//! that hang. Under each: every delivery ends `SENT_*`, `DEAD` or
//! `UNCONFIRMED` (with its failure record) or waits in the `Due` index;
//! accepted sends per delivery, channel and round are at most one, a provider
//! that cannot be asked included; and our own trouble never moves a message
//! to the dead-letter queue through its receive count.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{Channel, SlotSet};
use integration_tests::senders::{Stack, mid_morning, pollers, stack};
use lambda_runtime::LambdaEvent;
use local_aws::{Emulator, Fault, FaultBound, LostAnswer, Throttled, WriteOperation};
use local_run::seed::seed_queued;
use local_run::send::{VirtualClock, drain};
use providers::{Accepted, BoxFuture, EmailProvider, OutgoingEmail, ProviderError};
use sender::Deps;

/// The mock, but unable to answer "was this key accepted?", as SES.
struct CannotBeAsked(Arc<dyn EmailProvider>);

impl EmailProvider for CannotBeAsked {
    fn send_email<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        self.0.send_email(email)
    }
}

async fn emulator() -> &'static Emulator {
    Emulator::shared().await.unwrap()
}

/// Senders for both channels with `extra` mock settings; the email one
/// unable to be asked when `can_ask` is false. Trouble is retried after a
/// second (a fresh copy of the message), so that a test runs in seconds.
async fn senders(
    stack: &Stack,
    clock: &VirtualClock,
    failure: f64,
    extra: &[(&str, &str)],
    can_ask: bool,
) -> [Deps; 2] {
    let mut email = stack.deps_with(Channel::Email, failure, clock, extra).await;
    if !can_ask {
        email.email = Arc::new(CannotBeAsked(email.email.clone()));
    }
    let sms = stack.deps_with(Channel::Sms, failure, clock, extra).await;
    [email, sms].map(|mut d| {
        d.config.trouble_delay = Duration::from_secs(1);
        d
    })
}

/// Accepted sends by idempotency key: none may exceed one.
async fn assert_at_most_one_send_each(stack: &Stack) -> BTreeMap<String, u64> {
    let counts = stack.log().count_by_key().await.unwrap();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "accepted more than once: {twice:?}");
    counts
}

/// Every delivery is finished or waiting; no message reached the
/// dead-letter queue but the dead letters of `DEAD` deliveries.
async fn assert_nothing_lost(stack: &Stack, n: u64) -> BTreeMap<String, u64> {
    let states = stack.states().await;
    assert_eq!(states.values().sum::<u64>(), n, "{states:?}");
    let finished: u64 = ["SENT_EMAIL", "SENT_SMS", "DEAD", "UNCONFIRMED"]
        .iter()
        .filter_map(|s| states.get(*s))
        .sum();
    let waiting = n - finished;
    if waiting > 0 {
        // Whatever is not finished is back in the Due index, where dispatch finds it.
        let ddb = adapters::dynamodb_client(&stack.config);
        let in_index = ddb
            .scan()
            .table_name(stack.var("DELIVERIES_TABLE"))
            .filter_expression("attribute_exists(due_pk) AND NOT (#st IN (:a, :b, :c, :d))")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":a", aws_sdk_dynamodb::types::AttributeValue::S("SENT_EMAIL".into()))
            .expression_attribute_values(":b", aws_sdk_dynamodb::types::AttributeValue::S("SENT_SMS".into()))
            .expression_attribute_values(":c", aws_sdk_dynamodb::types::AttributeValue::S("DEAD".into()))
            .expression_attribute_values(":d", aws_sdk_dynamodb::types::AttributeValue::S("UNCONFIRMED".into()))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .unwrap()
            .count as u64;
        assert_eq!(
            in_index, waiting,
            "every unfinished delivery waits in the Due index: {states:?}"
        );
    }
    let dead = states.get("DEAD").copied().unwrap_or(0);
    let letters = dead_letters(stack).await;
    if letters != dead {
        let sqs = adapters::sqs_client(&stack.config);
        let got = sqs
            .receive_message()
            .queue_url(stack.var("DEAD_LETTER_QUEUE_URL"))
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        for m in got.messages.unwrap_or_default() {
            eprintln!("DLQ: {:?} {:?}", m.body, m.attributes);
        }
    }
    assert_eq!(
        letters, dead,
        "the dead-letter queue holds the dead deliveries' letters and nothing our trouble put there"
    );
    states
}

async fn dead_letters(stack: &Stack) -> u64 {
    let sqs = adapters::sqs_client(&stack.config);
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(stack.var("DEAD_LETTER_QUEUE_URL"))
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum()
}

async fn drain_all(stack: &Stack, deps: [Deps; 2]) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    // A receive hides a message for 30 s, as a queue's visibility timeout would (the SDK's
    // own retries of a faulted call can take seconds); retries set their own delays.
    let pollers = pollers(stack, deps, &bodies, Some(30));
    let (stats, drained) = drain(&pollers, 2, Duration::from_secs(240)).await.unwrap();
    assert!(drained, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_whose_answer_was_lost_are_recognised_and_nothing_is_lost_or_sent_twice() {
    let emulator = emulator().await;
    for (mode, can_ask) in [(LostAnswer::Error, true), (LostAnswer::Drop, false)] {
        let stack = stack(&format!("fault-lost-{mode:?}").to_lowercase()).await;
        let n = 40;
        seed_queued(&stack.config, &stack.resources, n, 40, 4, SlotSet::EMPTY)
            .await
            .unwrap();
        let table = stack.var("DELIVERIES_TABLE");
        // A lost answer for the next 60 delivery updates: claims, call marks, completions,
        // retries and fallbacks alike (one in five sends fails, so every step occurs).
        emulator
            .lose_answers(&table, WriteOperation::UpdateItem, 60, mode)
            .await
            .unwrap();
        let clock = VirtualClock::at(mid_morning());
        drain_all(&stack, senders(&stack, &clock, 0.2, &[], can_ask).await).await;
        let fired = emulator.faults_fired().await.unwrap().fired(Fault::LostAnswer, &table);
        assert_eq!(fired, 60, "{mode:?}: every planned lost answer happened");
        let states = assert_nothing_lost(&stack, u64::from(n)).await;
        let counts = assert_at_most_one_send_each(&stack).await;
        // A lost answer on a write the SDK retried is ours, never a takeover: nothing is
        // left unconfirmed or waiting, and every sent delivery was accepted once.
        assert_eq!(states.get("UNCONFIRMED"), None, "{mode:?}: {states:?}");
        let sent = states.get("SENT_EMAIL").copied().unwrap_or(0) + states.get("SENT_SMS").copied().unwrap_or(0);
        assert_eq!(
            sent + states.get("DEAD").copied().unwrap_or(0),
            u64::from(n),
            "{states:?}"
        );
        assert!(counts.len() as u64 >= sent, "{mode:?}: {counts:?}");
        emulator.clear_faults(&table).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_for_a_while_spends_no_receive_count_and_every_delivery_is_sent_once() {
    let emulator = emulator().await;
    let stack = stack("fault-throttle").await;
    let n = 30;
    seed_queued(&stack.config, &stack.resources, n, 30, 5, SlotSet::EMPTY)
        .await
        .unwrap();
    let table = stack.var("DELIVERIES_TABLE");
    // Longer than the SDK's retries and than ten receives a second apart: without the
    // fresh copies, the messages' receive counts would reach the queues' maxReceiveCount
    // (10) and dead-letter them.
    emulator
        .throttle(&table, FaultBound::For(Duration::from_secs(15)), Throttled::All)
        .await
        .unwrap();
    let clock = VirtualClock::at(mid_morning());
    drain_all(&stack, senders(&stack, &clock, 0.0, &[], true).await).await;
    let fired = emulator.faults_fired().await.unwrap().fired(Fault::Throttle, &table);
    assert!(fired > 10, "the throttle held the senders back ({fired} calls)");
    let states = assert_nothing_lost(&stack, u64::from(n)).await;
    assert_eq!(
        states.get("SENT_EMAIL").copied().unwrap_or(0) + states.get("SENT_SMS").copied().unwrap_or(0),
        u64::from(n),
        "{states:?}"
    );
    assert_eq!(assert_at_most_one_send_each(&stack).await.len(), n as usize);
    emulator.clear_faults(&table).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_read_that_hangs_is_cut_at_the_time_left_and_the_delivery_is_sent_once_later() {
    let emulator = emulator().await;
    let stack = stack("fault-slow-s3").await;
    let n = 6;
    let seeded = seed_queued(&stack.config, &stack.resources, n, 6, 0, SlotSet::EMPTY)
        .await
        .unwrap();
    let bucket = stack.var("DATA_BUCKET");
    emulator
        .delay_get_object(&bucket, "", 6, Duration::from_secs(12))
        .await
        .unwrap();
    let clock = VirtualClock::at(mid_morning());
    let [mut email, sms] = senders(&stack, &clock, 0.0, &[], true).await;
    email.config.provider_timeout = Duration::from_secs(1);
    email.config.finish_margin = Duration::from_secs(1);
    // One invocation with 6 s left: each invoice read is cut at the time left (our own
    // trouble), the claims are released untouched and fresh copies put back; nothing is sent.
    let sqs = adapters::sqs_client(&stack.config);
    let got = sqs
        .receive_message()
        .queue_url(stack.var("EMAIL_QUEUE_URL"))
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(got.len(), n as usize);
    let event = local_run::send::sqs_event(&got);
    let started = std::time::Instant::now();
    let ctx = local_run::invocation(Duration::from_secs(6));
    let (response, report) = sender::handle_batch(&email, LambdaEvent::new(event, ctx))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "the invocation ended within its time"
    );
    assert_eq!((report.sent, report.errors), (0, n as u64), "{report:?}");
    assert!(
        response.batch_item_failures.is_empty(),
        "fresh copies took the messages' place"
    );
    let states = stack.states().await;
    assert_eq!(states.get("QUEUED").copied(), Some(u64::from(n)), "{states:?}");
    for m in &got {
        sqs.delete_message()
            .queue_url(stack.var("EMAIL_QUEUE_URL"))
            .receipt_handle(m.receipt_handle.clone().unwrap())
            .send()
            .await
            .unwrap();
    }
    // Once S3 answers again, the copies send each delivery once.
    emulator.clear_faults(&bucket).await.unwrap();
    drain_all(&stack, [email, sms]).await;
    let states = assert_nothing_lost(&stack, u64::from(n)).await;
    assert_eq!(states.get("SENT_EMAIL").copied(), Some(u64::from(n)), "{states:?}");
    assert_eq!(
        assert_at_most_one_send_each(&stack).await.len(),
        seeded.deliveries.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_calls_that_hang_are_cut_off_and_never_sent_twice() {
    let hang = [
        ("MOCK_HANG_RATE", "0.25"),
        ("MOCK_HANG_MS", "3000"),
        ("PROVIDER_TIMEOUT_MS", "400"),
    ];
    for can_ask in [true, false] {
        let stack = stack(if can_ask { "fault-hang-ask" } else { "fault-hang-ses" }).await;
        let n = 40;
        seed_queued(&stack.config, &stack.resources, n, 40, 0, SlotSet::EMPTY)
            .await
            .unwrap();
        let clock = VirtualClock::at(mid_morning());
        drain_all(&stack, senders(&stack, &clock, 0.0, &hang, can_ask).await).await;
        let states = assert_nothing_lost(&stack, u64::from(n)).await;
        assert_at_most_one_send_each(&stack).await;
        let unconfirmed = states.get("UNCONFIRMED").copied().unwrap_or(0);
        if can_ask {
            // Every cut-off call is settled by asking the provider.
            assert_eq!(unconfirmed, 0, "{states:?}");
            assert_eq!(states.get("SENT_EMAIL").copied(), Some(u64::from(n)), "{states:?}");
        } else {
            // A cut-off call to a provider that cannot be asked is left to an operator,
            // with its failure record, and never sent again.
            assert!(unconfirmed > 0, "some calls hung: {states:?}");
            let records = adapters::failures::FailureLog::new(
                adapters::dynamodb_client(&stack.config),
                stack.var("FAILURES_TABLE"),
            )
            .page(Some(domain::Cycle::new(2026, 11).unwrap()), 100, None)
            .await
            .unwrap();
            let recorded = records.records.iter().filter(|r| r.code == "send-unconfirmed").count() as u64;
            assert_eq!(recorded, unconfirmed, "{states:?}");
        }
    }
}
