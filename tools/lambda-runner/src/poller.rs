//! SQS event source mappings, polled as Lambda's poller does: receive up to `BatchSize`
//! messages (gathering for up to `MaximumBatchingWindowInSeconds`), invoke the function
//! synchronously with the `aws:sqs` event, then delete the messages of a successful batch —
//! with `ReportBatchItemFailures`, all but the ones the response names. A function error, or
//! a response Lambda would treat as invalid, leaves the whole batch to come back after the
//! queue's visibility timeout. At most `ScalingConfig.MaximumConcurrency` invocations run at
//! once (and never more than the function's instances); one poller per mapping keeps
//! long-polling while the queue is empty, the others join while messages arrive.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use hyper::body::Bytes;
use serde_json::Value;

use crate::discover::Mapping;
use crate::sandbox::{Outcome, Pool};

/// What a mapping's pollers did.
#[derive(Default, Debug)]
pub struct MappingStats {
    pub batches: AtomicU64,
    pub deleted: AtomicU64,
    pub kept: AtomicU64,
}

/// The queue URL of an SQS ARN (`arn:aws:sqs:region:account:name`).
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, arn: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let (account, name) = match parts.as_slice() {
        [_, _, _, _, account, name] => (*account, *name),
        _ => anyhow::bail!("{arn} is not an SQS queue ARN"),
    };
    let out = sqs
        .get_queue_url()
        .queue_name(name)
        .queue_owner_aws_account_id(account)
        .send()
        .await
        .with_context(|| format!("GetQueueUrl of {name}"))?;
    out.queue_url.context("GetQueueUrl answered no URL")
}

/// The event Lambda hands a function for `messages` of the queue `arn`.
pub fn sqs_event(messages: &[Message], arn: &str, region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.receipt_handle = m.receipt_handle.clone();
            r.body = m.body.clone();
            r.md5_of_body = m.md5_of_body.clone();
            r.md5_of_message_attributes = m.md5_of_message_attributes.clone();
            r.attributes = m
                .attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect();
            r.message_attributes = m
                .message_attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    let mut a = SqsMessageAttribute::default();
                    a.string_value = v.string_value;
                    a.data_type = Some(v.data_type);
                    (k, a)
                })
                .collect();
            r.event_source = Some("aws:sqs".into());
            r.event_source_arn = Some(arn.to_owned());
            r.aws_region = Some(region.to_owned());
            r
        })
        .collect();
    event
}

/// The message ids a function's response hands back, or `None` when Lambda would treat the
/// whole batch as failed (a response that is not JSON, an item without an id or with an id
/// that is not in the batch).
pub fn failed_items(body: &[u8], batch: &HashSet<String>) -> Option<HashSet<String>> {
    let trimmed = body.iter().filter(|b| !b.is_ascii_whitespace()).count();
    if trimmed == 0 {
        return Some(HashSet::new());
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let items = match v.get("batchItemFailures") {
        None | Some(Value::Null) => return Some(HashSet::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return None,
    };
    let mut out = HashSet::new();
    for item in items {
        let id = item.get("itemIdentifier")?.as_str()?;
        if id.is_empty() || !batch.contains(id) {
            return None;
        }
        out.insert(id.to_owned());
    }
    Some(out)
}

/// What a mapping's pollers share.
#[derive(Clone)]
pub struct Poller {
    pub sqs: aws_sdk_sqs::Client,
    pub pool: Arc<Pool>,
    pub mapping: Mapping,
    pub url: String,
    pub region: String,
    pub stats: Arc<MappingStats>,
}

impl Poller {
    /// One poller of the mapping; runs until `stop` turns true. The `first` one long-polls an
    /// empty queue; the others wait a second between empty receives.
    pub async fn run(self, first: bool, mut stop: tokio::sync::watch::Receiver<bool>) {
        // Bounded by `stop`: the runner sets it when it shuts down or the mapping goes.
        while !*stop.borrow() {
            let round = tokio::select! {
                r = poll_once(&self, first) => r,
                _ = stop.changed() => break,
            };
            match round {
                Ok(true) => {}
                Ok(false) => {
                    if !first {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(mapping = %self.mapping.uuid, error = %format!("{e:#}"), "polling failed; trying again");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }
}

async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, max: usize, wait: i32) -> anyhow::Result<Vec<Message>> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
        .wait_time_seconds(wait)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .context("ReceiveMessage")?;
    Ok(out.messages.unwrap_or_default())
}

/// One batch: whether anything came.
async fn poll_once(p: &Poller, first: bool) -> anyhow::Result<bool> {
    let (sqs, pool, m, url, stats) = (&p.sqs, &p.pool, &p.mapping, p.url.as_str(), &p.stats);
    let region = p.region.as_str();
    let mut messages = receive(sqs, url, m.batch_size, if first { 2 } else { 0 }).await?;
    if messages.is_empty() {
        return Ok(false);
    }
    let started = Instant::now();
    // Gather up to BatchSize within the batching window (bounded by the window).
    while messages.len() < m.batch_size && started.elapsed() < m.window {
        let more = receive(sqs, url, m.batch_size - messages.len(), 1).await?;
        messages.extend(more);
    }
    let event = sqs_event(&messages, &m.queue_arn, region);
    let payload = serde_json::to_vec(&event).context("encoding the SQS event")?;
    let ids: HashSet<String> = messages.iter().filter_map(|m| m.message_id.clone()).collect();
    stats.batches.fetch_add(1, Ordering::Relaxed);
    let failed = match pool.invoke(Bytes::from(payload)).await {
        Outcome::Ok(body) if m.report_failures => failed_items(&body, &ids),
        Outcome::Ok(_) => Some(HashSet::new()),
        Outcome::Err { .. } => None,
    };
    let Some(failed) = failed else {
        stats.kept.fetch_add(messages.len() as u64, Ordering::Relaxed);
        return Ok(true);
    };
    let done: Vec<&Message> = messages
        .iter()
        .filter(|msg| !msg.message_id.as_ref().is_some_and(|id| failed.contains(id)))
        .collect();
    stats
        .kept
        .fetch_add((messages.len() - done.len()) as u64, Ordering::Relaxed);
    for chunk in done.chunks(10) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, msg)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(msg.receipt_handle.clone())
                    .build()
                    .ok()
            })
            .collect();
        let n = entries.len() as u64;
        sqs.delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .context("DeleteMessageBatch")?;
        stats.deleted.fetch_add(n, Ordering::Relaxed);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> HashSet<String> {
        ["a", "b"].iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn batch_responses_are_read_as_lambda_reads_them() {
        let none = Some(HashSet::new());
        assert_eq!(failed_items(b"", &batch()), none);
        assert_eq!(failed_items(b"null", &batch()), none);
        assert_eq!(failed_items(b"{}", &batch()), none);
        assert_eq!(failed_items(br#"{"batchItemFailures":[]}"#, &batch()), none);
        assert_eq!(
            failed_items(br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &batch()),
            Some(["b".to_owned()].into_iter().collect())
        );
        // The whole batch fails:
        assert_eq!(failed_items(b"not json", &batch()), None);
        assert_eq!(
            failed_items(br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, &batch()),
            None
        );
        assert_eq!(
            failed_items(br#"{"batchItemFailures":[{"itemIdentifier":"zz"}]}"#, &batch()),
            None
        );
        assert_eq!(failed_items(br#"{"batchItemFailures":[{"id":"a"}]}"#, &batch()), None);
    }
}
