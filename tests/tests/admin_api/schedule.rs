//! `schedule`: idempotent by its command id (a replay as sent, another request under a used
//! id refused), audited, refused in the wrong state, and refused for a time dispatch would
//! never take.

use chrono::{DateTime, Duration, Utc};
use integration_tests::admin::{ADMINISTRATOR, Api, error_code};
use serde_json::{Value, json};

#[tokio::test]
async fn schedule_is_idempotent_audited_and_refused_in_the_wrong_state() {
    let api = Api::new("admin-schedule").await;
    let (id, customer) = api.delivery(1);
    let path = format!("/cycles/2026-11/deliveries/{customer}/schedule");
    let now = Utc::now();
    let at = (now + Duration::days(2)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let body =
        |cmd: &str, at: &str| json!({"command_id": cmd, "reason": "customer asked for Friday", "available_at": at});

    // QUEUED: not for scheduling.
    let r = api.post(&path, body("c-queued", &at)).await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("QUEUED"));

    // Bad requests: 400 with a reason, and nothing recorded.
    for (b, code) in [
        (None, "missing-body"),
        (Some(json!("not an object")), "malformed-body"),
        (Some(json!({"command_id": "c-x", "available_at": at})), "malformed-body"),
        (
            Some(json!({"command_id": "c-x", "reason": "r", "available_at": at, "extra": 1})),
            "malformed-body",
        ),
        (Some(body("c-x", "next friday")), "invalid-time"),
        (Some(body("c-x", "2020-01-01T00:00:00Z")), "invalid-time"),
        (Some(body("has space", &at)), "invalid-command-id"),
        (
            Some(json!({"command_id": "c-x", "reason": " ", "available_at": at})),
            "invalid-reason",
        ),
    ] {
        let r = api.call("POST", &path, b.clone()).await;
        assert_eq!((r.status, error_code(&r)), (400, code), "{b:?}: {}", r.body);
    }
    let r = api
        .post("/cycles/2026-11/deliveries/C9999999/schedule", body("c-x", &at))
        .await;
    assert_eq!((r.status, error_code(&r)), (404, "unknown-customer"));
    assert_eq!(api.call("GET", "/commands/c-x", None).await.status, 404);

    // READY: scheduled, once.
    api.make_ready(&id).await;
    let r = api.post(&path, body("c-1", &at)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["replayed"], false);
    assert_eq!(r.body["available_at"], at.as_str());
    let after = api.raw(&id).await;
    assert_eq!(after["available_at"].as_s().unwrap(), &at);
    assert!(after.contains_key("due_pk"), "back in the Due index");
    let updated = after["updated_at"].clone();

    // The same command again: the first answer, no second effect.
    let later = now + Duration::minutes(3);
    let again = api.post_at(&path, body("c-1", &at), later).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(again.body["available_at"], r.body["available_at"]);
    assert_eq!(api.raw(&id).await["updated_at"], updated, "a replay writes nothing");

    // The same id for another request: refused.
    let other = (now + Duration::days(3)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let r = api.post(&path, body("c-1", &other)).await;
    assert_eq!((r.status, error_code(&r)), (409, "command-id-reused"), "{}", r.body);
    assert_eq!(api.raw(&id).await["available_at"].as_s().unwrap(), &at);

    // Audited: who, what, why, when — by id, by day and on the delivery.
    let c = api.get("/commands/c-1").await;
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(
        (&c.body["who"], &c.body["command"], &c.body["why"], &c.body["target"]),
        (
            &json!(ADMINISTRATOR),
            &json!("schedule"),
            &json!("customer asked for Friday"),
            &json!(id)
        )
    );
    let day = now.format("%Y-%m-%d").to_string();
    let a = api.get(&format!("/audit?day={day}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let ids: Vec<&str> = a.body["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c-1"], "one command applied, one record");
    let d = api.get(&format!("/cycles/2026-11/deliveries/{customer}")).await;
    assert_eq!(d.body["commands"].as_array().unwrap().len(), 1);
    assert_eq!(d.body["state"], "READY");

    // Two operators racing with one new id: one effect, both get its answer.
    let racing = (now + Duration::days(4)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (x, y) = tokio::join!(
        api.post(&path, body("c-race", &racing)),
        api.post(&path, body("c-race", &racing))
    );
    let replays: Vec<&Value> = [&x, &y].iter().map(|r| &r.body["replayed"]).collect();
    assert!(
        x.status == 200 && y.status == 200 && replays.contains(&&json!(false)) && replays.contains(&&json!(true)),
        "{} / {}",
        x.body,
        y.body
    );
    let (records, _) = api.deps.commands.by_target(&id, 50, None).await.unwrap();
    assert_eq!(records.len(), 2, "c-1 and c-race, each once");
}

/// A READY delivery to schedule: the API, its schedule route and its id.
async fn ready_to_schedule(name: &str) -> (Api, String, String) {
    let api = Api::new(name).await;
    let (id, customer) = api.delivery(1);
    api.make_ready(&id).await;
    let path = format!("/cycles/2026-11/deliveries/{customer}/schedule");
    (api, path, id)
}

fn schedule_body(cmd: &str, reason: &str, at: DateTime<Utc>) -> Value {
    let at = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    json!({"command_id": cmd, "reason": reason, "available_at": at})
}

#[tokio::test]
async fn another_reason_under_a_used_command_id_is_another_request() {
    let (api, path, _) = ready_to_schedule("admin-idem-reason").await;
    let now = Utc::now();
    let friday = now + Duration::days(2);
    let r = api
        .post_at(&path, schedule_body("i-1", "customer asked for Friday", friday), now)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .post_at(&path, schedule_body("i-1", "a different story", friday), now)
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "command-id-reused"), "{}", r.body);
    assert!(
        !r.body.to_string().contains("i-1"),
        "the error names no input: {}",
        r.body
    );
    let audit = api.get("/commands/i-1").await;
    assert_eq!(audit.body["why"], "customer asked for Friday");
    // So is a setting's command under its id with another reason.
    let policy = |reason: &str| json!({"command_id": "i-p", "reason": reason, "value": "email,sms"});
    let r = api.put("/settings/channel-policy", policy("back to both")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api.put("/settings/channel-policy", policy("another reason")).await;
    assert_eq!((r.status, error_code(&r)), (409, "command-id-reused"), "{}", r.body);
}

#[tokio::test]
async fn a_retry_of_a_schedule_clamped_to_now_replays_a_second_later() {
    let (api, path, _) = ready_to_schedule("admin-idem-clamp").await;
    let now = Utc::now();
    // A time a minute ago is "now" for the effect, yet the retry a second later is the
    // same request: the digest is of what was sent, not of the time clamped to now.
    let body = schedule_body("i-2", "now", now - Duration::minutes(1));
    let r = api.post_at(&path, body.clone(), now).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let retry = api.post_at(&path, body, now + Duration::seconds(1)).await;
    assert_eq!(
        (retry.status, &retry.body["replayed"]),
        (200, &json!(true)),
        "{}",
        retry.body
    );
    assert_eq!(retry.body["available_at"], r.body["available_at"]);
}

#[tokio::test]
async fn a_late_retry_gets_the_first_answer_before_any_validation() {
    let (api, path, id) = ready_to_schedule("admin-idem-late").await;
    let now = Utc::now();
    let soon = now + Duration::minutes(2);
    let body = schedule_body("i-3", "soon", soon);
    let r = api.post_at(&path, body.clone(), now).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let updated = api.raw(&id).await["updated_at"].clone();
    // Ten minutes on, the time it names is past: still the first answer, not a 400.
    let late = api.post_at(&path, body, now + Duration::minutes(10)).await;
    assert_eq!(
        (late.status, &late.body["replayed"]),
        (200, &json!(true)),
        "{}",
        late.body
    );
    assert_eq!(api.raw(&id).await["updated_at"], updated, "a replay writes nothing");
    // As a new command, the same request is refused now, naming the field, not the value.
    let r = api
        .post_at(&path, schedule_body("i-4", "soon", soon), now + Duration::minutes(10))
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "invalid-time"), "{}", r.body);
    let sent = soon.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert!(!r.body.to_string().contains(&sent), "{}", r.body);
}

#[tokio::test]
async fn a_time_dispatch_would_never_take_is_refused() {
    let api = Api::new("admin-horizon").await;
    let (_, customer) = api.delivery(0);
    // The last day a dispatch run looks at the cycle (Asia/Seoul).
    let last = domain::dispatch::dispatched_through("2026-11".parse().unwrap());
    let seoul = |day: chrono::NaiveDate, time: &str| format!("{day}T{time}+09:00");
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339(&seoul(last - Duration::days(40), "09:00:00"))
        .unwrap()
        .with_timezone(&Utc);
    let path = |verb: &str| format!("/cycles/2026-11/deliveries/{customer}/{verb}");
    let too_late = seoul(last + Duration::days(1), "00:00:00");
    let too_late = too_late.as_str();
    for (i, verb) in ["schedule", "resend", "convert-to-sms", "force-send"]
        .iter()
        .enumerate()
    {
        let r = api
            .post_at(
                &path(verb),
                json!({"command_id": format!("z-{i}"), "reason": "later", "available_at": too_late}),
                now,
            )
            .await;
        assert_eq!(
            (r.status, error_code(&r)),
            (400, "beyond-dispatch-horizon"),
            "{verb}: {}",
            r.body
        );
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&last.to_string()) && !message.contains(too_late),
            "{message}"
        );
    }
    // The last day dispatch takes it is accepted (and refused only for the state).
    let r = api
        .post_at(
            &path("schedule"),
            json!({"command_id": "z-9", "reason": "later", "available_at": seoul(last, "20:00:00")}),
            now,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "{}", r.body);
    // Now itself past the horizon: nothing the request can change.
    let after: DateTime<Utc> = DateTime::parse_from_rfc3339(&seoul(last + Duration::days(1), "09:00:00"))
        .unwrap()
        .with_timezone(&Utc);
    let r = api
        .post_at(&path("resend"), json!({"command_id": "z-10", "reason": "old"}), after)
        .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (409, "beyond-dispatch-horizon"),
        "{}",
        r.body
    );
}
