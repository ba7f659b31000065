//! Corrections after send: `POST /cycles/{cycle}/bills/{customer}/corrections` (an
//! administrator's credit, debit or re-rating of a settled bill) and `GET` of the same path
//! (a bill's corrections, for viewers).
//!
//! A correction never rewrites the bill. It is a record in `CorrectionsTable`
//! (`adapters::corrections`), a corrected invoice (a new object next to the original,
//! rendered by `invoice::correction`), and the bill's delivery re-armed with it through the
//! operators' one place of transitions (`adapters::deliveries::commands`, `Command::Correct`:
//! a new send round for a delivery that went out, the corrected content in its round for one
//! still waiting, a refusal for one on its way). The record, the delivery's change, the
//! cycle's adjustment counters and the command's audit record are one DynamoDB transaction
//! ([`crate::command_log::CommandLog::apply_all`]); the invoice object is uploaded before it,
//! under a key that names its content, so a retry never overwrites what another correction
//! points at.
//!
//! Every step before the transaction only reads; a refusal leaves nothing but, at most, an
//! uploaded object no delivery points at. A replayed command id answers its first answer and
//! writes nothing (the replay is looked up first, [`crate::command_log::CommandLog::unless_replayed`]).

use adapters::corrections::{
    ChangedLine, Correction, CorrectionKind, MAX_AMOUNT_WON, MAX_CORRECTIONS, Standing, changed_lines,
};
use adapters::cycles::{CycleRecord, CycleStatus};
use adapters::deliveries::commands::{Command, Refused, Seen, plan};
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, NaiveDate, SecondsFormat};
use domain::delivery::DeliveryContent;
use domain::{Bill, CustomerId, Cycle, DeliveryId, DeliveryState, Krw};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::command_log::{AllApplied, Given, changed_meanwhile, check_reason};
use crate::delivery_commands::{command_time, refusal};
use crate::{ApiError, Deps, Response};

/// What a correction's body holds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrectionBody {
    /// Taken by [`crate::command_log::Requested::parse`]; declared so that `deny_unknown_fields` accepts it.
    #[allow(dead_code)]
    command_id: String,
    reason: String,
    kind: String,
    #[serde(default)]
    amount_won: Option<i64>,
    #[serde(default)]
    catalog_version: Option<String>,
}

/// A correction asked for, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Asked {
    Credit(i64),
    Debit(i64),
    Rerate(String),
}

impl Asked {
    fn kind(&self) -> CorrectionKind {
        match self {
            Asked::Credit(_) => CorrectionKind::Credit,
            Asked::Debit(_) => CorrectionKind::Debit,
            Asked::Rerate(_) => CorrectionKind::Rerate,
        }
    }
}

fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The body's fields checked: errors name the field and the rule, never the value.
fn asked(body: &CorrectionBody) -> Result<Asked, ApiError> {
    let amount = |kind: &str| -> Result<i64, ApiError> {
        if body.catalog_version.is_some() {
            return Err(ApiError::bad(
                "malformed-body",
                format!("a {kind} takes no catalog_version (only a rerate does)"),
            ));
        }
        match body.amount_won {
            Some(a) if (1..=MAX_AMOUNT_WON).contains(&a) => Ok(a),
            Some(_) => Err(ApiError::bad(
                "invalid-amount",
                format!("amount_won must be a whole number of won from 1 to {MAX_AMOUNT_WON}"),
            )),
            None => Err(ApiError::bad(
                "invalid-amount",
                format!("amount_won is required for a {kind}: a whole number of won from 1 to {MAX_AMOUNT_WON}"),
            )),
        }
    };
    match body.kind.as_str() {
        "credit" => amount("credit").map(Asked::Credit),
        "debit" => amount("debit").map(Asked::Debit),
        "rerate" => {
            if body.amount_won.is_some() {
                return Err(ApiError::bad(
                    "malformed-body",
                    "a rerate takes no amount_won: the amount is what the catalog version gives",
                ));
            }
            match body.catalog_version.as_deref() {
                Some(v) if valid_version(v) => Ok(Asked::Rerate(v.to_owned())),
                Some(_) => Err(ApiError::bad(
                    "invalid-catalog-version",
                    "catalog_version must be 1 to 32 letters, digits, '.', '_' or '-' (e.g. 2026-v2)",
                )),
                None => Err(ApiError::bad(
                    "invalid-catalog-version",
                    "catalog_version is required for a rerate",
                )),
            }
        }
        _ => Err(ApiError::bad("invalid-kind", "kind must be credit, debit or rerate")),
    }
}

