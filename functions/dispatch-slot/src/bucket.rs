//! One index partition (`{cycle}#{bucket:02}`) of a run: its due entries
//! read page by page, each decided ([`domain::dispatch::decide`], on the
//! channels its `route` leaves), the page's email checked against the
//! suppression list (one batch) and cut to the partition's share of the
//! 24-hour quota (oldest first), then the writes — enqueued (`READY →
//! QUEUED`, then the message), ended `DEAD` when the customer has no allowed
//! slot, or parked when the entry does not decode.

use std::time::SystemTime;

use adapters::StoreError;
use adapters::deliveries::dispatch::NO_ALLOWED_SLOT;
use adapters::deliveries::write::Written;
use adapters::deliveries::{BadEntry, DueEntry, due_key};
use adapters::failures::{FailureStage, NewFailure};
use adapters::queue::SEND_BATCH_LIMIT;
use domain::delivery::DeliveryMessage;
use domain::dispatch::{Decision, decide};
use domain::{Channel, Cycle};
use futures::{StreamExt, stream};

use crate::DispatchReport;
use crate::quota::policy_for;
use crate::run::Ctx;

/// How the run left one index partition.
pub(crate) enum BucketEnd {
    Done,
    /// Stopped at the deadline, before the page that starts at the cursor.
    Stopped(adapters::dynamo::Item),
    /// Stopped by a store call that failed (or whose outcome stayed
    /// unknown): the run fails once the other buckets are done.
    Failed(StoreError),
}

/// Every due entry of one bucket, page by page.
pub(crate) async fn dispatch_bucket(
    ctx: Ctx<'_>,
    cycle: Cycle,
    bucket: u32,
    mut start: Option<adapters::dynamo::Item>,
) -> (DispatchReport, BucketEnd) {
    let Ctx { deps, run, stop_at, .. } = ctx;
    let c = &deps.config;
    let partition = due_key(cycle, bucket);
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
            // A delivery with a route goes by that channel only, paused while it is disabled.
            let allowed = policy_for(ctx.policy, e.route);
            let preferred = e.route.unwrap_or(e.preferred_channel);
            let route = match decide(run, c.quiet, allowed, e.dnd, preferred, e.available_at) {
                Decision::Enqueue(ch) => Some(ch),
                // On its way, its re-check come: the sender that takes it over ends it (its own
                // slot check), whether it was still queued or its sender's lease ended.
                Decision::NoAllowedSlot if e.in_flight() => {
                    let ch = allowed.route(preferred);
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
        let [mut email, mut sms] = by_channel;
        if let Err(e) = suppress(ctx, &mut email, &mut sms, &mut report).await {
            return (report, BucketEnd::Failed(e));
        }
        // Oldest first within the page: what the share leaves waits for a later slot.
        let granted = ctx.budget.take(&partition, email.len() as u64);
        let granted = usize::try_from(granted).unwrap_or(usize::MAX).min(email.len());
        report.over_quota += (email.len() - granted) as u64;
        email.truncate(granted);
        for group in [email, sms] {
            for chunk in group.chunks(SEND_BATCH_LIMIT) {
                let (r, failed) = enqueue(ctx, chunk).await;
                if chunk.first().is_some_and(|(_, ch)| *ch == Channel::Email) {
                    // Taken from the budget but not enqueued: another run took it, or SQS refused it.
                    ctx.budget.give_back(r.lost_races + r.reverted);
                }
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

/// Moves the page's email whose `email_hash` the suppression list has (one
/// batch) to SMS, or leaves it due (paused) when its SMS is disabled: the
/// early skip — the sender checks again with the contact it opens.
async fn suppress(
    ctx: Ctx<'_>,
    email: &mut Vec<(DueEntry, Channel)>,
    sms: &mut Vec<(DueEntry, Channel)>,
    report: &mut DispatchReport,
) -> Result<(), StoreError> {
    let Some(store) = &ctx.deps.suppressions else {
        return Ok(());
    };
    let hashes: Vec<String> = email.iter().filter_map(|(e, _)| e.email_hash.clone()).collect();
    if hashes.is_empty() {
        return Ok(());
    }
    let listed = store.suppressed(&hashes).await?;
    if listed.is_empty() {
        return Ok(());
    }
    let (off, keep): (Vec<_>, Vec<_>) = std::mem::take(email)
        .into_iter()
        .partition(|(e, _)| e.email_hash.as_ref().is_some_and(|h| listed.contains(h)));
    *email = keep;
    for (e, _) in off {
        report.suppressed += 1;
        if policy_for(ctx.policy, e.route).allows(Channel::Sms) {
            tracing::debug!(delivery_id = %e.id(), "email suppressed: enqueued on SMS instead");
            sms.push((e, Channel::Sms));
        } else {
            tracing::debug!(delivery_id = %e.id(), "email suppressed and SMS disabled: paused");
            report.paused += 1;
        }
    }
    Ok(())
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
    deps.deliveries.park(bad, &bad.reason, token, now).await.applied()
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
    deps.deliveries
        .end_at_dispatch(e, NO_ALLOWED_SLOT, run_id, token, now)
        .await
        .applied()
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
        let back_at = if e.in_flight() { now } else { e.available_at };
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
        .filter(|(e, _)| e.in_flight() && !put_back.contains(&e.id().as_str()))
        .count() as u64;
    (report, error)
}
