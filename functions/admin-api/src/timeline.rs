//! A delivery's timeline (`timeline` in `GET /cycles/{cycle}/deliveries/{customer}`): the
//! steps its item's timestamps show, each failure record and each command on it, in time
//! order.
//!
//! An item keeps the **latest** time of each step (`claimed_at` is its last claim, `sent_at`
//! its last send), so a step that happened twice shows once, at its latest time; the failure
//! log keeps one record per stage (its latest time and how often) and the command log every
//! command, and each shows. Detail texts are built from codes, states, reasons the platform
//! or an operator wrote and a masked caller: never contact data.

use adapters::dynamo::{Item, attr_s};
use adapters::failures::FailureRecord;
use chrono::{DateTime, Utc};
use domain::delivery::utc_seconds;
use serde::Serialize;

use crate::command_log::CommandRecord;
use crate::http::Caller;

/// One step of a delivery's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// When, in RFC 3339 to the second (UTC).
    pub at: String,
    /// `rendered`, `queued`, `claimed`, `deferred`, `sent`, `fell-back`, `held`, `dead`,
    /// `delivered`, `bounced`, `complained`, `confirmed`, `failure` or `command`.
    pub step: &'static str,
    /// `email` or `sms` where the step was on a channel.
    pub channel: Option<String>,
    pub detail: Option<String>,
}

/// The order of steps at the same instant: the order a delivery goes through them.
const ORDER: &[&str] = &[
    "rendered",
    "command",
    "held",
    "queued",
    "claimed",
    "deferred",
    "failure",
    "sent",
    "dead",
    "confirmed",
    "delivered",
    "bounced",
    "complained",
    "fell-back",
];

fn rank(step: &str) -> usize {
    ORDER.iter().position(|s| *s == step).unwrap_or(ORDER.len())
}

fn instant(at: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(at).ok().map(|t| t.with_timezone(&Utc))
}

