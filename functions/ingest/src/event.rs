//! What the ingest function is given and what it answers, for each of the state machine's
//! three steps (told apart by the input's shape, [`Input`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::zone::Kind;

/// The EventBridge event S3 sends when an object is created in the bucket (detail type
/// `Object Created`), as the rule hands it to the state machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectCreated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The event's id (a UUID).
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// When the object was created: an upload's time, against which preferences set through
    /// the API are weighed.
    pub time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    pub detail: Detail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub bucket: Bucket,
    pub object: Object,
    #[serde(default, rename = "request-id", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, rename = "source-ip-address", skip_serializing_if = "Option::is_none")]
    pub source_ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub key: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, rename = "version-id", skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
}

/// The first step's input: the event, and the execution that handles it (absent when the
/// function is invoked with the bare event, as `sam local invoke` does).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    pub event: ObjectCreated,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
}

/// One file being ingested, as every step after the plan knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRef {
    /// Names the ingestion's working objects (`ingest/<id>/…`): the execution's name, or the
    /// event's id without one.
    pub id: String,
    pub bucket: String,
    pub key: String,
    /// The object's ETag, quoted (`"…"`): every read asks for exactly this version.
    pub etag: String,
    pub size: u64,
    /// The event's time (the upload).
    pub uploaded_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    pub started_at: DateTime<Utc>,
}

/// The plan's answer. `status` is what the state machine's choice reads: `planned` sends
/// the chunks of `work` to the map, anything else (`done`, `rejected`) ends the execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanOutput {
    pub status: PlanStatus,
    pub kind: Option<Kind>,
    /// Where the report was written (`done` and `rejected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<Work>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    /// A customers file was checked and cut into chunks; the map applies them.
    Planned,
    /// Applied in the plan step itself (a catalog, a usage file); the report is written.
    Done,
    /// The whole file was rejected; the report is written, nothing was applied.
    Rejected,
}

/// A planned customers file: where its chunk manifest is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Work {
    pub file: FileRef,
    pub manifest_bucket: String,
    pub manifest_key: String,
    pub plan_key: String,
    pub chunks: u32,
    /// The map's `MaxConcurrencyPath`.
    pub max_concurrency: u32,
}

/// One item of the chunk manifest: a byte range of the file that starts on a line start,
/// its first line's number, and the lines in it the plan rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub file: FileRef,
    pub index: u32,
    /// First byte (inclusive).
    pub start: u64,
    /// Last byte (exclusive).
    pub end: u64,
    /// The 1-based number of the line at `start`.
    pub first_line: u64,
    /// Lines of this chunk not to apply (rejected by the plan), ascending.
    #[serde(default)]
    pub skip: Vec<u64>,
}

/// What applying one chunk did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkResult {
    pub index: u32,
    /// Records read (not blank, not skipped).
    pub records: u64,
    /// Written: new or changed customers.
    pub applied: u64,
    /// Already stored exactly so: not written.
    pub unchanged: u64,
    /// Customers whose preferences set through the API were kept.
    pub preferences_kept: u64,
    /// DynamoDB requests (`BatchGetItem` and `BatchWriteItem`, retries included).
    pub requests: u64,
}

/// The last step's input: the planned file and the map's results. A result that is not a
/// [`ChunkResult`] (`null`, or an error of a child execution that failed) counts as a chunk
/// that did not report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinishInput {
    pub work: Work,
    #[serde(default)]
    pub results: Vec<serde_json::Value>,
}

/// What the last step (and the plan, for the files it finishes) answers: the report's
/// status and where it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinishOutput {
    pub status: String,
    pub report: String,
    pub applied: u64,
    pub unchanged: u64,
    pub rejected_lines: u64,
}

/// The function's input: `{"plan": …}` (or the bare S3 event), `{"apply": chunk}` or
/// `{"finish": …}`.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    Plan(Box<PlanInput>),
    Apply(Box<Chunk>),
    Finish(Box<FinishInput>),
}

/// The tagged form, as the state machine sends it.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Tagged {
    Plan(Box<PlanInput>),
    Apply(Box<Chunk>),
    Finish(Box<FinishInput>),
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        // The bare EventBridge event (a sample event, a direct invocation).
        let value = if value.get("detail-type").is_some() {
            serde_json::json!({"plan": {"event": value}})
        } else {
            value
        };
        match domain::decode::from_value::<Tagged>(value) {
            Ok(Tagged::Plan(p)) => Ok(Input::Plan(p)),
            Ok(Tagged::Apply(c)) => Ok(Input::Apply(c)),
            Ok(Tagged::Finish(f)) => Ok(Input::Finish(f)),
            Err(e) => Err(serde::de::Error::custom(e)),
        }
    }
}

impl Serialize for Input {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Input::Plan(p) if p.execution.is_none() => p.event.serialize(s),
            Input::Plan(p) => Tagged::Plan(p.clone()).serialize(s),
            Input::Apply(c) => Tagged::Apply(c.clone()).serialize(s),
            Input::Finish(f) => Tagged::Finish(f.clone()).serialize(s),
        }
    }
}

/// The function's answer to each step.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Plan(PlanOutput),
    Apply(ChunkResult),
    Finish(FinishOutput),
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn event_json() -> serde_json::Value {
        serde_json::json!({
            "version": "0",
            "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2026-11-20T01:00:00Z",
            "region": "ap-northeast-2",
            "resources": ["arn:aws:s3:::billing-data"],
            "detail": {
                "version": "0",
                "bucket": {"name": "billing-data"},
                "object": {"key": "incoming/customers/crm.jsonl", "size": 120, "etag": "abc", "sequencer": "00"},
                "request-id": "R1", "requester": "123456789012", "source-ip-address": "10.0.0.1", "reason": "PutObject"
            }
        })
    }

    #[test]
    fn the_bare_event_is_a_plan_and_round_trips() {
        let v = event_json();
        let input: Input = serde_json::from_value(v.clone()).unwrap();
        let Input::Plan(p) = &input else { panic!("{input:?}") };
        assert_eq!(p.event.detail.object.key, "incoming/customers/crm.jsonl");
        assert_eq!(serde_json::to_value(&input).unwrap(), v);
        let tagged = serde_json::json!({"plan": {"event": v, "execution": "arn:x"}});
        let input: Input = serde_json::from_value(tagged.clone()).unwrap();
        assert_eq!(serde_json::to_value(&input).unwrap(), tagged);
    }

    #[test]
    fn a_bad_input_names_the_field_not_the_value() {
        let mut v = event_json();
        v["detail"]["object"]["size"] = "kim@example.com".into();
        let e = serde_json::from_value::<Input>(v).unwrap_err().to_string();
        assert!(e.contains("detail.object.size") && !e.contains("kim@"), "{e}");
    }
}