/// The cycle's record, once it is settled: 404 for an unknown cycle, 409 for one not settled.
async fn settled_cycle(deps: &Deps, cycle: Cycle) -> Result<CycleRecord, ApiError> {
    match deps.cycles.get(cycle).await? {
        None => Err(ApiError::not_found(
            "unknown-cycle",
            format!("cycle {cycle} has not been settled or started"),
        )),
        Some(r) if r.status != CycleStatus::Settled => Err(ApiError::conflict(
            "cycle-not-settled",
            format!("cycle {cycle} is not SETTLED: only a settled cycle's bills are corrected"),
        )),
        Some(r) => Ok(r),
    }
}

/// The customer (with its shard and sealed contact data), or 404.
async fn customer(deps: &Deps, id: &CustomerId) -> Result<domain::Customer, ApiError> {
    match deps.customers.get(id.as_str()).await? {
        Some(Ok(c)) => Ok(c),
        Some(Err(e)) => Err(ApiError::Internal(format!("customer record does not decode: {e}"))),
        None => Err(ApiError::not_found("unknown-customer", "no customer has this id")),
    }
}

/// The customer's bill of the cycle, or 404.
async fn bill(deps: &Deps, cycle: Cycle, shard: u32, id: &CustomerId) -> Result<Bill, ApiError> {
    deps.corrections
        .bill(cycle, shard, id)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown-bill", format!("the customer has no bill in cycle {cycle}")))
}

/// The bill rated again under `version`, from what the settled shard was rated on.
async fn rerated(deps: &Deps, cycle: Cycle, shard: u32, id: &CustomerId, version: &str) -> Result<Bill, ApiError> {
    let catalog = deps.catalogs.get(version).await?.ok_or_else(|| {
        ApiError::not_found(
            "unknown-catalog-version",
            "the catalog version asked for is not published",
        )
    })?;
    let inputs = adapters::snapshots::load_shard_inputs(&deps.bucket, &deps.customers, cycle, shard).await?;
    let rating =
        inputs.customers.iter().find(|c| c.customer_id == *id).ok_or_else(|| {
            ApiError::conflict("not-rated", "the customer is not in the inputs its shard was rated on")
        })?;
    let usage = inputs.usage.unwrap_or_default();
    let parsed = if usage.is_empty() {
        billing::UsageParse::default()
    } else {
        billing::parse_usage(&usage, &inputs.usage_key, &catalog)
    };
    let refused = |message: String| ApiError::conflict("rating-failed", message);
    if let Some(e) = parsed
        .errors
        .iter()
        .find(|e| e.customer_id.as_deref() == Some(id.as_str()))
    {
        return Err(refused(format!(
            "the customer's usage does not rate under catalog {}: {e}",
            catalog.version()
        )));
    }
    let records: Vec<billing::UsageRecord<'_>> = parsed
        .records
        .into_iter()
        .filter(|r| r.customer_id == id.as_str())
        .collect();
    match billing::rate(&catalog, cycle, rating, &records) {
        Ok(Some(bill)) => Ok(bill),
        Ok(None) => Err(refused(format!("the customer had no day of service in cycle {cycle}"))),
        Err(e) => Err(refused(format!(
            "the bill does not rate under catalog {}: {e}",
            catalog.version()
        ))),
    }
}

/// The day (Asia/Seoul) of a stored instant, for the invoice.
fn seoul_day(at: &str) -> NaiveDate {
    DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&domain::slots::seoul()).date_naive())
        .unwrap_or_default()
}

fn adjustment_of(c: &Correction) -> invoice::Adjustment {
    invoice::Adjustment {
        seq: c.seq,
        kind: match c.kind {
            CorrectionKind::Credit => invoice::AdjustmentKind::Credit,
            CorrectionKind::Debit => invoice::AdjustmentKind::Debit,
            CorrectionKind::Rerate => invoice::AdjustmentKind::Rerate,
        },
        amount: Krw(c.amount),
        reason: c.reason.clone(),
        issued_on: seoul_day(&c.at),
        catalog_version: c.catalog_version.clone(),
        changed: c
            .changed_lines
            .iter()
            .map(|l| invoice::ChangedAmount {
                code: l.code.clone(),
                old: Krw(l.old),
                new: Krw(l.new),
            })
            .collect(),
    }
}

