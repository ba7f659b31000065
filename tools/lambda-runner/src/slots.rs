//! `lambda-runner slots`: the dispatch schedule played on the virtual clock.
//!
//! For every two-hour slot start (Asia/Seoul) from `--from` to `--to` (whole days), the clock
//! is set to the slot's start and the stack's dispatch function is invoked with the input its
//! EventBridge Scheduler schedule sends (the template's `ScheduleV2` `Input`, with
//! `<aws.scheduler.scheduled-time>` replaced by the slot's start in UTC); then the queues of
//! the stack's SQS event source mappings are given time to drain (the `serve` runner polls
//! them) before the next slot, at most `--drain-limit`.
//!
//! The schedule invokes asynchronously; here the invocation is synchronous (`Invoke` through
//! the emulator, as Step Functions and `aws lambda invoke` do) so that each slot's report can
//! be read, and a function error is retried twice as Lambda retries a failed asynchronous
//! invocation.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use serde_json::Value;

use crate::clock::Clock;
use crate::discover;

/// The stack's dispatch function (template.yaml's logical id).
pub const DISPATCH_LOGICAL_ID: &str = "DispatchSlotFunction";
/// The placeholder EventBridge Scheduler fills with the scheduled time.
pub const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";
/// How often Lambda retries a failed asynchronous invocation (the function's
/// `EventInvokeConfig.MaximumRetryAttempts` in template.yaml).
pub const RETRIES: u32 = 2;

#[derive(Clone, Debug)]
pub struct SlotsOptions {
    pub stack: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub clock_file: std::path::PathBuf,
    pub drain_limit: Duration,
}

/// Asia/Seoul: UTC+9 all year (Korea keeps no daylight saving time).
const SEOUL: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(o) => o,
    None => panic!("UTC+9 is a valid offset"),
};

/// The slot starts from the first day's 00:00 to the last day's 22:00, Asia/Seoul.
pub fn slot_starts(from: NaiveDate, to: NaiveDate) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut day = from;
    // Bounded by the dates.
    while day <= to {
        for hour in (0..24).step_by(2) {
            if let Some(t) = day
                .and_hms_opt(hour, 0, 0)
                .and_then(|t| SEOUL.from_local_datetime(&t).single())
            {
                out.push(t.with_timezone(&Utc));
            }
        }
        match day.succ_opt() {
            Some(d) => day = d,
            None => break,
        }
    }
    out
}

