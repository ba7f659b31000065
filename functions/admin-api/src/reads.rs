//! The reads: the latest cycles (`GET /cycles`), where a cycle stands (`GET /cycles/{cycle}`,
//! each shard too), its deliveries counted (`/funnel`, with the sends by slot and the
//! queues), its failure log a page at a time, filtered (`/failures`), and one delivery with
//! its failures, its commands, its timeline and what an operator can do about it
//! (`/deliveries/{customer}`). Also the paging every list shares (`limit`, `next`).
//!
//! Nothing here writes. Contact data leaves only masked; the invoice is a link that expires
//! after [`LINK_TTL`].

use std::collections::HashMap;
use std::time::Duration;

use adapters::cycles::{ShardRecord, ShardStatus};
use adapters::deliveries::commands::Seen;
use adapters::dynamo::{Item, attr_s};
use adapters::failures::{FailureFilter, FailureStage};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::pii::{mask_email, mask_name, mask_phone};
use domain::{Channel, CustomerId, Cycle, DeliveryState};
use serde_json::{Value, json};

use crate::{ApiError, Deps, Request, Response};

/// How long an invoice link in an answer lives.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// Entries a page holds unless `limit` says otherwise.
pub const DEFAULT_PAGE: i32 = 25;
/// The largest `limit` a page takes.
pub const MAX_PAGE: i32 = 100;
/// Shards the funnel reads at once.
pub const FUNNEL_CONCURRENCY: usize = 16;
/// Cycles `GET /cycles` lists unless `limit` says otherwise, and the most it lists.
pub const DEFAULT_CYCLES: usize = 24;
pub const MAX_CYCLES: usize = 100;
/// How far past the current month `GET /cycles` looks for a cycle (a cycle is settled after
/// its month; one ahead of the clock is a rehearsal's).
pub const CYCLES_AHEAD: u32 = 12;

/// The send queues the funnel shows the depth of.
#[derive(Clone, Debug)]
pub struct SendQueues {
    pub email: String,
    pub sms: String,
}

/// The page size a list asks for (`limit`), or 400.
pub(crate) fn page_size(req: &Request) -> Result<i32, ApiError> {
    match req.query.get("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(v) => match v.parse::<i32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(
                "invalid-limit",
                format!("limit must be a whole number from 1 to {MAX_PAGE}"),
            )),
        },
    }
}

/// A page token: the store's key, as base64url JSON of its string attributes.
pub(crate) fn encode_token(key: &Item) -> String {
    let map: serde_json::Map<String, Value> = key
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), Value::String(s.clone()))))
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Value::Object(map).to_string())
}

/// The page a list starts at (`next`, a token [`encode_token`] gave out), or 400.
pub(crate) fn decode_token(req: &Request) -> Result<Option<Item>, ApiError> {
    let Some(token) = req.query.get("next") else {
        return Ok(None);
    };
    let bad = || ApiError::bad("invalid-page-token", "next is not a page token this API gave out");
    if token.len() > 2048 {
        return Err(bad());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let map: HashMap<String, String> = domain::decode::from_slice(&bytes).map_err(|_| bad())?;
    if map.is_empty() || map.len() > 4 {
        return Err(bad());
    }
    Ok(Some(map.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect()))
}

/// The latest cycles, newest first (`limit`: 1 to [`MAX_CYCLES`], [`DEFAULT_CYCLES`] unless
/// given): from [`CYCLES_AHEAD`] months past the month of `now` (Korea time) back to the first
/// month a cycle can name.
pub(crate) async fn cycles(deps: &Deps, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let limit = match req.query.get("limit") {
        None => DEFAULT_CYCLES,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_CYCLES).contains(&n) => n,
            _ => {
                return Err(ApiError::bad(
                    "invalid-limit",
                    format!("limit must be a whole number from 1 to {MAX_CYCLES}"),
                ));
            }
        },
    };
    let today = now.with_timezone(&domain::slots::seoul()).date_naive();
    let mut newest = Cycle::containing(today).map_err(|e| ApiError::Internal(format!("the current month: {e}")))?;
    for _ in 0..CYCLES_AHEAD {
        if newest.year() == 2999 && newest.month() == 12 {
            break;
        }
        newest = newest.next();
    }
    let records = deps.cycles.latest(newest, limit).await?;
    let cycles: Vec<Value> = records
        .iter()
        .map(|rec| {
            json!({
                "cycle": rec.cycle.to_string(),
                "status": rec.status,
                "started_at": rec.started_at,
                "finished_at": rec.finished_at,
                "bills": rec.bills,
                "execution": rec.run_id,
            })
        })
        .collect();
    Ok(Response::ok(json!({ "cycles": cycles })))
}

