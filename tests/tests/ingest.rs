//! The drop zone against the emulator: files put under `incoming/` of a fresh stack's data
//! bucket, ingested by the deployable state machine (`infra/statemachines/ingest.asl.json`)
//! with the ingest function hosted in this process, started with the event S3 sends
//! through EventBridge. Every report is checked to hold no contact value.

use integration_tests::ingest::{ClearCustomer, DropZone, crm_customers, echoes_contact, jsonl};
use serde_json::Value;

/// Small chunks, so that a few hundred customers go through the map in several children.
const SMALL_CHUNKS: &[(&str, &str)] = &[("INGEST_CHUNK_LINES", "40"), ("INGEST_MAX_CONCURRENCY", "4")];

fn rejections(u: &integration_tests::ingest::Upload) -> Vec<(u64, String)> {
    u.report
        .as_ref()
        .and_then(|r| r["rejections"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap_or(0),
                r["field"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn no_contact(u: &integration_tests::ingest::Upload, customers: &[ClearCustomer]) {
    assert!(!u.report_text.is_empty(), "{}: no report", u.key);
    assert_eq!(echoes_contact(&u.report_text, customers), None, "{}", u.report_text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_customers_file_twice_leaves_the_tables_identical() {
    let zone = DropZone::new("ingest-twice", SMALL_CHUNKS).await.unwrap();
    let customers = crm_customers(300, 3);
    let file = jsonl(&customers);
    let first = zone.upload("incoming/customers/crm.jsonl", file.clone()).await.unwrap();
    assert_eq!(first.status(), "applied", "{first:?}");
    assert_eq!((first.count("lines"), first.count("applied")), (300, 300));
    assert!(first.rejected_copy.is_none());
    no_contact(&first, &customers);
    let after_first = zone.customer_items().await.unwrap();
    assert_eq!(after_first.len(), 300);

    let second = zone.upload("incoming/customers/crm.jsonl", file).await.unwrap();
    assert_eq!(second.status(), "applied", "{second:?}");
    assert_eq!((second.count("applied"), second.count("unchanged")), (0, 300));
    assert_eq!(zone.customer_items().await.unwrap(), after_first, "the tables changed");

    let directory: Value = zone
        .month
        .bucket
        .get_json(adapters::data_bucket::SHARD_DIRECTORY_KEY)
        .await
        .unwrap()
        .expect("the shard directory is written");
    assert_eq!(
        directory,
        serde_json::json!({"shards": [
            {"shard": 0, "customers": 100}, {"shard": 1, "customers": 100}, {"shard": 2, "customers": 100}
        ]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_percent_bad_lines_are_reported_by_number_and_reason_and_the_rest_applied() {
    let zone = DropZone::new("ingest-bad-lines", SMALL_CHUNKS).await.unwrap();
    let customers = crm_customers(400, 4);
    let mut lines: Vec<String> = customers.iter().map(|c| c.line.to_string()).collect();
    // Four bad lines of 400 (line numbers are 1-based).
    let mut bad_email = customers[9].line.clone();
    bad_email["contact"]["email"] = customers[9].phone.clone().into();
    lines[9] = bad_email.to_string();
    let mut bad_day = customers[99].line.clone();
    bad_day["send_day"] = 0.into();
    lines[99] = bad_day.to_string();
    let mut no_slot = customers[199].line.clone();
    no_slot["dnd"] = serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    lines[199] = no_slot.to_string();
    lines[299] = format!("{{\"customer_id\": \"{}\", \"contact\": ", customers[299].id);
    let upload = zone
        .upload("incoming/customers/crm-2026-11.jsonl", lines.join("\n") + "\n")
        .await
        .unwrap();
    assert_eq!(upload.status(), "applied_with_rejections", "{upload:?}");
    assert_eq!(
        (
            upload.count("lines"),
            upload.count("applied"),
            upload.count("rejected_lines")
        ),
        (400, 396, 4)
    );
    assert_eq!(
        rejections(&upload),
        [
            (10, "contact.email".to_owned()),
            (100, "send_day".to_owned()),
            (200, "dnd".to_owned()),
            (300, "line".to_owned()),
        ]
    );
    let reasons: Vec<&str> = upload.report.as_ref().unwrap()["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.iter().all(|r| !r.is_empty()), "{reasons:?}");
    assert_eq!(
        upload.rejected_copy.as_ref(),
        upload.report.as_ref(),
        "rejected/ holds the same report"
    );
    no_contact(&upload, &customers);
    // Nothing of a rejected line is stored; every other line is.
    let stored: Vec<String> = zone
        .customer_items()
        .await
        .unwrap()
        .iter()
        .map(|i| i["customer_id"].clone())
        .collect();
    assert_eq!(stored.len(), 396);
    for i in [9, 99, 199, 299] {
        assert!(
            !stored.iter().any(|s| s.contains(&customers[i].id)),
            "{} stored",
            customers[i].id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_for_an_unknown_customer_is_rejected_by_line_and_the_rest_stored_where_settlement_reads() {
    let zone = DropZone::new("ingest-usage", &[]).await.unwrap();
    let catalog = std::fs::read(local_aws::project_root().unwrap().join("catalog/2026-v1.json")).unwrap();
    let published = zone.upload("incoming/catalog/2026-v1.json", catalog).await.unwrap();
    assert_eq!(published.status(), "applied", "{published:?}");
    let customers = crm_customers(6, 2);
    let up = zone
        .upload("incoming/customers/crm.jsonl", jsonl(&customers))
        .await
        .unwrap();
    assert_eq!(up.status(), "applied", "{up:?}");
    // Shard 1 holds C0000001, C0000003, C0000005.
    let csv = "customer_id,product,quantity,amount\nC0000001,DATA,51200,\nC0000404,DATA,1,\nC0000003,VOICE,3600,\nC0000002,DATA,5,\n";
    let usage = zone
        .upload("incoming/usage/2026-11/shard-00001.csv", csv)
        .await
        .unwrap();
    assert_eq!(usage.status(), "applied_with_rejections", "{usage:?}");
    let report = usage.report.as_ref().unwrap();
    assert_eq!(report["usage_key"], "usage/2026-11/shard-00001.csv");
    assert_eq!(
        (report["cycle"].as_str(), report["shard"].as_u64()),
        (Some("2026-11"), Some(1))
    );
    assert_eq!(
        rejections(&usage),
        [(3, "customer_id".to_owned()), (5, "customer_id".to_owned())]
    );
    assert_eq!(report["rejections"][0]["reason"], "no such customer in shard 1");
    let stored = zone
        .month
        .bucket
        .get("2026-11".parse::<domain::Cycle>().unwrap(), 1)
        .await
        .unwrap()
        .expect("the usage file is stored");
    assert_eq!(
        String::from_utf8(stored).unwrap(),
        "customer_id,product,quantity,amount\nC0000001,DATA,51200,\nC0000003,VOICE,3600,\n"
    );
    no_contact(&usage, &customers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_that_cannot_be_ingested_are_rejected_whole_with_a_clear_report() {
    let zone = DropZone::new("ingest-files", &[("INGEST_MAX_BYTES_CUSTOMERS", "3000")])
        .await
        .unwrap();
    let customers = crm_customers(12, 2);
    // Not UTF-8: a Latin-1 byte on line 3.
    let mut bytes = jsonl(&customers[..2]).into_bytes();
    let mut third = customers[2].line.clone();
    third["contact"]["name"] = "Jos\u{e9}".into();
    let third = third.to_string().replace('\u{e9}', "\u{1}");
    bytes.extend(third.bytes().map(|b| if b == 1 { 0xE9 } else { b }));
    bytes.push(b'\n');
    let latin1 = zone.upload("incoming/customers/latin1.jsonl", bytes).await.unwrap();
    assert_eq!(latin1.status(), "rejected", "{latin1:?}");
    let report = latin1.report.as_ref().unwrap();
    assert_eq!(
        report["file_error"]["reason"],
        "is not UTF-8 (first bad byte on line 3)"
    );
    assert_eq!(
        (report["applied"].as_u64(), report["kind"].as_str()),
        (Some(0), Some("customers"))
    );
    assert!(latin1.rejected_copy.is_some());
    // Over the limit (3,000 bytes here).
    let big = jsonl(&customers);
    assert!(big.len() > 3000);
    let over = zone.upload("incoming/customers/big.jsonl", big).await.unwrap();
    assert_eq!(over.status(), "rejected");
    let reason = over.report.as_ref().unwrap()["file_error"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("over the limit of 3000 bytes"), "{reason}");
    // Empty.
    let empty = zone.upload("incoming/customers/empty.jsonl", Vec::new()).await.unwrap();
    assert_eq!(empty.status(), "rejected");
    assert_eq!(empty.report.as_ref().unwrap()["file_error"]["reason"], "is empty");
    // A key of none of the three shapes.
    let stray = zone.upload("incoming/notes.txt", "hello").await.unwrap();
    assert_eq!(stray.status(), "rejected");
    assert_eq!(stray.report.as_ref().unwrap()["file_error"]["field"], "key");
    for u in [&latin1, &over, &empty, &stray] {
        no_contact(u, &customers);
        assert!(
            u.execution.status == aws_sdk_sfn::types::ExecutionStatus::Succeeded,
            "{u:?}"
        );
    }
    assert!(
        zone.customer_items().await.unwrap().is_empty(),
        "a rejected file applies nothing"
    );

    // A byte-order mark is skipped and noted.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(jsonl(&customers[..3]).bytes());
    let with_bom = zone.upload("incoming/customers/bom.jsonl", bom).await.unwrap();
    assert_eq!(with_bom.status(), "applied", "{with_bom:?}");
    assert_eq!(with_bom.count("applied"), 3);
    assert_eq!(
        with_bom.report.as_ref().unwrap()["notes"],
        serde_json::json!(["a UTF-8 byte-order mark was skipped"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_catalog_is_published_once_and_never_changed_under_its_version() {
    let zone = DropZone::new("ingest-catalog", &[]).await.unwrap();
    let text = std::fs::read_to_string(local_aws::project_root().unwrap().join("catalog/2026-v1.json")).unwrap();
    let first = zone
        .upload("incoming/catalog/2026-v1.json", text.clone())
        .await
        .unwrap();
    assert_eq!((first.status(), first.count("applied")), ("applied", 1), "{first:?}");
    let again = zone.upload("incoming/catalog/again.json", text.clone()).await.unwrap();
    assert_eq!((again.status(), again.count("unchanged")), ("applied", 1), "{again:?}");
    let mut changed: Value = serde_json::from_str(&text).unwrap();
    let plans = changed["plans"].as_array_mut().expect("the catalog has plans");
    let fee = plans[0]["monthly_fee"].as_i64().expect("a plan has a monthly fee");
    plans[0]["monthly_fee"] = (fee + 1000).into();
    let refused = zone
        .upload("incoming/catalog/changed.json", changed.to_string())
        .await
        .unwrap();
    assert_eq!(refused.status(), "rejected", "{refused:?}");
    let reason = refused.report.as_ref().unwrap()["file_error"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("already published with different content; publish it under a new version"),
        "{reason}"
    );
    let stored = zone.month.catalogs.get("2026-v1").await.unwrap().unwrap();
    assert_eq!(
        stored.to_json(),
        billing::Catalog::from_json(&text, "c").unwrap().to_json()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrected_file_supersedes_by_key_and_a_preference_set_through_the_api_is_kept() {
    let zone = DropZone::new("ingest-supersede", &[]).await.unwrap();
    let customers = crm_customers(20, 2);
    let mut lines: Vec<String> = customers.iter().map(|c| c.line.to_string()).collect();
    lines[4] = "{}".into();
    let key = "incoming/customers/crm.jsonl";
    let first = zone.upload(key, lines.join("\n")).await.unwrap();
    assert_eq!(first.status(), "applied_with_rejections", "{first:?}");
    assert_eq!(rejections(&first).len(), 1);
    assert!(first.rejected_copy.is_some());

    // The API sets C0000003's send day after the upload (preferences_updated_at later than
    // the next upload's time).
    let uploaded_at = chrono::Utc::now();
    let table = zone.month.customers.table().to_owned();
    let ddb = adapters::dynamodb_client(&zone.month.config);
    use aws_sdk_dynamodb::types::AttributeValue as A;
    ddb.update_item()
        .table_name(&table)
        .key("shard", A::N("1".into()))
        .key("customer_id", A::S("C0000003".into()))
        .update_expression("SET send_day = :d, preferences_updated_at = :t")
        .expression_attribute_values(":d", A::N("9".into()))
        .expression_attribute_values(
            ":t",
            A::S((uploaded_at + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        )
        .send()
        .await
        .unwrap();

    // The corrected file: line 5 fixed, C0000003's plan and send day changed, C0000006's plan
    // changed.
    let mut corrected = customers.clone();
    corrected[3].line["plan"] = "5G_PREMIUM".into();
    corrected[3].line["send_day"] = 27.into();
    corrected[6].line["plan"] = "5G_PREMIUM".into();
    let second = zone.upload_at(key, jsonl(&corrected), uploaded_at).await.unwrap();
    assert_eq!(second.status(), "applied", "{second:?}");
    assert_eq!(
        (second.count("applied"), second.count("unchanged")),
        (3, 17),
        "{second:?}"
    );
    assert!(
        second.rejected_copy.is_none(),
        "the corrected upload's stale rejected/ report is removed"
    );
    let notes = second.report.as_ref().unwrap()["notes"].to_string();
    assert!(notes.contains("kept for 1 customers"), "{notes}");
    let c3 = zone
        .month
        .customers
        .get_in_shard(1, "C0000003")
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (c3.plan.as_str(), c3.send_day.get()),
        ("5G_PREMIUM", 9),
        "the plan applied, the send day kept"
    );
    let c6 = zone
        .month
        .customers
        .get_in_shard(0, "C0000006")
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(c6.plan, "5G_PREMIUM");
    assert_eq!(zone.customer_items().await.unwrap().len(), 20);
    no_contact(&second, &customers);
}
