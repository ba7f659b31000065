//! Requests and answers as the Function URL carries them, and the API's errors.
//!
//! Every answer is JSON. An error is `{"error": {"code", "message"}}` with a 4xx status for
//! what the caller can fix, and a 500 that names only the request id: the cause goes to the
//! log (ids and codes, never personal data), not to the caller.
//!
//! No answer repeats what the caller sent: a message names the field or the route pattern
//! and what was expected, never the value (which may be anyone's email or phone number), and
//! is bounded ([`MAX_MESSAGE_BYTES`]).

use std::collections::HashMap;

use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use aws_lambda_events::http::HeaderMap;
use aws_lambda_events::http::header::{CONTENT_TYPE, HeaderValue};
use base64::Engine;
use serde_json::{Value, json};

/// Who called: the IAM identity the Function URL authenticated (`AuthType: AWS_IAM`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's ARN (a role session or a user).
    pub arn: String,
}

/// One request, as the routes see it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    /// The path without a trailing slash, `/` for the root.
    pub path: String,
    pub query: HashMap<String, String>,
    pub body: Option<String>,
    pub caller: Option<Caller>,
    pub request_id: String,
}

impl Request {
    /// From the Function URL's event. A base64 body is decoded; a body that is not UTF-8
    /// stays `None` and the route answers 400.
    pub fn from_event(e: &LambdaFunctionUrlRequest) -> Self {
        let http = &e.request_context.http;
        let method = http.method.clone().unwrap_or_default().to_ascii_uppercase();
        let raw = e
            .raw_path
            .clone()
            .or_else(|| http.path.clone())
            .unwrap_or_else(|| "/".into());
        let trimmed = raw.trim_end_matches('/');
        let path = if trimmed.is_empty() {
            "/".to_owned()
        } else {
            trimmed.to_owned()
        };
        let body = e.body.as_ref().and_then(|b| {
            if e.is_base64_encoded {
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
            } else {
                Some(b.clone())
            }
        });
        let caller = e
            .request_context
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .and_then(|iam| iam.user_arn.clone().or_else(|| iam.caller_id.clone()))
            .filter(|arn| !arn.trim().is_empty())
            .map(|arn| Caller { arn });
        Request {
            method,
            path,
            query: e.query_string_parameters.clone(),
            body,
            caller,
            request_id: e.request_context.request_id.clone().unwrap_or_default(),
        }
    }

    /// The path's segments after the leading slash.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }
}

/// An answer: a status and a JSON document.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Response {
    pub fn ok(body: Value) -> Self {
        Response { status: 200, body }
    }

    pub fn into_event(self) -> LambdaFunctionUrlResponse {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("cache-control", HeaderValue::from_static("no-store"));
        // The event types are non-exhaustive: built by assignment.
        let mut out = LambdaFunctionUrlResponse::default();
        out.status_code = i64::from(self.status);
        out.headers = headers;
        out.body = Some(self.body.to_string());
        out
    }
}

/// Bytes an error message may take in an answer or a log line.
pub const MAX_MESSAGE_BYTES: usize = 512;

/// The methods the API's routes take; any other is "this method", never quoted.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

/// `method` if it is one of [`METHODS`], else `this method`: what answers and logs show.
pub fn shown_method(method: &str) -> &str {
    METHODS.iter().find(|m| **m == method).copied().unwrap_or("this method")
}

/// What went wrong, for the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be served as it is (400): malformed body, bad parameter.
    #[error("{code}: {message}")]
    BadRequest { code: &'static str, message: String },
    /// No IAM identity in the request (403): the Function URL must use AWS_IAM.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Nothing there (404): unknown route, cycle, customer or delivery.
    #[error("{code}: {message}")]
    NotFound { code: &'static str, message: String },
    /// The route exists, not with this method (405). The message names the method (when it
    /// is a standard one), never the path, which holds what the caller typed (and is not kept).
    #[error("{} is not allowed on this route (the routes are in docs/admin-api.md)", shown_method(.method))]
    MethodNotAllowed { method: String },
    /// The target is not in a state the command applies to, or the command id was used for
    /// another command (409).
    #[error("{code}: {message}")]
    Conflict { code: &'static str, message: String },
    /// Our fault (500). The message is logged, never returned.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::Internal(_) => 500,
        }
    }

    /// The answer for the caller; a 500 says only which request to look up in the logs.
    pub fn into_response(self, request_id: &str) -> Response {
        let status = self.status();
        let (code, message) = match self {
            ApiError::BadRequest { code, message } | ApiError::NotFound { code, message } => (code, message),
            ApiError::Conflict { code, message } => (code, message),
            ApiError::Forbidden(m) => ("forbidden", m),
            e @ ApiError::MethodNotAllowed { .. } => ("method-not-allowed", e.to_string()),
            ApiError::Internal(_) => (
                "internal",
                format!("the request failed on our side; request id {request_id}"),
            ),
        };
        let message = domain::text::bounded(&message, MAX_MESSAGE_BYTES);
        Response {
            status,
            body: json!({"error": {"code": code, "message": message}}),
        }
    }
}

impl From<adapters::StoreError> for ApiError {
    fn from(e: adapters::StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_method_names_neither_the_path_nor_an_unknown_method() {
        let email = "kim.minjun.1987@example-mail.co.kr";
        let path = format!("/cycles/2026-11/deliveries/{}", email.repeat(300));
        for method in ["POST".to_owned(), format!("X-{email}")] {
            let e = ApiError::MethodNotAllowed { method: method.clone() };
            let r = e.into_response("req-1");
            assert_eq!(r.status, 405);
            let m = r.body["error"]["message"].as_str().unwrap();
            assert!(
                !domain::text::echoes(m, email) && !domain::text::echoes(m, &path),
                "{m}"
            );
            assert!(
                m.starts_with(if method == "POST" {
                    "POST is not allowed"
                } else {
                    "this method"
                }),
                "{m}"
            );
        }
    }

    #[test]
    fn every_message_in_an_answer_is_bounded() {
        let r = ApiError::bad("x", "y".repeat(100_000)).into_response("req-1");
        assert!(r.body["error"]["message"].as_str().unwrap().len() <= MAX_MESSAGE_BYTES);
    }
}
