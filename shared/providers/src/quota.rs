//! The account's sending quota: how fast and how much the email provider lets
//! this account send.
//!
//! * With Amazon SES (`EMAIL_PROVIDER=ses`) it is SES v2 `GetAccount`'s
//!   `SendQuota`: `MaxSendRate` (messages per second, across every sender of
//!   the account), `Max24HourSend` (messages in a rolling 24 hours; SES answers
//!   `-1` for unlimited) and `SentLast24Hours`.
//! * With the mock provider it is the mock's own quota, `MOCK_MAX_SEND_RATE`
//!   and `MOCK_MAX_24H_SEND` (the limits the mock enforces when they are set);
//!   both unset or `0`: unlimited. The mock does not report what it sent, so a
//!   fixed quota says `sent_last_24h = 0`.
//! * Senders pace themselves to [`SendQuota::max_send_rate`] (so SES never has
//!   to throttle them), and dispatch plans a day's sends within
//!   [`SendQuota::max_24h_send`].
//!
//! A failed read never contains personal data: `GetAccount` carries none.

use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::ProviderError;

/// The sending quota of the account at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendQuota {
    /// Messages per second the account may send, across all its senders.
    /// Not positive (or not finite): no limit on the rate (only a fixed quota
    /// says so; SES always answers a positive rate).
    pub max_send_rate: f64,
    /// Messages the account may send in a rolling 24 hours; below `0`:
    /// unlimited (SES answers `-1`).
    pub max_24h_send: f64,
    /// Messages the account sent in the last 24 hours.
    pub sent_last_24h: f64,
}

impl SendQuota {
    /// The rate limit in messages per second, or `None` when the rate is not
    /// limited.
    pub fn rate_limit(&self) -> Option<f64> {
        (self.max_send_rate.is_finite() && self.max_send_rate > 0.0).then_some(self.max_send_rate)
    }

    /// The 24-hour limit, or `None` when it is unlimited.
    pub fn daily_limit(&self) -> Option<f64> {
        (self.max_24h_send >= 0.0 && self.max_24h_send.is_finite()).then_some(self.max_24h_send)
    }

    /// How many more messages the 24-hour quota allows now (never below 0),
    /// or `None` when it is unlimited.
    pub fn remaining_24h(&self) -> Option<f64> {
        self.daily_limit()
            .map(|max| (max - self.sent_last_24h.max(0.0)).max(0.0))
    }
}

/// Where a sender reads the account's quota from.
#[derive(Debug, Clone)]
pub enum QuotaSource {
    /// No quota: the rate and the volume are not limited.
    Unlimited,
    /// A quota that does not change (the mock's).
    Fixed(SendQuota),
    /// Amazon SES v2 `GetAccount`, asked at every [`read`](Self::read):
    /// callers cache the answer (it changes when AWS raises the quota, and
    /// `SentLast24Hours` as the account sends).
    Ses(aws_sdk_sesv2::Client),
}

impl QuotaSource {
    /// The quota source for the configured email provider:
    /// * `EMAIL_PROVIDER=ses`: [`QuotaSource::Ses`] with the client `ses`
    ///   builds (called only then);
    /// * otherwise (the mock): `MOCK_MAX_SEND_RATE` (messages per second) and
    ///   `MOCK_MAX_24H_SEND` (messages in 24 hours), non-negative numbers; both
    ///   unset, empty or `0`: [`QuotaSource::Unlimited`], else
    ///   [`QuotaSource::Fixed`] where an unset or `0` one is unlimited.
    ///
    /// Errors name the variable, never echo its value.
    pub fn from_lookup(
        ses: impl FnOnce() -> aws_sdk_sesv2::Client,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<QuotaSource, String> {
        let backend: crate::EmailBackend = lookup("EMAIL_PROVIDER").unwrap_or_default().parse()?;
        if backend == crate::EmailBackend::Ses {
            return Ok(QuotaSource::Ses(ses()));
        }
        let rate = limit(&lookup, "MOCK_MAX_SEND_RATE", "messages per second")?;
        let daily = limit(&lookup, "MOCK_MAX_24H_SEND", "messages in 24 hours")?;
        if rate.is_none() && daily.is_none() {
            return Ok(QuotaSource::Unlimited);
        }
        Ok(QuotaSource::Fixed(SendQuota {
            max_send_rate: rate.unwrap_or(0.0),
            max_24h_send: daily.unwrap_or(-1.0),
            sent_last_24h: 0.0,
        }))
    }

    /// The quota now; `None`: unlimited. SES errors keep SES's code: throttled
    /// ones ([`ErrorKind::Throttled`](crate::ErrorKind)), 4xx answers
    /// permanent (credentials, permissions), everything else retryable (a
    /// read changes nothing, so it is always safe to repeat).
    pub async fn read(&self) -> Result<Option<SendQuota>, ProviderError> {
        match self {
            QuotaSource::Unlimited => Ok(None),
            QuotaSource::Fixed(quota) => Ok(Some(*quota)),
            QuotaSource::Ses(client) => {
                let out = client.get_account().send().await.map_err(classify)?;
                let quota = out.send_quota().ok_or_else(|| {
                    ProviderError::retryable("SesNoSendQuota", "SES GetAccount answered without a SendQuota")
                })?;
                Ok(Some(SendQuota {
                    max_send_rate: quota.max_send_rate(),
                    max_24h_send: quota.max24_hour_send(),
                    sent_last_24h: quota.sent_last24_hours(),
                }))
            }
        }
    }
}

/// SES error codes of a throttled request (as for `SendEmail`).
const THROTTLED: &[&str] = &[
    "TooManyRequestsException",
    "LimitExceededException",
    "ThrottlingException",
    "Throttling",
];

/// A non-negative number from `name`; unset, empty or `0`: `None`.
fn limit(lookup: &impl Fn(&str) -> Option<String>, name: &str, unit: &str) -> Result<Option<f64>, String> {
    let Some(v) = lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match v.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok((n > 0.0).then_some(n)),
        _ => Err(format!(
            "{name} must be a non-negative number of {unit} (0 or unset: unlimited)"
        )),
    }
}

