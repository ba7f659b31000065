use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::{
    Accepted, AcceptedSend, BoxFuture, Channel, EmailProvider, EvidenceRates, EvidenceSink, Lookup, OutgoingEmail,
    OutgoingSms, ProviderError, SendLog, SmsProvider,
};

/// Error code of an injected failure (not accepted, retryable).
pub const MOCK_TRANSIENT: &str = "MockTransient";
/// Error code of an injected lost answer (accepted, outcome unknown to the caller).
pub const MOCK_TIMEOUT: &str = "MockTimeout";
/// The longest a hanging attempt waits ([`MockConfig::hang`]): Lambda's longest timeout, so a
/// hang outlasts any invocation and still ends.
pub const MAX_HANG: Duration = Duration::from_secs(15 * 60);

/// How the mock provider behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    /// How long each send takes. Concurrent sends wait concurrently.
    pub latency: Duration,
    /// Share of attempts that fail with [`ErrorKind::Retryable`](crate::ErrorKind)
    /// and are not accepted.
    pub failure_rate: f64,
    /// Share of attempts that are accepted (and recorded) but answer
    /// [`ErrorKind::Unknown`](crate::ErrorKind): the provider accepted the
    /// message and the answer was lost.
    pub timeout_rate: f64,
    /// Decides, with the idempotency key and attempt number, which attempts fail.
    pub seed: u64,
    /// Share of attempts whose answer hangs: they wait [`hang`](Self::hang) instead of
    /// [`latency`](Self::latency) before answering. Drawn apart from the failures, from the
    /// same seed, key and attempt: a hanging attempt fails, loses its answer or is accepted
    /// as it would without the hang, and an accepted one is recorded before it hangs, so a
    /// caller that gives up on it cannot tell whether the message went out (the provider
    /// accepted it; [`EmailProvider::find_email`] finds it).
    pub hang_rate: f64,
    /// How long a hanging attempt waits, at most [`MAX_HANG`].
    pub hang: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            latency: Duration::from_secs(1),
            failure_rate: 0.01,
            timeout_rate: 0.0,
            seed: 0,
            hang_rate: 0.0,
            hang: MAX_HANG,
        }
    }
}

impl MockConfig {
    /// Reads `MOCK_LATENCY_MS`, `MOCK_FAILURE_RATE`, `MOCK_TIMEOUT_RATE`, `MOCK_SEED`,
    /// `MOCK_HANG_RATE` and `MOCK_HANG_MS` through `lookup`; unset or empty values keep the
    /// default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<MockConfig, String> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut config = MockConfig::default();
        if let Some(v) = get("MOCK_LATENCY_MS") {
            let ms = v
                .parse::<u64>()
                .map_err(|_| format!("MOCK_LATENCY_MS must be a whole number of milliseconds, got {v:?}"))?;
            config.latency = Duration::from_millis(ms);
        }
        if let Some(v) = get("MOCK_FAILURE_RATE") {
            config.failure_rate = parse_rate("MOCK_FAILURE_RATE", &v)?;
        }
        if let Some(v) = get("MOCK_TIMEOUT_RATE") {
            config.timeout_rate = parse_rate("MOCK_TIMEOUT_RATE", &v)?;
        }
        if let Some(v) = get("MOCK_HANG_RATE") {
            config.hang_rate = parse_rate("MOCK_HANG_RATE", &v)?;
        }
        if let Some(v) = get("MOCK_HANG_MS") {
            let ms = v
                .parse::<u64>()
                .map_err(|_| format!("MOCK_HANG_MS must be a whole number of milliseconds, got {v:?}"))?;
            config.hang = Duration::from_millis(ms);
        }
        if let Some(v) = get("MOCK_SEED") {
            config.seed = v
                .parse::<u64>()
                .map_err(|_| format!("MOCK_SEED must be an unsigned 64-bit integer, got {v:?}"))?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Every rate within 0..=1, the failure and timeout rates together at most 1, a hang
    /// of at most [`MAX_HANG`].
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("failure_rate", self.failure_rate),
            ("timeout_rate", self.timeout_rate),
            ("hang_rate", self.hang_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("mock {name} must be between 0 and 1, got {rate}"));
            }
        }
        if self.failure_rate + self.timeout_rate > 1.0 {
            return Err(format!(
                "MOCK_FAILURE_RATE + MOCK_TIMEOUT_RATE must be at most 1, got {} + {}",
                self.failure_rate, self.timeout_rate
            ));
        }
        if self.hang > MAX_HANG {
            return Err(format!(
                "MOCK_HANG_MS must be at most {} ms, got {} ms",
                MAX_HANG.as_millis(),
                self.hang.as_millis()
            ));
        }
        Ok(())
    }
}

