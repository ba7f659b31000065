//! The operators' commands on one delivery (the admin API's `schedule`, `resend`,
//! `convert-to-sms`, `force-send`, `hold` and `confirm`), each a [`Change`] named by the
//! command's id and conditioned on the delivery as the command read it ([`Seen`]: its state,
//! `updated_at` and the last write's token). Whoever gives a command reads the delivery,
//! asks [`plan`] what the command does to it (or why it does not apply), and writes the
//! change with the command's audit record in one transaction
//! ([`Change::into_update`]). Anything that moved the delivery in between fails the
//! condition, and the command is refused rather than applied to a delivery nobody looked at.
//!
//! | command | applies to | leaves it |
//! |---|---|---|
//! | `schedule` | `READY`, `HELD` | `READY` at the time given, in the `Due` index |
//! | `resend` | `SENT_*`, `DEAD`, `HELD`, `UNCONFIRMED`: a new send round; `QUEUED` or `SENDING` that no sender holds any more: the same round | `READY`, in the `Due` index |
//! | `convert-to-sms` | `READY`, `HELD` | `READY` on SMS |
//! | `force-send` | `READY`, `HELD` | `READY` without the customer's do-not-disturb slots |
//! | `hold` | `READY` | `HELD`, out of the `Due` index |
//! | `confirm` | `UNCONFIRMED` | `SENT_EMAIL` / `SENT_SMS` on its channel |
//! | `correct` | `SENT_*`, `DEAD`, `UNCONFIRMED`: a new send round, as `resend`; `READY`, `HELD`: its round | `READY` with the corrected invoice and amount due (a held one stays `HELD`) |
//!
//! **A correction is a resend with new content.** A correction of a settled bill
//! (`adapters::corrections`) re-arms the bill's delivery with the corrected invoice: a
//! delivery that went out (or ended) starts a new send round exactly as [`resend`] does, with
//! the corrected content and total written in the same change, so the customer gets the
//! corrected invoice once, through dispatch and the senders like any other. A delivery still
//! waiting (`READY`, `HELD`) only gets the corrected content: it goes out once, corrected. One
//! on its way (`QUEUED`, `SENDING`) is refused ([`Refused::InFlight`]) until its send ends.
//!
//! **A force-send's set-aside belongs to that force-send.** `force-send` moves the
//! customer's do-not-disturb slots to `dnd_before_force`; the senders put them back when
//! the delivery is sent or ends ([`RESTORE_DND`]), and so does every other command here: a
//! force-send that was held, then scheduled, is not sent through the customer's slots.
//!
//! **A stuck delivery.** A `QUEUED` delivery whose re-check time has passed (the queue's
//! retries ran their course), or a `SENDING` one whose sender's lease ended, has no sender
//! that will finish it: `resend` puts it back to `READY` now. It keeps its send round, its
//! claims and its provider-call mark, so the providers' idempotency key is the one an
//! earlier call used, and the next claimant asks the provider before sending (or, with a
//! provider that cannot be asked, leaves it `UNCONFIRMED`): nothing goes out twice
//! because an operator moved it. While a sender may still hold it, `resend` is refused.

use chrono::{DateTime, Duration, Utc};
use domain::delivery::DeliveryContent;
use domain::delivery::RECHECK_AFTER_MINUTES;
use domain::{Channel, DeliveryId, DeliveryState, Krw};

use super::claims::RESTORE_DND;
use super::due_key;
use super::write::{Change, LAST_WRITE};
use crate::dynamo::{Item, attr_s};

/// The delivery as a command read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub state: DeliveryState,
    /// The condition pins these two: any write since the read changed at least one.
    pub updated_at: Option<String>,
    pub last_write: Option<String>,
    /// The channel it is queued, sent or left unconfirmed on.
    pub channel: Option<Channel>,
    pub preferred_channel: Option<Channel>,
    pub send_round: u64,
    /// `READY`: not before; `QUEUED` / `SENDING`: when dispatch re-checks it.
    pub available_at: Option<DateTime<Utc>>,
    pub lease_until: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    /// A force-send set the customer's do-not-disturb slots aside (`dnd_before_force`).
    pub dnd_set_aside: bool,
}

