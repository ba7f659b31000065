//! The DynamoDB send log against the local emulator (moto server).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use chrono::{TimeZone, Utc};
use providers::{
    AcceptedSend, Channel, DynamoLog, EmailProvider, ErrorKind, MockConfig, MockProvider, OutgoingEmail, SendLog,
    SmsProvider,
};

/// A DynamoDB client of the shared emulator.
async fn client() -> aws_sdk_dynamodb::Client {
    let emulator = local_aws::Emulator::shared().await.unwrap();
    aws_sdk_dynamodb::Client::new(&emulator.sdk_config().await)
}

/// A new send-log table of its own: string keys `pk` (hash) and `sk` (range).
async fn fresh_log(name: &str) -> DynamoLog {
    let ddb = client().await;
    let table = local_aws::unique_prefix(name);
    let mut create = ddb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest);
    for (key, kind) in [("pk", KeyType::Hash), ("sk", KeyType::Range)] {
        let attribute = AttributeDefinition::builder()
            .attribute_name(key)
            .attribute_type(ScalarAttributeType::S);
        let schema = KeySchemaElement::builder().attribute_name(key).key_type(kind);
        create = create
            .attribute_definitions(attribute.build().unwrap())
            .key_schema(schema.build().unwrap());
    }
    create.send().await.unwrap();
    DynamoLog::new(ddb, table)
}

/// A mock provider with no latency, recording its accepts in `log`.
fn mock(log: &Arc<DynamoLog>, failure_rate: f64, timeout_rate: f64, seed: u64) -> MockProvider {
    let config = MockConfig {
        latency: Duration::ZERO,
        failure_rate,
        timeout_rate,
        seed,
        ..MockConfig::default()
    };
    MockProvider::new(config, log.clone())
}