fn parse_rate(name: &str, v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{name} must be a number between 0 and 1, got {v:?}")),
    }
}

/// What happens to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accept,
    Fail,
    AcceptAndLoseAnswer,
}

/// A provider for email and SMS that delivers nothing. Deployed by default;
/// see the crate documentation.
///
/// Whether an attempt fails is a function of the seed, the channel, the key
/// and the attempt number, so the same seed and the same sends give the same
/// failures whatever the order, the concurrency or the process. The attempt
/// number is the message's own ([`OutgoingEmail::attempt`],
/// [`OutgoingSms::attempt`], counted by the caller from the delivery record),
/// so two Lambda instances making the same attempt decide alike; only when it
/// is 0 does the mock fall back to its own count per channel and key in this
/// process (1, 2, ...). The provider message id is derived from the same
/// inputs, and so is whether the attempt hangs ([`MockConfig::hang_rate`]). Accepted attempts (including those whose answer is "lost") are
/// recorded in the [`SendLog`]; failed ones are not. [`EmailProvider::find_email`]
/// and [`SmsProvider::find_sms`] answer from that log.
pub struct MockProvider {
    config: MockConfig,
    log: Arc<dyn SendLog>,
    attempts: Mutex<HashMap<(Channel, String), u64>>,
    /// Where the simulated delivery evidence goes, and at what rates
    /// ([`MockProvider::with_evidence`]); none by default.
    evidence: Option<(Arc<dyn EvidenceSink>, EvidenceRates)>,
    /// The mock's own sending quota, enforced before anything else
    /// ([`MockProvider::with_quota`], `mock_quota.rs`); none by default.
    quota: Option<crate::mock_quota::QuotaGate>,
}

impl std::fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MockProvider {
    pub fn new(config: MockConfig, log: Arc<dyn SendLog>) -> Self {
        MockProvider {
            config,
            log,
            attempts: Mutex::new(HashMap::new()),
            evidence: None,
            quota: None,
        }
    }

    // --- The mock's sending quota (see `mock_quota.rs`) ---

    /// Enforces `gate`'s quota: an email send over the rate or the 24-hour
    /// quota is refused as throttled and not recorded. An unlimited quota
    /// changes nothing.
    pub fn with_quota(mut self, gate: crate::mock_quota::QuotaGate) -> Self {
        self.quota = (!gate.quota.is_unlimited()).then_some(gate);
        self
    }

    // --- end of the quota section ---

    /// Emits the delivery evidence the real services would publish for every
    /// accepted message (see [`crate::simulated_events`]) to `sink`, at
    /// `rates`, decided by the configured seed.
    pub fn with_evidence(mut self, sink: Arc<dyn EvidenceSink>, rates: EvidenceRates) -> Self {
        self.evidence = Some((sink, rates));
        self
    }

    /// Hands the evidence of an accepted message to the sink. A sink that
    /// fails loses that message's evidence (as a lost provider event would),
    /// never the send: the message was accepted.
    async fn emit_evidence(&self, channel: Channel, provider_message_id: &str, tags: &[(String, String)]) {
        let Some((sink, rates)) = &self.evidence else {
            return;
        };
        let events: Vec<String> =
            crate::simulated_events(self.config.seed, rates, channel, provider_message_id, tags, Utc::now())
                .iter()
                .map(|e| e.to_string())
                .collect();
        if let Err(e) = sink.emit(&events).await {
            tracing::warn!(%channel, provider_message_id, code = %e.code, "mock provider: evidence not emitted");
        }
    }

    pub fn config(&self) -> &MockConfig {
        &self.config
    }

