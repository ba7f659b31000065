//! The account quota read from SES v2 `GetAccount`, against a local fake of its
//! REST-JSON endpoint (`GET /v2/email/account`) on 127.0.0.1.

use std::time::Duration;

use aws_sdk_sesv2::config::timeout::TimeoutConfig;
use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
use providers::{ErrorKind, QuotaSource, SendQuota};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers up to `answers.len()` requests, one per connection, with
/// `(status, body)` in turn; returns the request lines it saw.
async fn fake_ses(answers: Vec<(u16, &'static str)>) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for (status, body) in answers {
            let Ok(Ok((mut socket, _))) = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await else {
                break;
            };
            let mut buf = vec![0u8; 16 * 1024];
            let mut read = 0;
            // Bounded: a GET has no body, so the headers' end is the request's end.
            for _ in 0..64 {
                let n = socket.read(&mut buf[read..]).await.unwrap_or(0);
                read += n;
                if n == 0 || buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let request = String::from_utf8_lossy(&buf[..read]).to_string();
            seen.push(request.lines().next().unwrap_or_default().to_owned());
            let reason = if status == 200 { "OK" } else { "Error" };
            let code = match status {
                200 => "",
                429 => "TooManyRequestsException",
                403 => "AccessDeniedException",
                _ => "InternalFailure",
            };
            let response = format!(
                "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nx-amzn-errortype: {code}\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
        seen
    });
    (addr, server)
}

/// A client of the fake, without the SDK's retries (each read is one request).
fn client(addr: std::net::SocketAddr) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::Config::builder()
        .http_client(adapters::https_client())
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(format!("http://{addr}"))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(2))
                .build(),
        )
        .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled());
    aws_sdk_sesv2::Client::from_conf(config.build())
}

fn ses_source(addr: std::net::SocketAddr) -> QuotaSource {
    QuotaSource::from_lookup(
        || client(addr),
        |name| (name == "EMAIL_PROVIDER").then(|| "ses".to_owned()),
    )
    .unwrap()
}

#[tokio::test]
async fn the_ses_quota_is_get_accounts_send_quota() {
    let (addr, server) = fake_ses(vec![
        (
            200,
            r#"{"ProductionAccessEnabled":true,"SendingEnabled":true,"EnforcementStatus":"HEALTHY",
                "SendQuota":{"Max24HourSend":50000.0,"MaxSendRate":14.0,"SentLast24Hours":1234.0}}"#,
        ),
        (
            200,
            r#"{"ProductionAccessEnabled":false,"SendQuota":{"Max24HourSend":-1.0,"MaxSendRate":1.0,"SentLast24Hours":0.0}}"#,
        ),
    ])
    .await;
    let source = ses_source(addr);
    assert!(matches!(source, QuotaSource::Ses(_)));

    let quota = source.read().await.unwrap().unwrap();
    assert_eq!(
        quota,
        SendQuota {
            max_send_rate: 14.0,
            max_24h_send: 50_000.0,
            sent_last_24h: 1234.0
        }
    );
    assert_eq!(quota.rate_limit(), Some(14.0));
    assert_eq!(quota.remaining_24h(), Some(50_000.0 - 1234.0));

    // SES answers -1 for an unlimited day.
    let quota = source.read().await.unwrap().unwrap();
    assert_eq!((quota.rate_limit(), quota.daily_limit()), (Some(1.0), None));

    let seen = server.await.unwrap();
    assert_eq!(seen.len(), 2);
    for line in seen {
        assert!(line.starts_with("GET /v2/email/account "), "{line}");
    }
}

#[tokio::test]
async fn a_throttled_read_is_throttled_and_a_denied_one_permanent() {
    let (addr, server) = fake_ses(vec![
        (429, r#"{"message":"Too many requests"}"#),
        (403, r#"{"message":"not authorized to perform ses:GetAccount"}"#),
        (200, r#"{"SendingEnabled":true}"#),
    ])
    .await;
    let source = ses_source(addr);
    let e = source.read().await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Throttled, "TooManyRequestsException"),
        "{e}"
    );
    let e = source.read().await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Permanent, "AccessDeniedException"),
        "{e}"
    );
    let e = source.read().await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Retryable, "SesNoSendQuota"),
        "{e}"
    );
    assert_eq!(server.await.unwrap().len(), 3);
}

#[tokio::test]
async fn no_answer_is_retryable() {
    // A port nobody listens on any more.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let e = ses_source(addr).read().await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Retryable, "SesGetAccount"),
        "{e}"
    );
}
