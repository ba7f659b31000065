//! The admin API over plain HTTP on a loopback port, for local runs and `billingctl`'s
//! tests: what the Function URL does in front of the function, minus the signature check.
//! Local-only: the `admin-api` Lambda does not carry it.
//!
//! ```sh
//! cargo run -p admin-local -- 8080    # the admin-api-local binary
//! ```
//!
//! The caller is named by the SigV4 `Authorization` header's access key id ([`Callers`]): a
//! key given an ARN (`ADMIN_LOCAL_CALLERS=KEY=ARN,...`, or [`Callers::with`] in tests) calls as
//! that ARN; any other key calls as a session of the stack's bootstrap administrator role
//! (`ADMIN_BOOTSTRAP_PRINCIPAL`), named after the key, so a local run's default credentials
//! are an administrator's. A request without a key is answered 403, as the Function URL
//! refuses unsigned requests. The signature itself is not verified: this server trusts its
//! loopback callers, and is never deployed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use tokio::net::TcpListener;

use admin_api::identity::{Kind, Principal};
use admin_api::{Caller, Deps, Request, serve};

/// Who a request's access key id names.
#[derive(Clone, Debug, Default)]
pub struct Callers {
    /// Access key id → the caller's ARN, as the Function URL would give it.
    named: HashMap<String, String>,
}

impl Callers {
    /// `key` calls as `arn` (a role session's or a user's ARN).
    pub fn with(mut self, key: &str, arn: &str) -> Self {
        self.named.insert(key.to_owned(), arn.to_owned());
        self
    }

    /// From `KEY=ARN[,KEY=ARN...]` (`ADMIN_LOCAL_CALLERS`); the pair that does not read is
    /// the error.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut callers = Callers::default();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((key, arn)) if access_key_ok(key.trim()) && Principal::of(arn.trim()).is_some() => {
                    callers = callers.with(key.trim(), arn.trim());
                }
                _ => {
                    return Err(format!(
                        "{pair:?} is not KEY=ARN (an access key id, a role session's or user's ARN)"
                    ));
                }
            }
        }
        Ok(callers)
    }

    /// The caller an access key id names: its ARN, or a session of the bootstrap
    /// administrator's role named after the key (the bootstrap user itself, if it is one).
    fn caller(&self, key: &str, bootstrap: &Principal) -> Caller {
        if let Some(arn) = self.named.get(key) {
            return Caller { arn: arn.clone() };
        }
        let arn = match bootstrap.kind {
            Kind::Role => format!(
                "{}/{key}",
                bootstrap
                    .arn
                    .replacen(":iam::", ":sts::", 1)
                    .replacen(":role/", ":assumed-role/", 1)
            ),
            Kind::User => bootstrap.arn.clone(),
        };
        Caller { arn }
    }
}

/// An access key id this server takes: 2 to 64 of the characters a role session's name may
/// hold, so that it can name one.
fn access_key_ok(key: &str) -> bool {
    (2..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// Binds `127.0.0.1:port` (0: any free port) and serves there in a background task, every
/// access key calling as a session of the bootstrap administrator's role.
pub async fn start(deps: Deps, port: u16) -> std::io::Result<SocketAddr> {
    start_with(deps, port, Callers::default()).await
}

/// [`start`], with the access keys `callers` names calling as their ARNs.
pub async fn start_with(deps: Deps, port: u16, callers: Callers) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new((deps, callers));
    tokio::spawn(local_aws::http::serve(listener, "admin api", move |req| {
        let shared = shared.clone();
        async move { answer(&shared.0, &shared.1, req).await }
    }));
    Ok(addr)
}

/// The access key id of a SigV4 `Authorization` header.
fn access_key_of(authorization: &str) -> Option<&str> {
    let credential = authorization.split("Credential=").nth(1)?;
    let access_key = credential.split('/').next()?.trim();
    access_key_ok(access_key).then_some(access_key)
}

fn query_of(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn answer(deps: &Deps, callers: &Callers, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let method = req.method().as_str().to_owned();
    let raw_path = req.uri().path().to_owned();
    let query = query_of(req.uri().query());
    let caller = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(access_key_of)
        .map(|key| callers.caller(key, deps.roles.bootstrap()));
    let body = match req.into_body().collect().await {
        Ok(b) => String::from_utf8(b.to_bytes().to_vec()).ok(),
        Err(_) => None,
    };
    let trimmed = raw_path.trim_end_matches('/');
    let request = Request {
        method,
        path: if trimmed.is_empty() { "/".into() } else { trimmed.into() },
        query,
        body: body.filter(|b| !b.is_empty()),
        caller,
        request_id: format!("local-{}", Utc::now().timestamp_micros()),
    };
    let response = serve(deps, &request, Utc::now()).await;
    hyper::Response::builder()
        .status(response.status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(response.body.to_string())))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::from_static(b"{}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_access_key_names_the_caller() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261204/ap-northeast-2/lambda/aws4_request, \
                    SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(access_key_of(auth), Some("AKIDEXAMPLE"));
        assert!(access_key_of("Basic dXNlcjpwYXNz").is_none());
        assert!(access_key_of("AWS4-HMAC-SHA256 Credential=/x").is_none());
        assert!(access_key_of("AWS4-HMAC-SHA256 Credential=a b/x").is_none());

        let bootstrap = Principal::of("arn:aws:iam::123456789012:role/billing-admin").unwrap();
        let viewer = "arn:aws:sts::123456789012:assumed-role/billing-viewer/park";
        let callers = Callers::parse(&format!("VIEWERKEY={viewer}")).unwrap();
        assert_eq!(callers.caller("VIEWERKEY", &bootstrap).arn, viewer);
        assert_eq!(
            callers.caller("AKIDEXAMPLE", &bootstrap).arn,
            "arn:aws:sts::123456789012:assumed-role/billing-admin/AKIDEXAMPLE",
            "any other key is a session of the bootstrap administrator's role"
        );
        let bootstrap_user = Principal::of("arn:aws:iam::123456789012:user/ops/han").unwrap();
        assert_eq!(
            callers.caller("test", &bootstrap_user).arn,
            "arn:aws:iam::123456789012:user/han"
        );
        assert!(Callers::parse("VIEWERKEY").is_err());
        assert!(Callers::parse("K=not-an-arn").is_err());
        assert!(Callers::parse(" ").unwrap().named.is_empty());
    }

    #[test]
    fn query_components_are_decoded() {
        let q = query_of(Some("day=2026-12-04&next=ab%3D%3D&reason=a+b&flag"));
        assert_eq!(q["day"], "2026-12-04");
        assert_eq!(q["next"], "ab==");
        assert_eq!(q["reason"], "a b");
        assert_eq!(q["flag"], "");
        assert_eq!(decode("100%"), "100%");
    }
}
