//! What is sent: the provider's idempotency keys, the message built from the
//! customer's contact and the rendered invoice (the only place contact data is
//! opened, never logged), and the provider call under its timeout.

use std::time::Duration;

use adapters::StoreError;
use domain::delivery::SmsSource;
use domain::{Channel, Delivery, DeliveryId};
use providers::{Accepted, OutgoingEmail, OutgoingSms, ProviderError};

use crate::message::Msg;

/// The provider's idempotency key: one per delivery and channel, from the
/// canonical delivery id (so every spelling of an id names one send).
pub fn idempotency_key(id: &DeliveryId, channel: Channel) -> String {
    format!("{}#{}", id.canonical(), channel.as_str())
}

/// The idempotency key of a send round (`Delivery::send_round`): round 0 is
/// [`idempotency_key`]; an operator's resend starts round n, `…#r{n}`, so it
/// sends once more, and only once.
pub fn round_key(id: &DeliveryId, channel: Channel, round: u32) -> String {
    match round {
        0 => idempotency_key(id, channel),
        n => format!("{}#r{n}", idempotency_key(id, channel)),
    }
}

/// What identifies a message in its provider's delivery events: the cycle,
/// shard, customer, channel and send round, each a value SES tags and End
/// User Messaging's context accept as they are (`[A-Za-z0-9_-]`; customer ids
/// are letters, digits, `-` and `_`), so that the delivery-events function
/// finds the delivery without a look-up table; and the stack's name (`stack`),
/// which the stack's EventBridge rules match, so that two stacks in one
/// account each get their own events. Never personal data.
pub fn evidence_tags(stack: &str, id: &DeliveryId, channel: Channel, round: u32) -> Vec<(String, String)> {
    vec![
        ("stack".into(), stack.to_owned()),
        ("cycle".into(), id.cycle.to_string()),
        ("shard".into(), format!("{:05}", id.shard)),
        ("customer".into(), id.customer.as_str().to_owned()),
        ("channel".into(), channel.as_str().to_owned()),
        ("round".into(), round.to_string()),
    ]
}

/// Why a message could not be built.
pub(crate) enum Prep {
    Store(StoreError),
    Permanent {
        code: String,
        reason: String,
    },
    /// The email address is on the suppression list (its entry: a hash, never the address).
    Suppressed(Box<adapters::suppressions::Suppression>),
}

pub(crate) fn permanent(code: &str, reason: impl Into<String>) -> Prep {
    Prep::Permanent {
        code: code.into(),
        reason: reason.into(),
    }
}

/// A message ready for its provider.
pub(crate) enum Outgoing {
    Email(OutgoingEmail),
    Sms(OutgoingSms),
}

/// Opens the contact and builds the message; every read within the time the
/// invocation has left.
pub(crate) async fn prepare(m: &Msg<'_>, d: &Delivery, attempt: u32) -> Result<Outgoing, Prep> {
    let deps = m.deps;
    let c = &deps.config;
    let customer = match m
        .read_claimed(
            "GetItem",
            deps.customers.get_in_shard(m.key.id.shard, m.key.id.customer.as_str()),
        )
        .await
    {
        Ok(Some(Ok(customer))) => customer,
        Ok(Some(Err(e))) => return Err(permanent("customer-invalid", e.reason)),
        Ok(None) => {
            return Err(permanent(
                "customer-missing",
                format!("customer {} not found", m.key.id.customer),
            ));
        }
        Err(e) => return Err(Prep::Store(e)),
    };
    let keys = deps.keys.for_contact(&customer.contact).await.map_err(Prep::Store)?;
    let contact = customer
        .contact
        .open(&keys, &customer.customer_id)
        .map_err(|e| permanent("contact-unreadable", e.to_string()))?;
    let key = round_key(&m.key.id, c.channel, d.send_round);
    match c.channel {
        Channel::Email => {
            // The suppression list, by the address's hash under every key of the keyring (an
            // entry made before a key rotation is found too).
            if let Some(list) = &deps.suppressions {
                let hashes = keys.lookup_hashes(domain::pii::Field::Email, contact.email.expose());
                match m.read_claimed("GetItem", list.find(&hashes)).await {
                    Ok(Some(entry)) => return Err(Prep::Suppressed(Box::new(entry))),
                    Ok(None) => {}
                    Err(e) => return Err(Prep::Store(e)),
                }
            }
            // Boxed, as the SMS text's read: the SDK's request futures are large, and a batch
            // holds ten messages' at once (an unboxed one overflowed a debug build's stack).
            let object = match m
                .read_claimed("GetObject", Box::pin(deps.invoices.get_invoice(&d.content)))
                .await
            {
                Ok(Some(o)) => o,
                Ok(None) => {
                    return Err(permanent(
                        "invoice-missing",
                        format!("the rendered invoice {} is missing", d.content.email_key),
                    ));
                }
                Err(e) => return Err(Prep::Store(e)),
            };
            let html = gunzip(&object.body).map_err(|e| permanent("invoice-unreadable", e))?;
            Ok(Outgoing::Email(OutgoingEmail {
                idempotency_key: key,
                attempt,
                to: contact.email.expose().clone(),
                subject: d.content.subject.clone(),
                html,
                tags: {
                    let mut tags = evidence_tags(&c.stack, &m.key.id, Channel::Email, d.send_round);
                    tags.push(("template".into(), d.content.template_version.clone()));
                    tags
                },
            }))
        }
        Channel::Sms => {
            let link = invoice_link(deps, d).await?;
            let template = sms_template(m, deps, d).await?;
            let text = invoice::sms_with_link(&template, &link).map_err(|e| permanent("sms-invalid", e.to_string()))?;
            Ok(Outgoing::Sms(OutgoingSms {
                idempotency_key: key,
                attempt,
                to: contact.phone.expose().clone(),
                text,
                tags: evidence_tags(&c.stack, &m.key.id, Channel::Sms, d.send_round),
            }))
        }
    }
}

