//! `AdminApi`: the operators' JSON API, behind a Lambda Function URL with `AuthType:
//! AWS_IAM` (the caller's IAM identity is in every request; it is who the audit names).
//!
//! | route | answer |
//! |---|---|
//! | `GET /cycles/{cycle}` | the cycle: state, shards done / failed / rendered, counts and checksum, the execution |
//! | `GET /cycles/{cycle}/funnel` | the cycle's deliveries counted by state (every state, zeros included), by channel and by send day; `needs_operator`: the `UNCONFIRMED` ones |
//! | `GET /cycles/{cycle}/failures?limit=&next=` | the cycle's failure log, a page at a time |
//! | `GET /cycles/{cycle}/deliveries/{customer}` | one delivery: state, channel, attempts, slots, template version, a link to the invoice, masked contact data, failure records and commands |
//! | `POST /cycles/{cycle}/deliveries/{customer}/schedule` | a `READY` or `HELD` delivery goes out no earlier than `available_at` |
//! | `POST /cycles/{cycle}/deliveries/{customer}/resend` | a sent, dead, held or unconfirmed delivery goes out once more, in a new send round; a `QUEUED` or `SENDING` one that no sender holds any more goes back to dispatch in its round |
//! | `POST /cycles/{cycle}/deliveries/{customer}/convert-to-sms` | a `READY` or `HELD` delivery goes out by SMS |
//! | `POST /cycles/{cycle}/deliveries/{customer}/force-send` | a `READY` or `HELD` delivery goes out now, ignoring the customer's do-not-disturb slots (never the quiet window) |
//! | `POST /cycles/{cycle}/deliveries/{customer}/hold` | a `READY` delivery is held: dispatch leaves it until a `schedule`, `resend`, `convert-to-sms` or `force-send` |
//! | `POST /cycles/{cycle}/deliveries/{customer}/confirm` | an `UNCONFIRMED` delivery (a call to a provider that cannot be asked may have gone through) is recorded as sent on its channel, once the operator has seen the provider's evidence |
//! | `GET /commands/{command id}` | one command: who, what, why, when, its answer |
//! | `GET /audit?day=YYYY-MM-DD&limit=&next=` | the commands of a day |
//! | `GET /templates` | the invoice template versions this build carries, and the default one |
//! | `GET /templates/{version}/preview?sample=` | a version rendered for a fictional sample bill: subject, HTML, text message |
//! | `POST /templates/{version}/activate` | new cycles pin this version (see [`ops`]) |
//! | `GET /settings`, `GET`/`PUT /settings/{name}` | the channel policy and the active template version, at runtime (see [`ops`]) |
//! | `GET /queues`, `GET /queues/{queue}` | the dead-letter queues and their redrives |
//! | `POST /queues/{queue}/redrive` | moves a dead-letter queue's messages back at a bounded rate |
//!
//! Every mutating command carries `command_id` and `reason` (see [`commands`]); a delivery
//! command's effect is built by `adapters::deliveries::commands`, the one place of the
//! operators' transitions. Answers never
//! hold contact data in clear, internal errors or stack details: a 500 names the request id,
//! the log has the cause.

pub mod commands;
pub mod http;
pub mod local;
pub mod ops;

use std::collections::HashMap;
use std::time::Duration;

use adapters::customers::CustomerStore;
use adapters::cycles::{CycleStore, ShardStatus};
use adapters::data_bucket::DataBucket;
use adapters::deliveries::DeliveryStore;
use adapters::deliveries::commands::{Command, Refused, Seen, plan};
use adapters::dynamo::{Item, attr_s};
use adapters::failures::{FailureLog, FailureStage};
use adapters::settings::SettingsStore;
use adapters::{ConfigError, Vars};
use aws_config::SdkConfig;
use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::delivery::utc_seconds;
use domain::pii::{Keyring, mask_email, mask_name, mask_phone};
use domain::{Channel, CustomerId, Cycle, DeliveryId, DeliveryState};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::commands::{Applied, CommandLog, NewCommand, Requested, check_command_id, check_reason};
pub use crate::http::{ApiError, Caller, Request, Response};