/// Why an item cannot be a command's target. Names the attribute, never its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the delivery's {0} is missing or not readable")]
pub struct Unreadable(pub &'static str);

fn time(item: &Item, name: &'static str) -> Result<Option<DateTime<Utc>>, Unreadable> {
    attr_s(item, name)
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| Unreadable(name))
        })
        .transpose()
}

fn channel(item: &Item, name: &'static str) -> Result<Option<Channel>, Unreadable> {
    match attr_s(item, name) {
        None => Ok(None),
        Some("email") => Ok(Some(Channel::Email)),
        Some("sms") => Ok(Some(Channel::Sms)),
        Some(_) => Err(Unreadable(name)),
    }
}

impl Seen {
    /// What a command needs of the stored item.
    pub fn read(item: &Item) -> Result<Seen, Unreadable> {
        let state = attr_s(item, "state")
            .and_then(DeliveryState::parse)
            .ok_or(Unreadable("state"))?;
        let send_round = match item.get("send_round") {
            None => 0,
            Some(v) => v
                .as_n()
                .ok()
                .and_then(|n| n.parse().ok())
                .ok_or(Unreadable("send_round"))?,
        };
        Ok(Seen {
            state,
            updated_at: attr_s(item, "updated_at").map(str::to_owned),
            last_write: attr_s(item, LAST_WRITE).map(str::to_owned),
            channel: channel(item, "channel")?,
            preferred_channel: channel(item, "preferred_channel")?,
            send_round,
            available_at: time(item, "available_at")?,
            lease_until: time(item, "lease_until")?,
            queued_at: time(item, "queued_at")?,
            dnd_set_aside: item.contains_key("dnd_before_force"),
        })
    }

    /// Until when a sender may still finish a `QUEUED` or `SENDING` delivery: the lease of
    /// the sender that claimed it, or, for a queued one, its re-check time and
    /// [`RECHECK_AFTER_MINUTES`] after it was queued, whichever is later (the queue's
    /// retries and backoff run their course first). `None` when nothing may: the
    /// delivery is stuck, an operator may resend it.
    pub fn sender_may_hold_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = match self.state {
            DeliveryState::Sending => self.lease_until,
            DeliveryState::Queued => {
                let recheck = self.queued_at.map(|q| q + Duration::minutes(RECHECK_AFTER_MINUTES));
                self.available_at.max(recheck)
            }
            _ => None,
        };
        until.filter(|u| *u > now)
    }
}

/// An operator's command on a delivery, with its parameters validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Not before `at`.
    Schedule { at: DateTime<Utc> },
    /// Once more, not before `at`, optionally on another channel.
    Resend {
        at: DateTime<Utc>,
        channel: Option<Channel>,
    },
    /// By SMS, not before `at`.
    ConvertToSms { at: DateTime<Utc> },
    /// Not before `at`, without the customer's do-not-disturb slots.
    ForceSend { at: DateTime<Utc> },
    /// Held with this reason until another command releases it.
    Hold { reason: String },
    /// An `UNCONFIRMED` send was made: the operator checked the provider's evidence.
    Confirm,
    /// A correction of the bill: the corrected invoice and the amount now due, sent once (a
    /// new round for a delivery that went out, its round for one still waiting), not before
    /// `at`.
    Correct {
        content: DeliveryContent,
        total: Krw,
        at: DateTime<Utc>,
    },
}

