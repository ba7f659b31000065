//! The admin API against the emulator: every route, the errors a caller can make, and a
//! command that is idempotent by its id, audited, and refused in the wrong state.

use std::collections::HashMap;

use adapters::failures::{FailureLog, FailureStage, NewFailure};
use admin_api::{Caller, Deps, Request, Response, serve};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use domain::{Channel, Cycle, SlotSet};
use local_aws::Stack;
use local_run::seed::{Seeded, seed_queued};
use serde_json::{Value, json};

const OPERATOR: &str = "arn:aws:sts::123456789012:assumed-role/billing-operator/kim";

struct Api {
    stack: Stack,
    deps: Deps,
    seeded: Seeded,
    env: std::collections::BTreeMap<String, String>,
}

impl Api {
    async fn new(name: &str) -> Api {
        let stack = local_aws::fresh_stack(name).await.unwrap();
        let seeded = seed_queued(&stack.config, &stack.resources, 6, 3, 3, SlotSet::EMPTY)
            .await
            .unwrap();
        let env = local_run::settle::local_function_env(&stack.resources, "AdminApiFunction");
        let deps = Deps::from_vars(&stack.config, &env).unwrap();
        Api {
            stack,
            deps,
            seeded,
            env,
        }
    }

    async fn call_at(&self, method: &str, path: &str, body: Option<Value>, now: DateTime<Utc>) -> Response {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (
                p,
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
            None => (path, HashMap::new()),
        };
        let req = Request {
            method: method.into(),
            path: path.into(),
            query,
            body: body.map(|b| b.to_string()),
            caller: Some(Caller { arn: OPERATOR.into() }),
            request_id: "test-request".into(),
        };
        let r = serve(&self.deps, &req, now).await;
        // Whatever the route, no answer carries contact data in clear.
        let text = r.body.to_string();
        for secret in self.seeded.emails.iter().chain(&self.seeded.phones) {
            assert!(!text.contains(secret.as_str()), "{method} {path} leaks contact data");
        }
        r
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        self.call_at(method, path, body, Utc::now()).await
    }

    /// The delivery id and customer of the seeded delivery `i`.
    fn delivery(&self, i: usize) -> (String, String) {
        let id = self.seeded.deliveries[i].0.clone();
        let customer = id.rsplit('#').next().unwrap().to_owned();
        (id, customer)
    }

