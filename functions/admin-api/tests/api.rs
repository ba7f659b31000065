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
        Api::with_dnd(name, SlotSet::EMPTY).await
    }

    /// Six customers whose do-not-disturb slots are `dnd`, each with a queued delivery.
    async fn with_dnd(name: &str, dnd: SlotSet) -> Api {
        let stack = local_aws::fresh_stack(name).await.unwrap();
        let seeded = seed_queued(&stack.config, &stack.resources, 6, 3, 3, dnd)
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
        let (cycle, shard, customer) = domain::delivery::parse_delivery_id(id).unwrap();
        self.deps
            .deliveries
            .raw(cycle, shard, &customer)
            .await
            .unwrap()
            .unwrap()
    }

    /// Both senders on this stack, on `clock`, with a mock provider that answers at once
    /// and never fails.
    fn senders(&self, clock: &local_run::send::VirtualClock) -> Vec<local_run::send::Poller> {
        let overrides = [
            ("MOCK_LATENCY_MS", "0".to_owned()),
            ("MOCK_FAILURE_RATE", "0".to_owned()),
        ];
        local_run::send::pollers(&self.stack.config, &self.stack.resources, &overrides, clock).unwrap()
    }

    /// Test set-up: string attributes of a delivery, as a writer would have left them.
    async fn set_attrs(&self, id: &str, attrs: &[(&str, &str)]) {
        let (pk, customer) = id.rsplit_once('#').unwrap();
        let mut update = adapters::dynamodb_client(&self.stack.config)
            .update_item()
            .table_name(self.deps.deliveries.table())
            .key("pk", AttributeValue::S(pk.into()))
            .key("customer_id", AttributeValue::S(customer.into()));
        let mut sets = Vec::new();
        for (i, (name, value)) in attrs.iter().enumerate() {
            sets.push(format!("#a{i} = :v{i}"));
            update = update
                .expression_attribute_names(format!("#a{i}"), *name)
                .expression_attribute_values(format!(":v{i}"), AttributeValue::S((*value).into()));
        }
        update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .unwrap();
    }

    /// Test set-up: put a delivery back to READY as a re-render would find it.
    async fn make_ready(&self, id: &str) {
        local_run::seed::make_ready(&self.stack.config, &self.stack.resources, id)
            .await
            .unwrap();
    }
}