/// The schedule's input for the slot starting at `t`.
pub fn input_for(template: &str, t: DateTime<Utc>) -> String {
    template.replace(SCHEDULED_TIME, &t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<u64> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .context("GetQueueAttributes")?;
    let attrs = out.attributes.unwrap_or_default();
    Ok(attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum())
}

/// Invokes `function` with `payload` through the emulator: the answer, or the function error.
async fn invoke(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    payload: &str,
) -> anyhow::Result<Result<Value, String>> {
    let out = lambda
        .invoke()
        .function_name(function)
        .payload(aws_sdk_lambda::primitives::Blob::new(payload.as_bytes().to_vec()))
        .send()
        .await
        .with_context(|| format!("Invoke {function}"))?;
    let body = out.payload.map(|b| b.into_inner()).unwrap_or_default();
    let text = String::from_utf8_lossy(&body).into_owned();
    if out.function_error.is_some() {
        return Ok(Err(text));
    }
    Ok(Ok(serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

fn count(v: &Value, field: &str) -> u64 {
    v.get(field).and_then(Value::as_u64).unwrap_or(0)
}

/// Plays the slots; prints a line per slot and a summary. Fails if a slot's dispatch still
/// fails after the retries.
pub async fn run(opts: SlotsOptions) -> anyhow::Result<()> {
    if opts.to < opts.from {
        bail!("--to is before --from");
    }
    let endpoint = discover::endpoint()?;
    let sdk = local_aws::sdk_config_for(&endpoint).await;
    let functions = discover::stack_functions(&sdk, &opts.stack).await?;
    let template = discover::stack_template(&sdk, &opts.stack).await?;
    let dispatch = functions
        .iter()
        .find(|(l, _)| l == DISPATCH_LOGICAL_ID)
        .map(|(_, p)| p.clone())
        .with_context(|| format!("stack {} has no {DISPATCH_LOGICAL_ID}", opts.stack))?;
    let input = discover::schedule_input(&template, DISPATCH_LOGICAL_ID).with_context(|| {
        format!(
            "the template of stack {} has no ScheduleV2 event with an Input on {DISPATCH_LOGICAL_ID}",
            opts.stack
        )
    })?;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut queues = Vec::new();
    for (_, name) in &functions {
        for m in discover::mappings(&lambda, name).await? {
            let url = crate::poller::queue_url(&sqs, &m.queue_arn).await?;
            if !queues.contains(&url) {
                queues.push(url);
            }
        }
    }
    let clock = Clock::open(&opts.clock_file)?;
    let slots = slot_starts(opts.from, opts.to);
    eprintln!(
        "slots: {} slots from {} to {} (Asia/Seoul) on the clock {}, dispatch {dispatch}, {} queues to drain",
        slots.len(),
        opts.from,
        opts.to,
        clock.path().display(),
        queues.len()
    );
    let started = Instant::now();
    let (mut open, mut email, mut sms, mut retried, mut undrained) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for t in &slots {
        clock.set(*t)?;
        let payload = input_for(&input, *t);
        let mut tries = 0;
        let report = loop {
            match invoke(&lambda, &dispatch, &payload).await? {
                Ok(r) => break r,
                Err(e) if tries < RETRIES => {
                    tries += 1;
                    retried += 1;
                    eprintln!("slots: {t}: dispatch failed ({e}); Lambda retries it");
                }
                Err(e) => bail!("the dispatch of the slot starting {t} failed {} times: {e}", tries + 1),
            }
        };
        let (e, s) = (count(&report, "enqueued_email"), count(&report, "enqueued_sms"));
        let is_open = report.get("open").and_then(Value::as_bool).unwrap_or(false);
        open += u64::from(is_open);
        email += e;
        sms += s;
        let drain = Instant::now();
        let mut left = 0;
        // Bounded by the drain limit.
        while drain.elapsed() < opts.drain_limit {
            left = 0;
            for q in &queues {
                left += depth(&sqs, q).await?;
            }
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if left > 0 {
            undrained += 1;
        }
        println!(
            "{}  {}  email {e:>6}  sms {s:>6}  {}",
            report.get("slot").and_then(Value::as_str).unwrap_or("?"),
            if is_open { "open  " } else { "closed" },
            if left == 0 {
                format!("drained in {:.1?}", drain.elapsed())
            } else {
                format!("{left} messages still queued after {:.0?}", opts.drain_limit)
            }
        );
    }
    println!(
        "slots: {} slots ({open} open), {email} email and {sms} SMS messages enqueued, {retried} dispatch \
         retries, {undrained} slots left messages queued; {:.1?}",
        slots.len(),
        started.elapsed()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_has_twelve_slots_a_day_starting_at_seoul_midnight() {
        let from = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let to = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        let slots = slot_starts(from, to);
        assert_eq!(slots.len(), 31 * 12);
        assert_eq!(slots[0].to_rfc3339(), "2026-11-30T15:00:00+00:00");
        assert_eq!(slots[slots.len() - 1].to_rfc3339(), "2026-12-31T13:00:00+00:00");
    }

    #[test]
    fn the_scheduled_time_is_filled_in_as_the_scheduler_does() {
        let t = DateTime::parse_from_rfc3339("2026-12-01T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            input_for(r#"{"scheduled_time": "<aws.scheduler.scheduled-time>"}"#, t),
            r#"{"scheduled_time": "2026-12-01T01:00:00Z"}"#
        );
    }
}
