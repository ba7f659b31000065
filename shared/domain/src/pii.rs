//! Personal data protection.
//!
//! * [`Secret`] holds a decrypted value and never shows it through `Debug` or
//!   `Display`, so it cannot reach a log line by accident; [`Secret::expose`]
//!   is the one explicit way to read it, used only where a message is sent.
//! * [`Sealed`] is a value encrypted with AES-256-GCM under a key of the
//!   [`Keyring`]. The associated data binds each ciphertext to its customer
//!   and field, so a ciphertext copied onto another customer or field fails
//!   to open. The nonce is derived from the key, the associated data and the
//!   plaintext (HMAC-SHA-256), a synthetic IV: sealing is deterministic, and
//!   a nonce can only repeat for the very same value of the very same field,
//!   which reveals nothing the associated data does not already say.
//! * [`mask_phone`], [`mask_email`] and [`mask_name`] produce what may be
//!   shown to operators and printed on invoices.
//!
//! A keyring is written `id:base64key[,id:base64key…]`; the first key seals,
//! every key opens what was sealed under its id, which allows rotation. The
//! deployed functions read it from a Secrets Manager secret
//! (`adapters::keyring`), never from their configuration.
//! [`DEV_KEYRING`] is a published development key for local runs only.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The development keyring used by local runs, tests and the data generator.
/// It is public: never configure it in a deployed stage.
pub const DEV_KEYRING: &str = "dev:ZGV2LW9ubHkta2V5LW5ldmVyLXVzZS1pbi1wcm9kISE=";

const SEALED_PREFIX: &str = "v1";

/// A decrypted personal value. `Debug` and `Display` print `‹redacted›`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself. Call this only where the value is actually used
    /// (sending a message, rendering for the customer), never to log it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("‹redacted›")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("‹redacted›")
    }
}

/// Which personal field a ciphertext belongs to; part of the associated data.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    Email,
    Phone,
}

impl Field {
    fn as_str(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Email => "email",
            Field::Phone => "phone",
        }
    }
}

