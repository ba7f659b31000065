//! What a run is given: the schedule's [`DispatchEvent`], the [`Resume`]
//! point a continuation carries, and [`parse_event`], which reads one from
//! JSON text with an error a person can act on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the schedule sends: `{"scheduled_time": "<aws.scheduler.scheduled-time>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchEvent {
    pub scheduled_time: String,
    /// Names the run in delivery records and messages; defaults to
    /// `dispatch-<scheduled_time>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// 0 for the scheduled run, n for its n-th continuation.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub continuation: u32,
    /// Where a continuation takes up its run's work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

impl DispatchEvent {
    pub fn at(scheduled: DateTime<Utc>) -> Self {
        DispatchEvent {
            scheduled_time: scheduled.to_rfc3339(),
            run_id: None,
            continuation: 0,
            resume: None,
        }
    }
}

/// How far a run got, by index partition (`{cycle}#{bucket:02}`): the
/// partitions it read to the end, and where it stopped in the others (the
/// `Due` index key to read on from, all string attributes). A partition in
/// neither was not started. Resuming after the cursor, a continuation never
/// re-reads what its run passed over (due, but not in this slot for the
/// customer), so every continuation makes progress; what the run put back
/// behind its cursor (a message SQS refused) goes with the next slot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    #[serde(default)]
    pub done: Vec<String>,
    #[serde(default)]
    pub cursors: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What an event that does not parse is told: the shape expected, then which field is wrong
/// and how ([`domain::decode`]: never the value).
pub(crate) fn event_error(e: &domain::decode::DecodeError) -> String {
    format!(r#"expected {{"scheduled_time": "<RFC 3339 instant>"}} (optional "run_id", "continuation"): {e}"#)
}

/// A [`DispatchEvent`] from JSON text, with the error a person can act on.
pub fn parse_event(text: &str) -> Result<DispatchEvent, String> {
    domain::decode::from_str(text).map_err(|e| event_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_that_does_not_parse_names_the_field_not_the_value() {
        let email = "kim.minjun.1987@example-mail.co.kr";
        for (json, field) in [
            (
                format!(r#"{{"scheduled_time": "{email}", "continuation": "{email}"}}"#),
                "continuation",
            ),
            (
                format!(r#"{{"scheduled_time": 1, "run_id": "{email}"}}"#),
                "scheduled_time",
            ),
            (format!(r#"{{"scheduled_time": "x", "{email}": 1}}"#), "?"),
        ] {
            let e = parse_event(&json).unwrap_err();
            assert!(e.contains(&format!("field `{field}`")), "{e}");
            assert!(!domain::text::echoes(&e, email), "{e}");
            assert!(e.len() <= domain::text::MAX_REASON_BYTES, "{e}");
        }
        let long = "x".repeat(100_000);
        let e = parse_event(&format!(r#"{{"scheduled_time": "t", "resume": {{"done": "{long}"}}}}"#)).unwrap_err();
        assert!(e.contains("field `resume.done`: expected a sequence"), "{e}");
        assert!(!domain::text::echoes(&e, &long), "{e}");
    }
}
