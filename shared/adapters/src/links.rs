//! Invoice links that last (`domain::link`): their keys, read from Secrets Manager and cached
//! for the instance, and the link URL the SMS carries.
//!
//! A function that signs or verifies links names the keys' secret in [`SECRET_VAR`]
//! (`LINK_KEYS_SECRET`: a secret name or ARN, never a key). [`LinkKeyring::load`] fetches it at
//! cold start with `GetSecretValue` and parses it as [`LinkKeys`] (`id:base64key[,…]`, the same
//! shape as the contact-data keyring: the first key signs, every key verifies). No key is ever
//! in a function's environment.
//!
//! **Refreshing and rotating**, as the contact-data keyring does (`keyring`): the keys are
//! fetched again after [`REFRESH_AFTER`] on the next use (a failed fetch keeps the cached keys),
//! and a token no cached key verifies makes the verifier fetch the secret again, at most once
//! per [`REFETCH_INTERVAL`] (so that a link signed by an instance that already has a new
//! active key is accepted, and a flood of forged tokens costs one call a minute). To rotate:
//! put the new key after the active one (`k1:…,k2:…`), after [`REFRESH_AFTER`] move it first
//! (`k2:…,k1:…`), and remove `k1` only once every link it signed has expired (the longest a link
//! lives is its invoice's due date plus [`VALID_DAYS_VAR`] days).
//!
//! Errors name the variable, the secret and the key ids, never a key or the secret's value.

use std::sync::Arc;

use aws_config::SdkConfig;
use chrono::NaiveDate;
use domain::link::{InvoiceLink, LinkError, LinkKeys};
use domain::{CustomerId, Cycle};

use crate::secret_keys::{FromSecret, SecretKeys};
pub use crate::secret_keys::{REFETCH_INTERVAL, REFRESH_AFTER};
use crate::{ConfigError, StoreError, Vars};

/// The variable naming the link keys' secret (name or ARN).
pub const SECRET_VAR: &str = "LINK_KEYS_SECRET";

/// The variable holding the base of every link: the invoice-link function's URL.
pub const BASE_URL_VAR: &str = "LINK_BASE_URL";

/// The variable holding how many days after the invoice's due date a link keeps working
/// (default [`domain::link::DEFAULT_VALID_DAYS_AFTER_DUE`]).
pub const VALID_DAYS_VAR: &str = "LINK_VALID_DAYS_AFTER_DUE";

/// The path of a link: `/i/{token}`.
pub const PATH_PREFIX: &str = "/i/";

impl FromSecret for LinkKeys {
    const WHAT: &'static str = "the link keys";

    fn from_secret(value: &str) -> Result<Self, String> {
        LinkKeys::parse(value).map_err(|e| e.to_string())
    }
}

/// The link keys of one instance: the secret they come from and the copy in use (the shared
/// mechanism of [`crate::secret_keys`]).
#[derive(Debug)]
pub struct LinkKeyring(SecretKeys<LinkKeys>);

impl LinkKeyring {
    /// Fetches the keys from the secret named by [`SECRET_VAR`]; a missing variable, a secret
    /// that cannot be read or a value that is not link keys fails the cold start.
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        Ok(LinkKeyring(SecretKeys::load(sdk, vars, SECRET_VAR).await?))
    }

    /// Keys that never change (tests and local tools).
    pub fn fixed(keys: LinkKeys) -> Self {
        LinkKeyring(SecretKeys::fixed(keys))
    }

    /// The keys in use, fetched again first if older than [`REFRESH_AFTER`] (a failed fetch
    /// keeps the ones in use).
    pub async fn current(&self) -> Arc<LinkKeys> {
        self.0.current().await
    }

    /// The invoice `token` names, if a key of the secret made it and it has not expired at
    /// `now` (Unix seconds). A token no cached key verifies fetches the secret again (at most
    /// once per [`REFETCH_INTERVAL`]) and is tried once more. `Err(Ok(_))` is the token's
    /// fault; `Err(Err(_))` a fetch that failed.
    pub async fn verify(&self, token: &str, now: i64) -> Result<InvoiceLink, Result<LinkError, StoreError>> {
        let forged = |keys: &LinkKeys| matches!(keys.verify(token, now), Err(LinkError::Forged));
        let keys = self.0.refetch_unless(forged).await.map_err(Err)?;
        keys.verify(token, now).map_err(Ok)
    }

    /// Successful fetches of the secret so far, the cold start's included (1 for fixed keys).
    pub async fn fetch_count(&self) -> u64 {
        self.0.fetch_count().await
    }
}

