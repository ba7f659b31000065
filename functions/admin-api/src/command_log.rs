//! Commands: idempotent by command id, audited, and applied atomically with their record.
//!
//! `AdminTable` holds one item per command (`pk` = `CMD#{command id}`): what it was (name,
//! target, the request's digest), who asked (the caller's IAM ARN), why (the operator's
//! reason), when, and the answer it got. That item is both the idempotency record and the
//! audit record, and it is written **in the same DynamoDB transaction** as the command's
//! effect, each with its condition: either both happen or neither does. So:
//!
//! - replaying a command id returns the first answer (`replayed: true`) and changes nothing;
//! - the same id with another request is refused (409), never silently taken as the first;
//! - two callers racing with one id: one transaction wins, the other finds the record;
//! - a command whose effect's condition fails (the delivery moved on meanwhile) leaves no
//!   record, so it can be retried with the same id once the operator has looked again.
//!
//! The audit trail is read by day (index `ByDay`: `day`, `at_id`) and by target (index
//! `ByTarget`: `target`, `at_id`).

use adapters::dynamo::{Item, attr_s};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http::{ApiError, Caller, Request, Response};

/// Longest command id and reason accepted.
pub const MAX_COMMAND_ID: usize = 64;
pub const MAX_REASON: usize = 500;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A command id: 1 to 64 of `A-Z a-z 0-9 . _ : -` (a UUID fits).
pub fn check_command_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_COMMAND_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok && domain::text::holds_contact(id) {
        return Err(ApiError::bad(
            "invalid-command-id",
            "command_id must not look like a phone number or an email address (it is stored, logged and shown in the audit)",
        ));
    }
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(
            "invalid-command-id",
            format!("command_id must be 1 to {MAX_COMMAND_ID} letters, digits, '.', '_', ':' or '-'"),
        ))
    }
}

/// The operator's reason: required, at most 500 characters.
pub fn check_reason(reason: &str) -> Result<(), ApiError> {
    let n = reason.trim().chars().count();
    if n == 0 || n > MAX_REASON {
        return Err(ApiError::bad(
            "invalid-reason",
            format!("reason is required (why the command is given), at most {MAX_REASON} characters"),
        ));
    }
    if domain::text::holds_contact(reason) {
        return Err(ApiError::bad(
            "invalid-reason",
            "reason must not hold a phone number or an email address: name the customer by id (the reason is kept in the audit and shown to every viewer)",
        ));
    }
    Ok(())
}

/// A command as it came in, read just enough to answer a replay: its id, and the digest
/// of the request **as sent** (method, path — the target as the caller named it — and the
/// body's fields, the reason included, in a canonical order). Nothing derived enters the
/// digest: not a time clamped to now, not a value made canonical, not the shard looked up.
/// So the same request is the same command whenever it is retried, and any other request
/// under its id is a conflict. Validation comes after the replay lookup ([`Self::parse`],
/// [`CommandLog::replay_request`], then [`Self::body`]): a late retry of an applied command
/// gets its first answer, even when the request would no longer pass (a time now past).
#[derive(Clone, Debug)]
pub struct Requested {
    pub command_id: String,
    pub digest: String,
    body: Value,
}

/// A JSON value with every object's keys in order (the body's field order is not part of
/// the request).
fn canonical_json(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), canonical_json(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical_json).collect()),
        other => other.clone(),
    }
}

impl Requested {
    /// The body as a JSON object with a well-formed `command_id`; 400 otherwise (no command
    /// id, no replay).
    pub fn parse(req: &Request) -> Result<Requested, ApiError> {
        let text = req
            .body
            .as_deref()
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| ApiError::bad("missing-body", "this command needs a JSON body"))?;
        let body: Value =
            serde_json::from_str(text).map_err(|_| ApiError::bad("malformed-body", "the body is not JSON"))?;
        if !body.is_object() {
            return Err(ApiError::bad("malformed-body", "the body is not a JSON object"));
        }
        let command_id = match body.get("command_id") {
            Some(Value::String(id)) => id.clone(),
            Some(_) => {
                return Err(ApiError::bad("invalid-command-id", "command_id is not a string"));
            }
            None => return Err(ApiError::bad("malformed-body", "missing field `command_id`")),
        };
        check_command_id(&command_id)?;
        let digest = NewCommand::digest(&req.method, &req.path, &canonical_json(&body));
        Ok(Requested {
            command_id,
            digest,
            body,
        })
    }

    /// The body as the command's type (unknown fields refused), decoded with
    /// [`domain::decode`]: the error names the field and what was expected there, never a
    /// value the caller sent.
    pub fn body<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        domain::decode::from_value(self.body.clone())
            .map_err(|e| ApiError::bad("malformed-body", format!("the body is not a valid command: {e}")))
    }
}

