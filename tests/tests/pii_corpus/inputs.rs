//! The cases of the functions that take events: each function's sample input from `events/`,
//! walked field by field with each value of the corpus in each field (see
//! `integration_tests::corpus::variants`), plus texts that are no input at all but hold the
//! value. SQS-triggered functions get the value in the message body; the others in the event.

use integration_tests::corpus::{Placed, malformed, variants};
use serde_json::{Value, json};

/// One input of the corpus: the function it goes to, where the value is, which value, and
/// the payload (for [`Target::Execution`], the execution's input).
pub struct Case {
    pub target: Target,
    pub field: String,
    pub value: String,
    pub payload: Value,
}

/// Where a case's payload goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A function's handler, called as the runtime calls it (by its `events/` folder name).
    Function(&'static str),
    /// A new execution of the settlement state machine.
    Execution,
}

impl Case {
    /// `function field = value`, naming no value.
    pub fn name(&self) -> String {
        let to = match self.target {
            Target::Function(f) => f,
            Target::Execution => "settlement execution",
        };
        format!("{to} {} = {}", self.field, self.value)
    }
}

/// A sample event of `events/`.
pub fn sample(relative: &str) -> Value {
    let path = local_aws::project_root().unwrap().join("events").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The first record of a sample SQS event with `body`, under message id `id`.
fn sqs_event(template: &Value, id: &str, body: &str) -> Value {
    let mut record = template["Records"][0].clone();
    record["messageId"] = json!(id);
    record["body"] = json!(body);
    json!({ "Records": [record] })
}

/// The message id of the case numbered `n` (failure records of unreadable messages are kept
/// under it, which tells which case wrote them).
pub fn message_id(n: usize) -> String {
    format!("corpus-m{n:05}")
}

/// Every case of the event-driven functions and the state machine for the values `values`;
/// `email_delivery` and `sms_delivery` are queued deliveries of the stack (the senders'
/// samples name them, so that a body with the value in another field is otherwise valid).
pub fn cases(values: &[Placed], email_delivery: &str, sms_delivery: &str, first_id: usize) -> Vec<Case> {
    let mut out = Vec::new();
    // Direct invocations: the event is the input.
    let direct = [
        ("settle-begin", "settle-begin/start.json"),
        ("settle-begin", "settle-begin/scheduled.json"),
        ("settle-shard", "settle-shard/shard-0.json"),
        ("render-shard", "render-shard/shard-0.json"),
        ("settle-finish", "settle-finish/finish.json"),
        ("dispatch-slot", "dispatch-slot/slot.json"),
    ];
    // SQS-triggered: the message body is the input.
    let mut queued: Vec<(&'static str, Value, Value)> = Vec::new();
    for (function, file, delivery) in [
        ("send-email", "send-email/batch.json", Some(email_delivery)),
        ("send-sms", "send-sms/batch.json", Some(sms_delivery)),
        ("record-failure", "record-failure/dead-letter.json", None),
        ("dispatch-slot", "dispatch-slot/continuation.json", None),
    ] {
        let event = sample(file);
        let mut body: Value = serde_json::from_str(event["Records"][0]["body"].as_str().unwrap()).unwrap();
        if let Some(d) = delivery {
            body["delivery_id"] = json!(d);
        }
        queued.push((function, event, body));
    }
    // The state machine's input: what an operator or the schedule starts an execution with.
    let executions = [
        json!({"cycle": "2026-11"}),
        json!({"scheduled_time": "2026-12-01T02:00:00+09:00"}),
    ];
    for v in values {
        for (function, file) in direct {
            let s = sample(file);
            for variant in variants(&s, &v.text) {
                out.push(Case {
                    target: Target::Function(function),
                    field: format!("{file}{}", variant.field),
                    value: v.label.clone(),
                    payload: variant.input,
                });
            }
            out.push(Case {
                target: Target::Function(function),
                field: format!("{file} replaced by a JSON string"),
                value: v.label.clone(),
                payload: json!(v.text),
            });
        }
        for (function, event, body) in &queued {
            let mut bodies: Vec<(String, String)> = variants(body, &v.text)
                .into_iter()
                .map(|variant| (format!("body{}", variant.field), variant.input.to_string()))
                .collect();
            bodies.extend(
                malformed(body, &v.text)
                    .into_iter()
                    .map(|(f, t)| (format!("body: {f}"), t)),
            );
            for (field, text) in bodies {
                let n = first_id + out.len();
                out.push(Case {
                    target: Target::Function(function),
                    field,
                    value: v.label.clone(),
                    payload: sqs_event(event, &message_id(n), &text),
                });
            }
        }
        for input in &executions {
            for variant in variants(input, &v.text) {
                out.push(Case {
                    target: Target::Execution,
                    field: format!("input{}", variant.field),
                    value: v.label.clone(),
                    payload: variant.input,
                });
            }
        }
        out.push(Case {
            target: Target::Execution,
            field: "input replaced by a JSON string".into(),
            value: v.label.clone(),
            payload: json!(v.text),
        });
    }
    out
}
