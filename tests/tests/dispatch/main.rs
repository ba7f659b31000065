//! Dispatch on a virtual clock: every slot of the month a settled cycle's
//! invoices go out, run against the emulator; then the checks of DESIGN §4.
//!
//! `settled_month` runs a month the settlement state machine settled; `single_deliveries`
//! writes deliveries and cycle records one by one. The helpers both use are here.

mod quota_month;
mod routes;
mod settled_month;
mod single_deliveries;
mod written;

use std::collections::HashMap;
use std::time::Duration;

use adapters::deliveries::partition_key;
use adapters::failures::FailureLog;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use dispatch_slot::{DispatchEvent, DispatchReport};
use domain::Cycle;
use integration_tests::{CYCLE, Month};
use lambda_runtime::LambdaEvent;

fn cycle() -> Cycle {
    CYCLE.parse().unwrap()
}

/// An instant written in RFC 3339.
fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

/// DispatchSlot's dependencies as deployed.
async fn dispatch_deps(month: &Month) -> dispatch_slot::Deps {
    dispatch_slot::Deps::load(&month.config, &month.resources.function_env("DispatchSlotFunction"))
        .await
        .unwrap()
}

/// A run of DispatchSlot scheduled at `at`, with `run_id` when given.
async fn dispatch(
    deps: &dispatch_slot::Deps,
    at: DateTime<Utc>,
    run_id: Option<&str>,
) -> Result<DispatchReport, dispatch_slot::DispatchError> {
    dispatch_slot::dispatch(deps, event(at, run_id)).await
}

fn event(scheduled: DateTime<Utc>, run_id: Option<&str>) -> LambdaEvent<DispatchEvent> {
    let event = DispatchEvent {
        run_id: run_id.map(str::to_owned),
        ..DispatchEvent::at(scheduled)
    };
    LambdaEvent::new(event, local_run::invocation(Duration::from_secs(900)))
}

/// Receives every message on a queue (bounded: at most 50 polls).
async fn drain(month: &Month, logical_id: &str) -> Vec<domain::delivery::DeliveryMessage> {
    let sqs = aws_sdk_sqs::Client::new(&month.config);
    let url = month.resources.queue_url(logical_id).unwrap().to_owned();
    let mut out = Vec::new();
    for _ in 0..50 {
        let receive = sqs.receive_message().queue_url(&url).max_number_of_messages(10);
        let messages = receive.send().await.unwrap().messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            out.push(serde_json::from_str(m.body.as_deref().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    out
}

/// The failure records of the month's stack.
fn failure_log(month: &Month) -> FailureLog {
    FailureLog::new(
        adapters::dynamodb_client(&month.config),
        month.resources.table("FailuresTable").unwrap(),
    )
}

/// Sets attributes of a delivery (any cycle) as a sender or an operator would have left them;
/// `#st` in `expr` names its state.
async fn set_on(month: &Month, d: &domain::Delivery, expr: &str, values: &[(&str, &str)]) {
    let mut req = adapters::dynamodb_client(&month.config)
        .update_item()
        .table_name(month.deliveries.table())
        .key("pk", AttributeValue::S(partition_key(d.cycle, d.shard)))
        .key("customer_id", AttributeValue::S(d.customer_id.as_str().into()))
        .update_expression(expr);
    if expr.contains("#st") {
        req = req.expression_attribute_names("#st", "state");
    }
    for (k, v) in values {
        req = req.expression_attribute_values(*k, AttributeValue::S((*v).into()));
    }
    req.send().await.unwrap();
}

async fn state_of(month: &Month, d: &domain::Delivery) -> HashMap<String, AttributeValue> {
    month
        .deliveries
        .raw(d.cycle, d.shard, &d.customer_id)
        .await
        .unwrap()
        .unwrap()
}