/// Every shard `0..total` in order: its settlement and rendering as its record says, or
/// `NOT_STARTED` when it has none.
fn shard_list(total: u32, shards: &HashMap<u32, ShardRecord>) -> Vec<Value> {
    (0..total)
        .map(|shard| match shards.get(&shard) {
            Some(r) => json!({
                "shard": shard,
                "status": r.status,
                "bills": r.bills,
                "rendered": r.render.is_some(),
                "deliveries": r.render.as_ref().map(|x| x.deliveries),
                "attempts": r.attempts,
                "error": r.errors.first(),
                "updated_at": r.updated_at,
            }),
            None => json!({
                "shard": shard,
                "status": "NOT_STARTED",
                "bills": null,
                "rendered": false,
                "deliveries": null,
                "attempts": 0,
                "error": null,
                "updated_at": null,
            }),
        })
        .collect()
}

/// The AWS console address of a Step Functions execution, when `run_id` is an execution ARN
/// (`arn:PARTITION:states:REGION:ACCOUNT:execution:MACHINE:NAME`) of a partition whose
/// console is known; `None` otherwise (a local run names its runs otherwise).
pub fn execution_url(run_id: &str) -> Option<String> {
    let parts: Vec<&str> = run_id.split(':').collect();
    let [arn, partition, service, region, account, kind, machine, name] = parts.as_slice() else {
        return None;
    };
    let console = match *partition {
        "aws" => "console.aws.amazon.com",
        "aws-cn" => "console.amazonaws.cn",
        "aws-us-gov" => "console.amazonaws-us-gov.com",
        _ => return None,
    };
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+=@".contains(&b));
    let well_formed = *arn == "arn"
        && *service == "states"
        && *kind == "execution"
        && word(region)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && word(machine)
        && word(name);
    well_formed
        .then(|| format!("https://{region}.{console}/states/home?region={region}#/v2/executions/details/{run_id}"))
}

pub(crate) async fn cycle_status(deps: &Deps, cycle: Cycle) -> Result<Response, ApiError> {
    let Some(rec) = deps.cycles.get(cycle).await? else {
        return Err(ApiError::not_found(
            "unknown-cycle",
            format!("cycle {cycle} has not been settled or started"),
        ));
    };
    let shards = deps.cycles.shards(cycle).await?;
    let count = |s: ShardStatus| shards.values().filter(|r| r.status == s).count();
    let mut failed: Vec<Value> = shards
        .values()
        .filter(|r| r.status == ShardStatus::Failed)
        .map(|r| {
            json!({
                "shard": r.shard,
                "error_count": r.error_count,
                "errors": r.errors.iter().take(5).collect::<Vec<_>>(),
                "attempts": r.attempts,
                "updated_at": r.updated_at,
            })
        })
        .collect();
    failed.sort_by_key(|v| v["shard"].as_u64());
    let rendered = shards.values().filter(|r| r.render.is_some()).count();
    let deliveries: u64 = shards
        .values()
        .filter_map(|r| r.render.as_ref())
        .map(|r| r.deliveries)
        .sum();
    let money = crate::corrections::reconciliation(deps, &rec).await?;
    Ok(Response::ok(json!({
        "cycle": cycle.to_string(),
        "status": rec.status,
        "execution": rec.run_id,
        "execution_url": execution_url(&rec.run_id),
        "runs": rec.runs,
        "catalog_version": rec.catalog_version,
        "template_version": rec.template_version,
        "cutoff": rec.cutoff,
        "started_at": rec.started_at,
        "finished_at": rec.finished_at,
        "shards": {
            "total": rec.shard_count,
            "done": count(ShardStatus::Done),
            "in_progress": count(ShardStatus::InProgress),
            "failed": count(ShardStatus::Failed),
            "not_started": (rec.shard_count as usize).saturating_sub(shards.len()),
            "rendered": rendered,
        },
        "failed_shards": failed,
        "shard_list": shard_list(rec.shard_count, &shards),
        "customers": rec.customers,
        "bills": rec.bills,
        "not_billable": rec.not_billable,
        "checksum": rec.checksum,
        "deliveries": deliveries,
        "money": money,
        "reasons": rec.reasons,
    })))
}

