//! The admin API over HTTP: [`Api`] signs every request with SigV4 (service `lambda`) with
//! the credentials of the default AWS chain, and turns an answer that is not a success into
//! a [`Failure`], which names the exit code.

use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

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

pub(crate) struct Api {
    url: String,
    region: String,
    identity: Identity,
    client: Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>,
}

impl Api {
    /// A client of the admin API at `url`, signing with the credentials of `sdk` for
    /// `region`.
    pub(crate) async fn new(url: &str, region: &str, sdk: &SdkConfig) -> Result<Api, Failure> {
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| Failure::Other("no AWS credentials configured".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| Failure::Other(format!("AWS credentials: {e}")))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| Failure::Other(format!("TLS roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Api {
            url: url.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            identity: credentials.into(),
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let uri = format!("{}{path}", self.url);
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload.clone())))
            .map_err(|e| Failure::Other(format!("bad request {uri}: {e}")))?;
        let host = req.uri().authority().map(|a| a.to_string()).unwrap_or_default();
        req.headers_mut().insert(
            "host",
            host.parse().map_err(|_| Failure::Other(format!("bad host in {uri}")))?,
        );
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
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
            SignableBody::Bytes(payload.as_bytes()),
        )
        .map_err(|e| Failure::Other(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Failure::Other(format!("signing: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut req);

        let response = self
            .client
            .request(req)
            .await
            .map_err(|e| Failure::Other(format!("{method} {uri}: {e}")))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Other(format!("reading the answer: {e}")))?
            .to_bytes();
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
}