const WAITING: &[DeliveryState] = &[DeliveryState::Ready, DeliveryState::Held];
const RESENDABLE: &[DeliveryState] = &[
    DeliveryState::SentEmail,
    DeliveryState::SentSms,
    DeliveryState::Dead,
    DeliveryState::Held,
    DeliveryState::Unconfirmed,
    DeliveryState::Queued,
    DeliveryState::Sending,
];
/// The states a correction re-arms (`QUEUED` and `SENDING` only to refuse them, see
/// [`Refused::InFlight`]).
const CORRECTABLE: &[DeliveryState] = &[
    DeliveryState::SentEmail,
    DeliveryState::SentSms,
    DeliveryState::Dead,
    DeliveryState::Unconfirmed,
    DeliveryState::Ready,
    DeliveryState::Held,
    DeliveryState::Queued,
    DeliveryState::Sending,
];

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Schedule { .. } => "schedule",
            Command::Resend { .. } => "resend",
            Command::ConvertToSms { .. } => "convert-to-sms",
            Command::ForceSend { .. } => "force-send",
            Command::Hold { .. } => "hold",
            Command::Confirm => "confirm",
            Command::Correct { .. } => "correct",
        }
    }

    /// The states it applies to (`resend`: `QUEUED` and `SENDING` only once no sender
    /// holds them, see [`Seen::sender_may_hold_until`]).
    pub fn applies_to(&self) -> &'static [DeliveryState] {
        match self {
            Command::Schedule { .. } | Command::ConvertToSms { .. } | Command::ForceSend { .. } => WAITING,
            Command::Resend { .. } => RESENDABLE,
            Command::Hold { .. } => &[DeliveryState::Ready],
            Command::Confirm => &[DeliveryState::Unconfirmed],
            Command::Correct { .. } => CORRECTABLE,
        }
    }
}

/// What a command does to the delivery it read.
#[derive(Clone, Debug)]
pub struct Planned {
    pub change: Change,
    /// The state it leaves the delivery in.
    pub to: DeliveryState,
    /// The send round after it (a resend of a delivery that went out or ended starts a new one).
    pub send_round: u64,
    pub new_round: bool,
}

/// Why a command does not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a state the command applies to.
    WrongState {
        state: DeliveryState,
        applies_to: &'static [DeliveryState],
    },
    /// `QUEUED` or `SENDING`, and a sender may still finish it until then.
    SenderMayHold { state: DeliveryState, until: DateTime<Utc> },
    /// The item lacks what the command needs.
    Unreadable(Unreadable),
    /// `QUEUED` or `SENDING`: a send is on its way and a correction waits for it to end (a
    /// sender's lease or the queue's retries may still deliver the uncorrected invoice).
    InFlight { state: DeliveryState },
}

/// What `command` (id `command_id`) does to the delivery `id` as `seen` at `now`.
pub fn plan(
    command_id: &str,
    command: &Command,
    id: &DeliveryId,
    seen: &Seen,
    now: DateTime<Utc>,
) -> Result<Planned, Refused> {
    if !command.applies_to().contains(&seen.state) {
        return Err(Refused::WrongState {
            state: seen.state,
            applies_to: command.applies_to(),
        });
    }
    let same_round = |change: Change, to: DeliveryState| Planned {
        change,
        to,
        send_round: seen.send_round,
        new_round: false,
    };
    Ok(match command {
        Command::Schedule { at } => same_round(schedule(command_id, id, seen, *at, now), DeliveryState::Ready),
        Command::ConvertToSms { at } => {
            same_round(convert_to_sms(command_id, id, seen, *at, now), DeliveryState::Ready)
        }
        Command::ForceSend { at } => same_round(force_send(command_id, id, seen, *at, now), DeliveryState::Ready),
        Command::Hold { reason } => same_round(hold(command_id, seen, reason, now), DeliveryState::Held),
        Command::Confirm => {
            let channel = seen.channel.ok_or(Refused::Unreadable(Unreadable("channel")))?;
            let to = match channel {
                Channel::Email => DeliveryState::SentEmail,
                Channel::Sms => DeliveryState::SentSms,
            };
            same_round(confirm(command_id, seen, channel, now), to)
        }
        Command::Correct { content, total, at } => match seen.state {
            DeliveryState::Queued | DeliveryState::Sending => return Err(Refused::InFlight { state: seen.state }),
            DeliveryState::Ready | DeliveryState::Held => same_round(
                with_content(by_command(command_id, seen, seen.state, &[], now), content, *total),
                seen.state,
            ),
            _ => {
                let round = seen.send_round + 1;
                Planned {
                    change: with_content(resend(command_id, id, seen, round, *at, None, now), content, *total),
                    to: DeliveryState::Ready,
                    send_round: round,
                    new_round: true,
                }
            }
        },
        Command::Resend { at, channel } => {
            if matches!(seen.state, DeliveryState::Queued | DeliveryState::Sending) {
                if let Some(until) = seen.sender_may_hold_until(now) {
                    return Err(Refused::SenderMayHold {
                        state: seen.state,
                        until,
                    });
                }
                same_round(unstick(command_id, id, seen, *at, *channel, now), DeliveryState::Ready)
            } else {
                let round = seen.send_round + 1;
                Planned {
                    change: resend(command_id, id, seen, round, *at, *channel, now),
                    to: DeliveryState::Ready,
                    send_round: round,
                    new_round: true,
                }
            }
        }
    })
}

