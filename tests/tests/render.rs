//! Rendering end to end: the settlement state machine settles and renders
//! every shard; invoices land in S3 under deterministic keys with the right
//! headers; every bill gets exactly one READY delivery; a re-render changes
//! nothing and never resets a delivery that moved on.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use adapters::cycles::CycleStatus;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use domain::delivery::{send_date, start_of_day};
use domain::pii::Keyring;
use domain::settlement::{FinishStatus, RenderResult, ShardTask};
use domain::{Cycle, Delivery, DeliveryState};
use integration_tests::setup::{loaded, rehost};
use integration_tests::{CYCLE, Month};
use lambda_runtime::LambdaEvent;
use local_aws::lambda::{FunctionError, Handler, Interceptor};
use local_run::settle::{RENDER, local_function_env};

fn cycle() -> Cycle {
    CYCLE.parse().unwrap()
}

async fn render_deps(month: &Month) -> render_shard::Deps {
    render_shard::Deps::load(&month.config, &local_function_env(&month.resources, RENDER))
        .await
        .unwrap()
}

fn task(shard: u32, expected_customers: u64, template_version: &str) -> ShardTask {
    ShardTask {
        cycle: cycle(),
        shard,
        catalog_version: "2026-v1".into(),
        template_version: template_version.into(),
        run_id: "test".into(),
        expected_customers,
    }
}

/// Gives the cycle to run `test` while it settles: RenderShard writes only for the run that
/// owns a cycle being settled (a settled month is never rendered again), as a run that took a
/// failed month over would.
async fn own_cycle(month: &Month) {
    adapters::dynamodb_client(&month.config)
        .update_item()
        .table_name(month.cycles.table())
        .key("cycle", AttributeValue::S(CYCLE.into()))
        .key("item", AttributeValue::S(adapters::cycles::CYCLE_ITEM.into()))
        .update_expression("SET #s = :s, run_id = :r")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", AttributeValue::S("SETTLING".into()))
        .expression_attribute_values(":r", AttributeValue::S("test".into()))
        .send()
        .await
        .unwrap();
}

/// An invocation with five minutes to go.
fn event(task: ShardTask) -> LambdaEvent<ShardTask> {
    LambdaEvent::new(task, local_run::invocation(Duration::from_secs(300)))
}

fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut out).unwrap();
    out
}

