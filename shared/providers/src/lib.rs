//! The message providers the delivery senders call: one email provider and one
//! SMS provider, each behind a small object-safe trait so a sender holds an
//! `Arc<dyn EmailProvider>` / `Arc<dyn SmsProvider>` and never knows which one
//! it talks to.
//!
//! * Personal data (the email address, the phone number, the rendered body)
//!   reaches only the provider call. [`OutgoingEmail`] and [`OutgoingSms`]
//!   print the recipient masked and the bodies as lengths; [`ProviderError`]
//!   carries a kind, a code and a message that never contain them.
//! * Every error says what a retry can do ([`ErrorKind`]): `Retryable`,
//!   `Permanent`, or `Unknown` when the request may have reached the provider
//!   and its answer was lost.
//! * The [`MockProvider`] is a product feature, not a test double: it is what
//!   is deployed by default. It waits a configurable latency, fails a
//!   configurable share of sends, and loses the answer of another share after
//!   accepting them. Which sends fail is decided from the seed, the
//!   idempotency key and the attempt number, so a run is reproducible by its
//!   seed.
//!   Every message carries its attempt number on its channel, counted by the
//!   caller from the delivery record, so the decision does not depend on which
//!   process (Lambda instance) makes the attempt.
//! * [`SesEmailProvider`] sends email through Amazon SES v2. Which email
//!   provider a sender uses is the value of `EMAIL_PROVIDER`
//!   ([`EmailBackend`]: `mock`, the default, or `ses`).
//! * [`EumSmsProvider`] sends SMS through AWS End User Messaging SMS
//!   (`SendTextMessage`). Which SMS provider a sender uses is the value of
//!   `SMS_PROVIDER` ([`SmsBackend`]: `mock`, the default, or
//!   `end-user-messaging`).
//! * A sender that lost an answer, or took over another sender's claim, asks
//!   the provider whether the idempotency key was already accepted before
//!   sending again ([`EmailProvider::find_email`], [`SmsProvider::find_sms`]):
//!   the mock answers from its send log; SES cannot be asked
//!   ([`Lookup::Unsupported`]).
//! * Every accepted send is recorded through a [`SendLog`] ([`MemoryLog`] or
//!   [`DynamoLog`]) with its idempotency key and nothing personal, so the sends
//!   the provider accepted more than once can be counted and a key can be
//!   looked up.
//! * The account's sending quota ([`QuotaSource`], [`SendQuota`]): SES's
//!   `GetAccount`, or the mock's `MOCK_MAX_SEND_RATE` / `MOCK_MAX_24H_SEND`;
//!   senders pace themselves to its rate, dispatch plans within its 24 hours.

mod dynamo;
mod error;
mod eum;
mod log;
mod message;
mod mock;
mod mock_evidence;
mod mock_quota;
mod quota;
mod ses;
mod transport;

use std::future::Future;
use std::pin::Pin;

pub use dynamo::DynamoLog;
pub use error::{ErrorKind, ProviderError};
pub use eum::EumSmsProvider;
pub use log::{AcceptedSend, Channel, MemoryLog, SendLog, duplicates_of};
pub use message::{OutgoingEmail, OutgoingSms};
pub use mock::{MockConfig, MockProvider};
pub use mock_evidence::{EvidenceRates, EvidenceSink, MOCK_SOURCE, MemorySink, Verdict, simulated_events, verdict};
pub use mock_quota::{MockQuota, QuotaCounters, QuotaGate};
pub use quota::{QuotaSource, SendQuota};
pub use ses::SesEmailProvider;

/// A boxed future that can be returned from a trait object method.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The provider accepted a message for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id for the message.
    pub provider_message_id: String,
}

/// Which email provider a sender uses: the value of `EMAIL_PROVIDER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmailBackend {
    /// The mock provider (the default).
    #[default]
    Mock,
    /// Amazon SES v2.
    Ses,
}

impl EmailBackend {
    /// The name `EMAIL_PROVIDER` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailBackend::Mock => "mock",
            EmailBackend::Ses => "ses",
        }
    }
}

impl std::fmt::Display for EmailBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the value of `EMAIL_PROVIDER`: `mock` or `ses`, ignoring case and
/// surrounding blanks; empty means the default, `mock`.
impl std::str::FromStr for EmailBackend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "mock" => Ok(EmailBackend::Mock),
            "ses" => Ok(EmailBackend::Ses),
            _ => Err(format!(
                "EMAIL_PROVIDER must be \"mock\" (the default) or \"ses\", got {:?}",
                s.trim()
            )),
        }
    }
}