/// Every shard's deliveries, counted: one projected `Query` per shard, `FUNNEL_CONCURRENCY`
/// at a time (a million deliveries in 1,000 shards: about 2,000 pages), and beside them one
/// `GetQueueAttributes` per send queue and dead-letter queue.
pub(crate) async fn funnel(deps: &Deps, cycle: Cycle, now: DateTime<Utc>) -> Result<Response, ApiError> {
    use futures::{StreamExt, TryStreamExt, stream};
    use std::collections::BTreeMap;

    let Some(rec) = deps.cycles.get(cycle).await? else {
        return Err(ApiError::not_found(
            "unknown-cycle",
            format!("cycle {cycle} has not been settled or started"),
        ));
    };
    let read_shards = stream::iter(0..rec.shard_count)
        .map(|shard| deps.deliveries.shard_funnel(cycle, shard))
        .buffer_unordered(FUNNEL_CONCURRENCY)
        .try_collect::<Vec<Vec<adapters::deliveries::FunnelEntry>>>();
    let send_queues = [
        ("email", deps.send_queues.email.as_str()),
        ("sms", deps.send_queues.sms.as_str()),
    ];
    let read_queues = futures::future::try_join_all(
        send_queues
            .iter()
            .copied()
            .chain(deps.queues.iter().map(|q| (q.name, q.url.as_str())))
            .map(|(name, url)| async move { Ok::<_, ApiError>((name, crate::queues::depth(deps, name, url).await?)) }),
    );
    let (shards, depths) = tokio::try_join!(async { read_shards.await.map_err(ApiError::from) }, read_queues)?;
    // Every state, counted or not: an operator sees UNCONFIRMED (and DEAD) at zero too.
    let mut by_state: BTreeMap<String, u64> = DeliveryState::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
    let mut by_channel: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut by_day: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut by_slot: BTreeMap<DateTime<Utc>, (u64, u64)> = BTreeMap::new();
    let mut oldest_queued: Option<DateTime<Utc>> = None;
    let mut total = 0u64;
    for e in shards.iter().flatten() {
        total += 1;
        *by_state.entry(e.state.clone()).or_default() += 1;
        let channel = e.channel.clone().unwrap_or_else(|| "not-queued".into());
        *by_channel
            .entry(channel)
            .or_default()
            .entry(e.state.clone())
            .or_default() += 1;
        *by_day
            .entry(e.send_date.clone())
            .or_default()
            .entry(e.state.clone())
            .or_default() += 1;
        if let Some(sent) = e.sent_at.as_deref().and_then(rfc3339) {
            let (date, slot) = domain::Slot::of_instant(sent);
            let counts = by_slot.entry(slot.start_on(date)).or_default();
            match e.channel.as_deref() {
                Some("sms") => counts.1 += 1,
                _ => counts.0 += 1,
            }
        }
        if e.state == DeliveryState::Queued.as_str()
            && let Some(at) = e.queued_at.as_deref().and_then(rfc3339)
        {
            oldest_queued = Some(oldest_queued.map_or(at, |o| o.min(at)));
        }
    }
    let seoul = domain::slots::seoul();
    let by_slot: Vec<Value> = by_slot
        .into_iter()
        .map(|(start, (email, sms))| {
            json!({
                "slot_start": start.with_timezone(&seoul).to_rfc3339_opts(SecondsFormat::Secs, false),
                "email": email,
                "sms": sms,
            })
        })
        .collect();
    let depth = |name: &str| depths.iter().find(|(n, _)| *n == name).map(|(_, d)| d);
    let dead_letters: serde_json::Map<String, Value> = deps
        .queues
        .iter()
        .map(|q| (q.name.to_owned(), json!(depth(q.name).map_or(0, |d| d.visible))))
        .collect();
    Ok(Response::ok(json!({
        "cycle": cycle.to_string(),
        "generated_at": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "deliveries": total,
        "bills": rec.bills,
        "needs_operator": by_state.get(DeliveryState::Unconfirmed.as_str()).copied().unwrap_or(0),
        "by_state": by_state,
        "by_channel": by_channel,
        "by_send_day": by_day,
        "by_slot": by_slot,
        "queues": {
            "email": depth("email"),
            "sms": depth("sms"),
            "oldest_queued_at": oldest_queued.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            "oldest_queued_age_seconds": oldest_queued.map(|t| (now - t).num_seconds().max(0)),
        },
        "dead_letters": dead_letters,
        "shards_read": rec.shard_count,
    })))
}

