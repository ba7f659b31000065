//! The console's routes: the login address, the embedded page, `/console/...` (the session,
//! the invoice and template previews) and `/api/...`, forwarded to the admin API signed with
//! the operator's credentials. Every answer is `no-store`; the page's answers carry its
//! Content-Security-Policy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::guard::{Guard, Refusal};
use super::{Session, assets};
use crate::api::{Answer, Api, Failure};

/// The page's policy: its own scripts, styles and frames only, nothing inline, no other
/// origin, and never framed itself.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                        connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                        form-action 'none'";
/// A rendered invoice or template preview in the page's `<iframe>`: sandboxed (no script,
/// its own opaque origin), its inline styles and data images only, framed by the console.
const PREVIEW_CSP: &str = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                           frame-ancestors 'self'";
/// The largest request body taken (a command's JSON is a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;
/// How long the admin API may take to answer.
const API_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an invoice preview's address works.
const INVOICE_TTL: Duration = Duration::from_secs(15 * 60);
/// Invoice preview addresses kept at most (the oldest go first).
const MAX_INVOICES: usize = 256;

/// A funnel answer is read again at most this often, and no more often than
/// [`FUNNEL_COST_FACTOR`] times the time its last read took.
const FUNNEL_REFRESH: Duration = Duration::from_secs(3);
/// See [`FUNNEL_REFRESH`]: a funnel that takes 8 s to read (a million deliveries) is read
/// every 24 s, whatever the number of tabs that show it.
const FUNNEL_COST_FACTOR: u32 = 3;

/// A funnel's last answer, the time it was read, and how long that took.
#[derive(Clone)]
struct KeptFunnel {
    status: u16,
    body: Bytes,
    at: Instant,
    took: Duration,
}

/// The funnels read so far (by admin API path), and one lock per funnel, held while it is
/// read: a read is under way exactly when its lock is held, so a background read starts only
/// when none is, and a page waiting for a first read joins the one under way.
#[derive(Default)]
struct Funnels {
    kept: HashMap<String, KeptFunnel>,
    reading: HashMap<String, Arc<Mutex<()>>>,
}

/// The invoice an opaque preview address stands for.
struct Ticket {
    cycle: String,
    customer: String,
    until: Instant,
}

/// One console: the admin API client, what the page is told, the guard, and the invoice
/// preview addresses handed out.
pub(crate) struct Console {
    api: Api,
    session: Session,
    guard: Guard,
    invoices: Mutex<HashMap<String, Ticket>>,
    funnels: Mutex<Funnels>,
}

/// How an answer is framed.
#[derive(Clone, Copy)]
enum Kind {
    /// The page and the JSON it reads.
    Page,
    /// A preview inside the page's frame.
    Preview,
}

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>, kind: Kind) -> Response<Full<Bytes>> {
    let builder = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("cross-origin-resource-policy", "same-origin");
    let builder = match kind {
        Kind::Page => builder
            .header("content-security-policy", PAGE_CSP)
            .header("x-frame-options", "DENY"),
        Kind::Preview => builder
            .header("content-security-policy", PREVIEW_CSP)
            .header("x-frame-options", "SAMEORIGIN"),
    };
    builder
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn json_answer(status: u16, value: &Value) -> Response<Full<Bytes>> {
    respond(status, "application/json", value.to_string(), Kind::Page)
}

/// The admin API's error shape, for the console's own refusals.
fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_answer(status, &json!({"error": {"code": code, "message": message}}))
}

/// A failure to reach the admin API, as the page shows it.
fn unreachable(f: Failure) -> Response<Full<Bytes>> {
    let message = match f {
        Failure::Api { message, .. } | Failure::Exit { message, .. } | Failure::Other(message) => message,
    };
    error(
        502,
        "admin-api-unreachable",
        &format!(
            "the admin API did not answer ({message}); check the stack, your network and your AWS credentials, \
             then try again"
        ),
    )
}

fn timed_out() -> Response<Full<Bytes>> {
    error(
        504,
        "admin-api-timeout",
        "the admin API did not answer within 20 seconds; a command may still have been applied: try again, \
         its command id makes it apply once",
    )
}

/// `call`'s answer within [`API_TIMEOUT`], or the answer the page gets instead (502, 504).
async fn within_timeout(
    call: impl std::future::Future<Output = Result<Answer, Failure>>,
) -> Result<Answer, Response<Full<Bytes>>> {
    match tokio::time::timeout(API_TIMEOUT, call).await {
        Err(_) => Err(timed_out()),
        Ok(Err(f)) => Err(unreachable(f)),
        Ok(Ok(answer)) => Ok(answer),
    }
}