/// A correction record as answers show it.
fn shown(c: &Correction) -> Value {
    json!({
        "seq": c.seq,
        "command_id": c.command_id,
        "kind": c.kind.as_str(),
        "amount_won": c.amount,
        "reason": c.reason,
        "actor": c.actor,
        "at": c.at,
        "original_total": c.original_total,
        "due_before": c.due_before,
        "due_after": c.due_after,
        "catalog_version": c.catalog_version,
        "changed_lines": c.changed_lines,
        "invoice_key": c.invoice_key,
        "content_hash": c.content_hash,
    })
}

/// The object key of a bill's corrected invoice `seq`, next to the original
/// (`…/{template}.html`): the content hash in the name, so two corrections racing for one number
/// never overwrite each other's object (the loser's transaction fails; its object is left
/// unreferenced).
pub fn corrected_invoice_key(
    cycle: Cycle,
    shard: u32,
    customer: &CustomerId,
    version: &str,
    seq: u32,
    hash: &str,
) -> String {
    let short = hash.get(..12).unwrap_or(hash);
    format!("invoices/{cycle}/{shard:05}/{customer}/{version}-c{seq:04}-{short}.html")
}

/// `POST /cycles/{cycle}/bills/{customer}/corrections`, once its replay was looked up.
pub(crate) async fn correct(
    deps: &Deps,
    cycle: Cycle,
    customer_id: &CustomerId,
    given: &Given<'_>,
) -> Result<Response, ApiError> {
    let now = given.now;
    let body: CorrectionBody = given.body()?;
    check_reason(&body.reason)?;
    let asked = asked(&body)?;
    let reason = body.reason.trim().to_owned();
    let rec = settled_cycle(deps, cycle).await?;
    let customer = customer(deps, customer_id).await?;
    let shard = customer.shard;
    let bill = bill(deps, cycle, shard, customer_id).await?;
    let earlier = deps.corrections.of_bill(cycle, shard, customer_id).await?;
    let standing = Standing::of(bill.total.won(), &earlier);
    if standing.next_seq > MAX_CORRECTIONS {
        return Err(ApiError::conflict(
            "too-many-corrections",
            format!("the bill has {MAX_CORRECTIONS} corrections, the most one bill takes"),
        ));
    }
    let (amount, catalog_version, changed): (i64, Option<String>, Vec<ChangedLine>) = match &asked {
        Asked::Credit(a) => (-a, None, Vec::new()),
        Asked::Debit(a) => (*a, None, Vec::new()),
        Asked::Rerate(version) => {
            let new = rerated(deps, cycle, shard, customer_id, version).await?;
            let amount = new.total.won() - standing.rated_total;
            if amount == 0 {
                return Err(ApiError::conflict(
                    "nothing-to-correct",
                    format!("under catalog {version} the bill totals what it is rated at now"),
                ));
            }
            (amount, Some(version.clone()), changed_lines(&bill, &new))
        }
    };
    let due_after = standing.due + amount;
    if due_after < 0 {
        return Err(match asked {
            Asked::Credit(_) => ApiError::bad(
                "credit-exceeds-due",
                format!(
                    "amount_won is more than the amount due ({}): a credit never takes the amount due below zero",
                    adapters::bills::won(standing.due)
                ),
            ),
            _ => ApiError::conflict(
                "below-zero",
                format!(
                    "the correction would take the amount due ({}) below zero",
                    adapters::bills::won(standing.due)
                ),
            ),
        });
    }

    // The delivery it re-arms, read before anything is rendered: one on its way is refused now.
    let id = DeliveryId::new(cycle, shard, customer_id.clone());
    let target = id.canonical();
    let Some(raw) = deps.deliveries.raw(cycle, shard, customer_id).await? else {
        return Err(ApiError::conflict(
            "not-rendered",
            format!("the bill has no delivery yet in cycle {cycle}: its invoice was never rendered"),
        ));
    };
    let seen =
        Seen::read(&raw).map_err(|e| ApiError::conflict("unreadable-delivery", format!("delivery {target}: {e}")))?;
    if matches!(seen.state, DeliveryState::Queued | DeliveryState::Sending) {
        // Refused before anything is rendered or uploaded (`plan` refuses it too).
        return Err(in_flight(&target, seen.state));
    }
    let at = command_time(None, cycle, now)?;

    // The corrected invoice, rendered with the cycle's template version.
    let at_text = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut correction = Correction {
        cycle,
        shard,
        customer_id: customer_id.clone(),
        seq: standing.next_seq,
        command_id: given.id().to_owned(),
        kind: asked.kind(),
        amount,
        reason,
        actor: given.caller.arn.clone(),
        at: at_text,
        original_total: bill.total.won(),
        due_before: standing.due,
        due_after,
        catalog_version,
        changed_lines: changed,
        invoice_key: String::new(),
        content_hash: String::new(),
    };
    let version = if rec.template_version.is_empty() {
        deps.default_template.as_str()
    } else {
        rec.template_version.as_str()
    };
    let renderer = deps
        .templates
        .version(version)
        .map_err(|e| ApiError::Internal(format!("cycle {cycle}'s template version: {e}")))?;
    let keys = deps.keys.for_contact(&customer.contact).await?;
    let contact = customer
        .contact
        .open(&keys, customer_id)
        .map_err(|e| ApiError::Internal(format!("customer {customer_id}: contact data does not open: {e}")))?;
    let mut adjustments: Vec<invoice::Adjustment> = earlier.iter().map(adjustment_of).collect();
    adjustments.push(adjustment_of(&correction));
    let view = invoice::CorrectionView::new(&bill, &contact.name, &contact.phone, &adjustments, Krw(due_after));
    let rendered = renderer
        .render_correction(&view)
        .map_err(|e| ApiError::Internal(format!("customer {customer_id}: corrected invoice: {e}")))?;
    let mut gz = Vec::with_capacity(rendered.html.len() / 2);
    invoice::Gzip::new(invoice::DEFAULT_GZIP_LEVEL)
        .compress(rendered.html.as_bytes(), &mut gz)
        .map_err(|e| ApiError::Internal(format!("gzip: {e}")))?;
    let key = corrected_invoice_key(
        cycle,
        shard,
        customer_id,
        version,
        correction.seq,
        &rendered.content_hash,
    );
    correction.invoice_key = key.clone();
    correction.content_hash = rendered.content_hash.clone();
    deps.bucket.put_invoice(&key, gz, &rendered.content_hash).await?;

    // The delivery re-armed with it, through the operators' one place of transitions.
    let content = DeliveryContent {
        email_range: None,
        template_version: version.to_owned(),
        content_hash: rendered.content_hash,
        email_key: key,
        subject: rendered.subject,
        // A correction's text stays in the item: it has no pack.
        sms_text: rendered.sms,
        sms_range: None,
    };
    let command = Command::Correct {
        content,
        total: Krw(due_after),
        at,
    };
    let planned = plan(given.id(), &command, &id, &seen, now).map_err(|r| refusal(&target, &command, r))?;
    let result = json!({
        "command_id": given.id(),
        "command": "correct",
        "cycle": cycle.to_string(),
        "customer_id": customer_id.as_str(),
        "correction": shown(&correction),
        "delivery": {
            "delivery_id": target,
            "state": planned.to.as_str(),
            "previous_state": seen.state.as_str(),
            "send_round": planned.send_round,
            "new_round": planned.new_round,
        },
        "replayed": false,
    });
    let effects = vec![
        TransactWriteItem::builder()
            .put(deps.corrections.put(&correction)?)
            .build(),
        TransactWriteItem::builder()
            .update(planned.change.into_update(&deps.deliveries, &id)?)
            .build(),
        TransactWriteItem::builder()
            .update(deps.corrections.count_on_cycle(cycle, amount)?)
            .build(),
    ];
    let cmd = given.record(
        "correct",
        format!("{target}#c{:04}", correction.seq),
        &correction.reason,
    );
    match deps.commands.apply_all(&cmd, effects, result).await? {
        AllApplied::Done(applied) => Ok(applied.answer(|| {
            tracing::info!(command_id = %given.id(), command = "correct", delivery_id = %target, seq = correction.seq, kind = correction.kind.as_str(), amount = correction.amount, who = %given.caller.masked(), "correction applied");
        })),
        AllApplied::Refused(0) => Err(changed_meanwhile(&format!("the corrections of bill {target}"))),
        AllApplied::Refused(1) => Err(changed_meanwhile(&format!("delivery {target}"))),
        AllApplied::Refused(_) => Err(ApiError::conflict(
            "cycle-not-settled",
            format!("cycle {cycle} stopped being SETTLED while the correction was given"),
        )),
    }
}