async fn set_state(month: &Month, d: &Delivery, state: DeliveryState) {
    adapters::dynamodb_client(&month.config)
        .update_item()
        .table_name(month.deliveries.table())
        .key(
            "pk",
            AttributeValue::S(adapters::deliveries::partition_key(d.cycle, d.shard)),
        )
        .key("customer_id", AttributeValue::S(d.customer_id.to_string()))
        .update_expression("SET #s = :s REMOVE due_pk")
        .expression_attribute_names("#s", "state")
        .expression_attribute_values(":s", AttributeValue::S(state.as_str().into()))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bill_gets_one_invoice_and_one_ready_delivery() {
    let (_data, month) = loaded("render-month", 500, 250).await.unwrap(); // 2 shards
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    let f = run.finish_output().unwrap();
    assert_eq!(f.status, FinishStatus::Settled, "{:?}", f.reasons);
    assert_eq!(
        month.host.invocations(&month.function(RENDER)),
        2,
        "one render per shard"
    );
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_eq!(record.template_version, "v1");

    let keys = Keyring::dev();
    let mut customers = HashMap::new();
    for s in 0..2 {
        for c in month.customers.shard(s).await.unwrap().customers {
            customers.insert(c.customer_id.to_string(), c);
        }
    }
    let mut deliveries = 0;
    for s in 0..2 {
        let bills = month.bills.shard(cycle(), s).await.unwrap();
        let ds = month.deliveries.shard(cycle(), s).await.unwrap();
        assert_eq!(ds.len(), bills.len(), "shard {s}: one delivery per bill");
        let shard_record = month.cycles.get_shard(cycle(), s).await.unwrap().unwrap();
        let render = shard_record.render.expect("render record");
        assert_eq!(
            (render.deliveries, render.created),
            (bills.len() as u64, bills.len() as u64)
        );
        assert_eq!(render.bills_digest, shard_record.digest);
        for (bill, d) in bills.iter().zip(&ds) {
            assert_eq!(d.customer_id, bill.customer_id);
            let c = &customers[bill.customer_id.as_str()];
            assert_eq!(d.state, DeliveryState::Ready);
            assert_eq!(d.send_date, send_date(cycle(), c.send_day));
            assert_eq!(d.available_at, start_of_day(d.send_date));
            assert_eq!(
                (d.dnd, d.preferred_channel, d.total),
                (c.dnd, c.preferred_channel, bill.total)
            );
            assert_eq!(d.content.template_version, "v1");
            // One pack per shard: every invoice of the render in one object, by range.
            assert_eq!(d.content.email_key, ds[0].content.email_key);
            let name = d
                .content
                .email_key
                .strip_prefix(&format!("invoices/2026-11/{s:05}/packs/v1-"));
            let name = name.and_then(|n| n.strip_suffix(".html")).expect("a pack key");
            assert!(
                name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit()),
                "{name}"
            );
            assert_eq!(d.content.content_hash.len(), 64);
            // The SMS text is the pack's member right after the invoice, not in the item.
            let (html, sms) = (d.content.email_range.unwrap(), d.content.sms_range.unwrap());
            assert_eq!(sms.start(), html.start() + html.len());
            assert!(d.content.sms_text.is_empty());
            assert_eq!((d.attempts_email, d.attempts_sms), (0, 0));
            deliveries += 1;
        }
        // The shard's one object: the members back to back, in customer order, named by the
        // hash of the bytes; no other invoice object.
        let pack = month
            .bucket
            .get_object(&ds[0].content.email_key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pack.content_type.as_deref(), Some("text/html; charset=utf-8"));
        assert_eq!(pack.content_encoding.as_deref(), Some("gzip"));
        let hash = adapters::data_bucket::sha256_hex(&pack.body);
        assert_eq!(pack.metadata.get("content-sha256"), Some(&hash));
        assert!(ds[0].content.email_key.ends_with(&format!("-{}.html", &hash[..16])));
        let mut next = 0;
        for d in &ds {
            for r in [d.content.email_range, d.content.sms_range] {
                let r = r.expect("a range in the pack");
                assert_eq!(r.start(), next, "{}: members back to back", d.customer_id);
                next = r.start() + r.len();
            }
        }
        assert_eq!(next, pack.body.len() as u64, "nothing but the members");
        assert_eq!(invoice_objects(&month, s).await, vec![ds[0].content.email_key.clone()]);
        assert_eq!(render.bytes_uploaded, next);
        // A few invoices in full, each read alone (a ranged GET): content, no personal data.
        for (bill, d) in bills.iter().zip(&ds).step_by(97) {
            let o = month.bucket.get_invoice(&d.content).await.unwrap().unwrap();
            assert_eq!(o.content_encoding.as_deref(), Some("gzip"));
            assert_eq!(Some(&o.body[..]), d.content.email_range.unwrap().slice(&pack.body));
            let html = gunzip(&o.body);
            assert_eq!(html.matches("<!DOCTYPE html>").count(), 1, "one member, one invoice");
            assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..40.min(html.len())]);
            let c = &customers[d.customer_id.as_str()];
            let contact = c.contact.open(&keys, &c.customer_id).unwrap();
            let view = invoice::InvoiceView::new(bill, &contact.name, &contact.phone);
            assert!(html.contains(&view.total), "the total due is on the invoice");
            assert!(
                html.contains(&view.customer_phone),
                "the masked phone is on the invoice"
            );
            let sms = month
                .bucket
                .get_member(&d.content.email_key, d.content.sms_range.unwrap())
                .await
                .unwrap()
                .unwrap();
            let sms = gunzip(&sms.body);
            assert!(
                sms.contains(invoice::LINK_PLACEHOLDER) && sms.contains(&view.total),
                "{sms}"
            );
            assert!(!sms.contains("<"), "the text, not the invoice");
            for secret in [&contact.name, &contact.email, &contact.phone] {
                assert!(
                    !html.contains(secret.expose().as_str()),
                    "{}: clear contact data",
                    d.customer_id
                );
                assert!(!sms.contains(secret.expose().as_str()));
                assert!(!d.content.subject.contains(secret.expose().as_str()));
            }
        }
    }
    assert_eq!(deliveries, f.bills);

    // An operator's link to one invoice of a pack: presigned for the longest SigV4 allows, with
    // the range among the signed headers (S3 refuses the signature of a request without it, so
    // the link never reads the rest of the pack), and, sent with it, the invoice alone.
    let d = &month.deliveries.shard(cycle(), 1).await.unwrap()[7];
    let range = d.content.email_range.unwrap();
    let url = month
        .bucket
        .presign_invoice(
            &d.content.email_key,
            Some(range),
            adapters::data_bucket::MAX_LINK_EXPIRY,
        )
        .await
        .unwrap();
    assert!(
        url.contains("X-Amz-Expires=604800") && url.contains("X-Amz-Signature="),
        "{url}"
    );
    assert!(url.contains("X-Amz-SignedHeaders=host%3Brange"), "{url}");
    let (status, head, body) = http_get(&url, Some(&range.http_header()));
    assert_eq!(status, 206, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-encoding: gzip"), "{head}");
    let stored = month.bucket.get_invoice(&d.content).await.unwrap().unwrap();
    assert_eq!(body, stored.body);
    assert!(gunzip(&body).contains("<!DOCTYPE html>"));
    let too_long = adapters::data_bucket::MAX_LINK_EXPIRY + Duration::from_secs(1);
    assert!(
        month
            .bucket
            .presign_invoice(&d.content.email_key, Some(range), too_long)
            .await
            .is_err()
    );
}