/// A change by the command `command_id` to the delivery as `seen`, into state `to`: the
/// condition pins the state, `updated_at` and the last write; the command is named on the
/// item (`last_command`); a force-send's set-aside slots come back (see the module doc).
fn by_command(command_id: &str, seen: &Seen, to: DeliveryState, also: &[&str], now: DateTime<Utc>) -> Change {
    let mut condition = vec!["#st = :seen"];
    condition.push(if seen.updated_at.is_some() {
        "updated_at = :seen_updated"
    } else {
        "attribute_not_exists(updated_at)"
    });
    condition.push(if seen.last_write.is_some() {
        "last_write = :seen_write"
    } else {
        "attribute_not_exists(last_write)"
    });
    condition.extend(also);
    let mut change = Change::new(command_id, now)
        .set("#st = :to")
        .set("last_command = :cmd")
        .condition(condition.join(" AND "))
        .text(":to", to.as_str())
        .text(":cmd", command_id)
        .text(":seen", seen.state.as_str())
        .text(":seen_updated", seen.updated_at.clone().unwrap_or_default())
        .text(":seen_write", seen.last_write.clone().unwrap_or_default());
    if seen.dnd_set_aside {
        change = change.set(RESTORE_DND).remove("dnd_before_force");
    }
    change
}

/// Back in the `Due` index, due at `at`, released from a hold.
fn due_at(change: Change, id: &DeliveryId, at: DateTime<Utc>) -> Change {
    change
        .set("available_at = :at")
        .set("due_pk = :due")
        .remove("held_reason")
        .time(":at", &at)
        .text(":due", due_key(id.cycle, domain::delivery::due_bucket(&id.customer)))
}

/// `READY` or `HELD` → `READY`, not before `at`. Dispatch still applies the customer's
/// do-not-disturb slots and the quiet window.
pub fn schedule(command_id: &str, id: &DeliveryId, seen: &Seen, at: DateTime<Utc>, now: DateTime<Utc>) -> Change {
    due_at(by_command(command_id, seen, DeliveryState::Ready, &[], now), id, at)
}

/// `READY` or `HELD` → `READY` on SMS (the preferred channel of this delivery).
pub fn convert_to_sms(command_id: &str, id: &DeliveryId, seen: &Seen, at: DateTime<Utc>, now: DateTime<Utc>) -> Change {
    due_at(by_command(command_id, seen, DeliveryState::Ready, &[], now), id, at)
        .set("preferred_channel = :sms")
        .text(":sms", Channel::Sms.as_str())
}

