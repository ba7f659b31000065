//! The harness against a real emulator: the one in `AWS_ENDPOINT_URL` (scripts/test.sh), or
//! one started for this test process.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use local_aws::{Emulator, Template, fresh_stack, provision_template, unique_prefix};

#[tokio::test]
async fn provisions_the_project_template() -> Result<()> {
    let stack = fresh_stack("provisions the template").await?;
    let res = &stack.resources;

    let customers = res.table("CustomersTable").context("CustomersTable")?;
    let catalog = res.table("CatalogTable").context("CatalogTable")?;
    let bucket = res.bucket("DataBucket").context("DataBucket")?;
    assert!(customers.starts_with(res.prefix()), "{customers}");

    let ddb = stack.dynamodb();
    let mut ours = Vec::new();
    let mut start = None;
    loop {
        let page = ddb.list_tables().set_exclusive_start_table_name(start).send().await?;
        ours.extend(
            page.table_names()
                .iter()
                .filter(|t| t.starts_with(res.prefix()))
                .cloned(),
        );
        start = page.last_evaluated_table_name().map(str::to_owned);
        if start.is_none() {
            break;
        }
    }
    ours.sort(); // the emulator lists in creation order, AWS alphabetically
    let mut declared: Vec<_> = template_ids("AWS::DynamoDB::Table")?
        .iter()
        .map(|id| res.table(id).map(str::to_owned).context("declared table provisioned"))
        .collect::<Result<_>>()?;
    declared.sort();
    assert_eq!(ours, declared);
    assert!(ours.iter().any(|t| t == catalog) && ours.iter().any(|t| t == customers));

    let desc = ddb.describe_table().table_name(customers).send().await?;
    let table = desc.table().context("table description")?;
    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, [("shard", "HASH"), ("customer_id", "RANGE")]);
    let gsi = &table.global_secondary_indexes()[0];
    assert_eq!(gsi.index_name(), Some("ByCustomerId"));
    assert_eq!(
        gsi.projection().and_then(|p| p.projection_type()).map(|p| p.as_str()),
        Some("KEYS_ONLY")
    );

    let buckets = stack.s3().list_buckets().send().await?;
    assert!(buckets.buckets().iter().any(|b| b.name() == Some(bucket)));
    stack
        .s3()
        .put_object()
        .bucket(bucket)
        .key("usage/2026-01/shard-0.csv")
        .body(b"customer_id,amount\n".to_vec().into())
        .send()
        .await?;

    let env = stack.env();
    assert_eq!(env["CUSTOMERS_TABLE"], customers);
    assert_eq!(env["CATALOG_TABLE"], catalog);
    assert_eq!(env["DATA_BUCKET"], bucket);
    assert_eq!(env["RUST_LOG"], "info");
    assert!(
        res.skipped()
            .iter()
            .any(|(id, kind)| id == "DataBucketPolicy" && kind == "AWS::S3::BucketPolicy")
    );

    // Functions are named, not created.
    for id in template_ids("AWS::Serverless::Function")? {
        let name = res.function_name(&id).context("function named")?;
        assert_eq!(name, format!("{}-{id}", res.prefix()));
        assert!(name.len() <= 64);
    }
    Ok(())
}

/// Logical ids of the project template's resources of one type.
fn template_ids(kind: &str) -> Result<Vec<String>> {
    Ok(local_aws::project_template()?
        .resources()
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.logical_id.clone())
        .collect())
}

