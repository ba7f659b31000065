//! Who the caller is, as the platform sees it: the IAM principal its role comes from, and the
//! masked form the logs carry.
//!
//! The Function URL (`AuthType: AWS_IAM`) names the caller by the ARN it verified: an
//! assumed-role session `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` or an IAM user
//! `arn:aws:iam::ACCOUNT:user/PATH/NAME`. The platform's roles are granted to the IAM role or
//! user behind it, its **principal**:
//!
//! | the caller's ARN | its principal |
//! |---|---|
//! | `arn:aws:sts::A:assumed-role/ROLE/SESSION` | `arn:aws:iam::A:role/ROLE` |
//! | `arn:aws:iam::A:role/PATH/ROLE` (as an administrator names it) | `arn:aws:iam::A:role/ROLE` |
//! | `arn:aws:iam::A:user/PATH/NAME` | `arn:aws:iam::A:user/NAME` |
//!
//! A session's ARN does not carry its role's path, so a principal never does either: role
//! and user names are unique in an account whatever their path, and `role/ops/billing-admin`
//! and `role/billing-admin` are the same principal. Anything else (the account's root, a
//! federated user, a service) has no principal and so no role.
//!
//! In the logs the caller is [`Caller::masked`]: the role's name and a short hash of the
//! session name (an operator's session is often named after their email address); a user's
//! name is hashed too. The audit record keeps the verified ARN in full (who gave a command is
//! what it is for); the logs never do.

use sha2::{Digest, Sha256};

use crate::http::Caller;

/// The kind of IAM principal a platform role is granted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Role,
    User,
}

/// A caller's ARN read as the principal its role comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `arn:PARTITION:iam::ACCOUNT:role/NAME` or `…:user/NAME`: the key of the role mapping.
    pub arn: String,
    pub kind: Kind,
    /// The role's or user's name (without its path).
    pub name: String,
    /// The session name of an assumed role.
    pub session: Option<String>,
}

/// Longest IAM role or user name.
const MAX_NAME: usize = 64;

/// An IAM name: 1 to 64 of letters, digits and `+=,.@_-`.
fn iam_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

impl Principal {
    /// The principal behind an ARN: an assumed-role session's role, a role or a user without
    /// its path. `None` for any other ARN, or for one that is not well formed.
    pub fn of(arn: &str) -> Option<Principal> {
        let mut parts = arn.trim().splitn(6, ':');
        let (Some("arn"), Some(partition), Some(service), Some(""), Some(account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let partition_ok =
            partition.starts_with("aws") && partition.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
        if !partition_ok || account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let segments: Vec<&str> = resource.split('/').collect();
        let (kind, name, session) = match (service, segments.as_slice()) {
            ("sts", ["assumed-role", role, session]) => (Kind::Role, *role, Some(*session)),
            ("iam", ["role", .., name]) if segments.len() >= 2 => (Kind::Role, *name, None),
            ("iam", ["user", .., name]) if segments.len() >= 2 => (Kind::User, *name, None),
            _ => return None,
        };
        let path_ok = segments[1..segments.len() - usize::from(session.is_some()) - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_graphic()));
        if !iam_name(name) || !path_ok || session.is_some_and(|s| !iam_name(s)) {
            return None;
        }
        let what = match kind {
            Kind::Role => "role",
            Kind::User => "user",
        };
        Some(Principal {
            arn: format!("arn:{partition}:iam::{account}:{what}/{name}"),
            kind,
            name: name.to_owned(),
            session: session.map(str::to_owned),
        })
    }

    /// The caller as the logs name it: `role/NAME session#HASH`, `user#HASH`. A role name
    /// that looks like an email address or a phone number is hashed too.
    pub fn masked(&self) -> String {
        let name = if self.name.contains('@') || domain::text::holds_contact(&self.name) {
            format!("#{}", short_hash(&self.name))
        } else {
            format!("/{}", self.name)
        };
        match (self.kind, &self.session) {
            (Kind::Role, Some(s)) => format!("role{name} session#{}", short_hash(s)),
            (Kind::Role, None) => format!("role{name}"),
            (Kind::User, _) => format!("user#{}", short_hash(&self.name)),
        }
    }
}

/// The first 8 hex digits of the value's SHA-256: stable, so one operator's lines can be
/// followed, and not the value.
pub fn short_hash(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    hex::encode(&digest[..4])
}

impl Caller {
    /// The principal the caller's role comes from (see [`Principal::of`]).
    pub fn principal(&self) -> Option<Principal> {
        Principal::of(&self.arn)
    }

    /// The caller as the logs name it ([`Principal::masked`]); `unknown#HASH` for an ARN
    /// that names no role or user.
    pub fn masked(&self) -> String {
        match self.principal() {
            Some(p) => p.masked(),
            None => format!("unknown#{}", short_hash(&self.arn)),
        }
    }
}
