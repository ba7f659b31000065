//! `resend`: a sent delivery goes out once more, exactly once, audited; a stuck delivery goes
//! back to dispatch once no sender holds it; `confirm` settles an unconfirmed one.

use chrono::{DateTime, Duration, Utc};
use integration_tests::admin::{ADMINISTRATOR, Api, DRAIN_LIMIT, accepted_sends, drain_all, error_code};
use serde_json::json;

#[tokio::test]
async fn a_resend_after_sent_sends_once_more_exactly_once_and_is_audited() {
    use domain::dispatch::SlotRun;
    use local_run::send::VirtualClock;

    let api = Api::new("admin-resend").await;
    // 10:00 in Seoul on the customers' send day: an open slot.
    let t0: DateTime<Utc> = "2026-12-15T01:00:00Z".parse().unwrap();
    let clock = VirtualClock::at(t0);
    let senders = api.senders(&clock).await;
    assert!(drain_all(&senders, DRAIN_LIMIT).await, "every message handled");
    let first = accepted_sends(&api).await;
    assert_eq!(first.len(), 6, "{first:?}");
    assert!(first.values().all(|n| *n == 1));

    let (id, customer) = api.delivery(0);
    let path = format!("/cycles/2026-11/deliveries/{customer}/resend");
    let sent = api.raw(&id).await["state"].as_s().unwrap().clone();
    assert!(sent.starts_with("SENT_"), "{sent}");
    let resend = json!({"command_id": "r-1", "reason": "customer deleted the email by mistake"});

    // A delivery on its way cannot be resent; bad requests are 400.
    let (other_id, other_customer) = api.delivery(1);
    api.make_ready(&other_id).await;
    let r = api
        .post_at(
            &format!("/cycles/2026-11/deliveries/{other_customer}/resend"),
            json!({"command_id": "r-0", "reason": "x"}),
            t0,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "{}", r.body);
    let r = api
        .post_at(
            &path,
            json!({"command_id": "r-1", "reason": "x", "available_at": "soon"}),
            t0,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "invalid-time"));

    // Resent: READY in round 1, given twice, applied once.
    let r = api.post_at(&path, resend.clone(), t0).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["state"].as_str(), r.body["send_round"].as_u64()),
        (Some("READY"), Some(1))
    );
    let again = api.post_at(&path, resend.clone(), t0).await;
    assert_eq!((again.status, &again.body["replayed"]), (200, &json!(true)));
    let raw = api.raw(&id).await;
    assert_eq!(
        raw["send_round"].as_n().unwrap(),
        "1",
        "the replay did not start a round 2"
    );
    assert!(!raw.contains_key("provider_message_id"));

    // The next slot's dispatch enqueues it, and the senders send it once more.
    let next = SlotRun::containing(t0).next();
    clock.set(next.start());
    let dispatch = local_run::dispatch::dispatch_deps(&api.stack.config, &api.stack.resources)
        .await
        .unwrap();
    let report = local_run::dispatch::run_slot(&dispatch, next).await.unwrap();
    assert_eq!(report.enqueued_email + report.enqueued_sms, 1, "{report:?}");
    assert!(drain_all(&senders, DRAIN_LIMIT).await, "every message handled");
    let after = accepted_sends(&api).await;
    let mine: Vec<(&String, &u64)> = after.iter().filter(|(k, _)| k.starts_with(&format!("{id}#"))).collect();
    assert_eq!(mine.len(), 2, "round 0 and round 1: {mine:?}");
    assert!(mine.iter().all(|(_, n)| **n == 1), "each round sent once: {mine:?}");
    assert!(mine.iter().any(|(k, _)| k.ends_with("#r1")));
    assert_eq!(after.len(), 7, "nothing else was sent again: {after:?}");

    // Audited on the delivery.
    let d = api
        .get_at(&format!("/cycles/2026-11/deliveries/{customer}"), next.start())
        .await;
    assert!(d.body["state"].as_str().unwrap().starts_with("SENT_"), "{}", d.body);
    assert_eq!(d.body["send_round"], 1);
    let commands = d.body["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 1);
    assert_eq!(
        (&commands[0]["command"], &commands[0]["who"], &commands[0]["why"]),
        (
            &json!("resend"),
            &json!(ADMINISTRATOR),
            &json!("customer deleted the email by mistake")
        )
    );
}

