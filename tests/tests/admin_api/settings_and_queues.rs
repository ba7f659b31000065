//! The runtime settings (the channel policy, the active template version) and the redrive of
//! the dead-letter queues.

use chrono::{DateTime, Duration, Utc};
use domain::Channel;
use integration_tests::admin::{ADMINISTRATOR, Api, DRAIN_LIMIT, accepted_sends, drain_all, error_code};
use serde_json::{Value, json};

#[tokio::test]
async fn settings_change_at_runtime_audited_and_template_activation_checks_the_version() {
    use local_run::dispatch::{dispatch_deps, run_slot};

    let api = Api::new("admin-settings").await;
    let body = |cmd: &str, value: &str| json!({"command_id": cmd, "reason": "email provider outage", "value": value});

    // Before any command: the deployment's values.
    let r = api.get("/settings").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let settings = r.body["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 2);
    assert!(
        settings
            .iter()
            .all(|s| s["source"] == "deployment" && s["revision"] == 0),
        "{settings:?}"
    );
    assert_eq!(settings[0]["value"], "email,sms");

    // Bad requests.
    let r = api.put("/settings/channel-policy", body("p-0", "fax")).await;
    assert_eq!((r.status, error_code(&r)), (400, "invalid-value"), "{}", r.body);
    let r = api.put("/settings/quiet-window", body("p-0", "x")).await;
    assert_eq!((r.status, error_code(&r)), (404, "unknown-setting"));
    let r = api
        .put("/settings/channel-policy", json!({"command_id": "p-0", "reason": "x"}))
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "malformed-body"));
    let r = api.post("/settings/channel-policy", body("p-0", "sms")).await;
    assert_eq!(r.status, 405);
    let r = api
        .put(
            "/settings/channel-policy",
            json!({"command_id": "p-0", "reason": " ", "value": "sms"}),
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "invalid-reason"));

    // Set, replay, reuse.
    let r = api.put("/settings/channel-policy", body("p-1", "sms")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["value"], &r.body["previous"], &r.body["revision"]),
        (&json!("sms"), &json!("email,sms"), &json!(1))
    );
    let again = api.put("/settings/channel-policy", body("p-1", "sms")).await;
    assert_eq!((again.status, &again.body["replayed"]), (200, &json!(true)));
    let reused = api.put("/settings/channel-policy", body("p-1", "email")).await;
    assert_eq!((reused.status, error_code(&reused)), (409, "command-id-reused"));
    let r = api.get("/settings/channel-policy").await;
    assert_eq!(
        (
            &r.body["value"],
            &r.body["source"],
            &r.body["revision"],
            &r.body["updated_by"]
        ),
        (&json!("sms"), &json!("setting"), &json!(1), &json!(ADMINISTRATOR))
    );
    let audit = api.get("/commands/p-1").await;
    assert_eq!(
        (
            &audit.body["command"],
            &audit.body["target"],
            &audit.body["who"],
            &audit.body["why"]
        ),
        (
            &json!("set-setting"),
            &json!("setting:channel-policy"),
            &json!(ADMINISTRATOR),
            &json!("email provider outage")
        )
    );

    // The readers: dispatch's next run and the senders apply it.
    let dispatch = dispatch_deps(&api.stack.config, &api.stack.resources).await.unwrap();
    let run = domain::dispatch::SlotRun::containing("2026-12-16T03:00:00Z".parse().unwrap());
    let report = run_slot(&dispatch, run).await.unwrap();
    assert_eq!(
        (report.policy.as_str(), report.policy_source.as_str()),
        ("sms", "setting")
    );
    let env = local_run::settle::local_function_env(&api.stack.resources, "SendEmailFunction");
    let sender = sender::Deps::load(Channel::Email, &api.stack.config, &env)
        .await
        .unwrap();
    assert_eq!(sender.channel_policy().await.unwrap().to_string(), "sms");

    // The email messages dispatch queued before the change are not tried by email: handed
    // to SMS (no email attempt counted) and sent there, as the SMS ones are.
    let ten: DateTime<Utc> = "2026-12-16T01:00:00Z".parse().unwrap(); // 10:00 in Seoul
    let clock = local_run::send::VirtualClock::at(ten);
    let senders = api.senders(&clock).await;
    assert!(drain_all(&senders, DRAIN_LIMIT).await, "every message handled");
    let sent = accepted_sends(&api).await;
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert!(sent.keys().all(|k| k.ends_with("#sms")), "{sent:?}");
    for (id, queued_on) in &api.seeded.deliveries {
        let item = api.raw(id).await;
        assert_eq!(item["state"].as_s().unwrap(), "SENT_SMS", "{id}");
        if *queued_on == Channel::Email {
            assert!(
                !item.contains_key("attempts_email") || item["attempts_email"].as_n().unwrap() == "0",
                "{item:?}"
            );
        }
    }

    // "none" pauses delivery, and says so; "sms,email" is stored as "email,sms".
    let r = api.put("/settings/channel-policy", body("p-2", "none")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["note"].as_str().unwrap().contains("paused"));
    let r = api.put("/settings/channel-policy", body("p-3", "sms,email")).await;
    assert_eq!(
        (&r.body["value"], &r.body["revision"]),
        (&json!("email,sms"), &json!(3))
    );

    // Templates: the unknown version is a 404; the known one becomes the active one.
    let r = api
        .post(
            "/templates/v999/activate",
            json!({"command_id": "t-0", "reason": "new layout"}),
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (404, "unknown-template-version"));
    let r = api
        .post(
            "/templates/v1/activate",
            json!({"command_id": "t-1", "reason": "new layout"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["setting"], &r.body["value"]),
        (&json!("template-version"), &json!("v1"))
    );
    let r = api.get("/templates").await;
    assert_eq!(
        (&r.body["active"], &r.body["active_source"]),
        (&json!("v1"), &json!("setting"))
    );
}

