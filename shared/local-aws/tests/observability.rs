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

/// Every `ScheduleV2` event of the template: (owner's logical id, event name, properties).
fn schedules(t: &Template) -> Vec<(&str, &str, &Value)> {
    t.resources()
        .iter()
        .filter_map(|r| {
            let events = r.properties.get("Events")?.as_mapping()?;
            Some(
                events
                    .iter()
                    .filter(|(_, e)| e["Type"].as_str() == Some("ScheduleV2"))
                    .map(move |(name, e)| {
                        (
                            r.logical_id.as_str(),
                            name.as_str().unwrap_or_default(),
                            &e["Properties"],
                        )
                    }),
            )
        })
        .flatten()
        .collect()
}

/// The queue an alarm watches fill up: `Arn`/`TargetArn` is `!GetAtt <Queue>.Arn`, and some
/// alarm counts the messages waiting on it.
fn alarmed_queue(t: &Template, arn: &Value, what: &str) -> String {
    let queue = match references(arn).as_slice() {
        [queue] => queue.clone(),
        other => panic!("{what}: one queue of the template, not {other:?}"),
    };
    let decl = t
        .resource(&queue)
        .unwrap_or_else(|| panic!("{what}: no resource {queue}"));
    assert_eq!(decl.kind, "AWS::SQS::Queue", "{what}: {queue} is an SQS queue");
    let watching: Vec<&str> = alarms_on(t, &queue)
        .into_iter()
        .filter(|a| {
            let props = &t.resource(a).unwrap().properties;
            props["MetricName"].as_str() == Some("ApproximateNumberOfMessagesVisible")
                || serde_yaml::to_string(&props["Metrics"])
                    .unwrap()
                    .contains("ApproximateNumberOfMessagesVisible")
        })
        .collect();
    assert!(
        !watching.is_empty(),
        "{what}: no alarm on the messages waiting on {queue}"
    );
    queue
}

/// EventBridge Scheduler's retry policy and dead-letter queue cover only an invocation that
/// failed (refused, throttled, not permitted); it invokes a function asynchronously, so a run
/// that failed is Lambda's to retry and, without the function's own dead-letter queue, is
/// dropped after two retries. Every scheduled function therefore has both, onto one alarmed
/// queue; and every schedule is named after its stack, since schedule names are per account.
#[test]
fn a_failed_scheduled_run_reaches_an_alarmed_dead_letter_queue_and_schedules_are_named_per_stack() {
    let t = template();
    let scheduled = schedules(&t);
    assert!(
        scheduled.iter().any(|(owner, ..)| *owner == "DispatchSlotFunction"),
        "the dispatch schedule: {scheduled:?}"
    );
    let mut names = BTreeSet::new();
    for (owner, event, props) in &scheduled {
        let what = format!("{owner}.{event}");
        let retry = &props["RetryPolicy"];
        let attempts = retry["MaximumRetryAttempts"].as_u64();
        let age = retry["MaximumEventAgeInSeconds"].as_u64();
        assert!(
            matches!(attempts, Some(1..=185)),
            "{what}: the scheduler retries ({retry:?})"
        );
        // A dispatch run retried past its two-hour slot would be the next slot's work.
        assert!(matches!(age, Some(60..=7200)), "{what}: within the slot ({retry:?})");
        let dlq = &props["DeadLetterConfig"];
        assert!(
            dlq.get("Arn").is_some() || dlq["Type"].as_str() == Some("SQS"),
            "{what}: the scheduler's dead-letter queue ({dlq:?})"
        );
        let name = tag(&props["Name"], "!Sub")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{what}: a Name built with !Sub from the stack name"));
        assert!(name.contains("${AWS::StackName}"), "{what}: {name} names the stack");
        assert!(names.insert(name.to_owned()), "{what}: {name} is taken");

        let Some(function) = t.resource(owner).filter(|r| r.kind == "AWS::Serverless::Function") else {
            continue;
        };
        let config = &function.properties["EventInvokeConfig"];
        assert!(
            matches!(config["MaximumRetryAttempts"].as_u64(), Some(1..=2)),
            "{owner}: Lambda retries a failed scheduled run ({config:?})"
        );
        assert!(
            matches!(config["MaximumEventAgeInSeconds"].as_u64(), Some(60..=7200)),
            "{owner}: within the slot ({config:?})"
        );
        // A DestinationConfig.OnFailure would wrap the event in a record the redrive to the
        // continuation queue cannot run; the dead-letter queue keeps the event as it was.
        assert!(config.get("DestinationConfig").is_none(), "{owner}: {config:?}");
        let dead_letter = &function.properties["DeadLetterQueue"];
        assert_eq!(dead_letter["Type"].as_str(), Some("SQS"), "{owner}: {dead_letter:?}");
        let function_queue = alarmed_queue(&t, &dead_letter["TargetArn"], owner);
        let schedule_queue = alarmed_queue(&t, &dlq["Arn"], &what);
        assert_eq!(
            function_queue, schedule_queue,
            "{what}: a run the scheduler could not start and one that failed wait on one queue"
        );
    }
}
