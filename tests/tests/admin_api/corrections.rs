//! Corrections after send, against the emulator: a month settled and rendered by the state
//! machine, sent by the real dispatch and senders; then a credit of a sent invoice makes one
//! correction record, one corrected invoice object and one more send — and the same command
//! replayed makes none of them again. A debit, a re-rating under another catalog version, the
//! roles, bad bodies, a credit above what is due and a delivery on its way are covered too.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use admin_api::{Caller, Deps, Request, Response, serve};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use billing::{Catalog, parse_usage, rate};
use chrono::{DateTime, Duration, Utc};
use domain::dispatch::SlotRun;
use domain::{Bill, Channel, Cycle, Delivery};
use integration_tests::admin::{ADMINISTRATOR, OPERATOR, VIEWER, error_code};
use integration_tests::setup::loaded;
use integration_tests::{DataSet, Month};
use local_run::send::{Poller, VirtualClock};
use serde_json::{Value, json};

fn cycle() -> Cycle {
    "2026-11".parse().unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The month, the admin API's dependencies on it, and the senders.
struct Fixture {
    data: DataSet,
    month: Month,
    deps: Deps,
    clock: VirtualClock,
    senders: Vec<Poller>,
}

impl Fixture {
    async fn call_as(
        &self,
        caller: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        now: DateTime<Utc>,
    ) -> Response {
        let req = Request {
            method: method.into(),
            path: path.into(),
            query: HashMap::new(),
            body: body.map(|b| b.to_string()),
            caller: Some(Caller { arn: caller.into() }),
            request_id: "test-request".into(),
        };
        serve(&self.deps, &req, now).await
    }

    async fn post(&self, path: &str, body: Value, now: DateTime<Utc>) -> Response {
        self.call_as(ADMINISTRATOR, "POST", path, Some(body), now).await
    }

    async fn get(&self, path: &str, now: DateTime<Utc>) -> Response {
        self.call_as(ADMINISTRATOR, "GET", path, None, now).await
    }

    /// Dispatch and the senders over the open slots of the day of `from` (08:00-20:00 in
    /// Seoul): every delivery due goes in a slot its customer allows.
    async fn send_day(&self, from: DateTime<Utc>) {
        let deps = local_run::dispatch::dispatch_deps(&self.month.config, &self.month.resources)
            .await
            .unwrap();
        let mut slot = SlotRun::containing(from);
        for _ in 0..6 {
            self.clock.set(slot.start());
            local_run::dispatch::run_slot(&deps, slot).await.unwrap();
            let (_, drained) = local_run::send::drain(&self.senders, 2, std::time::Duration::from_secs(120))
                .await
                .unwrap();
            assert!(drained, "the senders emptied their queues");
            slot = slot.next();
        }
    }

    /// Accepted sends at the mock providers, by idempotency key.
    async fn accepted(&self) -> BTreeMap<String, u64> {
        let env = local_run::send::sender_env(&self.month.resources, Channel::Email, &[]);
        let client = adapters::dynamodb_client(&self.month.config);
        let mut counts = BTreeMap::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(&env["MOCK_SENDS_TABLE"])
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items() {
                *counts.entry(item["pk"].as_s().unwrap().clone()).or_insert(0) += 1;
            }
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return counts;
            }
        }
    }

    async fn deliveries(&self) -> Vec<Delivery> {
        let mut out = Vec::new();
        for shard in 0..self.data.manifest.shards.len() as u32 {
            out.extend(self.month.deliveries.shard(cycle(), shard).await.unwrap());
        }
        out
    }

    async fn raw(&self, d: &Delivery) -> HashMap<String, AttributeValue> {
        self.month
            .deliveries
            .raw(cycle(), d.shard, &d.customer_id)
            .await
            .unwrap()
            .unwrap()
    }

    /// The invoice objects stored for a customer's bill alone: its corrections (a render puts
    /// the invoice in the shard's pack).
    async fn invoice_keys(&self, d: &Delivery) -> Vec<String> {
        let s3 = adapters::s3_client(&self.month.config);
        let bucket = self.month.resources.env()["DATA_BUCKET"].clone();
        let out = s3
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(format!("invoices/{}/{:05}/{}/", cycle(), d.shard, d.customer_id))
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    /// The text of the invoice a delivery's content points at (its member of a pack, or an
    /// object of its own).
    async fn content_text(&self, content: &domain::DeliveryContent) -> String {
        let gz = self.month.bucket.get_invoice(content).await.unwrap().unwrap().body;
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    async fn invoice_text(&self, key: &str) -> String {
        let gz = self.month.bucket.get_bytes(key).await.unwrap().unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        text
    }
}

async fn fixture(name: &str) -> Fixture {
    let (data, month) = loaded(name, 12, 6).await.unwrap();
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    let env = local_run::settle::local_function_env(&month.resources, "AdminApiFunction");
    let deps = Deps::load(&month.config, &env).await.unwrap();
    let clock = VirtualClock::at(utc("2026-12-30T23:00:00Z"));
    let overrides = [
        ("MOCK_LATENCY_MS", "0".to_owned()),
        ("MOCK_FAILURE_RATE", "0".to_owned()),
    ];
    let senders = local_run::send::pollers(&month.config, &month.resources, &overrides, &clock)
        .await
        .unwrap();
    Fixture {
        data,
        month,
        deps,
        clock,
        senders,
    }
}

/// Every bill of the data set under `catalog`, computed from the generated files (not from
/// what the stack stored): customer id → bill.
fn bills_under(data: &DataSet, catalog: &Catalog) -> HashMap<String, Bill> {
    let mut out = HashMap::new();
    for shard in &data.manifest.shards {
        let (customers_path, usage_path) = data.manifest.shard_paths(&data.path, shard);
        let (customers, _) = datagen::read_customers(&customers_path).unwrap();
        let bytes = std::fs::read(&usage_path).unwrap();
        let usage = parse_usage(&bytes, &shard.usage_file, catalog);
        for c in &customers {
            let records: Vec<_> = usage
                .records
                .iter()
                .filter(|r| r.customer_id == c.customer_id.as_str())
                .copied()
                .collect();
            if let Some(bill) = rate(catalog, data.manifest.cycle, c, &records).unwrap() {
                out.insert(c.customer_id.to_string(), bill);
            }
        }
    }
    out
}

/// The data set's catalog with every plan's monthly fee raised by 1,100 won, as version
/// `2026-t2`.
fn raised_catalog(data: &DataSet) -> Catalog {
    let text = std::fs::read_to_string(data.path.join(&data.manifest.catalog_file)).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["version"] = json!("2026-t2");
    for plan in doc["plans"].as_array_mut().unwrap() {
        let fee = plan["monthly_fee"].as_i64().unwrap();
        plan["monthly_fee"] = json!(fee + 1_100);
    }
    Catalog::from_json(&doc.to_string(), "test catalog").unwrap()
}

fn path(d: &Delivery) -> String {
    format!("/cycles/2026-11/bills/{}/corrections", d.customer_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credit_after_send_is_one_record_one_corrected_invoice_and_one_more_send_even_replayed() {
    let f = fixture("corrections-credit").await;
    // Sent: every delivery, once, on the last day of December (every send day has come).
    f.send_day(utc("2026-12-30T23:00:00Z")).await;
    let deliveries = f.deliveries().await;
    assert!(
        deliveries.iter().all(|d| d.state.as_str().starts_with("SENT_")),
        "{deliveries:?}"
    );
    let first = f.accepted().await;
    assert_eq!(first.len(), deliveries.len(), "{first:?}");

    // The largest bill is credited 5,000 won.
    let d = deliveries.iter().max_by_key(|d| d.total).unwrap().clone();
    let total = d.total.won();
    assert!(total > 5_000, "{total}");
    let t1 = utc("2026-12-31T00:30:00Z"); // 09:30 on the 31st in Seoul
    let credit = json!({
        "command_id": "corr-1", "reason": "데이터 요금 이중 청구 환불", "kind": "credit", "amount_won": 5_000
    });
    let r = f.post(&path(&d), credit.clone(), t1).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = &r.body["correction"];
    assert_eq!(
        (
            &c["seq"],
            &c["kind"],
            &c["amount_won"],
            &c["original_total"],
            &c["due_before"],
            &c["due_after"]
        ),
        (
            &json!(1),
            &json!("credit"),
            &json!(-5_000),
            &json!(total),
            &json!(total),
            &json!(total - 5_000)
        )
    );
    assert_eq!(c["actor"], ADMINISTRATOR);
    assert_eq!(
        (
            &r.body["delivery"]["state"],
            &r.body["delivery"]["send_round"],
            &r.body["delivery"]["new_round"]
        ),
        (&json!("READY"), &json!(1), &json!(true))
    );
    // The delivery is re-armed with the corrected invoice and the amount now due.
    let raw = f.raw(&d).await;
    let key = c["invoice_key"].as_str().unwrap();
    assert_eq!(raw["email_key"].as_s().unwrap(), key);
    assert_eq!(raw["total"].as_n().unwrap(), &(total - 5_000).to_string());
    assert_eq!(raw["state"].as_s().unwrap(), "READY");
    assert!(raw.contains_key("due_pk") && !raw.contains_key("provider_message_id"));
    assert!(raw["subject"].as_s().unwrap().contains("정정 청구서"));
    // One corrected invoice, an object of its own (the original stays in its shard's pack),
    // showing the original total, the correction and its reason, and the new amount due.
    let keys = f.invoice_keys(&d).await;
    assert_eq!(keys.len(), 1, "one corrected invoice: {keys:?}");
    assert!(
        !raw.contains_key("email_range"),
        "the correction's object is read whole"
    );
    assert!(
        f.month.bucket.get_invoice(&d.content).await.unwrap().is_some(),
        "the original is kept"
    );
    assert!(keys.iter().any(|k| k == key) && key.contains("-c0001-"), "{keys:?}");
    let html = f.invoice_text(key).await;
    let won = |n: i64| domain::Krw(n).to_string();
    for part in [
        won(total),
        "-5,000원".to_owned(),
        "데이터 요금 이중 청구 환불".to_owned(),
        won(total - 5_000),
    ] {
        assert!(html.contains(&part), "{part} in the corrected invoice");
    }
    // The original is untouched: the bill and its invoice.
    let bill = f
        .deps
        .corrections
        .bill(cycle(), d.shard, &d.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bill.total.won(), total);
    assert!(f.content_text(&d.content).await.contains(&won(total)));
    // The cycle reconciles with its adjustments.
    let cyc = f.get("/cycles/2026-11", t1).await;
    let money = &cyc.body["money"];
    let billed = money["billed_total"].as_i64().unwrap();
    assert_eq!(billed, cyc.body["checksum"].as_i64().unwrap());
    assert_eq!(
        (&money["adjustments"], &money["adjustments_total"], &money["net_total"]),
        (&json!(1), &json!(-5_000), &json!(billed - 5_000))
    );

    // Replayed: the first answer, nothing written.
    let again = f.post(&path(&d), credit.clone(), t1 + Duration::minutes(1)).await;
    assert_eq!(
        (again.status, &again.body["replayed"]),
        (200, &json!(true)),
        "{}",
        again.body
    );
    assert_eq!(again.body["correction"], r.body["correction"]);
    let listed = f.get(&path(&d), t1).await;
    assert_eq!(
        listed.body["corrections"].as_array().unwrap().len(),
        1,
        "{}",
        listed.body
    );
    assert_eq!(listed.body["amount_due"], json!(total - 5_000));
    assert_eq!(f.invoice_keys(&d).await.len(), 1);
    assert_eq!(
        f.get("/cycles/2026-11", t1).await.body["money"]["adjustments"],
        json!(1)
    );

    // Dispatch and the senders send it once more, and only it.
    f.send_day(t1).await;
    let after = f.accepted().await;
    let id = d.id();
    let mine: Vec<(&String, &u64)> = after.iter().filter(|(k, _)| k.starts_with(&format!("{id}#"))).collect();
    assert_eq!(mine.len(), 2, "round 0 and the corrected round 1: {mine:?}");
    assert!(mine.iter().all(|(_, n)| **n == 1), "{mine:?}");
    assert!(mine.iter().any(|(k, _)| k.ends_with("#r1")), "{mine:?}");
    assert_eq!(after.len(), first.len() + 1, "nothing else was sent again");
    let raw = f.raw(&d).await;
    assert!(raw["state"].as_s().unwrap().starts_with("SENT_"), "{raw:?}");
    assert_eq!(
        raw["email_key"].as_s().unwrap(),
        key,
        "the corrected invoice is what went out"
    );

    // Replayed after the send: still one correction, one object, one extra send.
    let late = f.post(&path(&d), credit, t1 + Duration::hours(3)).await;
    assert_eq!((late.status, &late.body["replayed"]), (200, &json!(true)));
    f.send_day(t1 + Duration::hours(3)).await;
    assert_eq!(f.accepted().await, after);
    assert_eq!(f.invoice_keys(&d).await.len(), 1);
    assert_eq!(
        f.get(&path(&d), t1).await.body["corrections"].as_array().unwrap().len(),
        1
    );

    // The command is audited on its correction.
    let audit = f.get("/commands/corr-1", t1).await;
    assert_eq!(
        (&audit.body["command"], &audit.body["who"], &audit.body["target"]),
        (&json!("correct"), &json!(ADMINISTRATOR), &json!(format!("{id}#c0001")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debits_rerates_roles_bad_bodies_and_refusals() {
    let f = fixture("corrections-kinds").await;
    let t1 = utc("2026-12-31T00:30:00Z");
    let deliveries = f.deliveries().await;
    assert!(
        deliveries.iter().all(|d| d.state.as_str() == "READY"),
        "rendered, not sent yet"
    );
    let (a, b, q) = (&deliveries[0], &deliveries[1], &deliveries[2]);

    // A debit of a delivery still waiting: its content is corrected in its round, no new round.
    let r = f
        .post(
            &path(a),
            json!({"command_id": "debit-1", "reason": "누락된 소액결제 청구", "kind": "debit", "amount_won": 2_000}),
            t1,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let total = a.total.won();
    assert_eq!(
        (&r.body["correction"]["amount_won"], &r.body["correction"]["due_after"]),
        (&json!(2_000), &json!(total + 2_000))
    );
    assert_eq!(
        (
            &r.body["delivery"]["state"],
            &r.body["delivery"]["new_round"],
            &r.body["delivery"]["send_round"]
        ),
        (&json!("READY"), &json!(false), &json!(0))
    );
    assert_eq!(f.raw(a).await["total"].as_n().unwrap(), &(total + 2_000).to_string());

    // A credit above what is due now is refused, naming the field and the amount due.
    let r = f
        .post(
            &path(a),
            json!({"command_id": "credit-big", "reason": "x", "kind": "credit", "amount_won": total + 2_001}),
            t1,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "credit-exceeds-due"), "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("amount_won"));
    // ... and the whole due is creditable.
    let r = f
        .post(
            &path(a),
            json!({"command_id": "credit-all", "reason": "서비스 장애 보상", "kind": "credit", "amount_won": total + 2_000}),
            t1,
        )
        .await;
    assert_eq!(
        (r.status, &r.body["correction"]["due_after"]),
        (200, &json!(0)),
        "{}",
        r.body
    );
    assert_eq!(r.body["correction"]["seq"], 2);
    let listed = f.get(&path(a), t1).await;
    assert_eq!(listed.body["corrections"].as_array().unwrap().len(), 2);
    let html = f
        .invoice_text(listed.body["corrections"][1]["invoice_key"].as_str().unwrap())
        .await;
    assert!(
        html.contains("누락된 소액결제 청구") && html.contains("서비스 장애 보상"),
        "every correction so far"
    );

    // A re-rating under another catalog version: the difference of the two ratings.
    let catalog = raised_catalog(&f.data);
    f.month.catalogs.publish(&catalog).await.unwrap();
    let v1 = integration_tests::expected_bills(&f.data).unwrap();
    let v2 = bills_under(&f.data, &catalog);
    let id = b.customer_id.as_str();
    let expected = v2[id].total.won() - v1[id].total.won();
    assert_ne!(expected, 0);
    let rerate = json!({"command_id": "rerate-1", "reason": "요금표 개정 소급 적용", "kind": "rerate", "catalog_version": "2026-t2"});
    let r = f.post(&path(b), rerate.clone(), t1).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = &r.body["correction"];
    assert_eq!(c["amount_won"], json!(expected), "{c}");
    assert_eq!(c["due_after"], json!(b.total.won() + expected));
    assert_eq!(c["catalog_version"], "2026-t2");
    let changed = c["changed_lines"].as_array().unwrap();
    assert!(!changed.is_empty(), "{c}");
    for l in changed {
        assert_ne!(l["old"], l["new"], "{l}");
    }
    // The same version again changes nothing more: refused.
    let r = f
        .post(
            &path(b),
            json!({"command_id": "rerate-2", "reason": "again", "kind": "rerate", "catalog_version": "2026-t2"}),
            t1,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "nothing-to-correct"), "{}", r.body);
    let r = f
        .post(
            &path(b),
            json!({"command_id": "rerate-3", "reason": "x", "kind": "rerate", "catalog_version": "2031-v9"}),
            t1,
        )
        .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (404, "unknown-catalog-version"),
        "{}",
        r.body
    );

    // Roles: an operator and a viewer may not correct; a viewer reads.
    for (who, role) in [(OPERATOR, "operator"), (VIEWER, "viewer")] {
        let principal = admin_api::identity::Principal::of(who).unwrap().arn;
        let body = json!({"command_id": format!("grant-{role}"), "reason": "corrections test", "role": role});
        let g = f
            .call_as(ADMINISTRATOR, "PUT", &format!("/roles/{principal}"), Some(body), t1)
            .await;
        assert_eq!(g.status, 200, "{}", g.body);
        let body = json!({"command_id": format!("by-{role}"), "reason": "x", "kind": "debit", "amount_won": 1});
        let r = f.call_as(who, "POST", &path(q), Some(body), t1).await;
        assert_eq!(r.status, 403, "{role}: {}", r.body);
    }
    let r = f.call_as(VIEWER, "GET", &path(b), None, t1).await;
    assert_eq!((r.status, &r.body["corrections"][0]["kind"]), (200, &json!("rerate")));

    // Bad bodies: 400 naming the field, never the value.
    for (body, code, field) in [
        (
            json!({"command_id": "bad-1", "reason": "x", "kind": "refund-me-now", "amount_won": 1}),
            "invalid-kind",
            "kind",
        ),
        (
            json!({"command_id": "bad-2", "reason": "x", "kind": "credit"}),
            "invalid-amount",
            "amount_won",
        ),
        (
            json!({"command_id": "bad-3", "reason": "x", "kind": "debit", "amount_won": 99_999_999}),
            "invalid-amount",
            "amount_won",
        ),
        (
            json!({"command_id": "bad-4", "reason": "x", "kind": "credit", "amount_won": "lots"}),
            "malformed-body",
            "amount_won",
        ),
        (
            json!({"command_id": "bad-5", "reason": "", "kind": "credit", "amount_won": 1}),
            "invalid-reason",
            "reason",
        ),
        (
            json!({"command_id": "bad-6", "reason": "x", "kind": "credit", "amount_won": 1, "iban": "DE00"}),
            "malformed-body",
            "iban",
        ),
    ] {
        let r = f.post(&path(q), body.clone(), t1).await;
        assert_eq!((r.status, error_code(&r)), (400, code), "{body}: {}", r.body);
        let m = r.body["error"]["message"].as_str().unwrap();
        assert!(m.contains(field), "{body}: {m}");
        assert!(
            !m.contains("refund-me-now") && !m.contains("99999999") && !m.contains("lots") && !m.contains("DE00"),
            "{m}"
        );
    }
    let r = f
        .post(
            "/cycles/2026-11/bills/C9999999/corrections",
            json!({"command_id": "nobody", "reason": "x", "kind": "debit", "amount_won": 1}),
            t1,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // A delivery on its way is refused until its send ends.
    let (pk, customer) = q
        .id()
        .rsplit_once('#')
        .map(|(p, c)| (p.to_owned(), c.to_owned()))
        .unwrap();
    adapters::dynamodb_client(&f.month.config)
        .update_item()
        .table_name(f.month.deliveries.table())
        .key("pk", AttributeValue::S(pk))
        .key("customer_id", AttributeValue::S(customer))
        .update_expression("SET #st = :q, queued_at = :t")
        .expression_attribute_names("#st", "state")
        .expression_attribute_values(":q", AttributeValue::S("QUEUED".into()))
        .expression_attribute_values(":t", AttributeValue::S("2026-12-29T23:00:00Z".into()))
        .send()
        .await
        .unwrap();
    let r = f
        .post(
            &path(q),
            json!({"command_id": "in-flight", "reason": "x", "kind": "debit", "amount_won": 1}),
            t1,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (409, "send-in-flight"), "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retry after the send completes")
    );
    assert_eq!(
        f.get(&path(q), t1).await.body["corrections"].as_array().unwrap().len(),
        0
    );
    assert_eq!(
        f.invoice_keys(q).await.len(),
        0,
        "nothing uploaded for a refused correction"
    );

    // Reconciliation: three corrections on the cycle, their sum, and the net.
    let money = f.get("/cycles/2026-11", t1).await.body["money"].clone();
    let sum = 2_000 - (total + 2_000) + expected;
    assert_eq!(
        (&money["adjustments"], &money["adjustments_total"]),
        (&json!(3), &json!(sum))
    );
    assert_eq!(
        money["net_total"].as_i64().unwrap(),
        money["billed_total"].as_i64().unwrap() + sum
    );
}
