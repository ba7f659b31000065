//! The delivery queues: messages carry ids only (see
//! [`domain::delivery::DeliveryMessage`]), ten to a `SendMessageBatch`.
//!
//! SQS may accept part of a batch: the failed entries are sent again with
//! backoff; what still fails after the last attempt is returned by id, so the
//! caller can undo what it did for them (nothing may stay marked as queued
//! without a message).

use std::collections::HashMap;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use domain::delivery::DeliveryMessage;

use crate::StoreError;
use crate::retry::Backoff;

/// SQS accepts at most 10 messages per `SendMessageBatch`.
pub const SEND_BATCH_LIMIT: usize = 10;

#[derive(Clone, Debug)]
pub struct DeliveryQueue {
    client: Client,
    url: String,
    pub backoff: Backoff,
}

/// What a batch send did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendOutcome {
    pub sent: usize,
    /// Delivery ids SQS did not accept after every attempt, with its reason.
    pub failed: Vec<(String, String)>,
    pub requests: usize,
}

impl DeliveryQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        DeliveryQueue {
            client,
            url: url.into(),
            backoff: Backoff::default(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends up to ten messages (more is a caller error, refused).
    pub async fn send_batch(&self, messages: &[DeliveryMessage]) -> Result<SendOutcome, StoreError> {
        if messages.len() > SEND_BATCH_LIMIT {
            return Err(StoreError::Conflict {
                resource: self.url.clone(),
                message: format!("{} messages in one batch; SQS takes {SEND_BATCH_LIMIT}", messages.len()),
            });
        }
        let mut pending: HashMap<String, &DeliveryMessage> =
            messages.iter().enumerate().map(|(i, m)| (i.to_string(), m)).collect();
        let mut out = SendOutcome::default();
        let mut attempt = 0;
        let mut last_errors: HashMap<String, String> = HashMap::new();
        while !pending.is_empty() {
            attempt += 1;
            out.requests += 1;
            let mut entries = Vec::with_capacity(pending.len());
            for (id, m) in &pending {
                let body = serde_json::to_string(m).map_err(|e| StoreError::Decode {
                    resource: self.url.clone(),
                    what: format!("message for delivery {}", m.delivery_id),
                    message: e.to_string(),
                })?;
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(body)
                        .build()
                        .map_err(|e| StoreError::Decode {
                            resource: self.url.clone(),
                            what: "batch entry".into(),
                            message: e.to_string(),
                        })?,
                );
            }
            let result = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await;
            match result {
                Ok(r) => {
                    for ok in r.successful {
                        if pending.remove(&ok.id).is_some() {
                            out.sent += 1;
                        }
                    }
                    for f in r.failed {
                        // A sender fault (a malformed entry) will not get better with a retry.
                        if f.sender_fault {
                            if let Some(m) = pending.remove(&f.id) {
                                out.failed.push((
                                    m.delivery_id.clone(),
                                    format!("{}: {}", f.code, f.message.unwrap_or_default()),
                                ));
                            }
                        } else {
                            last_errors.insert(f.id, format!("{}: {}", f.code, f.message.unwrap_or_default()));
                        }
                    }
                }
                Err(e) => {
                    let e = StoreError::aws("SendMessageBatch", &self.url, e);
                    if !e.is_transient() {
                        return Err(e);
                    }
                    for id in pending.keys() {
                        last_errors.insert(id.clone(), e.to_string());
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
            if attempt >= self.backoff.max_attempts {
                for (id, m) in pending.drain() {
                    let why = last_errors
                        .remove(&id)
                        .unwrap_or_else(|| "no answer for the entry".into());
                    out.failed.push((m.delivery_id.clone(), why));
                }
                break;
            }
            tokio::time::sleep(self.backoff.delay(attempt)).await;
        }
        Ok(out)
    }
}

impl DeliveryQueue {
    /// Sends one message (a sender's fallback to SMS); an error if SQS
    /// refused it after the retries.
    pub async fn send_one(&self, message: &DeliveryMessage) -> Result<(), StoreError> {
        let out = self.send_batch(std::slice::from_ref(message)).await?;
        match out.failed.into_iter().next() {
            None => Ok(()),
            Some((_, why)) => Err(StoreError::Conflict {
                resource: self.url.clone(),
                message: format!("SendMessage refused: {why}"),
            }),
        }
    }

    /// Puts a copy of `message` on the queue, visible after `delay_seconds`
    /// (at most 15 minutes): how a sender retries a message after its own
    /// trouble without spending the message's receive count, which the
    /// queue's redrive policy keeps for messages that are themselves bad.
    pub async fn send_copy(&self, message: &DeliveryMessage, delay_seconds: u32) -> Result<(), StoreError> {
        let body = serde_json::to_string(message).map_err(|e| StoreError::Decode {
            resource: self.url.clone(),
            what: "delivery message".into(),
            message: e.to_string(),
        })?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay_seconds.min(900) as i32)
            .send()
            .await
            .map_err(|e| StoreError::aws("SendMessage", &self.url, e))?;
        Ok(())
    }

    /// Makes a received message visible again after `seconds` (at most 12
    /// hours): how a sender backs off before retrying it.
    pub async fn retry_after(&self, receipt_handle: &str, seconds: u32) -> Result<(), StoreError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds.min(43_200) as i32)
            .send()
            .await
            .map_err(|e| StoreError::aws("ChangeMessageVisibility", &self.url, e))?;
        Ok(())
    }
}