/// With `sfn`, the project's state machines are created from their definition files, with
/// the functions' ARNs substituted.
#[cfg(feature = "sfn")]
#[tokio::test]
async fn creates_the_project_state_machines() -> Result<()> {
    let stack = fresh_stack("project machines").await?;
    let res = &stack.resources;
    let machines = template_ids("AWS::Serverless::StateMachine")?;
    for id in &machines {
        let arn = res.state_machine_arn(id).context("state machine created")?;
        let desc = stack
            .sfn()
            .describe_state_machine()
            .state_machine_arn(arn)
            .send()
            .await?;
        assert_eq!(desc.name(), format!("{}-{id}", res.prefix()));
        let definition = desc.definition();
        assert!(!definition.contains("${"), "unsubstituted placeholder in {id}");
        for (_, function) in res.function_names() {
            if definition.contains(function) {
                assert!(definition.contains(&local_aws::function_arn(function)));
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn stacks_do_not_share_resources() -> Result<()> {
    let (a, b) = tokio::try_join!(fresh_stack("same-name"), fresh_stack("same-name"))?;
    assert_ne!(a.resources.prefix(), b.resources.prefix());
    let table_a = a.resources.table("CatalogTable").context("a")?;
    let table_b = b.resources.table("CatalogTable").context("b")?;
    assert_ne!(table_a, table_b);

    use aws_sdk_dynamodb::types::AttributeValue;
    a.dynamodb()
        .put_item()
        .table_name(table_a)
        .item("version", AttributeValue::S("v1".into()))
        .send()
        .await?;
    let seen = b.dynamodb().scan().table_name(table_b).send().await?;
    assert_eq!(seen.count(), 0);
    Ok(())
}

#[tokio::test]
async fn counts_the_requests_of_one_stack() -> Result<()> {
    let stack = fresh_stack("counts").await?;
    let emulator = Emulator::shared().await?;
    let prefix = stack.resources.prefix().to_owned();
    let table = stack.resources.table("CatalogTable").context("table")?;
    let bucket = stack.resources.bucket("DataBucket").context("bucket")?;
    let before = emulator.request_counts(&prefix).await?;

    use aws_sdk_dynamodb::types::AttributeValue;
    for v in ["v1", "v2"] {
        stack
            .dynamodb()
            .put_item()
            .table_name(table)
            .item("version", AttributeValue::S(v.into()))
            .send()
            .await?;
    }
    let s3 = stack.s3();
    s3.put_object()
        .bucket(bucket)
        .key("a/b.txt")
        .body(b"x".to_vec().into())
        .send()
        .await?;
    s3.get_object().bucket(bucket).key("a/b.txt").send().await?;
    // Another stack's requests are not counted here.
    let other = fresh_stack("counts-other").await?;
    other
        .dynamodb()
        .put_item()
        .table_name(other.resources.table("CatalogTable").context("other")?)
        .item("version", AttributeValue::S("v1".into()))
        .send()
        .await?;

    let after = emulator.request_counts(&prefix).await?;
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert_eq!(delta("dynamodb:PutItem"), 2, "{after:?}");
    assert_eq!(delta("s3:PutObject"), 1, "{after:?}");
    assert_eq!(delta("s3:GetObject"), 1, "{after:?}");
    Ok(())
}

const QUEUES: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Visibility: { Type: Number, Default: 360 }
Globals:
  Function:
    Environment:
      Variables:
        EMAIL_QUEUE_URL: !Ref EmailQueue
        DLQ_ARN: !GetAtt DeadLetterQueue.Arn
        DEDUP_TABLE: !Ref DedupTable
Resources:
  EmailQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: !Ref Visibility
      MessageRetentionPeriod: 1209600
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt DeadLetterQueue.Arn
        maxReceiveCount: 5
  OrderedQueue:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
      ContentBasedDeduplication: true
  DeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: 1209600
  DedupTable:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{ AttributeName: pk, AttributeType: S }]
      KeySchema: [{ AttributeName: pk, KeyType: HASH }]
      TimeToLiveSpecification: { AttributeName: expires_at, Enabled: true }
  SenderFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: target/lambda/sender/
      Environment:
        Variables:
          ONLY_MINE: !Sub "${Visibility}s"
"#;

#[cfg(feature = "sqs")]
#[tokio::test]
async fn provisions_queues_with_redrive_and_fifo() -> Result<()> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    use local_aws::Kind;

    let emulator = Emulator::shared().await?;
    let config = emulator.sdk_config().await;
    let template = Template::parse(QUEUES)?;
    let res = provision_template(&config, &template, &unique_prefix("queues")).await?;

    let email = res.queue_url("EmailQueue").context("EmailQueue")?;
    let dlq_arn = res.arn("DeadLetterQueue").context("DeadLetterQueue")?;
    let fifo = res.get("OrderedQueue").context("OrderedQueue")?;
    assert!(fifo.name.ends_with(".fifo"), "{}", fifo.name);
    assert_eq!(fifo.kind, Kind::Queue);

    let sqs = aws_sdk_sqs::Client::new(&config);
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(email)
        .attribute_names(A::All)
        .send()
        .await?;
    let attrs = attrs.attributes().context("attributes")?;
    assert_eq!(attrs[&A::VisibilityTimeout], "360");
    let redrive: serde_json::Value = serde_json::from_str(&attrs[&A::RedrivePolicy])?;
    assert_eq!(redrive["deadLetterTargetArn"], dlq_arn);
    assert_eq!(redrive["maxReceiveCount"].as_i64(), Some(5));

    assert_eq!(res.env()["EMAIL_QUEUE_URL"], email);
    assert_eq!(res.env()["DLQ_ARN"], dlq_arn);
    let sender = res.function_env("SenderFunction");
    assert_eq!(sender["ONLY_MINE"], "360s");
    assert_eq!(sender["EMAIL_QUEUE_URL"], email);

    let ttl = aws_sdk_dynamodb::Client::new(&config)
        .describe_time_to_live()
        .table_name(res.table("DedupTable").context("DedupTable")?)
        .send()
        .await?;
    assert_eq!(
        ttl.time_to_live_description().and_then(|d| d.attribute_name()),
        Some("expires_at")
    );
    Ok(())
}

/// Without the `sqs` feature queues are skipped, and so are the variables naming them.
#[cfg(not(feature = "sqs"))]
#[tokio::test]
async fn skips_queues_without_the_sqs_feature() -> Result<()> {
    let emulator = Emulator::shared().await?;
    let config = emulator.sdk_config().await;
    let template = Template::parse(QUEUES)?;
    let res = provision_template(&config, &template, &unique_prefix("no-queues")).await?;
    assert!(res.get("EmailQueue").is_none());
    // The three queues; the function is named, not skipped.
    assert_eq!(res.skipped().len(), 3);
    let sender = res.function_name("SenderFunction").context("SenderFunction")?;
    assert_eq!(sender, format!("{}-SenderFunction", res.prefix()));
    assert!(!res.env().contains_key("EMAIL_QUEUE_URL"));
    assert!(res.env().contains_key("DEDUP_TABLE"));
    Ok(())
}

/// A private emulator: starts, resets, and stops when dropped.
#[tokio::test]
async fn private_emulator_starts_resets_and_stops() -> Result<()> {
    let started = Instant::now();
    let emulator = Emulator::start().await?;
    eprintln!("emulator started in {:?}", started.elapsed());
    assert!(emulator.is_owned());
    let config = emulator.sdk_config().await;
    let res = local_aws::provision(&config, "private").await?;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let tables = template_ids("AWS::DynamoDB::Table")?.len();
    assert_eq!(ddb.list_tables().send().await?.table_names().len(), tables);
    assert!(res.table("CustomersTable").is_some());

    emulator.reset().await?;
    assert!(ddb.list_tables().send().await?.table_names().is_empty());

    let addr = emulator.endpoint_url().trim_start_matches("http://").to_owned();
    drop(emulator);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(Instant::now() < deadline, "emulator still running after drop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
