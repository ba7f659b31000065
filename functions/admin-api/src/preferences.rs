//! A customer's own preferences, set by a customer-service application acting for the
//! customer: `PUT /customers/{customer}/preferences` (role: operator).
//!
//! The body holds any of `dnd` (slot numbers 0–11), `send_day` (1–31), `preferred_channel`
//! (`email` or `sms`) and `contact` (any of `name`, `email`, `phone`, in clear), with the
//! `command_id` and `reason` every command carries. The change is validated as the domain
//! validates a customer (`Customer::validate` against the stack's quiet window: slots that
//! leave no allowed one are refused, naming `dnd`), contact data is checked for its form and
//! sealed with the keyring, and it is written in **one transaction** with the command's
//! record and with the customer's deliveries that are not yet sent
//! (`adapters::deliveries::preferences`: a waiting delivery moves to its new send date and
//! first allowed slot; one a sender has claimed, or that was sent, is never changed; a new
//! email address gives them its keyed look-up hash, `email_hash`). If a
//! delivery moves meanwhile (a sender claims it), the transaction is refused as a whole and
//! the change is planned again from a fresh read, a few times at most.
//!
//! Nothing personal is kept in clear: the answer and the audit record name the fields that
//! changed, never their values; the request's digest (the replay check) is taken over the
//! contact values as sealed, so that it cannot be matched against guessed phone numbers.

use adapters::customers::{Preferences, StoredCustomer, check_email, check_name, check_phone};
use adapters::deliveries::preferences::{NewPreferences, Planned, plan};
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::delivery::utc_seconds;
use domain::pii::{Field, Keyring};
use domain::{Channel, ContactWindow, CustomerId, Cycle, SendDay, SlotSet};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::command_log::{AllApplied, Given, changed_meanwhile, check_reason};
use crate::{ApiError, Deps, Request, Response};

/// How many times a change is planned again when a delivery moved between the read and the
/// write.
pub const MAX_PLANS: usize = 3;

/// The command's name in the audit.
pub const COMMAND: &str = "set-preferences";

/// The body. No `Debug`: it holds contact data in clear.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreferencesBody {
    /// Taken by [`crate::command_log::Requested::parse`]; declared so that `deny_unknown_fields` accepts it.
    #[allow(dead_code)]
    command_id: String,
    reason: String,
    #[serde(default)]
    dnd: Option<SlotSet>,
    #[serde(default)]
    send_day: Option<SendDay>,
    #[serde(default)]
    preferred_channel: Option<Channel>,
    #[serde(default)]
    contact: Option<ContactBody>,
}

/// Contact data in clear, any of its fields. No `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

