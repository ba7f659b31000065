//! The reads: where a cycle stands (`GET /cycles/{cycle}`), its deliveries counted
//! (`/funnel`), its failure log a page at a time (`/failures`), and one delivery with its
//! failures, its commands and what an operator can do about it
//! (`/deliveries/{customer}`). Also the paging every list shares (`limit`, `next`).
//!
//! Nothing here writes. Contact data leaves only masked; the invoice is a link that expires
//! after [`LINK_TTL`].

use std::collections::HashMap;
use std::time::Duration;

use adapters::cycles::ShardStatus;
use adapters::deliveries::commands::Seen;
use adapters::dynamo::{Item, attr_s};
use adapters::failures::FailureStage;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::pii::{mask_email, mask_name, mask_phone};
use domain::{CustomerId, Cycle, DeliveryState};
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
/// at a time (a million deliveries in 1,000 shards: about 2,000 pages).
pub(crate) async fn funnel(deps: &Deps, cycle: Cycle) -> Result<Response, ApiError> {
    use futures::{StreamExt, TryStreamExt, stream};
    use std::collections::BTreeMap;

    let Some(rec) = deps.cycles.get(cycle).await? else {
        return Err(ApiError::not_found(
            "unknown-cycle",
            format!("cycle {cycle} has not been settled or started"),
        ));
    };
    let shards: Vec<Vec<adapters::deliveries::FunnelEntry>> = stream::iter(0..rec.shard_count)
        .map(|shard| deps.deliveries.shard_funnel(cycle, shard))
        .buffer_unordered(FUNNEL_CONCURRENCY)
        .try_collect()
        .await?;
    // Every state, counted or not: an operator sees UNCONFIRMED (and DEAD) at zero too.
    let mut by_state: BTreeMap<String, u64> = DeliveryState::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
    let mut by_channel: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut by_day: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
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
    }
    Ok(Response::ok(json!({
        "cycle": cycle.to_string(),
        "deliveries": total,
        "bills": rec.bills,
        "needs_operator": by_state.get(DeliveryState::Unconfirmed.as_str()).copied().unwrap_or(0),
        "by_state": by_state,
        "by_channel": by_channel,
        "by_send_day": by_day,
        "shards_read": rec.shard_count,
    })))
}

pub(crate) async fn failures(deps: &Deps, cycle: Cycle, req: &Request) -> Result<Response, ApiError> {
    let limit = page_size(req)?;
    let start = decode_token(req)?;
    let page = deps.failures.page(Some(cycle), limit, start).await?;
    let records: Vec<Value> = page
        .records
        .iter()
        .map(|r| {
            json!({
                "subject": r.subject,
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
    Ok(Response::ok(json!({
        "cycle": cycle.to_string(),
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
    let invoice_link = match attr_s(&raw, "email_key") {
        Some(key) => match deps.bucket.presign_invoice(key, LINK_TTL).await {
            Ok(url) => Some(url),
            Err(e) => {
                tracing::warn!(delivery_id = %id, error = %e, "no invoice link");
                None
            }
        },
        None => None,
    };
    let mut history = Vec::new();
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
        }
    }
    let (commands, _) = deps.commands.by_target(&id, MAX_PAGE, None).await?;
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
            "link": invoice_link,
            "link_expires_at": (now + chrono::Duration::from_std(LINK_TTL).unwrap_or_default())
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        },
        "contact": contact,
        "failures": history,
        "commands": commands,
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