/// Makes the links the SMS carries: `{LINK_BASE_URL}/i/{token}`, valid from the send until
/// [`VALID_DAYS_VAR`] days after the invoice's due date.
#[derive(Debug)]
pub struct LinkSigner {
    keys: LinkKeyring,
    base_url: String,
    valid_days_after_due: u32,
}

impl LinkSigner {
    /// From [`SECRET_VAR`] (fetched here), [`BASE_URL_VAR`] and the optional [`VALID_DAYS_VAR`].
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let base_url = vars.required(BASE_URL_VAR)?;
        let days = vars.parsed(VALID_DAYS_VAR, domain::link::DEFAULT_VALID_DAYS_AFTER_DUE)?;
        let keys = LinkKeyring::load(sdk, vars).await?;
        LinkSigner::new(keys, &base_url, days)
    }

    /// A signer over `keys`; `base_url` must be an `http(s)://` URL (a trailing `/` is dropped).
    pub fn new(keys: LinkKeyring, base_url: &str, valid_days_after_due: u32) -> Result<Self, ConfigError> {
        let base = base_url.trim().trim_end_matches('/');
        let scheme_ok = base.starts_with("https://") || base.starts_with("http://");
        if !scheme_ok || !base.bytes().all(|b| b.is_ascii_graphic()) || base.contains(['?', '#']) {
            return Err(ConfigError::Invalid {
                name: BASE_URL_VAR,
                reason: "must be an http(s) URL without spaces, query or fragment".into(),
            });
        }
        if valid_days_after_due > 3_650 {
            return Err(ConfigError::Invalid {
                name: VALID_DAYS_VAR,
                reason: "must be at most 3650 days".into(),
            });
        }
        Ok(LinkSigner {
            keys,
            base_url: base.to_owned(),
            valid_days_after_due,
        })
    }

    /// The keys (to verify with, in tests and local tools).
    pub fn keys(&self) -> &LinkKeyring {
        &self.keys
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn valid_days_after_due(&self) -> u32 {
        self.valid_days_after_due
    }

    /// The link of an invoice due on `due`: what it names (the last part of its object key,
    /// see [`crate::data_bucket::invoice_object_name`], and its range in a pack) and until when
    /// it works.
    pub fn link(
        &self,
        cycle: Cycle,
        shard: u32,
        customer: &CustomerId,
        object_name: &str,
        range: Option<domain::range::ByteRange>,
        due: NaiveDate,
    ) -> InvoiceLink {
        InvoiceLink {
            cycle,
            shard,
            customer: customer.clone(),
            template_version: object_name.to_owned(),
            range,
            expires_at: domain::link::expires_at(due, self.valid_days_after_due),
        }
    }

    /// The URL of `link`, signed with the active key.
    pub async fn url(&self, link: &InvoiceLink) -> Result<String, LinkError> {
        let token = self.keys.current().await.sign(link)?;
        Ok(url_of(&self.base_url, &token))
    }
}

/// `{base}/i/{token}`.
pub fn url_of(base: &str, token: &str) -> String {
    format!("{}{PATH_PREFIX}{token}", base.trim_end_matches('/'))
}

/// The token of a request path `/i/{token}` (one segment, nothing after it).
pub fn token_of_path(path: &str) -> Option<&str> {
    let token = path.strip_prefix(PATH_PREFIX)?.trim_end_matches('/');
    (!token.is_empty() && !token.contains('/')).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_path_holds_one_token() {
        assert_eq!(token_of_path("/i/abc"), Some("abc"));
        assert_eq!(token_of_path("/i/abc/"), Some("abc"));
        for bad in ["/i/", "/i", "/x/abc", "/i/a/b", "/", ""] {
            assert_eq!(token_of_path(bad), None, "{bad}");
        }
        assert_eq!(url_of("https://x.example/", "t"), "https://x.example/i/t");
    }

    #[test]
    fn the_base_url_is_checked() {
        let keys = || LinkKeyring::fixed(LinkKeys::parse(&format!("k1:{}", "A".repeat(44))).unwrap());
        assert!(LinkSigner::new(keys(), "https://abc.lambda-url.ap-northeast-2.on.aws/", 90).is_ok());
        for bad in ["", "ftp://x", "https://x/?a=1", "https://x y"] {
            assert!(LinkSigner::new(keys(), bad, 90).is_err(), "{bad}");
        }
        assert!(LinkSigner::new(keys(), "https://x", 10_000).is_err());
    }
}
