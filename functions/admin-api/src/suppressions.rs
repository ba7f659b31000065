//! The suppression list (`adapters::suppressions`): email addresses the platform does not email
//! (a permanent bounce, a complaint, an operator's entry), each kept as its keyed look-up hash.
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /suppressions?limit=&next=` | viewer | the entries, a page at a time: hash, reason, since when, source, delivery |
//! | `POST /suppressions` | operator | adds an entry: body `{command_id, reason, email}` or `{command_id, reason, customer_id}` |
//! | `DELETE /suppressions/{hash}` | operator | removes one: body `{command_id, reason}` |
//!
//! **No address is kept, logged or answered.** An email in a body is hashed at once (the
//! active key of the keyring, `Keyring::lookup_hash`); a customer id names the customer whose
//! current email is opened with the keyring and hashed. The entry, the answer, the audit record
//! (target `suppression:{hash}`) and the log name the hash only; the replay check's digest is
//! taken over the request with the email replaced by its hash, so it cannot be matched
//! against guessed addresses. An address listed under any key of the keyring (before a
//! rotation) counts as listed.
//!
//! Adding and removing are commands like the others ([`crate::command_log`]): a command id and
//! a reason, the entry's write and the command's record in one transaction, a replayed id
//! answered with its first answer.

use adapters::customers::check_email;
use adapters::suppressions::{Suppression, SuppressionReason, is_contact_hash};
use aws_sdk_dynamodb::types::TransactWriteItem;
use domain::CustomerId;
use domain::delivery::utc_seconds;
use domain::pii::Field;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::command_log::{Given, check_reason};
use crate::reads::page_size;
use crate::{ApiError, Deps, Request, Response};

/// The commands' names in the audit.
pub const ADD: &str = "add-suppression";
pub const REMOVE: &str = "remove-suppression";

/// An entry as the API shows it: ids, codes and times, never a contact.
fn shown(e: &Suppression) -> Value {
    json!({
        "contact_hash": e.contact_hash,
        "reason": e.reason.as_str(),
        "created_at": utc_seconds::format(&e.created_at),
        "source": e.source,
        "delivery_id": e.delivery_id,
        "note": e.note,
        "by": e.by,
    })
}

/// `GET /suppressions`: a page of entries (in no particular order). `next` is the hash the
/// page ended at.
pub(crate) async fn list(deps: &Deps, req: &Request) -> Result<Response, ApiError> {
    let limit = page_size(req)?;
    let start = match req.query.get("next") {
        None => None,
        Some(h) if is_contact_hash(h) => Some(h.clone()),
        Some(_) => {
            return Err(ApiError::bad(
                "invalid-page-token",
                "next is not a page token this API gave out",
            ));
        }
    };
    let (entries, next) = deps.suppressions.list(limit, start).await?;
    Ok(Response::ok(json!({
        "suppressions": entries.iter().map(shown).collect::<Vec<_>>(),
        "next": next,
    })))
}

/// The body of `POST /suppressions`. No `Debug`: it may hold an address in clear.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    /// Taken by [`crate::command_log::Requested::parse`]; declared so that `deny_unknown_fields` accepts it.
    #[allow(dead_code)]
    command_id: String,
    reason: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    customer_id: Option<String>,
}

/// The body of `DELETE /suppressions/{hash}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    /// Taken by [`crate::command_log::Requested::parse`]; declared so that `deny_unknown_fields` accepts it.
    #[allow(dead_code)]
    command_id: String,
    reason: String,
}

/// The request whose digest the command log keeps: an `email` replaced by its keyed hash (under
/// the active key), so that the digest of a request naming an address cannot be matched
/// against guessed ones. A body that does not read as one is left as it came (the command log
/// refuses it).
pub(crate) async fn keyed_request(deps: &Deps, req: &Request) -> Request {
    let mut keyed = req.clone();
    let Some(Ok(mut body)) = req.body.as_deref().map(serde_json::from_str::<Value>) else {
        return keyed;
    };
    if let Some(Value::String(email)) = body.get_mut("email") {
        let keys = deps.keys.current().await;
        *email = keys.lookup_hash(Field::Email, email);
        keyed.body = Some(body.to_string());
    }
    keyed
}

fn malformed(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad("malformed-body", format!("the body is not a valid command: {e}"))
}

fn already(e: &Suppression) -> ApiError {
    ApiError::conflict(
        "already-suppressed",
        format!(
            "this address is on the suppression list already as {} ({} since {}, source {})",
            e.contact_hash,
            e.reason,
            utc_seconds::format(&e.created_at),
            e.source
        ),
    )
}

