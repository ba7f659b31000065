//! Rendering records the keyed hash of each customer's email on its delivery (`email_hash`,
//! what dispatch checks against the suppression list), never the address; a re-render gives a
//! waiting delivery the hash of a changed email without uploading its invoice again.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use domain::pii::{Field, Keyring};
use domain::settlement::{RenderResult, ShardTask};
use domain::{Contact, Cycle};
use integration_tests::setup::loaded;
use integration_tests::{CYCLE, Month};
use lambda_runtime::LambdaEvent;
use local_run::settle::{RENDER, local_function_env};

fn cycle() -> Cycle {
    CYCLE.parse().unwrap()
}

/// Gives the cycle to the run `test` while it settles (RenderShard writes only for the run
/// that owns a cycle being settled).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delivery_holds_its_emails_hash_and_a_rerender_follows_a_changed_email() {
    let (_data, month) = loaded("render-email-hash", 40, 40).await.unwrap(); // 1 shard
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    let keys = Keyring::dev();
    let customers = month.customers.shard(0).await.unwrap().customers;
    let before = month.deliveries.shard(cycle(), 0).await.unwrap();
    assert!(before.len() > 2);
    let customer_of = |id: &domain::CustomerId| customers.iter().find(|c| c.customer_id == *id).unwrap();
    for d in &before {
        let c = customer_of(&d.customer_id);
        let email = c.contact.open(&keys, &c.customer_id).unwrap().email.expose().clone();
        let hash = d.email_hash.as_deref().expect("an email hash");
        assert_eq!(hash, keys.lookup_hash(Field::Email, &email), "{}", d.customer_id);
        assert!(!hash.contains(&email) && !hash.contains('@'));
    }

    // The first customer's email changes; the second's delivery predates email hashes.
    let mut changed = customer_of(&before[0].customer_id).clone();
    let open = changed.contact.open(&keys, &changed.customer_id).unwrap();
    changed.contact = Contact::seal(
        &keys,
        &changed.customer_id,
        open.name.expose(),
        "new.address@example.org",
        open.phone.expose(),
    );
    month.customers.put_all(std::slice::from_ref(&changed)).await.unwrap();
    adapters::dynamodb_client(&month.config)
        .update_item()
        .table_name(month.deliveries.table())
        .key("pk", AttributeValue::S(adapters::deliveries::partition_key(cycle(), 0)))
        .key("customer_id", AttributeValue::S(before[1].customer_id.to_string()))
        .update_expression("REMOVE email_hash")
        .send()
        .await
        .unwrap();

    own_cycle(&month).await;
    let deps = render_shard::Deps::load(&month.config, &local_function_env(&month.resources, RENDER))
        .await
        .unwrap();
    let task = ShardTask {
        cycle: cycle(),
        shard: 0,
        catalog_version: "2026-v1".into(),
        template_version: "v1".into(),
        run_id: "test".into(),
        expected_customers: 40,
    };
    let event = LambdaEvent::new(task, local_run::invocation(Duration::from_secs(300)));
    let r: RenderResult = render_shard::handle(&deps, event).await.unwrap();
    let n = before.len() as u64;
    assert_eq!(
        (r.created, r.updated, r.unchanged, r.bytes_uploaded),
        (0, 2, n - 2, 0),
        "two hashes written, no invoice uploaded: {r:?}"
    );
    let after = month.deliveries.shard(cycle(), 0).await.unwrap();
    assert_eq!(
        after[0].email_hash.as_deref(),
        Some(keys.lookup_hash(Field::Email, "new.address@example.org").as_str())
    );
    assert_eq!(after[1].email_hash, before[1].email_hash, "filled in again");
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&a.content, a.state), (&b.content, b.state), "{}", a.customer_id);
    }
    for a in &after[2..] {
        let b = before.iter().find(|b| b.customer_id == a.customer_id).unwrap();
        assert_eq!(a.updated_at, b.updated_at, "{}: not written", a.customer_id);
    }
}
