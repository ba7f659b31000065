//! The admin API's caller cannot be forged: the template ships one managed policy per platform
//! role, and each lets its holder reach the admin function through its function URL only.
//!
//! - The function URL authenticates with IAM (`AuthType: AWS_IAM`), so the caller ARN in
//!   every event is the one IAM verified.
//! - `lambda:InvokeFunctionUrl` only on that AWS_IAM URL (`lambda:FunctionUrlAuthType`).
//! - `lambda:InvokeFunction` only as the URL's own invocation
//!   (`Bool: lambda:InvokedViaFunctionUrl: "true"`): a direct `Invoke` would let the caller
//!   write the event, and the caller ARN in it.
//! - Nothing else, on nothing but the admin function; each policy's ARN is an output.
//! - The function knows its bootstrap administrator from the stack parameter.
//!
//! The template is read as it is deployed; no emulator is needed.

use std::path::Path;

use serde_yaml::{Mapping, Value};

/// The policies, by the platform role they are for.
const POLICIES: [(&str, &str); 3] = [
    ("viewer", "AdminApiViewerPolicy"),
    ("operator", "AdminApiOperatorPolicy"),
    ("administrator", "AdminApiAdministratorPolicy"),
];

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml is readable");
    serde_yaml::from_str(&text).expect("template.yaml parses")
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    t.get("Resources")
        .and_then(|r| r.get(id))
        .unwrap_or_else(|| panic!("template.yaml declares {id}"))
}

/// A value with its tag (`!GetAtt`, `!Ref`, …) as `(tag, value)`.
fn tagged(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((t.tag.to_string(), &t.value)),
        _ => None,
    }
}

/// `v` is `!GetAtt AdminApiFunction.Arn` (either spelling).
fn is_admin_function_arn(v: &Value) -> bool {
    match tagged(v) {
        Some((tag, Value::String(s))) => tag == "!GetAtt" && s == "AdminApiFunction.Arn",
        Some((tag, Value::Sequence(parts))) => {
            tag == "!GetAtt" && parts.len() == 2 && parts[0] == "AdminApiFunction" && parts[1] == "Arn"
        }
        _ => false,
    }
}

/// A statement's actions as strings (one or a list).
fn actions(statement: &Value) -> Vec<String> {
    match statement.get("Action") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Sequence(items)) => items.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// A statement's resources (one or a list).
fn resources(statement: &Value) -> Vec<&Value> {
    match statement.get("Resource") {
        Some(Value::Sequence(items)) => items.iter().collect(),
        Some(r) => vec![r],
        None => Vec::new(),
    }
}

/// The one condition `operator: {key: value}` of a statement, as strings.
fn condition(statement: &Value) -> Option<(String, String, String)> {
    let conditions: &Mapping = statement.get("Condition")?.as_mapping()?;
    if conditions.len() != 1 {
        return None;
    }
    let (operator, keys) = conditions.iter().next()?;
    let keys = keys.as_mapping()?;
    if keys.len() != 1 {
        return None;
    }
    let (key, value) = keys.iter().next()?;
    let value = match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    Some((operator.as_str()?.to_owned(), key.as_str()?.to_owned(), value))
}

#[test]
fn the_admin_function_url_authenticates_with_iam() {
    let t = template();
    let f = resource(&t, "AdminApiFunction");
    assert_eq!(
        f["Properties"]["FunctionUrlConfig"]["AuthType"].as_str(),
        Some("AWS_IAM")
    );
    let bootstrap = &f["Properties"]["Environment"]["Variables"]["ADMIN_BOOTSTRAP_PRINCIPAL"];
    let (tag, value) = tagged(bootstrap).expect("ADMIN_BOOTSTRAP_PRINCIPAL is a !Sub");
    assert_eq!(tag, "!Sub");
    assert_eq!(
        value.as_str(),
        Some("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AdminBootstrapRole}")
    );
    assert!(
        t["Parameters"].get("AdminBootstrapRole").is_some(),
        "the bootstrap administrator is a stack parameter"
    );
}

#[test]
fn each_role_policy_reaches_the_admin_function_through_its_url_only() {
    let t = template();
    for (role, id) in POLICIES {
        let policy = resource(&t, id);
        assert_eq!(policy["Type"].as_str(), Some("AWS::IAM::ManagedPolicy"), "{id}");
        let statements = policy["Properties"]["PolicyDocument"]["Statement"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{id} has statements"));
        let mut url = false;
        let mut via_url = false;
        for s in statements {
            assert_eq!(s["Effect"].as_str(), Some("Allow"), "{id}: {s:?}");
            assert!(
                s.get("NotAction").is_none() && s.get("NotResource").is_none(),
                "{id}: {s:?}"
            );
            let res = resources(s);
            assert!(
                !res.is_empty() && res.iter().all(|r| is_admin_function_arn(r)),
                "{id}: the admin function only: {s:?}"
            );
            let cond = condition(s);
            for action in actions(s) {
                match action.as_str() {
                    "lambda:InvokeFunctionUrl" => {
                        assert_eq!(
                            cond,
                            Some((
                                "StringEquals".into(),
                                "lambda:FunctionUrlAuthType".into(),
                                "AWS_IAM".into()
                            )),
                            "{id}: {s:?}"
                        );
                        url = true;
                    }
                    "lambda:InvokeFunction" => {
                        assert_eq!(
                            cond,
                            Some(("Bool".into(), "lambda:InvokedViaFunctionUrl".into(), "true".into())),
                            "{id}: lambda:InvokeFunction only through the function URL: {s:?}"
                        );
                        via_url = true;
                    }
                    other => panic!("{id} grants {other}: the admin function URL is all a {role} needs"),
                }
            }
        }
        assert!(url && via_url, "{id} grants both halves of a function URL call");
        let output = format!("{id}Arn");
        let out = &t["Outputs"][output.as_str()]["Value"];
        assert_eq!(
            tagged(out).map(|(tag, v)| (tag, v.as_str().map(str::to_owned))),
            Some(("!Ref".to_owned(), Some(id.to_owned()))),
            "the output {output} is the policy's ARN"
        );
    }
}

#[test]
fn no_other_statement_lets_anyone_invoke_the_admin_function() {
    // Any other grant of lambda:InvokeFunction on the admin function (or a wildcard) would be
    // a way to hand it a made-up event; only the role policies above name it.
    let t = template();
    let ours: Vec<&str> = POLICIES.iter().map(|(_, id)| *id).collect();
    let text_of = |v: &Value| serde_yaml::to_string(v).unwrap_or_default();
    for (id, decl) in t["Resources"].as_mapping().unwrap() {
        let id = id.as_str().unwrap_or_default();
        if ours.contains(&id) {
            continue;
        }
        let text = text_of(decl);
        let grants_invoke = text.contains("lambda:InvokeFunction") || text.contains("lambda:*");
        assert!(
            !(grants_invoke && text.contains("AdminApiFunction")),
            "{id} grants an invocation of the admin function"
        );
    }
}
