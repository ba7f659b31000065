//! The adapters against the local emulator (moto server), with resources
//! provisioned from template.yaml.

use adapters::catalog_store::CatalogStore;
use adapters::customers::CustomerStore;
use adapters::data_bucket::DataBucket;
use adapters::deliveries::write::Written;
use adapters::dynamo::{BATCH_WRITE_LIMIT, batch_put};
use adapters::retry::Backoff;
use adapters::{PutOutcome, StoreError, dynamodb_client, s3_client};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput;
use billing::Catalog;
use chrono::NaiveDate;
use domain::pii::Keyring;
use domain::{Channel, Contact, Customer, CustomerId, Cycle, SendDay, SlotSet};

fn customer(i: u32, shard: u32) -> Customer {
    let id = CustomerId::new(format!("C{i:07}")).unwrap();
    Customer {
        contact: Contact::seal(&Keyring::dev(), &id, "김민수", "kim@example.com", "010-1234-5678"),
        customer_id: id,
        shard,
        plan: "5G_LITE".into(),
        addons: vec!["VCOLORING".into()],
        family: None,
        contract: None,
        soldier: None,
        welfare: None,
        premium_contract: None,
        wired: vec![],
        birthday: NaiveDate::from_ymd_opt(1990, 1, 1).unwrap(),
        joined_on: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
        cancelled_on: None,
        send_day: SendDay::new(15).unwrap(),
        dnd: SlotSet::EMPTY,
        preferred_channel: Channel::Email,
    }
}

async fn stores(name: &str) -> (local_aws::Stack, CustomerStore, CatalogStore, DataBucket) {
    let stack = local_aws::fresh_stack(name).await.expect("emulator and template");
    let ddb = dynamodb_client(&stack.config);
    let customers = CustomerStore::new(ddb.clone(), stack.env()["CUSTOMERS_TABLE"].clone());
    let catalog = CatalogStore::new(ddb, stack.env()["CATALOG_TABLE"].clone());
    let usage = DataBucket::new(s3_client(&stack.config), stack.env()["DATA_BUCKET"].clone());
    (stack, customers, catalog, usage)
}

#[tokio::test]
async fn customers_round_trip_by_shard_and_by_id() {
    let (_stack, store, _, _) = stores("customers-round-trip").await;
    // 60 customers over two shards: three batch requests, more than one page is not needed here.
    let all: Vec<Customer> = (1..=60).map(|i| customer(i, i % 2)).collect();
    let stats = store.put_all(&all).await.unwrap();
    assert_eq!(stats.items, 60);
    assert_eq!(stats.requests, 3);
    let shard1 = store.shard(1).await.unwrap();
    assert!(shard1.errors.is_empty());
    assert_eq!(shard1.customers.len(), 30);
    let ids: Vec<&str> = shard1.customers.iter().map(|c| c.customer_id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "sort key order");
    assert_eq!(shard1.customers[0], all[0]);
    let got = store.get("C0000042").await.unwrap().unwrap().unwrap();
    assert_eq!(got, all[41]);
    assert!(store.get("C9999999").await.unwrap().is_none());
    // Writing the same customers again replaces them: still 30.
    store.put_all(&all).await.unwrap();
    assert_eq!(store.shard(1).await.unwrap().customers.len(), 30);
}

#[tokio::test]
async fn conditional_create_is_an_outcome_not_an_error() {
    let (_stack, store, _, _) = stores("customers-conditional").await;
    let c = customer(7, 0);
    assert_eq!(store.put_new(&c).await.unwrap(), PutOutcome::Created);
    let mut changed = c.clone();
    changed.plan = "5G_PREMIUM".into();
    assert_eq!(store.put_new(&changed).await.unwrap(), PutOutcome::AlreadyExists);
    let stored = store.get("C0000007").await.unwrap().unwrap().unwrap();
    assert_eq!(stored.plan, "5G_LITE", "the losing write changed nothing");
}