/// The invoice objects of a shard of the cycle.
async fn invoice_objects(month: &Month, shard: u32) -> Vec<String> {
    let out = adapters::s3_client(&month.config)
        .list_objects_v2()
        .bucket(month.bucket.bucket())
        .prefix(format!("invoices/2026-11/{shard:05}/"))
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// A plain HTTP/1.1 GET (loopback, no TLS), with a `Range` header if given: status, head and
/// body.
fn http_get(url: &str, range: Option<&str>) -> (u16, String, Vec<u8>) {
    use std::io::Write;
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let range = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\n{range}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = raw[end + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 4 + size..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerender_is_a_no_op_and_never_resets_a_delivery_that_moved_on() {
    let (_data, month) = loaded("render-again", 300, 300).await.unwrap(); // 1 shard
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    let before = month.deliveries.shard(cycle(), 0).await.unwrap();
    let n = before.len() as u64;

    // Operators and senders moved some deliveries on; one READY delivery was scheduled later.
    let moved = [
        (0, DeliveryState::Queued),
        (1, DeliveryState::Sending),
        (2, DeliveryState::SentEmail),
        (3, DeliveryState::SentSms),
        (4, DeliveryState::Dead),
    ];
    for (i, state) in moved {
        set_state(&month, &before[i], state).await;
    }
    let scheduled = &before[5];
    let later = "2026-12-24T01:00:00Z";
    adapters::dynamodb_client(&month.config)
        .update_item()
        .table_name(month.deliveries.table())
        .key("pk", AttributeValue::S(adapters::deliveries::partition_key(cycle(), 0)))
        .key("customer_id", AttributeValue::S(scheduled.customer_id.to_string()))
        .update_expression("SET available_at = :t")
        .expression_attribute_values(":t", AttributeValue::S(later.into()))
        .send()
        .await
        .unwrap();
    let object = month
        .bucket
        .get_object(&before[6].content.email_key)
        .await
        .unwrap()
        .unwrap();

    own_cycle(&month).await;
    let deps = render_deps(&month).await;
    let r: RenderResult = render_shard::handle(&deps, event(task(0, 300, "v1"))).await.unwrap();
    assert_eq!(
        (
            r.deliveries,
            r.created,
            r.updated,
            r.unchanged,
            r.kept,
            r.bytes_uploaded
        ),
        (n, 0, 0, n - 5, 5, 0),
        "{r:?}"
    );
    let after = month.deliveries.shard(cycle(), 0).await.unwrap();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(a.content, b.content, "delivery {i}: same keys, same hash");
        let want = moved
            .iter()
            .find(|(j, _)| *j == i)
            .map_or(DeliveryState::Ready, |(_, s)| *s);
        assert_eq!(a.state, want, "delivery {i}: state untouched");
        assert_eq!(a.updated_at, b.updated_at, "delivery {i}: not written");
    }
    assert_eq!(after[5].available_at.to_rfc3339(), "2026-12-24T01:00:00+00:00");
    assert_eq!(
        month
            .bucket
            .get_object(&before[6].content.email_key)
            .await
            .unwrap()
            .unwrap(),
        object,
        "the invoice object is untouched"
    );
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.run_id.as_str()),
        (CycleStatus::Settling, "test"),
        "the cycle as the re-render found it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_bill_rewrites_waiting_deliveries_only() {
    let (_data, month) = loaded("render-changed", 200, 200).await.unwrap(); // 1 shard
    assert_eq!(
        month.settle("settle-2026-11").await.unwrap().status,
        ExecutionStatus::Succeeded
    );
    let before = month.deliveries.shard(cycle(), 0).await.unwrap();
    // Bills 0 to 2 change (a corrected usage file re-settled, say); delivery 1 was already
    // sent, delivery 2 is held by an operator.
    let mut bills = month.bills.shard(cycle(), 0).await.unwrap();
    for b in bills.iter_mut().take(3) {
        b.lines[0].label = "정정된 요금제".into();
    }
    month.bills.put_all(&bills[..3]).await.unwrap();
    // As a settlement that wrote them would, the shard record names the new bills' digest:
    // rendering renders only the bills settled.
    adapters::dynamodb_client(&month.config)
        .update_item()
        .table_name(month.cycles.table())
        .key("cycle", AttributeValue::S(CYCLE.into()))
        .key("item", AttributeValue::S(adapters::cycles::shard_item(0)))
        .update_expression("SET digest = :d")
        .expression_attribute_values(":d", AttributeValue::S(adapters::bills::shard_digest(&bills)))
        .send()
        .await
        .unwrap();
    set_state(&month, &before[1], DeliveryState::SentEmail).await;
    set_state(&month, &before[2], DeliveryState::Held).await;
    let scheduled = "2026-12-20T03:00:00Z";
    adapters::dynamodb_client(&month.config)
        .update_item()
        .table_name(month.deliveries.table())
        .key("pk", AttributeValue::S(adapters::deliveries::partition_key(cycle(), 0)))
        .key("customer_id", AttributeValue::S(before[0].customer_id.to_string()))
        .update_expression("SET available_at = :t, attempts_email = :a")
        .expression_attribute_values(":t", AttributeValue::S(scheduled.into()))
        .expression_attribute_values(":a", AttributeValue::N("2".into()))
        .send()
        .await
        .unwrap();

    own_cycle(&month).await;
    let deps = render_deps(&month).await;
    let r = render_shard::handle(&deps, event(task(0, 200, "v1"))).await.unwrap();
    assert_eq!((r.created, r.updated, r.kept), (0, 2, 1), "{r:?}");
    assert!(r.bytes_uploaded > 0);
    let after = month.deliveries.shard(cycle(), 0).await.unwrap();
    // The READY one: new content in a new pack (the two changed invoices only), everything
    // else kept; the pack it pointed at is untouched (the others still point at it).
    assert_ne!(after[0].content.content_hash, before[0].content.content_hash);
    assert_ne!(after[0].content.email_key, before[0].content.email_key);
    assert_eq!(after[0].content.email_key, after[2].content.email_key);
    let new_pack = month
        .bucket
        .get_object(&after[0].content.email_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new_pack.body.len() as u64, r.bytes_uploaded);
    assert_eq!(
        invoice_objects(&month, 0).await.len(),
        2,
        "the first render's pack and this one"
    );
    assert_eq!(after[0].state, DeliveryState::Ready);
    assert_eq!(after[0].available_at.to_rfc3339(), "2026-12-20T03:00:00+00:00");
    assert_eq!(after[0].attempts_email, 2);
    let html = gunzip(&month.bucket.get_invoice(&after[0].content).await.unwrap().unwrap().body);
    assert!(html.contains("정정된 요금제"));
    // The sent one: untouched.
    assert_eq!(after[1].content, before[1].content);
    assert_eq!(after[1].state, DeliveryState::SentEmail);
    // The held one: the corrected invoice, still held.
    assert_ne!(after[2].content.content_hash, before[2].content.content_hash);
    assert_eq!(after[2].state, DeliveryState::Held);
    // The rest: unchanged.
    for i in 3..after.len() {
        assert_eq!(after[i], before[i]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_render_input_fails_the_shard_by_customer_id_and_writes_nothing() {
    let (_data, month) = loaded("render-bad", 200, 200).await.unwrap();
    // Render never runs in this settlement: the shard is settled, then rendered by hand.
    let interceptor: Interceptor = Arc::new(|_payload: serde_json::Value, _handler: Handler| {
        Box::pin(async { Err(FunctionError::new("StoreError", "injected: render unavailable")) })
    });
    month.host.intercept(&month.function(RENDER), interceptor).unwrap();
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Failed, "{run:?}");
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    if record.status == CycleStatus::Failed {
        assert!(
            record.reasons.iter().any(|r| r == "shard 0: invoices not rendered"),
            "{:?}",
            record.reasons
        );
    }
    assert_eq!(month.deliveries.count(cycle(), 0).await.unwrap(), 0);

    // An unknown template version is refused up front.
    own_cycle(&month).await;
    let deps = render_deps(&month).await;
    let e = render_shard::handle(&deps, event(task(0, 200, "v0")))
        .await
        .unwrap_err();
    assert!(matches!(e, render_shard::RenderError::Template(_)), "{e}");
    assert!(e.to_string().contains("\"v0\""), "{e}");

    // One customer's contact data was sealed for another customer: it does not open.
    let shard = month.customers.shard(0).await.unwrap().customers;
    let (victim, other) = (&shard[3], &shard[4]);
    let mut broken = victim.clone();
    broken.contact = other.contact.clone();
    month.customers.put_all(&[broken]).await.unwrap();
    let e = render_shard::handle(&deps, event(task(0, 200, "v1")))
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, render_shard::RenderError::BadInput { .. }), "{message}");
    assert!(message.contains(victim.customer_id.as_str()), "{message}");
    assert!(message.contains("contact data does not open"), "{message}");
    let keys = Keyring::dev();
    let contact = other.contact.open(&keys, &other.customer_id).unwrap();
    for secret in [&contact.name, &contact.email, &contact.phone] {
        assert!(
            !message.contains(secret.expose().as_str()),
            "no personal data in errors"
        );
    }
    assert_eq!(
        month.deliveries.count(cycle(), 0).await.unwrap(),
        0,
        "nothing is written before every invoice renders"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_paused_at_its_deadline_resumes_to_the_same_deliveries() {
    let (_data, month) = loaded("render-pause", 300, 300).await.unwrap();
    // Re-host RenderShard so that every invocation renders one chunk of 64 and pauses.
    let mut deps = render_deps(&month).await;
    deps.config.chunk = 64;
    deps.config.deadline_margin = Duration::from_secs(600);
    rehost(&month, RENDER, deps, |deps, ev| async move {
        render_shard::handle(&deps, ev).await
    })
    .await
    .unwrap();
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    let bills = month.bills.count(cycle(), 0).await.unwrap();
    // ⌈bills / 64⌉ invocations: each one uploaded a chunk, the last one finished.
    assert_eq!(
        month.host.invocations(&month.function(RENDER)),
        bills.div_ceil(64),
        "{:?}",
        month.host.all_invocations()
    );
    let ds = month.deliveries.shard(cycle(), 0).await.unwrap();
    assert_eq!(ds.len() as u64, bills);
    assert!(ds.iter().all(|d| d.state == DeliveryState::Ready));
    let render = month
        .cycles
        .get_shard(cycle(), 0)
        .await
        .unwrap()
        .unwrap()
        .render
        .unwrap();
    assert_eq!(render.deliveries, bills);
}
