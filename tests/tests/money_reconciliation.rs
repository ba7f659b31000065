//! Money reconciled end to end: RenderShard renders only the bills settled (it hashes and sums
//! the bills it reads), and FinishCycle sums the bills and deliveries tables themselves. A
//! bill changed between settle and render fails the shard before anything is uploaded; a bill
//! or a delivery changed after render fails the cycle, each naming the shard, the bill count
//! and the amounts. The settlement state machine runs on the emulator; the changes are raw
//! writes to the tables, made by interceptors around the hosted RenderShard.

use std::sync::{Arc, Mutex};

use adapters::bills::won;
use adapters::cycles::CycleStatus;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use domain::settlement::{FinishInput, FinishOutput, FinishStatus};
use domain::{Bill, Cycle};
use integration_tests::setup::loaded;
use integration_tests::{CYCLE, Month, digest, expected_bills};
use local_aws::lambda::{FunctionError, Handler, Interceptor};
use local_run::settle::{FINISH, RENDER};

fn cycle() -> Cycle {
    CYCLE.parse().unwrap()
}

/// What an interceptor changed: the customer whose amount it changed, and the amount before.
type Changed = Arc<Mutex<Option<(String, i64)>>>;

/// Adds `delta` won to the `total` of one item of the bills or deliveries table (a raw
/// `UpdateItem`: nothing of the platform's).
async fn add_to_total(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    shard: u32,
    customer: &str,
    delta: i64,
) -> Result<(), FunctionError> {
    ddb.update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(adapters::bills::partition_key(cycle(), shard)))
        .key("customer_id", AttributeValue::S(customer.into()))
        .update_expression("SET #t = #t + :d")
        .condition_expression("attribute_exists(#t)")
        .expression_attribute_names("#t", "total")
        .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
        .send()
        .await
        .map(drop)
        .map_err(|e| FunctionError::new("TestSetup", format!("{e:?}")))
}

/// Wraps RenderShard: for `shard`'s first render, adds `delta` won to the total of the
/// shard's eighth bill (in `table`: the bills or the deliveries table), before the render
/// when `before`, after it otherwise. Records the render's error, if any, in `error`.
fn change_a_total(
    month: &Month,
    table: String,
    shard: u32,
    delta: i64,
    before: bool,
    changed: Changed,
    error: Arc<Mutex<Option<FunctionError>>>,
) {
    let ddb = adapters::dynamodb_client(&month.config);
    let bills = month.bills.clone();
    let interceptor: Interceptor = Arc::new(move |payload: serde_json::Value, handler: Handler| {
        let (ddb, bills, table, changed, error) = (
            ddb.clone(),
            bills.clone(),
            table.clone(),
            changed.clone(),
            error.clone(),
        );
        Box::pin(async move {
            let mine = payload["shard"] == shard && changed.lock().unwrap().is_none();
            let change = || async {
                let bill = bills
                    .shard(cycle(), shard)
                    .await
                    .map_err(|e| FunctionError::new("TestSetup", e.to_string()))?
                    .into_iter()
                    .nth(7)
                    .ok_or_else(|| FunctionError::new("TestSetup", "fewer than 8 bills"))?;
                add_to_total(&ddb, &table, shard, bill.customer_id.as_str(), delta).await?;
                *changed.lock().unwrap() = Some((bill.customer_id.to_string(), bill.total.won()));
                Ok::<_, FunctionError>(())
            };
            if mine && before {
                change().await?;
            }
            let out = handler(payload).await;
            if let Err(e) = &out {
                *error.lock().unwrap() = Some(e.clone());
            } else if mine && !before {
                change().await?;
            }
            out
        })
    });
    month.host.intercept(&month.function(RENDER), interceptor).unwrap();
}

/// FinishCycle of the month's cycle for the run that owns it, called directly.
async fn finish(month: &Month) -> Result<FinishOutput, settle_finish::FinishError> {
    let deps = settle_finish::Deps::load(&month.config, &month.resources.function_env(FINISH))
        .await
        .unwrap();
    let run_id = month.cycles.get(cycle()).await.unwrap().unwrap().run_id;
    let input = FinishInput { cycle: cycle(), run_id };
    let event = lambda_runtime::LambdaEvent::new(input, local_run::invocation(std::time::Duration::from_secs(300)));
    settle_finish::handle(&deps, event).await
}