#[tokio::test]
async fn corrupt_stored_customers_are_named_not_fatal() {
    let (stack, store, _, _) = stores("customers-corrupt").await;
    store.put_all(&[customer(1, 5), customer(2, 5)]).await.unwrap();
    // A record written by something else, with send day 32.
    dynamodb_client(&stack.config)
        .put_item()
        .table_name(store.table())
        .item("shard", AttributeValue::N("5".into()))
        .item("customer_id", AttributeValue::S("C0000003".into()))
        .item("send_day", AttributeValue::N("32".into()))
        .send()
        .await
        .unwrap();
    let shard = store.shard(5).await.unwrap();
    assert_eq!(shard.customers.len(), 2);
    assert_eq!(shard.errors.len(), 1);
    assert_eq!(shard.errors[0].customer_id, "C0000003");
    assert!(
        shard.errors[0].to_string().contains("stored record is invalid"),
        "{}",
        shard.errors[0]
    );
}

#[tokio::test]
async fn batch_writes_respect_the_25_item_limit() {
    let (stack, store, _, _) = stores("batch-limit").await;
    let items: Vec<_> = (0..(BATCH_WRITE_LIMIT * 3 + 1))
        .map(|i| serde_dynamo::to_item(customer(i as u32, 9)).unwrap())
        .collect();
    let stats = batch_put(
        &dynamodb_client(&stack.config),
        store.table(),
        items,
        2,
        Backoff::default(),
    )
    .await
    .unwrap();
    assert_eq!(stats.requests, 4, "76 items need four requests of at most 25");
    assert_eq!(store.shard(9).await.unwrap().customers.len(), 76);
}

#[tokio::test]
async fn errors_name_the_resource_and_classify() {
    let (stack, _, _, _) = stores("errors").await;
    let missing = CustomerStore::new(dynamodb_client(&stack.config), "no-such-table");
    let e = missing.shard(0).await.unwrap_err();
    assert!(e.to_string().contains("Query on no-such-table failed"), "{e}");
    assert!(!e.is_transient());
}

#[tokio::test]
async fn catalog_versions_are_immutable() {
    let (_stack, _, store, _) = stores("catalog").await;
    let cat = Catalog::default_catalog().unwrap();
    assert_eq!(store.publish(&cat).await.unwrap(), PutOutcome::Created);
    assert_eq!(store.publish(&cat).await.unwrap(), PutOutcome::AlreadyExists);
    let got = store.get(cat.version()).await.unwrap().unwrap();
    assert_eq!(got.digest(), cat.digest());
    assert!(store.get("1999-v9").await.unwrap().is_none());
    // The same version with other prices is refused.
    let mut doc = cat.doc().clone();
    doc.vat_percent = 11;
    let changed = Catalog::from_doc(doc, "changed").unwrap();
    let e = store.publish(&changed).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
    assert!(
        e.to_string().contains("already published with different content"),
        "{e}"
    );
    assert_eq!(store.get(cat.version()).await.unwrap().unwrap().doc().vat_percent, 10);
}

#[tokio::test]
async fn usage_files_by_cycle_and_shard() {
    let (_stack, _, _, store) = stores("usage").await;
    let cycle: Cycle = "2026-11".parse().unwrap();
    let csv = b"customer_id,product,quantity,amount\nC0000001,DATA,10,\n".to_vec();
    store.put(cycle, 3, csv.clone()).await.unwrap();
    store.put(cycle, 12, csv.clone()).await.unwrap();
    store.put(cycle.next(), 4, csv.clone()).await.unwrap();
    assert_eq!(store.get(cycle, 3).await.unwrap().unwrap(), csv);
    assert!(
        store.get(cycle, 4).await.unwrap().is_none(),
        "a missing file is None, not empty usage"
    );
    assert_eq!(store.shards(cycle).await.unwrap(), vec![3, 12]);
}

#[tokio::test]
async fn unprocessed_items_are_re_driven_until_stored() {
    let (_stack, store, _, _) = stores("batch-unprocessed").await;
    let emulator = local_aws::Emulator::shared().await.unwrap();
    // DynamoDB under throttling answers part of a batch as UnprocessedItems; the
    // emulator does so for the next three calls to this table.
    emulator.leave_unprocessed(store.table(), 3).await.unwrap();
    let all: Vec<Customer> = (1..=25).map(|i| customer(i, 4)).collect();
    let stats = store.put_all(&all).await.unwrap();
    // 25 → 13 stored, 12 back → 6 stored, 6 back → 3 stored, 3 back → 3 stored.
    assert_eq!((stats.items, stats.requests, stats.retries), (25, 4, 3));
    let stored = store.shard(4).await.unwrap();
    assert_eq!(stored.customers.len(), 25);
    assert_eq!(stored.customers, all);
}

