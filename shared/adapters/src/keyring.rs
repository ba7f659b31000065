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

use std::sync::Arc;

use aws_config::SdkConfig;
use domain::customer::Contact;
use domain::pii::Keyring;

use crate::secret_keys::{FromSecret, SecretKeys};
use crate::{ConfigError, StoreError, Vars};

/// The variable naming the keyring's secret (name or ARN).
pub const SECRET_VAR: &str = "PII_KEYS_SECRET";

pub use crate::secret_keys::{REFETCH_INTERVAL, REFRESH_AFTER};

impl FromSecret for Keyring {
    const WHAT: &'static str = "the keyring";

    fn from_secret(value: &str) -> Result<Self, String> {
        Keyring::parse(value).map_err(|e| without_key_material(&e.to_string(), value))
    }
}

/// The keyring of one instance: the secret it comes from and the copy in use (the shared
/// mechanism of [`crate::secret_keys`]).
#[derive(Debug)]
pub struct PiiKeys(SecretKeys<Keyring>);

impl PiiKeys {
    /// Fetches the keyring from the secret named by [`SECRET_VAR`]; a missing variable, a
    /// secret that cannot be read or a value that is not a keyring fails the cold start.
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        Ok(PiiKeys(SecretKeys::load(sdk, vars, SECRET_VAR).await?))
    }

    /// A keyring that never changes (tests and local tools that hold the keys themselves).
    pub fn fixed(keys: Keyring) -> Self {
        PiiKeys(SecretKeys::fixed(keys))
    }

    /// The keyring in use, fetched again first if it is older than [`REFRESH_AFTER`] (a
    /// failed fetch keeps the one in use).
    pub async fn current(&self) -> Arc<Keyring> {
        self.0.current().await
    }

    /// A keyring that holds every key id of `ids` if the secret does: the one in use (see
    /// [`current`](Self::current)) when it holds them all, else the secret's current value,
    /// fetched at most once per [`REFETCH_INTERVAL`]. An error only when that fetch fails.
    pub async fn covering<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Result<Arc<Keyring>, StoreError> {
        let ids: Vec<&str> = ids.into_iter().collect();
        self.0
            .refetch_unless(|keys| !ids.iter().all(|id| keys.contains(id)))
            .await
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
        self.0.fetch_count().await
    }
}

/// The key ids a customer's contact data is sealed under (a malformed value names none: it
/// fails when opened).
fn contact_key_ids(contact: &Contact) -> impl Iterator<Item = &str> {
    [&contact.name, &contact.email, &contact.phone]
        .into_iter()
        .filter_map(|s| s.key_id())
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
