use std::fmt;

/// What `Debug` prints in place of a recipient.
const MASK: &str = "***";

/// One email for the provider. `Debug` masks the recipient and prints the
/// subject and body as lengths, so the value can be logged safely.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// Stable per logical message; repeated on every retry.
    pub idempotency_key: String,
    /// 1-based attempt on this channel, as the delivery record counts it
    /// (0: unknown, the mock then counts attempts itself).
    pub attempt: u32,
    /// The recipient's address (personal data).
    pub to: String,
    pub subject: String,
    pub html: String,
    /// Provider tags for classification. They are printed by `Debug`, so they
    /// must not carry personal data.
    pub tags: Vec<(String, String)>,
}

impl fmt::Debug for OutgoingEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingEmail")
            .field("idempotency_key", &self.idempotency_key)
            .field("attempt", &self.attempt)
            .field("to", &MASK)
            .field("subject_len", &self.subject.len())
            .field("html_len", &self.html.len())
            .field("tags", &self.tags)
            .finish()
    }
}

/// One SMS for the provider. `Debug` masks the recipient and prints the text
/// as a length.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingSms {
    /// Stable per logical message; repeated on every retry.
    pub idempotency_key: String,
    /// 1-based attempt on this channel (see [`OutgoingEmail::attempt`]).
    pub attempt: u32,
    /// The recipient's phone number (personal data).
    pub to: String,
    pub text: String,
    /// What identifies the message in the provider's delivery events (End
    /// User Messaging's `Context`): printed by `Debug`, so never personal data.
    pub tags: Vec<(String, String)>,
}

impl fmt::Debug for OutgoingSms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingSms")
            .field("idempotency_key", &self.idempotency_key)
            .field("attempt", &self.attempt)
            .field("to", &MASK)
            .field("text_len", &self.text.len())
            .field("tags", &self.tags)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_recipient_and_bodies() {
        let email = OutgoingEmail {
            idempotency_key: "2026-11#00001#C0000001".into(),
            attempt: 1,
            to: "kim@example.com".into(),
            subject: "김민수님 11월 청구서".into(),
            html: "<p>김민수님, 010-1234-5678</p>".into(),
            tags: vec![("kind".into(), "bill".into())],
        };
        let printed = format!("{email:?} {email:#?}");
        for secret in [
            "kim@example.com",
            "kim",
            "example.com",
            "김민수",
            "010-1234-5678",
            "<p>",
        ] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
        assert!(printed.contains("***"), "{printed}");
        assert!(printed.contains("2026-11#00001#C0000001"), "{printed}");
        assert!(printed.contains("bill"), "{printed}");

        let sms = OutgoingSms {
            idempotency_key: "k-sms".into(),
            attempt: 1,
            to: "010-1234-5678".into(),
            text: "김민수님 청구 금액 55,000원".into(),
            tags: vec![("customer".into(), "C0000001".into())],
        };
        let printed = format!("{sms:?} {sms:#?}");
        for secret in ["010-1234-5678", "01012345678", "김민수", "55,000"] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
        assert!(printed.contains("***") && printed.contains("k-sms"), "{printed}");
    }
}