/// The timeline of the delivery `item` with its failure records and the commands on it: a
/// step for each time the item holds, each failure record (at its `last_at`) and each
/// command, in time order to the second (steps in the same second in the order a delivery
/// goes through them), each time given to the second. A time that does not read as RFC 3339
/// leaves its step out.
pub fn timeline(item: &Item, failures: &[FailureRecord], commands: &[CommandRecord]) -> Vec<Step> {
    let text = |name: &str| attr_s(item, name).map(str::to_owned);
    let channel = text("channel");
    let state = text("state").unwrap_or_default();
    let mut steps = Vec::new();
    let mut push = |at: Option<String>, step: &'static str, channel: Option<String>, detail: Option<String>| {
        if let Some(at) = at {
            steps.push(Step {
                at,
                step,
                channel,
                detail,
            });
        }
    };
    push(text("created_at"), "rendered", None, None);
    push(text("queued_at"), "queued", channel.clone(), None);
    push(text("claimed_at"), "claimed", channel.clone(), None);
    let deferred = text("deferred_at");
    let deferred_why = deferred.as_deref().map(|at| {
        // A send the slots forbade is due again later; one whose channel was turned off is
        // due at once (dispatch routes it by the policy in force).
        match (instant(at), text("available_at").as_deref().and_then(instant)) {
            (Some(at), Some(due)) if due > at => format!(
                "a do-not-disturb slot or the quiet window forbade the send; due again at {}",
                text("available_at").unwrap_or_default()
            ),
            _ => "its channel was turned off; back to dispatch".to_owned(),
        }
    });
    push(deferred, "deferred", channel.clone(), deferred_why);
    push(text("sent_at"), "sent", channel.clone(), None);
    push(
        text("routed_at"),
        "fell-back",
        Some("sms".to_owned()),
        text("route_reason").map(|r| format!("the email's evidence: {r}")),
    );
    if state == "HELD" {
        // The item keeps no time of the hold: its latest hold command's, else its last change.
        let at = commands
            .iter()
            .filter(|c| c.command == "hold")
            .map(|c| c.at.clone())
            .max_by_key(|at| instant(at))
            .or_else(|| text("updated_at"));
        push(at, "held", None, text("held_reason"));
    }
    if text("parked_at").is_some() {
        push(text("parked_at"), "dead", channel.clone(), text("parked_reason"));
    } else if state == "DEAD" {
        // A sender's give-up: its time is the item's last change, its why the last error.
        push(
            text("updated_at"),
            "dead",
            channel.clone(),
            text("last_error").map(|e| format!("the sender gave up: {e}")),
        );
    }
    let evidence = match text("evidence").as_deref() {
        Some("DELIVERED") => Some("delivered"),
        Some("BOUNCED") => Some("bounced"),
        Some("COMPLAINED") => Some("complained"),
        _ => None,
    };
    if let Some(step) = evidence {
        push(
            text("evidence_at"),
            step,
            text("evidence_channel"),
            text("evidence_type").map(|t| format!("the provider's type: {t}")),
        );
    }
    push(text("confirmed_at"), "confirmed", channel.clone(), None);
    for f in failures {
        push(
            Some(f.last_at.clone()),
            "failure",
            f.channel.map(|c| c.as_str().to_owned()),
            Some(match f.occurrences {
                0 | 1 => format!("{} {}: {}", f.stage.as_str(), f.code, f.reason),
                n => format!("{} {}: {} ({n} times)", f.stage.as_str(), f.code, f.reason),
            }),
        );
    }
    for c in commands {
        let by = Caller { arn: c.who.clone() }.masked();
        push(
            Some(c.at.clone()),
            "command",
            None,
            Some(format!("{} by {by}: {}", c.command, c.why)),
        );
    }
    // To the second: an item keeps whole seconds, its creation time and a command's time may
    // have a fraction, and a step at 12:00:00 is not before one at 12:00:00.8.
    let mut steps: Vec<(i64, Step)> = steps
        .into_iter()
        .filter_map(|mut s| {
            let t = instant(&s.at)?;
            s.at = utc_seconds::format(&t);
            Some((t.timestamp(), s))
        })
        .collect();
    steps.sort_by(|(a, x), (b, y)| a.cmp(b).then(rank(x.step).cmp(&rank(y.step))));
    steps.into_iter().map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapters::failures::FailureStage;
    use aws_sdk_dynamodb::types::AttributeValue;
    use domain::Channel;

    fn item(attrs: &[(&str, &str)]) -> Item {
        attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttributeValue::S((*v).to_owned())))
            .collect()
    }

    fn steps(t: &[Step]) -> Vec<&str> {
        t.iter().map(|s| s.step).collect()
    }

    fn failure(last_at: &str) -> FailureRecord {
        FailureRecord {
            pk: "2026-11".into(),
            sk: "2026-11#00000#C0000001#email".into(),
            subject: "2026-11#00000#C0000001".into(),
            stage: FailureStage::Email,
            code: "provider-rejected".into(),
            reason: "the provider refused the message".into(),
            channel: Some(Channel::Email),
            attempts: 3,
            run_id: None,
            replay: None,
            first_at: last_at.into(),
            last_at: last_at.into(),
            occurrences: 1,
        }
    }

    fn command(verb: &str, at: &str) -> CommandRecord {
        CommandRecord {
            command_id: format!("cmd-{verb}"),
            command: verb.into(),
            target: "2026-11#00000#C0000001".into(),
            who: "arn:aws:sts::123456789012:assumed-role/billing-operator/lee@example.com".into(),
            why: "the customer asked".into(),
            at: at.into(),
            request_digest: String::new(),
            result: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_sent_delivery_shows_rendered_queued_claimed_sent_in_order() {
        let d = item(&[
            ("state", "SENT_EMAIL"),
            ("channel", "email"),
            ("sent_at", "2026-12-15T01:00:09Z"),
            ("created_at", "2026-12-01T00:00:00Z"),
            ("claimed_at", "2026-12-15T01:00:05Z"),
            ("queued_at", "2026-12-15T01:00:00Z"),
            ("updated_at", "2026-12-15T01:00:09Z"),
        ]);
        let t = timeline(&d, &[], &[]);
        assert_eq!(steps(&t), ["rendered", "queued", "claimed", "sent"]);
        assert_eq!(t[3].at, "2026-12-15T01:00:09Z");
        assert_eq!(t[3].channel.as_deref(), Some("email"));
        assert_eq!(t[0].channel, None);
    }

    #[test]
    fn steps_at_the_same_instant_keep_the_order_a_delivery_goes_through() {
        let at = "2026-12-15T01:00:00Z";
        let d = item(&[
            ("channel", "sms"),
            ("sent_at", at),
            ("claimed_at", at),
            ("queued_at", at),
            ("created_at", at),
        ]);
        assert_eq!(
            steps(&timeline(&d, &[], &[])),
            ["rendered", "queued", "claimed", "sent"]
        );
    }

    #[test]
    fn times_compare_to_the_second_whatever_their_fraction() {
        let d = item(&[
            ("channel", "email"),
            ("created_at", "2026-12-07T07:48:51.787815712Z"),
            ("queued_at", "2026-12-07T07:48:51Z"),
            ("claimed_at", "2026-12-07T07:48:52Z"),
        ]);
        assert_eq!(steps(&timeline(&d, &[], &[])), ["rendered", "queued", "claimed"]);
    }

    #[test]
    fn a_deferral_says_why_from_when_it_is_due_again() {
        let slot = item(&[
            ("state", "READY"),
            ("channel", "email"),
            ("deferred_at", "2026-12-15T13:00:00Z"),
            ("available_at", "2026-12-15T23:00:00Z"),
        ]);
        let t = timeline(&slot, &[], &[]);
        assert_eq!(steps(&t), ["deferred"]);
        let why = t[0].detail.as_deref().unwrap();
        assert!(
            why.contains("quiet window") && why.contains("2026-12-15T23:00:00Z"),
            "{why}"
        );
        let off = item(&[
            ("deferred_at", "2026-12-15T13:00:00Z"),
            ("available_at", "2026-12-15T13:00:00Z"),
        ]);
        assert!(
            timeline(&off, &[], &[])[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("channel was turned off")
        );
    }

    #[test]
    fn a_fallback_evidence_and_a_failure_show_with_their_details() {
        let d = item(&[
            ("state", "SENT_SMS"),
            ("channel", "sms"),
            ("created_at", "2026-12-01T00:00:00Z"),
            ("routed_at", "2026-12-15T01:05:00Z"),
            ("route_reason", "Bounce/Permanent"),
            ("evidence", "BOUNCED"),
            ("evidence_at", "2026-12-15T01:04:00Z"),
            ("evidence_channel", "email"),
            ("evidence_type", "Bounce/Permanent"),
            ("sent_at", "2026-12-15T03:00:00Z"),
        ]);
        let mut twice = failure("2026-12-15T01:04:30Z");
        twice.occurrences = 2;
        let t = timeline(&d, &[twice], &[]);
        assert_eq!(steps(&t), ["rendered", "bounced", "failure", "fell-back", "sent"]);
        assert_eq!(
            (t[1].channel.as_deref(), t[1].detail.as_deref()),
            (Some("email"), Some("the provider's type: Bounce/Permanent"))
        );
        assert_eq!(
            t[2].detail.as_deref(),
            Some("email provider-rejected: the provider refused the message (2 times)")
        );
        assert_eq!(t[3].channel.as_deref(), Some("sms"));
    }

    #[test]
    fn a_held_delivery_shows_its_hold_at_the_command_and_commands_name_a_masked_caller() {
        let d = item(&[
            ("state", "HELD"),
            ("created_at", "2026-12-01T00:00:00Z"),
            ("held_reason", "billing dispute"),
            ("updated_at", "2026-12-20T00:00:00Z"),
        ]);
        let hold = command("hold", "2026-12-10T00:00:00.123Z");
        let t = timeline(&d, &[], &[hold]);
        assert_eq!(steps(&t), ["rendered", "command", "held"]);
        assert_eq!(
            (t[2].at.as_str(), t[2].detail.as_deref()),
            ("2026-12-10T00:00:00Z", Some("billing dispute"))
        );
        let detail = t[1].detail.as_deref().unwrap();
        assert!(
            detail.starts_with("hold by ") && detail.ends_with(": the customer asked"),
            "{detail}"
        );
        assert!(!detail.contains("lee@example.com"), "the caller is masked: {detail}");
    }

    #[test]
    fn a_dead_delivery_shows_why_from_the_park_or_the_last_error() {
        let parked = item(&[
            ("state", "DEAD"),
            ("parked_at", "2026-12-15T01:00:00Z"),
            ("parked_reason", "the index entry does not decode"),
        ]);
        let t = timeline(&parked, &[], &[]);
        assert_eq!(
            (t[0].step, t[0].detail.as_deref()),
            ("dead", Some("the index entry does not decode"))
        );
        let gave_up = item(&[
            ("state", "DEAD"),
            ("channel", "sms"),
            ("last_error", "invalid-number"),
            ("updated_at", "2026-12-15T02:00:00Z"),
        ]);
        let t = timeline(&gave_up, &[], &[]);
        assert_eq!(
            (t[0].step, t[0].at.as_str(), t[0].detail.as_deref()),
            (
                "dead",
                "2026-12-15T02:00:00Z",
                Some("the sender gave up: invalid-number")
            )
        );
    }

    #[test]
    fn a_confirmed_delivery_and_an_unreadable_time() {
        let d = item(&[
            ("state", "SENT_EMAIL"),
            ("channel", "email"),
            ("confirmed_at", "2026-12-16T00:00:00Z"),
            ("created_at", "not a time"),
        ]);
        assert_eq!(steps(&timeline(&d, &[], &[])), ["confirmed"]);
    }
}
