//! The personal-data keyring, read from Secrets Manager and cached for the instance.
//!
//! A function that opens contact data names its secret in [`SECRET_VAR`] (`PII_KEYS_SECRET`:
//! a secret name or ARN, never a key). [`PiiKeys::load`] fetches it once at cold start with
//! `GetSecretValue` and parses it as a [`Keyring`] (`id:base64key[,id:base64key…]`: the
//! first key seals, every key opens what was sealed under its id). A key never sits in a
//! function's environment, where `lambda:GetFunctionConfiguration` would show it.
//!
//! **Refreshing.** The instance keeps the keyring it fetched and fetches it again
//! * after [`REFRESH_AFTER`], on the next use: so that a new active key is taken up without
//!   a redeploy. If that fetch fails the cached keyring stays in use (a warning is logged)
//!   and the next attempt waits [`REFETCH_INTERVAL`];
//! * when a sealed value names a key id the cached keyring lacks ([`PiiKeys::covering`]): at
//!   most once per [`REFETCH_INTERVAL`], so that a flood of values under an unknown id costs
//!   one call a minute, not one call a value. When the fresh keyring still lacks the id, or
//!   the interval has not passed, the caller gets the keyring it has and opening the value
//!   fails with `PiiError::UnknownKey`.
//!
//! **Rotating** (docs/personal-data.md), with no redeploy and every sealed value readable:
//! 1. *Add the new key as readable*: put a new version of the secret with the new key
//!    **after** the active one (`k1:…,k2:…`). Nothing is sealed under `k2` yet; every
//!    instance can open it within [`REFRESH_AFTER`] (at once, on a miss).
//! 2. After at least [`REFRESH_AFTER`], *make it active*: put `k2:…,k1:…`. Values are sealed
//!    under `k2` from then on (by whatever seals: the loader); `k1` values still open.
//! 3. *Never remove a key while data sealed under it exists*: a key leaves the secret only
//!    once every value sealed under its id has been sealed again under another.
//!
//! Errors name the variable, the secret and the key ids, never a key or the secret's value.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_config::SdkConfig;
use domain::customer::Contact;
use domain::pii::Keyring;
use tokio::time::Instant;

use crate::{ConfigError, StoreError, Vars};

/// The variable naming the keyring's secret (name or ARN).
pub const SECRET_VAR: &str = "PII_KEYS_SECRET";

/// How long a fetched keyring is used before it is fetched again.
pub const REFRESH_AFTER: Duration = Duration::from_secs(300);

/// The least time between two fetches after the first: of a refresh that failed, or on a
/// value under an unknown key id.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// The keyring of one instance: the secret it comes from and the copy in use.
pub struct PiiKeys {
    source: Source,
    current: RwLock<Arc<Keyring>>,
    /// Serialises fetches (one in flight) and remembers when they happened.
    fetches: tokio::sync::Mutex<Fetches>,
}

enum Source {
    Secret {
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
    },
    /// A keyring given in code (tests, local tools): never fetched again.
    Fixed,
}

struct Fetches {
    /// When the keyring in use was fetched.
    fetched_at: Instant,
    /// The last fetch that was not a refresh on schedule's success: a refresh that failed or
    /// a fetch on an unknown key id. `None` until the first.
    last_unscheduled: Option<Instant>,
    /// Successful fetches, the cold start's included.
    count: u64,
}

impl std::fmt::Debug for PiiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("PiiKeys");
        if let Source::Secret { secret_id, .. } = &self.source {
            d.field("secret", secret_id);
        }
        d.field("keys", &*self.snapshot()).finish()
    }
}

