//! The reads: the cycle, the funnel, the failure log, one delivery, the templates and
//! their previews, and the clear errors a caller's mistakes get.

use adapters::failures::{FailureLog, FailureStage, NewFailure};
use admin_api::{Request, serve};
use chrono::Utc;
use domain::{Channel, Cycle};
use integration_tests::admin::{Api, error_code};
use serde_json::json;

#[tokio::test]
async fn reads_answer_and_bad_requests_get_clear_errors() {
    let api = Api::new("admin-read").await;

    // The cycle.
    let r = api.get("/cycles/2026-11").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "SETTLED");
    assert_eq!(r.body["shards"]["total"], 2);
    // The funnel: every delivery counted once, by state, channel and send day.
    let f = api.get("/cycles/2026-11/funnel").await;
    assert_eq!(f.status, 200, "{}", f.body);
    assert_eq!(f.body["deliveries"], 6);
    // Every state is listed, the ones no delivery is in at zero: UNCONFIRMED shows.
    let mut states = json!({});
    for s in domain::DeliveryState::ALL {
        states[s.as_str()] = json!(if s == domain::DeliveryState::Queued { 6 } else { 0 });
    }
    assert_eq!(f.body["by_state"], states);
    assert_eq!(f.body["needs_operator"], 0);
    let queued_on = |ch: Channel| api.seeded.deliveries.iter().filter(|(_, c)| *c == ch).count();
    assert_eq!(f.body["by_channel"]["email"]["QUEUED"], queued_on(Channel::Email));
    assert_eq!(f.body["by_channel"]["sms"]["QUEUED"], queued_on(Channel::Sms));
    let days = f.body["by_send_day"].as_object().unwrap();
    assert_eq!(days.values().map(|d| d["QUEUED"].as_u64().unwrap()).sum::<u64>(), 6);

    for (path, status, code) in [
        ("/cycles/2031-01", 404, "unknown-cycle"),
        ("/cycles/2031-01/funnel", 404, "unknown-cycle"),
        ("/cycles/2026-13", 400, "invalid-cycle"),
        ("/cycles/november", 400, "invalid-cycle"),
        ("/nowhere", 404, "unknown-route"),
        ("/cycles/2026-11/deliveries/C9999999", 404, "unknown-customer"),
        ("/cycles/2026-11/failures?limit=0", 400, "invalid-limit"),
        ("/cycles/2026-11/failures?limit=abc", 400, "invalid-limit"),
        ("/cycles/2026-11/failures?next=not-a-token", 400, "invalid-page-token"),
        ("/commands/no-such-command", 404, "unknown-command"),
        ("/commands/bad%20id", 400, "invalid-command-id"),
        ("/audit", 400, "missing-day"),
        ("/audit?day=yesterday", 400, "invalid-day"),
    ] {
        let r = api.get(path).await;
        assert_eq!((r.status, error_code(&r)), (status, code), "GET {path}: {}", r.body);
        assert!(
            r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "GET {path} explains itself"
        );
    }
    // Templates: the versions, and a preview of one for a fictional bill.
    let t = api.get("/templates").await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.body["default"], "v1");
    assert!(
        t.body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["version"] == "v1")
    );
    let p = api.get("/templates/v1/preview?sample=contract").await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body["html"].as_str().unwrap().contains("<html"));
    assert!(p.body["sms"].as_str().unwrap().contains("https://"));
    let p = api.get("/templates/v9/preview").await;
    assert_eq!(
        (p.status, error_code(&p)),
        (404, "unknown-template-version"),
        "{}",
        p.body
    );
    let p = api.get("/templates/v1/preview?sample=nobody").await;
    assert_eq!((p.status, error_code(&p)), (400, "invalid-sample"));

    let r = api.call("DELETE", "/cycles/2026-11", None).await;
    assert_eq!((r.status, error_code(&r)), (405, "method-not-allowed"));

    // Without an IAM identity nothing is served.
    let anonymous = Request {
        method: "GET".into(),
        path: "/cycles/2026-11".into(),
        ..Request::default()
    };
    assert_eq!(serve(&api.deps, &anonymous, Utc::now()).await.status, 403);

    // One delivery: masked contact data, a link to the invoice, the slots.
    let (id, customer) = api.delivery(0);
    let r = api.get(&format!("/cycles/2026-11/deliveries/{customer}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["delivery_id"], id.as_str());
    assert_eq!(r.body["state"], "QUEUED");
    let email = r.body["contact"]["email"].as_str().unwrap();
    assert!(email.contains('*') && email.contains('@'), "{email}");
    assert!(r.body["contact"]["phone"].as_str().unwrap().contains('*'));
    assert!(r.body["invoice"]["link"].as_str().unwrap().contains("X-Amz-Signature"));
    assert!(
        r.body["invoice"]["range"].as_str().unwrap().starts_with("bytes="),
        "a member of its pack"
    );
    assert_eq!(r.body["attempts"], json!({"email": 0, "sms": 0}));

    // The failure log, a page at a time.
    let log = FailureLog::new(adapters::dynamodb_client(&api.stack.config), &api.env["FAILURES_TABLE"]);
    let cycle: Cycle = "2026-11".parse().unwrap();
    for (i, (did, _)) in api.seeded.deliveries.iter().take(3).enumerate() {
        let f = NewFailure {
            cycle: Some(cycle),
            subject: did.clone(),
            stage: FailureStage::Email,
            code: format!("Bounce{i}"),
            reason: "the provider refused the address".into(),
            channel: Some(Channel::Email),
            attempts: 3,
            run_id: None,
            replay: None,
        };
        log.record(&f, Utc::now()).await.unwrap();
    }
    let first = api.get("/cycles/2026-11/failures?limit=2").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["records"].as_array().unwrap().len(), 2);
    let next = first.body["next"].as_str().expect("a next page").to_owned();
    let second = api.get(&format!("/cycles/2026-11/failures?limit=2&next={next}")).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body["records"].as_array().unwrap().len(), 1);
    assert!(second.body["next"].is_null());
    let mut codes: Vec<&str> = first.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["records"].as_array().unwrap())
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, ["Bounce0", "Bounce1", "Bounce2"]);

    // A delivery's own failures show with it.
    let r = api.get(&format!("/cycles/2026-11/deliveries/{customer}")).await;
    assert_eq!(r.body["failures"][0]["code"], "Bounce0");
}
