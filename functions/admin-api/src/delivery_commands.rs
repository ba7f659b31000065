//! The commands on one delivery: `POST /cycles/{cycle}/deliveries/{customer}/{verb}` for
//! each of [`DELIVERY_COMMANDS`].
//!
//! A command's body is read only as far as its command id first (a replay answers before
//! anything else is checked, see [`crate::command_log::Requested`]), then validated into an
//! `adapters::deliveries::commands::Command`. The delivery's change is planned there, the
//! one place of the operators' transitions, and written in one transaction with the
//! command's record ([`crate::command_log::CommandLog::apply`]).

use adapters::deliveries::commands::{Command, Refused, Seen, plan};
use adapters::dynamo::attr_s;
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use domain::delivery::utc_seconds;
use domain::{Channel, CustomerId, Cycle, DeliveryId};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::command_log::{Given, changed_meanwhile, check_reason};
use crate::reads::{dnd_slots, shard_of};
use crate::{ApiError, Deps, Response};

/// The commands on a delivery, by the last segment of their route.
pub const DELIVERY_COMMANDS: [&str; 6] = ["schedule", "resend", "convert-to-sms", "force-send", "hold", "confirm"];

/// How far ahead a delivery may be scheduled.
pub const MAX_SCHEDULE_AHEAD_DAYS: i64 = 400;

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
    /// Taken by [`crate::command_log::Requested::parse`]; declared so that `deny_unknown_fields` accepts it.
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

/// The shared path of every delivery command, once its replay was looked up
/// ([`crate::command_log::CommandLog::unless_replayed`]): validation, the delivery read, the
/// command's plan for it (`adapters::deliveries::commands`: the state machine's one place for
/// operators' transitions), and its change written with the command's record in one
/// transaction.
pub(crate) async fn delivery_command(
    deps: &Deps,
    verb: &str,
    cycle: Cycle,
    customer: &CustomerId,
    given: &Given<'_>,
) -> Result<Response, ApiError> {
    let now = given.now;
    let body: CommandBody = given.body()?;
    check_reason(&body.reason)?;
    let command = delivery_command_of(verb, &body, cycle, now)?;
    let shard = shard_of(deps, customer).await?;
    let id = DeliveryId::new(cycle, shard, customer.clone());
    let target = id.canonical();
    let cmd = given.record(command.name(), target.clone(), &body.reason);
    let Some(raw) = deps.deliveries.raw(cycle, shard, customer).await? else {
        return Err(ApiError::not_found(
            "unknown-delivery",
            format!("the customer has no delivery in cycle {cycle}"),
        ));
    };
    let seen =
        Seen::read(&raw).map_err(|e| ApiError::conflict("unreadable-delivery", format!("delivery {target}: {e}")))?;
    let planned = plan(given.id(), &command, &id, &seen, now).map_err(|r| refusal(&target, &command, r))?;
    let mut result = json!({
        "command_id": given.id(),
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
        // Given by `crate::corrections`, never through this route.
        Command::Correct { .. } => json!({}),
    };
    if let (Some(out), Value::Object(extra)) = (result.as_object_mut(), answer) {
        out.extend(extra);
    }
    let update = planned.change.into_update(&deps.deliveries, &id)?;
    let effect = TransactWriteItem::builder().update(update).build();
    let refused = || changed_meanwhile(&format!("delivery {target}"));
    let applied = deps.commands.apply(&cmd, effect, result, refused).await?;
    Ok(applied.answer(|| {
        tracing::info!(command_id = %given.id(), command = command.name(), delivery_id = %target, who = %given.caller.masked(), "command applied");
    }))
}

/// Why a command does not apply, for the operator (409).
pub(crate) fn refusal(target: &str, command: &Command, r: Refused) -> ApiError {
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
        Refused::InFlight { state } => ApiError::conflict(
            "send-in-flight",
            format!(
                "delivery {target} is {state}: a send is on its way; retry after the send completes (the delivery is then SENT_EMAIL, SENT_SMS or DEAD)"
            ),
        ),
    }
}

/// `available_at` of a command: whole seconds, not in the past (now when absent or past by
/// less than five minutes of clock skew), at most `MAX_SCHEDULE_AHEAD_DAYS` ahead, and on a
/// day dispatch still takes the cycle (`domain::dispatch::dispatched_through`, Asia/Seoul):
/// a delivery due later would never be enqueued. Errors name the field, never its value.
pub(crate) fn command_time(v: Option<&str>, cycle: Cycle, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
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