fn rfc3339(at: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(at).ok().map(|t| t.with_timezone(&Utc))
}

/// The failure log's filters a request gives (`code`, `channel`, `stage`), or 400 naming
/// the one that is malformed.
fn failure_filter(req: &Request) -> Result<FailureFilter, ApiError> {
    let code = match req.query.get("code") {
        None => None,
        Some(c)
            if (1..=adapters::failures::MAX_CODE_BYTES).contains(&c.len())
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b)) =>
        {
            Some(c.clone())
        }
        Some(_) => {
            return Err(ApiError::bad(
                "invalid-code",
                format!(
                    "code must be a failure code: 1 to {} letters, digits, '-', '_', '.', ':' or '/'",
                    adapters::failures::MAX_CODE_BYTES
                ),
            ));
        }
    };
    let channel = match req.query.get("channel").map(String::as_str) {
        None => None,
        Some("email") => Some(Channel::Email),
        Some("sms") => Some(Channel::Sms),
        Some(_) => return Err(ApiError::bad("invalid-channel", "channel must be email or sms")),
    };
    let stage = match req.query.get("stage").map(String::as_str) {
        None => None,
        Some("dispatch") => Some(FailureStage::Dispatch),
        Some("email") => Some(FailureStage::Email),
        Some("sms") => Some(FailureStage::Sms),
        Some("dead-letter") => Some(FailureStage::DeadLetter),
        Some(_) => {
            return Err(ApiError::bad(
                "invalid-stage",
                "stage must be dispatch, email, sms or dead-letter",
            ));
        }
    };
    Ok(FailureFilter { code, channel, stage })
}

/// A page of the cycle's failure log, filtered by `code`, `channel` and `stage` when given
/// (the page's records are read, then filtered: a page may hold fewer than `limit`).
pub(crate) async fn failures(deps: &Deps, cycle: Cycle, req: &Request) -> Result<Response, ApiError> {
    let limit = page_size(req)?;
    let filter = failure_filter(req)?;
    let start = decode_token(req)?;
    let page = deps.failures.page_matching(Some(cycle), &filter, limit, start).await?;
    let records: Vec<Value> = page
        .records
        .iter()
        .map(|r| {
            let customer = domain::delivery::parse_delivery_id(&r.subject)
                .ok()
                .map(|(_, _, c)| c.as_str().to_owned());
            json!({
                "subject": r.subject,
                "customer_id": customer,
                "stage": r.stage,
                "code": r.code,
                "reason": r.reason,
                "channel": r.channel,
                "attempts": r.attempts,
                "occurrences": r.occurrences,
                "first_at": r.first_at,
                "last_at": r.last_at,
                "replayable": r.replay.is_some(),
            })
        })
        .collect();
    let unreadable: Vec<Value> = page
        .bad
        .iter()
        .map(|(key, reason)| json!({"key": key, "reason": reason}))
        .collect();
    let mut filters = serde_json::Map::new();
    if let Some(code) = &filter.code {
        filters.insert("code".into(), json!(code));
    }
    if let Some(channel) = filter.channel {
        filters.insert("channel".into(), json!(channel.as_str()));
    }
    if let Some(stage) = filter.stage {
        filters.insert("stage".into(), json!(stage.as_str()));
    }
    Ok(Response::ok(json!({
        "cycle": cycle.to_string(),
        "filters": filters,
        "records": records,
        "unreadable": unreadable,
        "next": page.next.as_ref().map(encode_token),
    })))
}