/// How long an invoice link in an answer lives.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// Page sizes.
pub const DEFAULT_PAGE: i32 = 25;
pub const MAX_PAGE: i32 = 100;
/// Shards the funnel reads at once.
pub const FUNNEL_CONCURRENCY: usize = 16;
/// How far ahead a delivery may be scheduled.
pub const MAX_SCHEDULE_AHEAD_DAYS: i64 = 400;

pub struct Deps {
    pub cycles: CycleStore,
    pub deliveries: DeliveryStore,
    pub customers: CustomerStore,
    pub failures: FailureLog,
    pub bucket: DataBucket,
    pub commands: CommandLog,
    pub keys: Keyring,
    /// Every embedded invoice template version, validated at start.
    pub templates: invoice::Templates,
    /// The version a settlement pins unless its input or the operators' setting names
    /// another (`TEMPLATE_VERSION`).
    pub default_template: String,
    /// The operators' runtime settings (in `ADMIN_TABLE`).
    pub settings: SettingsStore,
    /// The deployment's channel policy (`CHANNEL_POLICY`), in force until a setting is made.
    pub default_policy: domain::dispatch::ChannelPolicy,
    pub sqs: aws_sdk_sqs::Client,
    /// The dead-letter queues operators look at and redrive.
    pub queues: Vec<ops::DeadLetterQueue>,
}

impl Deps {
    /// From `CYCLES_TABLE`, `DELIVERIES_TABLE`, `CUSTOMERS_TABLE`, `FAILURES_TABLE`,
    /// `DATA_BUCKET`, `ADMIN_TABLE`, `PII_KEYS` (to mask contact data), `TEMPLATE_VERSION`,
    /// `CHANNEL_POLICY` (`email,sms` when unset), and the dead-letter queues:
    /// `DELIVERY_DLQ_URL`/`_ARN`, `DISPATCH_DLQ_URL`/`_ARN` and
    /// `DISPATCH_CONTINUATION_QUEUE_ARN` (where the dispatch DLQ's messages are redriven).
    pub fn from_vars(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let ddb = adapters::dynamodb_client(sdk);
        let keys = Keyring::parse(&vars.required("PII_KEYS")?).map_err(|e| ConfigError::Invalid {
            name: "PII_KEYS",
            reason: e.to_string(),
        })?;
        Ok(Deps {
            cycles: CycleStore::new(ddb.clone(), vars.required("CYCLES_TABLE")?),
            deliveries: DeliveryStore::new(ddb.clone(), vars.required("DELIVERIES_TABLE")?),
            customers: CustomerStore::new(ddb.clone(), vars.required("CUSTOMERS_TABLE")?),
            failures: FailureLog::new(ddb.clone(), vars.required("FAILURES_TABLE")?),
            bucket: DataBucket::new(adapters::s3_client(sdk), vars.required("DATA_BUCKET")?),
            commands: CommandLog::new(ddb.clone(), vars.required("ADMIN_TABLE")?),
            settings: SettingsStore::new(ddb.clone(), vars.required("ADMIN_TABLE")?),
            default_policy: vars.parsed("CHANNEL_POLICY", domain::dispatch::ChannelPolicy::ALL)?,
            sqs: adapters::sqs_client(sdk),
            queues: vec![
                ops::DeadLetterQueue {
                    name: "delivery-dlq",
                    url: vars.required("DELIVERY_DLQ_URL")?,
                    arn: vars.required("DELIVERY_DLQ_ARN")?,
                    destination: None,
                    about: "email and SMS messages received ten times without an answer; RecordFailure turns them into failure records as they arrive, so messages stay here only while it cannot take them. A redrive sends them back to the email and SMS queues",
                },
                ops::DeadLetterQueue {
                    name: "dispatch-dlq",
                    url: vars.required("DISPATCH_DLQ_URL")?,
                    arn: vars.required("DISPATCH_DLQ_ARN")?,
                    destination: Some(vars.required("DISPATCH_CONTINUATION_QUEUE_ARN")?),
                    about: "dispatch runs that failed (the scheduler's invocations after its retries, continuations after three receives). A redrive runs each again through the continuation queue; a run of an old slot enqueues what is due now",
                },
            ],
            keys,
            templates: invoice::Templates::embedded().map_err(|e| ConfigError::Invalid {
                name: "templates",
                reason: e.to_string(),
            })?,
            default_template: vars.required("TEMPLATE_VERSION")?,
        })
    }
}