/// An encrypted value: `v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`.
/// `Debug` shows only the key id and the length.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl Sealed {
    /// Wraps a stored ciphertext string (checked only when opened).
    pub fn from_stored(s: String) -> Self {
        Sealed(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key_id(&self) -> Option<&str> {
        let mut parts = self.0.splitn(3, ':');
        match (parts.next(), parts.next()) {
            (Some(SEALED_PREFIX), Some(id)) => Some(id),
            _ => None,
        }
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({}, {} chars)", self.key_id().unwrap_or("?"), self.0.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PiiError {
    #[error("the PII keyring is empty or malformed: expected id:base64key[,id:base64key…] with 32-byte keys ({0})")]
    BadKeyring(String),
    #[error("sealed {field} value is malformed")]
    Malformed { field: &'static str },
    #[error("sealed {field} value uses key {key_id:?}, which is not in the keyring")]
    UnknownKey { field: &'static str, key_id: String },
    #[error("sealed {field} value cannot be decrypted (wrong key, wrong record, or tampered)")]
    Undecryptable { field: &'static str },
}

struct Key {
    cipher: Aes256Gcm,
    /// HMAC keyed for contact look-up hashes ([`Keyring::lookup_hash`]).
    lookup_mac: Hmac<Sha256>,
    /// HMAC keyed for nonce derivation, cloned per seal (cheaper than
    /// re-keying: two SHA-256 compressions saved per call).
    nonce_mac: Hmac<Sha256>,
}

/// The keys personal data is sealed with. `Debug` shows only key ids.
pub struct Keyring {
    active: String,
    keys: HashMap<String, Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("ids", &ids)
            .finish()
    }
}

impl Keyring {
    /// Parses `id:base64key[,id:base64key…]`; the first key seals.
    pub fn parse(spec: &str) -> Result<Self, PiiError> {
        let mut keys = HashMap::new();
        let mut active = None;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, b64) = part
                .split_once(':')
                .ok_or_else(|| PiiError::BadKeyring("an entry has no ':'".into()))?;
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(PiiError::BadKeyring("key ids are letters, digits, '-' and '_'".into()));
            }
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| PiiError::BadKeyring(format!("key {id:?} is not base64")))?;
            if raw.len() != 32 {
                return Err(PiiError::BadKeyring(format!(
                    "key {id:?} has {} bytes, not 32",
                    raw.len()
                )));
            }
            let cipher = Aes256Gcm::new_from_slice(&raw)
                .map_err(|_| PiiError::BadKeyring(format!("key {id:?} is not a valid AES-256 key")))?;
            let mut h = <Hmac<Sha256> as Mac>::new_from_slice(b"billing-pii-nonce-v1")
                .map_err(|_| PiiError::BadKeyring("nonce key derivation failed".into()))?;
            h.update(&raw);
            let nonce_key = h.finalize().into_bytes();
            let nonce_mac = <Hmac<Sha256> as Mac>::new_from_slice(&nonce_key)
                .map_err(|_| PiiError::BadKeyring("nonce key derivation failed".into()))?;
            let mut h = <Hmac<Sha256> as Mac>::new_from_slice(b"billing-contact-lookup-v1")
                .map_err(|_| PiiError::BadKeyring("look-up key derivation failed".into()))?;
            h.update(&raw);
            let lookup_key = h.finalize().into_bytes();
            let lookup_mac = <Hmac<Sha256> as Mac>::new_from_slice(&lookup_key)
                .map_err(|_| PiiError::BadKeyring("look-up key derivation failed".into()))?;
            let key = Key {
                cipher,
                nonce_mac,
                lookup_mac,
            };
            if keys.insert(id.to_owned(), key).is_some() {
                return Err(PiiError::BadKeyring(format!("key id {id:?} appears twice")));
            }
            active.get_or_insert_with(|| id.to_owned());
        }
        let active = active.ok_or_else(|| PiiError::BadKeyring("no keys".into()))?;
        Ok(Keyring { active, keys })
    }

    /// The development keyring ([`DEV_KEYRING`]).
    pub fn dev() -> Self {
        match Self::parse(DEV_KEYRING) {
            Ok(k) => k,
            Err(e) => unreachable!("the built-in development keyring is valid: {e}"),
        }
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Whether the key `key_id` is in the keyring (can open what it sealed).
    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// A keyed hash of a contact value, the same for every customer who has
    /// it: what a suppression list stores instead of the address or number.
    /// `{key id}:{32 hex digits}` (HMAC-SHA-256 under a key derived from the
    /// active key, cut to 128 bits) over the field and the value normalised
    /// (an email trimmed and lower-cased, a phone number's digits only), so
    /// `Kim@Example.com ` and `kim@example.com` hash alike. Without the
    /// keyring nobody can tell whose it is, nor test a guessed address.
    pub fn lookup_hash(&self, field: Field, value: &str) -> String {
        self.hash_with(&self.active, field, value)
    }

    /// [`lookup_hash`](Self::lookup_hash) under every key of the keyring,
    /// the active one first: what to look up so that an entry stored before a
    /// key rotation is still found.
    pub fn lookup_hashes(&self, field: Field, value: &str) -> Vec<String> {
        let mut ids: Vec<&String> = self.keys.keys().filter(|id| **id != self.active).collect();
        ids.sort();
        std::iter::once(&self.active)
            .chain(ids)
            .map(|id| self.hash_with(id, field, value))
            .collect()
    }

    fn hash_with(&self, id: &str, field: Field, value: &str) -> String {
        let Some(key) = self.keys.get(id) else {
            unreachable!("hashes are made only with ids of the keyring")
        };
        let normalised: String = match field {
            Field::Email => value.trim().to_lowercase(),
            Field::Phone => value.chars().filter(char::is_ascii_digit).collect(),
            Field::Name => value.trim().to_owned(),
        };
        let mut mac = key.lookup_mac.clone();
        mac.update(field.as_str().as_bytes());
        mac.update(&[0]);
        mac.update(normalised.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(id.len() + 33);
        out.push_str(id);
        out.push(':');
        for b in &digest[..16] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    fn aad(owner: &str, field: Field) -> Vec<u8> {
        let mut aad = Vec::with_capacity(owner.len() + 8);
        aad.extend_from_slice(owner.as_bytes());
        aad.push(b'|');
        aad.extend_from_slice(field.as_str().as_bytes());
        aad
    }

    /// Encrypts `plaintext` as `field` of the record `owner` (a customer id).
    pub fn seal(&self, owner: &str, field: Field, plaintext: &str) -> Sealed {
        let Some(key) = self.keys.get(&self.active) else {
            unreachable!("the active key is always in the keyring")
        };
        let aad = Self::aad(owner, field);
        let mut mac = key.nonce_mac.clone();
        mac.update(&aad);
        mac.update(&[0]);
        mac.update(plaintext.as_bytes());
        let nonce_bytes = mac.finalize().into_bytes();
        let nonce = Nonce::from_slice(&nonce_bytes[..12]);
        let ct = match key.cipher.encrypt(
            nonce,
            Payload {
                msg: plaintext.as_bytes(),
                aad: &aad,
            },
        ) {
            Ok(ct) => ct,
            Err(_) => unreachable!("AES-GCM encryption fails only for inputs over 64 GiB"),
        };
        let mut blob = Vec::with_capacity(12 + ct.len());
        blob.extend_from_slice(&nonce_bytes[..12]);
        blob.extend_from_slice(&ct);
        Sealed(format!(
            "{SEALED_PREFIX}:{}:{}",
            self.active,
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    /// Decrypts a value sealed by [`Keyring::seal`] for the same owner and field.
    pub fn open(&self, owner: &str, field: Field, sealed: &Sealed) -> Result<Secret<String>, PiiError> {
        let f = field.as_str();
        let mut parts = sealed.0.splitn(3, ':');
        let (Some(SEALED_PREFIX), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(PiiError::Malformed { field: f });
        };
        let key = self.keys.get(id).ok_or_else(|| PiiError::UnknownKey {
            field: f,
            key_id: id.to_owned(),
        })?;
        let blob = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| PiiError::Malformed { field: f })?;
        if blob.len() < 12 + 16 {
            return Err(PiiError::Malformed { field: f });
        }
        let (nonce, ct) = blob.split_at(12);
        let aad = Self::aad(owner, field);
        let pt = key
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| PiiError::Undecryptable { field: f })?;
        String::from_utf8(pt)
            .map(Secret)
            .map_err(|_| PiiError::Undecryptable { field: f })
    }
}

/// `010-1234-5678` → `010-****-5678`. Any other shape keeps only its last
/// four digits: `+82 10 1234 5678` → `***-****-5678`.
pub fn mask_phone(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return "***-****-****".to_owned();
    }
    let last4 = &digits[digits.len() - 4..];
    let parts: Vec<&str> = phone.split('-').collect();
    if parts.len() == 3 && parts[0].len() == 3 && parts[0].chars().all(|c| c.is_ascii_digit()) {
        format!("{}-****-{last4}", parts[0])
    } else {
        format!("***-****-{last4}")
    }
}

/// `kim@example.com` → `k***@example.com`; a malformed address → `***`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        _ => "***".to_owned(),
    }
}

/// `김민수` → `김*수`, `이민` → `이*`, `Jane Doe` → `J******e`.
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.trim().chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => "*".to_owned(),
        2 => format!("{}*", chars[0]),
        n => {
            let mut s = String::with_capacity(n * 3);
            s.push(chars[0]);
            s.extend(std::iter::repeat_n('*', n - 2));
            s.push(chars[n - 1]);
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let k = Keyring::dev();
        let h = k.lookup_hash(Field::Email, "kim@example.com");
        assert_eq!(h, k.lookup_hash(Field::Email, " Kim@Example.COM "));
        assert_ne!(h, k.lookup_hash(Field::Email, "lee@example.com"));
        assert_ne!(h, k.lookup_hash(Field::Phone, "kim@example.com"));
        assert_eq!(
            k.lookup_hash(Field::Phone, "010-1234-5678"),
            k.lookup_hash(Field::Phone, "01012345678")
        );
        assert!(!h.contains("kim") && h.len() == k.active_key_id().len() + 33, "{h}");
        assert_eq!(k.lookup_hashes(Field::Email, "kim@example.com"), vec![h]);
        let s = k.seal("C1", Field::Email, "kim@example.com");
        assert!(!s.as_str().contains("kim"));
        assert_eq!(k.open("C1", Field::Email, &s).unwrap().expose(), "kim@example.com");
        // Bound to its owner and field.
        assert!(matches!(
            k.open("C2", Field::Email, &s),
            Err(PiiError::Undecryptable { .. })
        ));
        assert!(matches!(
            k.open("C1", Field::Phone, &s),
            Err(PiiError::Undecryptable { .. })
        ));
        // Deterministic.
        assert_eq!(s, k.seal("C1", Field::Email, "kim@example.com"));
        assert_ne!(s, k.seal("C2", Field::Email, "kim@example.com"));
    }

    #[test]
    fn tampering_and_unknown_keys_are_errors_not_panics() {
        let k = Keyring::dev();
        let s = k.seal("C1", Field::Phone, "010-1234-5678");
        let mut t = s.as_str().to_owned();
        let last = t.pop().unwrap();
        t.push(if last == 'A' { 'B' } else { 'A' });
        assert!(k.open("C1", Field::Phone, &Sealed::from_stored(t)).is_err());
        assert!(matches!(
            k.open("C1", Field::Phone, &Sealed::from_stored("garbage".into())),
            Err(PiiError::Malformed { .. })
        ));
        assert!(matches!(
            k.open("C1", Field::Phone, &Sealed::from_stored("v1:k9:AAAA".into())),
            Err(PiiError::UnknownKey { .. })
        ));
        assert!(matches!(
            k.open("C1", Field::Phone, &Sealed::from_stored("v1:dev:AAAA".into())),
            Err(PiiError::Malformed { .. })
        ));
        // Error texts carry no personal data.
        let e = k.open("C2", Field::Phone, &s).unwrap_err().to_string();
        assert!(!e.contains("010"), "{e}");
    }

    #[test]
    fn rotation_opens_old_values() {
        let old = Keyring::parse(DEV_KEYRING).unwrap();
        let sealed = old.seal("C1", Field::Name, "김민수");
        let new_key = STANDARD.encode([7u8; 32]);
        let rotated = Keyring::parse(&format!("k2:{new_key},{DEV_KEYRING}")).unwrap();
        assert_eq!(rotated.active_key_id(), "k2");
        assert_eq!(rotated.open("C1", Field::Name, &sealed).unwrap().expose(), "김민수");
        assert_eq!(rotated.seal("C1", Field::Name, "김민수").key_id(), Some("k2"));
    }

    #[test]
    fn bad_keyrings_are_rejected() {
        for bad in [
            "",
            "nokey",
            "k1:notbase64!",
            "k1:AAAA",
            "k 1:AAAA",
            &format!("a:{0},a:{0}", STANDARD.encode([1u8; 32])),
        ] {
            assert!(Keyring::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_and_keyrings_do_not_print() {
        let s = Secret::new("kim@example.com".to_owned());
        assert_eq!(format!("{s:?} {s}"), "‹redacted› ‹redacted›");
        let k = Keyring::dev();
        assert!(!format!("{k:?}").contains("ZGV2"));
        let sealed = k.seal("C1", Field::Email, "kim@example.com");
        assert_eq!(format!("{sealed:?}").split(',').next(), Some("Sealed(dev"));
    }

    #[test]
    fn masks() {
        assert_eq!(mask_phone("010-1234-5678"), "010-****-5678");
        assert_eq!(mask_phone("01012345678"), "***-****-5678");
        assert_eq!(mask_phone("12"), "***-****-****");
        assert_eq!(mask_email("kim@example.com"), "k***@example.com");
        assert_eq!(mask_email("김@example.com"), "김***@example.com");
        assert_eq!(mask_email("not-an-email"), "***");
        assert_eq!(mask_name("김민수"), "김*수");
        assert_eq!(mask_name("남궁민수"), "남**수");
        assert_eq!(mask_name("이민"), "이*");
        assert_eq!(mask_name("J"), "*");
        assert_eq!(mask_name("Jane Doe"), "J******e");
    }
}
