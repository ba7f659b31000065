//! `hold` keeps a delivery out of dispatch until a command releases it; `force-send` sets
//! do-not-disturb aside (never the quiet window) until the delivery's next command;
//! `convert-to-sms` moves a delivery to SMS.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use domain::{Channel, SlotSet};
use integration_tests::admin::{ADMINISTRATOR, Api, DRAIN_LIMIT, accepted_sends, drain_all, error_code};
use serde_json::{Value, json};

#[tokio::test]
async fn a_held_delivery_stays_out_of_dispatch_until_an_operator_releases_it() {
    use domain::dispatch::SlotRun;
    use local_run::dispatch::{dispatch_deps, run_slot};
    use local_run::send::VirtualClock;

    let api = Api::new("admin-hold").await;
    let (held, held_customer) = api.delivery(0);
    let (plain, plain_customer) = api.delivery(1);
    let (_, queued_customer) = api.delivery(2);
    let hold = |customer: &str| format!("/cycles/2026-11/deliveries/{customer}/hold");
    let body = |cmd: &str| json!({"command_id": cmd, "reason": "bill disputed, ticket 4411"});
    // Both READY and in the Due index, due at 10:00 in Seoul on 16 December.
    let ten: DateTime<Utc> = "2026-12-16T01:00:00Z".parse().unwrap();
    let at = "2026-12-16T01:00:00Z";
    for (i, customer) in [&held_customer, &plain_customer].into_iter().enumerate() {
        api.make_ready(&api.delivery(i).0).await;
        let r = api
            .post_at(
                &format!("/cycles/2026-11/deliveries/{customer}/schedule"),
                json!({"command_id": format!("s-{i}"), "reason": "due at ten", "available_at": at}),
                ten,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert!(api.raw(&held).await.contains_key("due_pk"));

    // Bad requests: 400, nothing recorded; a delivery already queued: 409.
    for (b, code) in [
        (json!({"command_id": "h-x", "reason": " "}), "invalid-reason"),
        (
            json!({"command_id": "h-x", "reason": "r", "available_at": "2026-12-20T00:00:00Z"}),
            "malformed-body",
        ),
        (
            json!({"command_id": "h-x", "reason": "r", "channel": "sms"}),
            "malformed-body",
        ),
    ] {
        let r = api.post(&hold(&held_customer), b.clone()).await;
        assert_eq!((r.status, error_code(&r)), (400, code), "{b}: {}", r.body);
    }
    let r = api.post(&hold(&queued_customer), body("h-x")).await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "{}", r.body);
    assert_eq!(api.call("GET", "/commands/h-x", None).await.status, 404);

    // Held: out of the Due index, with the reason; replayed without a second write.
    let r = api.post(&hold(&held_customer), body("h-1")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["state"], &r.body["held_reason"], &r.body["previous"]["state"]),
        (&json!("HELD"), &json!("bill disputed, ticket 4411"), &json!("READY"))
    );
    let item = api.raw(&held).await;
    assert_eq!(item["state"].as_s().unwrap(), "HELD");
    assert!(!item.contains_key("due_pk"), "out of the Due index: {item:?}");
    let again = api.post(&hold(&held_customer), body("h-1")).await;
    assert_eq!((again.status, &again.body["replayed"]), (200, &json!(true)));
    assert_eq!(api.raw(&held).await["updated_at"], item["updated_at"]);
    let r = api.post(&hold(&held_customer), body("h-2")).await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "held once is enough");
    let view = api.get(&format!("/cycles/2026-11/deliveries/{held_customer}")).await;
    assert_eq!(
        (&view.body["state"], &view.body["held_reason"]),
        (&json!("HELD"), &json!("bill disputed, ticket 4411"))
    );
    let funnel = api.get("/cycles/2026-11/funnel").await;
    assert_eq!(funnel.body["by_state"]["HELD"], 1, "{}", funnel.body);
    let audit = api.get("/commands/h-1").await;
    assert_eq!(
        (&audit.body["who"], &audit.body["command"]),
        (&json!(ADMINISTRATOR), &json!("hold"))
    );

    // A dispatch run takes the READY one and leaves the held one.
    let dispatch = dispatch_deps(&api.stack.config, &api.stack.resources).await.unwrap();
    run_slot(&dispatch, SlotRun::containing(ten)).await.unwrap();
    assert_eq!(api.raw(&plain).await["state"].as_s().unwrap(), "QUEUED");
    assert_eq!(api.raw(&held).await["state"].as_s().unwrap(), "HELD");

    // Released by a schedule: the next run takes it, and it is sent once.
    let r = api
        .post_at(
            &format!("/cycles/2026-11/deliveries/{held_customer}/schedule"),
            json!({"command_id": "h-3", "reason": "dispute settled", "available_at": at}),
            ten,
        )
        .await;
    assert_eq!(
        (r.status, &r.body["previous"]["state"]),
        (200, &json!("HELD")),
        "{}",
        r.body
    );
    let item = api.raw(&held).await;
    assert!(
        item.contains_key("due_pk") && !item.contains_key("held_reason"),
        "{item:?}"
    );
    run_slot(&dispatch, SlotRun::containing(ten)).await.unwrap();
    assert_eq!(api.raw(&held).await["state"].as_s().unwrap(), "QUEUED");
    let clock = VirtualClock::at(ten);
    let senders = api.senders(&clock).await;
    assert!(drain_all(&senders, DRAIN_LIMIT).await, "every message handled");
    assert!(api.raw(&held).await["state"].as_s().unwrap().starts_with("SENT_"));
    let sent: Vec<u64> = accepted_sends(&api)
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with(&held))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(sent, [1], "sent once after its release");
}

