//! One run: [`handle`] (the Lambda entry: a schedule's event or the
//! continuation queue's records), [`dispatch`] (the slot, the settled cycles
//! of the horizon, the channel policy, the 24-hour quota plan, then every
//! bucket of them, a bounded number at a time, in rounds while quota is left
//! for partitions that wanted more) and its continuation when the deadline
//! nears.

use std::collections::BTreeMap;
use std::time::SystemTime;

use adapters::StoreError;
use adapters::cycles::CycleStatus;
use adapters::deadline::pause_point;
use adapters::deliveries::due_key;
use adapters::settings::CHANNEL_POLICY;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use domain::Cycle;
use domain::delivery::DUE_BUCKETS;
use domain::dispatch::{ChannelPolicy, SlotRun, dispatched_cycles};
use domain::text::{MAX_ID_BYTES, check_id};
use futures::{StreamExt, stream};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::bucket::{BucketEnd, dispatch_bucket};
use crate::event::{event_error, parse_event};
use crate::quota::{Budget, MAX_ROUNDS, plan, source_name};
use crate::{Deps, DispatchError, DispatchEvent, DispatchReport, Resume};

/// The slots of the 24-hour window a run's ledger read covers: its own and
/// the eleven before it (every enqueue of the last 24 hours).
const LEDGER_SLOTS: i64 = 12;

/// What every part of one run shares.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) deps: &'a Deps,
    pub(crate) run: SlotRun,
    pub(crate) run_id: &'a str,
    /// Names this invocation's writes: the run id and a random nonce.
    pub(crate) token: &'a str,
    pub(crate) policy: ChannelPolicy,
    /// Wall clock at the start, for the records' times.
    pub(crate) now: DateTime<Utc>,
    /// When to stop reading (the deadline less the margin).
    pub(crate) stop_at: Option<SystemTime>,
    /// The email this run may still enqueue under the 24-hour quota.
    pub(crate) budget: &'a Budget,
}

/// The token that names one invocation's writes: the run id and a random
/// nonce, because two invocations can share a run id (a retried or replayed
/// event, a continuation racing its run).
fn write_token(run_id: &str) -> String {
    use std::hash::BuildHasher;
    // Randomly keyed per process and thread, and a new key per call.
    let nonce = std::collections::hash_map::RandomState::new().hash_one((SystemTime::now(), std::process::id()));
    format!("{run_id}/{nonce:016x}")
}

fn status_name(s: CycleStatus) -> &'static str {
    match s {
        CycleStatus::Settling => "SETTLING",
        CycleStatus::Settled => "SETTLED",
        CycleStatus::Failed => "FAILED",
    }
}

/// The function's entry point: a schedule's event (a [`DispatchEvent`]) or
/// an SQS event of the continuation queue whose records carry one each.
/// Answers the report, or for SQS the reports in record order.
pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, DispatchError> {
    let (payload, ctx) = event.into_parts();
    let answer = |v: Result<Value, serde_json::Error>| v.map_err(|e| DispatchError::InvalidInput(e.to_string()));
    if payload.get("Records").is_some() {
        let sqs: SqsEvent = domain::decode::from_value(payload)
            .map_err(|e| DispatchError::InvalidInput(format!("an SQS event that does not parse: {e}")))?;
        let mut reports = Vec::with_capacity(sqs.records.len());
        for record in sqs.records {
            let id = record.message_id.unwrap_or_default();
            let event = parse_event(record.body.as_deref().unwrap_or_default())
                .map_err(|e| DispatchError::InvalidInput(format!("continuation message {id}: {e}")))?;
            reports.push(dispatch(deps, LambdaEvent::new(event, ctx.clone())).await?);
        }
        return answer(serde_json::to_value(reports));
    }
    let event: DispatchEvent =
        domain::decode::from_value(payload).map_err(|e| DispatchError::InvalidInput(event_error(&e)))?;
    answer(serde_json::to_value(
        dispatch(deps, LambdaEvent::new(event, ctx)).await?,
    ))
}