/// `POST /suppressions`, once its replay was looked up: the address (given, or the customer's
/// current one) hashed and listed, with the command's record.
pub(crate) async fn add(deps: &Deps, req: &Request, given: &Given<'_>) -> Result<Response, ApiError> {
    let text = req.body.as_deref().unwrap_or_default();
    let body: AddBody = domain::decode::from_str(text).map_err(malformed)?;
    check_reason(&body.reason)?;
    let keys = deps.keys.current().await;
    // Every hash of the address under the keyring's keys, the active one first.
    let (hashes, customer) = match (&body.email, &body.customer_id) {
        (Some(email), None) => {
            // Spaces around it and letter case do not matter: the hash is taken of the address
            // trimmed and lower-cased.
            check_email(email.trim()).map_err(|_| {
                ApiError::bad(
                    "invalid-email",
                    "email is not an email address (local-part@domain, at most 254 bytes)",
                )
            })?;
            (keys.lookup_hashes(Field::Email, email), None)
        }
        (None, Some(id)) => {
            let id = CustomerId::new(id).map_err(|e| ApiError::bad("invalid-customer-id", e.to_string()))?;
            let customer = match deps.customers.get(id.as_str()).await? {
                Some(Ok(c)) => c,
                Some(Err(e)) => return Err(ApiError::Internal(format!("customer record does not decode: {e}"))),
                None => return Err(ApiError::not_found("unknown-customer", "no customer has this id")),
            };
            let opener = deps.keys.for_contact(&customer.contact).await?;
            let email = opener
                .open(id.as_str(), Field::Email, &customer.contact.email)
                .map_err(|e| ApiError::Internal(format!("the customer's email does not open: {e}")))?;
            (opener.lookup_hashes(Field::Email, email.expose()), Some(id))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "invalid-target",
                "give either email or customer_id, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::bad(
                "invalid-target",
                "give email (the address to suppress) or customer_id (the customer whose current email is suppressed)",
            ));
        }
    };
    let Some(hash) = hashes.first().cloned() else {
        return Err(ApiError::Internal("the keyring gave no hash".into()));
    };
    if let Some(existing) = deps.suppressions.find(&hashes).await? {
        return Err(already(&existing));
    }
    let entry = Suppression {
        contact_hash: hash.clone(),
        reason: SuppressionReason::Operator,
        created_at: given.now,
        source: given.id().to_owned(),
        delivery_id: None,
        note: Some(body.reason.trim().to_owned()),
        // The role or user behind the caller, not its session's name (which may be a person's
        // address): the entry is shown to every viewer.
        by: crate::identity::Principal::of(&given.caller.arn).map(|p| p.arn),
    };
    let cmd = given.record(ADD, format!("suppression:{hash}"), &body.reason);
    let result = json!({
        "command_id": given.id(),
        "command": ADD,
        "contact_hash": hash,
        "customer_id": customer.as_ref().map(CustomerId::as_str),
        "suppression": shown(&entry.bounded()),
        "replayed": false,
    });
    let effect = TransactWriteItem::builder()
        .put(deps.suppressions.add_write(&entry)?)
        .build();
    let refused = || {
        ApiError::conflict(
            "already-suppressed",
            "this address was put on the suppression list meanwhile",
        )
    };
    let applied = deps.commands.apply(&cmd, effect, result, refused).await?;
    Ok(applied.answer(|| {
        tracing::info!(command_id = %given.id(), command = ADD, contact_hash = %hash, who = %given.caller.masked(), "address suppressed");
    }))
}

/// `DELETE /suppressions/{hash}`, once its replay was looked up.
pub(crate) async fn remove(deps: &Deps, raw_hash: &str, given: &Given<'_>) -> Result<Response, ApiError> {
    let body: RemoveBody = given.body()?;
    check_reason(&body.reason)?;
    let hash = crate::roles::principal_in_path(raw_hash);
    if !is_contact_hash(&hash) {
        return Err(ApiError::bad(
            "invalid-hash",
            "the path's hash must be a contact hash as GET /suppressions shows it ({key id}:{32 hex digits})",
        ));
    }
    let Some(entry) = deps.suppressions.get(&hash, true).await? else {
        return Err(ApiError::not_found(
            "not-suppressed",
            "no suppression entry has this hash",
        ));
    };
    let cmd = given.record(REMOVE, format!("suppression:{hash}"), &body.reason);
    let result = json!({
        "command_id": given.id(),
        "command": REMOVE,
        "contact_hash": hash,
        "removed": shown(&entry),
        "replayed": false,
    });
    let effect = TransactWriteItem::builder()
        .delete(deps.suppressions.remove_write(&hash)?)
        .build();
    let refused = || ApiError::not_found("not-suppressed", "the entry was removed meanwhile");
    let applied = deps.commands.apply(&cmd, effect, result, refused).await?;
    Ok(applied.answer(|| {
        tracing::info!(command_id = %given.id(), command = REMOVE, contact_hash = %hash, who = %given.caller.masked(), "suppression removed");
    }))
}