/// Runs the senders until their queues are empty (at most two minutes): whether they are.
async fn drain_all(senders: &[local_run::send::Poller]) -> bool {
    let (_, drained) = local_run::send::drain(senders, 2, std::time::Duration::from_secs(120))
        .await
        .unwrap();
    drained
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
        let r = api.call("GET", path, None).await;
        assert_eq!((r.status, error_code(&r)), (status, code), "GET {path}: {}", r.body);
        assert!(
            r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "GET {path} explains itself"
        );
    }
    // Templates: the versions, and a preview of one for a fictional bill.
    let t = api.call("GET", "/templates", None).await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.body["default"], "v1");
    assert!(
        t.body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["version"] == "v1")
    );
    let p = api.call("GET", "/templates/v1/preview?sample=contract", None).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body["html"].as_str().unwrap().contains("<html"));
    assert!(p.body["sms"].as_str().unwrap().contains("https://"));
    let p = api.call("GET", "/templates/v9/preview", None).await;
    assert_eq!(
        (p.status, error_code(&p)),
        (404, "unknown-template-version"),
        "{}",
        p.body
    );
    let p = api.call("GET", "/templates/v1/preview?sample=nobody", None).await;
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
            .call_at(
                "POST",
                &format!("/cycles/2026-11/deliveries/{customer}/schedule"),
                Some(json!({"command_id": format!("s-{i}"), "reason": "due at ten", "available_at": at})),
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
        let r = api.call("POST", &hold(&held_customer), Some(b.clone())).await;
        assert_eq!((r.status, error_code(&r)), (400, code), "{b}: {}", r.body);
    }
    let r = api.call("POST", &hold(&queued_customer), Some(body("h-x"))).await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "{}", r.body);
    assert_eq!(api.call("GET", "/commands/h-x", None).await.status, 404);

    // Held: out of the Due index, with the reason; replayed without a second write.
    let r = api.call("POST", &hold(&held_customer), Some(body("h-1"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["state"], &r.body["held_reason"], &r.body["previous"]["state"]),
        (&json!("HELD"), &json!("bill disputed, ticket 4411"), &json!("READY"))
    );
    let item = api.raw(&held).await;
    assert_eq!(item["state"].as_s().unwrap(), "HELD");
    assert!(!item.contains_key("due_pk"), "out of the Due index: {item:?}");
    let again = api.call("POST", &hold(&held_customer), Some(body("h-1"))).await;
    assert_eq!((again.status, &again.body["replayed"]), (200, &json!(true)));
    assert_eq!(api.raw(&held).await["updated_at"], item["updated_at"]);
    let r = api.call("POST", &hold(&held_customer), Some(body("h-2"))).await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "held once is enough");
    let view = api
        .call("GET", &format!("/cycles/2026-11/deliveries/{held_customer}"), None)
        .await;
    assert_eq!(
        (&view.body["state"], &view.body["held_reason"]),
        (&json!("HELD"), &json!("bill disputed, ticket 4411"))
    );
    let funnel = api.call("GET", "/cycles/2026-11/funnel", None).await;
    assert_eq!(funnel.body["by_state"]["HELD"], 1, "{}", funnel.body);
    let audit = api.call("GET", "/commands/h-1", None).await;
    assert_eq!(
        (&audit.body["who"], &audit.body["command"]),
        (&json!(OPERATOR), &json!("hold"))
    );

    // A dispatch run takes the READY one and leaves the held one.
    let dispatch = dispatch_deps(&api.stack.config, &api.stack.resources).unwrap();
    run_slot(&dispatch, SlotRun::containing(ten)).await.unwrap();
    assert_eq!(api.raw(&plain).await["state"].as_s().unwrap(), "QUEUED");
    assert_eq!(api.raw(&held).await["state"].as_s().unwrap(), "HELD");

    // Released by a schedule: the next run takes it, and it is sent once.
    let r = api
        .call_at(
            "POST",
            &format!("/cycles/2026-11/deliveries/{held_customer}/schedule"),
            Some(json!({"command_id": "h-3", "reason": "dispute settled", "available_at": at})),
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
    let senders = api.senders(&clock);
    assert!(drain_all(&senders).await, "every message handled");
    assert!(api.raw(&held).await["state"].as_s().unwrap().starts_with("SENT_"));
    let sent: Vec<u64> = accepted_sends(&api)
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with(&held))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(sent, [1], "sent once after its release");
}

/// Accepted sends at the mock providers, by idempotency key.
async fn accepted_sends(api: &Api) -> std::collections::BTreeMap<String, u64> {
    let table = local_run::send::sender_env(&api.stack.resources, Channel::Email, &[])["MOCK_SENDS_TABLE"].clone();
    let client = adapters::dynamodb_client(&api.stack.config);
    let mut counts = std::collections::BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(&table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            *counts.entry(item["pk"].as_s().unwrap().clone()).or_insert(0) += 1;
        }
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            break;
        }
    }
    counts
}

