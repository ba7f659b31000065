//! The reads the operators' console draws: the list of cycles, each shard of a cycle, the
//! funnel's sends by slot, queues and dead letters, the failure log's filters, and a
//! delivery's timeline.

use adapters::failures::{FailureLog, FailureStage, NewFailure};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use domain::{Channel, Cycle, Slot};
use integration_tests::admin::{Api, DRAIN_LIMIT, error_code};
use serde_json::{Value, json};

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// Test set-up: a shard record of 2026-11 as a settlement would have left it.
async fn put_shard(api: &Api, shard: u32, status: &str, bills: u64, errors: &[&str]) {
    let mut item = std::collections::HashMap::from([
        ("cycle".to_owned(), s("2026-11")),
        ("item".to_owned(), s(&adapters::cycles::shard_item(shard))),
        ("shard".to_owned(), n(u64::from(shard))),
        ("status".to_owned(), s(status)),
        ("run_id".to_owned(), s("seed")),
        ("catalog_version".to_owned(), s("2026-v1")),
        ("bills".to_owned(), n(bills)),
        ("attempts".to_owned(), n(2)),
        ("error_count".to_owned(), n(errors.len() as u64)),
        (
            "errors".to_owned(),
            AttributeValue::L(errors.iter().map(|e| s(e)).collect()),
        ),
        ("updated_at".to_owned(), s("2026-12-01T00:10:00Z")),
    ]);
    if status == "DONE" {
        item.insert(
            "render".to_owned(),
            AttributeValue::M(std::collections::HashMap::from([
                ("template_version".to_owned(), s("v1")),
                ("bills_digest".to_owned(), s("d")),
                ("deliveries".to_owned(), n(bills)),
                ("created".to_owned(), n(bills)),
                ("updated".to_owned(), n(0)),
                ("unchanged".to_owned(), n(0)),
                ("kept".to_owned(), n(0)),
                ("bytes_uploaded".to_owned(), n(1000)),
                ("rendered_at".to_owned(), s("2026-12-01T00:20:00Z")),
            ])),
        );
    }
    adapters::dynamodb_client(&api.stack.config)
        .put_item()
        .table_name(api.deps.cycles.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn cycles_shards_queues_dead_letters_and_failure_filters() {
    let api = Api::new("admin-console-reads").await;
    let now = Utc::now();

    // The cycles, newest first: a second, older one shows after the seeded 2026-11.
    local_run::bench::settled_cycle(
        &api.stack.config,
        &api.stack.resources,
        "2026-09".parse().unwrap(),
        (10, 5),
        "arn:aws:states:ap-northeast-2:123456789012:execution:billing-settle:2026-09",
        now,
    )
    .await
    .unwrap();
    let c = api.get("/cycles").await;
    assert_eq!(c.status, 200, "{}", c.body);
    let cycles = c.body["cycles"].as_array().unwrap();
    let names: Vec<&str> = cycles.iter().map(|c| c["cycle"].as_str().unwrap()).collect();
    assert_eq!(names, ["2026-11", "2026-09"]);
    assert_eq!(
        (&cycles[0]["status"], &cycles[0]["bills"], &cycles[0]["execution"]),
        (&json!("SETTLED"), &json!(6), &json!("seed"))
    );
    assert_eq!(cycles[1]["bills"], 10);
    assert!(cycles[0]["started_at"].is_string() && cycles[0]["finished_at"].is_string());
    let one = api.get("/cycles?limit=1").await;
    assert_eq!(one.body["cycles"].as_array().unwrap().len(), 1, "{}", one.body);
    for bad in ["/cycles?limit=0", "/cycles?limit=101", "/cycles?limit=x"] {
        let r = api.get(bad).await;
        assert_eq!((r.status, error_code(&r)), (400, "invalid-limit"), "{bad}: {}", r.body);
    }

    // Each shard of the cycle, in order; a shard with no record is NOT_STARTED.
    put_shard(&api, 0, "DONE", 3, &[]).await;
    put_shard(
        &api,
        1,
        "FAILED",
        1,
        &["usage.csv line 7: unknown product X9", "second"],
    )
    .await;
    let r = api.get("/cycles/2026-11").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["execution_url"],
        Value::Null,
        "a local run id is not an execution ARN"
    );
    let list = r.body["shard_list"].as_array().unwrap();
    assert_eq!(list.len() as u64, r.body["shards"]["total"].as_u64().unwrap());
    assert_eq!(
        list[0],
        json!({"shard": 0, "status": "DONE", "bills": 3, "rendered": true, "deliveries": 3,
               "attempts": 2, "error": null, "updated_at": "2026-12-01T00:10:00Z"})
    );
    assert_eq!(
        (
            &list[1]["status"],
            &list[1]["rendered"],
            &list[1]["deliveries"],
            &list[1]["error"]
        ),
        (
            &json!("FAILED"),
            &json!(false),
            &Value::Null,
            &json!("usage.csv line 7: unknown product X9")
        )
    );
    let older = api.get("/cycles/2026-09").await;
    assert_eq!(
        older.body["execution_url"],
        "https://ap-northeast-2.console.aws.amazon.com/states/home?region=ap-northeast-2#/v2/executions/details/arn:aws:states:ap-northeast-2:123456789012:execution:billing-settle:2026-09"
    );
    let statuses: Vec<&str> = older.body["shard_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["NOT_STARTED", "NOT_STARTED"]);

    // The funnel: the send queues hold the seeded messages, one dead letter waits.
    let sqs = aws_sdk_sqs::Client::new(&api.stack.config);
    sqs.send_message()
        .queue_url(&api.env["DELIVERY_DLQ_URL"])
        .message_body(r#"{"delivery_id":"2026-11#00000#C0000000","channel":"email"}"#)
        .send()
        .await
        .unwrap();
    let f = api.get_at("/cycles/2026-11/funnel", now).await;
    assert_eq!(f.status, 200, "{}", f.body);
    assert_eq!(f.body["generated_at"], now.to_rfc3339_opts(SecondsFormat::Secs, true));
    let on = |ch: Channel| api.seeded.deliveries.iter().filter(|(_, c)| *c == ch).count() as u64;
    for (name, ch) in [("email", Channel::Email), ("sms", Channel::Sms)] {
        let q = &f.body["queues"][name];
        let total: u64 = ["visible", "in_flight", "delayed"]
            .iter()
            .map(|k| q[k].as_u64().unwrap())
            .sum();
        assert_eq!(total, on(ch), "{name}: {q}");
    }
    assert_eq!(f.body["dead_letters"], json!({"delivery-dlq": 1, "dispatch-dlq": 0}));
    assert_eq!(f.body["by_slot"], json!([]), "nothing sent yet");
    // The seeded deliveries were never enqueued by dispatch (no queued_at); one that was is
    // the oldest.
    assert_eq!(f.body["queues"]["oldest_queued_at"], Value::Null);
    let (id1, _) = api.delivery(1);
    let (id2, _) = api.delivery(2);
    let queued = now - Duration::seconds(90);
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    api.set_attrs(&id1, &[("queued_at", &fmt(queued))]).await;
    api.set_attrs(&id2, &[("queued_at", &fmt(now - Duration::seconds(30)))])
        .await;
    let f = api.get_at("/cycles/2026-11/funnel", now).await;
    let q = &f.body["queues"];
    assert_eq!(
        (&q["oldest_queued_at"], &q["oldest_queued_age_seconds"]),
        (&json!(fmt(queued)), &json!(90))
    );

    // The failure log, filtered by code, channel and stage; each record names its customer.
    let log = FailureLog::new(adapters::dynamodb_client(&api.stack.config), &api.env["FAILURES_TABLE"]);
    let cycle: Cycle = "2026-11".parse().unwrap();
    let failures = [
        (0, FailureStage::Email, "provider-rejected", Channel::Email),
        (1, FailureStage::Email, "throttled", Channel::Email),
        (2, FailureStage::Sms, "provider-rejected", Channel::Sms),
        (3, FailureStage::DeadLetter, "sender-crashed", Channel::Email),
    ];
    for (i, stage, code, channel) in failures {
        let f = NewFailure {
            cycle: Some(cycle),
            subject: api.delivery(i).0,
            stage,
            code: code.into(),
            reason: "the provider refused the message".into(),
            channel: Some(channel),
            attempts: 3,
            run_id: None,
            replay: None,
        };
        log.record(&f, Utc::now()).await.unwrap();
    }
    // Every page of a filtered list, followed by `next` with pages of one: what matches, all
    // of it and nothing else.
    let all_of = |query: &'static str| {
        let api = &api;
        async move {
            let mut out: Vec<Value> = Vec::new();
            let mut next: Option<String> = None;
            let mut pages = 0;
            loop {
                let path = match &next {
                    Some(t) => format!("/cycles/2026-11/failures?limit=1&{query}&next={t}"),
                    None => format!("/cycles/2026-11/failures?limit=1&{query}"),
                };
                let r = api.get(&path).await;
                assert_eq!(r.status, 200, "{path}: {}", r.body);
                assert!(r.body["records"].as_array().unwrap().len() <= 1);
                out.extend(r.body["records"].as_array().unwrap().iter().cloned());
                pages += 1;
                assert!(pages < 20, "the pages end");
                match r.body["next"].as_str() {
                    Some(t) => next = Some(t.to_owned()),
                    None => return (out, r.body["filters"].clone()),
                }
            }
        }
    };
    let customers = |records: &[Value]| -> Vec<String> {
        let mut c: Vec<String> = records
            .iter()
            .map(|r| r["customer_id"].as_str().unwrap().to_owned())
            .collect();
        c.sort();
        c
    };
    let customer = |i: usize| api.delivery(i).1;
    let (rejected, filters) = all_of("code=provider-rejected").await;
    assert_eq!(filters, json!({"code": "provider-rejected"}));
    assert_eq!(customers(&rejected), [customer(0), customer(2)]);
    assert!(rejected.iter().all(|r| r["code"] == "provider-rejected"));
    let (sms, _) = all_of("channel=sms").await;
    assert_eq!(customers(&sms), [customer(2)]);
    let (email_stage, _) = all_of("stage=email").await;
    assert_eq!(customers(&email_stage), [customer(0), customer(1)]);
    let (both, filters) = all_of("code=provider-rejected&channel=email&stage=email").await;
    assert_eq!(customers(&both), [customer(0)]);
    assert_eq!(
        filters,
        json!({"code": "provider-rejected", "channel": "email", "stage": "email"})
    );
    let (dead, _) = all_of("stage=dead-letter").await;
    assert_eq!(
        (customers(&dead), &dead[0]["subject"]),
        (vec![customer(3)], &json!(api.delivery(3).0))
    );
    let (none, _) = all_of("code=no-such-code").await;
    assert!(none.is_empty());
    let unfiltered = api.get("/cycles/2026-11/failures").await;
    assert_eq!(unfiltered.body["records"].as_array().unwrap().len(), 4);
    assert_eq!(unfiltered.body["filters"], json!({}));

    for (query, code, field) in [
        ("code=a*b", "invalid-code", "code"),
        ("channel=fax", "invalid-channel", "channel"),
        ("stage=nowhere", "invalid-stage", "stage"),
    ] {
        let r = api.get(&format!("/cycles/2026-11/failures?{query}")).await;
        assert_eq!((r.status, error_code(&r)), (400, code), "{query}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        let value = query.split_once('=').unwrap().1;
        assert!(
            message.starts_with(field) && !message.contains(value),
            "names the field, never echoes the value: {message}"
        );
    }
}

#[tokio::test]
async fn sends_count_in_their_slot_and_a_sent_delivery_has_its_timeline() {
    use domain::dispatch::SlotRun;
    use integration_tests::admin::drain_all;
    use local_run::dispatch::{dispatch_deps, run_slot};
    use local_run::send::VirtualClock;

    let api = Api::new("admin-console-sends").await;
    // 10:00 in Seoul on 16 December: outside the quiet window.
    let ten: DateTime<Utc> = "2026-12-16T01:00:00Z".parse().unwrap();
    // One delivery goes through dispatch (queued, with its queued_at) after a schedule.
    let (id, customer) = api.delivery(1);
    api.make_ready(&id).await;
    let r = api
        .post_at(
            &format!("/cycles/2026-11/deliveries/{customer}/schedule"),
            json!({"command_id": "t-1", "reason": "due at ten", "available_at": "2026-12-16T01:00:00Z"}),
            ten,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let dispatch = dispatch_deps(&api.stack.config, &api.stack.resources).await.unwrap();
    run_slot(&dispatch, SlotRun::containing(ten)).await.unwrap();
    let item = api.raw(&id).await;
    assert_eq!(item["state"].as_s().unwrap(), "QUEUED");
    let queued_at = item["queued_at"].as_s().unwrap().clone();
    let f = api.get_at("/cycles/2026-11/funnel", ten).await;
    assert_eq!(f.body["queues"]["oldest_queued_at"], json!(queued_at), "{}", f.body);

    let clock = VirtualClock::at(ten);
    let senders = api.senders(&clock).await;
    assert!(drain_all(&senders, DRAIN_LIMIT).await, "every message handled");

    // Every delivery sent, counted in the 2-hour slot (Korea time) of its sent_at.
    let mut expected: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (did, _) in &api.seeded.deliveries {
        let raw = api.raw(did).await;
        let sent: DateTime<Utc> = raw["sent_at"].as_s().unwrap().parse().unwrap();
        let (date, slot) = Slot::of_instant(sent);
        let start = slot
            .start_on(date)
            .with_timezone(&domain::slots::seoul())
            .to_rfc3339_opts(SecondsFormat::Secs, false);
        let e = expected.entry(start).or_default();
        match raw["channel"].as_s().unwrap().as_str() {
            "sms" => e.1 += 1,
            _ => e.0 += 1,
        }
    }
    let f = api.get("/cycles/2026-11/funnel").await;
    let by_slot = f.body["by_slot"].as_array().unwrap();
    let got: std::collections::BTreeMap<String, (u64, u64)> = by_slot
        .iter()
        .map(|s| {
            (
                s["slot_start"].as_str().unwrap().to_owned(),
                (s["email"].as_u64().unwrap(), s["sms"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(by_slot[0]["slot_start"], "2026-12-16T10:00:00+09:00");
    let sent: u64 = got.values().map(|(e, s)| e + s).sum();
    let by_state = &f.body["by_state"];
    assert_eq!(
        sent,
        by_state["SENT_EMAIL"].as_u64().unwrap() + by_state["SENT_SMS"].as_u64().unwrap()
    );
    assert_eq!(sent, 6);
    assert_eq!(f.body["queues"]["oldest_queued_at"], Value::Null, "none is queued");

    // The dispatched delivery's timeline: rendered, the schedule, queued, claimed, sent, in
    // time order, at the item's times.
    let r = api.get(&format!("/cycles/2026-11/deliveries/{customer}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let timeline = r.body["timeline"].as_array().unwrap();
    let steps: Vec<&str> = timeline.iter().map(|s| s["step"].as_str().unwrap()).collect();
    let position = |step: &str| {
        steps
            .iter()
            .position(|s| *s == step)
            .unwrap_or_else(|| panic!("{step} in {steps:?}"))
    };
    assert!(
        position("rendered") < position("queued")
            && position("queued") < position("claimed")
            && position("claimed") < position("sent"),
        "{timeline:?}"
    );
    let times: Vec<DateTime<Utc>> = timeline
        .iter()
        .map(|s| s["at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order: {timeline:?}");
    let item = api.raw(&id).await;
    let step = |name: &str| &timeline[position(name)];
    assert_eq!(step("sent")["at"], json!(item["sent_at"].as_s().unwrap()));
    assert_eq!(step("claimed")["at"], json!(item["claimed_at"].as_s().unwrap()));
    assert_eq!(step("queued")["at"], json!(queued_at));
    assert_eq!(step("sent")["channel"], json!(item["channel"].as_s().unwrap()));
    let command = step("command");
    assert!(
        command["detail"].as_str().unwrap().starts_with("schedule by ")
            && command["detail"].as_str().unwrap().ends_with(": due at ten"),
        "{command}"
    );
}