impl PiiKeys {
    /// Fetches the keyring from the secret named by [`SECRET_VAR`]; a missing variable, a
    /// secret that cannot be read or a value that is not a keyring fails the cold start.
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let secret_id = vars.required(SECRET_VAR)?;
        let client = aws_sdk_secretsmanager::Client::new(sdk);
        let keys = fetch(&client, &secret_id).await.map_err(|e| ConfigError::Invalid {
            name: SECRET_VAR,
            reason: e.to_string(),
        })?;
        Ok(PiiKeys::new(Source::Secret { client, secret_id }, keys))
    }

    /// A keyring that never changes (tests and local tools that hold the keys themselves).
    pub fn fixed(keys: Keyring) -> Self {
        PiiKeys::new(Source::Fixed, keys)
    }

    fn new(source: Source, keys: Keyring) -> Self {
        PiiKeys {
            source,
            current: RwLock::new(Arc::new(keys)),
            fetches: tokio::sync::Mutex::new(Fetches {
                fetched_at: Instant::now(),
                last_unscheduled: None,
                count: 1,
            }),
        }
    }

    /// The keyring in use, fetched again first if it is older than [`REFRESH_AFTER`] (a
    /// failed fetch keeps the one in use).
    pub async fn current(&self) -> Arc<Keyring> {
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
            match fetch(client, secret_id).await {
                Ok(keys) => self.replace(&mut fetches, keys, false),
                Err(e) => {
                    fetches.last_unscheduled = Some(now);
                    tracing::warn!(error = %e, "the keyring was not refreshed; the cached one stays in use");
                }
            }
        }
        self.snapshot()
    }

    /// A keyring that holds every key id of `ids` if the secret does: the one in use (see
    /// [`current`](Self::current)) when it holds them all, else the secret's current value,
    /// fetched at most once per [`REFETCH_INTERVAL`]. An error only when that fetch fails.
    pub async fn covering<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Result<Arc<Keyring>, StoreError> {
        let ids: Vec<&str> = ids.into_iter().collect();
        let keys = self.current().await;
        let Source::Secret { client, secret_id } = &self.source else {
            return Ok(keys);
        };
        if ids.iter().all(|id| keys.contains(id)) {
            return Ok(keys);
        }
        let mut fetches = self.fetches.lock().await;
        // Another task may have fetched while this one waited.
        let keys = self.snapshot();
        if ids.iter().all(|id| keys.contains(id)) {
            return Ok(keys);
        }
        let now = Instant::now();
        if fetches
            .last_unscheduled
            .is_some_and(|t| now.duration_since(t) < REFETCH_INTERVAL)
        {
            return Ok(keys);
        }
        fetches.last_unscheduled = Some(now);
        let fresh = fetch(client, secret_id).await?;
        tracing::info!(
            active = fresh.active_key_id(),
            "a sealed value named a key id the cached keyring lacked: the keyring was fetched again"
        );
        self.replace(&mut fetches, fresh, true);
        Ok(self.snapshot())
    }

    /// [`covering`](Self::covering) the key ids of a customer's sealed contact data.
    pub async fn for_contact(&self, contact: &Contact) -> Result<Arc<Keyring>, StoreError> {
        self.covering(contact_key_ids(contact)).await
    }

    /// [`covering`](Self::covering) the key ids of many customers' contact data.
    pub async fn for_contacts<'a>(
        &self,
        contacts: impl IntoIterator<Item = &'a Contact>,
    ) -> Result<Arc<Keyring>, StoreError> {
        let mut ids: Vec<&str> = contacts.into_iter().flat_map(contact_key_ids).collect();
        ids.sort_unstable();
        ids.dedup();
        self.covering(ids).await
    }

    /// Successful fetches of the secret so far, the cold start's included (1 for a fixed
    /// keyring).
    pub async fn fetch_count(&self) -> u64 {
        self.fetches.lock().await.count
    }

    fn snapshot(&self) -> Arc<Keyring> {
        match self.current.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, fetches: &mut Fetches, keys: Keyring, unscheduled: bool) {
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

/// The key ids a customer's contact data is sealed under (a malformed value names none: it
/// fails when opened).
fn contact_key_ids(contact: &Contact) -> impl Iterator<Item = &str> {
    [&contact.name, &contact.email, &contact.phone]
        .into_iter()
        .filter_map(|s| s.key_id())
}

/// The secret's current value, parsed. The error names the secret and what is wrong with
/// the value (key ids, lengths), never the value.
async fn fetch(client: &aws_sdk_secretsmanager::Client, secret_id: &str) -> Result<Keyring, StoreError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| StoreError::aws("GetSecretValue", secret_id, e))?;
    let decode = |message: String| StoreError::Decode {
        resource: format!("secret {secret_id}"),
        what: "the keyring (SecretString)".to_owned(),
        message,
    };
    let value = out
        .secret_string()
        .ok_or_else(|| decode("the secret has no SecretString".to_owned()))?;
    Keyring::parse(value).map_err(|e| decode(without_key_material(&e.to_string(), value)))
}

/// `message` with every long piece of `value` taken out: a parse error names key ids, and a
/// value written the wrong way round (`key:id`) would make a key look like an id.
fn without_key_material(message: &str, value: &str) -> String {
    value
        .split([',', ':'])
        .map(str::trim)
        .filter(|piece| piece.len() >= 20)
        .fold(message.to_owned(), |m, piece| m.replace(piece, "‹redacted›"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_error_never_carries_a_key() {
        let key = domain::pii::DEV_KEYRING
            .split_once(':')
            .map(|(_, k)| k)
            .unwrap_or_default();
        // The wrong way round: the key where the id goes, and an id too short to be a key.
        let value = format!("{}:k1", key.trim_end_matches('='));
        let e = Keyring::parse(&value).map(|_| ()).unwrap_err().to_string();
        let cleaned = without_key_material(&e, &value);
        assert!(!cleaned.contains(key.trim_end_matches('=')), "{cleaned}");
        assert!(cleaned.contains("keyring"), "{cleaned}");
    }

    #[test]
    fn the_key_ids_of_a_contact_are_its_sealed_fields_ids() {
        let keys = Keyring::parse(domain::pii::DEV_KEYRING).unwrap();
        let id = domain::CustomerId::new("C-1".to_owned()).unwrap();
        let c = Contact::seal(&keys, &id, "n", "e@example.com", "010-0000-0000");
        assert_eq!(contact_key_ids(&c).collect::<Vec<_>>(), ["dev", "dev", "dev"]);
    }
}
