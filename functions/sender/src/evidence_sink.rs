//! Where the mock provider's simulated delivery evidence goes in a stack:
//! the evidence queue the delivery-events function consumes, the same queue
//! the EventBridge rules feed with the real services' events. Each message
//! is one event, delivered after a short delay as a real provider's events
//! come seconds after the send (by then the sender has recorded the send,
//! so the delivery-events function rarely has to wait for it).

use std::time::Duration;

use adapters::queue::JobQueue;
use providers::{BoxFuture, EvidenceSink, ProviderError};

/// The mock's evidence on the evidence queue (`EVIDENCE_QUEUE_URL`).
pub struct QueueSink {
    queue: JobQueue,
    delay: Duration,
}

impl QueueSink {
    pub fn new(queue: JobQueue, delay: Duration) -> Self {
        QueueSink { queue, delay }
    }
}

impl EvidenceSink for QueueSink {
    fn emit<'a>(&'a self, events: &'a [String]) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.queue
                .send_many(events, self.delay.as_secs() as u32)
                .await
                .map_err(|e| ProviderError::retryable("EvidenceQueue", e.to_string()))
        })
    }
}
