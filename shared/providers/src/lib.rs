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
//! * Every accepted send is recorded through a [`SendLog`] ([`MemoryLog`] or
//!   [`DynamoLog`]) with its idempotency key and nothing personal, so the sends
//!   the provider accepted more than once can be counted.

mod dynamo;
mod error;
mod log;
mod message;
mod mock;

use std::future::Future;
use std::pin::Pin;

pub use dynamo::DynamoLog;
pub use error::{ErrorKind, ProviderError};
pub use log::{AcceptedSend, Channel, MemoryLog, SendLog, duplicates_of};
pub use message::{OutgoingEmail, OutgoingSms};
pub use mock::{MockConfig, MockProvider};

/// A boxed future that can be returned from a trait object method.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The provider accepted a message for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id for the message.
    pub provider_message_id: String,
}

/// Sends email. Usable as `Arc<dyn EmailProvider>`.
pub trait EmailProvider: Send + Sync {
    /// Hands one email to the provider. The provider deduplicates on
    /// `idempotency_key` where it can; callers must still expect a retry after
    /// [`ErrorKind::Unknown`] to be delivered twice.
    fn send_email<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<Accepted, ProviderError>>;
}

/// Sends SMS. Usable as `Arc<dyn SmsProvider>`.
pub trait SmsProvider: Send + Sync {
    /// Hands one SMS to the provider; see [`EmailProvider::send_email`].
    fn send_sms<'a>(&'a self, sms: &'a OutgoingSms) -> BoxFuture<'a, Result<Accepted, ProviderError>>;
}