/// `READY` or `HELD` → `READY` without the customer's do-not-disturb slots: they are set
/// aside in `dnd_before_force` (a second force-send keeps the first one's) and put back when
/// the delivery is sent or ends, or by any other command.
pub fn force_send(command_id: &str, id: &DeliveryId, seen: &Seen, at: DateTime<Utc>, now: DateTime<Utc>) -> Change {
    // Not `by_command`'s restore: this command is the one that sets them aside.
    let own = Seen {
        dnd_set_aside: false,
        ..seen.clone()
    };
    let change = due_at(by_command(command_id, &own, DeliveryState::Ready, &[], now), id, at);
    let change = if seen.dnd_set_aside {
        change
    } else {
        change.set("dnd_before_force = if_not_exists(dnd, :no_slots)")
    };
    change
        .set("dnd = :no_slots")
        .value(":no_slots", aws_sdk_dynamodb::types::AttributeValue::L(Vec::new()))
}

/// `READY` → `HELD` with the operator's reason, out of the `Due` index.
pub fn hold(command_id: &str, seen: &Seen, reason: &str, now: DateTime<Utc>) -> Change {
    by_command(command_id, seen, DeliveryState::Held, &[], now)
        .set("held_reason = :why")
        .remove("due_pk")
        .text(":why", domain::text::bounded(reason.trim(), MAX_HELD_REASON))
}

/// The longest hold reason stored.
pub const MAX_HELD_REASON: usize = 2048;

/// What a delivery leaves behind of its sends when a new round starts.
const LAST_ROUND: &[&str] = &[
    "channel",
    "claims_email",
    "claims_sms",
    "provider_message_id",
    "provider_call",
    "sent_at",
    "confirmed_at",
    "last_error",
    "lease_until",
    "claim_id",
    "run_id",
    "queued_at",
];

/// `SENT_*`, `DEAD`, `HELD` or `UNCONFIRMED` → `READY` in send round `round`: attempts,
/// claims and the last round's traces cleared, optionally on another channel. The
/// providers' idempotency key names the round: sent once more, and once only.
pub fn resend(
    command_id: &str,
    id: &DeliveryId,
    seen: &Seen,
    round: u64,
    at: DateTime<Utc>,
    channel: Option<Channel>,
    now: DateTime<Utc>,
) -> Change {
    let mut change = due_at(by_command(command_id, seen, DeliveryState::Ready, &[], now), id, at)
        .set("send_round = :round")
        .set("attempts_email = :zero")
        .set("attempts_sms = :zero")
        .number(":round", round)
        .number(":zero", 0);
    for a in LAST_ROUND {
        change = change.remove(*a);
    }
    prefer(change, channel)
}

/// `QUEUED` or `SENDING` that no sender holds any more → `READY` in the same round (see the
/// module doc): the claims and the provider-call mark stay, so the next claimant asks the
/// provider before it sends.
pub fn unstick(
    command_id: &str,
    id: &DeliveryId,
    seen: &Seen,
    at: DateTime<Utc>,
    channel: Option<Channel>,
    now: DateTime<Utc>,
) -> Change {
    let change = due_at(by_command(command_id, seen, DeliveryState::Ready, &[], now), id, at)
        .remove("channel")
        .remove("lease_until")
        .remove("claim_id")
        .remove("run_id")
        .remove("queued_at");
    prefer(change, channel)
}

/// The delivery's invoice and amount due replaced by a correction's (the attributes a render
/// writes, [`super::DeliveryStore::update_content`]).
pub fn with_content(change: Change, content: &DeliveryContent, total: Krw) -> Change {
    let change = change
        .set("template_version = :cv")
        .set("content_hash = :ch")
        .set("email_key = :ck")
        .set("subject = :csubj")
        .set("#total = :ctotal")
        .name("#total", "total")
        .number(":ctotal", total.won())
        .text(":cv", &content.template_version)
        .text(":ch", &content.content_hash)
        .text(":ck", &content.email_key)
        .text(":csubj", &content.subject);
    // A correction's invoice is an object of its own: a range of the pack it replaces must go.
    super::with_locations(change, content)
}

fn prefer(change: Change, channel: Option<Channel>) -> Change {
    match channel {
        Some(c) => change.set("preferred_channel = :channel").text(":channel", c.as_str()),
        None => change,
    }
}

