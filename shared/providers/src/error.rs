use std::fmt;

/// What a retry of a failed send can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The provider did not accept the message; the same request may succeed later.
    Retryable,
    /// The provider refused the message for the sending rate or quota
    /// (throttling): nothing was sent and nothing is wrong with the message.
    /// A throttled send is tried again later without counting as an attempt,
    /// so it never leads to a fallback or a dead letter.
    Throttled,
    /// The provider rejected the message; retrying the same request will not help.
    Permanent,
    /// The outcome is unknown: the request may have reached the provider and the
    /// answer was lost (e.g. a timeout). A retry may deliver the message twice.
    Unknown,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Retryable => "retryable",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Permanent => "permanent",
            ErrorKind::Unknown => "unknown-outcome",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed provider call or send-log write. `code` is the provider's (or the
/// mock's) error code; `message` is for operators. Neither contains personal
/// data: recipients and bodies are never echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} provider error {code}: {message}")]
pub struct ProviderError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Retryable, code, message)
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, code, message)
    }

    pub fn throttled(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Throttled, code, message)
    }

    pub fn unknown(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unknown, code, message)
    }

    /// Whether the same request may succeed later without risking a duplicate
    /// (a throttled one too).
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Retryable | ErrorKind::Throttled)
    }

    /// Whether the provider refused it for the rate or the quota.
    pub fn is_throttled(&self) -> bool {
        self.kind == ErrorKind::Throttled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_and_code() {
        let e = ProviderError::unknown("MockTimeout", "answer lost");
        assert_eq!(e.to_string(), "unknown-outcome provider error MockTimeout: answer lost");
        assert!(!e.is_retryable());
        assert!(ProviderError::retryable("X", "y").is_retryable());
        assert!(!ProviderError::permanent("X", "y").is_retryable());
        let t = ProviderError::throttled("TooManyRequestsException", "rate");
        assert!(t.is_retryable() && t.is_throttled());
        assert_eq!(t.to_string(), "throttled provider error TooManyRequestsException: rate");
    }
}