/// A new command as a route receives it, once its replay was looked up
/// ([`CommandLog::unless_replayed`]): the request read as far as its command id, who gave
/// it, and when.
#[derive(Debug)]
pub struct Given<'a> {
    pub requested: Requested,
    pub caller: &'a Caller,
    pub now: DateTime<Utc>,
}

impl Given<'_> {
    /// The command's id.
    pub fn id(&self) -> &str {
        &self.requested.command_id
    }

    /// The body as the command's type (see [`Requested::body`]).
    pub fn body<T: for<'de> serde::Deserialize<'de>>(&self) -> Result<T, ApiError> {
        self.requested.body()
    }

    /// Its record, about to be applied: the command `name` on `target`, for the operator's
    /// reason `why`.
    pub fn record<'b>(&'b self, name: &'static str, target: String, why: &'b str) -> NewCommand<'b> {
        NewCommand {
            id: &self.requested.command_id,
            name,
            target,
            who: &self.caller.arn,
            why,
            request_digest: self.requested.digest.clone(),
            at: self.now,
        }
    }
}

/// A command about to be applied.
#[derive(Clone, Debug)]
pub struct NewCommand<'a> {
    pub id: &'a str,
    /// `resend`, `schedule`, ...
    pub name: &'static str,
    /// What it acts on, e.g. a delivery id.
    pub target: String,
    /// The caller's IAM ARN.
    pub who: &'a str,
    pub why: &'a str,
    /// Digest of the request as sent ([`Requested`]).
    pub request_digest: String,
    pub at: DateTime<Utc>,
}

impl NewCommand<'_> {
    /// The digest of a command's defining parts.
    pub fn digest(name: &str, target: &str, params: &Value) -> String {
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update([0]);
        h.update(target.as_bytes());
        h.update([0]);
        h.update(params.to_string().as_bytes());
        hex::encode(h.finalize())
    }
}

/// A stored command: its audit record and its first answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CommandRecord {
    pub command_id: String,
    pub command: String,
    pub target: String,
    pub who: String,
    pub why: String,
    pub at: String,
    #[serde(skip)]
    pub request_digest: String,
    pub result: Value,
}

impl CommandRecord {
    fn decode(item: &Item) -> Option<Self> {
        let id = attr_s(item, "pk")?.strip_prefix("CMD#")?.to_owned();
        Some(CommandRecord {
            command_id: id,
            command: attr_s(item, "command")?.to_owned(),
            target: attr_s(item, "target")?.to_owned(),
            who: attr_s(item, "who")?.to_owned(),
            why: attr_s(item, "why")?.to_owned(),
            at: attr_s(item, "at")?.to_owned(),
            request_digest: attr_s(item, "request_digest")?.to_owned(),
            result: serde_json::from_str(attr_s(item, "result")?).ok()?,
        })
    }
}

/// The answer to a replayed command: its first answer, marked `replayed: true`.
pub fn replayed(first: CommandRecord) -> Response {
    let mut result = first.result;
    if let Some(o) = result.as_object_mut() {
        o.insert("replayed".into(), Value::Bool(true));
    }
    Response::ok(result)
}

/// How a command ended.
#[derive(Debug)]
pub enum Applied {
    /// Applied now; the answer is stored with the command.
    Now(Value),
    /// Applied earlier under this id: the first answer.
    Replayed(CommandRecord),
}

impl Applied {
    /// The answer to give: the result applied now, once `log` has noted it, or the first
    /// answer when another request under the same command id was applied first.
    pub fn answer(self, log: impl FnOnce()) -> Response {
        match self {
            Applied::Now(result) => {
                log();
                Response::ok(result)
            }
            Applied::Replayed(first) => replayed(first),
        }
    }
}

/// How a command with several writes ended ([`CommandLog::apply_all`]).
#[derive(Debug)]
pub enum AllApplied {
    /// Applied now, or earlier under this id.
    Done(Applied),
    /// The write at this index found its target changed: nothing was written.
    Refused(usize),
}

