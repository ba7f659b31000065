//! What operators rely on in `template.yaml`, checked on the template itself (CloudWatch is
//! not in the emulator): an alarm for every way invoices stop flowing, each notifying the
//! alarm topic; every function traced and logging to a group with a retention; a dashboard
//! whose body is valid JSON and names only what the template declares.

use std::collections::BTreeSet;

use local_aws::Template;
use local_aws::template::references;
use serde_yaml::Value;

fn template() -> Template {
    Template::load(&local_aws::project_root().unwrap().join("template.yaml")).unwrap()
}

fn raw() -> Value {
    let path = local_aws::project_root().unwrap().join("template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tag<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Tagged(t) if t.tag == name => Some(&t.value),
        _ => None,
    }
}

fn alarms(t: &Template) -> Vec<&local_aws::template::ResourceDecl> {
    t.resources()
        .iter()
        .filter(|r| r.kind == "AWS::CloudWatch::Alarm")
        .collect()
}

/// The alarms whose definition names `logical_id` (by Ref, GetAtt or Sub).
fn alarms_on<'a>(t: &'a Template, logical_id: &str) -> Vec<&'a str> {
    alarms(t)
        .into_iter()
        .filter(|a| references(&a.properties).iter().any(|r| r == logical_id))
        .map(|a| a.logical_id.as_str())
        .collect()
}

#[test]
fn every_way_invoices_stop_flowing_has_an_alarm_that_notifies() {
    let t = template();
    assert!(
        alarms(&t).len() >= 7,
        "{:?}",
        alarms(&t).iter().map(|a| &a.logical_id).collect::<Vec<_>>()
    );
    for a in alarms(&t) {
        let actions = references(&a.properties["AlarmActions"]);
        assert_eq!(actions, ["AlarmTopic"], "{} notifies the alarm topic", a.logical_id);
        assert_eq!(
            a.properties["TreatMissingData"].as_str(),
            Some("notBreaching"),
            "{}: no data (a quiet night) is not an alarm",
            a.logical_id
        );
    }

    let metric_of = |id: &str| -> String {
        let a = t.resource(id).unwrap();
        match a.properties["MetricName"].as_str() {
            Some(m) => m.to_owned(),
            None => serde_yaml::to_string(&a.properties["Metrics"]).unwrap(),
        }
    };
    for queue in ["DeliveryDeadLetterQueue", "DispatchScheduleDeadLetterQueue"] {
        let on = alarms_on(&t, queue);
        assert!(
            on.iter()
                .any(|a| metric_of(a).contains("ApproximateNumberOfMessagesVisible")),
            "{queue} not empty: {on:?}"
        );
    }
    for queue in ["EmailQueue", "SmsQueue"] {
        let on = alarms_on(&t, queue);
        assert!(
            on.iter()
                .any(|a| metric_of(a).contains("ApproximateAgeOfOldestMessage")),
            "{queue}'s oldest message: {on:?}"
        );
    }
    let sm = alarms_on(&t, "SettlementStateMachine");
    assert!(
        sm.iter().any(|a| {
            let m = metric_of(a);
            m.contains("ExecutionsFailed") && m.contains("ExecutionsTimedOut") && m.contains("ExecutionsAborted")
        }),
        "settlement failures: {sm:?}"
    );
    // Errors and throttles of every function, each in one alarm.
    for metric in ["Errors", "Throttles"] {
        let covering: Vec<&str> = alarms(&t)
            .into_iter()
            .filter(|a| metric_of(&a.logical_id).contains(&format!("MetricName: {metric}\n")))
            .map(|a| a.logical_id.as_str())
            .collect();
        for f in t.functions() {
            assert!(
                covering.iter().any(|a| alarms_on(&t, f).contains(a)),
                "{f}'s {metric} are not alarmed ({covering:?})"
            );
        }
    }
}

#[test]
fn every_function_is_traced_and_logs_to_a_group_with_a_retention() {
    let t = template();
    let raw = raw();
    assert_eq!(raw["Globals"]["Function"]["Tracing"].as_str(), Some("Active"));
    let sm = t.resource("SettlementStateMachine").unwrap();
    assert_eq!(sm.properties["Tracing"]["Enabled"].as_bool(), Some(true));

    let retained = |group: &str| {
        let g = t.resource(group).unwrap_or_else(|| panic!("no log group {group}"));
        assert_eq!(g.kind, "AWS::Logs::LogGroup");
        assert_eq!(
            tag(&g.properties["RetentionInDays"], "!Ref").and_then(Value::as_str),
            Some("LogRetentionDays"),
            "{group} keeps its logs for LogRetentionDays"
        );
    };
    let mut groups = BTreeSet::new();
    for f in t.functions() {
        let config = &t.resource(f).unwrap().properties["LoggingConfig"];
        assert_eq!(config["LogFormat"].as_str(), Some("JSON"), "{f}");
        let group = tag(&config["LogGroup"], "!Ref")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{f} names its log group"));
        retained(group);
        assert!(groups.insert(group.to_owned()), "{f} shares its log group {group}");
    }
    retained("SettlementLogGroup");
}

#[test]
fn the_dashboard_is_json_and_names_only_what_the_template_declares() {
    let t = template();
    let dash = t.resource("OperationsDashboard").expect("a dashboard");
    let body = tag(&dash.properties["DashboardBody"], "!Sub")
        .and_then(Value::as_str)
        .expect("DashboardBody is a !Sub string");

    // Replace every ${Name} / ${Name.Attribute} / ${AWS::Pseudo} with a placeholder, keeping
    // the names, then parse.
    let mut names = BTreeSet::new();
    let mut plain = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        plain.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${") + start;
        let name = &rest[start + 2..end];
        names.insert(name.split('.').next().unwrap().to_owned());
        plain.push_str("placeholder");
        rest = &rest[end + 1..];
    }
    plain.push_str(rest);
    let doc: serde_json::Value = serde_json::from_str(&plain).expect("the body is JSON");
    let widgets = doc["widgets"].as_array().expect("widgets");
    assert!(widgets.len() >= 8);

    for name in &names {
        assert!(
            name.starts_with("AWS::") || t.resource(name).is_some() || t.parameters().contains_key(name),
            "the dashboard names {name}, which the template does not declare"
        );
    }
    for needed in [
        "EmailQueue",
        "SmsQueue",
        "DeliveryDeadLetterQueue",
        "SettlementStateMachine",
        "AlarmTopic",
    ] {
        assert!(names.contains(needed), "the dashboard shows {needed}");
    }
    for f in t.functions() {
        assert!(names.contains(f), "the dashboard shows {f}");
    }
    for a in alarms(&t) {
        assert!(names.contains(&a.logical_id), "the alarm widget shows {}", a.logical_id);
    }
    // The senders' own metrics: the funnel, fallbacks and duplicates suppressed.
    for metric in [
        "\"Sent\"",
        "\"Fallback\"",
        "\"Dead\"",
        "\"DuplicatesSuppressed\"",
        "\"Deferred\"",
    ] {
        assert!(plain.contains(metric), "the dashboard plots {metric}");
    }
    let positions: BTreeSet<(i64, i64)> = widgets
        .iter()
        .map(|w| (w["x"].as_i64().unwrap(), w["y"].as_i64().unwrap()))
        .collect();
    assert_eq!(positions.len(), widgets.len(), "no two widgets at the same place");
}