impl ContactBody {
    fn fields(&self) -> [(&'static str, Field, Option<&str>); 3] {
        [
            ("contact.name", Field::Name, self.name.as_deref().map(str::trim)),
            ("contact.email", Field::Email, self.email.as_deref()),
            ("contact.phone", Field::Phone, self.phone.as_deref()),
        ]
    }
}

/// The request whose digest the command log keeps: the contact values replaced by their
/// sealed form (sealing is deterministic for a customer, a field and a key), so the digest
/// of a request that changes a phone number alone cannot be matched against guessed
/// numbers. Anything that does not read as such a body is left as it came (the command log
/// refuses it).
pub(crate) async fn keyed_request(deps: &Deps, req: &Request, customer: &CustomerId) -> Request {
    let mut keyed = req.clone();
    let Some(Ok(mut body)) = req.body.as_deref().map(serde_json::from_str::<Value>) else {
        return keyed;
    };
    if let Some(Value::Object(contact)) = body.get_mut("contact") {
        let keys = deps.keys.current().await;
        for (name, field) in [("name", Field::Name), ("email", Field::Email), ("phone", Field::Phone)] {
            if let Some(Value::String(v)) = contact.get_mut(name) {
                *v = keys.seal(customer.as_str(), field, v).as_str().to_owned();
            }
        }
        keyed.body = Some(body.to_string());
    }
    keyed
}

fn malformed(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad("malformed-body", format!("the body is not a valid command: {e}"))
}

/// The checks that need nothing stored: a reason, something to change, contact data of its
/// form, slots that leave one allowed.
fn check(deps: &Deps, body: &PreferencesBody) -> Result<(), ApiError> {
    check_reason(&body.reason)?;
    if body.dnd.is_none() && body.send_day.is_none() && body.preferred_channel.is_none() && body.contact.is_none() {
        return Err(ApiError::bad(
            "nothing-to-change",
            "give at least one of dnd, send_day, preferred_channel, contact",
        ));
    }
    if let Some(c) = &body.contact {
        if c.fields().iter().all(|(_, _, v)| v.is_none()) {
            return Err(ApiError::bad(
                "nothing-to-change",
                "contact needs at least one of name, email, phone",
            ));
        }
        let invalid = |e: adapters::customers::ContactFormatError| ApiError::bad("invalid-contact", e.to_string());
        c.name.as_deref().map(check_name).transpose().map_err(invalid)?;
        c.email.as_deref().map(check_email).transpose().map_err(invalid)?;
        c.phone.as_deref().map(check_phone).transpose().map_err(invalid)?;
    }
    if let Some(dnd) = body.dnd {
        ContactWindow::new(dnd, deps.quiet).map_err(|_| no_allowed_slot(deps))?;
    }
    Ok(())
}

fn no_allowed_slot(deps: &Deps) -> ApiError {
    ApiError::bad(
        "no-allowed-slot",
        format!(
            "dnd leaves no allowed slot: every slot outside the quiet window {} would be a do-not-disturb slot; at least one must stay allowed",
            deps.quiet
        ),
    )
}

/// The cycles whose deliveries a change may reach: the one of this month (Asia/Seoul) and
/// every one dispatch still sends (`domain::dispatch::dispatched_cycles`).
fn cycles_at(now: DateTime<Utc>) -> Vec<Cycle> {
    let today = now.with_timezone(&domain::slots::seoul()).date_naive();
    Cycle::containing(today)
        .into_iter()
        .chain(domain::dispatch::dispatched_cycles(today))
        .collect()
}

/// The customer's preferences after the change, and the names of the fields whose value
/// changes (a contact field given with the value it has is not one).
fn changed(
    keys: &Keyring,
    stored: &StoredCustomer,
    body: &PreferencesBody,
    opener: Option<&Keyring>,
) -> (Preferences, Vec<&'static str>) {
    let c = &stored.customer;
    let mut names = Vec::new();
    let mut new = Preferences {
        dnd: body.dnd.unwrap_or(c.dnd),
        send_day: body.send_day.unwrap_or(c.send_day),
        preferred_channel: body.preferred_channel.unwrap_or(c.preferred_channel),
        contact: c.contact.clone(),
    };
    for (name, differs) in [
        ("dnd", new.dnd != c.dnd),
        ("send_day", new.send_day != c.send_day),
        ("preferred_channel", new.preferred_channel != c.preferred_channel),
    ] {
        if differs {
            names.push(name);
        }
    }
    if let Some(contact) = &body.contact {
        let id = c.customer_id.as_str();
        for (name, field, value) in contact.fields() {
            let Some(value) = value else { continue };
            let slot = match field {
                Field::Name => &mut new.contact.name,
                Field::Email => &mut new.contact.email,
                Field::Phone => &mut new.contact.phone,
            };
            let same = opener
                .and_then(|k| k.open(id, field, slot).ok())
                .is_some_and(|old| old.expose() == value);
            if !same {
                *slot = keys.seal(id, field, value);
                names.push(name);
            }
        }
    }
    (new, names)
}

/// One delivery's line in the answer.
fn delivery_line(id: &str, p: &Planned) -> Value {
    json!({
        "delivery_id": id,
        "outcome": p.effect.as_str(),
        "note": p.note,
        "state": p.state_after.as_str(),
        "send_date": p.send_date.map(|d| d.to_string()).or_else(|| p.send_date_before.clone()),
        "available_at": p.available_at.or(p.available_at_before).map(|t| utc_seconds::format(&t)),
        "channel_applied": p.channel_applied,
        "previous": {
            "state": p.state_before.as_str(),
            "send_date": p.send_date_before,
            "available_at": p.available_at_before.map(|t| utc_seconds::format(&t)),
        },
    })
}

/// `PUT /customers/{customer}/preferences`, once its replay was looked up.
pub(crate) async fn set_preferences(
    deps: &Deps,
    customer: &CustomerId,
    req: &Request,
    given: &Given<'_>,
) -> Result<Response, ApiError> {
    let now = given.now;
    let text = req.body.as_deref().unwrap_or_default();
    let body: PreferencesBody = domain::decode::from_str(text).map_err(malformed)?;
    check(deps, &body)?;
    let cmd = given.record(COMMAND, format!("customer:{customer}"), &body.reason);
    let keys = deps.keys.current().await;
    for _ in 0..MAX_PLANS {
        let stored = match deps.customers.stored(customer.as_str()).await? {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Err(ApiError::Internal(format!("customer record does not decode: {e}"))),
            None => return Err(ApiError::not_found("unknown-customer", "no customer has this id")),
        };
        let opener = match &body.contact {
            Some(_) => deps.keys.for_contact(&stored.customer.contact).await.ok(),
            None => None,
        };
        let (new, names) = changed(&keys, &stored, &body, opener.as_deref());
        let mut next = stored.customer.clone();
        next.dnd = new.dnd;
        next.send_day = new.send_day;
        next.preferred_channel = new.preferred_channel;
        let window = next.validate(deps.quiet).map_err(|e| {
            if ContactWindow::new(next.dnd, deps.quiet).is_err() {
                no_allowed_slot(deps)
            } else {
                ApiError::conflict(
                    "invalid-customer-record",
                    format!(
                        "the customer's stored record breaks a rule ({}); correct it through ingest first",
                        e.reason
                    ),
                )
            }
        })?;
        // A new email address: its keyed look-up hash goes onto the waiting deliveries
        // (dispatch checks it against the suppression list); the address itself never does.
        let email_hash = match (&body.contact, names.contains(&"contact.email")) {
            (Some(ContactBody { email: Some(email), .. }), true) => Some(keys.lookup_hash(Field::Email, email)),
            _ => None,
        };
        let prefs = NewPreferences {
            send_day: new.send_day,
            dnd: new.dnd,
            preferred_channel: new.preferred_channel,
            window,
            email_hash,
        };
        let mut effects = vec![
            TransactWriteItem::builder()
                .update(deps.customers.preferences_update(&stored, &new, now)?)
                .build(),
        ];
        let mut lines = Vec::new();
        let found = deps
            .deliveries
            .of_customer(&cycles_at(now), stored.customer.shard, customer)
            .await?;
        for (id, item) in &found {
            let target = id.canonical();
            match plan(given.id(), id, item, &prefs, now) {
                Ok(p) => {
                    lines.push(delivery_line(&target, &p));
                    if let Some(change) = p.change {
                        effects.push(
                            TransactWriteItem::builder()
                                .update(change.into_update(&deps.deliveries, id)?)
                                .build(),
                        );
                    }
                }
                Err(e) => lines.push(json!({
                    "delivery_id": target,
                    "outcome": "not-changed",
                    "note": format!("{e}; left as it is"),
                })),
            }
        }
        let result = json!({
            "command_id": given.id(),
            "command": COMMAND,
            "customer_id": customer.as_str(),
            "changed": names,
            "preferences_updated_at": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "deliveries": lines,
            "replayed": false,
        });
        match deps.commands.apply_all(&cmd, effects, result).await? {
            AllApplied::Done(applied) => {
                return Ok(applied.answer(|| {
                    tracing::info!(
                        command_id = %given.id(),
                        command = COMMAND,
                        customer_id = %customer,
                        changed = ?names,
                        deliveries = found.len(),
                        who = %given.caller.masked(),
                        "preferences changed"
                    );
                }));
            }
            AllApplied::Refused(0) => return Err(changed_meanwhile(&format!("customer {customer}"))),
            // A delivery moved between the read and the write (a sender claimed it): plan again.
            AllApplied::Refused(_) => continue,
        }
    }
    Err(changed_meanwhile(&format!("a delivery of customer {customer}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Contact;

    fn sealed(keys: &Keyring, id: &CustomerId) -> Contact {
        Contact::seal(keys, id, "김민수", "kim@example.com", "010-1234-5678")
    }

    #[test]
    fn the_cycles_reached_are_this_months_and_those_dispatch_still_sends() {
        let now: DateTime<Utc> = "2026-12-10T01:00:00Z".parse().unwrap();
        let cycles = cycles_at(now);
        assert_eq!(cycles[0].to_string(), "2026-12");
        assert_eq!(cycles[1].to_string(), "2026-11");
        assert_eq!(cycles.len(), 1 + domain::dispatch::DISPATCH_HORIZON_CYCLES as usize);
    }

    #[test]
    fn a_contact_field_given_with_its_value_is_not_a_change() {
        let keys = Keyring::dev();
        let id = CustomerId::new("C1").unwrap();
        let stored = StoredCustomer {
            customer: serde_json::from_value(json!({
                "customer_id": "C1", "shard": 0, "plan": "P", "birthday": "1990-01-01",
                "joined_on": "2020-01-01", "send_day": 15, "preferred_channel": "email",
                "contact": sealed(&keys, &id),
            }))
            .unwrap(),
            item: Default::default(),
        };
        let body: PreferencesBody = serde_json::from_value(json!({
            "command_id": "c", "reason": "r", "send_day": 15,
            "contact": {"email": "kim@example.com", "phone": "010-9999-8888"},
        }))
        .unwrap();
        let (new, names) = changed(&keys, &stored, &body, Some(&keys));
        assert_eq!(names, ["contact.phone"]);
        let open = new.contact.open(&keys, &id).unwrap();
        assert_eq!(open.phone.expose(), "010-9999-8888");
        assert_eq!(new.contact.email, stored.customer.contact.email);
    }
}