/// The refusal of a command whose target (`what`, e.g. `delivery {id}`) changed between
/// the command's read and its write (409).
pub fn changed_meanwhile(what: &str) -> ApiError {
    ApiError::conflict(
        "changed-meanwhile",
        format!("{what} changed while the command was given; read it again"),
    )
}

/// The command records in `AdminTable`.
#[derive(Clone, Debug)]
pub struct CommandLog {
    client: Client,
    table: String,
}

fn key(id: &str) -> String {
    format!("CMD#{id}")
}

impl CommandLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        CommandLog {
            client,
            table: table.into(),
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<CommandRecord>, ApiError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ApiError::Internal(format!("GetItem on {}: {e}", self.table)))?;
        match got.item {
            None => Ok(None),
            Some(item) => CommandRecord::decode(&item)
                .map(Some)
                .ok_or_else(|| ApiError::Internal(format!("command record {id} does not decode"))),
        }
    }

    /// The first answer if `cmd.id` was used before: the same request replays it, another
    /// request under the same id is a conflict.
    async fn replay(&self, cmd: &NewCommand<'_>) -> Result<Option<CommandRecord>, ApiError> {
        self.replay_digest(cmd.id, &cmd.request_digest).await
    }

    /// The first answer if the request's command id was used before (the same request), or
    /// 409 (another request under that id); `None` for a new command. Asked for a request
    /// read only as far as its id, before anything else about it is checked.
    pub async fn replay_request(&self, r: &Requested) -> Result<Option<CommandRecord>, ApiError> {
        self.replay_digest(&r.command_id, &r.digest).await
    }

    /// Every command route's first step: the request read as far as its command id
    /// ([`Requested::parse`]) and its replay looked up ([`Self::replay_request`]). A command id
    /// given before gets its first answer ([`replayed`]); only a new command reaches `command`,
    /// which checks the rest of the request and carries it out.
    pub async fn unless_replayed<'a, F>(
        &self,
        req: &Request,
        caller: &'a Caller,
        now: DateTime<Utc>,
        command: impl FnOnce(Given<'a>) -> F,
    ) -> Result<Response, ApiError>
    where
        F: Future<Output = Result<Response, ApiError>>,
    {
        let requested = Requested::parse(req)?;
        match self.replay_request(&requested).await? {
            Some(first) => Ok(replayed(first)),
            None => command(Given { requested, caller, now }).await,
        }
    }

    async fn replay_digest(&self, id: &str, digest: &str) -> Result<Option<CommandRecord>, ApiError> {
        match self.get(id).await? {
            None => Ok(None),
            Some(r) if r.request_digest == digest => Ok(Some(r)),
            Some(r) => Err(ApiError::conflict(
                "command-id-reused",
                format!(
                    "this command id was used for {} on {} at {} with another request; use a new id for a new command",
                    r.command, r.target, r.at
                ),
            )),
        }
    }

    fn record_item(&self, cmd: &NewCommand<'_>, result: &Value) -> Item {
        let at = cmd.at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut item = Item::new();
        item.insert("pk".into(), s(key(cmd.id)));
        item.insert("command".into(), s(cmd.name));
        item.insert("target".into(), s(&cmd.target));
        item.insert("who".into(), s(cmd.who));
        item.insert("why".into(), s(cmd.why.trim()));
        item.insert("at".into(), s(&at));
        item.insert("day".into(), s(cmd.at.format("%Y-%m-%d").to_string()));
        item.insert("at_id".into(), s(format!("{at}#{}", cmd.id)));
        item.insert("request_digest".into(), s(&cmd.request_digest));
        item.insert("result".into(), s(result.to_string()));
        item
    }

    /// Applies `effect` and records the command in one transaction. `effect` is the
    /// command's write with its condition; when that condition fails, `on_effect_refused`
    /// says why (usually a 409 naming the state found, [`changed_meanwhile`]). Callers look
    /// the replay up first ([`Self::unless_replayed`], before reading the target); a replay
    /// racing this write still gets the first answer.
    pub async fn apply(
        &self,
        cmd: &NewCommand<'_>,
        effect: TransactWriteItem,
        result: Value,
        on_effect_refused: impl FnOnce() -> ApiError,
    ) -> Result<Applied, ApiError> {
        match self.apply_all(cmd, vec![effect], result).await? {
            AllApplied::Done(applied) => Ok(applied),
            AllApplied::Refused(_) => Err(on_effect_refused()),
        }
    }

    /// As [`Self::apply`] for a command with several writes (at most 99, each with its
    /// condition): all of them and the record in one transaction, or none. When a write's
    /// condition fails, [`AllApplied::Refused`] names the first that did (its index in
    /// `effects`), and nothing was written.
    pub async fn apply_all(
        &self,
        cmd: &NewCommand<'_>,
        effects: Vec<TransactWriteItem>,
        result: Value,
    ) -> Result<AllApplied, ApiError> {
        let record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.record_item(cmd, &result)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| ApiError::Internal(format!("building the command record: {e}")))?;
        let record_at = effects.len();
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(effects))
            .transact_items(TransactWriteItem::builder().put(record).build())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(AllApplied::Done(Applied::Now(result))),
            Err(e) => {
                let reasons: Vec<Option<String>> = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(x)) => x
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().map(str::to_owned))
                        .collect(),
                    _ => return Err(ApiError::Internal(format!("TransactWriteItems on {}: {e}", self.table))),
                };
                let failed = |i: usize| {
                    reasons
                        .get(i)
                        .and_then(|c| c.as_deref())
                        .is_some_and(|c| c == "ConditionalCheckFailed")
                };
                if failed(record_at) {
                    // Another request with this id won the race.
                    return match self.replay(cmd).await? {
                        Some(first) => Ok(AllApplied::Done(Applied::Replayed(first))),
                        None => Err(ApiError::Internal(format!("command {} vanished", cmd.id))),
                    };
                }
                if let Some(i) = (0..record_at).find(|i| failed(*i)) {
                    return Ok(AllApplied::Refused(i));
                }
                Err(ApiError::Internal(format!(
                    "TransactWriteItems on {} cancelled: {reasons:?}",
                    self.table
                )))
            }
        }
    }

    /// Records a command whose effect is not a DynamoDB write (a redrive): the record first,
    /// holding `result` (its "starting" answer), then the effect, then [`Self::finish`] with
    /// the real answer. `None` when the record was written; the existing record when the id
    /// was used before (the same request: a replay, another: 409).
    pub async fn reserve(&self, cmd: &NewCommand<'_>, result: &Value) -> Result<Option<CommandRecord>, ApiError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.record_item(cmd, result)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(None),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
            {
                match self.replay(cmd).await? {
                    Some(first) => Ok(Some(first)),
                    None => Err(ApiError::Internal(format!("command {} vanished", cmd.id))),
                }
            }
            Err(e) => Err(ApiError::Internal(format!("PutItem on {}: {e}", self.table))),
        }
    }

    /// The answer of a reserved command, once its effect is known.
    pub async fn finish(&self, id: &str, result: &Value) -> Result<(), ApiError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key(id)))
            .update_expression("SET #r = :r")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#r", "result")
            .expression_attribute_values(":r", s(result.to_string()))
            .send()
            .await
            .map_err(|e| ApiError::Internal(format!("UpdateItem on {}: {e}", self.table)))?;
        Ok(())
    }

    /// Commands of one day (UTC, `YYYY-MM-DD`) in time order, a page at a time.
    pub async fn by_day(
        &self,
        day: &str,
        limit: i32,
        start: Option<Item>,
    ) -> Result<(Vec<CommandRecord>, Option<Item>), ApiError> {
        self.index_page("ByDay", "day", day, limit, start).await
    }

    /// Commands on one target (e.g. a delivery id) in time order.
    pub async fn by_target(
        &self,
        target: &str,
        limit: i32,
        start: Option<Item>,
    ) -> Result<(Vec<CommandRecord>, Option<Item>), ApiError> {
        self.index_page("ByTarget", "target", target, limit, start).await
    }

    async fn index_page(
        &self,
        index: &str,
        attribute: &str,
        value: &str,
        limit: i32,
        start: Option<Item>,
    ) -> Result<(Vec<CommandRecord>, Option<Item>), ApiError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", attribute)
            .expression_attribute_values(":v", s(value))
            .limit(limit.max(1))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| ApiError::Internal(format!("Query {index} on {}: {e}", self.table)))?;
        let records = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(CommandRecord::decode)
            .collect();
        Ok((records, out.last_evaluated_key.filter(|k| !k.is_empty())))
    }
}
