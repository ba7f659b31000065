//! The End User Messaging SMS provider against a local fake of the service on 127.0.0.1
//! that speaks its protocol (awsJson1_0: `POST /` with `X-Amz-Target:
//! PinpointSMSVoiceV2.SendTextMessage` and a JSON body; a JSON answer, or an error named by
//! `__type` or the `x-amzn-ErrorType` header), and against sockets that fail in known ways.
//! The emulator (moto) has no End User Messaging, so the fake is the service here.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_pinpointsmsvoicev2::config::timeout::TimeoutConfig;
use aws_sdk_pinpointsmsvoicev2::config::{BehaviorVersion, Credentials, Region};
use providers::{ErrorKind, EumSmsProvider, Lookup, OutgoingSms, ProviderError, SmsProvider};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "2026-11#00001#C0000001#sms";
const ORIGINATION: &str = "arn:aws:sms-voice:ap-northeast-2:111122223333:pool/pool-0123456789abcdef";
const TEXT: &str = "김민수님 11월 청구 금액 55,000원 https://example.com/i";

/// The most connections one fake serves: every test makes a handful.
const MAX_CONNECTIONS: usize = 16;
/// The largest request the fake reads.
const MAX_REQUEST: usize = 256 * 1024;

fn sms() -> OutgoingSms {
    OutgoingSms {
        idempotency_key: KEY.into(),
        attempt: 1,
        to: "010-1234-5678".into(),
        text: TEXT.into(),
        tags: vec![
            ("cycle".into(), "2026-11".into()),
            ("shard".into(), "00001".into()),
            ("customer".into(), "C0000001".into()),
            ("channel".into(), "sms".into()),
            ("round".into(), "0".into()),
        ],
    }
}

/// Neither the number (in any form) nor the text in the error's text or Debug.
fn assert_private(e: &ProviderError) {
    let printed = format!("{e} {e:?}");
    for secret in [
        "010-1234-5678",
        "01012345678",
        "+821012345678",
        "1012345678",
        "1234-5678",
        "김민수",
        "55,000",
        "example.com/i",
    ] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
}

/// What the fake answers every request with.
#[derive(Clone)]
enum Answer {
    /// 200 with this message id.
    Accept(&'static str),
    /// An error: status, the error's name, where it is named (`__type` in the body, or
    /// the `x-amzn-ErrorType` header), and the body's other members.
    Error {
        status: u16,
        name: &'static str,
        in_header: bool,
        body: Value,
    },
    /// Reads the request and hangs up without a word.
    HangUp,
    /// Reads the request and never answers.
    Stall,
}

/// One request the fake read.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: Option<String>,
    content_type: Option<String>,
    body: Value,
}

struct Fake {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Fake {
    async fn start(answer: Answer) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            let mut open = Vec::new();
            for _ in 0..MAX_CONNECTIONS {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let Some(request) = read_request(&mut socket).await else {
                    continue;
                };
                log.lock().unwrap().push(request);
                match &answer {
                    Answer::HangUp => drop(socket),
                    Answer::Stall => open.push(socket),
                    Answer::Accept(id) => respond(&mut socket, 200, &[], &json!({ "MessageId": id })).await,
                    Answer::Error {
                        status,
                        name,
                        in_header,
                        body,
                    } => {
                        let mut body = body.clone();
                        let headers: Vec<(&str, String)> = if *in_header {
                            vec![("x-amzn-ErrorType", format!("{name}:http://internal.amazon.com/coral/"))]
                        } else {
                            body["__type"] = json!(format!("com.amazonaws.pinpointsmsvoicev2#{name}"));
                            vec![]
                        };
                        respond(&mut socket, *status, &headers, &body).await;
                    }
                }
            }
        });
        Fake { addr, seen, task }
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// A client for the fake, as the sender's is configured but for the endpoint and a
    /// short timeout per attempt (and none for the whole operation, so SDK retries, if
    /// there were any, would show).
    fn client(&self) -> aws_sdk_pinpointsmsvoicev2::Client {
        client_for(self.addr)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn client_for(addr: SocketAddr) -> aws_sdk_pinpointsmsvoicev2::Client {
    aws_sdk_pinpointsmsvoicev2::Client::from_conf(
        aws_sdk_pinpointsmsvoicev2::Config::builder()
            .http_client(adapters::https_client())
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("ap-northeast-2"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(format!("http://{addr}"))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(500))
                    .build(),
            )
            .build(),
    )
}