/// The Lambda handler: never an invocation error for a request (a bad one is a 4xx, ours a 500).
pub async fn handle(
    deps: &Deps,
    event: LambdaEvent<LambdaFunctionUrlRequest>,
) -> Result<LambdaFunctionUrlResponse, lambda_runtime::Error> {
    let mut req = Request::from_event(&event.payload);
    if req.request_id.is_empty() {
        req.request_id = event.context.request_id.clone();
    }
    Ok(serve(deps, &req, Utc::now()).await.into_event())
}

/// Answers one request at `now`.
pub async fn serve(deps: &Deps, req: &Request, now: DateTime<Utc>) -> Response {
    let answer = route(deps, req, now).await;
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            match &e {
                ApiError::Internal(cause) => {
                    tracing::error!(request_id = %req.request_id, method = %req.method, path = %req.path, %cause, "request failed")
                }
                other => {
                    tracing::info!(request_id = %req.request_id, method = %req.method, path = %req.path, status = other.status(), error = %other, "request refused")
                }
            }
            e.into_response(&req.request_id)
        }
    };
    tracing::info!(request_id = %req.request_id, method = %req.method, path = %req.path, status = response.status, "request");
    response
}

async fn route(deps: &Deps, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let caller = req.caller.as_ref().ok_or_else(|| {
        ApiError::Forbidden("no IAM identity in the request: the function URL must use AWS_IAM".into())
    })?;
    let seg = req.segments();
    let method = req.method.as_str();
    let only = |allowed: &str| -> Result<(), ApiError> {
        if method == allowed {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed {
                method: method.to_owned(),
                path: req.path.clone(),
            })
        }
    };
    match seg.as_slice() {
        ["cycles", cycle] => {
            only("GET")?;
            cycle_status(deps, parse_cycle(cycle)?).await
        }
        ["cycles", cycle, "funnel"] => {
            only("GET")?;
            funnel(deps, parse_cycle(cycle)?).await
        }
        ["cycles", cycle, "failures"] => {
            only("GET")?;
            failures(deps, parse_cycle(cycle)?, req).await
        }
        ["cycles", cycle, "deliveries", customer] => {
            only("GET")?;
            delivery(deps, parse_cycle(cycle)?, &parse_customer(customer)?, now).await
        }
        ["cycles", cycle, "deliveries", customer, verb] if DELIVERY_COMMANDS.contains(verb) => {
            only("POST")?;
            delivery_command(
                deps,
                verb,
                parse_cycle(cycle)?,
                &parse_customer(customer)?,
                req,
                caller,
                now,
            )
            .await
        }
        ["commands", id] => {
            only("GET")?;
            check_command_id(id)?;
            match deps.commands.get(id).await? {
                Some(r) => Ok(Response::ok(json!(r))),
                None => Err(ApiError::not_found("unknown-command", format!("no command {id}"))),
            }
        }
        ["audit"] => {
            only("GET")?;
            audit(deps, req).await
        }
        ["templates"] => {
            only("GET")?;
            templates(deps).await
        }
        ["templates", version, "preview"] => {
            only("GET")?;
            preview(deps, version, req)
        }
        ["templates", version, "activate"] => {
            only("POST")?;
            ops::activate(deps, version, req, caller, now).await
        }
        ["settings"] => {
            only("GET")?;
            ops::list_settings(deps).await
        }
        ["settings", name] => match method {
            "GET" => ops::get_setting(deps, name).await,
            "PUT" => ops::put_setting(deps, name, req, caller, now).await,
            _ => Err(ApiError::MethodNotAllowed {
                method: method.to_owned(),
                path: req.path.clone(),
            }),
        },
        ["queues"] => {
            only("GET")?;
            ops::list_queues(deps).await
        }
        ["queues", name] => {
            only("GET")?;
            ops::get_queue(deps, name).await
        }
        ["queues", name, "redrive"] => {
            only("POST")?;
            ops::redrive(deps, name, req, caller, now).await
        }
        _ => Err(ApiError::not_found(
            "unknown-route",
            format!(
                "no route {} {} (see the README's admin API section)",
                req.method, req.path
            ),
        )),
    }
}

