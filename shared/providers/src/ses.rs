//! Amazon SES v2 as the email provider (`EMAIL_PROVIDER=ses`).
//!
//! * One `SendEmail` per message: simple content (subject and HTML body,
//!   UTF-8) to the one recipient, from the configured sender, with the
//!   configuration set when one is configured (where delivery, bounce and
//!   complaint events go), and tags: the message's own and `idempotency_key`.
//! * SES tag names and values allow only `[A-Za-z0-9_-]`, at most 256
//!   characters: every other character becomes `_` (so the key
//!   `2026-11#00001#C0000001#email` is tagged `2026-11_00001_C0000001_email`),
//!   longer ones are cut, an empty one becomes `_`. The tag identifies the
//!   message in SES's events; it is not guaranteed unique after this.
//! * The SDK does not retry `SendEmail` (its standard retries would resend a
//!   message whose answer was lost, and hide that from the caller): every
//!   failure goes back to the sender, which retries on its own terms.
//! * Errors keep SES's error code (`MessageRejected`, ...) and say what a retry
//!   can do:
//!   - throttled (never counted as an attempt: the sender waits and tries
//!     again): `TooManyRequestsException`, `LimitExceededException`,
//!     `ThrottlingException`;
//!   - retryable: a paused account or
//!     configuration set (`SendingPausedException`), `ServiceUnavailable`, and
//!     a request that never left: the connection could not be made (DNS, TCP,
//!     TLS, connect timeout; code `SesConnect`) or the request could not be
//!     built, e.g. no credentials (`SesNotSent`);
//!   - permanent: every other 4xx answer, among them `MessageRejected`,
//!     `MailFromDomainNotVerifiedException`, `BadRequestException`,
//!     `NotFoundException` and `AccountSuspendedException`;
//!   - unknown (SES may have accepted the message): a 5xx answer other than
//!     the above, a timeout (`SesTimeout`), an answer that could not be read
//!     (`SesResponseError`), and any failure on a connection that was made
//!     (`SesDispatch`): the SDK reports a connection reset mid-request as an
//!     I/O error like a refused connection, so only a failure it attributes to
//!     establishing the connection counts as not sent.
//! * SES cannot be asked whether a key was accepted (it has no look-up by a
//!   client's key, only asynchronous events through the configuration set):
//!   [`EmailProvider::find_email`] answers [`Lookup::Unsupported`](crate::Lookup).
//! * Neither the recipient nor the subject or body reaches an error or a log:
//!   SES's own message is kept only with the recipient, the subject and every
//!   word containing `@` replaced by `***` (SES names unverified recipients in
//!   its `MessageRejected` message).

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageTag};

use crate::{Accepted, BoxFuture, EmailProvider, OutgoingEmail, ProviderError, transport};

/// SES error codes that mean the account's sending rate or quota was hit:
/// nothing was sent, and a later try goes through (never counted as an attempt).
const THROTTLED: &[&str] = &[
    "TooManyRequestsException",
    "LimitExceededException",
    "ThrottlingException",
    "Throttling",
];

/// SES error codes after which the same request may succeed later.
const RETRYABLE: &[&str] = &["SendingPausedException", "ServiceUnavailable"];

/// The name of the tag that carries the idempotency key.
const IDEMPOTENCY_KEY_TAG: &str = "idempotency_key";

/// The longest tag name or value SES accepts.
const TAG_MAX: usize = 256;

/// The longest part of SES's own error message kept in an error.
const SES_MESSAGE_MAX: usize = 300;

/// The SES v2 email provider. `Debug` shows the sender address and the
/// configuration set (our own, not personal data).
#[derive(Debug, Clone)]
pub struct SesEmailProvider {
    client: Client,
    from_address: String,
    configuration_set: Option<String>,
}