/// The SMS text with its link placeholder: the pack's member (one ranged `GET`), or the item's
/// own text (a correction, a delivery rendered before the text went into the pack).
async fn sms_template(m: &Msg<'_>, deps: &crate::Deps, d: &Delivery) -> Result<String, Prep> {
    match d.content.sms_source() {
        SmsSource::Inline(text) => Ok(text.to_owned()),
        SmsSource::Missing => Err(permanent("sms-invalid", "the delivery has no SMS text")),
        SmsSource::Packed { key, range } => {
            match m
                .read_claimed("GetObject", Box::pin(deps.invoices.get_member(key, range)))
                .await
            {
                Ok(Some(o)) => gunzip(&o.body).map_err(|e| permanent("sms-unreadable", e)),
                Ok(None) => Err(permanent(
                    "invoice-missing",
                    format!("the rendered invoice pack {key} is missing"),
                )),
                Err(e) => Err(Prep::Store(e)),
            }
        }
    }
}

/// The SMS's link to the invoice: `{LINK_BASE_URL}/i/{token}`, a token signed with the link keys
/// naming the invoice (its cycle, shard, customer, the object and, in a pack, its range) and
/// working until `LINK_VALID_DAYS_AFTER_DUE` days after the invoice's due date
/// ([`invoice::due_date`]), whatever credentials the sender had (`adapters::links`).
async fn invoice_link(deps: &crate::Deps, d: &Delivery) -> Result<String, Prep> {
    let Some(links) = &deps.links else {
        return Err(permanent("link-unavailable", "this sender has no link keys"));
    };
    let Some(name) =
        adapters::data_bucket::invoice_object_name(d.cycle, d.shard, d.customer_id.as_str(), &d.content.email_key)
    else {
        return Err(permanent(
            "link-invalid",
            "the delivery's invoice key is not one of its shard's invoices",
        ));
    };
    let link = links.link(
        d.cycle,
        d.shard,
        &d.customer_id,
        name,
        d.content.email_range,
        invoice::due_date(d.cycle),
    );
    links
        .url(&link)
        .await
        .map_err(|e| permanent("link-invalid", e.to_string()))
}

/// Hands the message to the provider under the provider timeout.
pub(crate) async fn send(m: &Msg<'_>, outgoing: Outgoing) -> Result<Accepted, ProviderError> {
    let deps = m.deps;
    let limit = deps.config.provider_timeout;
    match outgoing {
        Outgoing::Email(email) => timed(limit, deps.email.send_email(&email)).await,
        Outgoing::Sms(sms) => timed(limit, deps.sms.send_sms(&sms)).await,
    }
}

async fn timed(
    limit: Duration,
    call: impl std::future::Future<Output = Result<Accepted, ProviderError>>,
) -> Result<Accepted, ProviderError> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::unknown(
            "ProviderTimeout",
            format!("no answer within {} ms", limit.as_millis()),
        )),
    }
}

fn gunzip(bytes: &[u8]) -> Result<String, String> {
    use std::io::Read;
    let mut html = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut html)
        .map_err(|e| format!("the invoice pack's member does not decode as gzip-encoded UTF-8: {e}"))?;
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_send_round_has_its_own_key_and_round_zero_keeps_the_first() {
        let id = &DeliveryId::parse("2026-11#00001#C0000042").unwrap();
        assert_eq!(round_key(id, Channel::Email, 0), idempotency_key(id, Channel::Email));
        assert_eq!(round_key(id, Channel::Sms, 0), "2026-11#00001#C0000042#sms");
        assert_eq!(round_key(id, Channel::Email, 1), "2026-11#00001#C0000042#email#r1");
        assert_ne!(round_key(id, Channel::Email, 1), round_key(id, Channel::Email, 2));
        assert_ne!(round_key(id, Channel::Email, 1), round_key(id, Channel::Sms, 1));
        // Every spelling of one delivery id gives one key.
        let short = &DeliveryId::parse("2026-11#1#C0000042").unwrap();
        assert_eq!(round_key(short, Channel::Email, 0), round_key(id, Channel::Email, 0));
        assert_eq!(round_key(short, Channel::Email, 2), "2026-11#00001#C0000042#email#r2");
    }
}