/// `UNCONFIRMED` → sent on its channel: the operator checked the provider's evidence that
/// the call went through. `confirmed_at` now, out of the `Due` index (an end state); the
/// failure record that named it stays, and the command is in the audit trail.
pub fn confirm(command_id: &str, seen: &Seen, channel: Channel, now: DateTime<Utc>) -> Change {
    let to = match channel {
        Channel::Email => DeliveryState::SentEmail,
        Channel::Sms => DeliveryState::SentSms,
    };
    // The channel read is part of the condition: the state it writes is that channel's.
    by_command(command_id, seen, to, &["channel = :seen_channel"], now)
        .set("confirmed_at = :now")
        .remove("provider_call")
        .remove("due_pk")
        .remove("lease_until")
        .remove("claim_id")
        .text(":seen_channel", channel.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliveries::DeliveryStore;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn id() -> DeliveryId {
        DeliveryId::parse("2026-11#00001#C0000042").unwrap()
    }

    fn seen(state: DeliveryState) -> Seen {
        Seen {
            state,
            updated_at: Some("2026-12-15T01:00:00Z".into()),
            last_write: Some("run-7/queue".into()),
            channel: Some(Channel::Email),
            preferred_channel: Some(Channel::Email),
            send_round: 2,
            available_at: Some(t("2026-12-15T04:00:00Z")),
            lease_until: None,
            queued_at: Some(t("2026-12-15T01:00:00Z")),
            dnd_set_aside: false,
        }
    }

    /// The update expression and condition the change writes.
    fn written(c: Change) -> (String, String) {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let store = DeliveryStore::new(aws_sdk_dynamodb::Client::from_conf(conf), "deliveries");
        let u = c.into_update(&store, &id()).unwrap();
        (
            u.update_expression().to_owned(),
            u.condition_expression().unwrap_or_default().to_owned(),
        )
    }

    const NOW: &str = "2026-12-15T02:00:00Z";

    #[test]
    fn every_command_but_force_send_puts_a_set_aside_dnd_back() {
        let now = t(NOW);
        let at = now;
        let commands = [
            Command::Schedule { at },
            Command::ConvertToSms { at },
            Command::Hold {
                reason: "dispute".into(),
            },
            Command::Resend { at, channel: None },
            Command::Confirm,
        ];
        for command in commands {
            let state = match command {
                Command::Resend { .. } => DeliveryState::SentEmail,
                Command::Confirm => DeliveryState::Unconfirmed,
                _ => DeliveryState::Ready,
            };
            let mut s = seen(state);
            s.dnd_set_aside = true;
            let p = plan("cmd-1", &command, &id(), &s, now).unwrap();
            let (expr, _) = written(p.change);
            assert!(expr.contains(RESTORE_DND), "{}: {expr}", command.name());
            assert!(expr.contains("REMOVE") && expr.contains("dnd_before_force"), "{expr}");
            // Nothing to put back: the expression does not name a missing attribute.
            let p = plan("cmd-1", &command, &id(), &seen(state), now).unwrap();
            let (expr, _) = written(p.change);
            assert!(!expr.contains("dnd_before_force"), "{}: {expr}", command.name());
        }
        // A force-send sets them aside once, and a second one keeps the first's.
        let (expr, _) = written(force_send("f-1", &id(), &seen(DeliveryState::Ready), now, now));
        assert!(expr.contains("dnd_before_force = if_not_exists(dnd, :no_slots)") && expr.contains("dnd = :no_slots"));
        let mut forced = seen(DeliveryState::Held);
        forced.dnd_set_aside = true;
        let (expr, _) = written(force_send("f-2", &id(), &forced, now, now));
        assert!(
            !expr.contains("dnd_before_force") && expr.contains("dnd = :no_slots"),
            "{expr}"
        );
    }

    #[test]
    fn a_command_is_conditioned_on_the_delivery_it_read_and_named_by_its_id() {
        let now = t(NOW);
        let p = plan(
            "cmd-9",
            &Command::Schedule { at: now },
            &id(),
            &seen(DeliveryState::Held),
            now,
        )
        .unwrap();
        assert_eq!(p.change.token(), "cmd-9");
        let (expr, cond) = written(p.change);
        assert_eq!(
            cond,
            "#st = :seen AND updated_at = :seen_updated AND last_write = :seen_write"
        );
        assert!(expr.contains("due_pk = :due") && expr.contains("held_reason"), "{expr}");
        let mut fresh = seen(DeliveryState::Ready);
        fresh.updated_at = None;
        fresh.last_write = None;
        let p = plan("cmd-9", &Command::Schedule { at: now }, &id(), &fresh, now).unwrap();
        let (_, cond) = written(p.change);
        assert!(cond.contains("attribute_not_exists(updated_at)") && cond.contains("attribute_not_exists(last_write)"));
        let mut unconfirmed = seen(DeliveryState::Unconfirmed);
        unconfirmed.channel = Some(Channel::Sms);
        let p = plan("cmd-9", &Command::Confirm, &id(), &unconfirmed, now).unwrap();
        assert_eq!(p.to, DeliveryState::SentSms);
        let (_, cond) = written(p.change);
        assert!(cond.ends_with("AND channel = :seen_channel"), "{cond}");
    }

    #[test]
    fn commands_refuse_the_states_they_do_not_apply_to() {
        let now = t(NOW);
        let at = now;
        for (command, refused) in [
            (
                Command::Schedule { at },
                vec![
                    DeliveryState::Queued,
                    DeliveryState::SentSms,
                    DeliveryState::Unconfirmed,
                ],
            ),
            (
                Command::Hold { reason: "x".into() },
                vec![DeliveryState::Held, DeliveryState::Queued],
            ),
            (
                Command::ForceSend { at },
                vec![DeliveryState::Dead, DeliveryState::Sending],
            ),
            (Command::Resend { at, channel: None }, vec![DeliveryState::Ready]),
            (
                Command::Confirm,
                vec![
                    DeliveryState::Ready,
                    DeliveryState::SentEmail,
                    DeliveryState::Dead,
                    DeliveryState::Sending,
                ],
            ),
        ] {
            for state in refused {
                assert!(
                    matches!(
                        plan("c", &command, &id(), &seen(state), now),
                        Err(Refused::WrongState { .. })
                    ),
                    "{} on {state}",
                    command.name()
                );
            }
        }
    }

    #[test]
    fn a_stuck_delivery_is_resent_in_its_round_only_once_no_sender_may_hold_it() {
        let resend = Command::Resend {
            at: t(NOW),
            channel: None,
        };
        // Queued at 01:00, re-checked at 04:00: a sender may still take it until then.
        let queued = seen(DeliveryState::Queued);
        assert_eq!(
            plan("r", &resend, &id(), &queued, t("2026-12-15T03:59:00Z")).unwrap_err(),
            Refused::SenderMayHold {
                state: DeliveryState::Queued,
                until: t("2026-12-15T04:00:00Z")
            }
        );
        // A re-check time earlier than the queue's retries still waits for them.
        let mut early = queued.clone();
        early.available_at = Some(t("2026-12-15T01:30:00Z"));
        assert!(plan("r", &resend, &id(), &early, t("2026-12-15T03:00:00Z")).is_err());
        let p = plan("r", &resend, &id(), &queued, t("2026-12-15T04:00:01Z")).unwrap();
        assert_eq!((p.to, p.send_round, p.new_round), (DeliveryState::Ready, 2, false));
        let (expr, _) = written(p.change);
        assert!(
            !expr.contains("claims_email") && !expr.contains("provider_call") && !expr.contains("send_round"),
            "{expr}"
        );
        // Sending: the lease decides.
        let mut sending = seen(DeliveryState::Sending);
        sending.lease_until = Some(t("2026-12-15T02:10:00Z"));
        assert!(matches!(
            plan("r", &resend, &id(), &sending, t("2026-12-15T02:05:00Z")),
            Err(Refused::SenderMayHold { .. })
        ));
        assert!(plan("r", &resend, &id(), &sending, t("2026-12-15T02:10:01Z")).is_ok());
        // Sent, dead or unconfirmed: a new round, the last one's traces cleared.
        for state in [
            DeliveryState::SentEmail,
            DeliveryState::Dead,
            DeliveryState::Unconfirmed,
        ] {
            let p = plan("r", &resend, &id(), &seen(state), t(NOW)).unwrap();
            assert_eq!((p.send_round, p.new_round), (3, true));
            let (expr, _) = written(p.change);
            assert!(
                expr.contains("provider_call") && expr.contains("claims_email"),
                "{expr}"
            );
        }
    }

    fn corrected() -> Command {
        Command::Correct {
            content: DeliveryContent {
                email_range: None,
                template_version: "v1".into(),
                content_hash: "h-c0001".into(),
                email_key: "invoices/2026-11/00001/C0000042/v1-c0001-h.html".into(),
                subject: "정정 청구서".into(),
                sms_text: "정정 [[INVOICE_LINK]]".into(),
                sms_range: None,
            },
            total: Krw(41_000),
            at: t(NOW),
        }
    }

    #[test]
    fn a_correction_starts_a_new_round_after_a_send_and_keeps_a_waiting_ones_round() {
        let now = t(NOW);
        for state in [
            DeliveryState::SentEmail,
            DeliveryState::SentSms,
            DeliveryState::Dead,
            DeliveryState::Unconfirmed,
        ] {
            let p = plan("c-1", &corrected(), &id(), &seen(state), now).unwrap();
            assert_eq!(
                (p.to, p.send_round, p.new_round),
                (DeliveryState::Ready, 3, true),
                "{state}"
            );
            let (expr, cond) = written(p.change);
            for part in [
                "send_round = :round",
                "content_hash = :ch",
                "#total = :ctotal",
                "due_pk = :due",
            ] {
                assert!(expr.contains(part), "{state}: {part} in {expr}");
            }
            assert!(
                expr.contains("provider_message_id"),
                "the last round's traces go: {expr}"
            );
            assert!(cond.starts_with("#st = :seen AND updated_at = :seen_updated"), "{cond}");
        }
        for state in [DeliveryState::Ready, DeliveryState::Held] {
            let p = plan("c-1", &corrected(), &id(), &seen(state), now).unwrap();
            assert_eq!((p.to, p.send_round, p.new_round), (state, 2, false), "{state}");
            let (expr, _) = written(p.change);
            assert!(
                expr.contains("content_hash = :ch") && !expr.contains("send_round"),
                "{expr}"
            );
            assert!(!expr.contains("due_pk"), "a waiting delivery keeps its place: {expr}");
        }
        for state in [DeliveryState::Queued, DeliveryState::Sending] {
            assert_eq!(
                plan("c-1", &corrected(), &id(), &seen(state), now).unwrap_err(),
                Refused::InFlight { state }
            );
        }
    }

    #[test]
    fn the_item_is_read_without_echoing_its_values() {
        let mut item = Item::new();
        item.insert("state".into(), AttributeValue::S("UNCONFIRMED".into()));
        item.insert("channel".into(), AttributeValue::S("sms".into()));
        item.insert("send_round".into(), AttributeValue::N("1".into()));
        item.insert("dnd_before_force".into(), AttributeValue::L(vec![]));
        let s = Seen::read(&item).unwrap();
        assert_eq!(
            (s.state, s.channel, s.send_round, s.dnd_set_aside),
            (DeliveryState::Unconfirmed, Some(Channel::Sms), 1, true)
        );
        item.insert("channel".into(), AttributeValue::S("someone@example.com".into()));
        let e = Seen::read(&item).unwrap_err().to_string();
        assert!(e.contains("channel") && !e.contains("example.com"), "{e}");
        item.insert("state".into(), AttributeValue::S("SENT".into()));
        assert_eq!(Seen::read(&item).unwrap_err(), Unreadable("state"));
    }
}