    /// How many attempts this provider (this process) made for `key` on
    /// `channel`, whatever attempt numbers the messages carried.
    pub fn attempts(&self, channel: Channel, key: &str) -> u64 {
        self.lock_attempts()
            .get(&(channel, key.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn lock_attempts(&self) -> std::sync::MutexGuard<'_, HashMap<(Channel, String), u64>> {
        // A panic while holding the lock cannot leave a counter half-written.
        self.attempts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn next_attempt(&self, channel: Channel, key: &str) -> u64 {
        let mut attempts = self.lock_attempts();
        let n = attempts.entry((channel, key.to_owned())).or_insert(0);
        *n += 1;
        *n
    }

    fn outcome(&self, draw: f64) -> Outcome {
        if draw < self.config.failure_rate {
            Outcome::Fail
        } else if draw < self.config.failure_rate + self.config.timeout_rate {
            Outcome::AcceptAndLoseAnswer
        } else {
            Outcome::Accept
        }
    }

    /// `attempt` is the message's: the caller's count when it has one (> 0), so
    /// that decisions do not depend on which process (Lambda instance) makes
    /// the attempt; otherwise this provider's count.
    async fn send(
        &self,
        channel: Channel,
        key: &str,
        attempt: u32,
        tags: &[(String, String)],
    ) -> Result<Accepted, ProviderError> {
        // The quota first, as SES does: a throttled send is neither an attempt nor recorded.
        // The moment the request arrived is when an accepted send counts (SES counts its rate
        // by arrival): its accepted_at, whatever latency follows.
        let arrived = Utc::now();
        if let Some(gate) = &self.quota {
            gate.admit(channel, arrived).await?;
        }
        let counted = self.next_attempt(channel, key);
        let attempt = if attempt > 0 { u64::from(attempt) } else { counted };
        let digest = digest(self.config.seed, channel, key, attempt);
        let outcome = self.outcome(draw(&digest));
        let hangs = self.config.hang_rate > 0.0 && hang_draw(&digest) < self.config.hang_rate;
        if hangs {
            tracing::debug!(%channel, idempotency_key = key, attempt, hang_ms = self.config.hang.as_millis() as u64,
                "mock provider: injected hang");
            if outcome != Outcome::Fail {
                // Accepted, then the answer hangs: whoever gives up on it cannot know.
                self.accept(channel, key, &digest, arrived).await?;
            }
            tokio::time::sleep(self.config.hang).await;
        } else if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        match outcome {
            Outcome::Fail => {
                tracing::debug!(%channel, idempotency_key = key, attempt, "mock provider: injected failure");
                Err(ProviderError::retryable(
                    MOCK_TRANSIENT,
                    format!("mock {channel} provider failed attempt {attempt} (injected)"),
                ))
            }
            outcome => {
                let provider_message_id = if hangs {
                    message_id(&digest)
                } else {
                    self.accept(channel, key, &digest, arrived).await?
                };
                self.emit_evidence(channel, &provider_message_id, tags).await;
                if outcome == Outcome::AcceptAndLoseAnswer {
                    tracing::debug!(%channel, idempotency_key = key, attempt, "mock provider: accepted, answer lost");
                    return Err(ProviderError::unknown(
                        MOCK_TIMEOUT,
                        format!("mock {channel} provider timed out on attempt {attempt} after accepting (injected)"),
                    ));
                }
                Ok(Accepted { provider_message_id })
            }
        }
    }
}

impl MockProvider {
    /// Records an accepted attempt in the send log, accepted when it `arrived`
    /// (before the latency); its provider message id.
    async fn accept(
        &self,
        channel: Channel,
        key: &str,
        digest: &[u8; 32],
        arrived: chrono::DateTime<Utc>,
    ) -> Result<String, ProviderError> {
        let provider_message_id = message_id(digest);
        self.log
            .record(AcceptedSend {
                channel,
                idempotency_key: key.to_owned(),
                provider_message_id: provider_message_id.clone(),
                accepted_at: arrived,
            })
            .await?;
        Ok(provider_message_id)
    }

    /// What the mock's send log knows about `key` on `channel`: the first
    /// accepted send (also one whose answer was lost), or not found.
    async fn find(&self, channel: Channel, key: &str) -> Result<Lookup, ProviderError> {
        Ok(match self.log.find(channel, key).await? {
            Some(rec) => Lookup::Accepted(Accepted {
                provider_message_id: rec.provider_message_id,
            }),
            None => Lookup::NotFound,
        })
    }
}

/// SHA-256 of the seed, channel, key and attempt: stable across processes and
/// releases, unlike std's hasher.
fn digest(seed: u64, channel: Channel, key: &str, attempt: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(channel.as_str().as_bytes());
    h.update((key.len() as u64).to_le_bytes());
    h.update(key.as_bytes());
    h.update(attempt.to_le_bytes());
    h.finalize().into()
}

/// A uniform number in [0, 1) from the digest's first 53 bits: whether the attempt fails.
fn draw(digest: &[u8; 32]) -> f64 {
    uniform(&digest[..8])
}

/// A second uniform number, from the digest's last eight bytes (the failure draw and the
/// message id use the others): whether the attempt hangs.
fn hang_draw(digest: &[u8; 32]) -> f64 {
    uniform(&digest[24..])
}

fn uniform(bytes: &[u8]) -> f64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    (u64::from_le_bytes(word) >> 11) as f64 / (1u64 << 53) as f64
}

/// The provider message id of an accepted attempt.
fn message_id(digest: &[u8; 32]) -> String {
    format!("mock-{}", hex::encode(&digest[8..24]))
}

impl EmailProvider for MockProvider {
    fn send_email<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(self.send(Channel::Email, &email.idempotency_key, email.attempt, &email.tags))
    }

    fn find_email<'a>(&'a self, idempotency_key: &'a str) -> BoxFuture<'a, Result<Lookup, ProviderError>> {
        Box::pin(self.find(Channel::Email, idempotency_key))
    }

    fn answers_lookups(&self) -> bool {
        true
    }
}

impl SmsProvider for MockProvider {
    fn send_sms<'a>(&'a self, sms: &'a OutgoingSms) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(self.send(Channel::Sms, &sms.idempotency_key, sms.attempt, &sms.tags))
    }