fn parse_cycle(s: &str) -> Result<Cycle, ApiError> {
    s.parse::<Cycle>()
        .map_err(|_| ApiError::bad("invalid-cycle", format!("cycle {s:?} is not YYYY-MM")))
}

fn parse_customer(s: &str) -> Result<CustomerId, ApiError> {
    CustomerId::new(s).map_err(|e| ApiError::bad("invalid-customer-id", e.to_string()))
}

fn page_size(req: &Request) -> Result<i32, ApiError> {
    match req.query.get("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(v) => match v.parse::<i32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(
                "invalid-limit",
                format!("limit must be 1 to {MAX_PAGE}, not {v:?}"),
            )),
        },
    }
}

/// A page token: the store's key, as base64url JSON of its string attributes.
fn encode_token(key: &Item) -> String {
    let map: serde_json::Map<String, Value> = key
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), Value::String(s.clone()))))
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Value::Object(map).to_string())
}

fn decode_token(req: &Request) -> Result<Option<Item>, ApiError> {
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
    let map: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if map.is_empty() || map.len() > 4 {
        return Err(bad());
    }
    Ok(Some(map.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect()))
}

async fn cycle_status(deps: &Deps, cycle: Cycle) -> Result<Response, ApiError> {
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
        "reasons": rec.reasons,
    })))
}

/// Every shard's deliveries, counted: one projected `Query` per shard, `FUNNEL_CONCURRENCY`
/// at a time (a million deliveries in 1,000 shards: about 2,000 pages).
async fn funnel(deps: &Deps, cycle: Cycle) -> Result<Response, ApiError> {
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

async fn failures(deps: &Deps, cycle: Cycle, req: &Request) -> Result<Response, ApiError> {
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
        None => Err(ApiError::not_found(
            "unknown-customer",
            format!("no customer {customer}"),
        )),
    }
}

/// The shard of a customer, or 404.
async fn shard_of(deps: &Deps, customer: &CustomerId) -> Result<u32, ApiError> {
    Ok(customer_of(deps, customer).await?.shard)
}

/// The do-not-disturb slots of an item (a list of slot indices), as `HH:MM-HH:MM`.
fn dnd_slots(item: &Item) -> Vec<String> {
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

async fn delivery(deps: &Deps, cycle: Cycle, customer: &CustomerId, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let record = customer_of(deps, customer).await?;
    let shard = record.shard;
    let Some(raw) = deps.deliveries.raw(cycle, shard, customer).await? else {
        return Err(ApiError::not_found(
            "unknown-delivery",
            format!("customer {customer} has no delivery in cycle {cycle}"),
        ));
    };
    let id = domain::bill::bill_id(cycle, shard, customer);
    let contact = match record.contact.open(&deps.keys, &record.customer_id) {
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

fn parse_instant(name: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad(
                "invalid-time",
                format!("{name} is not an RFC 3339 time such as 2026-12-15T09:00:00+09:00"),
            )
        })
}

/// What every command on a delivery carries.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    #[allow(dead_code)]
    command_id: String,
    reason: String,
    /// Not before this (RFC 3339): required by `schedule`, optional elsewhere (now).
    #[serde(default)]
    available_at: Option<String>,
    /// `resend` only: the channel to resend on (`email` or `sms`); the preferred one otherwise.
    #[serde(default)]
    channel: Option<String>,
}