#[tokio::test]
async fn force_send_ignores_do_not_disturb_but_never_the_quiet_window_and_convert_moves_to_sms() {
    use domain::Slot;
    use domain::dispatch::SlotRun;
    use local_run::dispatch::{dispatch_deps, run_slot};
    use local_run::send::VirtualClock;

    // Every customer: do not disturb from 10:00 to 12:00 (Seoul).
    let dnd = SlotSet::EMPTY.with(Slot::new(5).unwrap());
    let api = Api::with_dnd("admin-force", dnd).await;
    let ten: DateTime<Utc> = "2026-12-16T01:00:00Z".parse().unwrap(); // 10:00 in Seoul
    let clock = VirtualClock::at(ten);
    let senders = api.senders(&clock).await;
    let dispatch = dispatch_deps(&api.stack.config, &api.stack.resources).await.unwrap();
    // The seeded messages first: in the DND slot they are deferred, not sent.
    assert!(drain_all(&senders, DRAIN_LIMIT).await, "every message handled");
    assert!(accepted_sends(&api).await.is_empty(), "nothing goes out in a DND slot");

    let (forced, forced_customer) = api.delivery(0);
    let (plain, _) = api.delivery(1);
    let body = |cmd: &str| json!({"command_id": cmd, "reason": "billing dispute: the customer is waiting"});
    let force = |customer: &str| format!("/cycles/2026-11/deliveries/{customer}/force-send");

    // A deferred delivery is READY: forced now, it goes in this very slot; the other waits.
    assert_eq!(api.raw(&forced).await["state"].as_s().unwrap(), "READY");
    let r = api.post_at(&force(&forced_customer), body("f-1"), ten).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["dnd_ignored"], true);
    let report = run_slot(&dispatch, SlotRun::containing(ten)).await.unwrap();
    assert_eq!(
        report.enqueued_email + report.enqueued_sms,
        1,
        "only the forced one: {report:?}"
    );
    drain_all(&senders, DRAIN_LIMIT).await;
    let sent = accepted_sends(&api).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent.keys().next().unwrap().starts_with(&forced));
    let forced_item = api.raw(&forced).await;
    assert!(forced_item["state"].as_s().unwrap().starts_with("SENT_"));
    assert_eq!(api.raw(&plain).await["state"].as_s().unwrap(), "READY");
    // Once sent, the customer's DND slots are back: a later resend honours them again.
    assert_eq!(
        forced_item["dnd"],
        AttributeValue::L(vec![AttributeValue::N("5".into())])
    );
    assert!(!forced_item.contains_key("dnd_before_force"), "{forced_item:?}");
    let view = api
        .get_at(&format!("/cycles/2026-11/deliveries/{forced_customer}"), ten)
        .await;
    assert_eq!(
        (&view.body["dnd_slots"], &view.body["dnd_ignored_by_force_send"]),
        (&json!(["10:00-12:00"]), &json!(false))
    );

    // Forced at 22:00, inside the quiet window: nothing goes out until 08:00.
    let (late, late_customer) = api.delivery(2);
    let ten_pm: DateTime<Utc> = "2026-12-16T13:00:00Z".parse().unwrap();
    clock.set(ten_pm);
    let r = api.post_at(&force(&late_customer), body("f-2"), ten_pm).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["quiet_window"], "still applies");
    let mut run = SlotRun::containing(ten_pm);
    while run.start() < "2026-12-16T23:00:00Z".parse::<DateTime<Utc>>().unwrap() {
        let report = run_slot(&dispatch, run).await.unwrap();
        assert_eq!(report.enqueued_email + report.enqueued_sms, 0, "{run}: {report:?}");
        run = run.next();
    }
    assert_eq!(api.raw(&late).await["state"].as_s().unwrap(), "READY");
    // Meanwhile, convert an email delivery to SMS: the 08:00 run sends it by SMS.
    let (conv, _) = api.seeded.deliveries[3..]
        .iter()
        .find(|(_, ch)| *ch == Channel::Email)
        .cloned()
        .expect("an email delivery");
    let conv_customer = conv.rsplit('#').next().unwrap().to_owned();
    assert_eq!(api.raw(&conv).await["state"].as_s().unwrap(), "READY");
    let path = format!("/cycles/2026-11/deliveries/{conv_customer}/convert-to-sms");
    let r = api.post_at(&path, body("c-1"), ten_pm).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["channel"], &r.body["previous_channel"]),
        (&json!("sms"), &json!("email"))
    );
    let again = api.post_at(&path, body("c-1"), ten_pm).await;
    assert_eq!(again.body["replayed"], true);
    let r = api
        .post_at(
            &path,
            json!({"command_id": "c-2", "reason": "x", "channel": "sms"}),
            ten_pm,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "malformed-body"));

    clock.set(run.start()); // 08:00 in Seoul
    let report = run_slot(&dispatch, run).await.unwrap();
    assert!(report.enqueued_email + report.enqueued_sms >= 1, "{report:?}");
    drain_all(&senders, DRAIN_LIMIT).await;
    let late_item = api.raw(&late).await;
    assert!(late_item["state"].as_s().unwrap().starts_with("SENT_"), "{late_item:?}");
    assert_eq!(late_item["sent_at"].as_s().unwrap(), "2026-12-16T23:00:00Z");
    assert_eq!(api.raw(&conv).await["state"].as_s().unwrap(), "SENT_SMS");

    // Force-send is for what waits; a sent delivery is resent instead.
    let r = api.post_at(&force(&forced_customer), body("f-3"), ten_pm).await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"));
}

