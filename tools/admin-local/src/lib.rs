//! The admin API over plain HTTP on a loopback port, for local runs and `billingctl`'s
//! tests: what the Function URL does in front of the function, minus the signature check.
//! Local-only: the `admin-api` Lambda does not carry it.
//!
//! ```sh
//! cargo run -p admin-local -- 8080    # the admin-api-local binary
//! ```
//!
//! The caller is taken from the SigV4 `Authorization` header's access key id
//! (`arn:aws:iam::000000000000:user/local/{access key id}`); a request without one is
//! answered 403, as the Function URL refuses unsigned requests. The signature itself is not
//! verified: this server trusts its loopback callers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use tokio::net::TcpListener;

use admin_api::{Caller, Deps, Request, serve};

/// Binds `127.0.0.1:port` (0: any free port) and serves there in a background task.
pub async fn start(deps: Deps, port: u16) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let deps = Arc::new(deps);
    tokio::spawn(local_aws::http::serve(listener, "admin api", move |req| {
        let deps = deps.clone();
        async move { answer(&deps, req).await }
    }));
    Ok(addr)
}

/// The caller named by a SigV4 `Authorization` header.
fn caller_of(authorization: &str) -> Option<Caller> {
    let credential = authorization.split("Credential=").nth(1)?;
    let access_key = credential.split('/').next()?.trim();
    if access_key.is_empty() || !access_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(Caller {
        arn: format!("arn:aws:iam::000000000000:user/local/{access_key}"),
    })
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

async fn answer(deps: &Deps, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let method = req.method().as_str().to_owned();
    let raw_path = req.uri().path().to_owned();
    let query = query_of(req.uri().query());
    let caller = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(caller_of);
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
    fn the_caller_is_the_signing_access_key() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261204/ap-northeast-2/lambda/aws4_request, \
                    SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(
            caller_of(auth).unwrap().arn,
            "arn:aws:iam::000000000000:user/local/AKIDEXAMPLE"
        );
        assert!(caller_of("Basic dXNlcjpwYXNz").is_none());
        assert!(caller_of("AWS4-HMAC-SHA256 Credential=/x").is_none());
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