/// The commands on a delivery, by the last segment of their route.
pub const DELIVERY_COMMANDS: [&str; 6] = ["schedule", "resend", "convert-to-sms", "force-send", "hold", "confirm"];

/// The command a body asks for, validated: its time, its channel, the fields it takes.
fn delivery_command_of(verb: &str, body: &CommandBody, cycle: Cycle, now: DateTime<Utc>) -> Result<Command, ApiError> {
    let no_channel = || {
        if body.channel.is_some() {
            Err(ApiError::bad("malformed-body", format!("{verb} takes no channel")))
        } else {
            Ok(())
        }
    };
    let at = || command_time(body.available_at.as_deref(), cycle, now);
    match verb {
        "schedule" => {
            no_channel()?;
            if body.available_at.is_none() {
                return Err(ApiError::bad("malformed-body", "schedule needs available_at"));
            }
            Ok(Command::Schedule { at: at()? })
        }
        "resend" => {
            let channel = match body.channel.as_deref() {
                None => None,
                Some("email") => Some(Channel::Email),
                Some("sms") => Some(Channel::Sms),
                Some(_) => return Err(ApiError::bad("invalid-channel", "channel must be email or sms")),
            };
            Ok(Command::Resend { at: at()?, channel })
        }
        "convert-to-sms" => {
            no_channel()?;
            Ok(Command::ConvertToSms { at: at()? })
        }
        "force-send" => {
            no_channel()?;
            Ok(Command::ForceSend { at: at()? })
        }
        "hold" | "confirm" => {
            if body.channel.is_some() || body.available_at.is_some() {
                let why = if verb == "hold" {
                    "hold takes no channel and no available_at: schedule releases a held delivery"
                } else {
                    "confirm takes no channel and no available_at: the delivery is confirmed on the channel it was sent on"
                };
                return Err(ApiError::bad("malformed-body", why));
            }
            Ok(if verb == "hold" {
                Command::Hold {
                    reason: body.reason.trim().to_owned(),
                }
            } else {
                Command::Confirm
            })
        }
        _ => Err(ApiError::Internal(format!("no delivery command {verb}"))),
    }
}