impl SesEmailProvider {
    /// Sends from `from_address` (a verified SES identity) with
    /// `configuration_set` (`None`, or blank: none).
    pub fn new(client: Client, from_address: impl Into<String>, configuration_set: Option<String>) -> Self {
        SesEmailProvider {
            client,
            from_address: from_address.into().trim().to_owned(),
            configuration_set: configuration_set.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()),
        }
    }

    /// Reads `SES_FROM_ADDRESS` (required: a verified sender address) and
    /// `SES_CONFIGURATION_SET` (optional; unset or empty: none) through
    /// `lookup`.
    pub fn from_lookup(client: Client, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let from = lookup("SES_FROM_ADDRESS")
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .ok_or("SES_FROM_ADDRESS (a verified SES sender address) is required when EMAIL_PROVIDER is ses")?;
        if !from.contains('@') {
            return Err("SES_FROM_ADDRESS must be an email address (name@domain)".to_owned());
        }
        Ok(Self::new(client, from, lookup("SES_CONFIGURATION_SET")))
    }

    pub fn from_address(&self) -> &str {
        &self.from_address
    }

    pub fn configuration_set(&self) -> Option<&str> {
        self.configuration_set.as_deref()
    }

    async fn send(&self, email: &OutgoingEmail) -> Result<Accepted, ProviderError> {
        let key = &email.idempotency_key;
        let content =
            |text: &str, part: &str| {
                Content::builder().data(text).charset("UTF-8").build().map_err(|_| {
                    ProviderError::permanent("SesRequest", format!("SES {part} of {key} could not be built"))
                })
            };
        let mut tags = Vec::with_capacity(email.tags.len() + 1);
        for (name, value) in email
            .tags
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain([(IDEMPOTENCY_KEY_TAG, key.as_str())])
        {
            tags.push(
                MessageTag::builder()
                    .name(ses_tag(name))
                    .value(ses_tag(value))
                    .build()
                    .map_err(|_| {
                        ProviderError::permanent("SesRequest", format!("SES tag of {key} could not be built"))
                    })?,
            );
        }
        let message = Message::builder()
            .subject(content(&email.subject, "subject")?)
            .body(Body::builder().html(content(&email.html, "body")?).build())
            .build();
        let out = self
            .client
            .send_email()
            .from_email_address(&self.from_address)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .set_email_tags(Some(tags))
            .customize()
            .config_override(aws_sdk_sesv2::config::Builder::default().retry_config(RetryConfig::disabled()))
            .send()
            .await
            .map_err(|e| classify(email, e))?;
        // SES always answers a message id; without one the message was still
        // accepted, so it is not an error (a retry would send it twice).
        Ok(Accepted {
            provider_message_id: out.message_id.unwrap_or_default(),
        })
    }
}

impl EmailProvider for SesEmailProvider {
    fn send_email<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(self.send(email))
    }
}

/// A tag name or value SES accepts: `[A-Za-z0-9_-]`, 1 to 256 characters.
fn ses_tag(s: &str) -> String {
    let tag: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(TAG_MAX)
        .collect();
    if tag.is_empty() { "_".to_owned() } else { tag }
}

/// What a retry can do after `err`; see the module documentation.
fn classify(email: &OutgoingEmail, err: SdkError<SendEmailError, HttpResponse>) -> ProviderError {
    let key = &email.idempotency_key;
    match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se
                .err()
                .code()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("SesHttp{status}"));
            let message = format!(
                "SES answered {status} to {key}: {}",
                redact(se.err().message().unwrap_or("no message"), email)
            );
            if THROTTLED.contains(&code.as_str()) {
                ProviderError::throttled(code, message)
            } else if RETRYABLE.contains(&code.as_str()) {
                ProviderError::retryable(code, message)
            } else if status >= 500 {
                ProviderError::unknown(code, message)
            } else {
                ProviderError::permanent(code, message)
            }
        }
        _ => transport::without_answer(&err, "SES", "Ses", key),
    }
}

