//! The senders, hosted locally the way Lambda's SQS event source runs them:
//! pollers receive up to ten messages, invoke the real handler with them as
//! an `SqsEvent`, delete the messages the handler did not report back, and
//! leave the rest to come back after their visibility timeout (or the
//! backoff the handler set). An invocation that fails as a whole (a crash)
//! deletes nothing, as on Lambda.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Utc};
use domain::Channel;
use lambda_runtime::LambdaEvent;
use local_aws::Resources;
use sender::{Clock, SendReport};

pub const SEND_EMAIL: &str = "SendEmailFunction";
pub const SEND_SMS: &str = "SendSmsFunction";

/// The senders' timeout as in template.yaml.
pub const SENDER_TIMEOUT: Duration = Duration::from_secs(60);

pub fn logical_id(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => SEND_EMAIL,
        Channel::Sms => SEND_SMS,
    }
}

/// A sender's environment as template.yaml gives it (naming the stack's
/// keyring secret), `overrides` applied.
pub fn sender_env(resources: &Resources, channel: Channel, overrides: &[(&str, String)]) -> BTreeMap<String, String> {
    let mut env = crate::settle::local_function_env(resources, logical_id(channel));
    for (k, v) in overrides {
        env.insert((*k).to_owned(), v.clone());
    }
    env
}

/// A sender configured as template.yaml configures it, `overrides` applied.
pub async fn sender_deps(
    sdk: &SdkConfig,
    resources: &Resources,
    channel: Channel,
    overrides: &[(&str, String)],
) -> anyhow::Result<sender::Deps> {
    sender::Deps::load(channel, sdk, &sender_env(resources, channel, overrides))
        .await
        .with_context(|| format!("environment of {}", logical_id(channel)))
}

/// Both senders, configured as template.yaml configures them with
/// `overrides`, reading `clock`, each polling its queue.
pub async fn pollers(
    sdk: &SdkConfig,
    resources: &Resources,
    overrides: &[(&str, String)],
    clock: &VirtualClock,
) -> anyhow::Result<Vec<Poller>> {
    let mut out = Vec::with_capacity(2);
    for ch in [Channel::Email, Channel::Sms] {
        let mut d = crate::provider_wait::waited(sender_deps(sdk, resources, ch, overrides).await?);
        d.clock = clock.clock();
        out.push(Poller::new(sdk, Arc::new(d)));
    }
    Ok(out)
}

/// A clock the local month moves by hand: every slot's sends happen at the
/// slot's virtual time.
#[derive(Clone, Default)]
pub struct VirtualClock(Arc<AtomicI64>);

impl VirtualClock {
    pub fn at(t: DateTime<Utc>) -> Self {
        let c = VirtualClock::default();
        c.set(t);
        c
    }

    pub fn set(&self, t: DateTime<Utc>) {
        self.0.store(t.timestamp_millis(), Ordering::SeqCst);
    }

    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }

    pub fn clock(&self) -> Clock {
        let c = self.clone();
        Arc::new(move || c.now())
    }
}

/// What the pollers did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PollStats {
    pub invocations: u64,
    /// Time spent inside the handler, summed over the invocations (what Lambda bills).
    pub handler_ms: u64,
    /// Of `handler_ms`, the time the invocations waited on their providers: the union of
    /// each invocation's provider calls ([`crate::provider_wait`]; 0 for a poller whose
    /// providers are not wrapped).
    pub provider_wait_ms: u64,
    pub crashed: u64,
    pub received: u64,
    pub deleted: u64,
    pub report: SendReport,
}

impl std::ops::AddAssign<&PollStats> for PollStats {
    fn add_assign(&mut self, o: &PollStats) {
        self.invocations += o.invocations;
        self.handler_ms += o.handler_ms;
        self.provider_wait_ms += o.provider_wait_ms;
        self.crashed += o.crashed;
        self.received += o.received;
        self.deleted += o.deleted;
        self.report += &o.report;
    }
}

/// One sender's event source: its queue, polled.
#[derive(Clone)]
pub struct Poller {
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
    pub deps: Arc<sender::Deps>,
    /// Visibility for received messages; the queue's own when `None`.
    pub visibility: Option<i32>,
    /// Every body received, when set (the suite checks them for personal data).
    pub bodies: Option<Arc<std::sync::Mutex<Vec<String>>>>,
}

impl Poller {
    pub fn new(sdk: &SdkConfig, deps: Arc<sender::Deps>) -> Self {
        Poller {
            sqs: adapters::sqs_client(sdk),
            url: deps.queue.url().to_owned(),
            deps,
            visibility: None,
            bodies: None,
        }
    }