/// The shared path of every delivery command: the replay first (the request read only as
/// far as its command id), then validation, the delivery read, the command's plan for it
/// (`adapters::deliveries::commands`: the state machine's one place for operators'
/// transitions), and its change written with the command's record in one transaction.
async fn delivery_command(
    deps: &Deps,
    verb: &str,
    cycle: Cycle,
    customer: &CustomerId,
    req: &Request,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<Response, ApiError> {
    let requested = Requested::parse(req)?;
    if let Some(first) = deps.commands.replay_request(&requested).await? {
        return Ok(replayed(first));
    }
    let body: CommandBody = requested.body()?;
    check_reason(&body.reason)?;
    let command = delivery_command_of(verb, &body, cycle, now)?;
    let shard = shard_of(deps, customer).await?;
    let id = DeliveryId::new(cycle, shard, customer.clone());
    let target = id.canonical();
    let cmd = NewCommand {
        id: &requested.command_id,
        name: command.name(),
        target: target.clone(),
        who: &caller.arn,
        why: &body.reason,
        request_digest: requested.digest.clone(),
        at: now,
    };
    let Some(raw) = deps.deliveries.raw(cycle, shard, customer).await? else {
        return Err(ApiError::not_found(
            "unknown-delivery",
            format!("customer {customer} has no delivery in cycle {cycle}"),
        ));
    };
    let seen =
        Seen::read(&raw).map_err(|e| ApiError::conflict("unreadable-delivery", format!("delivery {target}: {e}")))?;
    let planned = plan(&requested.command_id, &command, &id, &seen, now).map_err(|r| refusal(&target, &command, r))?;
    let mut result = json!({
        "command_id": requested.command_id,
        "command": command.name(),
        "delivery_id": target,
        "state": planned.to.as_str(),
        "previous": {"state": seen.state.as_str(), "available_at": attr_s(&raw, "available_at")},
        "replayed": false,
    });
    let answer = match &command {
        Command::Schedule { at } => json!({"available_at": utc_seconds::format(at)}),
        Command::Resend { at, channel } => json!({
            "send_round": planned.send_round,
            "new_round": planned.new_round,
            "available_at": utc_seconds::format(at),
            "channel": channel.map(Channel::as_str).or(seen.preferred_channel.map(Channel::as_str)),
        }),
        Command::ConvertToSms { at } => json!({
            "channel": "sms",
            "available_at": utc_seconds::format(at),
            "previous_channel": seen.preferred_channel.map(Channel::as_str),
        }),
        Command::ForceSend { at } => json!({
            "available_at": utc_seconds::format(at),
            "dnd_ignored": seen.dnd_set_aside || !dnd_slots(&raw).is_empty(),
            "quiet_window": "still applies",
        }),
        Command::Hold { reason } => json!({"held_reason": reason}),
        Command::Confirm => json!({
            "channel": seen.channel.map(Channel::as_str),
            "confirmed_at": utc_seconds::format(&now),
        }),
    };
    if let (Some(out), Value::Object(extra)) = (result.as_object_mut(), answer) {
        out.extend(extra);
    }
    let update = planned.change.into_update(&deps.deliveries, &id)?;
    let applied = deps
        .commands
        .apply(
            &cmd,
            TransactWriteItem::builder().update(update).build(),
            result,
            || {
                ApiError::conflict(
                    "changed-meanwhile",
                    format!("delivery {target} changed while the command was given; read it again"),
                )
            },
        )
        .await?;
    Ok(match applied {
        Applied::Now(result) => {
            tracing::info!(command_id = %requested.command_id, command = command.name(), delivery_id = %target, who = %caller.arn, "command applied");
            Response::ok(result)
        }
        Applied::Replayed(first) => replayed(first),
    })
}

/// Why a command does not apply, for the operator (409).
fn refusal(target: &str, command: &Command, r: Refused) -> ApiError {
    match r {
        Refused::WrongState { state, applies_to } => {
            let states: Vec<&str> = applies_to.iter().map(|s| s.as_str()).collect();
            let mut message = format!(
                "delivery {target} is {state}; {} applies to a delivery that is {}",
                command.name(),
                states.join(" or ")
            );
            if matches!(command, Command::Resend { .. }) {
                message.push_str(" (QUEUED or SENDING once no sender holds it)");
            }
            ApiError::conflict("wrong-state", message)
        }
        Refused::SenderMayHold { state, until } => ApiError::conflict(
            "sender-holds-it",
            format!(
                "delivery {target} is {state} and a sender may still finish it until {}; resend it after that if it has not moved",
                utc_seconds::format(&until)
            ),
        ),
        Refused::Unreadable(e) => ApiError::conflict("unreadable-delivery", format!("delivery {target}: {e}")),
    }
}

/// `available_at` of a command: whole seconds, not in the past (now when absent or past by
/// less than five minutes of clock skew), at most `MAX_SCHEDULE_AHEAD_DAYS` ahead, and on a
/// day dispatch still takes the cycle (`domain::dispatch::dispatched_through`, Asia/Seoul):
/// a delivery due later would never be enqueued. Errors name the field, never its value.
fn command_time(v: Option<&str>, cycle: Cycle, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let now = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    let at = match v {
        None => now,
        Some(v) => {
            let at = parse_instant("available_at", v)?;
            let at = DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at);
            if at < now - chrono::Duration::minutes(5) {
                return Err(ApiError::bad("invalid-time", "available_at is in the past"));
            }
            if at > now + chrono::Duration::days(MAX_SCHEDULE_AHEAD_DAYS) {
                return Err(ApiError::bad(
                    "invalid-time",
                    format!("available_at is more than {MAX_SCHEDULE_AHEAD_DAYS} days ahead"),
                ));
            }
            at.max(now)
        }
    };
    let last = domain::dispatch::dispatched_through(cycle);
    if at.with_timezone(&domain::slots::seoul()).date_naive() > last {
        let message = format!(
            "dispatch takes cycle {cycle}'s deliveries through {last} (Asia/Seoul) and would never send one due later"
        );
        return Err(if v.is_some() {
            ApiError::bad(
                "beyond-dispatch-horizon",
                format!("available_at is too late: {message}"),
            )
        } else {
            ApiError::conflict(
                "beyond-dispatch-horizon",
                format!("the cycle is too old to send now: {message}"),
            )
        });
    }
    Ok(at)
}

