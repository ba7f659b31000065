//! Two stacks (stages) of this template deploy side by side in one account and region: every
//! name the template gives a resource itself, which AWS requires to be unique in the account
//! and region, carries the stack's name (`${AWS::StackName}`), schedules included. Names
//! CloudFormation generates (`stack-LogicalId-RANDOM`) are unique already and need nothing.
//!
//! The template is read as it is deployed; no emulator is needed.

use std::path::Path;

use local_aws::template::Template;
use serde_yaml::Value;

/// Properties that name a resource account- and region-wide.
const NAMING_KEYS: &[&str] = &[
    "TableName",
    "QueueName",
    "BucketName",
    "FunctionName",
    "AlarmName",
    "DashboardName",
    "LogGroupName",
    "TopicName",
    "RoleName",
    "ManagedPolicyName",
    "SecretName",
    "StateMachineName",
];

/// Subtrees where a naming key refers to another resource rather than naming this one.
const REFERENCES: &[&str] = &[
    "Policies",
    "PolicyDocument",
    "Dimensions",
    "DefinitionSubstitutions",
    "Metrics",
];

fn template() -> Template {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    Template::load(&path).expect("template.yaml parses")
}

/// Whether a name's value is built from the stack's name.
fn carries_stack_name(v: &Value) -> bool {
    match v {
        Value::Tagged(t) if t.tag == "Sub" => match &t.value {
            Value::String(s) => s.contains("${AWS::StackName}"),
            Value::Sequence(parts) => parts
                .first()
                .and_then(Value::as_str)
                .is_some_and(|s| s.contains("${AWS::StackName}")),
            _ => false,
        },
        _ => false,
    }
}

/// Every `(path, value)` under `v` whose key names a resource.
fn names<'a>(path: &str, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let Some(k) = k.as_str() else { continue };
                if REFERENCES.contains(&k) {
                    continue;
                }
                let here = format!("{path}.{k}");
                if NAMING_KEYS.contains(&k) {
                    out.push((here.clone(), child));
                }
                names(&here, child, out);
            }
        }
        Value::Sequence(items) => {
            for (i, child) in items.iter().enumerate() {
                names(&format!("{path}[{i}]"), child, out);
            }
        }
        Value::Tagged(t) => names(path, &t.value, out),
        _ => {}
    }
}

#[test]
fn every_name_the_template_gives_carries_the_stack_name() {
    let t = template();
    let mut found = Vec::new();
    let mut wrong = Vec::new();
    for r in t.resources() {
        let mut own = Vec::new();
        names(&r.logical_id, &r.properties, &mut own);
        // A state machine's and a schedule's own name is `Name`.
        let state_machine = r.kind == "AWS::Serverless::StateMachine" || r.kind == "AWS::StepFunctions::StateMachine";
        if let (true, Some(v)) = (state_machine, r.properties.get("Name")) {
            own.push((format!("{}.Name", r.logical_id), v));
        }
        if let Some(Value::Mapping(events)) = r.properties.get("Events") {
            for (event, decl) in events {
                let is_schedule = decl.get("Type").and_then(Value::as_str) == Some("ScheduleV2");
                if let (true, Some(v)) = (is_schedule, decl.get("Properties").and_then(|p| p.get("Name"))) {
                    own.push((
                        format!("{}.Events.{}.Name", r.logical_id, event.as_str().unwrap_or("?")),
                        v,
                    ));
                } else if is_schedule {
                    // Without a Name, SAM names the schedule after its logical id: two stacks collide.
                    wrong.push(format!(
                        "{}.Events.{}: a schedule with no Name",
                        r.logical_id,
                        event.as_str().unwrap_or("?")
                    ));
                }
            }
        }
        for (path, v) in own {
            if !carries_stack_name(v) {
                wrong.push(format!("{path}: {v:?}"));
            }
            found.push(path);
        }
    }
    assert!(wrong.is_empty(), "names that two stacks would share: {wrong:#?}");
    // The check sees the template's names: both schedules, the state machine, the alarms, the
    // dashboard and the log groups.
    assert!(found.len() >= 15, "names found: {found:#?}");
    for expected in [
        "DispatchSlotFunction.Events.",
        "SettlementStateMachine.Name",
        "SettlementStateMachine.Events.",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "{expected} not found in {found:#?}"
        );
    }
}

#[test]
fn the_check_catches_a_name_without_the_stack() {
    let fixed: Value = serde_yaml::from_str("QueueName: billing-email").unwrap();
    let mut out = Vec::new();
    names("Q", &fixed, &mut out);
    assert_eq!(out.len(), 1);
    assert!(!carries_stack_name(out[0].1));
    let good: Value = serde_yaml::from_str("QueueName: !Sub \"${AWS::StackName}-email\"").unwrap();
    let mut out = Vec::new();
    names("Q", &good, &mut out);
    assert!(carries_stack_name(out[0].1));
}