fn email(key: &str, attempt: u32) -> OutgoingEmail {
    OutgoingEmail {
        idempotency_key: key.into(),
        attempt,
        to: "kim@example.com".into(),
        subject: "bill".into(),
        html: "<p>bill</p>".into(),
        tags: vec![],
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn rec(key: &str, id: &str, micros: i64) -> AcceptedSend {
    AcceptedSend {
        channel: Channel::Email,
        idempotency_key: key.into(),
        provider_message_id: id.into(),
        accepted_at: Utc.timestamp_micros(1_790_000_000_000_000 + micros).unwrap(),
    }
}

#[tokio::test]
async fn records_every_accept_and_counts_duplicates() {
    let log = fresh_log("send-log").await.with_scan_page_size(2);
    assert!(log.count_by_key().await.unwrap().is_empty());

    log.record(rec("2026-11#00001#C0000001", "m-1", 0)).await.unwrap();
    // The same key accepted again: a second item, the first is kept.
    log.record(rec("2026-11#00001#C0000001", "m-2", 1)).await.unwrap();
    // Same key and same instant, another message id: still a distinct item.
    log.record(rec("2026-11#00001#C0000001", "m-3", 1)).await.unwrap();
    log.record(rec("2026-11#00001#C0000002", "m-4", 2)).await.unwrap();
    let mut sms = rec("2026-11#00001#C0000003", "m-5", 3);
    sms.channel = Channel::Sms;
    log.record(sms).await.unwrap();

    let counts = log.count_by_key().await.unwrap();
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert_eq!(counts["2026-11#00001#C0000001"], 3);
    assert_eq!(counts["2026-11#00001#C0000002"], 1);
    assert_eq!(counts["2026-11#00001#C0000003"], 1);
    assert_eq!(
        log.duplicates().await.unwrap(),
        vec![("2026-11#00001#C0000001".to_string(), 3)]
    );

    // Recording the very same accept twice would overwrite it: refused instead.
    let e = log.record(rec("2026-11#00001#C0000002", "m-4", 2)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert_eq!(log.count_by_key().await.unwrap()["2026-11#00001#C0000002"], 1);
}

#[test]
fn sort_key_is_time_then_message_id() {
    let r = rec("k", "mock-abc", 5);
    assert_eq!(DynamoLog::sort_key(&r), "2026-09-21T14:13:20.000005Z#mock-abc");
}

#[tokio::test]
async fn mock_provider_with_lost_answers_leaves_duplicates_in_the_table() {
    let log = Arc::new(fresh_log("send-log-mock").await);
    let provider = mock(&log, 0.0, 1.0, 11);
    let provider: &dyn EmailProvider = &provider;
    for key in ["a", "b", "a"] {
        let e = provider.send_email(&email(key, 0)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unknown);
    }
    assert_eq!(log.duplicates().await.unwrap(), vec![("a".to_string(), 2)]);
    assert_eq!(log.count_by_key().await.unwrap()["b"], 1);
    // What a sender asks before sending again: the mock answers from its log.
    match provider.find_email("a").await.unwrap() {
        providers::Lookup::Accepted(a) => assert!(a.provider_message_id.starts_with("mock-")),
        other => panic!("{other:?}"),
    }
    assert_eq!(provider.find_email("zzz").await.unwrap(), providers::Lookup::NotFound);
}

#[tokio::test]
async fn errors_name_the_table_not_the_recipient() {
    let log = DynamoLog::new(client().await, local_aws::unique_prefix("missing"));
    let e = log.record(rec("k", "m", 0)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert_eq!(e.code, "ResourceNotFoundException", "{e}");
    assert!(e.to_string().contains(log.table()), "{e}");
    assert!(log.count_by_key().await.is_err());
}

#[tokio::test]
async fn find_returns_the_first_accept_of_a_key_on_its_channel() {
    let log = fresh_log("send-log-find").await;
    assert_eq!(log.find(Channel::Email, "k").await.unwrap(), None, "empty table");

    // Under one key: an SMS accept first, then two email accepts.
    let mut sms = rec("k", "m-sms", 0);
    sms.channel = Channel::Sms;
    log.record(sms.clone()).await.unwrap();
    let first_email = rec("k", "m-email-1", 5);
    log.record(rec("k", "m-email-2", 9)).await.unwrap();
    log.record(first_email.clone()).await.unwrap();
    log.record(rec("other", "m-other", 1)).await.unwrap();

    assert_eq!(
        log.find(Channel::Email, "k").await.unwrap(),
        Some(first_email),
        "the earliest email accept, though an SMS one sorts first"
    );
    assert_eq!(log.find(Channel::Sms, "k").await.unwrap(), Some(sms));
    assert_eq!(
        log.find(Channel::Sms, "other").await.unwrap(),
        None,
        "only on the other channel"
    );
    assert_eq!(log.find(Channel::Email, "absent").await.unwrap(), None);
}

#[tokio::test]
async fn find_refuses_an_item_it_cannot_read() {
    let log = fresh_log("send-log-find-bad").await;
    client()
        .await
        .put_item()
        .table_name(log.table())
        .item("pk", s("bad"))
        .item("sk", s("x"))
        .item("channel", s("email"))
        .send()
        .await
        .unwrap();
    let e = log.find(Channel::Email, "bad").await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Permanent, "InvalidRecord"),
        "{e}"
    );
    assert!(e.message.contains(log.table()), "{e}");
}

#[tokio::test]
async fn the_mock_finds_what_it_accepted_in_the_table() {
    let log = Arc::new(fresh_log("send-log-mock-find").await);
    let accepting = mock(&log, 0.0, 0.0, 4);
    let failing = mock(&log, 1.0, 0.0, 4);
    let accepted = accepting.send_email(&email("sent#email", 1)).await.unwrap();
    failing.send_email(&email("failed#email", 1)).await.unwrap_err();
    // Another instance (another provider over the same table) asks.
    assert_eq!(
        failing.find_email("sent#email").await.unwrap(),
        providers::Lookup::Accepted(accepted)
    );
    assert_eq!(
        accepting.find_email("failed#email").await.unwrap(),
        providers::Lookup::NotFound
    );
    assert_eq!(
        accepting.find_sms("sent#email").await.unwrap(),
        providers::Lookup::NotFound
    );
}
