//! Where a value could be left behind, read back: the log lines (by the case whose span they
//! were written in), the failure records, every message on every queue of the stack, and what
//! the functions wrote into each execution's history.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sfn::types::HistoryEvent;
use aws_sdk_sqs::types::QueueAttributeName;
use local_aws::{Kind, Resources};
use serde_json::Value;

/// The name of the span every case runs in; its field `case` is the case's number.
pub const CASE_SPAN: &str = "corpus_case";

/// The captured log, line by line, each with the number of the case whose span it was
/// written in (`None`: outside every case, e.g. in a task a handler spawned, or in the host
/// that serves the state machine's invocations).
pub fn log_lines(buffer: &[u8]) -> Vec<(Option<usize>, String)> {
    String::from_utf8_lossy(buffer)
        .lines()
        .map(|line| {
            let case = serde_json::from_str::<Value>(line).ok().and_then(|v| {
                v["spans"].as_array().and_then(|spans| {
                    spans
                        .iter()
                        .filter(|s| s["name"] == CASE_SPAN)
                        .find_map(|s| s["case"].as_u64().or_else(|| s["case"].as_str()?.parse().ok()))
                        .and_then(|n| usize::try_from(n).ok())
                })
            });
            (case, line.to_owned())
        })
        .collect()
}

/// Every item of `table`, each as text (attribute names and values).
pub async fn table_items(config: &SdkConfig, table: &str) -> Vec<String> {
    let ddb = adapters::dynamodb_client(config);
    let mut out = Vec::new();
    let mut start = None;
    // A table of this test holds a few thousand items at most: 100 pages is far beyond.
    for _ in 0..100 {
        let page = ddb
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            let mut attrs: Vec<String> = item.iter().map(|(k, v)| format!("{k}={}", attribute_text(v))).collect();
            attrs.sort();
            out.push(attrs.join(" "));
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
    panic!("{table}: more than 100 pages");
}

fn attribute_text(v: &aws_sdk_dynamodb::types::AttributeValue) -> String {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) | A::N(s) => s.clone(),
        A::Ss(l) | A::Ns(l) => l.join(","),
        A::L(l) => l.iter().map(attribute_text).collect::<Vec<_>>().join(","),
        A::M(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", attribute_text(v)))
            .collect::<Vec<_>>()
            .join(","),
        A::B(b) => String::from_utf8_lossy(b.as_ref()).into_owned(),
        other => format!("{other:?}"),
    }
}

/// Takes every message off every queue of the stack, delayed ones included once their delay
/// ends (at most `limit` waiting for them): queue logical id → bodies.
pub async fn drain_queues(config: &SdkConfig, resources: &Resources, limit: Duration) -> HashMap<String, Vec<String>> {
    let sqs = adapters::sqs_client(config);
    let queues: Vec<(String, String)> = resources
        .iter()
        .filter(|p| p.kind == Kind::Queue)
        .filter_map(|p| Some((p.logical_id.clone(), p.url.clone()?)))
        .collect();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let started = Instant::now();
    loop {
        let mut left = 0u64;
        for (id, url) in &queues {
            // Ten at a time until the queue answers none.
            for _ in 0..1_000 {
                let got = sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .visibility_timeout(600)
                    .send()
                    .await
                    .unwrap()
                    .messages
                    .unwrap_or_default();
                if got.is_empty() {
                    break;
                }
                for m in &got {
                    out.entry(id.clone())
                        .or_default()
                        .push(m.body.clone().unwrap_or_default());
                    sqs.delete_message()
                        .queue_url(url)
                        .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                        .send()
                        .await
                        .unwrap();
                }
            }
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap_or_default();
            left += attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum::<u64>();
        }
        if left == 0 || started.elapsed() > limit {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the functions wrote into an execution's history: their answers and errors, and the
/// errors that ended states, maps and the execution. Not the copies of the caller's own input
/// the history keeps as the state machine passes it on (the execution's input, each state's
/// input and output, a task's parameters): those are what the caller wrote.
pub fn written_by_functions(e: &HistoryEvent) -> Vec<String> {
    let pair = |error: Option<&str>, cause: Option<&str>| format!("{} {}", error.unwrap_or(""), cause.unwrap_or(""));
    let mut out = Vec::new();
    if let Some(d) = &e.lambda_function_failed_event_details {
        out.push(pair(d.error(), d.cause()));
    }
    if let Some(d) = &e.lambda_function_timed_out_event_details {
        out.push(pair(d.error(), d.cause()));
    }
    if let Some(d) = &e.lambda_function_succeeded_event_details {
        out.push(d.output().unwrap_or("").to_owned());
    }
    if let Some(d) = &e.task_failed_event_details {
        out.push(pair(d.error(), d.cause()));
    }
    if let Some(d) = &e.task_timed_out_event_details {
        out.push(pair(d.error(), d.cause()));
    }
    if let Some(d) = &e.task_succeeded_event_details {
        out.push(d.output().unwrap_or("").to_owned());
    }
    if let Some(d) = &e.execution_failed_event_details {
        out.push(pair(d.error(), d.cause()));
    }
    if let Some(d) = &e.map_run_failed_event_details {
        out.push(pair(d.error(), d.cause()));
    }
    out
}

/// Starts an execution with `input`, waits for its end (at most `limit`) and gives back the
/// texts the functions wrote into its history (see [`written_by_functions`]), with how it ended.
pub async fn execution_texts(
    sfn: &aws_sdk_sfn::Client,
    state_machine: &str,
    name: &str,
    input: &Value,
    limit: Duration,
) -> Vec<String> {
    let start = sfn
        .start_execution()
        .state_machine_arn(state_machine)
        .name(name)
        .input(input.to_string())
        .send()
        .await;
    let arn = match start {
        Ok(out) => out.execution_arn,
        // Refused before it ran (not valid JSON, say): the refusal is the answer.
        Err(e) => {
            return vec![format!(
                "StartExecution refused: {}",
                aws_sdk_sfn::error::DisplayErrorContext(&e)
            )];
        }
    };
    let outcome = local_run::settle::wait_for(sfn, &arn, limit, &|_| {}).await.unwrap();
    let mut out = vec![format!(
        "{:?} {} {}",
        outcome.status,
        outcome.error.unwrap_or_default(),
        outcome.cause.unwrap_or_default()
    )];
    let mut token = None;
    // An execution of this test has tens of events: 20 pages of 100 are far beyond.
    for _ in 0..20 {
        let page = sfn
            .get_execution_history()
            .execution_arn(&arn)
            .max_results(100)
            .set_next_token(token.take())
            .send()
            .await
            .unwrap();
        out.extend(page.events.iter().flat_map(written_by_functions));
        token = page.next_token;
        if token.is_none() {
            return out;
        }
    }
    panic!("{name}: more than 20 pages of history");
}
