//! The SES v2 email provider against the local emulator (moto server), and against
//! sockets that fail in known ways.

use std::time::Duration;

use aws_sdk_sesv2::config::timeout::TimeoutConfig;
use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
use providers::{EmailProvider, ErrorKind, Lookup, OutgoingEmail, ProviderError, SesEmailProvider};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const RECIPIENT: &str = "kim.minsu@example.com";

fn email(key: &str) -> OutgoingEmail {
    OutgoingEmail {
        idempotency_key: key.into(),
        attempt: 1,
        to: RECIPIENT.into(),
        subject: "김민수님 11월 청구서".into(),
        html: "<p>김민수님, 55,000원</p>".into(),
        tags: vec![("kind".into(), "bill".into()), ("cycle".into(), "2026-11".into())],
    }
}

/// Neither the recipient nor the subject or body in the error's text or Debug.
fn assert_private(e: &ProviderError) {
    let printed = format!("{e} {e:?}");
    for secret in ["kim.minsu", "example.com", "김민수", "청구서", "55,000", "<p>"] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
}

async fn emulator_client() -> aws_sdk_sesv2::Client {
    let emulator = local_aws::Emulator::shared().await.unwrap();
    aws_sdk_sesv2::Client::new(&emulator.sdk_config().await)
}

/// A sender address of its own, verified (created as an SES v2 identity) or not.
async fn sender(client: &aws_sdk_sesv2::Client, verified: bool) -> String {
    let from = format!("{}@billing.example.net", local_aws::unique_prefix("sender"));
    if verified {
        client
            .create_email_identity()
            .email_identity(&from)
            .send()
            .await
            .unwrap();
    }
    from
}

#[tokio::test]
async fn a_send_from_a_verified_identity_is_accepted_with_a_message_id() {
    let client = emulator_client().await;
    let from = sender(&client, true).await;
    let ses = SesEmailProvider::new(client, from, Some("invoices".into()));
    let provider: &dyn EmailProvider = &ses;

    let accepted = provider
        .send_email(&email("2026-11#00001#C0000001#email"))
        .await
        .unwrap();
    assert!(!accepted.provider_message_id.is_empty());
    // A second send of the same key is another message: SES does not deduplicate.
    let again = provider
        .send_email(&email("2026-11#00001#C0000001#email"))
        .await
        .unwrap();
    assert_ne!(again.provider_message_id, accepted.provider_message_id);
    // SES has no look-up by our key.
    assert_eq!(
        provider.find_email("2026-11#00001#C0000001#email").await.unwrap(),
        Lookup::Unsupported
    );
}

#[tokio::test]
async fn an_unverified_sender_is_rejected_for_good_without_naming_the_recipient() {
    let client = emulator_client().await;
    let from = sender(&client, false).await;
    let ses = SesEmailProvider::new(client, from.clone(), None);

    let e = ses
        .send_email(&email("2026-11#00001#C0000002#email"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Permanent, "MessageRejected"),
        "{e}"
    );
    assert!(e.message.contains("2026-11#00001#C0000002#email"), "{e}");
    assert!(e.message.contains("not verified"), "SES's own message is kept: {e}");
    assert!(
        !e.message.contains(&from),
        "SES's message names the sender, redacted too: {e}"
    );
    assert_private(&e);
}

#[tokio::test]
async fn an_invalid_recipient_is_rejected_for_good_without_echoing_it() {
    let client = emulator_client().await;
    let from = sender(&client, true).await;
    let ses = SesEmailProvider::new(client, from, None);
    let mut bad = email("2026-11#00001#C0000003#email");
    bad.to = "kim.minsu-at-example".into();

    let e = ses.send_email(&bad).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(!e.to_string().contains("kim.minsu-at-example"), "{e}");
    assert_private(&e);
}

/// A client for a plain-HTTP endpoint at `addr`, with a short timeout per attempt
/// (and none for the whole operation, so SDK retries, if there were any, would show).
fn socket_client(addr: std::net::SocketAddr) -> aws_sdk_sesv2::Client {
    aws_sdk_sesv2::Client::from_conf(
        aws_sdk_sesv2::Config::builder()
            .http_client(adapters::https_client())
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(format!("http://{addr}"))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(300))
                    .build(),
            )
            .build(),
    )
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    // A port nobody listens on any more: the request never leaves.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let ses = SesEmailProvider::new(socket_client(addr), "billing@example.net", None);
    let e = ses.send_email(&email("k-refused")).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Retryable, "SesConnect"), "{e}");
    assert_private(&e);
}

#[tokio::test]
async fn a_connection_dropped_after_the_request_is_of_unknown_outcome() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        // Read the request, then hang up without answering; once.
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let n = socket.read(&mut buf).await.unwrap();
        drop(socket);
        n
    });
    let ses = SesEmailProvider::new(socket_client(addr), "billing@example.net", None);
    let e = ses.send_email(&email("k-dropped")).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Unknown, "SesDispatch"), "{e}");
    assert_private(&e);
    assert!(server.await.unwrap() > 0, "the request reached the server");
}

#[tokio::test]
async fn no_answer_in_time_is_of_unknown_outcome_and_not_retried_by_the_sdk() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (requests_tx, mut requests_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let n = socket.read(&mut buf).await.unwrap();
            requests_tx.send(n).unwrap();
            open.push(socket); // never answered
        }
    });
    let ses = SesEmailProvider::new(socket_client(addr), "billing@example.net", None);
    let e = ses.send_email(&email("k-silent")).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Unknown, "SesTimeout"), "{e}");
    assert_private(&e);
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.abort();
    let mut requests = 0;
    while requests_rx.try_recv().is_ok() {
        requests += 1;
    }
    assert_eq!(requests, 1, "one SendEmail request: the SDK does not retry it");
}
