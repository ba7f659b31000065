//! The emulator's fault switches (served by the router of `shared/local-aws/emulator.py`):
//! what each one does to which requests, and the counts of what fired.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Emulator;
use crate::{Error, admin};

impl Emulator {
    /// Fault injection: the next `calls` `BatchWriteItem` requests that write to `table` store
    /// only the first half of that table's requests and return the rest as
    /// `UnprocessedItems`, as DynamoDB does under throttling (moto never does by itself).
    pub async fn leave_unprocessed(&self, table: &str, calls: u32) -> Result<(), Error> {
        let body = serde_json::json!({ "table": table, "calls": calls }).to_string();
        let path = "/_local/faults/dynamodb/unprocessed";
        let (status, text) = admin::request(&self.endpoint, "POST", path, Some(&body)).await?;
        if (200..300).contains(&status) && text.contains("\"calls\"") {
            Ok(())
        } else {
            Err(self.no_router(status, &text))
        }
    }

    /// Fault injection: the next `calls` `SendMessageBatch` requests to the queue named
    /// `queue_name` (the last segment of its URL) send only the first half of their entries,
    /// rounded up, and return the others as `Failed` entries, as SQS does when it accepts part
    /// of a batch (moto never does by itself). The failures have code `InternalError`, or
    /// `InvalidParameterValue` with `SenderFault` set when `sender_fault` is true. A request of
    /// a single entry has that entry fail, so 10 entries go 5, 3, 1, 0, 0, … while calls last.
    pub async fn fail_send_batch(&self, queue_name: &str, calls: u32, sender_fault: bool) -> Result<(), Error> {
        let body = serde_json::json!({ "queue": queue_name, "calls": calls, "sender_fault": sender_fault }).to_string();
        let path = "/_local/faults/sqs/send-batch";
        let (status, text) = admin::request(&self.endpoint, "POST", path, Some(&body)).await?;
        if (200..300).contains(&status) && text.contains("\"calls\"") {
            Ok(())
        } else {
            Err(self.no_router(status, &text))
        }
    }

    /// Fault injection: the next `calls` `operation` requests that name `table` (for a
    /// transaction or a batch, among its tables) are applied as usual and their answer is then
    /// lost: an HTTP 500 `InternalServerError` ([`LostAnswer::Error`]) or a connection closed
    /// without an answer ([`LostAnswer::Drop`]). The SDKs' standard retry sends the same
    /// request again, and a conditional write then fails its own condition. `calls` 0 removes
    /// the switch. Count what fired with [`faults_fired`](Self::faults_fired)
    /// ([`Fault::LostAnswer`], by table).
    pub async fn lose_answers(
        &self,
        table: &str,
        operation: WriteOperation,
        calls: u32,
        mode: LostAnswer,
    ) -> Result<(), Error> {
        let body = serde_json::json!({
            "table": table,
            "operation": operation.as_str(),
            "calls": calls,
            "mode": mode.as_str(),
        });
        self.set_fault("/_local/faults/dynamodb/lose-answer", &body).await
    }

    /// Fault injection: requests that name `table` and match `requests` are answered HTTP 400
    /// `ProvisionedThroughputExceededException`, without being applied, while `bound` lasts
    /// (a number of calls, a duration of at most an hour, or both). Replaces an earlier
    /// throttle of the table; [`FaultBound::Calls`]`(0)` removes it. Counted as
    /// [`Fault::Throttle`], by table.
    pub async fn throttle(&self, table: &str, bound: FaultBound, requests: Throttled) -> Result<(), Error> {
        let (calls, seconds) = match bound {
            FaultBound::Calls(n) => (Some(n), None),
            FaultBound::For(d) => (None, Some(d.as_secs_f64())),
            FaultBound::CallsWithin(n, d) => (Some(n), Some(d.as_secs_f64())),
        };
        let (requests, operation) = match &requests {
            Throttled::All => ("all", None),
            Throttled::Reads => ("reads", None),
            Throttled::Writes => ("writes", None),
            Throttled::Operation(op) => ("all", Some(op.as_str())),
        };
        let mut body = serde_json::json!({ "table": table, "requests": requests });
        for (k, v) in [
            ("calls", calls.map(serde_json::Value::from)),
            ("seconds", seconds.map(serde_json::Value::from)),
            ("operation", operation.map(serde_json::Value::from)),
        ] {
            if let Some(v) = v {
                body[k] = v;
            }
        }
        self.set_fault("/_local/faults/dynamodb/throttle", &body).await
    }

    /// Fault injection: the next `calls` `GetObject` requests on `bucket` whose key starts with
    /// `key_prefix` ("" for every key) wait `delay` (at most two minutes) before they are
    /// answered; a delay longer than the caller's timeout makes the read hang for it. Only the
    /// delayed requests wait. Replaces an earlier delay of the bucket; `calls` 0 removes it.
    /// Counted as [`Fault::SlowGet`], by bucket.
    pub async fn delay_get_object(
        &self,
        bucket: &str,
        key_prefix: &str,
        calls: u32,
        delay: Duration,
    ) -> Result<(), Error> {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let body = serde_json::json!({
            "bucket": bucket,
            "prefix": key_prefix,
            "calls": calls,
            "delay_ms": delay_ms,
        });
        self.set_fault("/_local/faults/s3/slow-get", &body).await
    }