/// The refusal of a correction of a delivery on its way (409 `send-in-flight`).
fn in_flight(target: &str, state: DeliveryState) -> ApiError {
    let nothing = Command::Correct {
        content: DeliveryContent {
            email_range: None,
            template_version: String::new(),
            content_hash: String::new(),
            email_key: String::new(),
            subject: String::new(),
            sms_text: String::new(),
            sms_range: None,
        },
        total: Krw::ZERO,
        at: DateTime::UNIX_EPOCH,
    };
    refusal(target, &nothing, Refused::InFlight { state })
}

/// `GET /cycles/{cycle}/bills/{customer}/corrections`: the bill's corrections in order, its
/// original total and the amount due now. A known customer without a bill in the cycle has
/// none: an empty list, the totals `null`.
pub(crate) async fn list(deps: &Deps, cycle: Cycle, customer_id: &CustomerId) -> Result<Response, ApiError> {
    let customer = customer(deps, customer_id).await?;
    let Some(bill) = deps.corrections.bill(cycle, customer.shard, customer_id).await? else {
        return Ok(Response::ok(json!({
            "cycle": cycle.to_string(),
            "customer_id": customer_id.as_str(),
            "bill_id": null,
            "original_total": null,
            "amount_due": null,
            "corrections": [],
        })));
    };
    let corrections = deps.corrections.of_bill(cycle, customer.shard, customer_id).await?;
    let standing = Standing::of(bill.total.won(), &corrections);
    Ok(Response::ok(json!({
        "cycle": cycle.to_string(),
        "customer_id": customer_id.as_str(),
        "bill_id": bill.id(),
        "original_total": standing.original_total,
        "amount_due": standing.due,
        "corrections": corrections.iter().map(shown).collect::<Vec<_>>(),
    })))
}

