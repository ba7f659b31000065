//! The template grants what each piece uses and no more.
//!
//! - No `Allow` statement anywhere in `template.yaml` names the resource `"*"`, except the
//!   few actions AWS only authorises on every resource ([`WILDCARD_EXCEPTIONS`], each with
//!   why).
//! - The email sender's `ses:SendEmail` is limited to this account's identities, as the
//!   configured sender only (`ses:FromAddress`), and to the configured configuration set.
//! - The SMS sender's `sms-voice:SendTextMessage` (End User Messaging, only when it is the
//!   SMS provider) is limited to the configured origination identity of this account and
//!   region and to the configured configuration set.
//! - The senders hold the queue rights they use: each changes the visibility of its own
//!   queue's messages only; the email sender sends to its own queue (a fresh copy), the SMS
//!   queue (the fallback) and the dead-letter queue; the SMS sender never touches the email
//!   queue.
//! - Every policy attached to a function or the state machine is a statement written in this
//!   template (or SAM's `LambdaInvokePolicy` on one named function): no AWS managed policy,
//!   no broader policy template, so reviewing the file reviews every grant.
//! - No ARN hard-codes the `aws` partition.
//!
//! The template is read as it is deployed; no emulator is needed.

use std::path::Path;

use local_aws::template::Template;
use serde_yaml::Value;

/// Actions that AWS authorises only on `"*"`, and why they are needed.
const WILDCARD_EXCEPTIONS: &[(&str, &str)] = &[
    // Step Functions' execution logging: the log delivery APIs take no resource ARN.
    ("logs:CreateLogDelivery", "state machine logging"),
    ("logs:GetLogDelivery", "state machine logging"),
    ("logs:UpdateLogDelivery", "state machine logging"),
    ("logs:DeleteLogDelivery", "state machine logging"),
    ("logs:ListLogDeliveries", "state machine logging"),
    ("logs:PutResourcePolicy", "state machine logging"),
    ("logs:DescribeResourcePolicies", "state machine logging"),
    ("logs:DescribeLogGroups", "state machine logging"),
    // SES's account quota (the senders pace to its rate, dispatch plans within its 24 hours):
    // GetAccount reads the account, it has no resource to name.
    ("ses:GetAccount", "the account's send quota"),
];

fn template() -> Template {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    Template::load(&path).expect("template.yaml parses")
}

/// One `Allow` statement found in a resource's properties.
#[derive(Debug)]
struct Allow {
    resource_id: String,
    actions: Vec<String>,
    resources: Vec<Value>,
    condition: Option<Value>,
}

/// A value with its tag (`!If`, `!Sub`, …) taken off.
fn untagged(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untagged(&t.value),
        other => other,
    }
}

