//! `DispatchSlot`: run by EventBridge Scheduler at the start of every
//! two-hour slot (Asia/Seoul), it enqueues the deliveries whose time has come.
//!
//! * **The slot** is the one containing the event's `scheduled_time`. A slot
//!   the system quiet window touches enqueues nothing at all.
//! * **What is due**: deliveries of SETTLED cycles (the close gate: nothing of
//!   a cycle that failed reconciliation is ever sent) whose invoices go out
//!   this month or went out last month (catch-up across the month's end),
//!   found in the `Due` index with `available_at` at or before the slot's
//!   start: `READY` ones, and `QUEUED` ones no sender has claimed by their
//!   re-check time (a run that crashed between marking and sending). A
//!   missed run is caught up by the next: `available_at` only grows older.
//! * **Per delivery** ([`domain::dispatch::decide`]): not this slot if the
//!   customer's DND has it; on the preferred channel if the channel policy
//!   enables it, else the other enabled one; held with a reason if none is.
//! * **Exactly once**: `READY → QUEUED` is a conditional write per delivery,
//!   so of two concurrent runs one takes each delivery; only then is its
//!   message sent (`SendMessageBatch`, ten at a time, ids only). A message
//!   SQS still refuses after the retries puts its delivery back to `READY`:
//!   nothing stays `QUEUED` without a message, except after a crash between
//!   the two steps, which the re-check time repairs (the senders' claims make
//!   the second message harmless).
//! * **Bounded**: buckets are read `bucket_concurrency` at a time, writes
//!   `write_concurrency` at a time; near the deadline the run stops between
//!   pages and reports `complete: false` (what it left is still due for the
//!   next run, and nothing is enqueued twice).
//! * **Bad data**: an index entry that does not decode is counted and named
//!   by key in the log, and the rest proceed.

use std::time::{Duration, SystemTime};

use adapters::cycles::{CycleStatus, CycleStore};
use adapters::deadline::pause_point;
use adapters::deliveries::{DeliveryStore, DueEntry};
use adapters::queue::{DeliveryQueue, SEND_BATCH_LIMIT};
use adapters::{ConfigError, StoreError, Vars};
use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use domain::delivery::{DUE_BUCKETS, DeliveryMessage};
use domain::dispatch::{ChannelPolicy, Decision, SlotRun, decide};
use domain::{Channel, Cycle, QuietWindow};
use futures::{StreamExt, TryStreamExt, stream};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};

pub struct Config {
    pub quiet: QuietWindow,
    pub policy: ChannelPolicy,
    /// A `QUEUED` delivery no sender has claimed after this long is enqueued again.
    pub recheck_after: chrono::Duration,
    pub bucket_concurrency: usize,
    pub write_concurrency: usize,
    /// Index entries read per page.
    pub page_size: i32,
    pub deadline_margin: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quiet: QuietWindow::default_korea(),
            policy: ChannelPolicy::ALL,
            recheck_after: chrono::Duration::minutes(180),
            bucket_concurrency: 16,
            write_concurrency: 10,
            page_size: 200,
            deadline_margin: Duration::from_secs(20),
        }
    }
}

pub struct Deps {
    pub deliveries: DeliveryStore,
    pub cycles: CycleStore,
    pub email: DeliveryQueue,
    pub sms: DeliveryQueue,
    pub config: Config,
}

impl Deps {
    /// From the function's variables: `DELIVERIES_TABLE`, `CYCLES_TABLE`,
    /// `EMAIL_QUEUE_URL`, `SMS_QUEUE_URL`, optional `QUIET_WINDOW`
    /// (`21:00-08:00`), `CHANNEL_POLICY` (`email,sms`) and
    /// `RECHECK_AFTER_MINUTES` (180: longer than a backlog of a million
    /// messages takes to drain, so a busy queue is not mistaken for a lost
    /// message).
    pub fn from_vars(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let ddb = adapters::dynamodb_client(sdk);
        let sqs = adapters::sqs_client(sdk);
        let d = Config::default();
        let config = Config {
            quiet: vars.parsed("QUIET_WINDOW", d.quiet)?,
            policy: vars.parsed("CHANNEL_POLICY", d.policy)?,
            recheck_after: chrono::Duration::minutes(vars.parsed("RECHECK_AFTER_MINUTES", 180i64)?),
            ..d
        };
        Ok(Deps {
            deliveries: DeliveryStore::new(ddb.clone(), vars.required("DELIVERIES_TABLE")?),
            cycles: CycleStore::new(ddb, vars.required("CYCLES_TABLE")?),
            email: DeliveryQueue::new(sqs.clone(), vars.required("EMAIL_QUEUE_URL")?),
            sms: DeliveryQueue::new(sqs, vars.required("SMS_QUEUE_URL")?),
            config,
        })
    }

