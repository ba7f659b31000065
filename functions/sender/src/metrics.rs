//! CloudWatch Embedded Metric Format: one JSON line per invocation on
//! stdout, which CloudWatch Logs turns into metrics (namespace
//! [`NAMESPACE`], dimensions `Stack` and `Channel`) without any API call.
//! `Stack` keeps two stages deployed in one account and region apart on the
//! dashboard. Counts only; never an id or anything personal.

use chrono::{DateTime, Utc};
use domain::Channel;

use crate::SendReport;

pub const NAMESPACE: &str = "BillingPlatform/Delivery";

/// The metrics of one invocation, in the order of the report.
pub fn metrics(r: &SendReport) -> [(&'static str, u64); 12] {
    [
        ("Sent", r.sent + r.recovered + r.unconfirmed),
        ("Failed", r.failed),
        ("Retried", r.retried),
        ("Fallback", r.fallback),
        ("Dead", r.dead),
        ("Deferred", r.deferred),
        ("DuplicatesSuppressed", r.duplicates_suppressed),
        ("Unconfirmed", r.unconfirmed),
        ("Parked", r.parked),
        ("Busy", r.busy),
        ("Throttled", r.throttled),
        ("Suppressed", r.suppressed),
    ]
}

/// One EMF document for `report`.
pub fn emf_line(stack: &str, channel: Channel, report: &SendReport, at: DateTime<Utc>) -> String {
    runtime::emf::line(
        NAMESPACE,
        &[("Stack", stack), ("Channel", channel.as_str())],
        &metrics(report),
        at.timestamp_millis(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn one_document_with_every_metric_declared_and_valued() {
        let report = SendReport {
            sent: 7,
            recovered: 1,
            retried: 2,
            failed: 2,
            duplicates_suppressed: 3,
            ..SendReport::default()
        };
        let line = emf_line("billing-prod", Channel::Sms, &report, DateTime::UNIX_EPOCH);
        let v: Value = serde_json::from_str(&line).unwrap();
        let declared = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], NAMESPACE);
        assert_eq!(declared["Dimensions"], json!([["Stack", "Channel"]]));
        assert_eq!((&v["Stack"], &v["Channel"]), (&json!("billing-prod"), &json!("sms")));
        let names: Vec<&str> = declared["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in &names {
            assert!(v[*name].is_u64(), "{name} has no value");
        }
        assert_eq!((v["Sent"].as_u64(), v["Retried"].as_u64()), (Some(8), Some(2)));
        assert_eq!(v["DuplicatesSuppressed"].as_u64(), Some(3));
        assert_eq!(v["Channel"], "sms");
        assert!(!line.contains('\n'));
    }
}