#[tokio::test]
async fn items_still_unprocessed_after_every_retry_fail_the_call() {
    let (stack, store, _, _) = stores("batch-exhausted").await;
    let emulator = local_aws::Emulator::shared().await.unwrap();
    emulator.leave_unprocessed(store.table(), 100).await.unwrap();
    let items: Vec<_> = (1..=8)
        .map(|i| serde_dynamo::to_item(customer(i, 2)).unwrap())
        .collect();
    let quick = Backoff {
        base: std::time::Duration::from_millis(1),
        cap: std::time::Duration::from_millis(5),
        max_attempts: 3,
    };
    let e = batch_put(&dynamodb_client(&stack.config), store.table(), items, 1, quick)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Unprocessed {
                unprocessed: 1,
                attempts: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains(store.table()), "{e}");
    assert!(e.is_transient(), "a retry later may succeed");
}

/// A new queue of its own: the client, the queue's name and a `DeliveryQueue` on it.
async fn fresh_queue(name: &str) -> (aws_sdk_sqs::Client, String, adapters::queue::DeliveryQueue) {
    let emulator = local_aws::Emulator::shared().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&emulator.sdk_config().await);
    let name = local_aws::unique_prefix(name);
    let created = sqs.create_queue().queue_name(&name).send().await.unwrap();
    let queue = adapters::queue::DeliveryQueue::new(sqs.clone(), created.queue_url.unwrap());
    (sqs, name, queue)
}

fn messages(n: usize) -> Vec<domain::delivery::DeliveryMessage> {
    (0..n)
        .map(|i| domain::delivery::DeliveryMessage {
            delivery_id: format!("2026-11#00001#C{i:07}"),
            channel: Channel::Email,
            run_id: "run-1".into(),
            copies: 0,
        })
        .collect()
}

/// One receive of up to ten messages from the queue at `url`.
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> ReceiveMessageOutput {
    let request = sqs.receive_message().queue_url(url).max_number_of_messages(10);
    request.send().await.unwrap()
}

/// A new queue of its own (as [`fresh_queue`]) whose next `calls` batch sends the emulator
/// accepts only in part (`Emulator::fail_send_batch`); the failures are the sender's fault
/// when `sender_fault`.
async fn failing_queue(
    name: &str,
    calls: u32,
    sender_fault: bool,
) -> (aws_sdk_sqs::Client, String, adapters::queue::DeliveryQueue) {
    let (sqs, name, queue) = fresh_queue(name).await;
    let emulator = local_aws::Emulator::shared().await.unwrap();
    emulator.fail_send_batch(&name, calls, sender_fault).await.unwrap();
    (sqs, name, queue)
}

/// The delivery ids of every message on the queue, sorted: `expected` of them are awaited
/// (a bounded number of receives), then one more receive must find nothing.
async fn received(sqs: &aws_sdk_sqs::Client, url: &str, expected: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..20 {
        if seen.len() >= expected {
            break;
        }
        for m in receive(sqs, url).await.messages.unwrap_or_default() {
            let body: domain::delivery::DeliveryMessage = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
            seen.push(body.delivery_id);
        }
    }
    let extra = receive(sqs, url).await;
    assert!(extra.messages.unwrap_or_default().is_empty(), "nothing beyond {seen:?}");
    seen.sort();
    seen
}

#[tokio::test]
async fn failed_batch_entries_are_sent_again() {
    // SQS may accept part of a batch; the emulator does so for the next two calls to this queue.
    let (sqs, name, queue) = failing_queue("queue-partial", 2, false).await;
    let emulator = local_aws::Emulator::shared().await.unwrap();
    let messages = messages(10);
    let out = queue.send_batch(&messages).await.unwrap();
    // 10 → 5 sent, 5 back → 3 sent, 2 back → 2 sent.
    assert_eq!((out.sent, out.requests), (10, 3));
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let counts = emulator.request_counts(&name).await.unwrap();
    assert_eq!(counts.get("sqs:SendMessageBatch"), Some(&3));
    let want: Vec<String> = messages.iter().map(|m| m.delivery_id.clone()).collect();
    assert_eq!(received(&sqs, queue.url(), 10).await, want, "every message once");
}

