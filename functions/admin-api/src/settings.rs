//! The platform-wide commands: runtime settings (the channel policy, the active invoice
//! template version) and the redrive of the dead-letter queues.
//!
//! | route | answer |
//! |---|---|
//! | `GET /settings` | every setting: the value in force, whether it is the operators' or the deployment's, its revision |
//! | `GET /settings/{name}` | one of them |
//! | `PUT /settings/{name}` | sets it (`value`), audited; `channel-policy` is read by the next dispatch run and by the senders within a minute, `template-version` by the next cycle's settlement |
//! | `POST /templates/{version}/activate` | `PUT /settings/template-version` for a version this build carries |
//! | `GET /queues` | the dead-letter queues: messages waiting and in flight, the latest redrive |
//! | `POST /queues/{queue}/redrive` | moves a dead-letter queue's messages back at a bounded rate (`max_per_second`, 10 unless given, at most 500) |
//!
//! A setting's write and its command record are one transaction, conditioned on the revision
//! read: two operators changing a setting at once cannot overwrite each other unseen (409).
//! A redrive is an SQS message move task, not a DynamoDB write, so its record is written
//! first ("starting"), then the task started, then the record completed with the task's
//! handle or SQS's refusal; a replay returns that answer and starts nothing.

use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use domain::dispatch::ChannelPolicy;
use serde::Deserialize;
use serde_json::{Value, json};

use adapters::settings::{CHANNEL_POLICY, NAMES, Setting, TEMPLATE_VERSION};

use crate::commands::{Applied, NewCommand, Requested, check_reason};
use crate::{ApiError, Caller, Deps, Request, Response, replayed};

/// Messages a redrive moves per second unless the operator says otherwise, and the most
/// SQS allows.
pub const DEFAULT_REDRIVE_RATE: u32 = 10;
pub const MAX_REDRIVE_RATE: u32 = 500;

/// A dead-letter queue the operators can look at and redrive.
#[derive(Clone, Debug)]
pub struct DeadLetterQueue {
    /// As in routes: `delivery-dlq`, `dispatch-dlq`.
    pub name: &'static str,
    pub url: String,
    pub arn: String,
    /// Where a redrive moves its messages; `None`: back to the queue each came from.
    pub destination: Option<String>,
    /// What it holds and where a redrive sends it, for the operator.
    pub about: &'static str,
}

fn store_error(e: adapters::StoreError) -> ApiError {
    ApiError::Internal(e.to_string())
}

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
                format!("no template version {value:?}; this build has {}", known.join(", ")),
            )
        }),
        _ => Err(unknown_setting(name)),
    }
}

