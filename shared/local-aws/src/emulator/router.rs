//! The Lambda routes of the emulator's router (`shared/local-aws/emulator.py`) to handlers
//! in this process, and its counts of the AWS requests it answered. Its fault switches are
//! in `faults`.

use std::collections::BTreeMap;

use super::Emulator;
use crate::{Error, admin};

impl Emulator {
    /// Route the emulator's Lambda `Invoke` of `function_name` (as a Step Functions task
    /// makes it) to `url`, a loopback HTTP endpoint that answers like Lambda's Invoke API
    /// (normally a `local_aws::lambda::LambdaHost`, which calls this itself).
    /// Replaces an earlier route of the same name.
    ///
    /// Fails with [`Error::NoLambdaRouter`] when the emulator is a plain moto server
    /// rather than `shared/local-aws/emulator.py`.
    pub async fn register_lambda_route(&self, function_name: &str, url: &str) -> Result<(), Error> {
        let body = serde_json::json!({ "function_name": function_name, "url": url }).to_string();
        let path = "/_local/lambda/register";
        let (status, text) = admin::request(&self.endpoint, "POST", path, Some(&body)).await?;
        let answer: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        let registered = answer
            .as_ref()
            .and_then(|a| a.get("registered"))
            .and_then(|v| v.as_str());
        match (status, registered) {
            (200..300, Some(name)) if name == function_name => Ok(()),
            (400, _) if answer.is_some() => Err(Error::Admin {
                path: path.to_owned(),
                detail: text.chars().take(200).collect(),
            }),
            _ => Err(self.no_router(status, &text)),
        }
    }

    /// Remove the route of `function_name` (see [`register_lambda_route`](Self::register_lambda_route)).
    pub async fn unregister_lambda_route(&self, function_name: &str) -> Result<(), Error> {
        let body = serde_json::json!({ "function_name": function_name }).to_string();
        let (status, text) = admin::request(&self.endpoint, "POST", "/_local/lambda/unregister", Some(&body)).await?;
        if (200..300).contains(&status) && text.contains("unregistered") {
            Ok(())
        } else {
            Err(self.no_router(status, &text))
        }
    }

    /// The Lambda routes the emulator knows: function name → handler URL.
    pub async fn lambda_routes(&self) -> Result<BTreeMap<String, String>, Error> {
        let (status, text) = admin::request(&self.endpoint, "GET", "/_local/lambda", None).await?;
        #[derive(serde::Deserialize)]
        struct Routes {
            routes: BTreeMap<String, String>,
        }
        match serde_json::from_str::<Routes>(&text) {
            Ok(r) if (200..300).contains(&status) => Ok(r.routes),
            _ => Err(self.no_router(status, &text)),
        }
    }

    /// The AWS requests the emulator answered (since it started), by `service:Operation`
    /// (`dynamodb:PutItem`, `s3:PutObject`, `sqs:SendMessageBatch`, `lambda:Invoke`, …), for
    /// resources whose name contains `contains` — a stack's prefix counts one stack's
    /// requests. What AWS would be asked, for cost figures; moto's own internal calls (its
    /// Step Functions engine reading S3) are not requests and are not counted.
    pub async fn request_counts(&self, contains: &str) -> Result<BTreeMap<String, u64>, Error> {
        let path = format!("/_local/requests?contains={}", percent_encode(contains));
        let (status, text) = admin::request(&self.endpoint, "GET", &path, None).await?;
        #[derive(serde::Deserialize)]
        struct Counts {
            requests: BTreeMap<String, u64>,
        }
        match serde_json::from_str::<Counts>(&text) {
            Ok(c) if (200..300).contains(&status) => Ok(c.requests),
            _ => Err(self.no_router(status, &text)),
        }
    }
}

/// `s` as a query value: every byte but letters, digits and `-_.~` as `%XX`.
pub(super) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
