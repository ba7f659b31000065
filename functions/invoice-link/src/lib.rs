//! `InvoiceLink`: the public function URL behind the SMS's link to the invoice.
//!
//! `GET /i/{token}` (and `HEAD`): the token (`domain::link`) names one rendered invoice and when
//! the link stops working, signed with HMAC-SHA-256 under the link keys (`LINK_KEYS_SECRET`,
//! `adapters::links`). The answer:
//!
//! | case | status |
//! |---|---|
//! | genuine, not expired, the invoice stored | 200, the invoice |
//! | malformed, tampered, or signed by a key the secret lacks | 403 |
//! | genuine but expired | 410 |
//! | genuine, the invoice no longer stored (past the bucket's retention) | 404 |
//! | another path | 404 |
//! | a method other than `GET`/`HEAD` | 405 |
//! | S3 or Secrets Manager trouble | 503 (transient) or 500 |
//!
//! **Why `AuthType: NONE`.** The people who open the link are the platform's customers on their
//! phones, with no AWS identity: the URL must be public. The token is the authorisation: it is
//! unguessable (a 128-bit MAC under keys only this stack holds), names exactly one invoice, and
//! expires. The function can read nothing but `invoices/*` of the data bucket and the link keys.
//!
//! **Why the bytes, not a redirect.** The invoice (gzip-encoded HTML of about 1.3 KB) is served
//! from here, with `Content-Encoding: gzip` as stored, so the browser decodes it. A 302 to a
//! freshly presigned S3 URL would work as well, but it puts the function role's temporary
//! credentials (the session token) into the customer's address bar, history and any shared
//! screenshot, lets the page be re-fetched from S3 outside the token's expiry for the
//! presigned URL's lifetime, and costs the browser a second TLS connection. Answers are
//! `Cache-Control: private, no-store`, `Referrer-Policy: no-referrer` (the invoice's own links
//! never carry the token to another site) and `X-Robots-Tag: noindex`.
//!
//! **Logs** name the token only by its fingerprint (`domain::link::fingerprint`): the token is
//! the capability to read the invoice. A verified link's ids (cycle, shard, customer id) are
//! logged; they are not personal data.

use std::sync::Arc;

use adapters::data_bucket::{DataBucket, linked_invoice_key};
use adapters::links::{LinkKeyring, token_of_path};
use adapters::{ConfigError, StoreError, Vars};
use aws_config::SdkConfig;
use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use aws_lambda_events::http::HeaderMap;
use aws_lambda_events::http::header::HeaderValue;
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::link::{LinkError, fingerprint};
use lambda_runtime::LambdaEvent;

/// The largest invoice served: a function URL answer holds at most 6 MB, and the body is
/// base64 (4/3 of the bytes). Invoices are about 1.3 KB.
pub const MAX_INVOICE_BYTES: usize = 4 * 1024 * 1024;

/// Reads the clock (the wall clock in Lambda; a later one in tests).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub struct Deps {
    pub keys: LinkKeyring,
    pub invoices: DataBucket,
    pub clock: Clock,
}

impl Deps {
    /// From `LINK_KEYS_SECRET` (fetched here) and `DATA_BUCKET`.
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let keys = LinkKeyring::load(sdk, vars).await?;
        Ok(Deps {
            keys,
            invoices: DataBucket::new(adapters::s3_client(sdk), vars.required("DATA_BUCKET")?),
            clock: Arc::new(Utc::now),
        })
    }
}

/// The function never fails an invocation: every outcome is an answer. The type exists for the
/// runtime's signature.
#[derive(Debug, thiserror::Error)]
pub enum InvoiceLinkError {}

impl runtime::ErrorType for InvoiceLinkError {
    fn error_type(&self) -> &'static str {
        match *self {}
    }
}

runtime::diagnostic_from!(InvoiceLinkError);