#[tokio::test]
async fn a_dead_letter_queue_is_redriven_at_a_bounded_rate_once_per_command_id() {
    let api = Api::new("admin-redrive").await;
    let sqs = aws_sdk_sqs::Client::new(&api.stack.config);
    let email = &local_run::settle::local_function_env(&api.stack.resources, "SendEmailFunction")["EMAIL_QUEUE_URL"];
    // The seeded email messages, received unanswered until SQS dead-letters them.
    local_run::seed::dead_letter_email(&api.stack.config, &api.stack.resources)
        .await
        .unwrap();
    let mut waiting = 0;
    for _ in 0..20 {
        let r = api.get("/queues/delivery-dlq").await;
        waiting = r.body["waiting"].as_u64().unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(waiting >= 1, "messages on the DLQ");
    let r = api.get("/queues").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["queues"].as_array().unwrap().len(), 2);

    // Bad requests.
    let cmd = |id: &str, rate: Value| json!({"command_id": id, "reason": "provider fixed", "max_per_second": rate});
    for (queue, rate, status, code) in [
        ("delivery-dlq", 0, 400, "invalid-rate"),
        ("delivery-dlq", 501, 400, "invalid-rate"),
        ("nope", 5, 404, "unknown-queue"),
        ("dispatch-dlq", 5, 409, "nothing-to-redrive"),
    ] {
        let path = format!("/queues/{queue}/redrive");
        let r = api.post(&path, cmd("r-0", json!(rate))).await;
        assert_eq!((r.status, error_code(&r)), (status, code), "{queue} at {rate}");
    }

    // The redrive: started once, replayed without a second task.
    let r = api.post("/queues/delivery-dlq/redrive", cmd("r-1", json!(2))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["status"], &r.body["max_per_second"]),
        (&json!("started"), &json!(2))
    );
    let again = api.post("/queues/delivery-dlq/redrive", cmd("r-1", json!(2))).await;
    assert_eq!(
        (&again.body["replayed"], &again.body["task_handle"]),
        (&json!(true), &r.body["task_handle"])
    );
    let audit = api.get("/commands/r-1").await;
    assert_eq!(
        (&audit.body["who"], &audit.body["result"]["status"]),
        (&json!(ADMINISTRATOR), &json!("started"))
    );
    // Back on the email queue, at most two a second.
    let mut done = Value::Null;
    for _ in 0..100 {
        let r = api.get("/queues/delivery-dlq").await;
        if r.body["redrives"][0]["status"] == "COMPLETED" {
            done = r.body;
            break;
        }
        if r.body["redrives"][0]["status"] == "RUNNING" {
            let second = api.post("/queues/delivery-dlq/redrive", cmd("r-2", json!(2))).await;
            // Refused while it runs (or, had it just ended, because nothing waits).
            assert_eq!(second.status, 409, "{}", second.body);
            assert!(
                ["redrive-running", "nothing-to-redrive"].contains(&error_code(&second)),
                "{}",
                second.body
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(done["redrives"][0]["moved"].as_u64(), Some(waiting), "{done}");
    let none = api.get("/commands/r-2").await;
    assert_eq!(none.status, 404, "a refused redrive leaves no record");
    assert_eq!(done["waiting"], 0);
    let back = sqs
        .get_queue_attributes()
        .queue_url(email)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    let n: u64 = back.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages]
        .parse()
        .unwrap();
    assert_eq!(n, waiting);
    assert_eq!(done["redrives"][0]["max_per_second"], 2);
}

#[tokio::test]
async fn with_sms_disabled_queued_sms_deliveries_go_back_to_dispatch_and_out_by_email() {
    use local_run::dispatch::{dispatch_deps, run_slot};
    use local_run::send::VirtualClock;

    let api = Api::new("admin-sms-off").await;
    let r = api
        .put(
            "/settings/channel-policy",
            json!({"command_id": "off-1", "reason": "SMS gateway down", "value": "email"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ten: DateTime<Utc> = "2026-12-16T01:00:00Z".parse().unwrap(); // 10:00 in Seoul
    let clock = VirtualClock::at(ten);
    let senders = api.senders(&clock).await;
    drain_all(&senders, DRAIN_LIMIT).await;
    // The SMS ones were not sent: back to READY, due, for dispatch to route.
    let sms: Vec<&String> = api
        .seeded
        .deliveries
        .iter()
        .filter(|(_, ch)| *ch == Channel::Sms)
        .map(|(id, _)| id)
        .collect();
    assert!(!sms.is_empty());
    for id in &sms {
        let item = api.raw(id).await;
        assert_eq!(item["state"].as_s().unwrap(), "READY", "{item:?}");
        assert!(item.contains_key("due_pk"), "{item:?}");
    }
    let sent = accepted_sends(&api).await;
    assert!(sent.keys().all(|k| k.ends_with("#email")), "{sent:?}");
    // The next slot's run sends them by email.
    let dispatch = dispatch_deps(&api.stack.config, &api.stack.resources).await.unwrap();
    let report = run_slot(&dispatch, domain::dispatch::SlotRun::containing(ten).next())
        .await
        .unwrap();
    assert_eq!(
        (report.enqueued_email, report.enqueued_sms),
        (sms.len() as u64, 0),
        "{report:?}"
    );
    clock.set(ten + Duration::hours(2));
    drain_all(&senders, DRAIN_LIMIT).await;
    for id in &sms {
        assert_eq!(api.raw(id).await["state"].as_s().unwrap(), "SENT_EMAIL", "{id}");
    }
    let sent = accepted_sends(&api).await;
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert!(sent.values().all(|n| *n == 1), "{sent:?}");
}