#[tokio::test]
async fn a_resend_after_sent_sends_once_more_exactly_once_and_is_audited() {
    use domain::dispatch::SlotRun;
    use local_run::send::VirtualClock;

    let api = Api::new("admin-resend").await;
    // 10:00 in Seoul on the customers' send day: an open slot.
    let t0: DateTime<Utc> = "2026-12-15T01:00:00Z".parse().unwrap();
    let clock = VirtualClock::at(t0);
    let senders = api.senders(&clock);
    assert!(drain_all(&senders).await, "every message handled");
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
        .call_at(
            "POST",
            &format!("/cycles/2026-11/deliveries/{other_customer}/resend"),
            Some(json!({"command_id": "r-0", "reason": "x"})),
            t0,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "{}", r.body);
    let r = api
        .call_at(
            "POST",
            &path,
            Some(json!({"command_id": "r-1", "reason": "x", "available_at": "soon"})),
            t0,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "invalid-time"));

    // Resent: READY in round 1, given twice, applied once.
    let r = api.call_at("POST", &path, Some(resend.clone()), t0).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["state"].as_str(), r.body["send_round"].as_u64()),
        (Some("READY"), Some(1))
    );
    let again = api.call_at("POST", &path, Some(resend.clone()), t0).await;
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
    let dispatch = local_run::dispatch::dispatch_deps(&api.stack.config, &api.stack.resources).unwrap();
    let report = local_run::dispatch::run_slot(&dispatch, next).await.unwrap();
    assert_eq!(report.enqueued_email + report.enqueued_sms, 1, "{report:?}");
    assert!(drain_all(&senders).await, "every message handled");
    let after = accepted_sends(&api).await;
    let mine: Vec<(&String, &u64)> = after.iter().filter(|(k, _)| k.starts_with(&format!("{id}#"))).collect();
    assert_eq!(mine.len(), 2, "round 0 and round 1: {mine:?}");
    assert!(mine.iter().all(|(_, n)| **n == 1), "each round sent once: {mine:?}");
    assert!(mine.iter().any(|(k, _)| k.ends_with("#r1")));
    assert_eq!(after.len(), 7, "nothing else was sent again: {after:?}");

    // Audited on the delivery.
    let d = api
        .call_at(
            "GET",
            &format!("/cycles/2026-11/deliveries/{customer}"),
            None,
            next.start(),
        )
        .await;
    assert!(d.body["state"].as_str().unwrap().starts_with("SENT_"), "{}", d.body);
    assert_eq!(d.body["send_round"], 1);
    let commands = d.body["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 1);
    assert_eq!(
        (&commands[0]["command"], &commands[0]["who"], &commands[0]["why"]),
        (
            &json!("resend"),
            &json!(OPERATOR),
            &json!("customer deleted the email by mistake")
        )
    );
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
    let senders = api.senders(&clock);
    let dispatch = dispatch_deps(&api.stack.config, &api.stack.resources).unwrap();
    // The seeded messages first: in the DND slot they are deferred, not sent.
    assert!(drain_all(&senders).await, "every message handled");
    assert!(accepted_sends(&api).await.is_empty(), "nothing goes out in a DND slot");

    let (forced, forced_customer) = api.delivery(0);
    let (plain, _) = api.delivery(1);
    let body = |cmd: &str| json!({"command_id": cmd, "reason": "billing dispute: the customer is waiting"});
    let force = |customer: &str| format!("/cycles/2026-11/deliveries/{customer}/force-send");

    // A deferred delivery is READY: forced now, it goes in this very slot; the other waits.
    assert_eq!(api.raw(&forced).await["state"].as_s().unwrap(), "READY");
    let r = api
        .call_at("POST", &force(&forced_customer), Some(body("f-1")), ten)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["dnd_ignored"], true);
    let report = run_slot(&dispatch, SlotRun::containing(ten)).await.unwrap();
    assert_eq!(
        report.enqueued_email + report.enqueued_sms,
        1,
        "only the forced one: {report:?}"
    );
    drain_all(&senders).await;
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
        .call_at(
            "GET",
            &format!("/cycles/2026-11/deliveries/{forced_customer}"),
            None,
            ten,
        )
        .await;
    assert_eq!(
        (&view.body["dnd_slots"], &view.body["dnd_ignored_by_force_send"]),
        (&json!(["10:00-12:00"]), &json!(false))
    );

    // Forced at 22:00, inside the quiet window: nothing goes out until 08:00.
    let (late, late_customer) = api.delivery(2);
    let ten_pm: DateTime<Utc> = "2026-12-16T13:00:00Z".parse().unwrap();
    clock.set(ten_pm);
    let r = api
        .call_at("POST", &force(&late_customer), Some(body("f-2")), ten_pm)
        .await;
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
    let r = api.call_at("POST", &path, Some(body("c-1")), ten_pm).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["channel"], &r.body["previous_channel"]),
        (&json!("sms"), &json!("email"))
    );
    let again = api.call_at("POST", &path, Some(body("c-1")), ten_pm).await;
    assert_eq!(again.body["replayed"], true);
    let r = api
        .call_at(
            "POST",
            &path,
            Some(json!({"command_id": "c-2", "reason": "x", "channel": "sms"})),
            ten_pm,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "malformed-body"));

    clock.set(run.start()); // 08:00 in Seoul
    let report = run_slot(&dispatch, run).await.unwrap();
    assert!(report.enqueued_email + report.enqueued_sms >= 1, "{report:?}");
    drain_all(&senders).await;
    let late_item = api.raw(&late).await;
    assert!(late_item["state"].as_s().unwrap().starts_with("SENT_"), "{late_item:?}");
    assert_eq!(late_item["sent_at"].as_s().unwrap(), "2026-12-16T23:00:00Z");
    assert_eq!(api.raw(&conv).await["state"].as_s().unwrap(), "SENT_SMS");

    // Force-send is for what waits; a sent delivery is resent instead.
    let r = api
        .call_at("POST", &force(&forced_customer), Some(body("f-3")), ten_pm)
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"));
}

