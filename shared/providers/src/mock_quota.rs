//! The mock provider's own sending quota, enforced as SES enforces an
//! account's, so that pacing can be tested against a provider that throttles.
//!
//! * `MOCK_MAX_SEND_RATE` (`N`): more than `N` email sends arriving in one
//!   second of the wall clock (a calendar second, UTC) → the send is refused
//!   with [`ProviderError::throttled`] `TooManyRequestsException`, and no send
//!   is recorded.
//! * `MOCK_MAX_24H_SEND` (`D`): more than `D` email sends in a rolling 24 hours
//!   → throttled `LimitExceededException` (`Max24HourSend`). The window is
//!   counted in hours: the current hour and the 24 before it (so between 24
//!   and 25 hours: a send leaves the window up to an hour late, never early).
//! * Both unset or `0`: no quota (the default). SMS is not limited (the mock
//!   stands for SES here; End User Messaging's limits are per origination
//!   identity and not modelled).
//!
//! The counts must be shared to be honest: several Lambda instances each run
//! their own mock, and SES counts the account, not the instance. So they live
//! in DynamoDB when `MOCK_QUOTA_TABLE` is set (a table with a string hash key
//! `pk`; the template points it at the pacing table, whose keys for the
//! pacer are `email#…`/`sms#…` and for the mock `mock-quota#…`): one counter
//! item per second (`mock-quota#email#s#<epoch second>`) and per hour
//! (`…#h#<epoch hour>`), each taken with one conditional `UpdateItem`
//! (`ADD n :1` if `n < :max`), so two instances never both take the last
//! place; items expire by TTL (`expires_at`). Not in the send log
//! (`MOCK_SENDS_TABLE`): its items are one per accepted send, and counting
//! keys there (duplicates, rehearsals) would count counters too; and a count
//! of the log's items by time would race (two instances both count `N - 1`
//! and both accept). Without `MOCK_QUOTA_TABLE` the counts are in memory,
//! honest for one process only.
//!
//! A refused send is counted nowhere else: a rate place taken by a send the
//! daily quota then refuses stays taken (stricter, never looser).

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, Utc};

use crate::{Channel, ProviderError};

/// The error code of a send over the rate (SES's).
pub const RATE_EXCEEDED: &str = "TooManyRequestsException";
/// The error code of a send over the 24-hour quota.
pub const DAILY_EXCEEDED: &str = "LimitExceededException";

/// The mock's quota: `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MockQuota {
    /// Email sends per calendar second.
    pub max_send_rate: Option<u64>,
    /// Email sends per rolling 24 hours.
    pub max_24h_send: Option<u64>,
}

impl MockQuota {
    /// Reads `MOCK_MAX_SEND_RATE` and `MOCK_MAX_24H_SEND` (non-negative
    /// numbers; fractions are cut; unset, empty or `0`: unlimited). Errors name
    /// the variable, never echo its value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<MockQuota, String> {
        let get = |name: &str| -> Result<Option<u64>, String> {
            let Some(v) = lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            match v.parse::<f64>() {
                Ok(n) if n.is_finite() && n >= 0.0 => Ok(Some(n.floor() as u64).filter(|n| *n > 0)),
                _ => Err(format!("{name} must be a non-negative number (0 or unset: unlimited)")),
            }
        };
        Ok(MockQuota {
            max_send_rate: get("MOCK_MAX_SEND_RATE")?,
            max_24h_send: get("MOCK_MAX_24H_SEND")?,
        })
    }

    pub fn is_unlimited(&self) -> bool {
        self.max_send_rate.is_none() && self.max_24h_send.is_none()
    }
}

/// Where the counts are kept.
#[derive(Debug)]
pub enum QuotaCounters {
    /// In this process only.
    Memory(Mutex<HashMap<String, u64>>),
    /// In a DynamoDB table with a string hash key `pk`, shared by every instance.
    Dynamo { client: Client, table: String },
}

impl QuotaCounters {
    pub fn memory() -> Self {
        QuotaCounters::Memory(Mutex::new(HashMap::new()))
    }

    pub fn dynamo(client: Client, table: impl Into<String>) -> Self {
        QuotaCounters::Dynamo {
            client,
            table: table.into(),
        }
    }