/// A customer's record (its shard, its sealed contact data), or 404.
async fn customer_of(deps: &Deps, customer: &CustomerId) -> Result<domain::Customer, ApiError> {
    match deps.customers.get(customer.as_str()).await? {
        Some(Ok(c)) => Ok(c),
        Some(Err(e)) => Err(ApiError::Internal(format!("customer record does not decode: {e}"))),
        None => Err(ApiError::not_found("unknown-customer", "no customer has this id")),
    }
}

/// The shard of a customer, or 404.
pub(crate) async fn shard_of(deps: &Deps, customer: &CustomerId) -> Result<u32, ApiError> {
    Ok(customer_of(deps, customer).await?.shard)
}

/// The do-not-disturb slots of an item (a list of slot indices), as `HH:MM-HH:MM`.
pub(crate) fn dnd_slots(item: &Item) -> Vec<String> {
    let Some(AttributeValue::L(list)) = item.get("dnd") else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|v| v.as_n().ok())
        .filter_map(|n| n.parse::<u32>().ok())
        .filter_map(|i| domain::Slot::new(i).ok())
        .map(|slot| slot.to_string())
        .collect()
}

fn n_attr(item: &Item, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

pub(crate) async fn delivery(
    deps: &Deps,
    cycle: Cycle,
    customer: &CustomerId,
    now: DateTime<Utc>,
) -> Result<Response, ApiError> {
    let record = customer_of(deps, customer).await?;
    let shard = record.shard;
    let Some(raw) = deps.deliveries.raw(cycle, shard, customer).await? else {
        return Err(ApiError::not_found(
            "unknown-delivery",
            format!("the customer has no delivery in cycle {cycle}"),
        ));
    };
    let id = domain::bill::bill_id(cycle, shard, customer);
    let keys = deps.keys.for_contact(&record.contact).await?;
    let contact = match record.contact.open(&keys, &record.customer_id) {
        Ok(open) => json!({
            "name": mask_name(open.name.expose()),
            "email": mask_email(open.email.expose()),
            "phone": mask_phone(open.phone.expose()),
        }),
        Err(_) => json!({"error": "the contact data cannot be opened with this stage's keyring"}),
    };
    let range: Option<domain::range::ByteRange> = attr_s(&raw, "email_range").and_then(|r| r.parse().ok());
    let invoice_link = match attr_s(&raw, "email_key") {
        Some(key) => match deps.bucket.presign_invoice(key, range, LINK_TTL).await {
            Ok(url) => Some(url),
            Err(e) => {
                tracing::warn!(delivery_id = %id, error = %e, "no invoice link");
                None
            }
        },
        None => None,
    };
    let mut history = Vec::new();
    let mut records = Vec::new();
    for stage in [
        FailureStage::Dispatch,
        FailureStage::Email,
        FailureStage::Sms,
        FailureStage::DeadLetter,
    ] {
        if let Some(r) = deps.failures.get(Some(cycle), &id, stage).await? {
            history.push(json!({
                "stage": r.stage, "code": r.code, "reason": r.reason, "channel": r.channel,
                "attempts": r.attempts, "occurrences": r.occurrences,
                "first_at": r.first_at, "last_at": r.last_at,
            }));
            records.push(r);
        }
    }
    let (commands, _) = deps.commands.by_target(&id, MAX_PAGE, None).await?;
    let timeline = crate::timeline::timeline(&raw, &records, &commands);
    let dnd = dnd_slots(&raw);
    let operator_action = operator_action(&raw, now);
    let text = |name: &str| attr_s(&raw, name).map(str::to_owned);
    let number = |name: &str| n_attr(&raw, name).unwrap_or(0);
    Ok(Response::ok(json!({
        "delivery_id": id,
        "cycle": cycle.to_string(),
        "shard": shard,
        "customer_id": customer.as_str(),
        "state": text("state"),
        "channel": text("channel"),
        "preferred_channel": text("preferred_channel"),
        "send_date": text("send_date"),
        "available_at": text("available_at"),
        "in_due_index": raw.contains_key("due_pk"),
        "dnd_slots": dnd,
        "dnd_ignored_by_force_send": raw.contains_key("dnd_before_force"),
        "total": number("total"),
        "attempts": {"email": number("attempts_email"), "sms": number("attempts_sms")},
        "claims": {"email": number("claims_email"), "sms": number("claims_sms")},
        "deferrals": number("deferrals"),
        "send_round": number("send_round"),
        "last_error": text("last_error"),
        "held_reason": text("held_reason"),
        "parked_reason": text("parked_reason"),
        "queued_at": text("queued_at"),
        "lease_until": text("lease_until"),
        "provider_call_started": raw.contains_key("provider_call"),
        "operator_action": operator_action,
        "sent_at": text("sent_at"),
        "confirmed_at": text("confirmed_at"),
        "provider_message_id": text("provider_message_id"),
        "template_version": text("template_version"),
        "subject": text("subject"),
        "invoice": {
            "key": text("email_key"),
            // In a pack, the link reads this invoice only when sent with this `Range` header
            // (it is one of the signed headers).
            "range": range.map(|r| r.http_header()),
            "link": invoice_link,
            "link_expires_at": (now + chrono::Duration::from_std(LINK_TTL).unwrap_or_default())
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        },
        "contact": contact,
        "failures": history,
        "commands": commands,
        "timeline": timeline,
        "created_at": text("created_at"),
        "updated_at": text("updated_at"),
    })))
}

/// What an operator can do about a delivery that no sender will finish: `None` for one
/// that is on its way, waiting or done.
fn operator_action(raw: &Item, now: DateTime<Utc>) -> Option<&'static str> {
    let seen = Seen::read(raw).ok()?;
    match seen.state {
        DeliveryState::Unconfirmed => Some(
            "a call to a provider that cannot be asked may have sent it: confirm it if the provider's evidence shows it went out, resend it otherwise",
        ),
        DeliveryState::Queued | DeliveryState::Sending if seen.sender_may_hold_until(now).is_none() => {
            Some("no sender holds it any more: resend puts it back to dispatch in its send round")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_execution_arn_has_its_console_address_and_anything_else_none() {
        let arn = "arn:aws:states:ap-northeast-2:123456789012:execution:billing-settle-month:2026-11-run1";
        assert_eq!(
            execution_url(arn).as_deref(),
            Some(
                "https://ap-northeast-2.console.aws.amazon.com/states/home?region=ap-northeast-2#/v2/executions/details/arn:aws:states:ap-northeast-2:123456789012:execution:billing-settle-month:2026-11-run1"
            )
        );
        let cn = "arn:aws-cn:states:cn-north-1:123456789012:execution:m:n";
        assert!(
            execution_url(cn)
                .unwrap()
                .starts_with("https://cn-north-1.console.amazonaws.cn/")
        );
        for other in [
            "seed",
            "local-2026-11",
            "",
            "arn:aws:states:ap-northeast-2:123456789012:stateMachine:billing-settle-month",
            "arn:aws:lambda:ap-northeast-2:123456789012:execution:m:n",
            "arn:aws:states:ap-northeast-2:1234:execution:m:n",
            "arn:aws:states:ap-northeast-2:123456789012:execution:m:n<script>",
            "arn:aws:states:ap-northeast-2:123456789012:express:m:n:id",
            "arn:other:states:ap-northeast-2:123456789012:execution:m:n",
        ] {
            assert_eq!(execution_url(other), None, "{other}");
        }
    }

    #[test]
    fn the_shard_list_names_every_shard_in_order_not_started_ones_too() {
        let done = ShardRecord {
            shard: 1,
            status: ShardStatus::Failed,
            run_id: "run".into(),
            catalog_version: "v1".into(),
            cursor: None,
            customers: 3,
            bills: 2,
            not_billable: 0,
            usage_lines: 0,
            checksum: 0,
            digest: String::new(),
            error_count: 2,
            errors: vec!["usage.csv line 7: unknown product".into(), "second".into()],
            attempts: 3,
            updated_at: "2026-12-01T00:00:00Z".into(),
            render: None,
            suspense: None,
        };
        let list = shard_list(3, &HashMap::from([(1, done)]));
        let statuses: Vec<&str> = list.iter().map(|s| s["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["NOT_STARTED", "FAILED", "NOT_STARTED"]);
        assert_eq!(list[1]["error"], "usage.csv line 7: unknown product");
        assert_eq!(
            (list[1]["bills"].as_u64(), list[1]["attempts"].as_u64()),
            (Some(2), Some(3))
        );
        assert!(list[0]["bills"].is_null() && list[0]["updated_at"].is_null());
        assert_eq!(list[2]["shard"], 2);
    }
}
