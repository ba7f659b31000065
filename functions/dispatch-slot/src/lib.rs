//! `DispatchSlot`: run by EventBridge Scheduler at the start of every
//! two-hour slot (Asia/Seoul), it enqueues the deliveries whose time has come.
//!
//! * **The slot** is the one containing the event's `scheduled_time`. A slot
//!   the system quiet window touches enqueues nothing at all.
//! * **Which cycles**: every cycle of the run's horizon
//!   ([`domain::dispatch::dispatched_cycles`]: the cycle whose invoices go
//!   out this month and those before it, [`DISPATCH_HORIZON_CYCLES`](domain::dispatch::DISPATCH_HORIZON_CYCLES) in
//!   all, so that an operator's `schedule` up to 400 days ahead, or a
//!   `resend` of an old month, is still enqueued) that is `SETTLED` — the
//!   close gate:
//!   nothing of a cycle that is still settling or failed reconciliation is
//!   ever sent. The cycle records are read with one consistent
//!   `BatchGetItem`; the report names the settled cycles it looked at
//!   (`cycles`) and the others it found (`unsettled`).
//! * **What is due**: in each of those cycles, the deliveries found in the
//!   `Due` index with `available_at` at or before the slot's start: `READY`
//!   ones, and `QUEUED` or `SENDING` ones whose re-check time has come (no
//!   sender claimed the message, a message was lost or dead-lettered for a
//!   cause that was not the delivery's own, a sender died; a `SENDING` one
//!   only once its sender's lease has ended). A missed run is caught up by
//!   the next: `available_at` only grows older.
//! * **Cost**: one `BatchGetItem` for the cycle records, then one `Query`
//!   per settled cycle and bucket ([`DUE_BUCKETS`]) — up to
//!   15 × 32 = 480 a run once fifteen months are settled, nearly all of them
//!   on empty partitions (one read unit each at most: under 0.18 million a
//!   month even if all twelve slots of a day were open — cents) — plus a
//!   page more per 200 due entries.
//! * **Per delivery** ([`domain::dispatch::decide`]): not this slot if the
//!   customer's DND has it; on the preferred channel if the channel policy
//!   enables it, else the other enabled one; left `READY` (paused) if none is.
//! * **No slot at all**: a customer whose DND covers every slot the quiet
//!   window leaves (the loader refuses such a customer against the quiet
//!   window of the day it loads; the window may change later) could never be
//!   sent to. Dispatch records a failure (stage `dispatch`, code
//!   `no-allowed-slot`, the slots and the window, never personal data) and
//!   then ends the delivery `DEAD`, out of the `Due` index; an operator
//!   resends it once the customer's DND or the window allows a slot. A
//!   `SENDING` one is enqueued instead: the sender that takes it over ends
//!   it with its own slot check.
//! * **The channel policy** is read once per run: the operators' runtime
//!   setting (`AdminTable`, see [`adapters::settings`]) when they have set
//!   one, else `CHANNEL_POLICY`. A setting that cannot be read fails the run
//!   (the next slot's run catches up) rather than guess.
//! * **Exactly once**: `READY → QUEUED` is a conditional write per delivery,
//!   so of two concurrent runs one takes each delivery; only then is its
//!   message sent (`SendMessageBatch`, ten at a time, ids only). Every write
//!   is named by a token unique to the invocation (the run id and a random
//!   nonce: a retried invocation keeps its run id), so a write whose answer
//!   was lost and which the SDK's retry found refused by its own condition
//!   still counts as this run's ([`adapters::deliveries::write`]); a write
//!   with no answer at all is settled by a consistent read, and if even that
//!   fails it is never counted as taken. A message SQS still refuses after
//!   the retries puts its delivery back to `READY` (only if nothing touched
//!   it since this run's write): nothing stays `QUEUED` without a message,
//!   except after a crash or a failed store between the two steps, which the
//!   re-check time repairs (the senders' claims make a second message
//!   harmless).
//! * **A store that fails** (a read, or a write whose outcome stays unknown)
//!   stops its bucket; the other buckets finish what they started, then the
//!   run fails: the scheduler's retry, or the next slot's run, catches up,
//!   and nothing the failed run did is done twice.
//! * **Bounded**: buckets are read `bucket_concurrency` at a time, writes
//!   `write_concurrency` at a time.
//! * **Continuation**: near its deadline the run stops between pages and
//!   reports `complete: false`; what it left is still due. It then puts the
//!   same event, with `continuation` counted up, on the continuation queue,
//!   which invokes this function again (at most `max_continuations` times a
//!   slot; past that, the next slot's run catches up). A continuation reads
//!   the index afresh: what the first run took is no longer `READY` there,
//!   and a continuation racing the run it continues (or any other run) loses
//!   the conditional write, so nothing is enqueued twice.
//! * **Bad data**: an index entry that does not decode is recorded in the
//!   failure log (stage `dispatch`, code `corrupt-entry`, the reason, never
//!   personal data) and parked: taken out of the `Due` index, the item left
//!   as it is for an operator. The rest proceed.