    /// Counts one in `key` unless it holds `max` already: whether it did.
    async fn take(&self, key: &str, max: u64, expires_at: i64) -> Result<bool, ProviderError> {
        match self {
            QuotaCounters::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                let n = m.entry(key.to_owned()).or_insert(0);
                if *n >= max {
                    return Ok(false);
                }
                *n += 1;
                Ok(true)
            }
            QuotaCounters::Dynamo { client, table } => {
                let out = client
                    .update_item()
                    .table_name(table)
                    .key("pk", AttributeValue::S(key.to_owned()))
                    .update_expression("ADD n :one SET expires_at = :ttl")
                    .condition_expression("attribute_not_exists(n) OR n < :max")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":max", AttributeValue::N(max.to_string()))
                    .expression_attribute_values(":ttl", AttributeValue::N(expires_at.to_string()))
                    .send()
                    .await;
                match out {
                    Ok(_) => Ok(true),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
                    {
                        Ok(false)
                    }
                    Err(e) => Err(ProviderError::retryable(
                        "MockQuotaStore",
                        format!(
                            "mock quota counter in {table}: {}",
                            aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                        ),
                    )),
                }
            }
        }
    }

    /// The sum of the counters `keys` (missing ones are 0).
    async fn sum(&self, keys: &[String]) -> Result<u64, ProviderError> {
        match self {
            QuotaCounters::Memory(m) => {
                let m = m.lock().unwrap_or_else(|p| p.into_inner());
                Ok(keys.iter().filter_map(|k| m.get(k)).sum())
            }
            QuotaCounters::Dynamo { client, table } => {
                let store_error = |e: String| ProviderError::retryable("MockQuotaStore", e);
                let mut want = KeysAndAttributes::builder().consistent_read(true);
                for k in keys {
                    want = want.keys(HashMap::from([("pk".to_owned(), AttributeValue::S(k.clone()))]));
                }
                let mut request = Some(HashMap::from([(
                    table.clone(),
                    want.build()
                        .map_err(|e| store_error(format!("mock quota read could not be built: {e}")))?,
                )]));
                let mut total = 0;
                // Bounded: unprocessed keys are asked again a few times.
                for _ in 0..5 {
                    let Some(items) = request.take().filter(|r| !r.is_empty()) else {
                        break;
                    };
                    let out = client
                        .batch_get_item()
                        .set_request_items(Some(items))
                        .send()
                        .await
                        .map_err(|e| {
                            store_error(format!(
                                "mock quota counters in {table}: {}",
                                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                            ))
                        })?;
                    for item in out.responses().and_then(|r| r.get(table)).into_iter().flatten() {
                        total += item
                            .get("n")
                            .and_then(|v| v.as_n().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0);
                    }
                    request = out.unprocessed_keys().cloned();
                }
                if request.is_some_and(|r| !r.is_empty()) {
                    return Err(store_error(format!("mock quota counters in {table}: keys left unread")));
                }
                Ok(total)
            }
        }
    }
}

/// The mock's quota with its counters.
#[derive(Debug)]
pub struct QuotaGate {
    pub quota: MockQuota,
    pub counters: QuotaCounters,
}

impl QuotaGate {
    pub fn new(quota: MockQuota, counters: QuotaCounters) -> Self {
        QuotaGate { quota, counters }
    }

    /// Whether a send on `channel` arriving `at` is within the quota; counts
    /// it if so. `Err` with a throttled error when over.
    pub async fn admit(&self, channel: Channel, at: DateTime<Utc>) -> Result<(), ProviderError> {
        if channel != Channel::Email {
            return Ok(());
        }
        let second = at.timestamp();
        if let Some(max) = self.quota.max_send_rate
            && !self
                .counters
                .take(&format!("mock-quota#email#s#{second}"), max, second + 3600)
                .await?
        {
            return Err(ProviderError::throttled(
                RATE_EXCEEDED,
                format!("Maximum sending rate exceeded: more than {max} emails in one second (mock MaxSendRate)"),
            ));
        }
        if let Some(max) = self.quota.max_24h_send {
            let hour = second.div_euclid(3600);
            let earlier: Vec<String> = (hour - 24..hour).map(|h| format!("mock-quota#email#h#{h}")).collect();
            let before = self.counters.sum(&earlier).await?;
            let room = max.saturating_sub(before);
            if room == 0
                || !self
                    .counters
                    .take(&format!("mock-quota#email#h#{hour}"), room, (hour + 26) * 3600)
                    .await?
            {
                return Err(ProviderError::throttled(
                    DAILY_EXCEEDED,
                    format!("Daily message quota exceeded: {max} emails in 24 hours (mock Max24HourSend)"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn quota_from_the_environment() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert!(MockQuota::from_lookup(vars(&[])).unwrap().is_unlimited());
        assert!(
            MockQuota::from_lookup(vars(&[("MOCK_MAX_SEND_RATE", "0")]))
                .unwrap()
                .is_unlimited()
        );
        let q = MockQuota::from_lookup(vars(&[("MOCK_MAX_SEND_RATE", "20"), ("MOCK_MAX_24H_SEND", "5000")])).unwrap();
        assert_eq!((q.max_send_rate, q.max_24h_send), (Some(20), Some(5000)));
        let e = MockQuota::from_lookup(vars(&[("MOCK_MAX_24H_SEND", "lots")])).unwrap_err();
        assert!(e.contains("MOCK_MAX_24H_SEND") && !e.contains("lots"), "{e}");
    }

    #[tokio::test]
    async fn the_rate_is_per_calendar_second_and_email_only() {
        let gate = QuotaGate::new(
            MockQuota {
                max_send_rate: Some(3),
                max_24h_send: None,
            },
            QuotaCounters::memory(),
        );
        let t = DateTime::from_timestamp(1_796_000_000, 900_000_000).unwrap();
        for _ in 0..3 {
            gate.admit(Channel::Email, t).await.unwrap();
        }
        let e = gate.admit(Channel::Email, t).await.unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Throttled, RATE_EXCEEDED));
        gate.admit(Channel::Sms, t).await.unwrap();
        gate.admit(Channel::Email, t + chrono::Duration::milliseconds(100))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_daily_quota_rolls_by_the_hour() {
        let gate = QuotaGate::new(
            MockQuota {
                max_send_rate: None,
                max_24h_send: Some(4),
            },
            QuotaCounters::memory(),
        );
        let t = DateTime::from_timestamp(1_796_000_000, 0).unwrap();
        for h in 0..4 {
            gate.admit(Channel::Email, t + chrono::Duration::hours(h))
                .await
                .unwrap();
        }
        let e = gate
            .admit(Channel::Email, t + chrono::Duration::hours(10))
            .await
            .unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Throttled, DAILY_EXCEEDED));
        assert!(e.message.contains("Max24HourSend"), "{e}");
        // 25 hours after the first, it has left the window.
        gate.admit(Channel::Email, t + chrono::Duration::hours(25))
            .await
            .unwrap();
    }
}