/// Which SMS provider a sender uses: the value of `SMS_PROVIDER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmsBackend {
    /// The mock provider (the default).
    #[default]
    Mock,
    /// AWS End User Messaging SMS (`end-user-messaging`, or `eum` for short).
    Eum,
}

impl SmsBackend {
    /// The name `SMS_PROVIDER` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            SmsBackend::Mock => "mock",
            SmsBackend::Eum => "end-user-messaging",
        }
    }
}

impl std::fmt::Display for SmsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the value of `SMS_PROVIDER`: `mock`, `end-user-messaging` or `eum`,
/// ignoring case and surrounding blanks; empty means the default, `mock`.
impl std::str::FromStr for SmsBackend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "mock" => Ok(SmsBackend::Mock),
            "end-user-messaging" | "eum" => Ok(SmsBackend::Eum),
            _ => Err(format!(
                "SMS_PROVIDER must be \"mock\" (the default) or \"end-user-messaging\" (\"eum\"), got {:?}",
                s.trim()
            )),
        }
    }
}

/// What a provider knows about an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// It accepted a message with this key.
    Accepted(Accepted),
    /// It has no message with this key.
    NotFound,
    /// It cannot be asked (SES has no lookup by a client's key): the caller
    /// decides without knowing.
    Unsupported,
}

/// Sends email. Usable as `Arc<dyn EmailProvider>`.
pub trait EmailProvider: Send + Sync {
    /// Hands one email to the provider. The provider deduplicates on
    /// `idempotency_key` where it can; callers must still expect a retry after
    /// [`ErrorKind::Unknown`] to be delivered twice.
    fn send_email<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<Accepted, ProviderError>>;

    /// Whether a message with `idempotency_key` was accepted: what a sender
    /// asks before sending a delivery again. Unsupported unless overridden.
    fn find_email<'a>(&'a self, idempotency_key: &'a str) -> BoxFuture<'a, Result<Lookup, ProviderError>> {
        let _ = idempotency_key;
        Box::pin(std::future::ready(Ok(Lookup::Unsupported)))
    }

    /// Whether [`find_email`](Self::find_email) can answer (never
    /// [`Lookup::Unsupported`]). A sender marks a call to a provider that
    /// cannot be asked as started before making it, so that whoever takes the
    /// delivery over knows the call may have reached it.
    fn answers_lookups(&self) -> bool {
        false
    }
}

/// Sends SMS. Usable as `Arc<dyn SmsProvider>`.
pub trait SmsProvider: Send + Sync {
    /// Hands one SMS to the provider; see [`EmailProvider::send_email`].
    fn send_sms<'a>(&'a self, sms: &'a OutgoingSms) -> BoxFuture<'a, Result<Accepted, ProviderError>>;

    /// See [`EmailProvider::find_email`].
    fn find_sms<'a>(&'a self, idempotency_key: &'a str) -> BoxFuture<'a, Result<Lookup, ProviderError>> {
        let _ = idempotency_key;
        Box::pin(std::future::ready(Ok(Lookup::Unsupported)))
    }

    /// See [`EmailProvider::answers_lookups`].
    fn answers_lookups(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_backend_from_the_environment_value() {
        for (value, backend) in [
            ("", EmailBackend::Mock),
            ("mock", EmailBackend::Mock),
            (" ses ", EmailBackend::Ses),
            ("SES", EmailBackend::Ses),
        ] {
            assert_eq!(value.parse::<EmailBackend>(), Ok(backend), "{value:?}");
        }
        assert_eq!(EmailBackend::default(), EmailBackend::Mock);
        assert_eq!(EmailBackend::Ses.to_string(), "ses");
        let e = "sendgrid".parse::<EmailBackend>().unwrap_err();
        assert!(
            e.contains("EMAIL_PROVIDER") && e.contains("\"mock\"") && e.contains("\"ses\"") && e.contains("sendgrid"),
            "{e}"
        );
    }

    #[test]
    fn sms_backend_from_the_environment_value() {
        for (value, backend) in [
            ("", SmsBackend::Mock),
            (" mock ", SmsBackend::Mock),
            ("end-user-messaging", SmsBackend::Eum),
            ("End-User-Messaging", SmsBackend::Eum),
            (" eum ", SmsBackend::Eum),
        ] {
            assert_eq!(value.parse::<SmsBackend>(), Ok(backend), "{value:?}");
        }
        assert_eq!(SmsBackend::default(), SmsBackend::Mock);
        assert_eq!(SmsBackend::Eum.to_string(), "end-user-messaging");
        let e = "sns".parse::<SmsBackend>().unwrap_err();
        assert!(
            e.contains("SMS_PROVIDER") && e.contains("\"end-user-messaging\"") && e.contains("sns"),
            "{e}"
        );
    }
}
