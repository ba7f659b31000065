//! The delivery half of the month: every slot the schedule would run, with
//! the real handlers on a virtual clock (dispatch at the slot's start, then
//! the senders consume both queues until they are empty, their clock at the
//! slot), optionally under a [`FaultProfile`]; then, bounded, the slots after
//! the month that dispatch needs to re-check what the faults left waiting.
//! It prints what happened and reconciles the final states, the accepted
//! sends and the bills.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use domain::dispatch::SlotRun;
use domain::{Channel, QuietWindow};
use local_aws::{Emulator, Resources};
use serde::Serialize;

use crate::evidence::{EvidencePoller, EvidenceTotals};
use crate::faults::{self, FaultProfile, Moment, Targets};
use crate::report::{Outcome, SlotPoint};
use crate::send::{PollStats, Poller, VirtualClock, depth, drain};

/// How the delivery half runs.
#[derive(Clone, Debug)]
pub struct Options {
    pub quiet: QuietWindow,
    /// Mock provider latency per send (ms).
    pub provider_latency_ms: u64,
    pub profile: FaultProfile,
    /// Slots after the last one given that may run while deliveries wait for dispatch's
    /// re-check.
    pub max_tail_slots: u32,
    /// Concurrent invocations of each sender at most while a slot's queues drain
    /// ([`SENDER_WORKERS`] by default; the deployed event source allows 50).
    pub sender_workers: usize,
    /// The mock provider's simulated delivery evidence (bounces, complaints, failed SMS),
    /// handled by the delivery-events function after every slot's sends.
    pub evidence: providers::EvidenceRates,
    /// The email provider's 24-hour quota as dispatch reads it (`None`: the stack's, the mock's
    /// unlimited one). Dispatch never enqueues more email in 24 hours (of the virtual clock)
    /// and carries the rest to the following slots.
    pub email_quota_24h: Option<u64>,
}

/// After our own trouble a sender puts back a fresh copy of the message delayed by this
/// (doubling with each copy): seconds instead of the deployed 30 s, as the retries are.
pub const TROUBLE_DELAY: Duration = Duration::from_secs(2);
/// A message whose delivery another sender holds comes back after at most this long.
pub const BUSY_DELAY_MAX: Duration = Duration::from_secs(5);
/// Tries of one slot's dispatch run (the schedule's retry policy retries a failed run).
pub const DISPATCH_TRIES: u32 = 10;
/// Slots after the month that may run for the re-checks: three days.
pub const TAIL_SLOTS: u32 = 36;
/// The longest the senders may take to drain the queues in one slot.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(1800);
/// Concurrent invocations of each sender at most while a slot's queues drain (fewer when fewer
/// messages are visible: as many as fill batches of ten, see `send::drain`). Each handles a batch of
/// ten and waits about the provider's latency (1 s as deployed), so each sender's pace is at
/// most ten times this many deliveries a second; the deployed event source allows 50
/// (`SenderMaxConcurrency`). Four held a busy slot of 25,000 emails to 40 a second. The month
/// job's `--sender-workers` sets another number (`scripts/month.sh --fast`: the deployed 50).
pub const SENDER_WORKERS: usize = 16;

/// What the faults did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultReport {
    pub profile: String,
    pub description: String,
    /// Calls each switch faulted, by switch and resource (the stack's prefix cut off).
    pub fired: BTreeMap<String, BTreeMap<String, u64>>,
    pub fired_total: u64,
    /// Dispatch runs that failed and were run again (as the schedule's retry policy would).
    pub dispatch_retries: u64,
    /// Slots run after the month for dispatch's re-checks.
    pub tail_slots: u64,
}

