//! The harness against a real emulator: the one in `AWS_ENDPOINT_URL` (scripts/test.sh), or
//! one started for this test process.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use local_aws::{Emulator, Resources, Template, fresh_stack, provision_template, unique_prefix};

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

/// [`QUEUES`] provisioned in the shared emulator under a fresh prefix made from `name`, and
/// the SDK configuration it was provisioned with.
async fn provision_queues(name: &str) -> Result<(aws_config::SdkConfig, Resources)> {
    let config = Emulator::shared().await?.sdk_config().await;
    let res = provision_template(&config, &Template::parse(QUEUES)?, &unique_prefix(name)).await?;
    Ok((config, res))
}

#[cfg(feature = "sqs")]
#[tokio::test]
async fn provisions_queues_with_redrive_and_fifo() -> Result<()> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    use local_aws::Kind;

    let (config, res) = provision_queues("queues").await?;

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
    let (_, res) = provision_queues("no-queues").await?;
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
    use aws_sdk_dynamodb::types::AttributeValue;
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

    // Fault switches and their counts go with the resources.
    let customers = res.table("CustomersTable").context("CustomersTable")?.to_owned();
    emulator
        .throttle(&customers, local_aws::FaultBound::Calls(100), local_aws::Throttled::All)
        .await?;
    emulator
        .delay_get_object("some-bucket", "", 100, Duration::from_secs(100))
        .await?;
    let throttled = ddb.describe_table().table_name(&customers).send().await;
    assert!(throttled.is_ok(), "DescribeTable is not a read of items");
    let throttled = ddb
        .get_item()
        .table_name(&customers)
        .key("shard", AttributeValue::N("0".into()))
        .key("customer_id", AttributeValue::S("c".into()))
        .send()
        .await
        .map_err(|e| e.into_service_error());
    assert!(
        matches!(&throttled, Err(e) if e.is_provisioned_throughput_exceeded_exception()),
        "{throttled:?}"
    );
    let fired = emulator.faults_fired().await?;
    assert!(fired.fired(local_aws::Fault::Throttle, &customers) >= 1, "{fired:?}");

    emulator.reset().await?;
    assert!(ddb.list_tables().send().await?.table_names().is_empty());
    assert!(emulator.faults_fired().await?.all().is_empty());
    let config_again = emulator.sdk_config().await;
    local_aws::provision(&config_again, "private").await?;
    ddb.get_item()
        .table_name(&customers)
        .key("shard", AttributeValue::N("0".into()))
        .key("customer_id", AttributeValue::S("c".into()))
        .send()
        .await
        .context("no throttle after the reset")?;

    let addr = emulator.endpoint_url().trim_start_matches("http://").to_owned();
    drop(emulator);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(Instant::now() < deadline, "emulator still running after drop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

// --- fault switches ------------------------------------------------------------------------
//
// Each test sets its faults on tables and buckets of its own, so tests sharing one emulator
// do not see each other's faults.

mod faults {
    use std::time::Duration;

    use anyhow::{Context, Result, bail};
    use aws_config::SdkConfig;
    use aws_config::retry::RetryConfig;
    use aws_sdk_dynamodb::error::SdkError;
    use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
    use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
        ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TransactWriteItem,
    };
    use local_aws::{Emulator, Fault, FaultBound, LostAnswer, Throttled, WriteOperation, unique_prefix};

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    /// A DynamoDB client with the SDK's standard retry (three attempts).
    fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(config)
    }

    /// A DynamoDB client that makes one attempt per call.
    fn dynamodb_once(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(config)
                .retry_config(RetryConfig::disabled())
                .build(),
        )
    }

    /// A table of its own (key `pk`), for one test.
    async fn table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<String> {
        let table = unique_prefix(name);
        ddb.create_table()
            .table_name(&table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await?;
        Ok(table)
    }

    async fn version(ddb: &aws_sdk_dynamodb::Client, table: &str, pk: &str) -> Result<Option<String>> {
        let item = ddb
            .get_item()
            .table_name(table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await?;
        Ok(item
            .item()
            .and_then(|i| i.get("version"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    /// The shared emulator, and an SDK configuration for it.
    async fn shared() -> Result<(&'static Emulator, SdkConfig)> {
        let emulator = Emulator::shared().await?;
        Ok((emulator, emulator.sdk_config().await))
    }

    /// A put of item `pk` at version `v`.
    fn put_version(ddb: &aws_sdk_dynamodb::Client, table: &str, pk: &str, v: &str) -> PutItemFluentBuilder {
        ddb.put_item().table_name(table).item("pk", s(pk)).item("version", s(v))
    }

    /// An update of item `pk` from version `from` to `to`, on condition that it is at `from`.
    fn bump(ddb: &aws_sdk_dynamodb::Client, table: &str, pk: &str, from: &str, to: &str) -> UpdateItemFluentBuilder {
        ddb.update_item()
            .table_name(table)
            .key("pk", s(pk))
            .update_expression("SET version = :next")
            .condition_expression("version = :current")
            .expression_attribute_values(":current", s(from))
            .expression_attribute_values(":next", s(to))
    }

    async fn fired(fault: Fault, resource: &str) -> Result<u64> {
        Ok(Emulator::shared().await?.faults_fired().await?.fired(fault, resource))
    }

    /// A projection keeps exactly the attributes it names, at the top level (the emulator's
    /// own path) as in a nested path (moto's), and a missing name adds nothing.
    #[tokio::test]
    async fn projections_keep_exactly_the_named_attributes() -> Result<()> {
        let (_, config) = shared().await?;
        let ddb = dynamodb(&config);
        let table = table(&ddb, "projection").await?;
        let map = AttributeValue::M([("x".to_owned(), s("1")), ("y".to_owned(), s("2"))].into());
        ddb.put_item()
            .table_name(&table)
            .item("pk", s("p"))
            .item("state", s("SENT_EMAIL"))
            .item("dnd", AttributeValue::L(vec![AttributeValue::N("0".into())]))
            .item("total", AttributeValue::N("1200".into()))
            .item("m", map)
            .item("other", s("not asked for"))
            .send()
            .await?;
        let query = |projection: &str| {
            ddb.query()
                .table_name(&table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s("p"))
                .projection_expression(projection)
        };
        let top = query("#st, dnd, #t, absent_attr")
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#t", "total")
            .send()
            .await?;
        let item = &top.items()[0];
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["dnd", "state", "total"]);
        assert_eq!(item["state"], s("SENT_EMAIL"));
        assert_eq!(item["dnd"], AttributeValue::L(vec![AttributeValue::N("0".into())]));
        assert_eq!(item["total"], AttributeValue::N("1200".into()));

        let nested = query("pk, m.x").send().await?;
        let item = &nested.items()[0];
        assert_eq!(item.len(), 2, "{item:?}");
        assert_eq!(item["m"], AttributeValue::M([("x".to_owned(), s("1"))].into()));
        Ok(())
    }

    /// A conditional UpdateItem whose answer is lost is applied once; the SDK's retry of the
    /// same request fails its own condition, and ALL_OLD shows our own write.
    #[tokio::test]
    async fn lost_answer_applies_the_write_once_and_the_retry_fails_its_condition() -> Result<()> {
        let (emulator, config) = shared().await?;
        let ddb = dynamodb(&config);
        let table = table(&ddb, "lost-update").await?;
        put_version(&ddb, &table, "d1", "1").send().await?;

        emulator
            .lose_answers(&table, WriteOperation::UpdateItem, 1, LostAnswer::Error)
            .await?;
        let update = || {
            bump(&ddb, &table, "d1", "1", "2")
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        };
        let err = update().send().await.expect_err("the retry fails its own condition");
        let err = err.into_service_error();
        let aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(refused) = err
        else {
            bail!("expected ConditionalCheckFailed, got {err:?}");
        };
        assert_eq!(
            refused.item().and_then(|i| i.get("version")),
            Some(&s("2")),
            "the item the retry was refused by is our own write"
        );
        assert_eq!(version(&ddb, &table, "d1").await?.as_deref(), Some("2"), "applied once");
        assert_eq!(fired(Fault::LostAnswer, &table).await?, 1);

        // One call: the switch is used up, the next write is answered as usual.
        bump(&ddb, &table, "d1", "2", "3").send().await?;
        assert_eq!(fired(Fault::LostAnswer, &table).await?, 1);
        // Another operation on the table is not faulted.
        emulator
            .lose_answers(&table, WriteOperation::DeleteItem, 1, LostAnswer::Error)
            .await?;
        ddb.put_item().table_name(&table).item("pk", s("d2")).send().await?;
        assert_eq!(fired(Fault::LostAnswer, &table).await?, 1);
        emulator.clear_faults(&table).await?;
        Ok(())
    }

    /// Mode drop: the connection closes after the write; without retries the SDK reports a
    /// dispatch failure, with them the retry fails the write's own condition.
    #[tokio::test]
    async fn dropped_answer_is_a_transient_error_the_sdk_retries() -> Result<()> {
        let (emulator, config) = shared().await?;
        let table = table(&dynamodb(&config), "lost-drop").await?;
        let put = |ddb: &aws_sdk_dynamodb::Client, pk: &str| {
            put_version(ddb, &table, pk, "1").condition_expression("attribute_not_exists(pk)")
        };

        emulator
            .lose_answers(&table, WriteOperation::PutItem, 1, LostAnswer::Drop)
            .await?;
        let once = dynamodb_once(&config);
        let err = put(&once, "a").send().await.expect_err("the answer was dropped");
        assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
        assert_eq!(
            version(&once, &table, "a").await?.as_deref(),
            Some("1"),
            "applied all the same"
        );

        emulator
            .lose_answers(&table, WriteOperation::PutItem, 1, LostAnswer::Drop)
            .await?;
        let ddb = dynamodb(&config);
        let err = put(&ddb, "b")
            .send()
            .await
            .expect_err("the retry fails its own condition");
        assert!(
            err.into_service_error().is_conditional_check_failed_exception(),
            "the SDK retried the dropped call"
        );
        assert_eq!(version(&ddb, &table, "b").await?.as_deref(), Some("1"));
        assert_eq!(fired(Fault::LostAnswer, &table).await?, 2);
        Ok(())
    }

    /// A transaction is faulted when any of its tables has the switch.
    #[tokio::test]
    async fn lost_answer_of_a_transaction_on_any_of_its_tables() -> Result<()> {
        let (emulator, config) = shared().await?;
        let ddb = dynamodb(&config);
        let (first, second) = (table(&ddb, "lost-tx-a").await?, table(&ddb, "lost-tx-b").await?);
        emulator
            .lose_answers(&second, WriteOperation::TransactWriteItems, 1, LostAnswer::Error)
            .await?;

        let put = |table: &str| -> Result<TransactWriteItem> {
            Ok(TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(table)
                        .item("pk", s("x"))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()?,
                )
                .build())
        };
        let err = ddb
            .transact_write_items()
            .transact_items(put(&first)?)
            .transact_items(put(&second)?)
            .send()
            .await
            .expect_err("the retry fails its own conditions");
        assert!(err.into_service_error().is_transaction_canceled_exception());
        for table in [&first, &second] {
            let item = ddb.get_item().table_name(table).key("pk", s("x")).send().await?;
            assert!(item.item().is_some(), "the transaction was applied to {table}");
        }
        let counts = emulator.faults_fired().await?;
        assert_eq!(counts.fired(Fault::LostAnswer, &second), 1);
        assert_eq!(
            counts.fired(Fault::LostAnswer, &first),
            0,
            "counted on the table that had the switch"
        );
        Ok(())
    }

    /// Throttled writes are refused without being applied, for two calls; reads go on.
    #[tokio::test]
    async fn throttling_refuses_n_calls_without_applying_them() -> Result<()> {
        let (emulator, config) = shared().await?;
        let once = dynamodb_once(&config);
        let table = table(&once, "throttled").await?;
        emulator
            .throttle(&table, FaultBound::Calls(2), Throttled::Writes)
            .await?;

        for _ in 0..2 {
            let err = put_version(&once, &table, "t", "1")
                .send()
                .await
                .expect_err("throttled");
            let err = err.into_service_error();
            assert!(err.is_provisioned_throughput_exceeded_exception(), "{err:?}");
            assert_eq!(
                aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&err),
                Some("ProvisionedThroughputExceededException")
            );
            // Reads are not throttled and do not use up the switch; nothing was written.
            assert_eq!(version(&once, &table, "t").await?, None);
        }
        put_version(&once, &table, "t", "1").send().await?;
        assert_eq!(version(&once, &table, "t").await?.as_deref(), Some("1"));
        assert_eq!(fired(Fault::Throttle, &table).await?, 2);

        // With the standard retry a short throttle is ridden out.
        emulator.throttle(&table, FaultBound::Calls(1), Throttled::All).await?;
        dynamodb(&config)
            .put_item()
            .table_name(&table)
            .item("pk", s("u"))
            .send()
            .await?;
        assert_eq!(fired(Fault::Throttle, &table).await?, 3);
        Ok(())
    }

    /// A throttle for a duration, on one operation: it lasts until cleared or until its time is up.
    #[tokio::test]
    async fn throttling_one_operation_for_a_while_until_cleared_or_over() -> Result<()> {
        let (emulator, config) = shared().await?;
        let once = dynamodb_once(&config);
        let table = table(&once, "throttled-query").await?;
        let query = || {
            once.query()
                .table_name(&table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s("q"))
                .send()
        };
        emulator
            .throttle(
                &table,
                FaultBound::For(Duration::from_secs(600)),
                Throttled::Operation("Query".into()),
            )
            .await?;
        for _ in 0..3 {
            let err = query().await.expect_err("throttled");
            assert!(err.into_service_error().is_provisioned_throughput_exceeded_exception());
        }
        once.put_item().table_name(&table).item("pk", s("q")).send().await?;
        assert_eq!(version(&once, &table, "q").await?, None, "GetItem is not throttled");
        assert_eq!(fired(Fault::Throttle, &table).await?, 3);

        emulator.clear_faults(&table).await?;
        assert_eq!(query().await?.count(), 1);
        assert_eq!(
            fired(Fault::Throttle, &table).await?,
            0,
            "clearing a resource clears its counts"
        );

        // Over once its time is up (the sleep outlasts it, whatever the machine's speed).
        emulator
            .throttle(&table, FaultBound::For(Duration::from_millis(200)), Throttled::All)
            .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(query().await?.count(), 1);
        assert_eq!(fired(Fault::Throttle, &table).await?, 0);

        // A switch the router refuses: an operation DynamoDB does not have.
        let refused = emulator
            .throttle(&table, FaultBound::Calls(1), Throttled::Operation("NoSuchCall".into()))
            .await
            .expect_err("not an operation");
        assert!(refused.to_string().contains("NoSuchCall"), "{refused}");
        emulator.clear_faults(&table).await?;
        Ok(())
    }

    async fn bucket_with(s3: &aws_sdk_s3::Client, name: &str, keys: &[&str]) -> Result<String> {
        let bucket = unique_prefix(name).to_lowercase();
        s3.create_bucket()
            .bucket(&bucket)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(local_aws::REGION))
                    .build(),
            )
            .send()
            .await?;
        for key in keys {
            s3.put_object()
                .bucket(&bucket)
                .key(*key)
                .body(key.as_bytes().to_vec().into())
                .send()
                .await?;
        }
        Ok(bucket)
    }

    /// A delayed GetObject holds up nothing else: other requests, on the same bucket and
    /// elsewhere, complete while it waits.
    #[tokio::test]
    async fn a_slow_get_object_does_not_hold_up_other_requests() -> Result<()> {
        let (emulator, config) = shared().await?;
        let s3 = local_aws::s3_client(&config);
        let ddb = dynamodb(&config);
        let bucket = bucket_with(&s3, "slow-get", &["slow/a", "fast/b"]).await?;
        emulator
            .delay_get_object(&bucket, "slow/", 1, Duration::from_secs(5))
            .await?;

        let slow = tokio::spawn({
            let (s3, bucket) = (s3.clone(), bucket.clone());
            async move {
                let object = s3.get_object().bucket(&bucket).key("slow/a").send().await?;
                anyhow::Ok(object.body.collect().await?.into_bytes())
            }
        });
        // The slow call has reached the emulator and is waiting.
        let mut polls = 0;
        while fired(Fault::SlowGet, &bucket).await? == 0 {
            polls += 1;
            assert!(polls < 500, "the delayed GetObject never reached the emulator");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let fast = s3.get_object().bucket(&bucket).key("fast/b").send().await?;
        assert_eq!(fast.body.collect().await?.into_bytes().as_ref(), b"fast/b");
        ddb.list_tables().limit(1).send().await?;
        assert!(
            !slow.is_finished(),
            "the other calls completed while the slow one waited"
        );

        let body = slow.await.context("slow task")??;
        assert_eq!(body.as_ref(), b"slow/a");
        assert_eq!(
            fired(Fault::SlowGet, &bucket).await?,
            1,
            "the other key was not delayed"
        );
        Ok(())
    }

    /// A delay longer than the caller's timeout is a hang for it.
    #[tokio::test]
    async fn a_get_object_delayed_past_the_timeout_hangs_for_the_caller() -> Result<()> {
        let (emulator, config) = shared().await?;
        let bucket = bucket_with(&local_aws::s3_client(&config), "hang-get", &["k"]).await?;
        let impatient = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .retry_config(RetryConfig::disabled())
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .operation_timeout(Duration::from_millis(300))
                        .build(),
                )
                .build(),
        );
        emulator
            .delay_get_object(&bucket, "", 1, Duration::from_secs(3))
            .await?;
        let err = impatient
            .get_object()
            .bucket(&bucket)
            .key("k")
            .send()
            .await
            .expect_err("hangs");
        assert!(matches!(err, aws_sdk_s3::error::SdkError::TimeoutError(_)), "{err:?}");
        assert_eq!(fired(Fault::SlowGet, &bucket).await?, 1);
        // Used up: the next read is answered and not delayed (read by a client with the default
        // timeouts: under a full parallel run the busy emulator may take more than 300 ms).
        local_aws::s3_client(&config)
            .get_object()
            .bucket(&bucket)
            .key("k")
            .send()
            .await?;
        assert_eq!(
            fired(Fault::SlowGet, &bucket).await?,
            1,
            "the next read was delayed too"
        );
        Ok(())
    }
}