    /// One receive and, if anything came, one invocation.
    pub async fn poll_once(&self) -> anyhow::Result<PollStats> {
        let mut stats = PollStats::default();
        let mut req = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All);
        if let Some(v) = self.visibility {
            req = req.visibility_timeout(v);
        }
        let out = req.send().await.context("ReceiveMessage")?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(stats);
        }
        stats.received = messages.len() as u64;
        let event = sqs_event(&messages);
        if let Some(Ok(mut b)) = self.bodies.as_ref().map(|b| b.lock()) {
            b.extend(event.records.iter().filter_map(|r| r.body.clone()));
        }
        stats.invocations = 1;
        let ctx = crate::invocation(SENDER_TIMEOUT);
        let started = Instant::now();
        let (handled, waited) =
            crate::provider_wait::measured(sender::handle_batch(&self.deps, LambdaEvent::new(event, ctx))).await;
        stats.handler_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        stats.provider_wait_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        let (response, report) = match handled {
            Ok(r) => r,
            Err(sender::SenderError::Crashed(_)) => {
                stats.crashed = 1;
                return Ok(stats);
            }
            Err(e) => return Err(anyhow::anyhow!("sender: {e}")),
        };
        stats.report = report;
        let keep: std::collections::HashSet<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        let done: Vec<&Message> = messages
            .iter()
            .filter(|m| !keep.contains(m.message_id.as_deref().unwrap_or_default()))
            .collect();
        stats.deleted = delete_messages(&self.sqs, &self.url, &done).await? as u64;
        Ok(stats)
    }
}

/// Deletes `messages` (at most ten, as received) from the queue at `url`, as an event
/// source mapping does with a batch's successes; how many it deleted.
pub async fn delete_messages(sqs: &aws_sdk_sqs::Client, url: &str, messages: &[&Message]) -> anyhow::Result<usize> {
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(m.receipt_handle.clone())
                .build()
                .ok()
        })
        .collect();
    if entries.is_empty() {
        return Ok(0);
    }
    let n = entries.len();
    sqs.delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .context("DeleteMessageBatch")?;
    Ok(n)
}

/// The event an SQS event source mapping hands a function for `messages`
/// received from a queue: ids, receipt handles, bodies and attributes.
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.receipt_handle = m.receipt_handle.clone();
            r.body = m.body.clone();
            r.event_source = Some("aws:sqs".into());
            r.attributes = m
                .attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect();
            r
        })
        .collect();
    event
}

/// Messages on a queue: visible, in flight and delayed (a sender's fresh
/// copy after its own trouble is delayed).
/// The messages of the queue at `url` a receive can get now.
async fn visible(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<u64> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .context("GetQueueAttributes")?;
    let attrs = out.attributes.unwrap_or_default();
    Ok(attrs
        .get(&QueueAttributeName::ApproximateNumberOfMessages)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0))
}

pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<u64> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .context("GetQueueAttributes")?;
    let attrs = out.attributes.unwrap_or_default();
    let n = |a: QueueAttributeName| attrs.get(&a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(n(QueueAttributeName::ApproximateNumberOfMessages)
        + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        + n(QueueAttributeName::ApproximateNumberOfMessagesDelayed))
}

/// Runs `workers` invocations at a time per poller until every poller's
/// queue is empty (nothing visible, nothing in flight) or `limit` passes.
/// Bounded: it stops by itself at `limit`, and says whether the queues
/// drained.
pub async fn drain(pollers: &[Poller], workers: usize, limit: Duration) -> anyhow::Result<(PollStats, bool)> {
    let started = Instant::now();
    let total = Arc::new(tokio::sync::Mutex::new(PollStats::default()));
    for round in 0u64.. {
        let mut empty = true;
        for p in pollers {
            if depth(&p.sqs, &p.url).await? > 0 {
                empty = false;
            }
        }
        if empty {
            let t = total.lock().await.clone();
            return Ok((t, true));
        }
        if started.elapsed() >= limit {
            let t = total.lock().await.clone();
            return Ok((t, false));
        }
        if round > 0 {
            // What is left is in flight (a backoff): wait before polling again.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // A round: every worker polls until its receive comes back empty. Like the event
        // source's pollers, as many as the visible messages fill batches of ten (and at most
        // `workers`): a few messages make one full batch, not many batches of one or two.
        let mut tasks = tokio::task::JoinSet::new();
        for p in pollers {
            let visible = visible(&p.sqs, &p.url).await?;
            let n = usize::try_from(visible.div_ceil(10))
                .unwrap_or(usize::MAX)
                .clamp(1, workers.max(1));
            for _ in 0..n {
                let p = p.clone();
                let total = total.clone();
                let stop_at = started + limit;
                tasks.spawn(async move {
                    while Instant::now() < stop_at {
                        let s = p.poll_once().await?;
                        let idle = s.received == 0;
                        *total.lock().await += &s;
                        if idle {
                            break;
                        }
                    }
                    Ok::<(), anyhow::Error>(())
                });
            }
        }
        while let Some(r) = tasks.join_next().await {
            r.context("poller task")??;
        }
    }
    let t = total.lock().await.clone();
    Ok((t, false))
}
