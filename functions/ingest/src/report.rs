//! The report of one processed file (`ingest-reports/…json`, and `rejected/…json` when
//! anything was rejected) and the metric line. Neither holds a personal value: reasons name
//! fields and rules; customer ids and line numbers are not personal.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::records::{Problem, Rejection};
use crate::zone::Kind;

/// The metrics' namespace (the senders' is `BillingPlatform/Delivery`).
pub const NAMESPACE: &str = "BillingPlatform/Ingest";

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Applied,
    AppliedWithRejections,
    Rejected,
    /// A chunk of a customers file did not finish: the lines of the chunks that did are
    /// applied, the rest not; uploading the file again applies it whole.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::AppliedWithRejections => "applied_with_rejections",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileError {
    pub field: String,
    pub reason: String,
}

impl From<Problem> for FileError {
    fn from(p: Problem) -> Self {
        FileError {
            field: p.field,
            reason: p.reason,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub file: String,
    pub etag: String,
    /// `None` when the key matches no kind.
    pub kind: Option<Kind>,
    pub status: Status,
    pub lines: u64,
    pub applied: u64,
    pub unchanged: u64,
    pub rejected_lines: u64,
    pub rejections: Vec<Rejection>,
    pub rejections_truncated: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_error: Option<FileError>,
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    pub started_at: String,
    pub finished_at: String,
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Report {
    /// An empty report of `file`, started at `started_at`.
    pub fn new(file: &str, etag: &str, kind: Option<Kind>, started_at: DateTime<Utc>) -> Self {
        Report {
            file: file.to_owned(),
            etag: etag.to_owned(),
            kind,
            status: Status::Applied,
            lines: 0,
            applied: 0,
            unchanged: 0,
            rejected_lines: 0,
            rejections: Vec::new(),
            rejections_truncated: 0,
            file_error: None,
            notes: Vec::new(),
            catalog_version: None,
            cycle: None,
            shard: None,
            usage_key: None,
            shards: None,
            execution: None,
            started_at: rfc3339(started_at),
            finished_at: rfc3339(started_at),
        }
    }

    /// The whole file rejected: nothing applied.
    pub fn reject_file(&mut self, problem: Problem) {
        self.status = Status::Rejected;
        self.applied = 0;
        self.unchanged = 0;
        self.file_error = Some(problem.into());
    }

    /// Sets the status from the counts (a file not rejected as a whole).
    pub fn settle_status(&mut self) {
        if self.status != Status::Rejected && self.status != Status::Failed {
            self.status = if self.rejected_lines > 0 {
                Status::AppliedWithRejections
            } else {
                Status::Applied
            };
        }
    }

    /// Whether the report also goes to `rejected/`.
    pub fn has_rejections(&self) -> bool {
        self.status != Status::Applied
    }

    /// The metric line (CloudWatch embedded metric format): counts by kind.
    pub fn emf_line(&self, stack: &str, at: DateTime<Utc>) -> String {
        let values = [
            ("IngestedRecords", self.applied),
            ("UnchangedRecords", self.unchanged),
            ("RejectedRecords", self.rejected_lines),
            (
                "RejectedFiles",
                u64::from(matches!(self.status, Status::Rejected | Status::Failed)),
            ),
        ];
        let kind = self.kind.map_or("unknown", Kind::as_str);
        runtime::emf::line(
            NAMESPACE,
            &[("Stack", stack), ("Kind", kind)],
            &values,
            at.timestamp_millis(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn the_metric_line_declares_every_metric_by_kind() {
        let mut r = Report::new("incoming/x", "\"e\"", Some(Kind::Usage), DateTime::UNIX_EPOCH);
        r.applied = 5;
        r.rejected_lines = 1;
        r.settle_status();
        assert_eq!(r.status, Status::AppliedWithRejections);
        let v: Value = serde_json::from_str(&r.emf_line("billing", DateTime::UNIX_EPOCH)).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(
            (&v["Kind"], &v["IngestedRecords"], &v["RejectedFiles"]),
            (&json!("usage"), &json!(5), &json!(0))
        );
        let s = serde_json::to_value(&r).unwrap();
        assert_eq!(s["status"], "applied_with_rejections");
        assert!(s.get("file_error").is_none());
    }
}