/// What the delivery half did.
pub struct Delivery {
    pub slots: Vec<SlotPoint>,
    pub runs: Vec<(SlotRun, dispatch_slot::DispatchReport)>,
    pub outcome: Outcome,
    pub sends: PollStats,
    /// The pipeline's requests (this runner's queue-depth checks excluded).
    pub requests: BTreeMap<String, u64>,
    pub dispatch_runs: u64,
    pub enqueued: u64,
    pub dispatch_time: Duration,
    pub send_time: Duration,
    pub faults: FaultReport,
    /// What the delivery-events function made of the providers' evidence.
    pub evidence: EvidenceTotals,
    /// The 24-hour email quota and how dispatch planned around it, in words.
    pub quota_plan: String,
    /// The mock provider's latency the senders ran with.
    pub provider_latency_ms: u64,
}

/// Both senders as template.yaml configures them with `overrides`, on `clock`, their
/// backoffs after trouble compressed; the email provider one that cannot be asked when the
/// profile says so.
async fn senders(
    config: &aws_config::SdkConfig,
    resources: &Resources,
    overrides: &[(&str, String)],
    clock: &VirtualClock,
    profile: FaultProfile,
) -> anyhow::Result<Vec<Poller>> {
    let mut out = Vec::with_capacity(2);
    for ch in [Channel::Email, Channel::Sms] {
        let mut d = crate::send::sender_deps(config, resources, ch, overrides).await?;
        d.clock = clock.clock();
        d.config.trouble_delay = TROUBLE_DELAY;
        d.config.busy_delay_max = BUSY_DELAY_MAX;
        if profile.unaskable() && ch == Channel::Email {
            d.email = Arc::new(faults::CannotBeAsked(d.email.clone()));
        }
        out.push(Poller::new(config, Arc::new(crate::provider_wait::waited(d))));
    }
    Ok(out)
}

