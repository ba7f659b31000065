//! Loading a data set the way production data arrives, bad records included.

use adapters::data_bucket::{SHARD_DIRECTORY_KEY, ShardDirectory};
use integration_tests::{Month, append, generate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_customer_records_are_named_counted_and_left_out() {
    let data = generate(300, 200).unwrap();
    let entry = &data.manifest.shards[0];
    let path = data.manifest.shard_paths(&data.path, entry).0;
    let text = std::fs::read_to_string(&path).unwrap();
    let good_lines = text.lines().count();
    let template: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let other: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    let variant = |id: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = template.clone();
        v["customer_id"] = id.into();
        f(&mut v);
        format!("{v}\n")
    };
    let mut bad = String::new();
    bad += &variant("C9000001", &|v| v["send_day"] = 0.into());
    bad += &variant("C9000002", &|v| v["send_day"] = 32.into());
    bad += &variant("C9000003", &|v| v["dnd"] = serde_json::json!([4, 5, 6, 7, 8, 9]));
    // Contact data sealed for another customer does not open for this one.
    bad += &variant("C9000004", &|v| v["contact"] = other["contact"].clone());
    bad += "{\"customer_id\": \"C9000005\", \"plan\": \n";
    append(&path, &bad).unwrap();

    let month = Month::new("load-bad-customers").await.unwrap();
    let report = month.load(&data).await.unwrap();
    assert_eq!(report.customers_loaded, 300, "every good record is loaded");
    assert_eq!(report.rejected.len(), 5, "{:#?}", report.rejected);
    let file = "customers/shard-00000.jsonl";
    let expect = [
        (format!("line {}", good_lines + 1), "expected a send day of 1-31"),
        (format!("line {}", good_lines + 2), "expected a send day of 1-31"),
        ("customer C9000003".to_owned(), "leave no slot outside the quiet window"),
        (
            "customer C9000004".to_owned(),
            "contact data: sealed name value cannot be decrypted",
        ),
        (format!("line {}", good_lines + 5), ""),
    ];
    for (place, rule) in expect {
        assert!(
            report
                .rejected
                .iter()
                .any(|r| r.contains(file) && r.contains(&place) && r.contains(rule)),
            "no rejection naming {place} and {rule:?} in {:#?}",
            report.rejected
        );
    }
    for r in &report.rejected {
        assert!(!r.contains("@example") && !r.contains("010-"), "personal data in {r}");
    }
    // The stores hold exactly the good records, and the directory says so.
    assert_eq!(month.customers.shard(0).await.unwrap().customers.len(), 200);
    assert!(month.customers.get("C9000003").await.unwrap().is_none());
    let dir: ShardDirectory = month.bucket.get_json(SHARD_DIRECTORY_KEY).await.unwrap().unwrap();
    assert_eq!(
        dir.shards.iter().map(|s| (s.shard, s.customers)).collect::<Vec<_>>(),
        [(0, 200), (1, 100)]
    );
    assert_eq!(report.usage_files, 2);
    assert!(month.bucket.get("2026-11".parse().unwrap(), 1).await.unwrap().is_some());
    // Loading again changes nothing (the catalog is already published, records are replaced).
    let again = month.load(&data).await.unwrap();
    assert_eq!(again.customers_loaded, 300);
    assert_eq!(again.catalog_outcome, Some(adapters::PutOutcome::AlreadyExists));
}