fn sum(bills: &[Bill]) -> i64 {
    bills.iter().map(|b| b.total.won()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_month_reconciles_its_money_from_the_tables() {
    let (data, month) = loaded("money-happy", 400, 200).await.unwrap(); // 2 shards
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    let f = run.finish_output().unwrap();
    assert_eq!(f.status, FinishStatus::Settled, "{:?}", f.reasons);

    // The cycle's checksum is the sum of the bills table, which is the shared rules' sum.
    let table = month.all_bills(2).await.unwrap();
    let expected: i64 = expected_bills(&data).unwrap().values().map(|b| b.total.won()).sum();
    assert_eq!((f.checksum, f.bills), (sum(&table), table.len() as u64));
    assert_eq!(f.checksum, expected);
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_eq!((record.status, record.checksum), (CycleStatus::Settled, expected));

    for s in 0..2 {
        let bills = month.bills.shard(cycle(), s).await.unwrap();
        let shard = month.cycles.get_shard(cycle(), s).await.unwrap().unwrap();
        let render = shard.render.clone().expect("render record");
        // Rendering hashed and summed the bills it read: the settled ones.
        assert_eq!(render.bills_digest, digest(&bills), "shard {s}");
        assert_eq!(render.bills_digest, shard.digest, "shard {s}");
        assert_eq!(
            (render.bills_total, render.rendered_total),
            (Some(sum(&bills)), Some(sum(&bills))),
            "shard {s}"
        );
        assert_eq!(shard.checksum, sum(&bills), "shard {s}");
        // The deliveries state their bills' totals, one by one.
        let deliveries = month.deliveries.totals(cycle(), s).await.unwrap();
        let from_bills: Vec<(String, i64)> = bills
            .iter()
            .map(|b| (b.customer_id.to_string(), b.total.won()))
            .collect();
        assert_eq!(deliveries.amounts, from_bills, "shard {s}");
        let read = month.bills.totals(cycle(), s).await.unwrap();
        assert_eq!(read.amounts, from_bills, "shard {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bill_changed_between_settle_and_render_fails_the_shard_before_anything_is_written() {
    let (data, month) = loaded("money-before-render", 400, 200).await.unwrap(); // 2 shards
    let changed: Changed = Arc::default();
    let error = Arc::new(Mutex::new(None));
    let table = month.bills.table().to_owned();
    change_a_total(&month, table, 1, 10_000, true, changed.clone(), error.clone());
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Failed, "{run:?}");

    // The render of shard 1 failed, naming the shard, the bill counts and both sums.
    let (customer, _) = changed.lock().unwrap().clone().expect("a bill was changed");
    let settled = month.cycles.get_shard(cycle(), 1).await.unwrap().unwrap();
    let e = error.lock().unwrap().clone().expect("the render failed");
    assert_eq!(e.error_type, "BillsChanged", "{e}");
    let want = format!(
        "shard 1: the bills read ({n} bills, Σ {}) are not the bills settled ({n} bills, Σ {})",
        won(settled.checksum + 10_000),
        won(settled.checksum),
        n = settled.bills
    );
    assert!(e.error_message.starts_with(&want), "{e}");
    assert_eq!(
        month.host.invocations(&month.function(RENDER)),
        2,
        "BillsChanged is not retried"
    );

    // Nothing of shard 1 was uploaded or written; shard 0 rendered as usual.
    assert!(settled.render.is_none());
    assert_eq!(month.deliveries.count(cycle(), 1).await.unwrap(), 0);
    let objects = adapters::s3_client(&month.config)
        .list_objects_v2()
        .bucket(month.bucket.bucket())
        .prefix("invoices/2026-11/00001/")
        .send()
        .await
        .unwrap();
    assert_eq!(objects.key_count(), Some(0), "no invoice of shard 1: {objects:?}");
    assert_eq!(
        month.deliveries.count(cycle(), 0).await.unwrap(),
        month.bills.count(cycle(), 0).await.unwrap()
    );

    // The cycle fails naming the shard (on the emulator the map goes on to FinishCycle; on
    // AWS the map fails first and FinishCycle is what a redrive runs).
    let e = finish(&month).await.unwrap_err();
    assert!(matches!(e, settle_finish::FinishError::NotReconciled { .. }), "{e}");
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_eq!(record.status, CycleStatus::Failed);
    assert_eq!(record.reasons, vec!["shard 1: invoices not rendered"]);
    assert_eq!(record.shards_done, 1);

    // The recovery the docs give: drop the shard's record, so that a new run settles it
    // again (rewriting the changed bill) and renders it.
    month.host.clear_interceptor(&month.function(RENDER));
    adapters::dynamodb_client(&month.config)
        .delete_item()
        .table_name(month.cycles.table())
        .key("cycle", AttributeValue::S(CYCLE.into()))
        .key("item", AttributeValue::S(adapters::cycles::shard_item(1)))
        .send()
        .await
        .unwrap();
    let again = month.settle("settle-2026-11-again").await.unwrap();
    assert_eq!(again.status, ExecutionStatus::Succeeded, "{again:?}");
    let f = again.finish_output().unwrap();
    let expected = expected_bills(&data).unwrap();
    assert_eq!(f.checksum, expected.values().map(|b| b.total.won()).sum::<i64>());
    let restored = month.bills.shard(cycle(), 1).await.unwrap();
    let restored = restored.iter().find(|b| b.customer_id.as_str() == customer).unwrap();
    assert_eq!(Some(restored), expected.get(&customer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bill_changed_after_render_fails_the_cycle_naming_shard_count_and_amounts() {
    let (data, month) = loaded("money-after-render", 400, 200).await.unwrap(); // 2 shards
    let changed: Changed = Arc::default();
    let error = Arc::new(Mutex::new(None));
    let table = month.bills.table().to_owned();
    change_a_total(&month, table, 1, -5_000, false, changed.clone(), error.clone());
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Failed, "{run:?}");
    assert!(error.lock().unwrap().is_none(), "the renders succeeded");
    assert_eq!(run.error.as_deref(), Some("CycleReconciliationFailed"), "{run:?}");

    let (customer, total) = changed.lock().unwrap().clone().expect("a bill was changed");
    let shard = month.cycles.get_shard(cycle(), 1).await.unwrap().unwrap();
    let (n, settled) = (shard.bills, shard.checksum);
    let now = settled - 5_000;
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_eq!(record.status, CycleStatus::Failed);
    assert_eq!(
        record.reasons,
        vec![
            format!(
                "shard 1: the bills table holds {n} bills, Σ {}; the shard settled {n} bills, Σ {}",
                won(now),
                won(settled)
            ),
            format!(
                "shard 1: the bills table holds {n} bills, Σ {}; the render read bills Σ {} and its deliveries \
                 state Σ {}",
                won(now),
                won(settled),
                won(settled)
            ),
            format!(
                "shard 1: the deliveries table holds {n} deliveries, Σ {}, for {n} bills, Σ {}; first: customer \
                 {customer} (delivery {}, bill {})",
                won(settled),
                won(now),
                won(total),
                won(total - 5_000)
            ),
        ]
    );
    // The execution's cause is FinishCycle's error, which names the first reason.
    let cause: serde_json::Value = serde_json::from_str(run.cause.as_deref().unwrap_or("{}")).unwrap();
    let message = cause["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains(&record.reasons[0]), "{message}");
    // The cycle's checksum is what the bills table holds, not what the shards reported.
    let expected: i64 = expected_bills(&data).unwrap().values().map(|b| b.total.won()).sum();
    assert_eq!(record.shards_done, 1);
    let shard_0 = month.cycles.get_shard(cycle(), 0).await.unwrap().unwrap();
    assert_eq!(record.checksum, shard_0.checksum + now);
    assert_eq!(record.checksum, expected - 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_total_changed_after_render_fails_the_cycle_and_a_new_render_restores_it() {
    let (data, month) = loaded("money-delivery", 400, 200).await.unwrap(); // 2 shards
    let changed: Changed = Arc::default();
    let error = Arc::new(Mutex::new(None));
    let table = month.deliveries.table().to_owned();
    change_a_total(&month, table, 0, 1, false, changed.clone(), error.clone());
    let run = month.settle("settle-2026-11").await.unwrap();
    assert_eq!(run.status, ExecutionStatus::Failed, "{run:?}");
    assert_eq!(run.error.as_deref(), Some("CycleReconciliationFailed"), "{run:?}");

    let (customer, total) = changed.lock().unwrap().clone().expect("a delivery was changed");
    let shard = month.cycles.get_shard(cycle(), 0).await.unwrap().unwrap();
    let (n, settled) = (shard.bills, shard.checksum);
    let record = month.cycles.get(cycle()).await.unwrap().unwrap();
    assert_eq!(record.status, CycleStatus::Failed);
    assert_eq!(
        record.reasons,
        vec![format!(
            "shard 0: the deliveries table holds {n} deliveries, Σ {}, for {n} bills, Σ {}; first: customer \
             {customer} (delivery {}, bill {})",
            won(settled + 1),
            won(settled),
            won(total + 1),
            won(total)
        )]
    );

    // A new run renders again: the waiting delivery states its bill's total once more.
    month.host.clear_interceptor(&month.function(RENDER));
    let again = month.settle("settle-2026-11-again").await.unwrap();
    assert_eq!(again.status, ExecutionStatus::Succeeded, "{again:?}");
    let f = again.finish_output().unwrap();
    let expected: i64 = expected_bills(&data).unwrap().values().map(|b| b.total.won()).sum();
    assert_eq!((f.status, f.checksum), (FinishStatus::Settled, expected));
    let d = month
        .deliveries
        .get(cycle(), 0, &domain::CustomerId::new(customer.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.total.won(), total);
    let render = month
        .cycles
        .get_shard(cycle(), 0)
        .await
        .unwrap()
        .unwrap()
        .render
        .unwrap();
    assert_eq!(
        (render.updated, render.bytes_uploaded),
        (1, 0),
        "the total rewritten, no new invoice"
    );
    assert_eq!(render.rendered_total, Some(settled));
}