/// A query's value of `name`, when it is made only of `[A-Za-z0-9._-]` (all these routes
/// take) and at most 64 bytes.
fn plain_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

impl Console {
    pub(crate) fn new(api: Api, session: Session, guard: Guard) -> Console {
        Console {
            api,
            session,
            guard,
            invoices: Mutex::new(HashMap::new()),
            funnels: Mutex::new(Funnels::default()),
        }
    }

    pub(crate) async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().map(str::to_owned);
        if !self.guard.host_ok(req.headers()) {
            return error(
                421,
                "wrong-host",
                "open the console at the 127.0.0.1 address billingctl console printed",
            );
        }
        if path == "/login" {
            return self.login(query.as_deref());
        }
        if method == "GET"
            && let Some(asset) = assets::get(&path)
        {
            return respond(200, asset.content_type, Bytes::from_static(asset.body), Kind::Page);
        }
        let unsafe_method = !matches!(method.as_str(), "GET" | "HEAD");
        match self.guard.check(req.headers(), unsafe_method) {
            Ok(()) => {}
            Err(Refusal::WrongHost) => return error(421, "wrong-host", "this console answers on 127.0.0.1 only"),
            Err(Refusal::NoSession) => {
                return error(
                    401,
                    "console-session",
                    "this browser has no session of this console: open the address `billingctl console` printed \
                     (it ends in ?token=...)",
                );
            }
            Err(Refusal::CrossOrigin) => {
                return error(
                    403,
                    "cross-origin",
                    "commands are taken from the console's own page only",
                );
            }
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return error(413, "body-too-large", "the request's body is larger than 64 KiB"),
        };
        match (method.as_str(), path.as_str()) {
            ("GET", "/console/session") => self.session_info(),
            ("POST", "/console/invoice") => self.invoice_ticket(&body).await,
            ("GET", "/console/template-preview") => self.template_preview(query.as_deref()).await,
            ("GET", p) if p.starts_with("/invoice/") => self.invoice(&p["/invoice/".len()..]).await,
            ("GET", p) if p.starts_with("/api/cycles/") && p.ends_with("/funnel") && p.matches('/').count() == 4 => {
                self.funnel(&p[4..]).await
            }
            (m, p) if p.starts_with("/api/") => {
                let target = match &query {
                    Some(q) => format!("{}?{q}", &p[4..]),
                    None => p[4..].to_owned(),
                };
                let answer = self.forward(m, &target, body).await;
                // The page opens on a cycle: read its funnel meanwhile, for the Funnel page.
                if m == "GET" && answer.status() == 200 && p.starts_with("/api/cycles/") && p.matches('/').count() == 3
                {
                    self.prefetch_funnel(&format!("{}/funnel", &p[4..])).await;
                }
                answer
            }
            _ => error(404, "not-found", "the console has no such page"),
        }
    }

    /// `/login?token=`: the session cookie, then the page.
    fn login(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        let token = plain_param(query, "token").unwrap_or_default();
        if !self.guard.token_is(token) {
            return respond(
                403,
                "text/plain; charset=utf-8",
                "This is not this console's address: open the one `billingctl console` printed in your terminal.\n",
                Kind::Page,
            );
        }
        let mut answer = respond(303, "text/plain; charset=utf-8", "", Kind::Page);
        let headers = answer.headers_mut();
        if let (Ok(cookie), Ok(location)) = (self.guard.cookie().parse(), "/#month".parse()) {
            headers.insert("set-cookie", cookie);
            headers.insert("location", location);
        }
        answer
    }

    fn session_info(&self) -> Response<Full<Bytes>> {
        json_answer(
            200,
            &json!({
                "stack": self.session.stack,
                "region": self.session.region,
                "admin_url": self.api.url(),
                "cycle": self.session.cycle,
                "version": env!("CARGO_PKG_VERSION"),
            }),
        )
    }

    /// `GET /api/cycles/{cycle}/funnel`: the funnel read last, at once, and a new read in the
    /// background when that one is older than [`FUNNEL_REFRESH`] (or [`FUNNEL_COST_FACTOR`]
    /// times its read). A funnel reads every delivery of the month (a million deliveries are
    /// about 1,000 query pages), so the page's refreshes must not each cost one: whatever the
    /// number of tabs, one read at a time, and the answer's `generated_at` says how old it is.
    async fn funnel(self: &Arc<Self>, target: &str) -> Response<Full<Bytes>> {
        let kept = self.funnels.lock().await.kept.get(target).cloned();
        match kept {
            Some(kept) => {
                if kept.at.elapsed() >= FUNNEL_REFRESH.max(kept.took * FUNNEL_COST_FACTOR) {
                    self.read_funnel_behind(target).await;
                }
                respond(kept.status, "application/json", kept.body, Kind::Page)
            }
            None => {
                // A first read: wait for one under way (the read ahead), else read.
                let lock = self.funnel_lock(target).await;
                let _reading = lock.lock().await;
                let kept = self.funnels.lock().await.kept.get(target).cloned();
                match kept {
                    Some(kept) => respond(kept.status, "application/json", kept.body, Kind::Page),
                    None => self.fetch_funnel(target).await,
                }
            }
        }
    }

    /// The lock held while `target`'s funnel is read.
    async fn funnel_lock(&self, target: &str) -> Arc<Mutex<()>> {
        self.funnels
            .lock()
            .await
            .reading
            .entry(target.to_owned())
            .or_default()
            .clone()
    }

    /// Starts reading `target`'s funnel in the background unless it is kept or being read.
    async fn prefetch_funnel(self: &Arc<Self>, target: &str) {
        let kept = self.funnels.lock().await.kept.contains_key(target);
        if !kept {
            self.read_funnel_behind(target).await;
        }
    }

    /// Reads `target`'s funnel in the background unless a read of it is under way; its lock is
    /// taken before this returns (a page that asks for it meanwhile waits for this read).
    async fn read_funnel_behind(self: &Arc<Self>, target: &str) {
        let Ok(reading) = self.funnel_lock(target).await.try_lock_owned() else {
            return;
        };
        let me = self.clone();
        let target = target.to_owned();
        tokio::spawn(async move {
            me.fetch_funnel(&target).await;
            drop(reading);
        });
    }

    /// Reads a funnel from the admin API (its lock held) and keeps a success.
    async fn fetch_funnel(&self, target: &str) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let read = within_timeout(self.api.send("GET", target, Bytes::new())).await;
        let mut funnels = self.funnels.lock().await;
        match read {
            Err(answer) => answer,
            Ok(Answer { status, body, .. }) => {
                if status == 200 {
                    let kept = KeptFunnel {
                        status,
                        body: body.clone(),
                        at: Instant::now(),
                        took: started.elapsed(),
                    };
                    funnels.kept.insert(target.to_owned(), kept);
                }
                respond(status, "application/json", body, Kind::Page)
            }
        }
    }

    /// Sends `method target` to the admin API and gives its answer back as it came.
    async fn forward(&self, method: &str, target: &str, body: Bytes) -> Response<Full<Bytes>> {
        if !matches!(method, "GET" | "POST" | "PUT" | "DELETE") {
            return error(
                405,
                "method-not-allowed",
                "the admin API takes GET, POST, PUT and DELETE",
            );
        }
        match within_timeout(self.api.send(method, target, body)).await {
            Err(answer) => answer,
            Ok(answer) => {
                let content_type = answer.content_type.unwrap_or_else(|| "application/json".into());
                respond(answer.status, &content_type, answer.body, Kind::Page)
            }
        }
    }

    /// `GET` of an admin API path: its JSON, or the answer to give the page instead.
    async fn read(&self, target: &str) -> Result<Value, Response<Full<Bytes>>> {
        let answer = within_timeout(self.api.send("GET", target, Bytes::new())).await?;
        if answer.status != 200 {
            return Err(respond(answer.status, "application/json", answer.body, Kind::Page));
        }
        serde_json::from_slice(&answer.body)
            .map_err(|_| error(502, "admin-api-unreadable", "the admin API's answer is not JSON"))
    }

    /// `POST /console/invoice` `{"cycle", "customer"}`: an opaque address of that delivery's
    /// rendered invoice, for the page's frame.
    async fn invoice_ticket(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return error(400, "invalid-body", "the body must be JSON: {\"cycle\", \"customer\"}");
        };
        let Some(cycle) = value["cycle"].as_str().filter(|c| c.parse::<domain::Cycle>().is_ok()) else {
            return error(400, "invalid-cycle", "cycle must be YYYY-MM");
        };
        let Some(customer) = value["customer"]
            .as_str()
            .filter(|c| domain::CustomerId::new(*c).is_ok())
        else {
            return error(400, "invalid-customer", "customer must be a customer id");
        };
        let Ok(token) = super::guard::new_token() else {
            return error(500, "no-randomness", "the operating system gave no random bytes");
        };
        let now = Instant::now();
        let mut invoices = self.invoices.lock().await;
        invoices.retain(|_, t| t.until > now);
        if invoices.len() >= MAX_INVOICES
            && let Some(oldest) = invoices.iter().min_by_key(|(_, t)| t.until).map(|(k, _)| k.clone())
        {
            invoices.remove(&oldest);
        }
        invoices.insert(
            token.clone(),
            Ticket {
                cycle: cycle.to_owned(),
                customer: customer.to_owned(),
                until: now + INVOICE_TTL,
            },
        );
        json_answer(200, &json!({"url": format!("/invoice/{token}")}))
    }

    /// `GET /invoice/{token}`: the delivery's rendered email invoice, fetched through the
    /// admin API's short-lived link.
    async fn invoice(&self, token: &str) -> Response<Full<Bytes>> {
        let found = {
            let invoices = self.invoices.lock().await;
            invoices
                .get(token)
                .filter(|t| t.until > Instant::now())
                .map(|t| (t.cycle.clone(), t.customer.clone()))
        };
        let Some((cycle, customer)) = found else {
            return error(
                404,
                "preview-expired",
                "this preview's address has expired: open the customer again",
            );
        };
        let delivery = match self.read(&format!("/cycles/{cycle}/deliveries/{customer}")).await {
            Ok(v) => v,
            Err(answer) => return answer,
        };
        let Some(link) = delivery["invoice"]["link"].as_str() else {
            return error(404, "no-invoice", "this delivery has no rendered email invoice");
        };
        let range = delivery["invoice"]["range"].as_str();
        match within_timeout(self.api.get_unsigned(link, range)).await {
            Err(answer) => answer,
            // 206: its member of an invoice pack. The invoice is stored gzip-encoded: the
            // browser decodes it.
            Ok(a) if a.status == 200 || (a.status == 206 && range.is_some()) => {
                let mut page = respond(200, "text/html; charset=utf-8", a.body, Kind::Preview);
                if a.content_encoding.as_deref() == Some("gzip") {
                    page.headers_mut()
                        .insert("content-encoding", http::HeaderValue::from_static("gzip"));
                }
                page
            }
            Ok(a) => error(
                502,
                "invoice-unavailable",
                &format!(
                    "the invoice's link answered {}: open the customer again for a fresh link",
                    a.status
                ),
            ),
        }
    }

    /// `GET /console/template-preview?version=&sample=[&part=sms]`: a template version
    /// rendered for a sample bill, the email's HTML (or the text message).
    async fn template_preview(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        let Some(version) = plain_param(query, "version") else {
            return error(400, "invalid-version", "version must be a template version, e.g. v1");
        };
        let sample = plain_param(query, "sample").unwrap_or("family");
        let sms = plain_param(query, "part") == Some("sms");
        let preview = match self
            .read(&format!("/templates/{version}/preview?sample={sample}"))
            .await
        {
            Ok(v) => v,
            Err(answer) => return answer,
        };
        if sms {
            let text = preview["sms"].as_str().unwrap_or_default().to_owned();
            return respond(200, "text/plain; charset=utf-8", text, Kind::Preview);
        }
        let html = preview["html"].as_str().unwrap_or_default().to_owned();
        respond(200, "text/html; charset=utf-8", html, Kind::Preview)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_parameters_are_taken() {
        assert_eq!(plain_param(Some("version=v1&sample=family"), "sample"), Some("family"));
        assert_eq!(plain_param(Some("version=v1"), "sample"), None);
        assert_eq!(plain_param(Some("version=..%2F"), "version"), None);
        assert_eq!(plain_param(Some("version=a/b"), "version"), None);
        assert_eq!(plain_param(Some("version="), "version"), None);
        assert_eq!(plain_param(None, "version"), None);
        assert_eq!(plain_param(Some(&format!("token={}", "a".repeat(65))), "token"), None);
    }

    #[test]
    fn every_embedded_file_is_there_with_its_type() {
        for (path, kind) in [
            ("/", "text/html"),
            ("/app.js", "text/javascript"),
            ("/i18n.js", "text/javascript"),
            ("/chart.js", "text/javascript"),
            ("/style.css", "text/css"),
            ("/favicon.svg", "image/svg+xml"),
        ] {
            let asset = assets::get(path).unwrap();
            assert!(asset.content_type.starts_with(kind), "{path}");
            assert!(!asset.body.is_empty(), "{path} is empty");
        }
        assert!(assets::get("/secret").is_none());
        let page = String::from_utf8_lossy(assets::get("/").unwrap().body).to_string();
        assert!(
            !page.contains("<script>") && !page.contains(" style=\""),
            "nothing inline: the CSP forbids it"
        );
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no other origin"
        );
    }
}
