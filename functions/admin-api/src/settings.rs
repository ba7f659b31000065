//! The operators' runtime settings: the channel policy and the active invoice template
//! version.
//!
//! | route | answer |
//! |---|---|
//! | `GET /settings` | every setting: the value in force, whether it is the operators' or the deployment's, its revision |
//! | `GET /settings/{name}` | one of them |
//! | `PUT /settings/{name}` | sets it (`value`), audited; `channel-policy` is read by the next dispatch run and by the senders within a minute, `template-version` by the next cycle's settlement |
//! | `POST /templates/{version}/activate` | `PUT /settings/template-version` for a version this build carries |
//!
//! A setting's write and its command record are one transaction, conditioned on the revision
//! read: two operators changing a setting at once cannot overwrite each other unseen (409).

use adapters::settings::{CHANNEL_POLICY, NAMES, Setting, TEMPLATE_VERSION};
use aws_sdk_dynamodb::types::TransactWriteItem;
use domain::dispatch::ChannelPolicy;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::command_log::{Given, changed_meanwhile, check_reason};
use crate::{ApiError, Deps, Response};

/// A setting's value as stored: a channel policy in its canonical form (`sms,email` and
/// `email,sms` are one request), a template version this build carries.
fn canonical(deps: &Deps, name: &str, value: &str) -> Result<String, ApiError> {
    match name {
        CHANNEL_POLICY => value.parse::<ChannelPolicy>().map(|p| p.to_string()).map_err(|e| {
            ApiError::bad(
                "invalid-value",
                format!("{e}; e.g. \"email,sms\", \"sms\" or \"none\" (pauses delivery)"),
            )
        }),
        TEMPLATE_VERSION => deps.templates.version(value).map(|_| value.to_owned()).map_err(|_| {
            let known: Vec<&str> = deps.templates.versions().collect();
            ApiError::not_found(
                "unknown-template-version",
                format!("no such template version; this build has {}", known.join(", ")),
            )
        }),
        _ => Err(unknown_setting()),
    }
}

fn unknown_setting() -> ApiError {
    ApiError::not_found(
        "unknown-setting",
        format!("no such setting; the settings are {}", NAMES.join(", ")),
    )
}

/// The deployment's value of a setting (the function's variables).
fn configured(deps: &Deps, name: &str) -> String {
    match name {
        CHANNEL_POLICY => deps.default_policy.to_string(),
        _ => deps.default_template.clone(),
    }
}

fn view(deps: &Deps, name: &str, stored: Option<&Setting>) -> Value {
    let configured = configured(deps, name);
    let (readers, takes_effect) = match name {
        CHANNEL_POLICY => (
            "DispatchSlot, SendEmail, SendSms",
            "the next dispatch run; the senders within a minute",
        ),
        _ => (
            "BeginCycle",
            "the next cycle's settlement (a settled cycle keeps its version)",
        ),
    };
    match stored {
        Some(s) => json!({
            "name": name,
            "value": s.value,
            "source": "setting",
            "configured": configured,
            "revision": s.revision,
            "updated_at": s.updated_at,
            "updated_by": s.updated_by,
            "command_id": s.command_id,
            "read_by": readers,
            "takes_effect": takes_effect,
        }),
        None => json!({
            "name": name,
            "value": configured,
            "source": "deployment",
            "configured": configured,
            "revision": 0,
            "read_by": readers,
            "takes_effect": takes_effect,
        }),
    }
}

pub(crate) async fn list_settings(deps: &Deps) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    for name in NAMES {
        let stored = deps.settings.get(name).await?;
        out.push(view(deps, name, stored.as_ref()));
    }
    Ok(Response::ok(json!({ "settings": out })))
}

pub(crate) async fn get_setting(deps: &Deps, name: &str) -> Result<Response, ApiError> {
    if !NAMES.contains(&name) {
        return Err(unknown_setting());
    }
    let stored = deps.settings.get(name).await?;
    Ok(Response::ok(view(deps, name, stored.as_ref())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingBody {
    /// Taken by [`crate::command_log::Requested::parse`]; declared so that `deny_unknown_fields` accepts it.
    #[allow(dead_code)]
    command_id: String,
    reason: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    /// Taken by [`crate::command_log::Requested::parse`]; declared so that `deny_unknown_fields` accepts it.
    #[allow(dead_code)]
    command_id: String,
    reason: String,
}

/// `PUT /settings/{name}`.
pub(crate) async fn put_setting(deps: &Deps, name: &str, given: &Given<'_>) -> Result<Response, ApiError> {
    if !NAMES.contains(&name) {
        return Err(unknown_setting());
    }
    let body: SettingBody = given.body()?;
    set(deps, name, body.value.trim(), &body.reason, given).await
}

/// `POST /templates/{version}/activate`.
pub(crate) async fn activate(deps: &Deps, version: &str, given: &Given<'_>) -> Result<Response, ApiError> {
    let body: ActivateBody = given.body()?;
    set(deps, TEMPLATE_VERSION, version, &body.reason, given).await
}

/// A setting's command.
async fn set(deps: &Deps, name: &str, value: &str, reason: &str, given: &Given<'_>) -> Result<Response, ApiError> {
    let command_id = given.id();
    check_reason(reason)?;
    let value = canonical(deps, name, value)?;
    let cmd = given.record("set-setting", format!("setting:{name}"), reason);
    let current = deps.settings.get(name).await?;
    let previous_value = current
        .as_ref()
        .map_or_else(|| configured(deps, name), |s| s.value.clone());
    let revision = current.as_ref().map_or(0, |s| s.revision);
    let put = deps
        .settings
        .put(name, &value, revision, command_id, &given.caller.arn, given.now)?;
    let mut result = json!({
        "command_id": command_id,
        "command": "set-setting",
        "setting": name,
        "value": value,
        "previous": previous_value,
        "revision": revision + 1,
        "replayed": false,
    });
    if name == CHANNEL_POLICY && value == "none" {
        result["note"] = json!("delivery is paused: due deliveries stay READY until a channel is enabled again");
    }
    let effect = TransactWriteItem::builder().put(put).build();
    let refused = || changed_meanwhile(&format!("setting {name}"));
    let applied = deps.commands.apply(&cmd, effect, result, refused).await?;
    Ok(applied.answer(|| {
        tracing::info!(command_id, setting = name, value = %value, who = %given.caller.masked(), "setting changed");
    }))
}