/// Why no invoice is served.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("method not allowed")]
    Method,
    #[error("no such page")]
    NoRoute,
    #[error(transparent)]
    Link(LinkError),
    #[error("the invoice is no longer stored")]
    Missing,
    #[error("the invoice is {0} bytes, more than an answer may hold")]
    TooLarge(usize),
    #[error(transparent)]
    Store(StoreError),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Method => 405,
            Refusal::NoRoute | Refusal::Missing => 404,
            Refusal::Link(LinkError::Expired { .. }) => 410,
            Refusal::Link(_) => 403,
            Refusal::TooLarge(_) => 500,
            Refusal::Store(e) if e.is_transient() => 503,
            Refusal::Store(_) => 500,
        }
    }

    /// The page shown: Korean first, then English. Never the token, never a cause.
    fn text(&self) -> &'static str {
        match self.status() {
            405 => "허용되지 않는 요청입니다.\nMethod not allowed.\n",
            404 => "청구서를 찾을 수 없습니다.\nThe invoice was not found.\n",
            410 => "링크의 유효 기간이 지났습니다. 고객센터에 문의해 주세요.\nThis link has expired.\n",
            403 => "올바르지 않은 링크입니다.\nThis link is not valid.\n",
            503 => "잠시 후 다시 시도해 주세요.\nPlease try again in a moment.\n",
            _ => "일시적인 오류입니다.\nSomething went wrong.\n",
        }
    }
}

/// The Lambda entry: one request, one answer.
pub async fn handle(
    deps: &Deps,
    event: LambdaEvent<LambdaFunctionUrlRequest>,
) -> Result<LambdaFunctionUrlResponse, InvoiceLinkError> {
    Ok(serve(deps, &event.payload).await)
}

/// Serves one request (see the module documentation).
pub async fn serve(deps: &Deps, request: &LambdaFunctionUrlRequest) -> LambdaFunctionUrlResponse {
    let http = &request.request_context.http;
    let method = http.method.as_deref().unwrap_or_default().to_ascii_uppercase();
    let head = method == "HEAD";
    let path = request.raw_path.as_deref().or(http.path.as_deref()).unwrap_or("/");
    let token = token_of_path(path);
    let print = token.map(fingerprint);
    match invoice(deps, &method, token).await {
        Ok((link, body)) => {
            tracing::info!(
                token = print.as_deref().unwrap_or("-"),
                cycle = %link.cycle,
                shard = link.shard,
                customer = link.customer.as_str(),
                bytes = body.len(),
                "invoice served"
            );
            invoice_answer(&body, head)
        }
        Err(refusal) => {
            let status = refusal.status();
            let token = print.as_deref().unwrap_or("-");
            match status {
                500..=599 => tracing::error!(status, token, error = %refusal, "no invoice served"),
                _ => tracing::info!(status, token, reason = %refusal, "no invoice served"),
            }
            refusal_answer(&refusal, head)
        }
    }
}

async fn invoice(
    deps: &Deps,
    method: &str,
    token: Option<&str>,
) -> Result<(domain::link::InvoiceLink, Vec<u8>), Refusal> {
    if method != "GET" && method != "HEAD" {
        return Err(Refusal::Method);
    }
    let token = token.ok_or(Refusal::NoRoute)?;
    let now = (deps.clock)().timestamp();
    let link = deps.keys.verify(token, now).await.map_err(|e| match e {
        Ok(e) => Refusal::Link(e),
        Err(e) => Refusal::Store(e),
    })?;
    let key = linked_invoice_key(&link);
    let object = deps
        .invoices
        .get_range(&key, link.range)
        .await
        .map_err(Refusal::Store)?
        .ok_or(Refusal::Missing)?;
    if link.range.is_some_and(|r| r.len() != object.body.len() as u64) {
        // A pack shorter than the range (never written so): no invoice rather than a part of one.
        return Err(Refusal::Missing);
    }
    if object.body.len() > MAX_INVOICE_BYTES {
        return Err(Refusal::TooLarge(object.body.len()));
    }
    Ok((link, object.body))
}