    /// Removes every fault switch set on the table, queue or bucket named `resource`, and its
    /// counts. Other resources' switches (other tests') stay.
    pub async fn clear_faults(&self, resource: &str) -> Result<(), Error> {
        let body = serde_json::json!({ "resource": resource });
        self.set_fault("/_local/faults/clear", &body).await
    }

    /// How many calls each fault switch has faulted since the emulator started or its counts
    /// were cleared, by switch and resource: a test asserts that its fault fired.
    pub async fn faults_fired(&self) -> Result<FaultCounts, Error> {
        let (status, text) = admin::request(&self.endpoint, "GET", "/_local/faults", None).await?;
        #[derive(serde::Deserialize)]
        struct Report {
            fired: BTreeMap<String, BTreeMap<String, u64>>,
        }
        match serde_json::from_str::<Report>(&text) {
            Ok(r) if (200..300).contains(&status) => Ok(FaultCounts(r.fired)),
            _ => Err(self.no_router(status, &text)),
        }
    }

    async fn set_fault(&self, path: &str, body: &serde_json::Value) -> Result<(), Error> {
        let (status, text) = admin::request(&self.endpoint, "POST", path, Some(&body.to_string())).await?;
        match status {
            200..300 => Ok(()),
            // The router refused the switch (a plain moto server answers 404 or its own page).
            400 if text.contains("\"error\"") => Err(Error::Admin {
                path: path.to_owned(),
                detail: text.chars().take(200).collect(),
            }),
            _ => Err(self.no_router(status, &text)),
        }
    }
}

/// A DynamoDB write operation, for [`Emulator::lose_answers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOperation {
    PutItem,
    UpdateItem,
    DeleteItem,
    BatchWriteItem,
    TransactWriteItems,
}

impl WriteOperation {
    /// The operation's name in DynamoDB's API.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOperation::PutItem => "PutItem",
            WriteOperation::UpdateItem => "UpdateItem",
            WriteOperation::DeleteItem => "DeleteItem",
            WriteOperation::BatchWriteItem => "BatchWriteItem",
            WriteOperation::TransactWriteItems => "TransactWriteItems",
        }
    }
}

/// How an applied write's answer is lost ([`Emulator::lose_answers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostAnswer {
    /// HTTP 500 `InternalServerError`, in DynamoDB's JSON.
    Error,
    /// The connection is closed without an answer: the SDK sees an incomplete message, a
    /// transient I/O error.
    Drop,
}

impl LostAnswer {
    fn as_str(self) -> &'static str {
        match self {
            LostAnswer::Error => "error",
            LostAnswer::Drop => "drop",
        }
    }
}

/// How long a fault lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultBound {
    /// The next n matching calls (0 removes the switch).
    Calls(u32),
    /// Every matching call for this long (at most an hour).
    For(Duration),
    /// The next n matching calls, within this long.
    CallsWithin(u32, Duration),
}

/// Which requests of a table are throttled ([`Emulator::throttle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Throttled {
    /// Reads and writes.
    All,
    /// GetItem, BatchGetItem, Query, Scan, TransactGetItems.
    Reads,
    /// PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems.
    Writes,
    /// One operation, by its name in DynamoDB's API (`"Query"`, `"UpdateItem"`, …).
    Operation(String),
}

/// A fault switch of the emulator, as [`FaultCounts`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// [`Emulator::leave_unprocessed`], by table.
    Unprocessed,
    /// [`Emulator::fail_send_batch`], by queue name.
    SendBatch,
    /// [`Emulator::lose_answers`], by table.
    LostAnswer,
    /// [`Emulator::throttle`], by table.
    Throttle,
    /// [`Emulator::delay_get_object`], by bucket.
    SlowGet,
}

impl Fault {
    /// The switch's name in the emulator's report (`GET /_local/faults`).
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Unprocessed => "dynamodb/unprocessed",
            Fault::SendBatch => "sqs/send-batch",
            Fault::LostAnswer => "dynamodb/lose-answer",
            Fault::Throttle => "dynamodb/throttle",
            Fault::SlowGet => "s3/slow-get",
        }
    }
}

/// How many calls each fault switch faulted ([`Emulator::faults_fired`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts(BTreeMap<String, BTreeMap<String, u64>>);

impl FaultCounts {
    /// Calls faulted by `fault` on the resource named exactly `resource`.
    pub fn fired(&self, fault: Fault, resource: &str) -> u64 {
        self.0
            .get(fault.as_str())
            .and_then(|by_resource| by_resource.get(resource))
            .copied()
            .unwrap_or(0)
    }

    /// Every count: switch name → resource → calls.
    pub fn all(&self) -> &BTreeMap<String, BTreeMap<String, u64>> {
        &self.0
    }
}