#[tokio::test]
async fn a_force_sends_set_aside_ends_with_any_other_command_on_the_delivery() {
    use domain::Slot;
    use domain::dispatch::SlotRun;
    use local_run::dispatch::{dispatch_deps, run_slot};

    // Every customer: do not disturb from 10:00 to 12:00 (Seoul).
    let dnd = SlotSet::EMPTY.with(Slot::new(5).unwrap());
    let api = Api::with_dnd("admin-force-hold", dnd).await;
    let ten: DateTime<Utc> = "2026-12-16T01:00:00Z".parse().unwrap(); // 10:00 in Seoul
    let at = "2026-12-16T01:00:00Z";
    let customers_dnd = AttributeValue::L(vec![AttributeValue::N("5".into())]);
    let reason = "billing dispute";
    let on = &api;
    let post = |customer: &str, verb: &str, cmd: &str, extra: Value| {
        let mut b = json!({"command_id": cmd, "reason": reason});
        if let (Some(b), Value::Object(extra)) = (b.as_object_mut(), extra) {
            b.extend(extra);
        }
        let path = format!("/cycles/2026-11/deliveries/{customer}/{verb}");
        async move { on.post_at(&path, b, ten).await }
    };

    // Force-sent, then held, then scheduled: the customer's slots are back.
    let (held, held_customer) = api.delivery(0);
    api.make_ready(&held).await;
    let r = post(&held_customer, "force-send", "f-1", json!({})).await;
    assert_eq!((r.status, &r.body["dnd_ignored"]), (200, &json!(true)), "{}", r.body);
    assert_eq!(api.raw(&held).await["dnd"], AttributeValue::L(vec![]));
    let r = post(&held_customer, "hold", "h-1", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let item = api.raw(&held).await;
    assert_eq!(item["dnd"], customers_dnd, "a hold ends the force-send: {item:?}");
    assert!(!item.contains_key("dnd_before_force"), "{item:?}");
    let r = post(&held_customer, "schedule", "s-1", json!({"available_at": at})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let item = api.raw(&held).await;
    assert_eq!(item["dnd"], customers_dnd, "{item:?}");
    // Force-sent, then converted to SMS: the same.
    let (converted, converted_customer) = api.delivery(1);
    api.make_ready(&converted).await;
    assert_eq!(
        post(&converted_customer, "force-send", "f-2", json!({})).await.status,
        200
    );
    assert_eq!(
        post(&converted_customer, "convert-to-sms", "c-2", json!({}))
            .await
            .status,
        200
    );
    let item = api.raw(&converted).await;
    assert_eq!(item["dnd"], customers_dnd, "{item:?}");
    assert!(!item.contains_key("dnd_before_force"), "{item:?}");
    let view = api
        .get_at(&format!("/cycles/2026-11/deliveries/{held_customer}"), ten)
        .await;
    assert_eq!(
        (&view.body["dnd_slots"], &view.body["dnd_ignored_by_force_send"]),
        (&json!(["10:00-12:00"]), &json!(false))
    );

    // Dispatch honours the slots: neither goes out from 10:00 to 12:00.
    let dispatch = dispatch_deps(&api.stack.config, &api.stack.resources).await.unwrap();
    let report = run_slot(&dispatch, SlotRun::containing(ten)).await.unwrap();
    assert_eq!(report.enqueued_email + report.enqueued_sms, 0, "{report:?}");
    for id in [&held, &converted] {
        assert_eq!(api.raw(id).await["state"].as_s().unwrap(), "READY", "{id}");
    }
}