    fn find_sms<'a>(&'a self, idempotency_key: &'a str) -> BoxFuture<'a, Result<Lookup, ProviderError>> {
        Box::pin(self.find(Channel::Sms, idempotency_key))
    }

    fn answers_lookups(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, MemoryLog};
    use std::collections::BTreeMap;

    fn config(failure_rate: f64, timeout_rate: f64, seed: u64) -> MockConfig {
        MockConfig {
            latency: Duration::ZERO,
            failure_rate,
            timeout_rate,
            seed,
            ..MockConfig::default()
        }
    }

    fn mock(config: MockConfig) -> (MockProvider, Arc<MemoryLog>) {
        let log = Arc::new(MemoryLog::new());
        (MockProvider::new(config, log.clone()), log)
    }

    fn email(key: &str) -> OutgoingEmail {
        OutgoingEmail {
            idempotency_key: key.into(),
            attempt: 0,
            to: "kim@example.com".into(),
            subject: "bill".into(),
            html: "<p>bill</p>".into(),
            tags: vec![],
        }
    }

    fn sms(key: &str) -> OutgoingSms {
        OutgoingSms {
            idempotency_key: key.into(),
            attempt: 0,
            to: "010-1234-5678".into(),
            text: "bill".into(),
            tags: vec![],
        }
    }

    async fn failure_pattern(seed: u64) -> Vec<bool> {
        let (p, _) = mock(config(0.1, 0.0, seed));
        let mut pattern = Vec::new();
        for i in 0..1000 {
            pattern.push(p.send_email(&email(&format!("key-{i}"))).await.is_err());
        }
        pattern
    }

    #[tokio::test]
    async fn same_seed_same_failures_different_seed_different_failures() {
        let a = failure_pattern(42).await;
        assert_eq!(a, failure_pattern(42).await);
        assert_ne!(a, failure_pattern(43).await);
        assert!(a.iter().any(|f| *f) && a.iter().any(|f| !*f));
    }

    #[tokio::test]
    async fn failures_depend_on_the_attempt_not_the_order() {
        let (forward, _) = mock(config(0.3, 0.0, 7));
        let (backward, _) = mock(config(0.3, 0.0, 7));
        let mut f = BTreeMap::new();
        let mut b = BTreeMap::new();
        for attempt in 0..3 {
            for i in 0..200 {
                let key = format!("k{i}");
                f.insert((key.clone(), attempt), forward.send_email(&email(&key)).await.is_ok());
            }
            for i in (0..200).rev() {
                let key = format!("k{i}");
                b.insert((key.clone(), attempt), backward.send_email(&email(&key)).await.is_ok());
            }
        }
        assert_eq!(f, b);
        assert_eq!(forward.attempts(Channel::Email, "k5"), 3);
        assert_eq!(forward.attempts(Channel::Sms, "k5"), 0);
    }

