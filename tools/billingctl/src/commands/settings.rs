//! The runtime settings: the channel policy and the invoice template versions.

use serde_json::{Value, json};

use super::{command_body, set_head};
use crate::api::{Api, Failure};
use crate::cli::{PolicyAction, TemplateAction};
use crate::output::{Output, rows, table, text};

/// `settings`: `GET /settings`.
pub(crate) async fn settings(api: &Api, out: Output) -> Result<(), Failure> {
    let v = api.call("GET", "/settings", None).await?;
    let settings = v["settings"].as_array().cloned().unwrap_or_default();
    out.print(&v, show_settings(&settings));
    Ok(())
}

/// `policy`: shown (`GET`) or set (`PUT /settings/channel-policy`).
pub(crate) async fn policy(api: &Api, out: Output, action: PolicyAction) -> Result<(), Failure> {
    match action {
        PolicyAction::Get => {
            let v = api.call("GET", "/settings/channel-policy", None).await?;
            out.print(&v, show_settings(std::slice::from_ref(&v)));
        }
        PolicyAction::Set {
            value,
            reason,
            command_id,
        } => {
            let mut body = command_body(command_id, reason);
            body["value"] = json!(value);
            let v = api.call("PUT", "/settings/channel-policy", Some(body)).await?;
            out.print(&v, show_setting_applied(&v));
        }
    }
    Ok(())
}

/// `templates`: listed, previewed for a sample bill, or activated.
pub(crate) async fn templates(api: &Api, out: Output, action: TemplateAction) -> Result<(), Failure> {
    match action {
        TemplateAction::List => {
            let v = api.call("GET", "/templates", None).await?;
            let rows: Vec<Vec<String>> = v["versions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    let name = text(&t["version"]);
                    let mut marks = Vec::new();
                    if name == text(&v["active"]) {
                        marks.push(format!("active ({})", text(&v["active_source"])));
                    }
                    if name == text(&v["default"]) {
                        marks.push("deployment default".to_owned());
                    }
                    vec![name, text(&t["meta"]["brand"]), marks.join(", ")]
                })
                .collect();
            out.print(&v, table(&["VERSION", "BRAND", ""], &rows));
        }
        TemplateAction::Preview { version, sample, html } => {
            let v = api
                .call("GET", &format!("/templates/{version}/preview?sample={sample}"), None)
                .await?;
            let mut human = format!(
                "{version} for the sample {sample:?}\nsubject: {}\n\ntext message:\n{}",
                text(&v["subject"]),
                text(&v["sms"])
            );
            if let Some(path) = html {
                std::fs::write(&path, v["html"].as_str().unwrap_or_default())
                    .map_err(|e| Failure::Other(format!("writing {}: {e}", path.display())))?;
                human.push_str(&format!("\n\nHTML email written to {}", path.display()));
            }
            out.print(&v, human);
        }
        TemplateAction::Activate {
            version,
            reason,
            command_id,
        } => {
            let body = command_body(command_id, reason);
            let v = api
                .call("POST", &format!("/templates/{version}/activate"), Some(body))
                .await?;
            out.print(&v, show_setting_applied(&v));
        }
    }
    Ok(())
}

fn show_settings(settings: &[Value]) -> String {
    let keys = [
        "name",
        "value",
        "source",
        "revision",
        "updated_at",
        "updated_by",
        "takes_effect",
    ];
    table(
        &["SETTING", "VALUE", "SOURCE", "REV", "UPDATED", "BY", "TAKES EFFECT"],
        &rows(settings, &keys),
    )
}

fn show_setting_applied(v: &Value) -> String {
    let head = set_head(v);
    let mut out = format!(
        "{head}
{} = {} (was {}), revision {}",
        text(&v["setting"]),
        text(&v["value"]),
        text(&v["previous"]),
        text(&v["revision"])
    );
    if let Some(note) = v["note"].as_str() {
        out.push_str(&format!(
            "
note: {note}"
        ));
    }
    out
}
