//! A small W3C WebDriver client for the console's browser test and benchmark: Debian's
//! `chromedriver` on a free loopback port, one headless Chromium session with a fresh
//! profile, and the few commands the test drives the page with. Every wait is bounded and
//! names what it waited for when it runs out.

use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// Where Debian's `chromium` and `chromium-driver` packages put the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// What the test says when the browser is not installed.
pub const INSTALL_HINT: &str = "run scripts/setup.sh (installs chromium and chromium-driver)";

/// The W3C key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long one WebDriver command may take (a navigation waits for the page's load).
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(100);

/// What went wrong talking to the browser, in words.
#[derive(Debug, Clone)]
pub struct WdError(pub String);

impl fmt::Display for WdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WdError {}

fn err(message: impl Into<String>) -> WdError {
    WdError(message.into())
}

pub type Result<T> = std::result::Result<T, WdError>;

/// An element of the current page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    id: String,
    /// The selector it was found by (for messages).
    pub css: String,
}

impl Element {
    /// The element as an argument of [`Browser::execute`] (`arguments[i]` is the element).
    pub fn arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

/// What [`Browser::wait_for`] reads of an element each time it looks.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Its rendered text (`innerText`).
    pub text: String,
    /// Its attributes, by name.
    pub attributes: serde_json::Map<String, Value>,
    /// Its `disabled` and `value` properties (null where it has none).
    pub disabled: bool,
    pub value: Value,
}

impl Seen {
    /// The attribute `name`, if it is there.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).and_then(Value::as_str)
    }
}