/// A failed `GetAccount` as a [`ProviderError`]; see [`QuotaSource::read`].
fn classify<E, R>(err: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(se) = &err {
        let code = se.err().code().unwrap_or("SesError").to_owned();
        let message = format!("SES GetAccount failed: {}", se.err().message().unwrap_or("no message"));
        return if THROTTLED.contains(&code.as_str()) {
            ProviderError::throttled(code, message)
        } else if matches!(
            code.as_str(),
            "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "BadRequestException"
        ) {
            ProviderError::permanent(code, message)
        } else {
            ProviderError::retryable(code, message)
        };
    }
    ProviderError::retryable(
        "SesGetAccount",
        format!("SES GetAccount failed: {}", DisplayErrorContext(&err)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    fn no_ses() -> aws_sdk_sesv2::Client {
        panic!("the SES client is built only for EMAIL_PROVIDER=ses")
    }

    #[tokio::test]
    async fn the_mock_quota_comes_from_the_environment() {
        for env in [
            &[][..],
            &[("MOCK_MAX_SEND_RATE", ""), ("MOCK_MAX_24H_SEND", " ")][..],
            &[("MOCK_MAX_SEND_RATE", "0"), ("MOCK_MAX_24H_SEND", "0")][..],
        ] {
            let q = QuotaSource::from_lookup(no_ses, vars(env)).unwrap();
            assert!(matches!(q, QuotaSource::Unlimited), "{env:?}");
            assert_eq!(q.read().await.unwrap(), None);
        }
        let q = QuotaSource::from_lookup(no_ses, vars(&[("MOCK_MAX_SEND_RATE", " 20 ")])).unwrap();
        let quota = q.read().await.unwrap().unwrap();
        assert_eq!(quota.rate_limit(), Some(20.0));
        assert_eq!((quota.daily_limit(), quota.remaining_24h()), (None, None));
        let q = QuotaSource::from_lookup(
            no_ses,
            vars(&[("EMAIL_PROVIDER", "mock"), ("MOCK_MAX_24H_SEND", "200")]),
        )
        .unwrap();
        let quota = q.read().await.unwrap().unwrap();
        assert_eq!(quota.rate_limit(), None);
        assert_eq!((quota.daily_limit(), quota.remaining_24h()), (Some(200.0), Some(200.0)));
    }

    #[test]
    fn bad_values_name_the_variable_without_echoing_it() {
        for (name, value) in [
            ("MOCK_MAX_SEND_RATE", "fast"),
            ("MOCK_MAX_SEND_RATE", "-1"),
            ("MOCK_MAX_24H_SEND", "NaN"),
            ("MOCK_MAX_24H_SEND", "inf"),
        ] {
            let env: &'static [(&'static str, &'static str)] = Box::leak(Box::new([(name, value)]));
            let e = QuotaSource::from_lookup(no_ses, vars(env)).unwrap_err();
            assert!(e.contains(name) && !e.contains(value), "{e}");
        }
        assert!(QuotaSource::from_lookup(no_ses, vars(&[("EMAIL_PROVIDER", "pigeon")])).is_err());
    }

    #[test]
    fn remaining_never_goes_below_zero() {
        let q = SendQuota {
            max_send_rate: 14.0,
            max_24h_send: 100.0,
            sent_last_24h: 130.0,
        };
        assert_eq!(q.remaining_24h(), Some(0.0));
        let unlimited = SendQuota {
            max_24h_send: -1.0,
            ..q
        };
        assert_eq!((unlimited.daily_limit(), unlimited.remaining_24h()), (None, None));
        assert_eq!(
            SendQuota {
                max_send_rate: 0.0,
                ..q
            }
            .rate_limit(),
            None
        );
    }
}