/// One dispatch run of the slot that contains `scheduled_time` (or its continuation): what
/// [`handle`] does for each event it is given.
#[tracing::instrument(skip_all, fields(scheduled_time = tracing::field::Empty, continuation = event.payload.continuation))]
pub async fn dispatch(deps: &Deps, event: LambdaEvent<DispatchEvent>) -> Result<DispatchReport, DispatchError> {
    let (input, ctx) = event.into_parts();
    let scheduled: DateTime<Utc> = DateTime::parse_from_rfc3339(input.scheduled_time.trim())
        .map_err(|_| DispatchError::InvalidInput("scheduled_time is not an RFC 3339 instant".into()))?
        .with_timezone(&Utc);
    // Recorded once it is known to be an instant (the text as given may be anything).
    tracing::Span::current().record(
        "scheduled_time",
        tracing::field::display(domain::delivery::utc_seconds::format(&scheduled)),
    );
    let stop_at = pause_point(ctx.deadline(), SystemTime::now(), deps.config.deadline_margin);
    let run = SlotRun::containing(scheduled);
    let run_id = input
        .run_id
        .clone()
        .unwrap_or_else(|| format!("dispatch-{}", domain::delivery::utc_seconds::format(&scheduled)));
    check_id("run_id", &run_id, MAX_ID_BYTES).map_err(|e| DispatchError::InvalidInput(e.to_string()))?;
    let token = write_token(&run_id);
    let mut report = DispatchReport {
        slot: run.to_string(),
        run_id: run_id.clone(),
        open: run.is_open(deps.config.quiet),
        complete: true,
        ..DispatchReport::default()
    };
    if !report.open {
        tracing::info!(slot = %report.slot, "the quiet window closes this slot; nothing to do");
        return Ok(report);
    }
    // Invoices of cycle C go out in the month after C, and an operator may
    // schedule or resend them long after: the whole horizon, oldest first.
    let mut horizon = dispatched_cycles(run.date);
    if horizon.is_empty() {
        return Err(DispatchError::InvalidInput(format!(
            "{} is outside the calendar",
            run.date
        )));
    }
    horizon.reverse();
    let records = deps.cycles.get_many(&horizon).await?;
    for cycle in &horizon {
        match records.get(cycle).map(|r| r.status) {
            Some(CycleStatus::Settled) => report.cycles.push(cycle.to_string()),
            Some(other) => report.unsettled.push(format!("{cycle} {}", status_name(other))),
            None => {}
        }
    }
    let (policy, source) = match &deps.settings {
        Some(settings) => match settings.parsed::<ChannelPolicy>(CHANNEL_POLICY).await? {
            Some(p) => (p, "setting"),
            None => (deps.config.policy, "config"),
        },
        None => (deps.config.policy, "config"),
    };
    report.policy = policy.to_string();
    report.policy_source = source.to_owned();
    let now = Utc::now();
    let resume = input.resume.clone().unwrap_or_default();
    let partitions: Vec<(Cycle, u32)> = report
        .cycles
        .iter()
        .filter_map(|c| c.parse::<Cycle>().ok())
        .flat_map(|c| (0..DUE_BUCKETS).map(move |b| (c, b)))
        .collect();
    // Only this run's own partitions count as done: an entry of `resume.done` that names none
    // of them is dropped, so it neither completes the run early nor travels on in the next
    // continuation message.
    let done: Vec<String> = partitions
        .iter()
        .map(|(c, b)| due_key(*c, *b))
        .filter(|key| resume.done.contains(key))
        .collect();
    let jobs: Vec<(Cycle, u32, Option<adapters::dynamo::Item>)> = partitions
        .into_iter()
        .filter(|(c, b)| !done.contains(&due_key(*c, *b)))
        .map(|(c, b)| {
            let cursor = resume.cursors.get(&due_key(c, b)).map(|k| {
                k.iter()
                    .map(|(name, v)| (name.clone(), AttributeValue::S(v.clone())))
                    .collect()
            });
            (c, b, cursor)
        })
        .collect();
    // The 24-hour quota plan, once a run (only when there is something to read).
    let mut reserved = 0;
    let budget = if jobs.is_empty() {
        Budget::new(None)
    } else {
        let quota = deps.quota.read().await.map_err(DispatchError::Quota)?;
        let enqueued_24h = match quota.and_then(|q| q.daily_limit()) {
            Some(_) => {
                let first = run.start() - chrono::Duration::hours(2 * (LEDGER_SLOTS - 1));
                deps.ledger.enqueued_between(first, run.start()).await?
            }
            None => 0,
        };
        let plan = plan(source_name(&deps.quota), quota, enqueued_24h);
        // Reserved before anything is enqueued: a crash before the run settles it leaves an
        // over-count, never an under-count.
        if let Some(b) = plan.budget.filter(|b| *b > 0) {
            deps.ledger.record(run.start(), &token, b, now).await?;
            reserved = b;
        }
        let budget = Budget::new(plan.budget);
        report.quota = Some(plan);
        budget
    };
    let ctx = Ctx {
        deps,
        run,
        run_id: &run_id,
        token: &token,
        policy,
        now,
        stop_at,
        budget: &budget,
    };
    budget.start_round(budget.share(jobs.len()));
    let parts = dispatch_partitions(ctx, jobs).await;
    let mut next = Resume {
        done,
        ..Resume::default()
    };
    let mut failed: Vec<(String, StoreError)> = Vec::new();
    // Per partition, the email its last pass left for lack of quota.
    let mut cut: BTreeMap<String, u64> = BTreeMap::new();
    let mut hungry: Vec<(Cycle, u32)> = Vec::new();
    for (cycle, bucket, p, end) in parts {
        let key = due_key(cycle, bucket);
        cut.insert(key.clone(), p.over_quota);
        report += p;
        match end {
            BucketEnd::Done => {
                if cut[&key] > 0 {
                    hungry.push((cycle, bucket));
                }
                next.done.push(key);
            }
            BucketEnd::Failed(e) => failed.push((key, e)),
            BucketEnd::Stopped(cursor) => {
                let cursor = cursor
                    .into_iter()
                    .filter_map(|(name, v)| v.as_s().ok().map(|v| (name, v.clone())))
                    .collect();
                next.cursors.insert(key, cursor);
            }
        }
    }
    // Quota the first round's shares left (partitions with little or nothing due) goes to the
    // partitions that wanted more: read again from their start, a share each, then the rest.
    for round in 2..=MAX_ROUNDS {
        let left = budget.left().unwrap_or(0);
        if hungry.is_empty() || left == 0 || !failed.is_empty() || stop_at.is_some_and(|t| SystemTime::now() >= t) {
            break;
        }
        budget.start_round(if round < MAX_ROUNDS {
            budget.share(hungry.len())
        } else {
            None
        });
        tracing::info!(round, partitions = hungry.len(), left, "quota left: another round");
        let jobs = hungry.drain(..).map(|(c, b)| (c, b, None)).collect();
        for (cycle, bucket, mut p, end) in dispatch_partitions(ctx, jobs).await {
            let key = due_key(cycle, bucket);
            // Seen in the first round already: count what this round did, not what it saw.
            p.paused = 0;
            p.not_this_slot = 0;
            p.suppressed = 0;
            let over = std::mem::take(&mut p.over_quota);
            cut.insert(key.clone(), over);
            // A round stopped at the deadline leaves the rest to the next slot.
            p.complete = true;
            report += p;
            match end {
                BucketEnd::Done if over > 0 => hungry.push((cycle, bucket)),
                BucketEnd::Failed(e) => failed.push((key, e)),
                _ => {}
            }
        }
    }
    report.over_quota = cut.values().sum();
    if report.over_quota > 0 {
        report.carried_to = Some(next_open_slot(run, deps.config.quiet).to_string());
    }
    // Settled to what the run enqueued (the reservation stays if this fails: an over-count).
    if reserved > 0
        && budget.used() != reserved
        && let Err(e) = deps.ledger.record(run.start(), &token, budget.used(), Utc::now()).await
    {
        tracing::warn!(error = %e, reserved, used = budget.used(), "the quota ledger keeps the reservation");
    }
    report.complete = next.done.len() == report.cycles.len() * DUE_BUCKETS as usize;
    if let Some((key, e)) = failed.into_iter().next() {
        // What the run took is enqueued; the rest stays due for its retry or the next run.
        tracing::error!(
            slot = %report.slot,
            partition = %key,
            email = report.enqueued_email,
            sms = report.enqueued_sms,
            unknown = report.unknown,
            error = %e,
            "a store call failed; the run fails and its retry or the next slot's run catches up"
        );
        return Err(DispatchError::Store(e));
    }
    if !report.complete {
        next.done.sort();
        report.continued = continue_run(deps, &input, &run_id, next).await?;
    }
    tracing::info!(
        slot = %report.slot,
        email = report.enqueued_email,
        sms = report.enqueued_sms,
        requeued = report.requeued,
        paused = report.paused,
        suppressed = report.suppressed,
        over_quota = report.over_quota,
        budget = ?report.quota.as_ref().and_then(|q| q.budget),
        used_24h = ?report.quota.as_ref().map(|q| q.used_24h),
        policy = %report.policy,
        not_this_slot = report.not_this_slot,
        corrupt = report.corrupt,
        no_allowed_slot = report.no_allowed_slot,
        cycles = report.cycles.len(),
        unsettled = ?report.unsettled,
        complete = report.complete,
        continued = report.continued,
        "slot dispatched"
    );
    Ok(report)
}

