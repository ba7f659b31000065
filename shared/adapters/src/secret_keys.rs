//! Keys that live in a Secrets Manager secret, cached for the instance: the one mechanism
//! behind the contact-data keyring ([`crate::keyring::PiiKeys`]) and the invoice links' keys
//! ([`crate::links::LinkKeyring`]).
//!
//! * **Cold start**: [`SecretKeys::load`] fetches the secret named by a variable with
//!   `GetSecretValue` and parses it ([`FromSecret`]); a missing variable, a secret that cannot
//!   be read or a value that does not parse fails the cold start.
//! * **Refresh on schedule**: after [`REFRESH_AFTER`], the next use fetches again
//!   ([`SecretKeys::current`]); a failed fetch keeps the cached keys (a warning is logged) and
//!   the next attempt waits [`REFETCH_INTERVAL`].
//! * **Refetch on a miss**: when the cached keys cannot do what a caller needs (a value sealed
//!   under an unknown key id, a link no cached key verifies), [`SecretKeys::refetch_unless`]
//!   fetches again at most once per [`REFETCH_INTERVAL`], so that a flood of such values costs
//!   one call a minute; one fetch in flight at a time, and a caller that waited for another's
//!   fetch uses its result.
//!
//! Errors name the variable, the secret and what is wrong with the value (key ids, lengths),
//! never a key or the value.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_config::SdkConfig;
use tokio::time::Instant;

use crate::{ConfigError, StoreError, Vars};

/// How long fetched keys are used before they are fetched again.
pub const REFRESH_AFTER: Duration = Duration::from_secs(300);

/// The least time between two fetches after the first: of a refresh that failed, or on a
/// miss.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// Keys parsed from a secret's value.
pub trait FromSecret: Sized + Send + Sync + 'static {
    /// What the value is, for errors and logs ("the keyring", "the link keys").
    const WHAT: &'static str;

    /// Parses the secret's value; the error must not carry key material.
    fn from_secret(value: &str) -> Result<Self, String>;
}

/// Keys from a secret (or given in code), the copy in use and when it was fetched.
pub struct SecretKeys<K> {
    source: Source,
    current: RwLock<Arc<K>>,
    /// Serialises fetches (one in flight) and remembers when they happened.
    fetches: tokio::sync::Mutex<Fetches>,
}

enum Source {
    Secret {
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
    },
    /// Keys given in code (tests, local tools): never fetched again.
    Fixed,
}

struct Fetches {
    /// When the keys in use were fetched.
    fetched_at: Instant,
    /// The last fetch off schedule (a refresh that failed, or on a miss). `None` until the
    /// first.
    last_unscheduled: Option<Instant>,
    /// Successful fetches, the cold start's included.
    count: u64,
}

impl<K: std::fmt::Debug> std::fmt::Debug for SecretKeys<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("SecretKeys");
        if let Source::Secret { secret_id, .. } = &self.source {
            d.field("secret", secret_id);
        }
        d.field("keys", &*self.snapshot()).finish()
    }
}

impl<K: FromSecret> SecretKeys<K> {
    /// Fetches the keys from the secret named by the variable `var`.
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars, var: &'static str) -> Result<Self, ConfigError> {
        let secret_id = vars.required(var)?;
        let client = aws_sdk_secretsmanager::Client::new(sdk);
        let keys = fetch::<K>(&client, &secret_id)
            .await
            .map_err(|e| ConfigError::Invalid {
                name: var,
                reason: e.to_string(),
            })?;
        Ok(SecretKeys::new(Source::Secret { client, secret_id }, keys))
    }

    /// Keys that never change (tests and local tools that hold them).
    pub fn fixed(keys: K) -> Self {
        SecretKeys::new(Source::Fixed, keys)
    }

    fn new(source: Source, keys: K) -> Self {
        SecretKeys {
            source,
            current: RwLock::new(Arc::new(keys)),
            fetches: tokio::sync::Mutex::new(Fetches {
                fetched_at: Instant::now(),
                last_unscheduled: None,
                count: 1,
            }),
        }
    }

    /// The keys in use, fetched again first if older than [`REFRESH_AFTER`].
    pub async fn current(&self) -> Arc<K> {
        let Source::Secret { client, secret_id } = &self.source else {
            return self.snapshot();
        };
        let mut fetches = self.fetches.lock().await;
        let now = Instant::now();
        let due = now.duration_since(fetches.fetched_at) >= REFRESH_AFTER
            && fetches
                .last_unscheduled
                .is_none_or(|t| now.duration_since(t) >= REFETCH_INTERVAL);
        if due {
            match fetch::<K>(client, secret_id).await {
                Ok(keys) => self.replace(&mut fetches, keys, false),
                Err(e) => {
                    fetches.last_unscheduled = Some(now);
                    tracing::warn!(error = %e, what = K::WHAT, "not refreshed; the cached keys stay in use");
                }
            }
        }
        self.snapshot()
    }

    /// The keys in use when they do not `miss` what the caller needs; otherwise the secret's
    /// current value, fetched at most once per [`REFETCH_INTERVAL`] (within it, the keys in
    /// use). Keys fetched by another caller while this one waited are taken as they are. An
    /// error only when the fetch fails.
    pub async fn refetch_unless(&self, miss: impl Fn(&K) -> bool) -> Result<Arc<K>, StoreError> {
        let keys = self.current().await;
        let Source::Secret { client, secret_id } = &self.source else {
            return Ok(keys);
        };
        if !miss(&keys) {
            return Ok(keys);
        }
        let mut fetches = self.fetches.lock().await;
        // Another task may have fetched while this one waited.
        let cached = self.snapshot();
        if !Arc::ptr_eq(&cached, &keys) || !miss(&cached) {
            return Ok(cached);
        }
        let now = Instant::now();
        if fetches
            .last_unscheduled
            .is_some_and(|t| now.duration_since(t) < REFETCH_INTERVAL)
        {
            return Ok(cached);
        }
        fetches.last_unscheduled = Some(now);
        let fresh = fetch::<K>(client, secret_id).await?;
        self.replace(&mut fetches, fresh, true);
        tracing::info!(
            what = K::WHAT,
            "the cached keys missed what a caller needed: fetched again"
        );
        Ok(self.snapshot())
    }

    /// Successful fetches of the secret so far, the cold start's included (1 for fixed keys).
    pub async fn fetch_count(&self) -> u64 {
        self.fetches.lock().await.count
    }
}

impl<K> SecretKeys<K> {
    fn snapshot(&self) -> Arc<K> {
        match self.current.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, fetches: &mut Fetches, keys: K, unscheduled: bool) {
        let keys = Arc::new(keys);
        match self.current.write() {
            Ok(mut k) => *k = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
        if !unscheduled {
            fetches.last_unscheduled = None;
        }
        fetches.fetched_at = Instant::now();
        fetches.count += 1;
    }
}

/// The secret's current value, parsed. The error names the secret and what is wrong with the
/// value, never the value.
async fn fetch<K: FromSecret>(client: &aws_sdk_secretsmanager::Client, secret_id: &str) -> Result<K, StoreError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| StoreError::aws("GetSecretValue", secret_id, e))?;
    let decode = |message: String| StoreError::Decode {
        resource: format!("secret {secret_id}"),
        what: format!("{} (SecretString)", K::WHAT),
        message,
    };
    let value = out
        .secret_string()
        .ok_or_else(|| decode("the secret has no SecretString".to_owned()))?;
    K::from_secret(value).map_err(decode)
}