    async fn raw(&self, id: &str) -> HashMap<String, AttributeValue> {
        let (pk, customer) = id.rsplit_once('#').unwrap();
        adapters::dynamodb_client(&self.stack.config)
            .get_item()
            .table_name(&self.env["DELIVERIES_TABLE"])
            .key("pk", AttributeValue::S(pk.into()))
            .key("customer_id", AttributeValue::S(customer.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap()
    }

    /// Test set-up: put a delivery back to READY as a re-render would find it.
    async fn make_ready(&self, id: &str) {
        let (pk, customer) = id.rsplit_once('#').unwrap();
        adapters::dynamodb_client(&self.stack.config)
            .update_item()
            .table_name(&self.env["DELIVERIES_TABLE"])
            .key("pk", AttributeValue::S(pk.into()))
            .key("customer_id", AttributeValue::S(customer.into()))
            .update_expression("SET #st = :ready REMOVE channel")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":ready", AttributeValue::S("READY".into()))
            .send()
            .await
            .unwrap();
    }
}

fn error_code(r: &Response) -> &str {
    r.body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn reads_answer_and_bad_requests_get_clear_errors() {
    let api = Api::new("admin-read").await;

    // The cycle.
    let r = api.call("GET", "/cycles/2026-11", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "SETTLED");
    assert_eq!(r.body["shards"]["total"], 2);
    // The funnel: every delivery counted once, by state, channel and send day.
    let f = api.call("GET", "/cycles/2026-11/funnel", None).await;
    assert_eq!(f.status, 200, "{}", f.body);
    assert_eq!(f.body["deliveries"], 6);
    assert_eq!(f.body["by_state"], json!({"QUEUED": 6}));
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
        let r = api.call("GET", path, None).await;
        assert_eq!((r.status, error_code(&r)), (status, code), "GET {path}: {}", r.body);
        assert!(
            r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "GET {path} explains itself"
        );
    }
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
    let r = api
        .call("GET", &format!("/cycles/2026-11/deliveries/{customer}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["delivery_id"], id.as_str());
    assert_eq!(r.body["state"], "QUEUED");
    let email = r.body["contact"]["email"].as_str().unwrap();
    assert!(email.contains('*') && email.contains('@'), "{email}");
    assert!(r.body["contact"]["phone"].as_str().unwrap().contains('*'));
    assert!(r.body["invoice"]["link"].as_str().unwrap().contains("X-Amz-Signature"));
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
    let first = api.call("GET", "/cycles/2026-11/failures?limit=2", None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["records"].as_array().unwrap().len(), 2);
    let next = first.body["next"].as_str().expect("a next page").to_owned();
    let second = api
        .call("GET", &format!("/cycles/2026-11/failures?limit=2&next={next}"), None)
        .await;
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
    let r = api
        .call("GET", &format!("/cycles/2026-11/deliveries/{customer}"), None)
        .await;
    assert_eq!(r.body["failures"][0]["code"], "Bounce0");
}

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
    let r = api.call("POST", &path, Some(body("c-queued", &at))).await;
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
        .call(
            "POST",
            "/cycles/2026-11/deliveries/C9999999/schedule",
            Some(body("c-x", &at)),
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (404, "unknown-customer"));
    assert_eq!(api.call("GET", "/commands/c-x", None).await.status, 404);

    // READY: scheduled, once.
    api.make_ready(&id).await;
    let r = api.call("POST", &path, Some(body("c-1", &at))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["replayed"], false);
    assert_eq!(r.body["available_at"], at.as_str());
    let after = api.raw(&id).await;
    assert_eq!(after["available_at"].as_s().unwrap(), &at);
    assert!(after.contains_key("due_pk"), "back in the Due index");
    let updated = after["updated_at"].clone();

    // The same command again: the first answer, no second effect.
    let later = now + Duration::minutes(3);
    let again = api.call_at("POST", &path, Some(body("c-1", &at)), later).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(again.body["available_at"], r.body["available_at"]);
    assert_eq!(api.raw(&id).await["updated_at"], updated, "a replay writes nothing");

    // The same id for another request: refused.
    let other = (now + Duration::days(3)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let r = api.call("POST", &path, Some(body("c-1", &other))).await;
    assert_eq!((r.status, error_code(&r)), (409, "command-id-reused"), "{}", r.body);
    assert_eq!(api.raw(&id).await["available_at"].as_s().unwrap(), &at);

    // Audited: who, what, why, when — by id, by day and on the delivery.
    let c = api.call("GET", "/commands/c-1", None).await;
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(
        (&c.body["who"], &c.body["command"], &c.body["why"], &c.body["target"]),
        (
            &json!(OPERATOR),
            &json!("schedule"),
            &json!("customer asked for Friday"),
            &json!(id)
        )
    );
    let day = now.format("%Y-%m-%d").to_string();
    let a = api.call("GET", &format!("/audit?day={day}"), None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let ids: Vec<&str> = a.body["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c-1"], "one command applied, one record");
    let d = api
        .call("GET", &format!("/cycles/2026-11/deliveries/{customer}"), None)
        .await;
    assert_eq!(d.body["commands"].as_array().unwrap().len(), 1);
    assert_eq!(d.body["state"], "READY");

    // Two operators racing with one new id: one effect, both get its answer.
    let racing = (now + Duration::days(4)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (x, y) = tokio::join!(
        api.call("POST", &path, Some(body("c-race", &racing))),
        api.call("POST", &path, Some(body("c-race", &racing)))
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