/// The cycle read's money: billed (Σ of the bills as settled), the corrections of its bills
/// (count and signed Σ), and what it nets.
pub(crate) async fn reconciliation(deps: &Deps, rec: &CycleRecord) -> Result<Value, ApiError> {
    let adj = deps.corrections.cycle_adjustments(rec.cycle).await?;
    Ok(json!({
        "billed_total": rec.checksum,
        "adjustments": adj.count,
        "adjustments_total": adj.total,
        "net_total": rec.checksum.saturating_add(adj.total),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> CorrectionBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_body_is_checked_field_by_field_without_echoing_values() {
        let ok = |v: Value| asked(&body(v)).unwrap();
        let err = |v: Value| match asked(&body(v)).unwrap_err() {
            ApiError::BadRequest { code, message } => (code, message),
            other => panic!("{other:?}"),
        };
        let base = |extra: Value| {
            let mut v = json!({"command_id": "c", "reason": "r"});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            v
        };
        assert_eq!(
            ok(base(json!({"kind": "credit", "amount_won": 5000}))),
            Asked::Credit(5000)
        );
        assert_eq!(
            ok(base(json!({"kind": "debit", "amount_won": 10_000_000}))),
            Asked::Debit(10_000_000)
        );
        assert_eq!(
            ok(base(json!({"kind": "rerate", "catalog_version": "2026-v2"}))),
            Asked::Rerate("2026-v2".into())
        );
        for (extra, code, field) in [
            (json!({"kind": "refund", "amount_won": 1}), "invalid-kind", "kind"),
            (json!({"kind": "credit"}), "invalid-amount", "amount_won"),
            (
                json!({"kind": "credit", "amount_won": 0}),
                "invalid-amount",
                "amount_won",
            ),
            (
                json!({"kind": "debit", "amount_won": 10_000_001}),
                "invalid-amount",
                "amount_won",
            ),
            (
                json!({"kind": "credit", "amount_won": -7}),
                "invalid-amount",
                "amount_won",
            ),
            (
                json!({"kind": "credit", "amount_won": 5, "catalog_version": "v"}),
                "malformed-body",
                "catalog_version",
            ),
            (json!({"kind": "rerate"}), "invalid-catalog-version", "catalog_version"),
            (
                json!({"kind": "rerate", "catalog_version": "a b/c"}),
                "invalid-catalog-version",
                "catalog_version",
            ),
            (
                json!({"kind": "rerate", "catalog_version": "v2", "amount_won": 5}),
                "malformed-body",
                "amount_won",
            ),
        ] {
            let (c, m) = err(base(extra.clone()));
            assert_eq!(c, code, "{extra}");
            assert!(m.contains(field), "{extra}: {m}");
            assert!(
                !m.contains("refund") && !m.contains("a b/c") && !m.contains("10000001"),
                "{m}"
            );
        }
    }

    #[test]
    fn the_corrected_invoice_sits_next_to_the_original_and_names_its_content() {
        let key = corrected_invoice_key(
            "2026-11".parse().unwrap(),
            3,
            &CustomerId::new("C0000042").unwrap(),
            "v1",
            2,
            "0123456789abcdef0123",
        );
        assert_eq!(key, "invoices/2026-11/00003/C0000042/v1-c0002-0123456789ab.html");
    }
}
