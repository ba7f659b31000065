//! The delivery-events function, hosted locally the way Lambda's SQS event
//! source runs it: the evidence queue is received ten at a time, the real
//! handler gets each batch as an `SqsEvent`, the records it did not hand back
//! are deleted, and those it handed back (an event that overtook its
//! sender's completion write) come back after a second instead of the
//! queue's visibility timeout, so a slot's evidence settles while its
//! virtual clock stands.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_sqs::types::Message;
use delivery_events::EvidenceReport;
use delivery_events::metrics::NAMES;
use lambda_runtime::LambdaEvent;
use local_aws::Resources;
use serde::Serialize;

use crate::send::{VirtualClock, delete_messages, depth, sqs_event};

pub const DELIVERY_EVENTS: &str = "DeliveryEventsFunction";

/// The function's timeout as in template.yaml (the invocation's deadline).
const TIMEOUT: Duration = Duration::from_secs(60);

/// What the provider's evidence came to over a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EvidenceTotals {
    pub records: u64,
    /// Records handed back once or more because they came before their send was recorded.
    pub retried: u64,
    pub invocations: u64,
    /// Each count by its metric name (`Delivered`, `Bounced`, …), over both channels.
    pub counts: BTreeMap<String, u64>,
    /// The same by channel: `email Delivered` …
    pub by_channel: BTreeMap<String, u64>,
    pub handler_ms: u64,
}

impl EvidenceTotals {
    fn add(&mut self, r: &EvidenceReport) {
        self.records += r.records;
        self.retried += r.retried;
        for (channel, counts) in &r.by_channel {
            for (name, n) in NAMES.iter().zip(counts) {
                if *n > 0 {
                    *self.counts.entry((*name).to_owned()).or_insert(0) += n;
                    *self.by_channel.entry(format!("{channel} {name}")).or_insert(0) += n;
                }
            }
        }
    }

    pub fn get(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }
}

/// The delivery-events handler on the stack's evidence queue.
pub struct EvidencePoller {
    sqs: aws_sdk_sqs::Client,
    url: String,
    deps: Arc<delivery_events::Deps>,
}

impl EvidencePoller {
    /// Configured as template.yaml configures the function with `overrides`, on `clock`.
    pub async fn new(
        sdk: &SdkConfig,
        resources: &Resources,
        overrides: &[(&str, String)],
        clock: &VirtualClock,
    ) -> anyhow::Result<Self> {
        let mut env = crate::settle::local_function_env(resources, DELIVERY_EVENTS);
        for (k, v) in overrides {
            env.insert((*k).to_owned(), v.clone());
        }
        let mut deps = delivery_events::Deps::load(sdk, &env)
            .await
            .with_context(|| format!("environment of {DELIVERY_EVENTS}"))?;
        deps.clock = clock.clock();
        // The queue the senders' mock emits to (and the rules feed).
        let url = crate::settle::local_function_env(resources, crate::send::SEND_EMAIL)
            .get("EVIDENCE_QUEUE_URL")
            .cloned()
            .context("template.yaml gives the senders no evidence queue (EVIDENCE_QUEUE_URL)")?;
        Ok(EvidencePoller {
            sqs: adapters::sqs_client(sdk),
            url,
            deps: Arc::new(deps),
        })
    }

    /// One receive and, if anything came, one invocation; false when nothing came.
    async fn poll_once(&self, totals: &mut EvidenceTotals) -> anyhow::Result<bool> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .context("ReceiveMessage")?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(false);
        }
        let started = Instant::now();
        let (response, report) = delivery_events::handle_batch(
            &self.deps,
            LambdaEvent::new(sqs_event(&messages), crate::invocation(TIMEOUT)),
        )
        .await
        .map_err(|e| anyhow::anyhow!("delivery-events: {e}"))?;
        totals.handler_ms += u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        totals.invocations += 1;
        totals.add(&report);
        let keep: std::collections::HashSet<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        let (back, done): (Vec<&Message>, Vec<&Message>) = messages
            .iter()
            .partition(|m| keep.contains(m.message_id.as_deref().unwrap_or_default()));
        delete_messages(&self.sqs, &self.url, &done).await?;
        for m in back {
            // Back in a second, not after the queue's visibility timeout.
            self.sqs
                .change_message_visibility()
                .queue_url(&self.url)
                .receipt_handle(m.receipt_handle.as_deref().unwrap_or_default())
                .visibility_timeout(1)
                .send()
                .await
                .context("ChangeMessageVisibility")?;
        }
        Ok(true)
    }

    /// Handles the evidence queue until it is empty (nothing visible, in flight or
    /// delayed), at most `limit`.
    pub async fn drain(&self, limit: Duration, totals: &mut EvidenceTotals) -> anyhow::Result<bool> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if !self.poll_once(totals).await? {
                if depth(&self.sqs, &self.url).await? == 0 {
                    return Ok(true);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(false)
    }
}