#[tokio::test]
async fn an_operator_resends_a_stuck_delivery_once_no_sender_holds_it_and_settles_an_unconfirmed_one() {
    use adapters::deliveries::claims::{ClaimKey, GiveBack};
    use domain::DeliveryId;
    use domain::dispatch::SlotRun;
    use local_run::send::VirtualClock;

    let api = Api::new("admin-stuck").await;
    let t0: DateTime<Utc> = "2026-12-15T01:00:00Z".parse().unwrap(); // 10:00 in Seoul
    let minutes = |m: i64| t0 + Duration::minutes(m);
    let stamp = |t: DateTime<Utc>| domain::delivery::utc_seconds::format(&t);
    let resend = |cmd: &str| json!({"command_id": cmd, "reason": "stuck since this morning"});
    let path = |customer: &str, verb: &str| format!("/cycles/2026-11/deliveries/{customer}/{verb}");
    let key = |i: usize| ClaimKey {
        id: DeliveryId::parse(&api.seeded.deliveries[i].0).unwrap(),
        channel: api.seeded.deliveries[i].1,
    };
    let store = &api.deps.deliveries;

    // QUEUED by dispatch ten minutes ago: the queue's retries may still bring it to a sender.
    let (queued, queued_customer) = api.delivery(0);
    api.set_attrs(
        &queued,
        &[
            ("queued_at", &stamp(minutes(-10))),
            ("available_at", &stamp(minutes(170))),
        ],
    )
    .await;
    let r = api.post_at(&path(&queued_customer, "resend"), resend("q-1"), t0).await;
    assert_eq!((r.status, error_code(&r)), (409, "sender-holds-it"), "{}", r.body);
    assert_eq!(api.call("GET", "/commands/q-1", None).await.status, 404);
    // Past its re-check time: back to dispatch, in its send round.
    let later = minutes(171);
    let view = api
        .get_at(&format!("/cycles/2026-11/deliveries/{queued_customer}"), later)
        .await;
    assert!(
        view.body["operator_action"].as_str().unwrap().contains("resend"),
        "{}",
        view.body
    );
    let r = api
        .post_at(&path(&queued_customer, "resend"), resend("q-2"), later)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            &r.body["state"],
            &r.body["send_round"],
            &r.body["new_round"],
            &r.body["previous"]["state"]
        ),
        (&json!("READY"), &json!(0), &json!(false), &json!("QUEUED"))
    );

    // SENDING under a live lease: refused; once the lease ended, resent in its round with
    // its claim counted, so the next claimant asks the provider first.
    let (sending, sending_customer) = api.delivery(1);
    let claimed = store.claim(&key(1), "claim-s", minutes(5), t0).await.unwrap();
    assert!(
        matches!(claimed, adapters::deliveries::claims::ClaimOutcome::Claimed(_)),
        "{claimed:?}"
    );
    let r = api
        .post_at(&path(&sending_customer, "resend"), resend("s-1"), minutes(1))
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "sender-holds-it"), "{}", r.body);
    let r = api
        .post_at(&path(&sending_customer, "resend"), resend("s-2"), minutes(6))
        .await;
    assert_eq!(
        (r.status, &r.body["previous"]["state"]),
        (200, &json!("SENDING")),
        "{}",
        r.body
    );
    let item = api.raw(&sending).await;
    let claims = format!("claims_{}", api.seeded.deliveries[1].1.as_str());
    assert_eq!(item[&claims].as_n().unwrap(), "1", "{item:?}");
    assert!(
        !item.contains_key("claim_id") && !item.contains_key("lease_until"),
        "{item:?}"
    );

    // UNCONFIRMED: a call to a provider that cannot be asked may have gone out.
    let mut unconfirmed = Vec::new();
    for i in [2, 3] {
        let k = key(i);
        store.claim(&k, &format!("claim-{i}"), minutes(5), t0).await.unwrap();
        assert!(store.call_started(&k, &format!("claim-{i}"), t0).await.is_applied());
        let w = store
            .give_back(
                &k,
                &format!("claim-{i}"),
                GiveBack::Unconfirmed,
                "earlier-call-unknown",
                minutes(185),
                t0,
            )
            .await;
        assert!(w.is_applied(), "{w:?}");
        unconfirmed.push(api.delivery(i));
    }
    let funnel = api.get("/cycles/2026-11/funnel").await;
    assert_eq!(
        (&funnel.body["by_state"]["UNCONFIRMED"], &funnel.body["needs_operator"]),
        (&json!(2), &json!(2))
    );
    let (confirmed, confirmed_customer) = &unconfirmed[0];
    let view = api
        .get_at(&format!("/cycles/2026-11/deliveries/{confirmed_customer}"), t0)
        .await;
    assert_eq!(view.body["state"], "UNCONFIRMED");
    assert!(
        view.body["operator_action"].as_str().unwrap().contains("confirm"),
        "{}",
        view.body
    );
    // Confirm: bad requests, the wrong state, then sent on its channel, once.
    let confirm = |cmd: &str| json!({"command_id": cmd, "reason": "SES console shows the message delivered"});
    let r = api
        .post_at(
            &path(confirmed_customer, "confirm"),
            json!({"command_id": "k-0", "reason": "x", "channel": "sms"}),
            t0,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "malformed-body"), "{}", r.body);
    let r = api
        .post_at(&path(&queued_customer, "confirm"), confirm("k-0"), t0)
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "{}", r.body);
    let r = api
        .post_at(&path(confirmed_customer, "confirm"), confirm("k-1"), t0)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sent_state = format!("SENT_{}", api.seeded.deliveries[2].1.as_str().to_uppercase());
    assert_eq!(
        (&r.body["state"], &r.body["previous"]["state"]),
        (&json!(sent_state), &json!("UNCONFIRMED"))
    );
    let again = api
        .post_at(&path(confirmed_customer, "confirm"), confirm("k-1"), t0)
        .await;
    assert_eq!((again.status, &again.body["replayed"]), (200, &json!(true)));
    let r = api
        .post_at(&path(confirmed_customer, "confirm"), confirm("k-2"), t0)
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "{}", r.body);
    let item = api.raw(confirmed).await;
    assert_eq!(item["state"].as_s().unwrap(), &sent_state);
    assert!(
        !item.contains_key("due_pk") && !item.contains_key("provider_call"),
        "{item:?}"
    );
    assert_eq!(api.call("GET", "/commands/k-1", None).await.body["command"], "confirm");
    // Resend the other: a new round.
    let (resent, resent_customer) = &unconfirmed[1];
    let r = api.post_at(&path(resent_customer, "resend"), resend("u-1"), t0).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((&r.body["send_round"], &r.body["new_round"]), (&json!(1), &json!(true)));

    // The next slot's dispatch and the senders: the three go out, each once.
    let next = SlotRun::containing(later).next();
    let clock = VirtualClock::at(next.start());
    let senders = api.senders(&clock).await;
    let dispatch = local_run::dispatch::dispatch_deps(&api.stack.config, &api.stack.resources)
        .await
        .unwrap();
    local_run::dispatch::run_slot(&dispatch, next).await.unwrap();
    assert!(drain_all(&senders, DRAIN_LIMIT).await, "every message handled");
    for id in [&queued, &sending, resent] {
        assert!(api.raw(id).await["state"].as_s().unwrap().starts_with("SENT_"), "{id}");
    }
    let sends = accepted_sends(&api).await;
    assert!(sends.values().all(|n| *n == 1), "{sends:?}");
    assert!(
        sends
            .keys()
            .any(|k| k.starts_with(&format!("{resent}#")) && k.ends_with("#r1")),
        "{sends:?}"
    );
    assert!(
        !sends.keys().any(|k| k.starts_with(&format!("{confirmed}#"))),
        "a confirmed one is not sent again"
    );
}