/// A queue of single JSON jobs: the dispatch continuation queue. Plain
/// `SendMessage`, retried by the SDK's own retry policy.
#[derive(Clone, Debug)]
pub struct JobQueue {
    client: Client,
    url: String,
}

impl JobQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        JobQueue {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one job; returns SQS's message id.
    pub async fn send(&self, body: &str) -> Result<String, StoreError> {
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| StoreError::aws("SendMessage", &self.url, e))?;
        Ok(out.message_id.unwrap_or_default())
    }

    /// Sends up to ten jobs in one `SendMessageBatch`, each delivered after
    /// `delay_seconds` (at most 900). `Err` names the first entry SQS refused;
    /// the others went.
    pub async fn send_many(&self, bodies: &[String], delay_seconds: u32) -> Result<(), StoreError> {
        if bodies.is_empty() {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(bodies.len().min(SEND_BATCH_LIMIT));
        for (i, body) in bodies.iter().take(SEND_BATCH_LIMIT).enumerate() {
            entries.push(
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .delay_seconds(delay_seconds.min(900) as i32)
                    .build()
                    .map_err(|e| StoreError::Decode {
                        resource: self.url.clone(),
                        what: "batch entry".into(),
                        message: e.to_string(),
                    })?,
            );
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| StoreError::aws("SendMessageBatch", &self.url, e))?;
        match out.failed.first() {
            Some(f) => Err(StoreError::Unprocessed {
                op: "SendMessageBatch",
                resource: self.url.clone(),
                unprocessed: out.failed.len(),
                attempts: 1,
            })
            .inspect_err(|_| tracing::warn!(entry = %f.id, code = %f.code, "SQS refused a job")),
            None => Ok(()),
        }
    }
}

/// A job received from a [`JobQueue`].
#[derive(Clone, Debug)]
pub struct Job {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
}

impl JobQueue {
    /// Up to `max` jobs (at most 10), waiting up to `wait_seconds` for the first.
    pub async fn receive(&self, max: i32, wait_seconds: i32) -> Result<Vec<Job>, StoreError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait_seconds.clamp(0, 20))
            .send()
            .await
            .map_err(|e| StoreError::aws("ReceiveMessage", &self.url, e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Job {
                message_id: m.message_id.unwrap_or_default(),
                receipt_handle: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            })
            .collect())
    }

    /// Removes a job that was handled.
    pub async fn delete(&self, job: &Job) -> Result<(), StoreError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&job.receipt_handle)
            .send()
            .await
            .map_err(|e| StoreError::aws("DeleteMessage", &self.url, e))?;
        Ok(())
    }
}