    #[tokio::test]
    async fn observed_failure_rate_matches_configuration() {
        let (p, log) = mock(config(0.1, 0.0, 2026));
        let mut failed = 0;
        for i in 0..5000 {
            match p.send_sms(&sms(&format!("sms-{i}"))).await {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.kind, ErrorKind::Retryable);
                    assert_eq!(e.code, MOCK_TRANSIENT);
                    assert!(e.is_retryable());
                    failed += 1;
                }
            }
        }
        let rate = failed as f64 / 5000.0;
        assert!((0.08..=0.12).contains(&rate), "observed failure rate {rate}");
        assert_eq!(log.len(), 5000 - failed, "failed sends are not logged");
        assert!(log.duplicates().is_empty());
        assert!(log.records().iter().all(|r| r.channel == Channel::Sms));
    }

    #[tokio::test]
    async fn failed_sends_are_not_logged_and_retries_are_new_attempts() {
        let (p, log) = mock(config(1.0, 0.0, 1));
        for _ in 0..5 {
            let e = p.send_email(&email("same")).await.unwrap_err();
            assert_eq!(e.code, MOCK_TRANSIENT);
            assert!(!e.to_string().contains("kim@example.com"), "{e}");
        }
        assert!(log.is_empty());
        assert_eq!(p.attempts(Channel::Email, "same"), 5);

        let (p, log) = mock(config(0.5, 0.0, 1));
        let mut tries = 0;
        while p.send_email(&email("eventually")).await.is_err() {
            tries += 1;
            assert!(tries < 64, "a retry is a new draw");
        }
        assert_eq!(log.count_by_key().get("eventually"), Some(&1));
    }

    #[tokio::test]
    async fn lost_answers_are_logged_and_unknown() {
        let (p, log) = mock(config(0.0, 1.0, 9));
        for i in 0..20 {
            let e = p.send_email(&email(&format!("t{i}"))).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unknown);
            assert_eq!(e.code, MOCK_TIMEOUT);
            assert!(!e.is_retryable());
        }
        let e = p.send_sms(&sms("t0")).await.unwrap_err();
        assert!(!e.to_string().contains("010-1234-5678"), "{e}");
        assert!(!format!("{e:?}").contains("010-1234-5678"), "{e:?}");
        assert_eq!(log.len(), 21, "every attempt was accepted");
        // Retrying after a lost answer delivers again: the duplicate is visible in the log.
        p.send_email(&email("t0")).await.unwrap_err();
        assert_eq!(log.duplicates(), vec![("t0".to_string(), 3)]);
        let ids: std::collections::BTreeSet<_> = log.records().into_iter().map(|r| r.provider_message_id).collect();
        assert_eq!(ids.len(), 22, "each accept has its own message id");
    }

    fn attempt(mut email: OutgoingEmail, n: u32) -> OutgoingEmail {
        email.attempt = n;
        email
    }

    #[tokio::test]
    async fn the_messages_attempt_decides_not_the_process() {
        // Two providers stand for two Lambda instances with the same seed: the first
        // made attempts 1 to 4 of every key, the second (fresh) makes only attempt 4.
        let (first, _) = mock(config(0.4, 0.2, 17));
        let (second, _) = mock(config(0.4, 0.2, 17));
        let outcome = |r: Result<Accepted, ProviderError>| r.map(|a| a.provider_message_id).map_err(|e| e.code);
        let mut differs_by_attempt = false;
        for i in 0..100 {
            let key = format!("d{i}");
            let mut by_attempt = Vec::new();
            for n in 1..=4 {
                by_attempt.push(outcome(first.send_email(&attempt(email(&key), n)).await));
            }
            let fourth = outcome(second.send_email(&attempt(email(&key), 4)).await);
            assert_eq!(
                fourth, by_attempt[3],
                "{key}: attempt 4 decides alike in both processes"
            );
            differs_by_attempt |= by_attempt.iter().any(|o| o.is_ok() != by_attempt[0].is_ok());
            assert_eq!(second.attempts(Channel::Email, &key), 1);
        }
        assert!(differs_by_attempt, "the attempt number takes part in the draw");

        // Attempt 0: the provider counts, 1, 2, ... per channel and key.
        let (counting, _) = mock(config(0.5, 0.0, 23));
        let (numbered, _) = mock(config(0.5, 0.0, 23));
        for i in 0..50 {
            let key = format!("z{i}");
            for n in 1..=3 {
                assert_eq!(
                    outcome(counting.send_email(&email(&key)).await),
                    outcome(numbered.send_email(&attempt(email(&key), n)).await),
                    "{key}, attempt {n}"
                );
            }
        }
        let sms_attempt = |n| OutgoingSms {
            attempt: n,
            ..sms("z0")
        };
        assert_eq!(
            outcome(counting.send_sms(&sms_attempt(0)).await),
            outcome(numbered.send_sms(&sms_attempt(1)).await),
            "SMS attempts are counted apart from email ones"
        );
    }

    #[tokio::test]
    async fn find_answers_from_the_log() {
        let (p, _) = mock(config(0.0, 0.0, 5));
        let accepted = p.send_email(&attempt(email("found"), 1)).await.unwrap();
        assert_eq!(p.find_email("found").await.unwrap(), Lookup::Accepted(accepted));
        assert_eq!(p.find_sms("found").await.unwrap(), Lookup::NotFound, "another channel");
        assert_eq!(p.find_email("never-sent").await.unwrap(), Lookup::NotFound);
        let accepted = p.send_sms(&sms("text")).await.unwrap();
        assert_eq!(p.find_sms("text").await.unwrap(), Lookup::Accepted(accepted));

        // A failed attempt was not accepted.
        let (p, _) = mock(config(1.0, 0.0, 5));
        p.send_email(&attempt(email("failed"), 1)).await.unwrap_err();
        assert_eq!(p.find_email("failed").await.unwrap(), Lookup::NotFound);

        // A lost answer was accepted: the lookup is how a sender learns it.
        let (p, log) = mock(config(0.0, 1.0, 5));
        let e = p.send_email(&attempt(email("lost"), 1)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unknown);
        let Lookup::Accepted(found) = p.find_email("lost").await.unwrap() else {
            panic!("a lost answer is found");
        };
        assert_eq!(found.provider_message_id, log.records()[0].provider_message_id);
    }

    #[tokio::test]
    async fn providers_without_a_lookup_say_so() {
        struct Plain;
        impl EmailProvider for Plain {
            fn send_email<'a>(&'a self, _: &'a OutgoingEmail) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
                Box::pin(std::future::ready(Err(ProviderError::permanent("X", "y"))))
            }
        }
        impl SmsProvider for Plain {
            fn send_sms<'a>(&'a self, _: &'a OutgoingSms) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
                Box::pin(std::future::ready(Err(ProviderError::permanent("X", "y"))))
            }
        }
        assert_eq!(Plain.find_email("k").await.unwrap(), Lookup::Unsupported);
        assert_eq!(Plain.find_sms("k").await.unwrap(), Lookup::Unsupported);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_sends_wait_one_latency() {
        let latency = Duration::from_millis(200);
        let log = Arc::new(MemoryLog::new());
        let p: Arc<dyn EmailProvider> = Arc::new(MockProvider::new(
            MockConfig {
                latency,
                failure_rate: 0.0,
                timeout_rate: 0.0,
                seed: 3,
                ..MockConfig::default()
            },
            log.clone(),
        ));
        let emails: Vec<_> = (0..10).map(|i| email(&format!("c{i}"))).collect();
        let start = tokio::time::Instant::now();
        let results = futures::future::join_all(emails.iter().map(|e| p.send_email(e))).await;
        assert_eq!(
            start.elapsed(),
            latency,
            "virtual time: ten concurrent sends take one latency"
        );
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(log.len(), 10);

        let start = tokio::time::Instant::now();
        p.send_email(&emails[0]).await.unwrap();
        p.send_email(&emails[1]).await.unwrap();
        assert_eq!(start.elapsed(), 2 * latency, "sequential sends add up");
    }

    fn hanging(failure_rate: f64, hang_rate: f64, seed: u64) -> MockConfig {
        MockConfig {
            hang_rate,
            hang: Duration::from_secs(600),
            ..config(failure_rate, 0.0, seed)
        }
    }

    /// Which of 1000 keys hang past a one-second wait (virtual time), and each key's outcome
    /// once the answer comes.
    async fn hang_pattern(config: MockConfig) -> (Vec<bool>, Vec<bool>) {
        let (p, _) = mock(config);
        let (mut hung, mut failed) = (Vec::new(), Vec::new());
        for i in 0..1000 {
            let key = format!("key-{i}");
            let cut_off = tokio::time::timeout(Duration::from_secs(1), p.send_email(&attempt(email(&key), 1))).await;
            hung.push(cut_off.is_err());
            // The same attempt again, waited for: the answer the hang delayed.
            failed.push(p.send_email(&attempt(email(&key), 1)).await.is_err());
        }
        (hung, failed)
    }

    #[tokio::test(start_paused = true)]
    async fn hangs_are_seeded_and_drawn_apart_from_failures() {
        let (hung, failed) = hang_pattern(hanging(0.1, 0.2, 42)).await;
        let (again, failed_again) = hang_pattern(hanging(0.1, 0.2, 42)).await;
        assert_eq!((&hung, &failed), (&again, &failed_again), "same seed, same hangs");
        let (other, _) = hang_pattern(hanging(0.1, 0.2, 43)).await;
        assert_ne!(hung, other, "another seed, other hangs");
        let rate = hung.iter().filter(|h| **h).count() as f64 / 1000.0;
        assert!((0.15..=0.25).contains(&rate), "observed hang rate {rate}");

        // The failures are those of the same seed without hangs: a hang only delays the answer.
        let (never, without) = hang_pattern(hanging(0.1, 0.0, 42)).await;
        assert!(never.iter().all(|h| !*h));
        assert_eq!(failed, without);
        assert!(
            hung.iter().zip(&failed).any(|(h, f)| *h && *f),
            "some hangs end in a failure"
        );
        assert!(
            hung.iter().zip(&failed).any(|(h, f)| *h && !*f),
            "some hangs end accepted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hang_waits_its_time_then_answers() {
        let (p, log) = mock(hanging(0.0, 1.0, 8));
        let start = tokio::time::Instant::now();
        let accepted = p.send_email(&attempt(email("slow"), 1)).await.unwrap();
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(600),
            "virtual time: the hang, not the latency"
        );
        assert_eq!(log.len(), 1);
        assert_eq!(p.find_email("slow").await.unwrap(), Lookup::Accepted(accepted));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_send_cut_off_was_accepted_unless_it_failed() {
        // Accepted: recorded before the answer hangs, so the caller that gave up can find it.
        let (p, log) = mock(hanging(0.0, 1.0, 5));
        let cut_off = tokio::time::timeout(Duration::from_secs(30), p.send_sms(&sms("hung"))).await;
        assert!(cut_off.is_err(), "the call hangs past the caller's timeout");
        assert_eq!(log.len(), 1);
        assert!(matches!(p.find_sms("hung").await.unwrap(), Lookup::Accepted(_)));

        // Failed: nothing was accepted.
        let (p, log) = mock(hanging(1.0, 1.0, 5));
        let cut_off = tokio::time::timeout(Duration::from_secs(30), p.send_sms(&sms("hung"))).await;
        assert!(cut_off.is_err());
        assert!(log.is_empty());
        assert_eq!(p.find_sms("hung").await.unwrap(), Lookup::NotFound);
    }

    #[test]
    fn config_from_lookup() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(MockConfig::from_lookup(vars(&[])).unwrap(), MockConfig::default());
        assert_eq!(MockConfig::default().latency, Duration::from_secs(1));
        assert_eq!(MockConfig::default().failure_rate, 0.01);
        assert_eq!(MockConfig::default().hang_rate, 0.0, "nothing hangs by default");
        let c = MockConfig::from_lookup(vars(&[("MOCK_HANG_RATE", "0.25"), ("MOCK_HANG_MS", "90000")])).unwrap();
        assert_eq!((c.hang_rate, c.hang), (0.25, Duration::from_secs(90)));
        assert_eq!(
            (c.latency, c.failure_rate),
            (Duration::from_secs(1), 0.01),
            "the rest keeps its default"
        );
        let c = MockConfig::from_lookup(vars(&[
            ("MOCK_LATENCY_MS", "250"),
            ("MOCK_FAILURE_RATE", "0.2"),
            ("MOCK_TIMEOUT_RATE", " 0.05 "),
            ("MOCK_SEED", "12345"),
        ]))
        .unwrap();
        assert_eq!(
            c,
            MockConfig {
                latency: Duration::from_millis(250),
                failure_rate: 0.2,
                timeout_rate: 0.05,
                seed: 12345,
                ..MockConfig::default()
            }
        );
        assert_eq!(
            MockConfig::from_lookup(vars(&[("MOCK_SEED", "")])).unwrap(),
            MockConfig::default(),
            "empty means unset"
        );

        let err = |pairs| MockConfig::from_lookup(vars(pairs)).unwrap_err();
        let e = err(&[("MOCK_LATENCY_MS", "1s")]);
        assert!(e.contains("MOCK_LATENCY_MS") && e.contains("\"1s\""), "{e}");
        let e = err(&[("MOCK_LATENCY_MS", "-5")]);
        assert!(e.contains("MOCK_LATENCY_MS"), "{e}");
        let e = err(&[("MOCK_FAILURE_RATE", "1.5")]);
        assert!(e.contains("MOCK_FAILURE_RATE") && e.contains("between 0 and 1"), "{e}");
        let e = err(&[("MOCK_FAILURE_RATE", "NaN")]);
        assert!(e.contains("MOCK_FAILURE_RATE"), "{e}");
        let e = err(&[("MOCK_TIMEOUT_RATE", "ten percent")]);
        assert!(e.contains("MOCK_TIMEOUT_RATE"), "{e}");
        let e = err(&[("MOCK_SEED", "-1")]);
        assert!(e.contains("MOCK_SEED"), "{e}");
        let e = err(&[("MOCK_HANG_RATE", "2")]);
        assert!(e.contains("MOCK_HANG_RATE"), "{e}");
        let e = err(&[("MOCK_HANG_MS", "forever")]);
        assert!(e.contains("MOCK_HANG_MS"), "{e}");
        let e = err(&[("MOCK_HANG_MS", "900001")]);
        assert!(e.contains("MOCK_HANG_MS") && e.contains("at most"), "{e}");
        let e = err(&[("MOCK_FAILURE_RATE", "0.7"), ("MOCK_TIMEOUT_RATE", "0.5")]);
        assert!(e.contains("at most 1"), "{e}");
    }
}