/// One HTTP/1.1 request: its head, then as many body bytes as `Content-Length` says.
async fn read_request(socket: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_REQUEST {
            return None;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let method = lines.next()?.split(' ').next()?.to_owned();
    let header = |name: &str| {
        head.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let length: usize = header("content-length")?.parse().ok()?;
    while buf.len() < head_end + length {
        if buf.len() > MAX_REQUEST {
            return None;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        method,
        target: header("x-amz-target"),
        content_type: header("content-type"),
        body: serde_json::from_slice(&buf[head_end..head_end + length]).ok()?,
    })
}

async fn respond(socket: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &Value) {
    let body = body.to_string();
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\
         x-amzn-RequestId: 11111111-2222-3333-4444-555555555555\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    let _ = socket.write_all(out.as_bytes()).await;
    let _ = socket.shutdown().await;
}

#[tokio::test]
async fn a_send_carries_every_field_and_is_accepted_with_the_message_id() {
    let fake = Fake::start(Answer::Accept("msg-0001")).await;
    let eum = EumSmsProvider::new(fake.client(), ORIGINATION, Some("invoices".into()))
        .with_max_price("0.10")
        .unwrap();
    let provider: &dyn SmsProvider = &eum;

    let accepted = provider.send_sms(&sms()).await.unwrap();
    assert_eq!(accepted.provider_message_id, "msg-0001");

    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target.as_deref(), Some("PinpointSMSVoiceV2.SendTextMessage"));
    assert_eq!(r.content_type.as_deref(), Some("application/x-amz-json-1.0"));
    assert_eq!(
        r.body,
        json!({
            "DestinationPhoneNumber": "+821012345678",
            "OriginationIdentity": ORIGINATION,
            "ConfigurationSetName": "invoices",
            "MessageType": "TRANSACTIONAL",
            "MaxPrice": "0.10",
            "MessageBody": TEXT,
            "Context": {
                "cycle": "2026-11",
                "shard": "00001",
                "customer": "C0000001",
                "channel": "sms",
                "round": "0"
            }
        })
    );
    // End User Messaging has no look-up by our key.
    assert_eq!(provider.find_sms(KEY).await.unwrap(), Lookup::Unsupported);
    assert!(!provider.answers_lookups());
}

#[tokio::test]
async fn without_a_configuration_set_or_price_limit_neither_is_sent() {
    let fake = Fake::start(Answer::Accept("msg-0002")).await;
    let eum = EumSmsProvider::new(fake.client(), "pool-0123456789abcdef", None);
    let mut m = sms();
    m.to = "+82 (0)10 1234 5678".into();
    m.tags.clear();
    eum.send_sms(&m).await.unwrap();
    let body = &fake.requests()[0].body;
    let mut keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "DestinationPhoneNumber",
            "MessageBody",
            "MessageType",
            "OriginationIdentity"
        ]
    );
    assert_eq!(body["DestinationPhoneNumber"], "+821012345678");
}

/// Every error class: what the service says, what we make of it.
#[tokio::test]
async fn each_error_is_classified_by_its_name_and_reason_without_echoing_the_number() {
    let said = "The destination +821012345678 (010-1234-5678) cannot receive: 김민수님";
    let cases: Vec<(u16, &str, bool, Value, ErrorKind, &str)> = vec![
        (
            400,
            "ThrottlingException",
            false,
            json!({"Message": said}),
            ErrorKind::Throttled,
            "ThrottlingException",
        ),
        (
            429,
            "ThrottlingException",
            true,
            json!({"Message": said}),
            ErrorKind::Throttled,
            "ThrottlingException",
        ),
        (
            402,
            "ServiceQuotaExceededException",
            false,
            json!({"Message": said, "Reason": "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"}),
            ErrorKind::Permanent,
            "ServiceQuotaExceededException/MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT",
        ),
        (
            402,
            "ServiceQuotaExceededException",
            false,
            json!({"Message": said, "Reason": "DAILY_NOTIFY_TIER_MESSAGE_LIMIT"}),
            ErrorKind::Retryable,
            "ServiceQuotaExceededException/DAILY_NOTIFY_TIER_MESSAGE_LIMIT",
        ),
        (
            500,
            "InternalServerException",
            false,
            json!({"Message": said, "RequestId": "r-1"}),
            ErrorKind::Retryable,
            "InternalServerException",
        ),
        (
            503,
            "ServiceUnavailable",
            true,
            json!({"message": said}),
            ErrorKind::Retryable,
            "ServiceUnavailable",
        ),
        (
            400,
            "ValidationException",
            false,
            json!({"Message": said, "Reason": "CANNOT_PARSE",
                   "Fields": [{"Name": "DestinationPhoneNumber", "Message": "+821012345678 is not valid"}]}),
            ErrorKind::Permanent,
            "ValidationException/CANNOT_PARSE",
        ),
        (
            400,
            "ValidationException",
            true,
            json!({"Message": said, "Reason": "PRICE_OVER_THRESHOLD"}),
            ErrorKind::Permanent,
            "ValidationException/PRICE_OVER_THRESHOLD",
        ),
        (
            400,
            "ConflictException",
            false,
            json!({"Message": said, "Reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT",
                   "ResourceType": "opt-out-list", "ResourceId": "+821012345678"}),
            ErrorKind::Permanent,
            "ConflictException/DESTINATION_PHONE_NUMBER_OPTED_OUT",
        ),
        (
            403,
            "AccessDeniedException",
            false,
            json!({"Message": said, "Reason": "ACCOUNT_DISABLED"}),
            ErrorKind::Permanent,
            "AccessDeniedException/ACCOUNT_DISABLED",
        ),
        (
            404,
            "ResourceNotFoundException",
            false,
            json!({"Message": said, "ResourceType": "configuration-set", "ResourceId": "invoices"}),
            ErrorKind::Permanent,
            "ResourceNotFoundException/configuration-set",
        ),
        (
            500,
            "InternalFailure",
            true,
            json!({"message": said}),
            ErrorKind::Unknown,
            "InternalFailure",
        ),
    ];
    for (status, name, in_header, body, kind, code) in cases {
        let fake = Fake::start(Answer::Error {
            status,
            name,
            in_header,
            body,
        })
        .await;
        let eum = EumSmsProvider::new(fake.client(), ORIGINATION, Some("invoices".into()));
        let e = eum.send_sms(&sms()).await.unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (kind, code), "{name} {status}: {e}");
        assert!(
            e.message.contains(KEY) && e.message.contains(&status.to_string()),
            "{e}"
        );
        assert!(
            e.message.contains("cannot receive"),
            "the service's own words are kept: {e}"
        );
        assert_private(&e);
        if code == "ValidationException/CANNOT_PARSE" {
            assert!(e.message.contains("DestinationPhoneNumber"), "the field is named: {e}");
        }
        assert_eq!(fake.requests().len(), 1, "{name}: one request, no SDK retry");
    }
}