fn unknown_setting(name: &str) -> ApiError {
    ApiError::not_found(
        "unknown-setting",
        format!("no setting {name:?}; the settings are {}", NAMES.join(", ")),
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

pub async fn list_settings(deps: &Deps) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    for name in NAMES {
        let stored = deps.settings.get(name).await.map_err(store_error)?;
        out.push(view(deps, name, stored.as_ref()));
    }
    Ok(Response::ok(json!({ "settings": out })))
}

pub async fn get_setting(deps: &Deps, name: &str) -> Result<Response, ApiError> {
    if !NAMES.contains(&name) {
        return Err(unknown_setting(name));
    }
    let stored = deps.settings.get(name).await.map_err(store_error)?;
    Ok(Response::ok(view(deps, name, stored.as_ref())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingBody {
    #[allow(dead_code)]
    command_id: String,
    reason: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    #[allow(dead_code)]
    command_id: String,
    reason: String,
}

/// `PUT /settings/{name}`.
pub async fn put_setting(
    deps: &Deps,
    name: &str,
    req: &Request,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<Response, ApiError> {
    let requested = Requested::parse(req)?;
    if let Some(first) = deps.commands.replay_request(&requested).await? {
        return Ok(replayed(first));
    }
    if !NAMES.contains(&name) {
        return Err(unknown_setting(name));
    }
    let body: SettingBody = requested.body()?;
    set(deps, name, body.value.trim(), &requested, &body.reason, caller, now).await
}

/// `POST /templates/{version}/activate`.
pub async fn activate(
    deps: &Deps,
    version: &str,
    req: &Request,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<Response, ApiError> {
    let requested = Requested::parse(req)?;
    if let Some(first) = deps.commands.replay_request(&requested).await? {
        return Ok(replayed(first));
    }
    let body: ActivateBody = requested.body()?;
    set(deps, TEMPLATE_VERSION, version, &requested, &body.reason, caller, now).await
}

/// A setting's command, after its replay was looked up (see [`Requested`]).
async fn set(
    deps: &Deps,
    name: &str,
    value: &str,
    requested: &Requested,
    reason: &str,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<Response, ApiError> {
    let command_id = requested.command_id.as_str();
    check_reason(reason)?;
    let value = canonical(deps, name, value)?;
    let target = format!("setting:{name}");
    let cmd = NewCommand {
        id: command_id,
        name: "set-setting",
        target: target.clone(),
        who: &caller.arn,
        why: reason,
        request_digest: requested.digest.clone(),
        at: now,
    };
    let current = deps.settings.get(name).await.map_err(store_error)?;
    let previous_value = current
        .as_ref()
        .map_or_else(|| configured(deps, name), |s| s.value.clone());
    let revision = current.as_ref().map_or(0, |s| s.revision);
    let put = deps
        .settings
        .put(name, &value, revision, command_id, &caller.arn, now)
        .map_err(store_error)?;
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
    let applied = deps
        .commands
        .apply(&cmd, TransactWriteItem::builder().put(put).build(), result, || {
            ApiError::conflict(
                "changed-meanwhile",
                format!("setting {name} changed while the command was given; read it again"),
            )
        })
        .await?;
    Ok(match applied {
        Applied::Now(result) => {
            tracing::info!(command_id, setting = name, value = %value, who = %caller.arn, "setting changed");
            Response::ok(result)
        }
        Applied::Replayed(first) => replayed(first),
    })
}

fn queue_of<'a>(deps: &'a Deps, name: &str) -> Result<&'a DeadLetterQueue, ApiError> {
    deps.queues.iter().find(|q| q.name == name).ok_or_else(|| {
        let known: Vec<&str> = deps.queues.iter().map(|q| q.name).collect();
        ApiError::not_found(
            "unknown-queue",
            format!("no queue {name:?}; the dead-letter queues are {}", known.join(", ")),
        )
    })
}

/// Messages waiting and in flight on a queue.
async fn depth(deps: &Deps, q: &DeadLetterQueue) -> Result<(u64, u64), ApiError> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = deps
        .sqs
        .get_queue_attributes()
        .queue_url(&q.url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| ApiError::Internal(format!("GetQueueAttributes on {}: {e}", q.name)))?;
    let n = |a: A| {
        out.attributes()
            .and_then(|m| m.get(&a))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((
        n(A::ApproximateNumberOfMessages),
        n(A::ApproximateNumberOfMessagesNotVisible),
    ))
}

/// The latest move tasks of a queue, most recent first (SQS keeps those of the last 14 days).
async fn tasks(deps: &Deps, q: &DeadLetterQueue) -> Result<Vec<Value>, ApiError> {
    let out = deps
        .sqs
        .list_message_move_tasks()
        .source_arn(&q.arn)
        .max_results(10)
        .send()
        .await
        .map_err(|e| ApiError::Internal(format!("ListMessageMoveTasks on {}: {e}", q.name)))?;
    Ok(out
        .results()
        .iter()
        .map(|t| {
            json!({
                "status": t.status(),
                "task_handle": t.task_handle(),
                "destination": t.destination_arn().unwrap_or("the queues the messages came from"),
                "max_per_second": t.max_number_of_messages_per_second(),
                "moved": t.approximate_number_of_messages_moved(),
                "to_move": t.approximate_number_of_messages_to_move(),
                "failure_reason": t.failure_reason(),
                "started_at": DateTime::from_timestamp_millis(t.started_timestamp()).map(|t| t.to_rfc3339()),
            })
        })
        .collect())
}

async fn queue_view(deps: &Deps, q: &DeadLetterQueue) -> Result<Value, ApiError> {
    // The redrives first, then the depth: a redrive shown as ended has its effect in the
    // counts (the other way round, one that ended between the two reads would show as
    // COMPLETED next to the messages it has just moved).
    let tasks = tasks(deps, q).await?;
    let (waiting, in_flight) = depth(deps, q).await?;
    Ok(json!({
        "queue": q.name,
        "holds": q.about,
        "waiting": waiting,
        "in_flight": in_flight,
        "redrive_destination": q.destination.as_deref().unwrap_or("the queues the messages came from"),
        "redrives": tasks,
    }))
}

pub async fn list_queues(deps: &Deps) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    for q in &deps.queues {
        out.push(queue_view(deps, q).await?);
    }
    Ok(Response::ok(json!({ "queues": out })))
}

pub async fn get_queue(deps: &Deps, name: &str) -> Result<Response, ApiError> {
    Ok(Response::ok(queue_view(deps, queue_of(deps, name)?).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveBody {
    #[allow(dead_code)]
    command_id: String,
    reason: String,
    #[serde(default)]
    max_per_second: Option<u32>,
}

/// `POST /queues/{queue}/redrive`: a message move task at a bounded rate.
pub async fn redrive(
    deps: &Deps,
    name: &str,
    req: &Request,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<Response, ApiError> {
    let requested = Requested::parse(req)?;
    if let Some(first) = deps.commands.replay_request(&requested).await? {
        return Ok(replayed(first));
    }
    let q = queue_of(deps, name)?;
    let body: RedriveBody = requested.body()?;
    check_reason(&body.reason)?;
    let rate = body.max_per_second.unwrap_or(DEFAULT_REDRIVE_RATE);
    if !(1..=MAX_REDRIVE_RATE).contains(&rate) {
        return Err(ApiError::bad(
            "invalid-rate",
            format!("max_per_second must be 1 to {MAX_REDRIVE_RATE}"),
        ));
    }
    let target = format!("queue:{name}");
    let cmd = NewCommand {
        id: &requested.command_id,
        name: "redrive",
        target: target.clone(),
        who: &caller.arn,
        why: &body.reason,
        request_digest: requested.digest.clone(),
        at: now,
    };
    // Refusals that change nothing are answered before anything is recorded.
    if let Some(running) = tasks(deps, q).await?.into_iter().find(|t| t["status"] == "RUNNING") {
        return Err(ApiError::conflict(
            "redrive-running",
            format!(
                "a redrive of {name} is running ({} of {} moved); wait for it or cancel it in the SQS console",
                running["moved"], running["to_move"]
            ),
        ));
    }
    let (waiting, _) = depth(deps, q).await?;
    if waiting == 0 {
        return Err(ApiError::conflict(
            "nothing-to-redrive",
            format!("{name} has no message waiting"),
        ));
    }
    let destination = q.destination.as_deref().unwrap_or("the queues the messages came from");
    let mut result = json!({
        "command_id": requested.command_id,
        "command": "redrive",
        "queue": name,
        "destination": destination,
        "max_per_second": rate,
        "waiting": waiting,
        "status": "starting",
        "replayed": false,
    });
    if let Some(first) = deps.commands.reserve(&cmd, &result).await? {
        return Ok(replayed(first));
    }
    let started = deps
        .sqs
        .start_message_move_task()
        .source_arn(&q.arn)
        .set_destination_arn(q.destination.clone())
        .max_number_of_messages_per_second(rate as i32)
        .send()
        .await;
    match started {
        Ok(out) => {
            result["status"] = json!("started");
            result["task_handle"] = json!(out.task_handle());
            deps.commands.finish(&requested.command_id, &result).await?;
            tracing::info!(command_id = %requested.command_id, queue = name, rate, waiting, who = %caller.arn, "redrive started");
            Ok(Response::ok(result))
        }
        Err(e) => {
            let code = e.as_service_error().and_then(|s| {
                use aws_sdk_sqs::error::ProvideErrorMetadata;
                s.code().map(str::to_owned)
            });
            tracing::warn!(command_id = %requested.command_id, queue = name, error = %e, "SQS refused the redrive");
            result["status"] = json!("refused");
            result["error"] = json!(code.unwrap_or_else(|| "unavailable".into()));
            deps.commands.finish(&requested.command_id, &result).await?;
            Err(ApiError::conflict(
                "redrive-refused",
                format!(
                    "SQS refused the redrive of {name} ({}); the command is recorded as refused, give a new command id to try again",
                    result["error"].as_str().unwrap_or_default()
                ),
            ))
        }
    }
}