#[cfg(test)]
mod evidence_tests {
    use super::*;
    use crate::{MemoryLog, MemorySink};

    #[tokio::test]
    async fn accepted_messages_get_their_evidence_and_failed_ones_none() {
        let sink = Arc::new(MemorySink::new());
        let config = MockConfig {
            latency: Duration::ZERO,
            failure_rate: 0.5,
            ..MockConfig::default()
        };
        let rates = EvidenceRates {
            bounce: 0.5,
            ..EvidenceRates::default()
        };
        let mock = MockProvider::new(config, Arc::new(MemoryLog::new())).with_evidence(sink.clone(), rates);
        let mut accepted = Vec::new();
        for i in 0..40 {
            let email = OutgoingEmail {
                idempotency_key: format!("2026-11#00001#C{i:07}#email"),
                attempt: 1,
                to: "kim@example.com".into(),
                subject: "s".into(),
                html: "h".into(),
                tags: vec![("customer".into(), format!("C{i:07}"))],
            };
            if let Ok(a) = mock.send_email(&email).await {
                accepted.push(a.provider_message_id);
            }
        }
        let events: Vec<serde_json::Value> = sink.events().iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        assert!(!accepted.is_empty() && accepted.len() < 40, "{}", accepted.len());
        // One event per accepted message (a delivery or a bounce, no complaints at these rates).
        assert_eq!(events.len(), accepted.len());
        for (e, id) in events.iter().zip(&accepted) {
            assert_eq!(e["detail"]["mail"]["messageId"].as_str(), Some(id.as_str()));
        }
        let bounced = events.iter().filter(|e| e["detail"]["eventType"] == "Bounce").count();
        assert!(bounced > 0 && bounced < events.len(), "{bounced} of {}", events.len());
        assert!(sink.events().iter().all(|e| !e.contains("kim@example.com")));
    }
}
