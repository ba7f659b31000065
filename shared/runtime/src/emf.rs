//! CloudWatch metrics as log lines: one Embedded Metric Format document per call, which
//! CloudWatch Logs turns into metrics without a `PutMetricData` request. Every function that
//! counts something (the senders per batch, ingest per file) writes its counts this way.

use serde_json::{Map, Value, json};

/// One EMF document: `counts` as `Count` metrics of `namespace`, under the one dimension set
/// `dimensions` (name and value of each), at `timestamp_millis` (milliseconds since the Unix
/// epoch). Values are written as given; names are the caller's constants.
pub fn line(namespace: &str, dimensions: &[(&str, &str)], counts: &[(&str, u64)], timestamp_millis: i64) -> String {
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_millis,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": counts.iter().map(|(name, _)| json!({"Name": name, "Unit": "Count"})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        doc.insert((*name).into(), Value::String((*value).to_owned()));
    }
    for (name, value) in counts {
        doc.insert((*name).into(), json!(value));
    }
    Value::Object(doc).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_declared_and_valued_under_its_dimensions() {
        let v: Value = serde_json::from_str(&line(
            "Ns/X",
            &[("Stack", "s1"), ("Kind", "usage")],
            &[("A", 3), ("B", 0)],
            7,
        ))
        .unwrap();
        let declared = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "Ns/X");
        assert_eq!(declared["Dimensions"], json!([["Stack", "Kind"]]));
        assert_eq!(
            declared["Metrics"],
            json!([{"Name": "A", "Unit": "Count"}, {"Name": "B", "Unit": "Count"}])
        );
        assert_eq!(v["_aws"]["Timestamp"], 7);
        assert_eq!(
            (&v["Stack"], &v["Kind"], &v["A"], &v["B"]),
            (&json!("s1"), &json!("usage"), &json!(3), &json!(0))
        );
    }
}