#[tokio::test]
async fn a_number_that_is_not_one_is_refused_before_any_request_without_echoing_it() {
    let fake = Fake::start(Answer::Accept("never")).await;
    let eum = EumSmsProvider::new(fake.client(), ORIGINATION, None);
    for bad in ["010-1234", "kim@example.com", "1012345678", "+82 10-1234-5678 ext 9"] {
        let mut m = sms();
        m.to = bad.into();
        let e = eum.send_sms(&m).await.unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Permanent, "InvalidDestinationPhoneNumber"),
            "{bad}: {e}"
        );
        assert!(
            e.message.contains("DestinationPhoneNumber") && e.message.contains(KEY),
            "{e}"
        );
        let printed = format!("{e} {e:?}");
        for part in ["1234", "kim", "example", "ext"] {
            assert!(!printed.contains(part), "{part} of {bad} echoed: {printed}");
        }
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_text_over_the_lms_limit_is_refused_before_any_request() {
    let fake = Fake::start(Answer::Accept("msg-lms")).await;
    let eum = EumSmsProvider::new(fake.client(), ORIGINATION, None);
    let mut m = sms();
    // 1,000 Hangul syllables: exactly the 2,000 EUC-KR bytes of an LMS, sent.
    m.text = "가".repeat(invoice::sms::LMS_MAX_BYTES / 2);
    eum.send_sms(&m).await.unwrap();
    assert_eq!(fake.requests().len(), 1);
    // One byte more: refused here.
    m.text.push('a');
    let e = eum.send_sms(&m).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Permanent, "SmsTooLong"), "{e}");
    assert!(e.message.contains("2001") && !e.message.contains('가'), "{e}");
    assert_eq!(fake.requests().len(), 1, "no second request");
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    // A port nobody listens on any more: the request never leaves.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let eum = EumSmsProvider::new(client_for(addr), ORIGINATION, None);
    let e = eum.send_sms(&sms()).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Retryable, "EumConnect"), "{e}");
    assert_private(&e);
}

#[tokio::test]
async fn a_connection_dropped_after_the_request_is_of_unknown_outcome() {
    let fake = Fake::start(Answer::HangUp).await;
    let eum = EumSmsProvider::new(fake.client(), ORIGINATION, None);
    let e = eum.send_sms(&sms()).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Unknown, "EumDispatch"), "{e}");
    assert_private(&e);
    assert_eq!(fake.requests().len(), 1, "the request reached the fake, once");
}

#[tokio::test]
async fn no_answer_in_time_is_of_unknown_outcome_and_not_retried_by_the_sdk() {
    let fake = Fake::start(Answer::Stall).await;
    let eum = EumSmsProvider::new(fake.client(), ORIGINATION, None);
    let e = eum.send_sms(&sms()).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Unknown, "EumTimeout"), "{e}");
    assert_private(&e);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        fake.requests().len(),
        1,
        "one SendTextMessage request: the SDK does not retry it"
    );
}

#[tokio::test]
async fn the_provider_debug_names_no_number() {
    let fake = Fake::start(Answer::Accept("x")).await;
    let eum = EumSmsProvider::new(fake.client(), "+82 2 1588 0000", Some("invoices".into()))
        .with_max_price("0.10")
        .unwrap();
    let printed = format!("{eum:?} {eum:#?}");
    assert!(!printed.contains("1588") && !printed.contains("+82"), "{printed}");
    assert!(printed.contains("invoices") && printed.contains("0.10"), "{printed}");
}