use std::time::{Duration, SystemTime};

use adapters::cycles::{CycleStatus, CycleStore};
use adapters::deadline::pause_point;
use adapters::deliveries::dispatch::NO_ALLOWED_SLOT;
use adapters::deliveries::write::Written;
use adapters::deliveries::{BadEntry, DeliveryStore, DueEntry, due_key};
use adapters::failures::{FailureLog, FailureStage, NewFailure};
use adapters::queue::{DeliveryQueue, JobQueue, SEND_BATCH_LIMIT};
use adapters::settings::{CHANNEL_POLICY, SettingsStore};
use adapters::{ConfigError, StoreError, Vars};
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use domain::delivery::{DUE_BUCKETS, DeliveryMessage, RECHECK_AFTER_MINUTES};
use domain::dispatch::{ChannelPolicy, Decision, SlotRun, decide, dispatched_cycles};
use domain::text::{MAX_ID_BYTES, check_len};
use domain::{Channel, Cycle, DeliveryState, QuietWindow};
use futures::{StreamExt, stream};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub struct Config {
    pub quiet: QuietWindow,
    pub policy: ChannelPolicy,
    /// A `QUEUED` delivery no sender has claimed this long after the slot
    /// that enqueued it is enqueued again.
    pub recheck_after: chrono::Duration,
    pub bucket_concurrency: usize,
    pub write_concurrency: usize,
    /// Index entries read per page.
    pub page_size: i32,
    /// Stop this long before the invocation's deadline: more than one AWS
    /// call may take ([`adapters::SDK_OPERATION_TIMEOUT`]), so that no call
    /// started before the pause outlives the invocation.
    pub deadline_margin: Duration,
    /// How many times one slot's run may continue itself.
    pub max_continuations: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quiet: QuietWindow::default_korea(),
            policy: ChannelPolicy::ALL,
            recheck_after: chrono::Duration::minutes(RECHECK_AFTER_MINUTES),
            bucket_concurrency: 16,
            write_concurrency: 10,
            page_size: 200,
            deadline_margin: adapters::SDK_OPERATION_TIMEOUT + Duration::from_secs(5),
            max_continuations: 6,
        }
    }
}

pub struct Deps {
    pub deliveries: DeliveryStore,
    pub cycles: CycleStore,
    pub email: DeliveryQueue,
    pub sms: DeliveryQueue,
    pub failures: FailureLog,
    /// Where a run that nears its deadline puts its continuation; without
    /// one, the next slot's run catches up.
    pub continuation: Option<JobQueue>,
    /// The operators' runtime settings (`ADMIN_TABLE`); without them the
    /// configured policy applies.
    pub settings: Option<SettingsStore>,
    pub config: Config,
}

