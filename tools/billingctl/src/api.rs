//! The admin API over HTTP: [`Api`] signs every request with SigV4 (service `lambda`) with
//! the credentials of the default AWS chain (fetched again before they expire), and turns an
//! answer that is not a success into a [`Failure`], which names the exit code; [`Api::send`]
//! gives the answer as it came (the console forwards it).

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::Mutex;

/// An answer that is not a success, or no answer; or an outcome with an exit code of its
/// own (a stack that does not exist, an upload with rejected lines).
pub(crate) enum Failure {
    Api { status: u16, code: String, message: String },
    Exit { code: u8, message: String },
    Other(String),
}

impl Failure {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::Api { status: 404, .. } => 3,
            Failure::Api { status: 409, .. } => 4,
            Failure::Api { status: 400 | 405, .. } => 5,
            Failure::Api { status: 401 | 403, .. } => 6,
            Failure::Exit { code, .. } => *code,
            _ => 1,
        }
    }
}

/// The HTTP client billingctl uses: HTTPS with the system's roots, or plain HTTP (a local
/// admin API).
type HttpClient = Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>;

/// How long before its expiry a credential is fetched again.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// An answer as it came: its status, content type and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    /// `Content-Encoding` (an invoice is stored gzip-encoded).
    pub(crate) content_encoding: Option<String>,
    pub(crate) body: Bytes,
}

pub(crate) struct Api {
    url: String,
    region: String,
    credentials: SharedCredentialsProvider,
    /// The identity last resolved and when it expires (`None`: it does not), reused until
    /// shortly before then: a console runs for hours on credentials that last one.
    identity: Mutex<Option<(Identity, Option<SystemTime>)>>,
    client: HttpClient,
}

impl Api {
    /// A client of the admin API at `url`, signing with the credentials of `sdk` for
    /// `region`. The credentials are resolved now, so a missing or expired one is said before
    /// anything else runs.
    pub(crate) async fn new(url: &str, region: &str, sdk: &SdkConfig) -> Result<Api, Failure> {
        let credentials = sdk
            .credentials_provider()
            .ok_or_else(|| Failure::Other("no AWS credentials configured".into()))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| Failure::Other(format!("TLS roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let api = Api {
            url: url.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            credentials,
            identity: Mutex::new(None),
            client: Client::builder(TokioExecutor::new()).build(https),
        };
        api.identity().await?;
        Ok(api)
    }

    /// The admin API's URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The signing identity: the one resolved before while it has more than
    /// [`REFRESH_BEFORE`] to live, else a fresh one from the credential chain.
    async fn identity(&self) -> Result<Identity, Failure> {
        let mut held = self.identity.lock().await;
        if let Some((identity, expiry)) = held.as_ref() {
            let fresh = expiry.is_none_or(|e| e > SystemTime::now() + REFRESH_BEFORE);
            if fresh {
                return Ok(identity.clone());
            }
        }
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| Failure::Other(format!("AWS credentials: {e}")))?;
        let expiry = credentials.expiry();
        let identity: Identity = credentials.into();
        *held = Some((identity.clone(), expiry));
        Ok(identity)
    }

    /// `method path` with a JSON `body`, signed; a success's JSON, or the failure.
    pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let answer = self.send(method, path, Bytes::from(payload)).await?;
        let status = answer.status;
        let bytes = answer.body;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            Failure::Other(format!(
                "{status}: the answer is not JSON: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })?;
        if (200..300).contains(&status) {
            return Ok(value);
        }
        Err(Failure::Api {
            status,
            code: value["error"]["code"].as_str().unwrap_or("?").to_owned(),
            message: value["error"]["message"].as_str().unwrap_or("").to_owned(),
        })
    }

    /// `method path` (the path with its query) with `payload` as a JSON body, signed with
    /// SigV4 (service `lambda`), and the answer as it came, whatever its status. `Other` when
    /// no answer came.
    pub(crate) async fn send(&self, method: &str, path: &str, payload: Bytes) -> Result<Answer, Failure> {
        let uri = format!("{}{path}", self.url);
        let mut req = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("content-type", "application/json")
            .body(Full::new(payload.clone()))
            .map_err(|e| Failure::Other(format!("bad request {method} {path}: {e}")))?;
        let host = req.uri().authority().map(|a| a.to_string()).unwrap_or_default();
        req.headers_mut().insert(
            "host",
            host.parse()
                .map_err(|_| Failure::Other(format!("bad host in {}", self.url)))?,
        );
        let identity = self.identity().await?;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("lambda")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Failure::Other(format!("signing: {e}")))?
            .into();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
            .collect();
        let signable = SignableRequest::new(
            method,
            uri.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&payload),
        )
        .map_err(|e| Failure::Other(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Failure::Other(format!("signing: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut req);
        self.exchange(req, &format!("{method} {}", self.url)).await
    }

    /// A plain `GET` of `url` (a presigned link carries its own signature), with the `Range`
    /// header the link was signed with, if any (an invoice in a pack).
    pub(crate) async fn get_unsigned(&self, url: &str, range: Option<&str>) -> Result<Answer, Failure> {
        let mut req = http::Request::builder().method("GET").uri(url);
        if let Some(range) = range {
            req = req.header("range", range);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|_| Failure::Other("the link is not a URL".into()))?;
        self.exchange(req, "GET of the link").await
    }

    async fn exchange(&self, req: http::Request<Full<Bytes>>, what: &str) -> Result<Answer, Failure> {
        let response = self
            .client
            .request(req)
            .await
            .map_err(|e| Failure::Other(format!("{what}: {e}")))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_encoding = response
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Other(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok(Answer {
            status,
            content_type,
            content_encoding,
            body,
        })
    }
}