    fn queue(&self, channel: Channel) -> &DeliveryQueue {
        match channel {
            Channel::Email => &self.email,
            Channel::Sms => &self.sms,
        }
    }
}

/// What the schedule sends: `{"scheduled_time": "<aws.scheduler.scheduled-time>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchEvent {
    pub scheduled_time: String,
    /// Names the run in delivery records and messages; defaults to
    /// `dispatch-<scheduled_time>`.
    #[serde(default)]
    pub run_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchReport {
    /// `2026-12-15 10:00-12:00`.
    pub slot: String,
    pub run_id: String,
    /// False when the quiet window closes the slot: nothing was looked at.
    pub open: bool,
    pub cycles: Vec<String>,
    pub enqueued_email: u64,
    pub enqueued_sms: u64,
    /// Of the enqueued, those enqueued again after no sender took them.
    pub requeued: u64,
    pub held: u64,
    /// Due but the customer's DND has this slot.
    pub not_this_slot: u64,
    /// Taken by another run first.
    pub lost_races: u64,
    /// SQS refused the message after the retries: put back to READY.
    pub reverted: u64,
    /// Index entries that do not decode (named in the log).
    pub corrupt: u64,
    /// False when the run stopped at its deadline; the rest stays due.
    pub complete: bool,
}

impl std::ops::AddAssign for DispatchReport {
    fn add_assign(&mut self, o: Self) {
        self.enqueued_email += o.enqueued_email;
        self.enqueued_sms += o.enqueued_sms;
        self.requeued += o.requeued;
        self.held += o.held;
        self.not_this_slot += o.not_this_slot;
        self.lost_races += o.lost_races;
        self.reverted += o.reverted;
        self.corrupt += o.corrupt;
        self.complete &= o.complete;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("invalid event: {0}")]
    InvalidInput(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DispatchError> for Diagnostic {
    fn from(e: DispatchError) -> Self {
        let error_type = match &e {
            DispatchError::InvalidInput(_) => "InvalidInput",
            DispatchError::Store(s) if s.is_transient() => "Transient",
            DispatchError::Store(_) => "StoreError",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

#[tracing::instrument(skip_all, fields(scheduled_time = %event.payload.scheduled_time))]
pub async fn handle(deps: &Deps, event: LambdaEvent<DispatchEvent>) -> Result<DispatchReport, DispatchError> {
    let (input, ctx) = event.into_parts();
    let scheduled: DateTime<Utc> = DateTime::parse_from_rfc3339(input.scheduled_time.trim())
        .map_err(|e| {
            DispatchError::InvalidInput(format!(
                "scheduled_time {:?} is not an RFC 3339 instant: {e}",
                input.scheduled_time
            ))
        })?
        .with_timezone(&Utc);
    let stop_at = pause_point(ctx.deadline(), SystemTime::now(), deps.config.deadline_margin);
    let run = SlotRun::containing(scheduled);
    let run_id = input
        .run_id
        .unwrap_or_else(|| format!("dispatch-{}", domain::delivery::utc_seconds::format(&scheduled)));
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
    // Invoices of cycle C go out in the month after C: this month's and last month's.
    let this_month = Cycle::containing(run.date).map_err(|e| DispatchError::InvalidInput(e.to_string()))?;
    for cycle in [this_month.prev().prev(), this_month.prev()] {
        match deps.cycles.get(cycle).await? {
            Some(r) if r.status == CycleStatus::Settled => report.cycles.push(cycle.to_string()),
            _ => {}
        }
    }
    let now = Utc::now();
    let jobs: Vec<(Cycle, u32)> = report
        .cycles
        .iter()
        .filter_map(|c| c.parse::<Cycle>().ok())
        .flat_map(|c| (0..DUE_BUCKETS).map(move |b| (c, b)))
        .collect();
    let parts: Vec<DispatchReport> = stream::iter(jobs)
        .map(|(cycle, bucket)| dispatch_bucket(deps, run, &run_id, cycle, bucket, now, stop_at))
        .buffer_unordered(deps.config.bucket_concurrency.max(1))
        .try_collect()
        .await?;
    for p in parts {
        report += p;
    }
    tracing::info!(
        slot = %report.slot,
        email = report.enqueued_email,
        sms = report.enqueued_sms,
        requeued = report.requeued,
        held = report.held,
        not_this_slot = report.not_this_slot,
        corrupt = report.corrupt,
        complete = report.complete,
        "slot dispatched"
    );
    Ok(report)
}

/// Every due entry of one bucket, page by page.
async fn dispatch_bucket(
    deps: &Deps,
    run: SlotRun,
    run_id: &str,
    cycle: Cycle,
    bucket: u32,
    now: DateTime<Utc>,
    stop_at: Option<SystemTime>,
) -> Result<DispatchReport, DispatchError> {
    let c = &deps.config;
    let mut report = DispatchReport {
        complete: true,
        ..DispatchReport::default()
    };
    let mut start = None;
    loop {
        let page = deps
            .deliveries
            .due_page(cycle, bucket, run.start(), c.page_size, start)
            .await?;
        for bad in &page.bad {
            tracing::warn!(key = %bad.key, reason = %bad.reason, "due entry skipped: it does not decode");
        }
        report.corrupt += page.bad.len() as u64;
        let mut by_channel: [Vec<(DueEntry, Channel)>; 2] = [Vec::new(), Vec::new()];
        for e in page.entries {
            match decide(run, c.quiet, c.policy, e.dnd, e.preferred_channel, e.available_at) {
                Decision::Enqueue(ch) => by_channel[usize::from(ch == Channel::Sms)].push((e, ch)),
                Decision::NotThisSlot => report.not_this_slot += 1,
                Decision::NotYet => {}
                Decision::Hold(reason) => {
                    if deps.deliveries.hold(&e, reason, now).await? {
                        report.held += 1;
                    }
                }
            }
        }
        for group in by_channel {
            for chunk in group.chunks(SEND_BATCH_LIMIT) {
                report += enqueue(deps, run, run_id, chunk, now).await?;
            }
        }
        start = page.next;
        if start.is_none() {
            return Ok(report);
        }
        if stop_at.is_some_and(|t| SystemTime::now() >= t) {
            report.complete = false;
            return Ok(report);
        }
    }
}

/// Marks up to ten deliveries QUEUED (each conditionally), sends the
/// messages of those this run took, and puts back those SQS refused.
async fn enqueue(
    deps: &Deps,
    run: SlotRun,
    run_id: &str,
    chunk: &[(DueEntry, Channel)],
    now: DateTime<Utc>,
) -> Result<DispatchReport, DispatchError> {
    // Re-checked a while after the slot that enqueued it (the slot, not the
    // wall clock, so that a run replayed on a virtual clock behaves the same).
    let recheck = run.start() + deps.config.recheck_after;
    let marked: Vec<(bool, &DueEntry, Channel)> = stream::iter(chunk)
        .map(|(e, ch)| async move {
            let won = deps.deliveries.mark_queued(e, *ch, run_id, now, recheck).await?;
            Ok::<_, StoreError>((won, e, *ch))
        })
        .buffer_unordered(deps.config.write_concurrency.max(1))
        .try_collect()
        .await?;
    let mut report = DispatchReport {
        complete: true,
        ..DispatchReport::default()
    };
    let taken: Vec<(&DueEntry, Channel)> = marked
        .iter()
        .filter(|(won, _, _)| *won)
        .map(|(_, e, ch)| (*e, *ch))
        .collect();
    report.lost_races = (marked.len() - taken.len()) as u64;
    let Some(&(_, channel)) = taken.first() else {
        return Ok(report);
    };
    let messages: Vec<DeliveryMessage> = taken
        .iter()
        .map(|(e, ch)| DeliveryMessage {
            delivery_id: e.id(),
            channel: *ch,
            run_id: run_id.to_owned(),
        })
        .collect();
    let out = deps.queue(channel).send_batch(&messages).await?;
    for (id, why) in &out.failed {
        tracing::warn!(delivery_id = %id, reason = %why, "message refused after retries; delivery put back to READY");
        if let Some((e, _)) = taken.iter().find(|(e, _)| &e.id() == id) {
            let back_at = if e.state == domain::DeliveryState::Queued {
                now
            } else {
                e.available_at
            };
            if deps.deliveries.revert_queued(e, run_id, back_at, now).await? {
                report.reverted += 1;
            }
        }
    }
    let sent = out.sent as u64;
    match channel {
        Channel::Email => report.enqueued_email = sent,
        Channel::Sms => report.enqueued_sms = sent,
    }
    report.requeued = taken
        .iter()
        .filter(|(e, _)| e.state == domain::DeliveryState::Queued)
        .count() as u64;
    Ok(report)
}