#[tokio::test]
async fn entries_failing_every_attempt_are_returned_by_id() {
    let (sqs, _, mut queue) = failing_queue("queue-exhausted", 100, false).await;
    queue.backoff = Backoff {
        base: std::time::Duration::from_millis(1),
        cap: std::time::Duration::from_millis(5),
        max_attempts: 5,
    };
    let messages = messages(10);
    let out = queue.send_batch(&messages).await.unwrap();
    // 10 → 5 sent, 5 → 3 sent, 2 → 1 sent, then the last one fails alone twice.
    assert_eq!((out.sent, out.failed.len(), out.requests), (9, 1, 5));
    let (failed_id, why) = &out.failed[0];
    assert!(why.contains("InternalError"), "{why}");
    let mut want: Vec<String> = messages.iter().map(|m| m.delivery_id.clone()).collect();
    assert!(want.contains(failed_id), "{failed_id}");
    want.retain(|id| id != failed_id);
    assert_eq!(
        received(&sqs, queue.url(), 9).await,
        want,
        "the failed one is not on the queue"
    );
}

#[tokio::test]
async fn sender_faults_are_reported_at_once_not_retried() {
    let (sqs, _, queue) = failing_queue("queue-sender-fault", 1, true).await;
    let messages = messages(10);
    let out = queue.send_batch(&messages).await.unwrap();
    assert_eq!((out.sent, out.failed.len(), out.requests), (5, 5, 1));
    let all: Vec<String> = messages.iter().map(|m| m.delivery_id.clone()).collect();
    for (id, why) in &out.failed {
        assert!(all.contains(id), "{id}");
        assert!(why.contains("InvalidParameterValue"), "{why}");
    }
    let mut want = all.clone();
    want.retain(|id| !out.failed.iter().any(|(f, _)| f == id));
    assert_eq!(received(&sqs, queue.url(), 5).await, want);
}

#[tokio::test]
async fn queries_are_read_to_their_last_page() {
    let (stack, store, _, _) = stores("query-pages").await;
    let all: Vec<Customer> = (1..=230).map(|i| customer(i, 3)).collect();
    store.put_all(&all).await.unwrap();
    // The emulator does not cut pages at 1 MB as DynamoDB does, so pages are forced
    // with Limit: every store reads through this helper.
    let req = dynamodb_client(&stack.config)
        .query()
        .table_name(store.table())
        .key_condition_expression("shard = :s")
        .expression_attribute_values(":s", AttributeValue::N("3".into()))
        .limit(25);
    let result = adapters::dynamo::query_all(req, store.table()).await.unwrap();
    assert!(result.pages >= 10, "read in {} pages", result.pages);
    assert_eq!(result.items.len(), 230);
    assert_eq!(result.count, 230);
    let ids: Vec<String> = result
        .items
        .iter()
        .map(|i| i["customer_id"].as_s().unwrap().clone())
        .collect();
    let want: Vec<String> = all.iter().map(|c| c.customer_id.to_string()).collect();
    assert_eq!(ids, want, "every item once, in key order");
}

fn delivery(cycle: Cycle, shard: u32, i: u32, send_day: u32) -> domain::Delivery {
    let content = domain::DeliveryContent {
        email_range: None,
        template_version: "v1".into(),
        content_hash: format!("{i:064}"),
        email_key: format!("invoices/{cycle}/{shard:05}/C{i:07}/v1.html"),
        subject: "subject".into(),
        sms_text: "text".into(),
        sms_range: None,
    };
    domain::Delivery::ready(
        cycle,
        shard,
        CustomerId::new(format!("C{i:07}")).unwrap(),
        SendDay::new(send_day).unwrap(),
        SlotSet::EMPTY.with(domain::Slot::new(3).unwrap()),
        if i.is_multiple_of(3) {
            Channel::Sms
        } else {
            Channel::Email
        },
        domain::Krw(10_000 + i64::from(i)),
        content,
        chrono::Utc::now(),
    )
}

/// Every entry of the `Due` index of `cycle` due by `until`, over all buckets.
async fn all_due(
    store: &adapters::deliveries::DeliveryStore,
    cycle: Cycle,
    until: chrono::DateTime<chrono::Utc>,
) -> Vec<adapters::deliveries::DueEntry> {
    let mut out = Vec::new();
    for bucket in 0..domain::delivery::DUE_BUCKETS {
        let mut start = None;
        loop {
            let page = store.due_page(cycle, bucket, until, 7, start).await.unwrap();
            assert!(page.bad.is_empty(), "{:?}", page.bad);
            out.extend(page.entries);
            start = page.next;
            if start.is_none() {
                break;
            }
        }
    }
    out.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
    out
}