#[tokio::test]
async fn settings_change_at_runtime_audited_and_template_activation_checks_the_version() {
    use local_run::dispatch::{dispatch_deps, run_slot};

    let api = Api::new("admin-settings").await;
    let body = |cmd: &str, value: &str| json!({"command_id": cmd, "reason": "email provider outage", "value": value});

    // Before any command: the deployment's values.
    let r = api.call("GET", "/settings", None).await;
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
    let r = api
        .call("PUT", "/settings/channel-policy", Some(body("p-0", "fax")))
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "invalid-value"), "{}", r.body);
    let r = api.call("PUT", "/settings/quiet-window", Some(body("p-0", "x"))).await;
    assert_eq!((r.status, error_code(&r)), (404, "unknown-setting"));
    let r = api
        .call(
            "PUT",
            "/settings/channel-policy",
            Some(json!({"command_id": "p-0", "reason": "x"})),
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "malformed-body"));
    let r = api
        .call("POST", "/settings/channel-policy", Some(body("p-0", "sms")))
        .await;
    assert_eq!(r.status, 405);
    let r = api
        .call(
            "PUT",
            "/settings/channel-policy",
            Some(json!({"command_id": "p-0", "reason": " ", "value": "sms"})),
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "invalid-reason"));

    // Set, replay, reuse.
    let r = api
        .call("PUT", "/settings/channel-policy", Some(body("p-1", "sms")))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["value"], &r.body["previous"], &r.body["revision"]),
        (&json!("sms"), &json!("email,sms"), &json!(1))
    );
    let again = api
        .call("PUT", "/settings/channel-policy", Some(body("p-1", "sms")))
        .await;
    assert_eq!((again.status, &again.body["replayed"]), (200, &json!(true)));
    let reused = api
        .call("PUT", "/settings/channel-policy", Some(body("p-1", "email")))
        .await;
    assert_eq!((reused.status, error_code(&reused)), (409, "command-id-reused"));
    let r = api.call("GET", "/settings/channel-policy", None).await;
    assert_eq!(
        (
            &r.body["value"],
            &r.body["source"],
            &r.body["revision"],
            &r.body["updated_by"]
        ),
        (&json!("sms"), &json!("setting"), &json!(1), &json!(OPERATOR))
    );
    let audit = api.call("GET", "/commands/p-1", None).await;
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
            &json!(OPERATOR),
            &json!("email provider outage")
        )
    );

    // The readers: dispatch's next run and the senders apply it.
    let dispatch = dispatch_deps(&api.stack.config, &api.stack.resources).unwrap();
    let run = domain::dispatch::SlotRun::containing("2026-12-16T03:00:00Z".parse().unwrap());
    let report = run_slot(&dispatch, run).await.unwrap();
    assert_eq!(
        (report.policy.as_str(), report.policy_source.as_str()),
        ("sms", "setting")
    );
    let env = local_run::settle::local_function_env(&api.stack.resources, "SendEmailFunction");
    let sender = sender::Deps::from_vars(Channel::Email, &api.stack.config, &env).unwrap();
    assert_eq!(sender.channel_policy().await.unwrap().to_string(), "sms");

    // The email messages dispatch queued before the change are not tried by email: handed
    // to SMS (no email attempt counted) and sent there, as the SMS ones are.
    let ten: DateTime<Utc> = "2026-12-16T01:00:00Z".parse().unwrap(); // 10:00 in Seoul
    let clock = local_run::send::VirtualClock::at(ten);
    let senders = api.senders(&clock);
    assert!(drain_all(&senders).await, "every message handled");
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
    let r = api
        .call("PUT", "/settings/channel-policy", Some(body("p-2", "none")))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["note"].as_str().unwrap().contains("paused"));
    let r = api
        .call("PUT", "/settings/channel-policy", Some(body("p-3", "sms,email")))
        .await;
    assert_eq!(
        (&r.body["value"], &r.body["revision"]),
        (&json!("email,sms"), &json!(3))
    );

    // Templates: the unknown version is a 404; the known one becomes the active one.
    let r = api
        .call(
            "POST",
            "/templates/v999/activate",
            Some(json!({"command_id": "t-0", "reason": "new layout"})),
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (404, "unknown-template-version"));
    let r = api
        .call(
            "POST",
            "/templates/v1/activate",
            Some(json!({"command_id": "t-1", "reason": "new layout"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["setting"], &r.body["value"]),
        (&json!("template-version"), &json!("v1"))
    );
    let r = api.call("GET", "/templates", None).await;
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
        let r = api.call("GET", "/queues/delivery-dlq", None).await;
        waiting = r.body["waiting"].as_u64().unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(waiting >= 1, "messages on the DLQ");
    let r = api.call("GET", "/queues", None).await;
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
        let r = api.call("POST", &path, Some(cmd("r-0", json!(rate)))).await;
        assert_eq!((r.status, error_code(&r)), (status, code), "{queue} at {rate}");
    }

    // The redrive: started once, replayed without a second task.
    let r = api
        .call("POST", "/queues/delivery-dlq/redrive", Some(cmd("r-1", json!(2))))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["status"], &r.body["max_per_second"]),
        (&json!("started"), &json!(2))
    );
    let again = api
        .call("POST", "/queues/delivery-dlq/redrive", Some(cmd("r-1", json!(2))))
        .await;
    assert_eq!(
        (&again.body["replayed"], &again.body["task_handle"]),
        (&json!(true), &r.body["task_handle"])
    );
    let audit = api.call("GET", "/commands/r-1", None).await;
    assert_eq!(
        (&audit.body["who"], &audit.body["result"]["status"]),
        (&json!(OPERATOR), &json!("started"))
    );
    // Back on the email queue, at most two a second.
    let mut done = Value::Null;
    for _ in 0..100 {
        let r = api.call("GET", "/queues/delivery-dlq", None).await;
        if r.body["redrives"][0]["status"] == "COMPLETED" {
            done = r.body;
            break;
        }
        if r.body["redrives"][0]["status"] == "RUNNING" {
            let second = api
                .call("POST", "/queues/delivery-dlq/redrive", Some(cmd("r-2", json!(2))))
                .await;
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
    let none = api.call("GET", "/commands/r-2", None).await;
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
        .call(
            "PUT",
            "/settings/channel-policy",
            Some(json!({"command_id": "off-1", "reason": "SMS gateway down", "value": "email"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ten: DateTime<Utc> = "2026-12-16T01:00:00Z".parse().unwrap(); // 10:00 in Seoul
    let clock = VirtualClock::at(ten);
    let senders = api.senders(&clock);
    drain_all(&senders).await;
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
    let dispatch = dispatch_deps(&api.stack.config, &api.stack.resources).unwrap();
    let report = run_slot(&dispatch, domain::dispatch::SlotRun::containing(ten).next())
        .await
        .unwrap();
    assert_eq!(
        (report.enqueued_email, report.enqueued_sms),
        (sms.len() as u64, 0),
        "{report:?}"
    );
    clock.set(ten + Duration::hours(2));
    drain_all(&senders).await;
    for id in &sms {
        assert_eq!(api.raw(id).await["state"].as_s().unwrap(), "SENT_EMAIL", "{id}");
    }
    let sent = accepted_sends(&api).await;
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert!(sent.values().all(|n| *n == 1), "{sent:?}");
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
        .call_at(
            "POST",
            &path,
            Some(schedule_body("i-1", "customer asked for Friday", friday)),
            now,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .call_at(
            "POST",
            &path,
            Some(schedule_body("i-1", "a different story", friday)),
            now,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "command-id-reused"), "{}", r.body);
    assert!(
        !r.body.to_string().contains("i-1"),
        "the error names no input: {}",
        r.body
    );
    let audit = api.call("GET", "/commands/i-1", None).await;
    assert_eq!(audit.body["why"], "customer asked for Friday");
    // So is a setting's command under its id with another reason.
    let policy = |reason: &str| json!({"command_id": "i-p", "reason": reason, "value": "email,sms"});
    let r = api
        .call("PUT", "/settings/channel-policy", Some(policy("back to both")))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .call("PUT", "/settings/channel-policy", Some(policy("another reason")))
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "command-id-reused"), "{}", r.body);
}

#[tokio::test]
async fn a_retry_of_a_schedule_clamped_to_now_replays_a_second_later() {
    let (api, path, _) = ready_to_schedule("admin-idem-clamp").await;
    let now = Utc::now();
    // A time a minute ago is "now" for the effect, yet the retry a second later is the
    // same request: the digest is of what was sent, not of the time clamped to now.
    let body = schedule_body("i-2", "now", now - Duration::minutes(1));
    let r = api.call_at("POST", &path, Some(body.clone()), now).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let retry = api.call_at("POST", &path, Some(body), now + Duration::seconds(1)).await;
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
    let r = api.call_at("POST", &path, Some(body.clone()), now).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let updated = api.raw(&id).await["updated_at"].clone();
    // Ten minutes on, the time it names is past: still the first answer, not a 400.
    let late = api
        .call_at("POST", &path, Some(body), now + Duration::minutes(10))
        .await;
    assert_eq!(
        (late.status, &late.body["replayed"]),
        (200, &json!(true)),
        "{}",
        late.body
    );
    assert_eq!(api.raw(&id).await["updated_at"], updated, "a replay writes nothing");
    // As a new command, the same request is refused now, naming the field, not the value.
    let r = api
        .call_at(
            "POST",
            &path,
            Some(schedule_body("i-4", "soon", soon)),
            now + Duration::minutes(10),
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "invalid-time"), "{}", r.body);
    let sent = soon.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert!(!r.body.to_string().contains(&sent), "{}", r.body);
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
        async move { on.call_at("POST", &path, Some(b), ten).await }
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
        .call_at("GET", &format!("/cycles/2026-11/deliveries/{held_customer}"), None, ten)
        .await;
    assert_eq!(
        (&view.body["dnd_slots"], &view.body["dnd_ignored_by_force_send"]),
        (&json!(["10:00-12:00"]), &json!(false))
    );

    // Dispatch honours the slots: neither goes out from 10:00 to 12:00.
    let dispatch = dispatch_deps(&api.stack.config, &api.stack.resources).unwrap();
    let report = run_slot(&dispatch, SlotRun::containing(ten)).await.unwrap();
    assert_eq!(report.enqueued_email + report.enqueued_sms, 0, "{report:?}");
    for id in [&held, &converted] {
        assert_eq!(api.raw(id).await["state"].as_s().unwrap(), "READY", "{id}");
    }
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
            .call_at(
                "POST",
                &path(verb),
                Some(json!({"command_id": format!("z-{i}"), "reason": "later", "available_at": too_late})),
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
        .call_at(
            "POST",
            &path("schedule"),
            Some(json!({"command_id": "z-9", "reason": "later", "available_at": seoul(last, "20:00:00")})),
            now,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "{}", r.body);
    // Now itself past the horizon: nothing the request can change.
    let after: DateTime<Utc> = DateTime::parse_from_rfc3339(&seoul(last + Duration::days(1), "09:00:00"))
        .unwrap()
        .with_timezone(&Utc);
    let r = api
        .call_at(
            "POST",
            &path("resend"),
            Some(json!({"command_id": "z-10", "reason": "old"})),
            after,
        )
        .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (409, "beyond-dispatch-horizon"),
        "{}",
        r.body
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
    let r = api
        .call_at("POST", &path(&queued_customer, "resend"), Some(resend("q-1")), t0)
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "sender-holds-it"), "{}", r.body);
    assert_eq!(api.call("GET", "/commands/q-1", None).await.status, 404);
    // Past its re-check time: back to dispatch, in its send round.
    let later = minutes(171);
    let view = api
        .call_at(
            "GET",
            &format!("/cycles/2026-11/deliveries/{queued_customer}"),
            None,
            later,
        )
        .await;
    assert!(
        view.body["operator_action"].as_str().unwrap().contains("resend"),
        "{}",
        view.body
    );
    let r = api
        .call_at("POST", &path(&queued_customer, "resend"), Some(resend("q-2")), later)
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
        .call_at(
            "POST",
            &path(&sending_customer, "resend"),
            Some(resend("s-1")),
            minutes(1),
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "sender-holds-it"), "{}", r.body);
    let r = api
        .call_at(
            "POST",
            &path(&sending_customer, "resend"),
            Some(resend("s-2")),
            minutes(6),
        )
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
    let funnel = api.call("GET", "/cycles/2026-11/funnel", None).await;
    assert_eq!(
        (&funnel.body["by_state"]["UNCONFIRMED"], &funnel.body["needs_operator"]),
        (&json!(2), &json!(2))
    );
    let (confirmed, confirmed_customer) = &unconfirmed[0];
    let view = api
        .call_at(
            "GET",
            &format!("/cycles/2026-11/deliveries/{confirmed_customer}"),
            None,
            t0,
        )
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
        .call_at(
            "POST",
            &path(confirmed_customer, "confirm"),
            Some(json!({"command_id": "k-0", "reason": "x", "channel": "sms"})),
            t0,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "malformed-body"), "{}", r.body);
    let r = api
        .call_at("POST", &path(&queued_customer, "confirm"), Some(confirm("k-0")), t0)
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "{}", r.body);
    let r = api
        .call_at("POST", &path(confirmed_customer, "confirm"), Some(confirm("k-1")), t0)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sent_state = format!("SENT_{}", api.seeded.deliveries[2].1.as_str().to_uppercase());
    assert_eq!(
        (&r.body["state"], &r.body["previous"]["state"]),
        (&json!(sent_state), &json!("UNCONFIRMED"))
    );
    let again = api
        .call_at("POST", &path(confirmed_customer, "confirm"), Some(confirm("k-1")), t0)
        .await;
    assert_eq!((again.status, &again.body["replayed"]), (200, &json!(true)));
    let r = api
        .call_at("POST", &path(confirmed_customer, "confirm"), Some(confirm("k-2")), t0)
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
    let r = api
        .call_at("POST", &path(resent_customer, "resend"), Some(resend("u-1")), t0)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((&r.body["send_round"], &r.body["new_round"]), (&json!(1), &json!(true)));

    // The next slot's dispatch and the senders: the three go out, each once.
    let next = SlotRun::containing(later).next();
    let clock = VirtualClock::at(next.start());
    let senders = api.senders(&clock);
    let dispatch = local_run::dispatch::dispatch_deps(&api.stack.config, &api.stack.resources).unwrap();
    local_run::dispatch::run_slot(&dispatch, next).await.unwrap();
    assert!(drain_all(&senders).await, "every message handled");
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