async fn templates(deps: &Deps) -> Result<Response, ApiError> {
    let active = deps
        .settings
        .get(adapters::settings::TEMPLATE_VERSION)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let versions: Vec<Value> = deps
        .templates
        .versions()
        .filter_map(|v| deps.templates.version(v).ok())
        .map(|r| json!({"version": r.version(), "meta": r.meta()}))
        .collect();
    Ok(Response::ok(json!({
        "default": deps.default_template,
        "active": active.as_ref().map_or(deps.default_template.as_str(), |s| s.value.as_str()),
        "active_source": if active.is_some() { "setting" } else { "deployment" },
        "versions": versions,
        "samples": invoice::samples::SAMPLE_KEYS,
    })))
}

/// A version rendered for one of the fictional sample bills (never a customer's data).
fn preview(deps: &Deps, version: &str, req: &Request) -> Result<Response, ApiError> {
    let renderer = deps.templates.version(version).map_err(|_| {
        let known: Vec<&str> = deps.templates.versions().collect();
        ApiError::not_found(
            "unknown-template-version",
            format!("no template version {version:?}; this build has {}", known.join(", ")),
        )
    })?;
    let key = req.query.get("sample").map(String::as_str).unwrap_or("family");
    let sample = invoice::samples::by_key(key)
        .map_err(|e| ApiError::Internal(format!("sample {key}: {e}")))?
        .ok_or_else(|| {
            ApiError::bad(
                "invalid-sample",
                format!(
                    "sample {key:?} is not one of {}",
                    invoice::samples::SAMPLE_KEYS.join(", ")
                ),
            )
        })?;
    let rendered = renderer
        .render_bill(&sample.bill, &sample.name, &sample.phone)
        .map_err(|e| ApiError::Internal(format!("rendering {version}/{key}: {e}")))?;
    Ok(Response::ok(json!({
        "version": version,
        "sample": key,
        "subject": rendered.subject,
        "html": rendered.html,
        "sms": invoice::sms_with_link(&rendered.sms, &invoice::samples::example_presigned_url())
            .map_err(|e| ApiError::Internal(format!("the text message of {version}/{key}: {e}")))?,
        "content_hash": rendered.content_hash,
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

pub(crate) fn replayed(first: commands::CommandRecord) -> Response {
    let mut result = first.result;
    if let Some(o) = result.as_object_mut() {
        o.insert("replayed".into(), Value::Bool(true));
    }
    Response::ok(result)
}

async fn audit(deps: &Deps, req: &Request) -> Result<Response, ApiError> {
    let day = req
        .query
        .get("day")
        .ok_or_else(|| ApiError::bad("missing-day", "audit needs ?day=YYYY-MM-DD (UTC)"))?;
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| ApiError::bad("invalid-day", format!("day {day:?} is not YYYY-MM-DD")))?;
    let limit = page_size(req)?;
    let start = decode_token(req)?;
    let (records, next) = deps.commands.by_day(day, limit, start).await?;
    Ok(Response::ok(json!({
        "day": day,
        "commands": records,
        "next": next.as_ref().map(encode_token),
    })))
}