/// One slot's dispatch run, tried again after a failure (a throttled enqueue that got no
/// answer fails the run, and the schedule's retry policy runs it again), at most
/// [`DISPATCH_TRIES`] times.
async fn dispatch_with_retries(
    deps: &dispatch_slot::Deps,
    run: SlotRun,
    retries: &mut u64,
) -> anyhow::Result<dispatch_slot::DispatchReport> {
    let mut last = None;
    for attempt in 0..DISPATCH_TRIES {
        if attempt > 0 {
            *retries += 1;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        match crate::dispatch::run_slot(deps, run).await {
            Ok(r) => return Ok(r),
            Err(e) => {
                tracing::warn!(%run, attempt, error = %e, "dispatch run failed; run again");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("dispatch of {run} never ran")))
}

/// Deliveries by state, and how many of the unfinished ones wait in the `Due` index.
pub struct States {
    pub by_state: BTreeMap<String, u64>,
    /// `READY`, `QUEUED`, `SENDING` or `HELD` deliveries with a `Due` index entry.
    pub waiting_in_due_index: u64,
    /// Deliveries the provider's evidence sent on to SMS (`route = sms`), and of them
    /// those whose SMS went out.
    pub routed_to_sms: u64,
    pub routed_sent: u64,
    /// Deliveries by their evidence: `email DELIVERED`, `sms BOUNCED`, …
    pub lifecycle: BTreeMap<String, u64>,
}

/// States that end a delivery's run: sent, dead, or left to an operator.
pub const FINISHED: [&str; 4] = ["SENT_EMAIL", "SENT_SMS", "DEAD", "UNCONFIRMED"];
/// States whose deliveries dispatch takes again (a re-check, or a later slot).
pub const DISPATCHABLE: [&str; 3] = ["READY", "QUEUED", "SENDING"];

/// A consistent scan of the deliveries table.
pub async fn states(config: &aws_config::SdkConfig, table: &str) -> anyhow::Result<States> {
    let ddb = adapters::dynamodb_client(config);
    let mut by_state = BTreeMap::new();
    let mut in_index = 0u64;
    let (mut routed_to_sms, mut routed_sent) = (0u64, 0u64);
    let mut lifecycle = BTreeMap::new();
    let mut start = None;
    // Bounded by the table: each page moves the start key on.
    loop {
        let page = ddb
            .scan()
            .table_name(table)
            .projection_expression("#st, due_pk, route, evidence, evidence_channel")
            .expression_attribute_names("#st", "state")
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .context("Scan deliveries")?;
        for item in page.items.unwrap_or_default() {
            let state = item
                .get("state")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            if !FINISHED.contains(&state.as_str()) && matches!(item.get("due_pk"), Some(AttributeValue::S(_))) {
                in_index += 1;
            }
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str);
            if text("route") == Some("sms") {
                routed_to_sms += 1;
                routed_sent += u64::from(state == "SENT_SMS");
            }
            if let (Some(e), Some(ch)) = (text("evidence"), text("evidence_channel")) {
                *lifecycle.entry(format!("{ch} {e}")).or_insert(0) += 1;
            }
            *by_state.entry(state).or_insert(0) += 1;
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    Ok(States {
        by_state,
        waiting_in_due_index: in_index,
        routed_to_sms,
        routed_sent,
        lifecycle,
    })
}

impl States {
    pub fn get(&self, s: &str) -> u64 {
        self.by_state.get(s).copied().unwrap_or(0)
    }

    /// Deliveries dispatch will take again.
    pub fn dispatchable(&self) -> u64 {
        DISPATCHABLE.iter().map(|s| self.get(s)).sum()
    }
}

/// Runs `slots` in order (the month's), then while deliveries wait for dispatch, at most
/// `options.max_tail_slots` more, the faults of `options.profile` armed at the busy slots
/// of the month and cleared before the tail. Prints the dispatch summary, the final states,
/// the duplicates, the forbidden-slot sends and the faults that fired.
pub async fn deliver(
    emulator: &Emulator,
    config: &aws_config::SdkConfig,
    resources: &Resources,
    slots: Vec<SlotRun>,
    bills: u64,
    options: &Options,
    on_slot: &(dyn Fn(SlotRun, &PollStats) + Sync),
) -> anyhow::Result<Delivery> {
    let mut deps = crate::dispatch::dispatch_deps(config, resources).await?;
    deps.config.quiet = options.quiet;
    if let Some(max) = options.email_quota_24h {
        deps.quota = providers::QuotaSource::Fixed(providers::SendQuota {
            max_send_rate: 0.0,
            max_24h_send: max as f64,
            sent_last_24h: 0.0,
        });
    }
    let clock = VirtualClock::default();
    // The mock as deployed (1% failures), its latency as flagged; retries back off in
    // seconds instead of minutes so that a slot's retries finish while the clock stands.
    let mut overrides = vec![
        ("MOCK_LATENCY_MS", options.provider_latency_ms.to_string()),
        ("QUIET_WINDOW", options.quiet.to_string()),
        ("RETRY_BASE_DELAY_SECONDS", "1".to_owned()),
        ("RETRY_MAX_DELAY_SECONDS", "4".to_owned()),
    ];
    let rates = options.evidence;
    overrides.extend([
        ("MOCK_BOUNCE_RATE", rates.bounce.to_string()),
        ("MOCK_COMPLAINT_RATE", rates.complaint.to_string()),
        ("MOCK_SMS_FAILED_RATE", rates.sms_failed.to_string()),
        // Handled right after the slot's sends, while its virtual clock stands.
        ("MOCK_EVIDENCE_DELAY_SECONDS", "0".to_owned()),
    ]);
    overrides.extend(options.profile.sender_overrides());
    let pollers = senders(config, resources, &overrides, &clock, options.profile).await?;
    let evidence = EvidencePoller::new(
        config,
        resources,
        &[("QUIET_WINDOW", options.quiet.to_string())],
        &clock,
    )
    .await?;
    let mut evidence_totals = EvidenceTotals::default();
    let targets = Targets::of(resources)?;
    let prefix = resources.prefix().to_owned();
    let table = targets.deliveries.clone();
    if options.profile != FaultProfile::None {
        println!(
            "faults     profile {}: {}",
            options.profile.name(),
            options.profile.describe()
        );
    }
    let before = emulator.request_counts(&prefix).await?;
    let last = slots.last().copied();
    let mut runs = Vec::with_capacity(slots.len());
    let mut points = Vec::with_capacity(slots.len());
    let mut sends = PollStats::default();
    let (mut dispatch_time, mut send_time) = (Duration::ZERO, Duration::ZERO);
    let mut report = FaultReport {
        profile: options.profile.name().to_owned(),
        description: options.profile.describe(),
        ..FaultReport::default()
    };
    let mut busy = 0u64;
    let mut armed = faults::Armed::default();
    let mut tail = 0u32;
    let mut next = slots.into_iter();
    let mut after = last.map(SlotRun::next);
    // Bounded: the month's slots, then at most `max_tail_slots`.
    loop {
        let (run, in_month) = match next.next() {
            Some(run) => (run, true),
            None => {
                if tail == 0 {
                    // The faults end with the month; the tail re-checks what they left.
                    report.fired = faults::fired(emulator, &prefix).await?;
                    faults::clear(emulator, &targets).await?;
                }
                let Some(run) = after else { break };
                if tail >= options.max_tail_slots || states(config, &table).await?.dispatchable() == 0 {
                    break;
                }
                tail += 1;
                after = Some(run.next());
                (run, false)
            }
        };
        clock.set(run.start() + chrono::Duration::minutes(1));
        // Faults are armed in the month's open slots: before dispatch (lost answers; a throttle
        // at one busy slot) and, when something is on the queues, before the senders drain them.
        // A slot whose senders had something to do is a busy one: the profiles count those.
        let arm = in_month && options.profile != FaultProfile::None && run.is_open(options.quiet);
        if arm {
            faults::arm(emulator, &targets, options.profile, busy, Moment::Dispatch, &mut armed).await?;
        }
        let d = Instant::now();
        let r = dispatch_with_retries(&deps, run, &mut report.dispatch_retries).await?;
        dispatch_time += d.elapsed();
        let mut point = SlotPoint {
            slot: run.to_string(),
            open: r.open,
            enqueued_email: r.enqueued_email,
            enqueued_sms: r.enqueued_sms,
            ..SlotPoint::default()
        };
        let mut waiting = 0;
        for p in &pollers {
            let n = depth(&p.sqs, &p.url).await?;
            waiting += n;
            match p.deps.config.channel {
                Channel::Email => point.depth_email = n,
                Channel::Sms => point.depth_sms = n,
            }
        }
        if waiting > 0 {
            if arm {
                faults::arm(emulator, &targets, options.profile, busy, Moment::Drain, &mut armed).await?;
            }
            let s = Instant::now();
            let (stats, drained) = drain(&pollers, options.sender_workers, DRAIN_LIMIT).await?;
            anyhow::ensure!(drained, "the queues of {run} did not drain in 30 minutes: {stats:?}");
            // The evidence of the slot's sends: a bounce puts its delivery back for an SMS in
            // the customer's next allowed slot, which a later slot's run enqueues.
            let drained = evidence.drain(DRAIN_LIMIT, &mut evidence_totals).await?;
            anyhow::ensure!(drained, "the evidence queue of {run} did not drain in 30 minutes");
            send_time += s.elapsed();
            sends += &stats;
            if arm {
                busy += 1;
            }
        }
        on_slot(run, &sends);
        if in_month {
            points.push(point);
        }
        runs.push((run, r));
    }
    report.tail_slots = u64::from(tail);
    report.fired_total = report.fired.values().flat_map(|m| m.values()).sum();
    let mut requests = crate::report::request_delta(&before, &emulator.request_counts(&prefix).await?);
    // The queue-depth checks are this runner's (the SQS event source needs none), and so are
    // the scans that look for deliveries still waiting after the month.
    requests.remove("sqs:GetQueueAttributes");
    requests.remove("dynamodb:Scan");
    let mut total = dispatch_slot::DispatchReport::default();
    for (_, r) in &runs {
        total += r.clone();
    }
    let enqueued = total.enqueued_email + total.enqueued_sms;
    let open = runs.iter().filter(|(_, r)| r.open).count();
    println!(
        "dispatched {enqueued} messages ({} email, {} SMS) in {} runs, one per two-hour slot{} \
         ({open} open, {} closed by the quiet window {}); paused {}, corrupt {}, re-enqueued {}, put back {} [{dispatch_time:.1?}]",
        total.enqueued_email,
        total.enqueued_sms,
        runs.len(),
        if tail > 0 {
            format!(" ({tail} after the month for the re-checks)")
        } else {
            String::new()
        },
        runs.len() - open,
        options.quiet,
        total.paused,
        total.corrupt,
        total.requeued,
        total.reverted
    );
    println!("           enqueued per slot (Asia/Seoul), deferred deliveries counted again in their next slot:");
    print!("{}", crate::dispatch::slot_grid(&runs));
    let r = &sends.report;
    println!(
        "sent       {} messages handled in {} sender invocations [{send_time:.1?}, mock latency {} ms]: \
         {} sent, {} recovered after a lost answer, {} retried, {} fell back to SMS, {} dead, {} deferred, \
         {} duplicates suppressed, {} parked",
        r.messages,
        sends.invocations,
        options.provider_latency_ms,
        r.sent,
        r.recovered,
        r.retried,
        r.fallback,
        r.dead,
        r.deferred,
        r.duplicates_suppressed,
        r.parked
    );
    let env = crate::settle::local_function_env(resources, crate::send::SEND_EMAIL);
    let st = states(config, &table).await?;
    let (email, sms, dead, unconfirmed) = (
        st.get("SENT_EMAIL"),
        st.get("SENT_SMS"),
        st.get("DEAD"),
        st.get("UNCONFIRMED"),
    );
    let all: u64 = st.by_state.values().sum();
    let waiting = all - email - sms - dead - unconfirmed;
    let waiting_by_state: BTreeMap<String, u64> = st
        .by_state
        .iter()
        .filter(|(k, _)| !FINISHED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let log = providers::DynamoLog::new(
        adapters::dynamodb_client(config),
        env.get("MOCK_SENDS_TABLE").context("MOCK_SENDS_TABLE")?.clone(),
    );
    let accepted = log.count_by_key().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let duplicates = providers::duplicates_of(&accepted);
    let mut forbidden = 0u64;
    let index: BTreeMap<String, usize> = points.iter().enumerate().map(|(i, p)| (p.slot.clone(), i)).collect();
    for sent in crate::seed::sends(config, &table).await? {
        let allowed = domain::ContactWindow::new(sent.dnd, options.quiet).is_ok_and(|w| w.allows(sent.at));
        forbidden += u64::from(!allowed);
        let slot = SlotRun::containing(sent.at).to_string();
        if let Some(p) = index.get(&slot).and_then(|&i| points.get_mut(i)) {
            match sent.state.as_str() {
                "SENT_SMS" => p.sent_sms += 1,
                "SENT_EMAIL" => p.sent_email += 1,
                _ => {}
            }
        }
    }
    let sum: u64 = requests.values().sum();
    let outcome = Outcome {
        bills,
        sent_email: email,
        sent_sms: sms,
        dead,
        unconfirmed,
        waiting,
        waiting_by_state,
        waiting_in_due_index: st.waiting_in_due_index,
        accepted_sends: accepted.len() as u64,
        routed_to_sms: st.routed_to_sms,
        routed_sent: st.routed_sent,
        lifecycle: st.lifecycle.clone(),
        duplicates: duplicates.len() as u64,
        forbidden_slot_sends: forbidden,
        requests_per_delivery: sum as f64 / bills.max(1) as f64,
    };
    println!(
        "final      {email} SENT_EMAIL + {sms} SENT_SMS + {dead} DEAD + {unconfirmed} UNCONFIRMED + {waiting} still waiting{} \
         = {} of {bills} bills; {} accepted sends at the mock providers, {} keys (delivery, channel, round) accepted \
         more than once, {forbidden} sends in a forbidden slot",
        if waiting > 0 {
            format!(
                " ({}; {} of them in the Due index)",
                list(&outcome.waiting_by_state),
                st.waiting_in_due_index
            )
        } else {
            String::new()
        },
        all,
        accepted.len(),
        duplicates.len()
    );
    let quota_plan = quota_plan(&runs);
    println!("quota      {quota_plan}");
    let ev = &evidence_totals;
    println!(
        "evidence   {} provider events in {} delivery-events invocations ({} handed back until their send was \
         recorded): {}; deliveries by evidence: {}; {} bounced emails sent on to SMS in the next allowed slot \
         ({} sent), {} contacts suppressed",
        ev.records,
        ev.invocations,
        ev.retried,
        list(&ev.counts),
        if outcome.lifecycle.is_empty() {
            "none".to_owned()
        } else {
            list(&outcome.lifecycle)
        },
        outcome.routed_to_sms,
        outcome.routed_sent,
        ev.get("SuppressedContacts"),
    );
    if options.profile != FaultProfile::None {
        println!(
            "faults     {} calls faulted{}: {}; {} dispatch runs run again, {} slots after the month for the re-checks",
            report.fired_total,
            if report.fired_total == 0 && options.profile.sender_overrides().is_empty() {
                " (none fired)"
            } else {
                ""
            },
            if report.fired.is_empty() {
                "no emulator switch (the provider's hangs are counted by the senders)".to_owned()
            } else {
                report
                    .fired
                    .iter()
                    .map(|(f, m)| format!("{f} {}", list(m)))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            report.dispatch_retries,
            tail
        );
    }
    println!(
        "requests   dispatch + delivery: {sum} AWS requests, {:.2} per delivery: {}",
        outcome.requests_per_delivery,
        list(&requests)
    );
    Ok(Delivery {
        provider_latency_ms: options.provider_latency_ms,
        slots: points,
        dispatch_runs: runs.len() as u64,
        runs,
        outcome,
        sends,
        requests,
        enqueued,
        dispatch_time,
        send_time,
        faults: report,
        evidence: evidence_totals,
        quota_plan,
    })
}

/// The 24-hour email quota as dispatch read it, and the email it carried to later slots,
/// day by day (Asia/Seoul): the plan the run report shows.
pub fn quota_plan(runs: &[(SlotRun, dispatch_slot::DispatchReport)]) -> String {
    let Some(plan) = runs.iter().find_map(|(_, r)| r.quota.clone()) else {
        return "no dispatch run read the quota (no open slot with a settled cycle)".to_owned();
    };
    let Some(max) = plan.max_24h else {
        return format!(
            "unlimited ({}): dispatch enqueued every email when it was due",
            plan.source
        );
    };
    // Per day: email enqueued, and what the day's last open run left for later.
    let mut days: BTreeMap<String, (u64, u64, Option<String>)> = BTreeMap::new();
    for (run, r) in runs.iter().filter(|(_, r)| r.open) {
        let day = days.entry(run.date.to_string()).or_default();
        day.0 += r.enqueued_email;
        day.1 = r.over_quota;
        day.2 = r.carried_to.clone();
    }
    let carried: Vec<String> = days
        .iter()
        .filter(|(_, (_, left, _))| *left > 0)
        .map(|(d, (sent, left, to))| {
            format!(
                "{d}: {sent} enqueued, {left} carried to {}",
                to.as_deref().unwrap_or("the next open slot")
            )
        })
        .collect();
    let busiest = days.values().map(|(n, _, _)| *n).max().unwrap_or(0);
    format!(
        "{max} emails in 24 hours ({}); the busiest day enqueued {busiest}; {}",
        plan.source,
        if carried.is_empty() {
            "no email had to wait for the quota".to_owned()
        } else {
            format!("days past the quota: {}", carried.join("; "))
        }
    )
}

/// `key n, key n, …`
pub fn list(m: &BTreeMap<String, u64>) -> String {
    m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}