/// Every partition of `jobs` (from its cursor, if any), a bounded number at a time.
async fn dispatch_partitions(
    ctx: Ctx<'_>,
    jobs: Vec<(Cycle, u32, Option<adapters::dynamo::Item>)>,
) -> Vec<(Cycle, u32, DispatchReport, BucketEnd)> {
    stream::iter(jobs)
        .map(|(cycle, bucket, start)| async move {
            let (r, end) = dispatch_bucket(ctx, cycle, bucket, start).await;
            (cycle, bucket, r, end)
        })
        .buffer_unordered(ctx.deps.config.bucket_concurrency.max(1))
        .collect()
        .await
}

/// The first slot after `run` that the quiet window leaves open (bounded: a
/// day's slots; a window that closes them all leaves the next slot).
fn next_open_slot(run: SlotRun, quiet: domain::QuietWindow) -> SlotRun {
    let mut s = run.next();
    for _ in 0..domain::slots::SLOTS_PER_DAY {
        if s.is_open(quiet) {
            return s;
        }
        s = s.next();
    }
    run.next()
}

/// Puts the run's continuation on the continuation queue, if there is one
/// and the slot has continuations left.
async fn continue_run(deps: &Deps, input: &DispatchEvent, run_id: &str, resume: Resume) -> Result<bool, DispatchError> {
    let Some(queue) = &deps.continuation else {
        tracing::warn!("stopped at the deadline with no continuation queue; the next slot's run catches up");
        return Ok(false);
    };
    if input.continuation >= deps.config.max_continuations {
        tracing::warn!(
            continuations = input.continuation,
            "stopped at the deadline with no continuation left; the next slot's run catches up"
        );
        return Ok(false);
    }
    let next = DispatchEvent {
        scheduled_time: input.scheduled_time.clone(),
        run_id: Some(run_id.to_owned()),
        continuation: input.continuation + 1,
        resume: Some(resume),
    };
    let body = serde_json::to_string(&next).map_err(|e| DispatchError::InvalidInput(e.to_string()))?;
    let message_id = queue.send(&body).await.map_err(DispatchError::Continuation)?;
    tracing::info!(continuation = next.continuation, %message_id, "stopped at the deadline; continuation queued");
    Ok(true)
}
