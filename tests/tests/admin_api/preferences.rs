//! `PUT /customers/{customer}/preferences`: a customer's own slots, send day, channel and
//! contact data, set by an operator's role for the customer. A change before dispatch moves
//! the customer's waiting deliveries to the first allowed slot of the new send date (dispatch
//! takes them then, and not before); a delivery a sender has claimed is not touched and its
//! send completes as claimed; slots that leave none allowed are refused with nothing written;
//! the command is idempotent by its id, audited by field names, and contact data is sealed and
//! never shown.

use std::io::Write;
use std::sync::{Arc, Mutex};

use admin_api::{Caller, Request, serve};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use domain::Channel;
use domain::dispatch::SlotRun;
use integration_tests::admin::{
    ADMINISTRATOR, Api, DRAIN_LIMIT, OPERATOR, VIEWER, accepted_sends, drain_all, error_code,
};
use local_run::dispatch::{dispatch_deps, run_slot};
use local_run::send::{Poller, VirtualClock};
use serde_json::{Value, json};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn path(customer: &str) -> String {
    format!("/customers/{customer}/preferences")
}

/// The answer's line for the delivery `id`.
fn line<'a>(answer: &'a Value, id: &str) -> &'a Value {
    answer["deliveries"]
        .as_array()
        .and_then(|l| l.iter().find(|d| d["delivery_id"] == id))
        .unwrap_or_else(|| panic!("no line for {id}: {answer}"))
}

fn s<'a>(item: &'a std::collections::HashMap<String, AttributeValue>, name: &str) -> &'a str {
    item.get(name).and_then(|v| v.as_s().ok()).map_or("", String::as_str)
}

/// The customer's item as stored.
async fn customer_item(api: &Api, customer: &str) -> std::collections::HashMap<String, AttributeValue> {
    let stored = api.deps.customers.stored(customer).await.unwrap().unwrap().unwrap();
    stored.item
}

/// Whether the `Due` index lists the delivery `id` as due by `until`.
async fn due_by(api: &Api, id: &str, until: DateTime<Utc>) -> bool {
    let d = domain::DeliveryId::parse(id).unwrap();
    let bucket = domain::delivery::due_bucket(&d.customer);
    let page = api
        .deps
        .deliveries
        .due_page(d.cycle, bucket, until, 100, None)
        .await
        .unwrap();
    assert!(page.next.is_none(), "one page holds the bucket");
    page.entries.iter().any(|e| e.id() == id)
}