impl Deps {
    /// From the function's variables: `DELIVERIES_TABLE`, `CYCLES_TABLE`,
    /// `FAILURES_TABLE`, `EMAIL_QUEUE_URL`, `SMS_QUEUE_URL`, optional
    /// `ADMIN_TABLE` (the runtime channel policy), `CONTINUATION_QUEUE_URL`, `MAX_CONTINUATIONS` (6), `QUIET_WINDOW`
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
            recheck_after: chrono::Duration::minutes(vars.parsed("RECHECK_AFTER_MINUTES", RECHECK_AFTER_MINUTES)?),
            max_continuations: vars.parsed("MAX_CONTINUATIONS", d.max_continuations)?,
            ..d
        };
        let continuation = vars
            .lookup("CONTINUATION_QUEUE_URL")
            .filter(|u| !u.trim().is_empty())
            .map(|u| JobQueue::new(sqs.clone(), u));
        let settings = vars
            .lookup("ADMIN_TABLE")
            .filter(|t| !t.trim().is_empty())
            .map(|t| SettingsStore::new(ddb.clone(), t));
        Ok(Deps {
            deliveries: DeliveryStore::new(ddb.clone(), vars.required("DELIVERIES_TABLE")?),
            cycles: CycleStore::new(ddb.clone(), vars.required("CYCLES_TABLE")?),
            settings,
            failures: FailureLog::new(ddb, vars.required("FAILURES_TABLE")?),
            email: DeliveryQueue::new(sqs.clone(), vars.required("EMAIL_QUEUE_URL")?),
            sms: DeliveryQueue::new(sqs, vars.required("SMS_QUEUE_URL")?),
            continuation,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// 0 for the scheduled run, n for its n-th continuation.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub continuation: u32,
    /// Where a continuation takes up its run's work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// How far a run got, by index partition (`{cycle}#{bucket:02}`): the
/// partitions it read to the end, and where it stopped in the others (the
/// `Due` index key to read on from, all string attributes). A partition in
/// neither was not started. Resuming after the cursor, a continuation never
/// re-reads what its run passed over (due, but not in this slot for the
/// customer), so every continuation makes progress; what the run put back
/// behind its cursor (a message SQS refused) goes with the next slot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    #[serde(default)]
    pub done: Vec<String>,
    #[serde(default)]
    pub cursors: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

/// What every part of one run shares.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    deps: &'a Deps,
    run: SlotRun,
    run_id: &'a str,
    /// Names this invocation's writes: the run id and a random nonce.
    token: &'a str,
    policy: ChannelPolicy,
    /// Wall clock at the start, for the records' times.
    now: DateTime<Utc>,
    /// When to stop reading (the deadline less the margin).
    stop_at: Option<SystemTime>,
}

/// How the run left one index partition.
enum BucketEnd {
    Done,
    /// Stopped at the deadline, before the page that starts at the cursor.
    Stopped(adapters::dynamo::Item),
    /// Stopped by a store call that failed (or whose outcome stayed
    /// unknown): the run fails once the other buckets are done.
    Failed(StoreError),
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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

impl DispatchEvent {
    pub fn at(scheduled: DateTime<Utc>) -> Self {
        DispatchEvent {
            scheduled_time: scheduled.to_rfc3339(),
            run_id: None,
            continuation: 0,
            resume: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchReport {
    /// `2026-12-15 10:00-12:00`.
    pub slot: String,
    pub run_id: String,
    /// False when the quiet window closes the slot: nothing was looked at.
    pub open: bool,
    /// The settled cycles of the run's horizon whose due deliveries it
    /// looked at, oldest first.
    pub cycles: Vec<String>,
    /// Cycles of the horizon that are not settled (`2026-08 FAILED`,
    /// `2026-09 SETTLING`): none of their deliveries is enqueued.
    #[serde(default)]
    pub unsettled: Vec<String>,
    pub enqueued_email: u64,
    pub enqueued_sms: u64,
    /// Of the enqueued, those enqueued again after no sender took them.
    pub requeued: u64,
    /// Due, but the channel policy enables no channel: left `READY`.
    pub paused: u64,
    /// The channel policy the run applied, and where it came from
    /// (`setting` or `config`).
    #[serde(default)]
    pub policy: String,
    #[serde(default)]
    pub policy_source: String,
    /// Due but the customer's DND has this slot.
    pub not_this_slot: u64,
    /// Taken by another run first.
    pub lost_races: u64,
    /// SQS refused the message after the retries: put back to READY.
    pub reverted: u64,
    /// Index entries that do not decode: recorded in the failure log and parked.
    pub corrupt: u64,
    /// Due, but the customer's DND covers every slot the quiet window
    /// leaves: recorded in the failure log (`no-allowed-slot`) and ended `DEAD`.
    #[serde(default)]
    pub no_allowed_slot: u64,
    /// Writes whose outcome stayed unknown (no answer, and the item did not
    /// show them applied): never counted as taken; the run fails.
    #[serde(default)]
    pub unknown: u64,
    /// False when the run stopped at its deadline; the rest stays due.
    pub complete: bool,
    /// The run put its continuation on the continuation queue.
    #[serde(default)]
    pub continued: bool,
}

impl std::ops::AddAssign for DispatchReport {
    fn add_assign(&mut self, o: Self) {
        self.enqueued_email += o.enqueued_email;
        self.enqueued_sms += o.enqueued_sms;
        self.requeued += o.requeued;
        self.paused += o.paused;
        self.not_this_slot += o.not_this_slot;
        self.lost_races += o.lost_races;
        self.reverted += o.reverted;
        self.corrupt += o.corrupt;
        self.no_allowed_slot += o.no_allowed_slot;
        self.unknown += o.unknown;
        self.complete &= o.complete;
        self.continued |= o.continued;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("invalid event: {0}")]
    InvalidInput(String),
    #[error("could not continue the run: {0}")]
    Continuation(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl runtime::ErrorType for DispatchError {
    fn error_type(&self) -> &'static str {
        match self {
            DispatchError::InvalidInput(_) => "InvalidInput",
            DispatchError::Continuation(_) => "Transient",
            DispatchError::Store(s) => runtime::store_error_type(s),
        }
    }
}

runtime::diagnostic_from!(DispatchError);

/// The function's entry point: a schedule's event (a [`DispatchEvent`]) or
/// an SQS event of the continuation queue whose records carry one each.
/// Answers the report, or for SQS the reports in record order.
pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, DispatchError> {
    let (payload, ctx) = event.into_parts();
    let answer = |v: Result<Value, serde_json::Error>| v.map_err(|e| DispatchError::InvalidInput(e.to_string()));
    if payload.get("Records").is_some() {
        let sqs: SqsEvent = serde_json::from_value(payload)
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
        serde_json::from_value(payload).map_err(|e| DispatchError::InvalidInput(event_error(&e)))?;
    answer(serde_json::to_value(
        dispatch(deps, LambdaEvent::new(event, ctx)).await?,
    ))
}

fn event_error(e: &serde_json::Error) -> String {
    format!(r#"expected {{"scheduled_time": "<RFC 3339 instant>"}} (optional "run_id", "continuation"): {e}"#)
}

/// A [`DispatchEvent`] from JSON text, with the error a person can act on.
pub fn parse_event(text: &str) -> Result<DispatchEvent, String> {
    serde_json::from_str(text).map_err(|e| event_error(&e))
}

/// One dispatch run of the slot that contains `scheduled_time` (or its continuation): what
/// [`handle`] does for each event it is given.
#[tracing::instrument(skip_all, fields(scheduled_time = %event.payload.scheduled_time, continuation = event.payload.continuation))]
pub async fn dispatch(deps: &Deps, event: LambdaEvent<DispatchEvent>) -> Result<DispatchReport, DispatchError> {
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
        .clone()
        .unwrap_or_else(|| format!("dispatch-{}", domain::delivery::utc_seconds::format(&scheduled)));
    check_len("run_id", &run_id, MAX_ID_BYTES).map_err(|e| DispatchError::InvalidInput(e.to_string()))?;
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
    let jobs: Vec<(Cycle, u32, Option<adapters::dynamo::Item>)> = report
        .cycles
        .iter()
        .filter_map(|c| c.parse::<Cycle>().ok())
        .flat_map(|c| (0..DUE_BUCKETS).map(move |b| (c, b)))
        .filter(|(c, b)| !resume.done.contains(&due_key(*c, *b)))
        .map(|(c, b)| {
            let cursor = resume.cursors.get(&due_key(c, b)).map(|k| {
                k.iter()
                    .map(|(name, v)| (name.clone(), AttributeValue::S(v.clone())))
                    .collect()
            });
            (c, b, cursor)
        })
        .collect();
    let ctx = Ctx {
        deps,
        run,
        run_id: &run_id,
        token: &token,
        policy,
        now,
        stop_at,
    };
    let parts: Vec<(String, DispatchReport, BucketEnd)> = stream::iter(jobs)
        .map(|(cycle, bucket, start)| async move {
            let (r, end) = dispatch_bucket(ctx, cycle, bucket, start).await;
            (due_key(cycle, bucket), r, end)
        })
        .buffer_unordered(deps.config.bucket_concurrency.max(1))
        .collect()
        .await;
    let mut next = Resume {
        done: resume.done.clone(),
        ..Resume::default()
    };
    let mut failed: Vec<(String, StoreError)> = Vec::new();
    for (key, p, end) in parts {
        report += p;
        match end {
            BucketEnd::Done => next.done.push(key),
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

/// Every due entry of one bucket, page by page.
async fn dispatch_bucket(
    ctx: Ctx<'_>,
    cycle: Cycle,
    bucket: u32,
    mut start: Option<adapters::dynamo::Item>,
) -> (DispatchReport, BucketEnd) {
    let Ctx { deps, run, stop_at, .. } = ctx;
    let c = &deps.config;
    let mut report = DispatchReport {
        complete: true,
        ..DispatchReport::default()
    };
    // At least one page a run (so that every continuation makes progress),
    // then page after page until the index ends or the deadline nears.
    loop {
        let page = match deps
            .deliveries
            .due_page(cycle, bucket, run.start(), c.page_size, start)
            .await
        {
            Ok(page) => page,
            Err(e) => return (report, BucketEnd::Failed(e)),
        };
        for bad in &page.bad {
            match park(ctx, cycle, bad).await {
                Ok(true) => report.corrupt += 1,
                Ok(false) => {}
                Err(e) => return (report, BucketEnd::Failed(e)),
            }
        }
        let mut by_channel: [Vec<(DueEntry, Channel)>; 2] = [Vec::new(), Vec::new()];
        let mut no_slot = Vec::new();
        for e in page.entries {
            let route = match decide(run, c.quiet, ctx.policy, e.dnd, e.preferred_channel, e.available_at) {
                Decision::Enqueue(ch) => Some(ch),
                // A sender's delivery whose lease ended: the sender that takes it over ends it.
                Decision::NoAllowedSlot if e.state == DeliveryState::Sending => {
                    let ch = ctx.policy.route(e.preferred_channel);
                    if ch.is_none() {
                        report.paused += 1;
                    }
                    ch
                }
                Decision::NoAllowedSlot => {
                    no_slot.push(e);
                    continue;
                }
                Decision::NotThisSlot => {
                    report.not_this_slot += 1;
                    None
                }
                Decision::NotYet => None,
                Decision::Paused => {
                    report.paused += 1;
                    None
                }
            };
            if let Some(ch) = route {
                by_channel[usize::from(ch == Channel::Sms)].push((e, ch));
            }
        }
        for e in &no_slot {
            match end_no_slot(ctx, e).await {
                Ok(true) => report.no_allowed_slot += 1,
                Ok(false) => report.lost_races += 1,
                Err(e) => {
                    report.unknown += 1;
                    return (report, BucketEnd::Failed(e));
                }
            }
        }
        for group in by_channel {
            for chunk in group.chunks(SEND_BATCH_LIMIT) {
                let (r, failed) = enqueue(ctx, chunk).await;
                report += r;
                if let Some(e) = failed {
                    return (report, BucketEnd::Failed(e));
                }
            }
        }
        let Some(next) = page.next else {
            return (report, BucketEnd::Done);
        };
        if stop_at.is_some_and(|t| SystemTime::now() >= t) {
            report.complete = false;
            return (report, BucketEnd::Stopped(next));
        }
        start = Some(next);
    }
}

/// Records an index entry that does not decode in the failure log and
/// takes it out of the index; true if this run parked it.
async fn park(ctx: Ctx<'_>, cycle: Cycle, bad: &BadEntry) -> Result<bool, StoreError> {
    let Ctx {
        deps,
        run_id,
        token,
        now,
        ..
    } = ctx;
    let subject = domain::text::bounded(&bad.key(), domain::text::MAX_ID_BYTES).into_owned();
    tracing::warn!(delivery_id = %subject, reason = %domain::text::reason(&bad.reason), "due entry does not decode: recorded and parked");
    let failure = NewFailure {
        cycle: Some(cycle),
        subject,
        stage: FailureStage::Dispatch,
        code: "corrupt-entry".into(),
        reason: domain::text::reason(&format!("the due index entry does not decode: {}", bad.reason)),
        channel: None,
        attempts: 0,
        run_id: Some(run_id.to_owned()),
        replay: None,
    };
    // Recorded first: a crash in between leaves it in the index, to be recorded again.
    deps.failures.record(&failure, now).await?;
    match deps.deliveries.park(bad, &bad.reason, token, now).await {
        Written::Applied(_) => Ok(true),
        Written::Refused(_) => Ok(false),
        Written::Unknown(e) => Err(e),
    }
}

/// Records the failure of a due delivery whose customer has no allowed
/// slot, then ends it `DEAD`; true if this run ended it, false if it had
/// moved on (another run ended or enqueued it, an operator held it).
async fn end_no_slot(ctx: Ctx<'_>, e: &DueEntry) -> Result<bool, StoreError> {
    let Ctx {
        deps,
        run_id,
        token,
        now,
        ..
    } = ctx;
    let quiet = deps.config.quiet;
    let allowed_by_dnd = e.dnd.complement();
    let reason = format!(
        "the customer's DND slots {} leave no slot outside the quiet window {quiet} (the slots it leaves: {}); \
         no run can send it until the DND or the quiet window changes",
        e.dnd, allowed_by_dnd
    );
    tracing::warn!(delivery_id = %e.id(), dnd = %e.dnd, %quiet, "no allowed slot: recorded and ended DEAD");
    let failure = NewFailure {
        cycle: Some(e.cycle),
        subject: e.id(),
        stage: FailureStage::Dispatch,
        code: NO_ALLOWED_SLOT.into(),
        reason: domain::text::reason(&reason),
        channel: None,
        attempts: 0,
        run_id: Some(run_id.to_owned()),
        replay: None,
    };
    // Recorded first: a delivery is never DEAD without its record.
    deps.failures.record(&failure, now).await?;
    match deps
        .deliveries
        .end_at_dispatch(e, NO_ALLOWED_SLOT, run_id, token, now)
        .await
    {
        Written::Applied(_) => Ok(true),
        Written::Refused(_) => Ok(false),
        Written::Unknown(e) => Err(e),
    }
}

/// Marks up to ten deliveries QUEUED (each conditionally), sends the
/// messages of those this run took, and puts back those SQS refused. The
/// error, if any, is the first store call that failed or whose outcome
/// stayed unknown: what was taken before it is still sent.
async fn enqueue(ctx: Ctx<'_>, chunk: &[(DueEntry, Channel)]) -> (DispatchReport, Option<StoreError>) {
    let Ctx {
        deps,
        run,
        run_id,
        token,
        now,
        ..
    } = ctx;
    // Re-checked a while after the slot that enqueued it (the slot, not the
    // wall clock, so that a run replayed on a virtual clock behaves the same).
    let recheck = run.start() + deps.config.recheck_after;
    let marked: Vec<(Written, &DueEntry, Channel)> = stream::iter(chunk)
        .map(|(e, ch)| async move {
            let w = deps.deliveries.mark_queued(e, *ch, run_id, token, now, recheck).await;
            (w, e, *ch)
        })
        .buffer_unordered(deps.config.write_concurrency.max(1))
        .collect()
        .await;
    let mut report = DispatchReport {
        complete: true,
        ..DispatchReport::default()
    };
    let mut error = None;
    let mut taken: Vec<(&DueEntry, Channel)> = Vec::with_capacity(marked.len());
    for (written, e, ch) in marked {
        match written {
            Written::Applied(_) => taken.push((e, ch)),
            Written::Refused(_) => report.lost_races += 1,
            Written::Unknown(err) => {
                // Maybe QUEUED with no message: its re-check time repairs it.
                tracing::warn!(delivery_id = %e.id(), error = %err, "enqueue with no answer; not counted as taken");
                report.unknown += 1;
                error.get_or_insert(err);
            }
        }
    }
    let Some(&(_, channel)) = taken.first() else {
        return (report, error);
    };
    let messages: Vec<DeliveryMessage> = taken
        .iter()
        .map(|(e, ch)| DeliveryMessage {
            delivery_id: e.id(),
            channel: *ch,
            run_id: run_id.to_owned(),
            copies: 0,
        })
        .collect();
    let out = match deps.queue(channel).send_batch(&messages).await {
        Ok(out) => out,
        // Taken, message unknown: QUEUED until the re-check time repairs them.
        Err(e) => return (report, Some(error.unwrap_or(e))),
    };
    let mut put_back = Vec::new();
    for (id, why) in &out.failed {
        tracing::warn!(delivery_id = %id, reason = %why, "message refused after retries; delivery put back to READY");
        let Some((e, _)) = taken.iter().find(|(e, _)| &e.id() == id) else {
            continue;
        };
        put_back.push(id.as_str());
        let back_at = if e.state == DeliveryState::Ready {
            e.available_at
        } else {
            now
        };
        match deps.deliveries.revert_queued(e, token, back_at, now).await {
            Written::Applied(_) => report.reverted += 1,
            Written::Refused(_) => {}
            // Still QUEUED, or READY again: either way due again, at the latest at its re-check.
            Written::Unknown(err) => {
                report.unknown += 1;
                error.get_or_insert(err);
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
        .filter(|(e, _)| e.state != DeliveryState::Ready && !put_back.contains(&e.id().as_str()))
        .count() as u64;
    (report, error)
}