fn headers(content_type: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static(content_type));
    h.insert("cache-control", HeaderValue::from_static("private, no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h
}

/// The invoice as stored: gzip-encoded HTML (served as such, the browser decodes it), base64 in
/// the answer; `HEAD` gets the headers alone.
fn invoice_answer(body: &[u8], head: bool) -> LambdaFunctionUrlResponse {
    let mut h = headers("text/html; charset=utf-8");
    if body.starts_with(&[0x1f, 0x8b]) {
        h.insert("content-encoding", HeaderValue::from_static("gzip"));
    }
    let mut out = LambdaFunctionUrlResponse::default();
    out.status_code = 200;
    out.headers = h;
    if !head {
        out.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
        out.is_base64_encoded = true;
    }
    out
}

fn refusal_answer(refusal: &Refusal, head: bool) -> LambdaFunctionUrlResponse {
    let mut h = headers("text/plain; charset=utf-8");
    if matches!(refusal, Refusal::Method) {
        h.insert("allow", HeaderValue::from_static("GET, HEAD"));
    }
    let mut out = LambdaFunctionUrlResponse::default();
    out.status_code = i64::from(refusal.status());
    out.headers = h;
    if !head {
        out.body = Some(refusal.text().to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample events' path, and what the sample keys make of it on 2026-12-16.
    fn sample(name: &str) -> Result<domain::link::InvoiceLink, LinkError> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/invoice-link")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let event: LambdaFunctionUrlRequest = serde_json::from_str(&text).unwrap();
        let token = token_of_path(event.raw_path.as_deref().unwrap()).unwrap().to_owned();
        let keys = domain::link::LinkKeys::parse("sample:c2FtcGxlLWxpbmsta2V5LW5vdC1mb3ItcHJvZCEhISE=").unwrap();
        keys.verify(&token, 1_797_416_100)
    }

    #[test]
    fn the_sample_events_are_what_events_readme_says() {
        let link = sample("invoice.json").unwrap();
        assert_eq!(
            adapters::data_bucket::linked_invoice_key(&link),
            "invoices/2026-11/00000/packs/v1-3b0565b71b898f02.html"
        );
        assert_eq!(link.range.map(|r| r.to_string()).as_deref(), Some("44829-46196"));
        assert_eq!(sample("post.json").unwrap(), link);
        assert_eq!(sample("tampered.json"), Err(LinkError::Forged));
        assert!(matches!(sample("expired.json"), Err(LinkError::Expired { .. })));
        assert_eq!(sample("missing.json").unwrap().customer.as_str(), "C0009999");
    }

    #[test]
    fn every_refusal_has_its_status() {
        assert_eq!(Refusal::Method.status(), 405);
        assert_eq!(Refusal::NoRoute.status(), 404);
        assert_eq!(Refusal::Missing.status(), 404);
        assert_eq!(Refusal::Link(LinkError::Forged).status(), 403);
        assert_eq!(Refusal::Link(LinkError::Malformed).status(), 403);
        assert_eq!(Refusal::Link(LinkError::Expired { expires_at: 1 }).status(), 410);
        assert_eq!(Refusal::TooLarge(1).status(), 500);
    }

    #[test]
    fn answers_carry_the_privacy_headers() {
        let gz = [0x1f, 0x8b, 8, 0];
        let a = invoice_answer(&gz, false);
        assert_eq!(a.status_code, 200);
        assert!(a.is_base64_encoded);
        for (name, value) in [
            ("content-type", "text/html; charset=utf-8"),
            ("content-encoding", "gzip"),
            ("cache-control", "private, no-store"),
            ("referrer-policy", "no-referrer"),
            ("x-robots-tag", "noindex"),
        ] {
            assert_eq!(a.headers.get(name).and_then(|v| v.to_str().ok()), Some(value), "{name}");
        }
        assert_eq!(invoice_answer(&gz, true).body, None);
        let r = refusal_answer(&Refusal::Method, false);
        assert_eq!(r.status_code, 405);
        assert_eq!(r.headers.get("allow").and_then(|v| v.to_str().ok()), Some("GET, HEAD"));
        assert_eq!(
            r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
            Some("private, no-store")
        );
    }
}
