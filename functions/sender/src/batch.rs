//! The entries: a batch of SQS messages in, the partial batch response out
//! (`ReportBatchItemFailures`), messages handled concurrently up to
//! [`Config::concurrency`](crate::Config::concurrency).

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::Utc;
use domain::delivery::DeliveryMessage;
use futures::{StreamExt, stream};
use lambda_runtime::LambdaEvent;

use crate::message::{Handled, handle_message, put_back};
use crate::{Deps, Outcome, SendReport, SenderError, emf_line};

/// The function's `main` for `channel` (the binaries `send-email` and `send-sms`): its
/// dependencies from the environment, [`handle`] on the Lambda runtime.
pub async fn serve(channel: domain::Channel) -> Result<(), lambda_runtime::Error> {
    runtime::run(async |sdk, env| Deps::load(channel, sdk, env).await, handle).await
}

/// The Lambda entry point: the batch response, and the invocation's metrics
/// as one EMF line on stdout.
pub async fn handle(deps: &Deps, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, SenderError> {
    let (response, report) = handle_batch(deps, event).await?;
    println!(
        "{}",
        emf_line(&deps.config.stack, deps.config.channel, &report, Utc::now())
    );
    Ok(response)
}

/// The deadline an invocation works to. Lambda always gives one in the
/// future; one already past when the invocation starts is a local runtime's
/// placeholder (`cargo lambda watch` sends 600 s after the epoch), and taking
/// it at its word would release every claim unsent. Then the function's own
/// timeout counts from now.
pub fn effective_deadline(given: SystemTime, now: SystemTime, timeout: Duration) -> SystemTime {
    if given > now { given } else { now + timeout }
}

/// Handles one batch: the messages to retry (`ReportBatchItemFailures`) and
/// what became of each. [`handle`] without the metrics line, for the local
/// pollers and the tests, which count the reports themselves.
pub async fn handle_batch(
    deps: &Deps,
    event: LambdaEvent<SqsEvent>,
) -> Result<(SqsBatchResponse, SendReport), SenderError> {
    let (payload, ctx) = event.into_parts();
    let deadline = effective_deadline(ctx.deadline(), SystemTime::now(), deps.config.function_timeout);
    let request_id = ctx.request_id.clone();
    let policy = match deps.channel_policy().await {
        Ok(p) => p,
        Err(e) => {
            // Our own trouble like any other: every message is put back as a fresh copy.
            tracing::error!(error = %e, "the channel policy cannot be read; the batch will be retried");
            let mut report = SendReport::default();
            let mut failed = Vec::new();
            for m in &payload.records {
                report.count(Outcome::Error);
                let copied = match m.body.as_deref().map(serde_json::from_str::<DeliveryMessage>) {
                    Some(Ok(message)) => put_back(deps, m, message).await,
                    _ => false,
                };
                if !copied {
                    failed.push(m.message_id.clone().unwrap_or_default());
                }
            }
            return Ok((runtime::batch_response(failed), report));
        }
    };
    let results: Vec<(Option<String>, Result<Handled, SenderError>)> = stream::iter(payload.records)
        .map(|m| {
            let request_id = request_id.clone();
            async move {
                let id = m.message_id.clone();
                (id, handle_message(deps, &m, &request_id, deadline, policy).await)
            }
        })
        .buffer_unordered(deps.config.concurrency.max(1))
        .collect()
        .await;
    let mut report = SendReport::default();
    let mut failed = Vec::new();
    for (id, result) in results {
        let (outcome, keep) = result?;
        report.count(outcome);
        if keep {
            failed.push(id.unwrap_or_default());
        }
    }
    tracing::info!(
        channel = %deps.config.channel,
        messages = report.messages,
        sent = report.sent,
        retried = report.retried,
        fallback = report.fallback,
        dead = report.dead,
        deferred = report.deferred,
        duplicates_suppressed = report.duplicates_suppressed,
        parked = report.parked,
        "batch handled"
    );
    Ok((runtime::batch_response(failed), report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_already_past_at_the_start_becomes_the_function_timeout_from_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let minute = Duration::from_secs(60);
        // What Lambda gives: kept.
        assert_eq!(effective_deadline(now + minute / 2, now, minute), now + minute / 2);
        // What `cargo lambda watch` gives (600 s after the epoch), or a deadline just gone.
        let placeholder = SystemTime::UNIX_EPOCH + Duration::from_secs(600);
        assert_eq!(effective_deadline(placeholder, now, minute), now + minute);
        assert_eq!(effective_deadline(now, now, minute), now + minute);
    }
}