fn strings(v: &Value) -> Vec<String> {
    match untagged(v) {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// Every `Allow` statement under `v`, wherever it sits (inline policies, `!If` branches).
fn allows(resource_id: &str, v: &Value, out: &mut Vec<Allow>) {
    match untagged(v) {
        Value::Mapping(m) => {
            let effect = m.get("Effect").and_then(Value::as_str);
            if effect == Some("Allow") {
                let resources = match m.get("Resource") {
                    Some(r) => match untagged(r) {
                        Value::Sequence(items) => items.clone(),
                        _ => vec![r.clone()],
                    },
                    None => Vec::new(),
                };
                out.push(Allow {
                    resource_id: resource_id.to_owned(),
                    actions: m.get("Action").map(strings).unwrap_or_default(),
                    resources,
                    condition: m.get("Condition").cloned(),
                });
            }
            for (_, child) in m {
                allows(resource_id, child, out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| allows(resource_id, i, out)),
        _ => {}
    }
}

fn every_allow() -> Vec<Allow> {
    let t = template();
    let mut out = Vec::new();
    for r in t.resources() {
        allows(&r.logical_id, &r.properties, &mut out);
    }
    assert!(out.len() > 20, "the template's statements are found: {}", out.len());
    out
}

fn is_wildcard(v: &Value) -> bool {
    matches!(untagged(v), Value::String(s) if s == "*")
}

/// The `!GetAtt X.Arn` resources of a statement, as `X`.
fn arns_of(a: &Allow) -> Vec<String> {
    a.resources
        .iter()
        .filter_map(|r| match r {
            Value::Tagged(t) if t.tag == "GetAtt" => t.value.as_str().map(|s| s.trim_end_matches(".Arn").to_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn no_statement_grants_every_resource_but_the_documented_exceptions() {
    let mut wrong = Vec::new();
    for a in every_allow() {
        if !a.resources.iter().any(is_wildcard) {
            continue;
        }
        for action in &a.actions {
            if !WILDCARD_EXCEPTIONS.iter().any(|(allowed, _)| allowed == action) {
                wrong.push(format!("{}: {action} on \"*\"", a.resource_id));
            }
        }
    }
    assert!(wrong.is_empty(), "statements on every resource: {wrong:#?}");
}

#[test]
fn ses_send_email_is_limited_to_the_sender_address_and_its_configuration_set() {
    let ses: Vec<Allow> = every_allow()
        .into_iter()
        .filter(|a| a.actions.iter().any(|x| x.starts_with("ses:") && x != "ses:GetAccount"))
        .collect();
    assert_eq!(ses.len(), 1, "one SES sending statement, the email sender's: {ses:#?}");
    let a = &ses[0];
    assert_eq!(a.resource_id, "SendEmailFunction");
    assert_eq!(a.actions, ["ses:SendEmail"]);
    let text = serde_yaml::to_string(&a.resources).unwrap();
    assert!(!a.resources.iter().any(is_wildcard), "{text}");
    assert!(text.contains(":identity/"), "the account's identities: {text}");
    assert!(
        text.contains(":configuration-set/${SesConfigurationSet}"),
        "the configured set: {text}"
    );
    let condition = serde_yaml::to_string(&a.condition).unwrap();
    assert!(
        condition.contains("ses:FromAddress") && condition.contains("SesFromAddress"),
        "only as the configured sender: {condition}"
    );
}

#[test]
fn sms_voice_send_text_message_is_limited_to_the_origination_identity_and_its_configuration_set() {
    let eum: Vec<Allow> = every_allow()
        .into_iter()
        .filter(|a| a.actions.iter().any(|x| x.starts_with("sms-voice:")))
        .collect();
    assert_eq!(
        eum.len(),
        1,
        "one End User Messaging statement, the SMS sender's: {eum:#?}"
    );
    let a = &eum[0];
    assert_eq!(a.resource_id, "SendSmsFunction");
    assert_eq!(a.actions, ["sms-voice:SendTextMessage"]);
    let text = serde_yaml::to_string(&a.resources).unwrap();
    assert!(!a.resources.iter().any(is_wildcard) && !text.contains('*'), "{text}");
    assert!(
        text.contains(":sms-voice:${AWS::Region}:${AWS::AccountId}:${SmsOriginationIdentity}"),
        "the configured origination identity: {text}"
    );
    assert!(
        text.contains(":configuration-set/${SmsConfigurationSet}"),
        "the configured set: {text}"
    );
}

#[test]
fn each_sender_holds_only_the_queue_rights_it_uses() {
    let all = every_allow();
    let rights = |function: &str, action: &str| -> Vec<String> {
        let mut queues: Vec<String> = all
            .iter()
            .filter(|a| a.resource_id == function && a.actions.iter().any(|x| x == action))
            .flat_map(arns_of)
            .collect();
        queues.sort();
        queues
    };
    assert_eq!(
        rights("SendEmailFunction", "sqs:SendMessage"),
        // The evidence queue: the mock provider's simulated delivery evidence.
        ["DeliveryDeadLetterQueue", "EmailQueue", "EvidenceQueue", "SmsQueue"]
    );
    assert_eq!(
        rights("SendEmailFunction", "sqs:ChangeMessageVisibility"),
        ["EmailQueue"]
    );
    assert_eq!(
        rights("SendSmsFunction", "sqs:SendMessage"),
        ["DeliveryDeadLetterQueue", "EvidenceQueue", "SmsQueue"]
    );
    assert_eq!(rights("SendSmsFunction", "sqs:ChangeMessageVisibility"), ["SmsQueue"]);
}

/// Every ARN the template writes takes its partition from `AWS::Partition`, so that the same
/// template deploys in every partition and no grant silently names another one.
#[test]
fn no_arn_names_its_partition_by_hand() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let hand_written: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with('#') && line.contains("arn:aws"))
        .map(|(i, line)| (i + 1, line.trim()))
        .collect();
    assert!(
        hand_written.is_empty(),
        "ARNs with a hand-written partition: {hand_written:#?}"
    );
}

/// Each function's and the state machine's `Policies` are the template's own statements and
/// SAM's `LambdaInvokePolicy` (one named function): no AWS managed policy and no broader SAM
/// policy template is attached, so every grant is one this file reviews.
#[test]
fn every_policy_is_a_statement_of_this_template() {
    let t = template();
    let mut attached = Vec::new();
    for r in t.resources() {
        let Some(Value::Sequence(policies)) = r.properties.get("Policies").map(untagged) else {
            continue;
        };
        for p in policies {
            // `!If [condition, statements, !Ref AWS::NoValue]`: both branches count.
            let branches: Vec<&Value> = match p {
                Value::Tagged(t) if t.tag == "If" => match &t.value {
                    Value::Sequence(v) if v.len() == 3 => v[1..].iter().collect(),
                    _ => vec![p],
                },
                _ => vec![p],
            };
            for b in branches {
                match b {
                    Value::Tagged(t) if t.tag == "Ref" && t.value.as_str() == Some("AWS::NoValue") => {}
                    Value::Mapping(m) if m.contains_key("Statement") => {}
                    Value::Mapping(m) if m.len() == 1 && m.contains_key("LambdaInvokePolicy") => {}
                    other => attached.push(format!("{}: {other:?}", r.logical_id)),
                }
            }
        }
    }
    assert!(
        attached.is_empty(),
        "policies that are not this template's statements: {attached:#?}"
    );
}