fn sends_of(sends: &std::collections::BTreeMap<String, u64>, id: &str) -> Vec<(String, u64)> {
    sends
        .iter()
        .filter(|(k, _)| k.starts_with(id))
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

#[tokio::test]
async fn a_change_before_dispatch_moves_the_delivery_and_dispatch_takes_it_in_its_new_slot() {
    let api = Api::new("prefs-move").await;
    assert_eq!(api.grant(OPERATOR, "operator", "g-op").await.status, 200);
    let (queued, queued_customer) = api.delivery(0); // QUEUED on SMS, its message on the queue
    let (ready, ready_customer) = api.delivery(1); // made READY below, prefers email
    api.make_ready(&ready).await;
    let now = at("2026-12-10T01:00:00Z"); // 10 December, 10:00 in Seoul

    // Send day 20, no disturbing 08:00-12:00, by SMS: with the quiet window 21:00-08:00 the
    // first allowed slot of 20 December is 12:00 (03:00 UTC).
    let body = json!({
        "command_id": "p-move", "reason": "customer called: ticket 5512",
        "send_day": 20, "dnd": [4, 5], "preferred_channel": "sms",
    });
    let r = api
        .call_as_at(OPERATOR, "PUT", &path(&ready_customer), Some(body), now)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["changed"], json!(["dnd", "send_day", "preferred_channel"]));
    let l = line(&r.body, &ready);
    assert_eq!(
        (
            &l["outcome"],
            &l["state"],
            &l["send_date"],
            &l["available_at"],
            &l["channel_applied"]
        ),
        (
            &json!("moved"),
            &json!("READY"),
            &json!("2026-12-20"),
            &json!("2026-12-20T03:00:00Z"),
            &json!(true)
        ),
        "{l}"
    );
    assert_eq!(l["previous"]["send_date"], "2026-12-15");
    let item = api.raw(&ready).await;
    assert_eq!(
        (
            s(&item, "state"),
            s(&item, "send_date"),
            s(&item, "available_at"),
            s(&item, "preferred_channel")
        ),
        ("READY", "2026-12-20", "2026-12-20T03:00:00Z", "sms")
    );
    let slots = |v: &[&str]| AttributeValue::L(v.iter().map(|n| AttributeValue::N((*n).into())).collect());
    assert_eq!(item["dnd"], slots(&["4", "5"]));
    // The Due index has it at 12:00 on the 20th, not a second before.
    assert!(due_by(&api, &ready, at("2026-12-20T03:00:00Z")).await);
    assert!(!due_by(&api, &ready, at("2026-12-20T02:59:59Z")).await);
    let customer = customer_item(&api, &ready_customer).await;
    assert_eq!(customer["send_day"], AttributeValue::N("20".into()));
    assert!(
        s(&customer, "preferences_updated_at").starts_with("2026-12-10T01:00:00"),
        "{customer:?}"
    );

    // The queued one goes back to READY at its new time; its message is now stale.
    let r = api
        .call_at(
            "PUT",
            &path(&queued_customer),
            Some(json!({"command_id": "p-queued", "reason": "customer called", "send_day": 20})),
            now,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let l = line(&r.body, &queued);
    assert_eq!(
        (&l["outcome"], &l["previous"]["state"], &l["state"], &l["available_at"]),
        (
            &json!("moved"),
            &json!("QUEUED"),
            &json!("READY"),
            &json!("2026-12-19T23:00:00Z")
        ),
        "08:00 on the 20th, the first slot outside the quiet window: {l}"
    );
    let item = api.raw(&queued).await;
    assert!(!item.contains_key("channel") && item.contains_key("due_pk"), "{item:?}");

    // On the old send date nothing of theirs goes: the stale message is dropped, dispatch
    // leaves them; the other customers' invoices go out.
    let clock = VirtualClock::at(at("2026-12-15T01:00:00Z"));
    let senders = api.senders(&clock).await;
    assert!(drain_all(&senders, DRAIN_LIMIT).await, "every message handled");
    let dispatch = dispatch_deps(&api.stack.config, &api.stack.resources).await.unwrap();
    run_slot(&dispatch, SlotRun::containing(at("2026-12-15T01:00:00Z")))
        .await
        .unwrap();
    assert_eq!(s(&api.raw(&queued).await, "state"), "READY");
    assert_eq!(s(&api.raw(&ready).await, "state"), "READY");
    let sends = accepted_sends(&api).await;
    assert!(
        sends_of(&sends, &queued).is_empty() && sends_of(&sends, &ready).is_empty(),
        "{sends:?}"
    );
    assert_eq!(sends.len(), 4, "the four others were sent: {sends:?}");

    // On the 20th: the 08:00 run takes the queued customer's; the 10:00 run (a DND slot) leaves
    // the other, the 12:00 run takes it, on SMS.
    run_slot(&dispatch, SlotRun::containing(at("2026-12-19T23:00:00Z")))
        .await
        .unwrap();
    assert_eq!(s(&api.raw(&queued).await, "state"), "QUEUED");
    assert_eq!(s(&api.raw(&ready).await, "state"), "READY");
    run_slot(&dispatch, SlotRun::containing(at("2026-12-20T01:00:00Z")))
        .await
        .unwrap();
    assert_eq!(s(&api.raw(&ready).await, "state"), "READY", "not in a DND slot");
    run_slot(&dispatch, SlotRun::containing(at("2026-12-20T03:00:00Z")))
        .await
        .unwrap();
    let item = api.raw(&ready).await;
    assert_eq!((s(&item, "state"), s(&item, "channel")), ("QUEUED", "sms"));
    clock.set(at("2026-12-20T03:00:00Z"));
    assert!(drain_all(&senders, DRAIN_LIMIT).await, "every message handled");
    assert_eq!(s(&api.raw(&ready).await, "state"), "SENT_SMS");
    assert!(s(&api.raw(&queued).await, "state").starts_with("SENT_"));
    let sends = accepted_sends(&api).await;
    assert_eq!(sends_of(&sends, &ready).len(), 1, "sent once: {sends:?}");
    assert_eq!(
        sends_of(&sends, &queued).iter().map(|(_, n)| n).sum::<u64>(),
        1,
        "sent once: {sends:?}"
    );
}

/// What the change made during a claim saw: its answer's status and body, and the claimed
/// delivery's item before and after it (one attribute a line).
type Seen = (u16, Value, String, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_after_the_claim_leaves_that_send_as_claimed() {
    let api = Api::new("prefs-claimed").await;
    let (id, customer) = api.delivery(2); // QUEUED on email
    let now = at("2026-12-15T01:00:00Z");
    let clock = VirtualClock::at(now);
    // A second instance of the API, for the change made while the sender holds the claim.
    let admin = Arc::new(admin_api::Deps::load(&api.stack.config, &api.env).await.unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();

    let mut email = local_run::send::sender_deps(
        &api.stack.config,
        &api.stack.resources,
        Channel::Email,
        &[
            ("MOCK_LATENCY_MS", "0".to_owned()),
            ("MOCK_FAILURE_RATE", "0".to_owned()),
        ],
    )
    .await
    .unwrap();
    email.clock = clock.clock();
    let (target, hook_customer, hook_seen, table) =
        (id.clone(), customer.clone(), seen.clone(), api.deps.deliveries.clone());
    email.crash = Some(Arc::new(move |delivery: &str, point: sender::CrashPoint| {
        if delivery != target || point != sender::CrashPoint::AfterClaim {
            return false;
        }
        // Claimed by this sender: the customer changes their preferences now.
        let (admin, customer, seen, table, target) = (
            admin.clone(),
            hook_customer.clone(),
            hook_seen.clone(),
            table.clone(),
            target.clone(),
        );
        // On a thread of its own, with a stack of its own: the admin handler's future runs
        // while the sender's (deep, in a debug build) is still on this thread's stack.
        let handle = tokio::runtime::Handle::current();
        let call = move || {
            handle.block_on(async move {
                let d = domain::DeliveryId::parse(&target).unwrap();
                let before = table.raw(d.cycle, d.shard, &d.customer).await.unwrap().unwrap();
                let req = Request {
                    method: "PUT".into(),
                    path: format!("/customers/{customer}/preferences"),
                    body: Some(
                        json!({"command_id": "p-claimed", "reason": "customer called", "send_day": 25, "dnd": [5]})
                            .to_string(),
                    ),
                    caller: Some(Caller {
                        arn: ADMINISTRATOR.into(),
                    }),
                    request_id: "test-request".into(),
                    ..Request::default()
                };
                let r = serve(&admin, &req, now).await;
                let after = table.raw(d.cycle, d.shard, &d.customer).await.unwrap().unwrap();
                let mut before: Vec<String> = before.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                let mut after: Vec<String> = after.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                before.sort();
                after.sort();
                seen.lock()
                    .unwrap()
                    .push((r.status, r.body, before.join("\n"), after.join("\n")));
            })
        };
        tokio::task::block_in_place(|| {
            std::thread::Builder::new()
                .stack_size(16 << 20)
                .spawn(call)
                .expect("a thread for the admin call")
                .join()
                .expect("the admin call does not panic")
        });
        false
    }));
    let mut sms = local_run::send::sender_deps(
        &api.stack.config,
        &api.stack.resources,
        Channel::Sms,
        &[
            ("MOCK_LATENCY_MS", "0".to_owned()),
            ("MOCK_FAILURE_RATE", "0".to_owned()),
        ],
    )
    .await
    .unwrap();
    sms.clock = clock.clock();
    let senders = [
        Poller::new(&api.stack.config, Arc::new(email)),
        Poller::new(&api.stack.config, Arc::new(sms)),
    ];
    assert!(drain_all(&senders, DRAIN_LIMIT).await, "every message handled");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "the change was made once, during the claim");
    let (status, answer, before, after) = &seen[0];
    assert_eq!(*status, 200, "{answer}");
    let l = line(answer, &id);
    assert_eq!(
        (&l["outcome"], &l["state"]),
        (&json!("not-changed"), &json!("SENDING")),
        "{l}"
    );
    assert!(l["note"].as_str().unwrap().contains("already claimed"), "{l}");
    assert_eq!(before, after, "the claimed delivery's item is untouched");
    // The send completed as claimed: on its old date, once; the customer has the new day.
    let item = api.raw(&id).await;
    assert_eq!((s(&item, "state"), s(&item, "send_date")), ("SENT_EMAIL", "2026-12-15"));
    assert_eq!(item["dnd"], AttributeValue::L(Vec::new()));
    let sends = accepted_sends(&api).await;
    assert_eq!(sends_of(&sends, &id), [(format!("{id}#email"), 1)], "{sends:?}");
    assert_eq!(
        customer_item(&api, &customer).await["send_day"],
        AttributeValue::N("25".into())
    );
}

/// The log lines written while it runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refusals_replays_and_sealed_contact_data() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let api = Api::new("prefs-rules").await;
    let (id, customer) = api.delivery(1);
    let (_, other) = api.delivery(3);
    api.make_ready(&id).await;
    let now = at("2026-12-10T01:00:00Z");
    let before_customer = customer_item(&api, &customer).await;
    let before_delivery = api.raw(&id).await;
    let cmd = |cid: &str, extra: Value| {
        let mut b = json!({"command_id": cid, "reason": "customer called: ticket 7781"});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };

    // A viewer may not; a role-less caller neither.
    assert_eq!(api.grant(VIEWER, "viewer", "g-viewer").await.status, 200);
    let r = api
        .call_as_at(
            VIEWER,
            "PUT",
            &path(&customer),
            Some(cmd("p-v", json!({"send_day": 3}))),
            now,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (403, "forbidden"), "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs the operator role"),
        "{}",
        r.body
    );

    // Slots that leave none allowed (08:00-20:00, the rest is the quiet window): 400 naming
    // dnd, quoting nothing sent; nothing written, nothing recorded.
    let r = api
        .call_at(
            "PUT",
            &path(&customer),
            Some(cmd("p-bad", json!({"dnd": [4, 5, 6, 7, 8, 9]}))),
            now,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "no-allowed-slot"), "{}", r.body);
    let m = r.body["error"]["message"].as_str().unwrap();
    assert!(
        m.starts_with("dnd leaves no allowed slot") && !m.contains("4, 5") && !m.contains("[4"),
        "{m}"
    );
    // Other refusals, each naming its field.
    let email = "lee.seoyeon.1992@example-mail.co.kr";
    let phone = "010-5555-1234";
    let name = "이서연";
    for (body, code, field) in [
        (
            cmd("p-bad", json!({"contact": {"email": "lee.seoyeon at example"}})),
            "invalid-contact",
            "contact.email",
        ),
        (
            cmd("p-bad", json!({"contact": {"phone": "5555-1234x"}})),
            "invalid-contact",
            "contact.phone",
        ),
        (
            cmd("p-bad", json!({"contact": {"name": " "}})),
            "invalid-contact",
            "contact.name",
        ),
        (cmd("p-bad", json!({"send_day": 32})), "malformed-body", "send_day"),
        (
            cmd("p-bad", json!({"preferred_channel": "fax"})),
            "malformed-body",
            "preferred_channel",
        ),
        (
            cmd("p-bad", json!({"contact": {"email": email, "fax": phone}})),
            "malformed-body",
            "contact",
        ),
        (cmd("p-bad", json!({})), "nothing-to-change", "send_day"),
        (
            json!({"command_id": "p-bad", "reason": phone, "send_day": 3}),
            "invalid-reason",
            "reason",
        ),
    ] {
        let r = api.call_at("PUT", &path(&customer), Some(body.clone()), now).await;
        assert_eq!((r.status, error_code(&r)), (400, code), "{body}: {}", r.body);
        let m = r.body["error"]["message"].as_str().unwrap();
        assert!(m.contains(field), "{body}: {m}");
        // The fragments placed (a bare "5555" could be part of a time or a hash).
        for v in ["lee.seoyeon", "5555-1234", "01055551234"] {
            assert!(!m.contains(v), "{m}");
        }
    }
    let r = api
        .call_at(
            "PUT",
            &path("C9999999"),
            Some(cmd("p-bad", json!({"send_day": 3}))),
            now,
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (404, "unknown-customer"), "{}", r.body);
    assert_eq!(api.get("/commands/p-bad").await.status, 404, "nothing recorded");
    assert_eq!(customer_item(&api, &customer).await, before_customer, "nothing written");
    assert_eq!(api.raw(&id).await, before_delivery, "nothing moved");

    // New contact data: sealed, opens to the new values, never shown.
    let body = cmd(
        "p-contact",
        json!({"contact": {"name": name, "email": email, "phone": phone}, "send_day": 15}),
    );
    let r = api.call_at("PUT", &path(&customer), Some(body.clone()), now).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["changed"],
        json!(["contact.name", "contact.email", "contact.phone"])
    );
    assert_eq!(
        line(&r.body, &id)["outcome"],
        "updated",
        "contact data is not on a delivery, only the new email's keyed hash"
    );
    let keyed = api
        .deps
        .keys
        .current()
        .await
        .lookup_hash(domain::pii::Field::Email, email);
    assert_eq!(
        api.raw(&id).await.get("email_hash").and_then(|v| v.as_s().ok()),
        Some(&keyed)
    );
    let stored = api.deps.customers.stored(&customer).await.unwrap().unwrap().unwrap();
    let keys = api.deps.keys.current().await;
    let open = stored
        .customer
        .contact
        .open(&keys, &stored.customer.customer_id)
        .unwrap();
    assert_eq!(
        (
            open.name.expose().as_str(),
            open.email.expose().as_str(),
            open.phone.expose().as_str()
        ),
        (name, email, phone)
    );
    let record = adapters::dynamodb_client(&api.stack.config)
        .get_item()
        .table_name(&api.env["ADMIN_TABLE"])
        .key("pk", AttributeValue::S("CMD#p-contact".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let audit = api.get("/commands/p-contact").await;
    assert_eq!(
        (&audit.body["command"], &audit.body["target"]),
        (&json!("set-preferences"), &json!(format!("customer:{customer}")))
    );
    for text in [
        r.body.to_string(),
        audit.body.to_string(),
        format!("{record:?}"),
        format!("{:?}", stored.item),
    ] {
        for v in [name, email, phone, "5555-1234", "01055551234"] {
            assert!(!text.contains(v), "a contact value in {text}");
        }
    }

    // Replayed by its id: the first answer, nothing written again; another body under it: 409.
    let again = api
        .call_at("PUT", &path(&customer), Some(body), at("2026-12-10T02:00:00Z"))
        .await;
    assert_eq!(
        (again.status, &again.body["replayed"]),
        (200, &json!(true)),
        "{}",
        again.body
    );
    assert_eq!(again.body["preferences_updated_at"], r.body["preferences_updated_at"]);
    assert_eq!(customer_item(&api, &customer).await, stored.item, "not written twice");
    let other_body = cmd("p-contact", json!({"contact": {"phone": "010-5555-9999"}}));
    let r = api.call_at("PUT", &path(&customer), Some(other_body), now).await;
    assert_eq!((r.status, error_code(&r)), (409, "command-id-reused"), "{}", r.body);

    // An operator may; the answer lists the customer's delivery.
    assert_eq!(api.grant(OPERATOR, "operator", "g-operator").await.status, 200);
    let r = api
        .call_as_at(
            OPERATOR,
            "PUT",
            &path(&other),
            Some(cmd("p-op", json!({"preferred_channel": "sms"}))),
            now,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["deliveries"].as_array().unwrap().len(), 1, "{}", r.body);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("preferences changed"), "the change is logged");
    for v in [
        name,
        email,
        phone,
        "5555-1234",
        "5555-9999",
        "01055551234",
        "01055559999",
        "lee.seoyeon",
    ] {
        assert!(!text.contains(v), "a contact value in the logs: {v}");
    }
}