/// `text` without the recipient, the subject or any word containing `@`,
/// and at most [`SES_MESSAGE_MAX`] characters.
fn redact(text: &str, email: &OutgoingEmail) -> String {
    let mut text = text.to_owned();
    for secret in [email.to.trim(), email.subject.trim()] {
        if !secret.is_empty() {
            text = text.replace(secret, "***");
        }
    }
    let redacted: Vec<&str> = text
        .split_whitespace()
        .map(|word| if word.contains('@') { "***" } else { word })
        .collect();
    let redacted = redacted.join(" ");
    match redacted.char_indices().nth(SES_MESSAGE_MAX) {
        Some((end, _)) => format!("{}…", &redacted[..end]),
        None => redacted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_sesv2::types::error::{MessageRejected, TooManyRequestsException};
    use aws_smithy_types::body::SdkBody;

    use crate::ErrorKind;

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            idempotency_key: "2026-11#00001#C0000001#email".into(),
            attempt: 1,
            to: "kim.minsu@example.com".into(),
            subject: "김민수님 11월 청구서".into(),
            html: "<p>김민수님</p>".into(),
            tags: vec![],
        }
    }

    fn client() -> Client {
        Client::from_conf(
            aws_sdk_sesv2::Config::builder()
                .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
                .build(),
        )
    }

    fn service_error(status: u16, err: SendEmailError) -> SdkError<SendEmailError, HttpResponse> {
        let raw = HttpResponse::new(
            status.try_into().unwrap(),
            SdkBody::from("{\"message\":\"kim.minsu@example.com\"}"),
        );
        SdkError::service_error(err, raw)
    }

    fn unhandled(code: &str, message: &str) -> SendEmailError {
        SendEmailError::generic(ErrorMetadata::builder().code(code).message(message).build())
    }

    fn assert_private(e: &ProviderError) {
        let printed = format!("{e} {e:?}");
        for secret in ["kim.minsu", "example.com", "김민수", "청구서", "<p>"] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
        assert!(printed.contains("2026-11#00001#C0000001#email"), "{printed}");
    }

    #[test]
    fn tags_keep_only_what_ses_accepts() {
        assert_eq!(ses_tag("2026-11#00001#C0000001#email"), "2026-11_00001_C0000001_email");
        assert_eq!(ses_tag("kind"), "kind");
        assert_eq!(ses_tag("a b.c/d"), "a_b_c_d");
        assert_eq!(ses_tag("청구"), "__");
        assert_eq!(ses_tag(""), "_");
        assert_eq!(ses_tag(&"x".repeat(300)).len(), 256);
    }

    #[test]
    fn configuration_from_lookup() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let e = SesEmailProvider::from_lookup(client(), vars(&[])).unwrap_err();
        assert!(e.contains("SES_FROM_ADDRESS"), "{e}");
        let e = SesEmailProvider::from_lookup(client(), vars(&[("SES_FROM_ADDRESS", "  ")])).unwrap_err();
        assert!(e.contains("SES_FROM_ADDRESS"), "{e}");
        let e = SesEmailProvider::from_lookup(client(), vars(&[("SES_FROM_ADDRESS", "billing")])).unwrap_err();
        assert!(e.contains("SES_FROM_ADDRESS"), "{e}");

        let p = SesEmailProvider::from_lookup(
            client(),
            vars(&[
                ("SES_FROM_ADDRESS", " billing@example.com "),
                ("SES_CONFIGURATION_SET", ""),
            ]),
        )
        .unwrap();
        assert_eq!(p.from_address(), "billing@example.com");
        assert_eq!(p.configuration_set(), None);
        let p = SesEmailProvider::from_lookup(
            client(),
            vars(&[
                ("SES_FROM_ADDRESS", "billing@example.com"),
                ("SES_CONFIGURATION_SET", " invoices "),
            ]),
        )
        .unwrap();
        assert_eq!(p.configuration_set(), Some("invoices"));
    }

    #[test]
    fn service_errors_keep_the_ses_code_and_say_what_a_retry_can_do() {
        let rejected = service_error(
            400,
            SendEmailError::MessageRejected(
                MessageRejected::builder()
                    .meta(
                        ErrorMetadata::builder()
                            .code("MessageRejected")
                            .message(
                                "Email address is not verified. The following identities failed the check in \
                                 region EU-WEST-1: kim.minsu@example.com, KIM.MINSU@EXAMPLE.COM",
                            )
                            .build(),
                    )
                    .build(),
            ),
        );
        let e = classify(&email(), rejected);
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Permanent, "MessageRejected"),
            "{e}"
        );
        assert!(e.message.contains("not verified") && e.message.contains("400"), "{e}");
        assert_private(&e);

        let throttled = service_error(
            429,
            SendEmailError::TooManyRequestsException(
                TooManyRequestsException::builder()
                    .meta(ErrorMetadata::builder().code("TooManyRequestsException").build())
                    .build(),
            ),
        );
        let e = classify(&email(), throttled);
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Throttled, "TooManyRequestsException")
        );

        for (status, code, kind) in [
            (400, "LimitExceededException", ErrorKind::Throttled),
            (400, "SendingPausedException", ErrorKind::Retryable),
            (400, "ThrottlingException", ErrorKind::Throttled),
            (503, "ServiceUnavailable", ErrorKind::Retryable),
            (400, "MailFromDomainNotVerifiedException", ErrorKind::Permanent),
            (400, "BadRequestException", ErrorKind::Permanent),
            (404, "NotFoundException", ErrorKind::Permanent),
            (400, "AccountSuspendedException", ErrorKind::Permanent),
            (403, "AccessDeniedException", ErrorKind::Permanent),
            (500, "InternalFailure", ErrorKind::Unknown),
        ] {
            let e = classify(
                &email(),
                service_error(status, unhandled(code, "Illegal address: 김민수님 11월 청구서")),
            );
            assert_eq!((e.kind, e.code.as_str()), (kind, code), "{e}");
            assert_private(&e);
        }
    }

    #[test]
    fn transport_errors_are_retryable_only_when_nothing_was_sent() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = classify(&email(), SdkError::dispatch_failure(ConnectorError::io(refused.into())));
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Retryable, "SesConnect"), "{e}");

        for io in [std::io::ErrorKind::ConnectionReset, std::io::ErrorKind::BrokenPipe] {
            let e = classify(
                &email(),
                SdkError::dispatch_failure(ConnectorError::io(std::io::Error::from(io).into())),
            );
            assert_eq!(
                (e.kind, e.code.as_str()),
                (ErrorKind::Unknown, "SesDispatch"),
                "{io:?}: {e}"
            );
        }
        let e = classify(
            &email(),
            SdkError::dispatch_failure(ConnectorError::timeout("read timed out".into())),
        );
        assert_eq!(e.kind, ErrorKind::Unknown, "{e}");
        let e = classify(&email(), SdkError::timeout_error("operation timed out"));
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Unknown, "SesTimeout"), "{e}");
        let e = classify(
            &email(),
            SdkError::response_error("bad json", HttpResponse::new(200.try_into().unwrap(), SdkBody::empty())),
        );
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Unknown, "SesResponseError"),
            "{e}"
        );
        let e = classify(&email(), SdkError::construction_failure("no credentials"));
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Retryable, "SesNotSent"), "{e}");
        assert_private(&e);
    }

    #[test]
    fn redaction_removes_addresses_recipient_and_subject() {
        let mut m = email();
        m.to = "not-an-address".into();
        let r = redact(
            "Invalid address not-an-address; also <x@y.z>, and 김민수님 11월 청구서 in   the subject",
            &m,
        );
        assert_eq!(r, "Invalid address ***; also *** and *** in the subject");
        let long = redact(&"a".repeat(1000), &m);
        assert_eq!(long.chars().count(), SES_MESSAGE_MAX + 1);
    }
}
