//! The dead-letter queues: what waits on each (`GET /queues`, `GET /queues/{queue}`) and
//! their redrive (`POST /queues/{queue}/redrive`), which moves a queue's messages back at a
//! bounded rate (`max_per_second`, 10 unless given, at most 500).
//!
//! A redrive is an SQS message move task, not a DynamoDB write, so its record is written
//! first ("starting"), then the task started, then the record completed with the task's
//! handle or SQS's refusal; a replay returns that answer and starts nothing.

use chrono::DateTime;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::command_log::{Given, check_reason, replayed};
use crate::{ApiError, Deps, Response};

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

fn queue_of<'a>(deps: &'a Deps, name: &str) -> Result<&'a DeadLetterQueue, ApiError> {
    deps.queues.iter().find(|q| q.name == name).ok_or_else(|| {
        let known: Vec<&str> = deps.queues.iter().map(|q| q.name).collect();
        ApiError::not_found(
            "unknown-queue",
            format!("no such queue; the dead-letter queues are {}", known.join(", ")),
        )
    })
}

/// A queue's messages: waiting, in flight and delayed (SQS's approximate counts).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub(crate) struct Depth {
    pub(crate) visible: u64,
    pub(crate) in_flight: u64,
    pub(crate) delayed: u64,
}

/// The depth of the queue at `url`, `name` naming it in an error.
pub(crate) async fn depth(deps: &Deps, name: &str, url: &str) -> Result<Depth, ApiError> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = deps
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| ApiError::Internal(format!("GetQueueAttributes on the {name} queue: {e}")))?;
    let n = |a: A| {
        out.attributes()
            .and_then(|m| m.get(&a))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Depth {
        visible: n(A::ApproximateNumberOfMessages),
        in_flight: n(A::ApproximateNumberOfMessagesNotVisible),
        delayed: n(A::ApproximateNumberOfMessagesDelayed),
    })
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
    let Depth {
        visible: waiting,
        in_flight,
        ..
    } = depth(deps, q.name, &q.url).await?;
    Ok(json!({
        "queue": q.name,
        "holds": q.about,
        "waiting": waiting,
        "in_flight": in_flight,
        "redrive_destination": q.destination.as_deref().unwrap_or("the queues the messages came from"),
        "redrives": tasks,
    }))
}

pub(crate) async fn list_queues(deps: &Deps) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    for q in &deps.queues {
        out.push(queue_view(deps, q).await?);
    }
    Ok(Response::ok(json!({ "queues": out })))
}

pub(crate) async fn get_queue(deps: &Deps, name: &str) -> Result<Response, ApiError> {
    Ok(Response::ok(queue_view(deps, queue_of(deps, name)?).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveBody {
    /// Taken by [`crate::command_log::Requested::parse`]; declared so that `deny_unknown_fields` accepts it.
    #[allow(dead_code)]
    command_id: String,
    reason: String,
    #[serde(default)]
    max_per_second: Option<u32>,
}

/// `POST /queues/{queue}/redrive`: a message move task at a bounded rate.
pub(crate) async fn redrive(deps: &Deps, name: &str, given: &Given<'_>) -> Result<Response, ApiError> {
    let q = queue_of(deps, name)?;
    let body: RedriveBody = given.body()?;
    check_reason(&body.reason)?;
    let rate = body.max_per_second.unwrap_or(DEFAULT_REDRIVE_RATE);
    if !(1..=MAX_REDRIVE_RATE).contains(&rate) {
        return Err(ApiError::bad(
            "invalid-rate",
            format!("max_per_second must be 1 to {MAX_REDRIVE_RATE}"),
        ));
    }
    let cmd = given.record("redrive", format!("queue:{name}"), &body.reason);
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
    let waiting = depth(deps, q.name, &q.url).await?.visible;
    if waiting == 0 {
        return Err(ApiError::conflict(
            "nothing-to-redrive",
            format!("{name} has no message waiting"),
        ));
    }
    let destination = q.destination.as_deref().unwrap_or("the queues the messages came from");
    let mut result = json!({
        "command_id": given.id(),
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
            deps.commands.finish(given.id(), &result).await?;
            tracing::info!(command_id = %given.id(), queue = name, rate, waiting, who = %given.caller.masked(), "redrive started");
            Ok(Response::ok(result))
        }
        Err(e) => {
            let code = e.as_service_error().and_then(|s| {
                use aws_sdk_sqs::error::ProvideErrorMetadata;
                s.code().map(str::to_owned)
            });
            tracing::warn!(command_id = %given.id(), queue = name, error = %e, "SQS refused the redrive");
            result["status"] = json!("refused");
            result["error"] = json!(code.unwrap_or_else(|| "unavailable".into()));
            deps.commands.finish(given.id(), &result).await?;
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