/// The options every session starts Chromium with: headless, and none of the background
/// connections the closed network would refuse (or wait on).
fn chromium_args(profile: &std::path::Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,800",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// A chromedriver process and one Chromium session. Dropping it ends both (the driver runs in
/// a process group of its own, with the browser it starts); [`Browser::quit`] ends the
/// session first, politely.
pub struct Browser {
    http: Client<HttpConnector, Full<Bytes>>,
    base: String,
    session: String,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session in a fresh profile.
    /// Fails with [`INSTALL_HINT`] when either program is missing.
    pub async fn start() -> Result<Browser> {
        for program in [CHROMIUM, CHROMEDRIVER] {
            if !std::path::Path::new(program).exists() {
                return Err(err(format!("{program} is missing: {INSTALL_HINT}")));
            }
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| err(format!("no free port: {e}")))?;
            l.local_addr().map_err(|e| err(e.to_string()))?.port()
        };
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| err(format!("cannot start {CHROMEDRIVER}: {e} ({INSTALL_HINT})")))?;
        let profile = tempfile::tempdir().map_err(|e| err(format!("no profile directory: {e}")))?;
        let mut browser = Browser {
            http: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            driver,
            _profile: profile,
        };
        // The driver answers /status once it listens (bounded).
        let started = Instant::now();
        loop {
            if let Ok(v) = browser.request("GET", "/status", None).await
                && v["ready"] == true
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err(err(format!("chromedriver did not answer on port {port} within 20 s")));
            }
            tokio::time::sleep(POLL).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": chromium_args(browser._profile.path())},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = browser.request("POST", "/session", Some(caps)).await?;
        browser.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| err(format!("a new session without a sessionId: {v}")))?
            .to_owned();
        Ok(browser)
    }

    /// One WebDriver command: its `value`, or the driver's error in words.
    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let uri = format!("{}{path}", self.base);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(&uri)
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| err(format!("{method} {path}: {e}")))?;
        let answer = tokio::time::timeout(COMMAND_LIMIT, async {
            let res = self
                .http
                .request(req)
                .await
                .map_err(|e| err(format!("{method} {path}: {e}")))?;
            let status = res.status();
            let bytes = res
                .into_body()
                .collect()
                .await
                .map_err(|e| err(format!("{method} {path}: {e}")))?
                .to_bytes();
            Ok::<_, WdError>((status, bytes))
        })
        .await
        .map_err(|_| err(format!("{method} {path}: no answer within {COMMAND_LIMIT:?}")))??;
        let (status, bytes) = answer;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            err(format!(
                "{method} {path}: HTTP {status}, not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            ))
        })?;
        if !status.is_success() {
            let e = &v["value"];
            return Err(err(format!(
                "{method} {path}: {} ({status}): {}",
                e["error"].as_str().unwrap_or("error"),
                e["message"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
            )));
        }
        Ok(v["value"].clone())
    }

    async fn session(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.request(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// Opens `url` and waits for its load event.
    pub async fn navigate(&self, url: &str) -> Result<()> {
        self.session("POST", "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    /// The address bar's URL.
    pub async fn url(&self) -> Result<String> {
        let v = self.session("GET", "/url", None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Reloads the page.
    pub async fn refresh(&self) -> Result<()> {
        self.session("POST", "/refresh", Some(json!({}))).await.map(drop)
    }

    /// The first element matching `css`, now.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let v = self
            .session("POST", "/element", Some(json!({"using": "css selector", "value": css})))
            .await
            .map_err(|e| err(format!("no element {css}: {e}")))?;
        element_of(&v, css)
    }

    /// Every element matching `css`, now.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let v = self
            .session(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        v.as_array()
            .ok_or_else(|| err(format!("elements {css}: not a list: {v}")))?
            .iter()
            .map(|e| element_of(e, css))
            .collect()
    }

    /// Waits (at most `limit`) for an element matching `css` whose state satisfies `ok`;
    /// `what` names the wait in the error, with what was last seen.
    pub async fn wait_for(
        &self,
        css: &str,
        what: &str,
        limit: Duration,
        ok: impl Fn(&Seen) -> bool,
    ) -> Result<Element> {
        const READ: &str = "const e = document.querySelector(arguments[0]); if (!e) return null;
            const attributes = {}; for (const a of e.attributes) attributes[a.name] = a.value;
            return {text: e.innerText === undefined ? e.textContent : e.innerText, attributes,
                    disabled: !!e.disabled, value: e.value === undefined ? null : e.value};";
        let started = Instant::now();
        let mut last;
        loop {
            match self.execute(READ, vec![json!(css)]).await {
                Ok(Value::Null) => last = "no such element".into(),
                Ok(v) => {
                    let seen = Seen {
                        text: v["text"].as_str().unwrap_or_default().to_owned(),
                        attributes: v["attributes"].as_object().cloned().unwrap_or_default(),
                        disabled: v["disabled"] == true,
                        value: v["value"].clone(),
                    };
                    if ok(&seen) {
                        return self.find(css).await;
                    }
                    last = format!(
                        "text {:?}, attributes {}",
                        clip(&seen.text),
                        Value::Object(seen.attributes)
                    );
                }
                // A navigation in progress: look again.
                Err(e) => last = e.0,
            }
            if started.elapsed() > limit {
                return Err(err(format!("waited {limit:?} for {what} ({css}); last seen: {last}")));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits (at most `limit`) until `script` (the body of a function, with `args`) returns
    /// something other than null, undefined or false; that value. `what` names the wait.
    pub async fn wait_js(&self, what: &str, limit: Duration, script: &str, args: Vec<Value>) -> Result<Value> {
        let started = Instant::now();
        let mut last;
        loop {
            match self.execute(script, args.clone()).await {
                Ok(Value::Null) | Ok(Value::Bool(false)) => last = "null or false".into(),
                Ok(v) => return Ok(v),
                Err(e) => last = e.0,
            }
            if started.elapsed() > limit {
                return Err(err(format!("waited {limit:?} for {what}; last: {last}")));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks `e`.
    pub async fn click(&self, e: &Element) -> Result<()> {
        self.session("POST", &format!("/element/{}/click", e.id), Some(json!({})))
            .await
            .map(drop)
            .map_err(|x| err(format!("click {}: {x}", e.css)))
    }

    /// Types `text` into `e`.
    pub async fn send_keys(&self, e: &Element, text: &str) -> Result<()> {
        self.session(
            "POST",
            &format!("/element/{}/value", e.id),
            Some(json!({ "text": text })),
        )
        .await
        .map(drop)
        .map_err(|x| err(format!("type into {}: {x}", e.css)))
    }

    /// Empties the input `e`.
    pub async fn clear(&self, e: &Element) -> Result<()> {
        self.session("POST", &format!("/element/{}/clear", e.id), Some(json!({})))
            .await
            .map(drop)
            .map_err(|x| err(format!("clear {}: {x}", e.css)))
    }

    /// `e`'s rendered text.
    pub async fn text(&self, e: &Element) -> Result<String> {
        let v = self.session("GET", &format!("/element/{}/text", e.id), None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// `e`'s attribute `name` (None when absent).
    pub async fn attribute(&self, e: &Element, name: &str) -> Result<Option<String>> {
        let v = self
            .session("GET", &format!("/element/{}/attribute/{name}", e.id), None)
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// `e`'s DOM property `name`.
    pub async fn property(&self, e: &Element, name: &str) -> Result<Value> {
        self.session("GET", &format!("/element/{}/property/{name}", e.id), None)
            .await
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page: its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.session("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
            .await
    }

    /// Runs `script` whose last argument is the callback it calls with its result (for
    /// promises: `fetch(...).then(done)`).
    pub async fn execute_async(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.session("POST", "/execute/async", Some(json!({"script": script, "args": args})))
            .await
    }

    /// Makes the page's viewport exactly `width` × `height` CSS pixels at scale 1 (the window
    /// too, for what reads the window's size).
    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<()> {
        self.session("POST", "/window/rect", Some(json!({"width": width, "height": height})))
            .await?;
        self.session(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}})),
        )
        .await
        .map(drop)
    }

    /// Runs `source` in every document this session loads from now on, before the page's own
    /// scripts (DevTools' `Page.addScriptToEvaluateOnNewDocument`; the page's
    /// Content-Security-Policy does not apply to it).
    pub async fn on_new_document(&self, source: &str) -> Result<()> {
        self.session(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": source}})),
        )
        .await
        .map(drop)
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.session("GET", "/screenshot", None).await?;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| err(format!("the screenshot is not base64: {e}")))
    }

    /// The browser console's messages since the last call (level and text).
    pub async fn console_log(&self) -> Result<Vec<String>> {
        let v = self
            .session("POST", "/se/log", Some(json!({"type": "browser"})))
            .await?;
        Ok(v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or_default(),
                            e["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Ends the session (Chromium closes) and the driver.
    pub async fn quit(mut self) {
        if !self.session.is_empty() {
            let _ = self
                .request("DELETE", &format!("/session/{}", self.session), None)
                .await;
        }
        self.session.clear();
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver and every browser process it started share its process group.
        if let Some(pid) = self.driver.id()
            && let Ok(pgid) = i32::try_from(pid)
        {
            // SAFETY: killpg has no memory effects; the group is the driver's own.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

fn element_of(v: &Value, css: &str) -> Result<Element> {
    v[ELEMENT_KEY]
        .as_str()
        .map(|id| Element {
            id: id.to_owned(),
            css: css.to_owned(),
        })
        .ok_or_else(|| err(format!("element {css}: no reference in {v}")))
}

fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