#[tokio::test]
async fn the_due_index_holds_what_dispatch_may_take_and_transitions_are_exclusive() {
    use adapters::deliveries::DeliveryStore;
    use chrono::{Duration, TimeZone, Utc};
    use domain::DeliveryState;
    let stack = local_aws::fresh_stack("deliveries-due").await.unwrap();
    let store = DeliveryStore::new(dynamodb_client(&stack.config), stack.env()["DELIVERIES_TABLE"].clone());
    let cycle = Cycle::new(2026, 11).unwrap();
    // 40 deliveries due on 10 December, 20 on the 20th.
    for i in 0..60 {
        let d = delivery(cycle, i % 2, i, if i < 40 { 10 } else { 20 });
        assert_eq!(store.create(&d).await.unwrap(), PutOutcome::Created);
    }
    let dec10 = Utc.with_ymd_and_hms(2026, 12, 10, 1, 0, 0).unwrap(); // 10:00 Seoul
    let due = all_due(&store, cycle, dec10).await;
    assert_eq!(due.len(), 40, "only those whose send date has come");
    let first = &due[0];
    assert!(!first.in_flight());
    assert_eq!(first.dnd, SlotSet::EMPTY.with(domain::Slot::new(3).unwrap()));
    assert_eq!(first.available_at, Utc.with_ymd_and_hms(2026, 12, 9, 15, 0, 0).unwrap());
    assert_eq!(all_due(&store, cycle, dec10 + Duration::days(10)).await.len(), 60);

    // Two runs race for the same delivery: exactly one enqueues it.
    let recheck = dec10 + Duration::hours(2);
    let (a, b) = tokio::join!(
        store.mark_queued(first, Channel::Email, "run-a", "run-a/n1", dec10, recheck),
        store.mark_queued(first, Channel::Email, "run-b", "run-b/n2", dec10, recheck)
    );
    assert!(a.is_applied() ^ b.is_applied(), "one winner");
    let queued = store
        .get(cycle, first.shard, &first.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queued.state, DeliveryState::Queued);
    // Queued: out of this slot's view, back in view (as QUEUED) once its re-check time passes.
    assert_eq!(all_due(&store, cycle, dec10).await.len(), 39);
    let stale: Vec<_> = all_due(&store, cycle, recheck)
        .await
        .into_iter()
        .filter(|e| e.in_flight())
        .collect();
    assert_eq!(stale.len(), 1);
    assert!(stale[0].queued_at.is_some());
    // Re-enqueued by a later run: conditioned on the queued_at it read.
    let later = recheck + Duration::hours(2);
    assert!(
        store
            .mark_queued(&stale[0], Channel::Email, "run-c", "run-c/n3", recheck, later)
            .await
            .is_applied()
    );
    assert!(
        !store
            .mark_queued(&stale[0], Channel::Email, "run-d", "run-d/n4", recheck, later)
            .await
            .is_applied()
    );
    // Reverted (the message could not be sent): READY again, only by the run that holds it.
    assert!(
        !store
            .revert_queued(first, "run-x/n5", first.available_at, dec10)
            .await
            .is_applied()
    );
    assert!(
        store
            .revert_queued(first, "run-c/n3", first.available_at, dec10)
            .await
            .is_applied()
    );
    assert_eq!(all_due(&store, cycle, dec10).await.len(), 40);
}

