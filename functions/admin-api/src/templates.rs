//! The invoice templates this build carries: `GET /templates` (the versions, the default
//! and the active one) and `GET /templates/{version}/preview` (a version rendered for a
//! fictional sample bill). Activating a version is a setting (see `settings.rs`).

use serde_json::{Value, json};

use crate::{ApiError, Deps, Request, Response};

pub(crate) async fn templates(deps: &Deps) -> Result<Response, ApiError> {
    let active = deps
        .settings
        .get(adapters::settings::TEMPLATE_VERSION)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let versions: Vec<Value> = deps
        .templates
        .versions()
        .filter_map(|v| deps.templates.version(v).ok())
        .map(|r| json!({"version": r.version(), "meta": r.meta()}))
        .collect();
    Ok(Response::ok(json!({
        "default": deps.default_template,
        "active": active.as_ref().map_or(deps.default_template.as_str(), |s| s.value.as_str()),
        "active_source": if active.is_some() { "setting" } else { "deployment" },
        "versions": versions,
        "samples": invoice::samples::SAMPLE_KEYS,
    })))
}

/// A version rendered for one of the fictional sample bills (never a customer's data).
pub(crate) fn preview(deps: &Deps, version: &str, req: &Request) -> Result<Response, ApiError> {
    let renderer = deps.templates.version(version).map_err(|_| {
        let known: Vec<&str> = deps.templates.versions().collect();
        ApiError::not_found(
            "unknown-template-version",
            format!("no such template version; this build has {}", known.join(", ")),
        )
    })?;
    let key = req.query.get("sample").map(String::as_str).unwrap_or("family");
    let sample = invoice::samples::by_key(key)
        .map_err(|e| ApiError::Internal(format!("sample {key}: {e}")))?
        .ok_or_else(|| {
            ApiError::bad(
                "invalid-sample",
                format!("sample must be one of {}", invoice::samples::SAMPLE_KEYS.join(", ")),
            )
        })?;
    let rendered = renderer
        .render_bill(&sample.bill, &sample.name, &sample.phone)
        .map_err(|e| ApiError::Internal(format!("rendering {version}/{key}: {e}")))?;
    Ok(Response::ok(json!({
        "version": version,
        "sample": key,
        "subject": rendered.subject,
        "html": rendered.html,
        "sms": invoice::sms_with_link(&rendered.sms, &invoice::samples::example_presigned_url())
            .map_err(|e| ApiError::Internal(format!("the text message of {version}/{key}: {e}")))?,
        "content_hash": rendered.content_hash,
    })))
}
