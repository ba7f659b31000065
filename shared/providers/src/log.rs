use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::{BoxFuture, ProviderError};

/// The channel a message went out on (the domain's: `"email"` or `"sms"`).
pub use domain::Channel;

/// One send the provider accepted. No recipient and no body: only what is
/// needed to count duplicates per idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedSend {
    pub channel: Channel,
    pub idempotency_key: String,
    pub provider_message_id: String,
    pub accepted_at: DateTime<Utc>,
}

/// Where accepted sends are recorded. Every accept is a new record: a key
/// accepted twice is recorded twice.
pub trait SendLog: Send + Sync {
    fn record(&self, rec: AcceptedSend) -> BoxFuture<'_, Result<(), ProviderError>>;

    /// The first accepted send of `idempotency_key` on `channel`, if any.
    fn find<'a>(
        &'a self,
        channel: Channel,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<AcceptedSend>, ProviderError>>;
}

/// The keys counted more than once, in key order.
pub fn duplicates_of(counts: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

/// A send log in memory, for tests and local runs.
#[derive(Debug, Default)]
pub struct MemoryLog {
    records: Mutex<Vec<AcceptedSend>>,
}

impl MemoryLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record, in the order they were recorded.
    pub fn records(&self) -> Vec<AcceptedSend> {
        self.lock().clone()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// How many times each idempotency key was accepted.
    pub fn count_by_key(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for rec in self.lock().iter() {
            *counts.entry(rec.idempotency_key.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// The keys accepted more than once, with their counts.
    pub fn duplicates(&self) -> Vec<(String, u64)> {
        duplicates_of(&self.count_by_key())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AcceptedSend>> {
        // A panic while holding the lock cannot leave a Vec half-pushed.
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SendLog for MemoryLog {
    fn record(&self, rec: AcceptedSend) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.lock().push(rec);
        Box::pin(std::future::ready(Ok(())))
    }

    fn find<'a>(
        &'a self,
        channel: Channel,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<AcceptedSend>, ProviderError>> {
        let found = self
            .lock()
            .iter()
            .find(|r| r.channel == channel && r.idempotency_key == idempotency_key)
            .cloned();
        Box::pin(std::future::ready(Ok(found)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, id: &str) -> AcceptedSend {
        AcceptedSend {
            channel: Channel::Email,
            idempotency_key: key.into(),
            provider_message_id: id.into(),
            accepted_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn memory_log_counts_duplicates() {
        let log = MemoryLog::new();
        assert!(log.is_empty());
        for (k, id) in [("b", "1"), ("a", "2"), ("b", "3"), ("c", "4"), ("b", "5"), ("a", "6")] {
            log.record(rec(k, id)).await.unwrap();
        }
        assert_eq!(log.len(), 6);
        let counts = log.count_by_key();
        assert_eq!(counts.get("a"), Some(&2));
        assert_eq!(counts.get("b"), Some(&3));
        assert_eq!(counts.get("c"), Some(&1));
        assert_eq!(log.duplicates(), vec![("a".to_string(), 2), ("b".to_string(), 3)]);
        assert_eq!(Channel::Sms.to_string(), "sms");
        assert_eq!(
            log.find(Channel::Email, "c")
                .await
                .unwrap()
                .map(|r| r.provider_message_id),
            Some("4".into())
        );
        assert_eq!(log.find(Channel::Sms, "c").await.unwrap(), None);
    }
}