#[tokio::test]
async fn a_batch_of_messages_carries_ids_only_and_reports_what_failed() {
    use adapters::queue::SEND_BATCH_LIMIT;
    use domain::delivery::DeliveryMessage;
    let (sqs, _, queue) = fresh_queue("queue-batch").await;
    let url = queue.url().to_owned();
    let messages = messages(SEND_BATCH_LIMIT);
    let out = queue.send_batch(&messages).await.unwrap();
    assert_eq!((out.sent, out.failed.len(), out.requests), (10, 0, 1));
    let mut seen = Vec::new();
    for _ in 0..10 {
        for m in receive(&sqs, &url).await.messages.unwrap_or_default() {
            let body: DeliveryMessage = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
            seen.push(body.delivery_id);
        }
        if seen.len() == 10 {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, messages.iter().map(|m| m.delivery_id.clone()).collect::<Vec<_>>());
    // Eleven is more than SQS takes in one batch: refused, nothing sent.
    let eleven: Vec<DeliveryMessage> = messages.iter().cloned().chain(messages.first().cloned()).collect();
    assert!(queue.send_batch(&eleven).await.is_err());
}

#[tokio::test]
async fn claims_are_exclusive_leases_expire_and_only_the_claimant_completes() {
    use adapters::deliveries::DeliveryStore;
    use adapters::deliveries::claims::{ClaimKey, ClaimOutcome, GiveBack};
    use chrono::{Duration, TimeZone, Utc};
    use domain::{DeliveryId, DeliveryState};
    let stack = local_aws::fresh_stack("deliveries-claims").await.unwrap();
    let store = DeliveryStore::new(dynamodb_client(&stack.config), stack.env()["DELIVERIES_TABLE"].clone());
    let cycle = Cycle::new(2026, 11).unwrap();
    let dec10 = Utc.with_ymd_and_hms(2026, 12, 10, 1, 0, 0).unwrap();
    let mut queued = Vec::new();
    for i in 0..6 {
        let d = delivery(cycle, 0, i, 10);
        store.create(&d).await.unwrap();
        let due = all_due(&store, cycle, dec10).await;
        let e = due.iter().find(|e| e.customer_id == d.customer_id).unwrap().clone();
        assert!(
            store
                .mark_queued(&e, Channel::Email, "run", "run/n", dec10, dec10 + Duration::hours(3))
                .await
                .is_applied()
        );
        queued.push(d);
    }
    let key = |d: &domain::Delivery, channel: Channel| ClaimKey {
        id: DeliveryId::new(cycle, d.shard, d.customer_id.clone()),
        channel,
    };
    let state = |d: &domain::Delivery| {
        let store = store.clone();
        let id = d.customer_id.clone();
        async move { store.get(cycle, 0, &id).await.unwrap().unwrap() }
    };
    let in_index = |d: &domain::Delivery, until| {
        let store = store.clone();
        let id = d.customer_id.clone();
        async move { all_due(&store, cycle, until).await.iter().any(|e| e.customer_id == id) }
    };
    let (now, lease) = (dec10, dec10 + Duration::minutes(5));
    // The re-check time the deliveries were queued with (dispatch's slot + 3 h).
    let recheck = dec10 + Duration::hours(3);

    // Two senders race: one claims, the other finds it busy (read from the refused write).
    let k0 = key(&queued[0], Channel::Email);
    let (a, b) = tokio::join!(store.claim(&k0, "a", lease, now), store.claim(&k0, "b", lease, now));
    let (a, b) = (a.unwrap(), b.unwrap());
    let (winner, loser) = if matches!(a, ClaimOutcome::Claimed(_)) {
        ("a", b)
    } else {
        ("b", a)
    };
    assert!(matches!(loser, ClaimOutcome::Busy { .. }), "{loser:?}");
    // Claimed: in the due index only from its re-check time on, long after the lease.
    assert!(!in_index(&queued[0], lease).await);
    assert!(
        in_index(&queued[0], recheck).await,
        "a claimed delivery is found again after its lease"
    );
    // Only the claimant completes; then it is out of the index and a duplicate finds it sent.
    assert!(matches!(
        store.complete(&k0, "someone-else", "m-x", now).await,
        Written::Refused(Some(_))
    ));
    assert!(store.complete(&k0, winner, "m-1", now).await.is_applied());
    let sent = state(&queued[0]).await;
    assert_eq!((sent.state, sent.attempts_email), (DeliveryState::SentEmail, 1));
    assert!(
        !in_index(&queued[0], recheck + Duration::days(30)).await,
        "a sent delivery leaves the index"
    );
    assert_eq!(
        store.claim(&k0, "c", lease, now).await.unwrap(),
        ClaimOutcome::AlreadySent(DeliveryState::SentEmail)
    );
    // The same completion again (a retry of a write whose answer was lost) is ours: applied.
    assert!(store.complete(&k0, winner, "m-1", now).await.is_applied());

    // A sender that died after marking its provider call: its lease expires, another takes
    // over and learns that a call may have reached the provider; the dead one cannot complete.
    let k1 = key(&queued[1], Channel::Email);
    assert!(matches!(
        store.claim(&k1, "dead", lease, now).await.unwrap(),
        ClaimOutcome::Claimed(ref c) if !c.earlier_call
    ));
    assert!(store.call_started(&k1, "dead", now).await.is_applied());
    let later = lease + Duration::seconds(1);
    match store
        .claim(&k1, "heir", later + Duration::minutes(5), later)
        .await
        .unwrap()
    {
        ClaimOutcome::Claimed(c) => assert_eq!((c.claims, c.earlier_call, c.delivery.attempts_email), (2, true, 0)),
        other => panic!("{other:?}"),
    }
    assert!(!store.complete(&k1, "dead", "m-2", later).await.is_applied());
    // The heir cannot ask the provider: UNCONFIRMED, out of the index, for an operator.
    assert!(
        store
            .give_back(&k1, "heir", GiveBack::Unconfirmed, "earlier-call-unknown", later, later)
            .await
            .is_applied()
    );
    let d = state(&queued[1]).await;
    assert_eq!((d.state, d.attempts_email), (DeliveryState::Unconfirmed, 0));
    assert!(!in_index(&queued[1], recheck + Duration::days(30)).await);

    // Give back: retry (attempt counted, back in the index at its re-check time), then fall
    // back to SMS; an email message is then stale, an SMS one claims it; finally dead.
    let k2 = key(&queued[2], Channel::Email);
    assert!(matches!(
        store.claim(&k2, "s", lease, now).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    let retry_check = now + Duration::hours(4);
    assert!(
        store
            .give_back(&k2, "s", GiveBack::Retry, "MockTransient", retry_check, now)
            .await
            .is_applied()
    );
    assert!(!in_index(&queued[2], retry_check - Duration::seconds(1)).await);
    assert!(
        in_index(&queued[2], retry_check).await,
        "a retried delivery is never lost to the index"
    );
    assert!(matches!(
        store.claim(&k2, "s2", lease, now).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    assert!(
        !store
            .give_back(&k2, "s", GiveBack::Retry, "late", retry_check, now)
            .await
            .is_applied(),
        "lost claim"
    );
    assert!(
        store
            .give_back(&k2, "s2", GiveBack::FallBackToSms, "MockTransient", retry_check, now)
            .await
            .is_applied()
    );
    let d = state(&queued[2]).await;
    assert_eq!(
        (d.state, d.attempts_email, d.attempts_sms),
        (DeliveryState::Queued, 2, 0)
    );
    assert!(in_index(&queued[2], retry_check).await);
    assert!(matches!(
        store.claim(&k2, "s3", lease, now).await.unwrap(),
        ClaimOutcome::NotClaimable { channel: Some(ref c), .. } if c == "sms"
    ));
    let k2s = key(&queued[2], Channel::Sms);
    assert!(matches!(
        store.claim(&k2s, "t", lease, now).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    assert!(
        store
            .give_back(&k2s, "t", GiveBack::Dead, "MockPermanent", now, now)
            .await
            .is_applied()
    );
    let d = state(&queued[2]).await;
    assert_eq!((d.state, d.attempts_sms), (DeliveryState::Dead, 1));
    assert!(!in_index(&queued[2], recheck + Duration::days(30)).await);

    // A claimed delivery released untouched (no attempt, back in the index), then deferred
    // by its next claimant.
    let k4 = key(&queued[4], Channel::Email);
    assert!(matches!(
        store.claim(&k4, "r", lease, now).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    assert!(!store.release(&k4, "other", retry_check, now).await.is_applied());
    assert!(store.release(&k4, "r", retry_check, now).await.is_applied());
    assert!(in_index(&queued[4], retry_check).await);
    match store.claim(&k4, "r2", lease, now).await.unwrap() {
        ClaimOutcome::Claimed(c) => assert_eq!((c.claims, c.delivery.attempts_email), (2, 0)),
        other => panic!("{other:?}"),
    }
    let at = dec10 + Duration::hours(8);
    assert!(
        !store.defer_claimed(&k4, "r", at, now).await.is_applied(),
        "not the claimant"
    );
    assert!(store.defer_claimed(&k4, "r2", at, now).await.is_applied());
    let d = state(&queued[4]).await;
    assert_eq!((d.state, d.available_at), (DeliveryState::Ready, at));
    assert!(!in_index(&queued[4], at - Duration::seconds(1)).await);
    assert!(in_index(&queued[4], at).await, "deferred deliveries are due again");

    // A SENDING delivery whose sender died and whose message is gone: dispatch takes it
    // back after its re-check time, not while the lease is live.
    let k5 = key(&queued[5], Channel::Email);
    assert!(matches!(
        store.claim(&k5, "gone", lease, now).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    let entry = all_due(&store, cycle, recheck)
        .await
        .into_iter()
        .find(|e| e.customer_id == queued[5].customer_id)
        .unwrap();
    // The index does not know it is SENDING (the claim wrote nothing there): on its way.
    assert!(entry.in_flight());
    assert!(
        !store
            .mark_queued(
                &entry,
                Channel::Email,
                "early",
                "early/n",
                now,
                recheck + Duration::hours(3)
            )
            .await
            .is_applied(),
        "the lease is live"
    );
    assert!(
        store
            .mark_queued(
                &entry,
                Channel::Email,
                "run-2",
                "run-2/n",
                recheck,
                recheck + Duration::hours(3)
            )
            .await
            .is_applied()
    );
    assert_eq!(state(&queued[5]).await.state, DeliveryState::Queued);
    assert!(matches!(
        store.claim(&k5, "next", recheck + Duration::minutes(5), recheck).await.unwrap(),
        ClaimOutcome::Claimed(ref c) if c.claims == 2
    ));

    // Unknown delivery.
    let gk = ClaimKey {
        id: DeliveryId::new(cycle, 0, CustomerId::new("C9999999").unwrap()),
        channel: Channel::Email,
    };
    assert_eq!(store.claim(&gk, "x", lease, now).await.unwrap(), ClaimOutcome::Missing);
}

/// A failure with a quarter-megabyte reason (a provider's error page), code, run id and replay
/// body: recorded, every text cut to its limit, the record far below DynamoDB's 400 KB; the
/// subject as given finds it.
#[tokio::test]
async fn a_failure_with_a_quarter_megabyte_reason_is_recorded_bounded() {
    use adapters::failures::{
        FailureLog, FailureStage, MAX_CODE_BYTES, MAX_REASON_BYTES, MAX_RUN_ID_BYTES, MAX_SUBJECT_BYTES, NewFailure,
    };
    let stack = local_aws::fresh_stack("failures-bounded")
        .await
        .expect("emulator and template");
    let log = FailureLog::new(dynamodb_client(&stack.config), stack.env()["FAILURES_TABLE"].clone());
    let cycle: Cycle = "2026-11".parse().unwrap();
    let huge = "오류 ".repeat(250 * 1024 / 7); // 250 KB of 3- and 1-byte characters
    assert!(huge.len() > 250_000);
    let subject = format!("2026-11#00003#C0000042#{}", "z".repeat(2_000));
    let f = NewFailure {
        cycle: Some(cycle),
        subject: subject.clone(),
        stage: FailureStage::Email,
        code: huge.clone(),
        reason: huge.clone(),
        channel: Some(Channel::Email),
        attempts: 3,
        run_id: Some(huge.clone()),
        replay: Some(huge.clone()),
    };
    let now = chrono::Utc::now();
    log.record(&f, now).await.expect("recorded, not refused for its size");
    log.record(&f, now).await.expect("and again: the same record");

    let r = log
        .get(Some(cycle), &subject, FailureStage::Email)
        .await
        .unwrap()
        .expect("found under the subject as given");
    assert_eq!(r.occurrences, 2);
    assert!(r.subject.len() <= MAX_SUBJECT_BYTES && r.subject.starts_with("2026-11#00003#C0000042#zz"));
    assert!(
        r.code.len() <= MAX_CODE_BYTES && r.code.starts_with("오류"),
        "{}",
        r.code
    );
    assert!(r.reason.len() <= MAX_REASON_BYTES && r.reason.starts_with("오류 오류"));
    assert!(r.reason.contains(domain::text::ELLIPSIS) && r.reason.contains("not kept to replay"));
    assert!(r.run_id.as_ref().is_some_and(|id| id.len() <= MAX_RUN_ID_BYTES));
    assert_eq!(r.replay, None, "a body cut short replays nothing");
    let record = f.bounded();
    assert_eq!(
        (&r.subject, &r.code, &r.reason, &r.run_id),
        (&record.subject, &record.code, &record.reason, &record.run_id),
        "what is written is what NewFailure::bounded gives (and what is logged)"
    );
    let page = log.page(Some(cycle), 10, None).await.unwrap();
    assert_eq!((page.records.len(), page.bad.len()), (1, 0));
}
