//! RecordFailure against the emulator: the stack's failure log as
//! template.yaml declares it, records written once per delivery and stage.

use adapters::failures::{FailureLog, FailureStage};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use domain::Cycle;
use lambda_runtime::LambdaEvent;

fn message(id: &str, body: &str, received: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.body = Some(body.into());
    m.attributes.insert("ApproximateReceiveCount".into(), received.into());
    m
}

#[tokio::test]
async fn dead_letters_become_failure_records_once_per_delivery() {
    let stack = local_aws::fresh_stack("record-failure").await.unwrap();
    let env = stack.resources.function_env("RecordFailureFunction");
    let deps = record_failure::Deps::load(&stack.config, &env).await.unwrap();
    let good = r#"{"delivery_id":"2026-11#00002#C0000007","channel":"sms","run_id":"dispatch-x","attempts":3,"last_error":"MockTransient"}"#;
    let mut event = SqsEvent::default();
    event.records = vec![
        message("m-1", good, "1"),
        message("m-2", "{oops", "6"),
        message("m-3", good, "1"),
    ];
    let ctx = lambda_runtime::Context::default();
    let out = record_failure::handle(&deps, LambdaEvent::new(event, ctx))
        .await
        .unwrap();
    assert!(out.batch_item_failures.is_empty());

    let log = FailureLog::new(adapters::dynamodb_client(&stack.config), &env["FAILURES_TABLE"]);
    let cycle: Cycle = "2026-11".parse().unwrap();
    let page = log.page(Some(cycle), 50, None).await.unwrap();
    assert_eq!(page.records.len(), 1, "the same delivery twice: one record");
    let r = &page.records[0];
    assert_eq!(
        (r.stage, r.code.as_str(), r.attempts, r.occurrences),
        (FailureStage::DeadLetter, "MockTransient", 3, 2)
    );
    assert_eq!(r.replay.as_deref(), Some(good));
    let unknown = log.get(None, "m-2", FailureStage::DeadLetter).await.unwrap().unwrap();
    assert_eq!(unknown.code, "malformed-message");
    assert!(unknown.reason.contains("after 6 receives"), "{}", unknown.reason);

    // A store that cannot be written reports only the messages concerned.
    let broken = record_failure::Deps {
        failures: FailureLog::new(adapters::dynamodb_client(&stack.config), "no-such-table"),
        concurrency: 4,
    };
    let mut event = SqsEvent::default();
    event.records = vec![message("m-9", good, "1")];
    let out = record_failure::handle(&broken, LambdaEvent::new(event, lambda_runtime::Context::default()))
        .await
        .unwrap();
    assert_eq!(out.batch_item_failures.len(), 1);
    assert_eq!(out.batch_item_failures[0].item_identifier, "m-9");
}
