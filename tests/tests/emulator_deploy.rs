//! The deployment path a user takes, against the emulator: the SAM CLI's own `sam build` and
//! `sam deploy --resolve-s3` of template.yaml, a second deploy that updates the stack, two
//! stacks of the template side by side, and S3's "Object Created" events going through
//! EventBridge rules made by CloudFormation to a state machine and a Lambda function.
//!
//! Each test runs its own emulator (`shared/local-aws/emulator.py`, whose deployment patches
//! docs/local-development.md lists under "Deploying to the emulator") and reads what was
//! deployed back with boto3, a client nobody here wrote. The functions' code is a stand-in
//! script: the emulator stores it and never runs it (Invoke goes to the Lambda router).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use aws_sdk_sfn::types::ExecutionStatus;
use lambda_runtime::{Diagnostic, LambdaEvent};
use local_aws::lambda::LambdaHost;
use local_aws::{Emulator, REGION};
use serde_json::{Value, json};

/// Polls while the emulator delivers an event (bounded; each poll waits this long).
const POLL: Duration = Duration::from_millis(200);
const POLLS: usize = 150;

fn root() -> PathBuf {
    local_aws::project_root().expect("the project root")
}

fn venv_tool(name: &str) -> PathBuf {
    let tool = root().join(".venv/bin").join(name);
    assert!(
        tool.is_file(),
        "{} is missing: run scripts/setup.sh (it installs the SAM CLI and moto)",
        tool.display()
    );
    tool
}

/// Environment of a client of the emulator: its endpoint, dummy credentials, the region.
fn client_env(command: &mut Command, emulator: &Emulator) {
    command
        .env("AWS_ENDPOINT_URL", emulator.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", REGION)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("SAM_CLI_TELEMETRY", "0")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
}

/// A project directory the SAM CLI deploys from: `template` plus a stand-in `bootstrap` in
/// every `CodeUri` folder it names and the state machine definitions.
fn sam_project(template: &str) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("template.yaml"), template)?;
    let source = root().join("infra/statemachines");
    let target = dir.path().join("infra/statemachines");
    std::fs::create_dir_all(&target)?;
    for entry in std::fs::read_dir(&source)? {
        let entry = entry?;
        std::fs::copy(entry.path(), target.join(entry.file_name()))?;
    }
    for line in template.lines() {
        if let Some(uri) = line.trim().strip_prefix("CodeUri:") {
            let folder = dir.path().join(uri.trim());
            std::fs::create_dir_all(&folder)?;
            std::fs::write(folder.join("bootstrap"), "#!/bin/sh\nexit 1\n")?;
        }
    }
    Ok(dir)
}

/// Runs the SAM CLI in `dir`; its output when it succeeds.
fn sam(dir: &Path, emulator: &Emulator, args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new(venv_tool("sam"));
    command.args(args).current_dir(dir);
    client_env(&mut command, emulator);
    let out = command.output().context("running sam")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "sam {} failed:\n{text}", args.join(" "));
    Ok(text)
}

/// `sam deploy` exactly as docs/deploy.md gives it, with parameter overrides.
fn sam_deploy(dir: &Path, emulator: &Emulator, stack: &str, overrides: &[&str]) -> anyhow::Result<String> {
    let mut args = vec![
        "deploy",
        "--stack-name",
        stack,
        "--resolve-s3",
        "--capabilities",
        "CAPABILITY_IAM",
        "--no-confirm-changeset",
    ];
    if !overrides.is_empty() {
        args.push("--parameter-overrides");
        args.extend_from_slice(overrides);
    }
    sam(dir, emulator, &args)
}

/// Runs `code` with boto3 against the emulator (`a` holds `args`; `out` is printed as JSON).
fn boto(emulator: &Emulator, code: &str, args: Value) -> anyhow::Result<Value> {
    let script = format!(
        "import boto3, json, sys\na = json.loads(sys.argv[1])\nc = boto3.client\nout = None\n{code}\n\
         print(json.dumps(out, default=str))\n"
    );
    let mut command = Command::new(venv_tool("python"));
    command.arg("-c").arg(script).arg(args.to_string());
    client_env(&mut command, emulator);
    let out = command.output().context("running python")?;
    ensure!(
        out.status.success(),
        "boto3 failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The stack's status, outputs and resources (logical id → (type, physical id)).
struct Stack {
    status: String,
    outputs: HashMap<String, String>,
    resources: HashMap<String, (String, String)>,
}

fn describe(emulator: &Emulator, stack: &str) -> anyhow::Result<Stack> {
    let v = boto(
        emulator,
        "cf = c('cloudformation')\n\
         s = cf.describe_stacks(StackName=a['stack'])['Stacks'][0]\n\
         r = cf.list_stack_resources(StackName=a['stack'])['StackResourceSummaries']\n\
         out = {'status': s['StackStatus'], 'outputs': {o['OutputKey']: o['OutputValue'] for o in s.get('Outputs', [])},\n\
         'resources': {x['LogicalResourceId']: [x['ResourceType'], x['PhysicalResourceId']] for x in r}}",
        json!({ "stack": stack }),
    )?;
    let outputs = serde_json::from_value(v["outputs"].clone())?;
    let resources = serde_json::from_value(v["resources"].clone())?;
    Ok(Stack {
        status: v["status"].as_str().unwrap_or_default().to_owned(),
        outputs,
        resources,
    })
}

/// Outputs of template.yaml that every deployment has (those without a Condition).
fn unconditional_outputs(template: &str) -> anyhow::Result<BTreeSet<String>> {
    let doc: serde_yaml::Value = serde_yaml::from_str(template)?;
    let outputs = doc["Outputs"].as_mapping().context("template Outputs")?;
    Ok(outputs
        .iter()
        .filter(|(_, v)| v.get("Condition").is_none())
        .filter_map(|(k, _)| k.as_str().map(str::to_owned))
        .collect())
}

fn template_yaml() -> String {
    std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml")
}

/// Whether the template's DataBucket asks for EventBridge notifications.
fn data_bucket_sends_to_eventbridge(template: &str) -> bool {
    let doc: serde_yaml::Value = serde_yaml::from_str(template).expect("template.yaml parses");
    doc["Resources"]["DataBucket"]["Properties"]["NotificationConfiguration"]["EventBridgeConfiguration"]
        ["EventBridgeEnabled"]
        .as_bool()
        == Some(true)
}

fn physical(stack: &Stack, logical_id: &str) -> anyhow::Result<String> {
    Ok(stack
        .resources
        .get(logical_id)
        .with_context(|| format!("resource {logical_id} of the stack"))?
        .1
        .clone())
}

/// A function's environment as Lambda reports it.
fn environment(emulator: &Emulator, function: &str) -> anyhow::Result<Value> {
    boto(
        emulator,
        "out = c('lambda').get_function_configuration(FunctionName=a['f'])['Environment']['Variables']",
        json!({ "f": function }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sam_deploy_creates_the_stack_and_a_second_deploy_updates_it() -> anyhow::Result<()> {
    let emulator = Emulator::start().await?;
    let template = template_yaml();
    let project = sam_project(&template)?;
    sam(project.path(), &emulator, &["build"])?;

    // First deploy: a change set on a new stack, the template over 51,200 bytes goes by
    // TemplateURL, the SAM transform applies, every resource type is made.
    let said = sam_deploy(project.path(), &emulator, "deploy-a", &["Architecture=x86_64"])?;
    ensure!(
        said.contains("Successfully created/updated stack - deploy-a"),
        "sam said:\n{said}"
    );
    let created = describe(&emulator, "deploy-a")?;
    assert_eq!(created.status, "CREATE_COMPLETE");
    let missing: Vec<_> = unconditional_outputs(&template)?
        .into_iter()
        .filter(|k| !created.outputs.contains_key(k))
        .collect();
    assert!(missing.is_empty(), "outputs missing after the change set: {missing:?}");
    assert!(
        created.outputs["OperationsDashboardUrl"].ends_with("dashboards:name=deploy-a-operations"),
        "the dashboard's Ref is its name: {}",
        created.outputs["OperationsDashboardUrl"]
    );
    let url = &created.outputs["AdminApiUrl"];
    assert!(
        url.starts_with("https://") && url.ends_with(".on.aws/"),
        "a function URL: {url}"
    );

    // The state machine made by CloudFormation: on the executing backend, its definition read
    // from S3 with the substitutions applied.
    let config = emulator.sdk_config().await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    let machine = sfn
        .describe_state_machine()
        .state_machine_arn(&created.outputs["SettlementStateMachineArn"])
        .send()
        .await?;
    assert!(!machine.definition().contains("${"), "DefinitionSubstitutions applied");
    let settle_shard = physical(&created, "SettleShardFunction")?;
    assert!(
        machine.definition().contains(&settle_shard),
        "the definition names the stack's function"
    );

    // Schedules, alarms, the function URL, the bucket policy: made in the services' backends.
    let made = boto(
        &emulator,
        "out = {'schedules': sorted(s['Name'] for s in c('scheduler').list_schedules()['Schedules']),\n\
         'alarms': len(c('cloudwatch').describe_alarms()['MetricAlarms']),\n\
         'url': c('lambda').get_function_url_config(FunctionName=a['admin'])['FunctionUrl'],\n\
         'policy': c('s3').get_bucket_policy(Bucket=a['bucket'])['Policy'],\n\
         'eventbridge': 'EventBridgeConfiguration' in c('s3').get_bucket_notification_configuration(Bucket=a['bucket'])}",
        json!({ "admin": physical(&created, "AdminApiFunction")?, "bucket": created.outputs["DataBucketName"] }),
    )?;
    let schedules: Vec<String> = serde_json::from_value(made["schedules"].clone())?;
    assert!(
        !schedules.is_empty() && schedules.iter().all(|s| s.starts_with("deploy-a-")),
        "{schedules:?}"
    );
    assert!(made["alarms"].as_u64().unwrap_or(0) > 0, "alarms made: {made}");
    assert_eq!(made["url"].as_str(), Some(url.as_str()));
    assert!(made["policy"].as_str().unwrap_or("").contains("DenyInsecureTransport"));
    assert_eq!(
        made["eventbridge"].as_bool(),
        Some(data_bucket_sends_to_eventbridge(&template)),
        "the bucket's EventBridge notifications as the template declares them"
    );
    // The objects of the bucket stay reachable under its policy's conditional Deny.
    boto(
        &emulator,
        "s3 = c('s3'); s3.put_object(Bucket=a['b'], Key='probe.txt', Body=b'x')\n\
         out = s3.get_object(Bucket=a['b'], Key='probe.txt')['Body'].read().decode()",
        json!({ "b": created.outputs["DataBucketName"] }),
    )?;

    // Numbers from Number parameters reach the functions as strings, as Lambda keeps them.
    let sender = physical(&created, "SendEmailFunction")?;
    assert_eq!(environment(&emulator, &sender)?["MOCK_LATENCY_MS"], json!("1000"));

    // The queues' event source mappings are recorded, not polled by the emulator: a message
    // sent to the email queue stays there for the local runner.
    let queue = boto(
        &emulator,
        "sqs = c('sqs'); q = sqs.get_queue_url(QueueName=a['q'])['QueueUrl']\n\
         sqs.send_message(QueueUrl=q, MessageBody='{}')\n\
         m = [x for x in c('lambda').list_event_source_mappings()['EventSourceMappings'] if x['EventSourceArn'].endswith(':' + a['q'])]\n\
         out = {'mappings': len(m), 'waiting': sqs.get_queue_attributes(QueueUrl=q, AttributeNames=['All'])['Attributes']}",
        json!({ "q": created.outputs["EmailQueueUrl"].rsplit('/').next().unwrap_or_default() }),
    )?;
    assert_eq!(queue["mappings"], json!(1), "{queue}");
    assert_eq!(queue["waiting"]["ApproximateNumberOfMessages"], json!("1"), "{queue}");
    assert_eq!(
        queue["waiting"]["ApproximateNumberOfMessagesNotVisible"],
        json!("0"),
        "{queue}"
    );

    // Second deploy: changed parameters (every resource tagged with the stage changes) update
    // the stack in place; the tables and the bucket keep their names.
    let said = sam_deploy(
        project.path(),
        &emulator,
        "deploy-a",
        &["Architecture=x86_64", "Stage=qa", "MockLatencyMs=7"],
    )?;
    ensure!(
        said.contains("Successfully created/updated stack - deploy-a"),
        "sam said:\n{said}"
    );
    let updated = describe(&emulator, "deploy-a")?;
    assert_eq!(updated.status, "UPDATE_COMPLETE");
    for kept in ["DataBucket", "CustomersTable", "BillsTable", "SettlementStateMachine"] {
        assert_eq!(physical(&updated, kept)?, physical(&created, kept)?, "{kept} kept");
    }
    assert_eq!(updated.outputs.len(), created.outputs.len());
    assert_eq!(environment(&emulator, &sender)?["MOCK_LATENCY_MS"], json!("7"));
    let tags = boto(
        &emulator,
        "out = {t['Key']: t['Value'] for t in c('s3').get_bucket_tagging(Bucket=a['b'])['TagSet']}",
        json!({ "b": updated.outputs["DataBucketName"] }),
    )?;
    assert_eq!(tags["stage"], json!("qa"), "the bucket updated in place: {tags}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stacks_of_the_template_deploy_side_by_side() -> anyhow::Result<()> {
    let emulator = Emulator::start().await?;
    let project = sam_project(&template_yaml())?;
    sam(project.path(), &emulator, &["build"])?;
    let mut stacks = Vec::new();
    for (name, stage) in [("stage-a", "Stage=a"), ("stage-b", "Stage=b")] {
        sam_deploy(project.path(), &emulator, name, &["Architecture=x86_64", stage])?;
        let stack = describe(&emulator, name)?;
        assert_eq!(stack.status, "CREATE_COMPLETE", "{name}");
        stacks.push(stack);
    }
    let (a, b) = (&stacks[0], &stacks[1]);
    assert_eq!(a.resources.len(), b.resources.len());
    let ids = |s: &Stack| -> BTreeSet<String> { s.resources.values().map(|(_, id)| id.clone()).collect() };
    let shared: Vec<_> = ids(a).intersection(&ids(b)).cloned().collect();
    assert!(shared.is_empty(), "resources both stacks claim: {shared:?}");
    for key in [
        "SettlementStateMachineArn",
        "DataBucketName",
        "AdminApiUrl",
        "CustomersTableName",
    ] {
        assert_ne!(a.outputs[key], b.outputs[key], "{key}");
    }
    let schedules = boto(
        &emulator,
        "out = sorted(s['Name'] for s in c('scheduler').list_schedules()['Schedules'])",
        json!({}),
    )?;
    let schedules: Vec<String> = serde_json::from_value(schedules)?;
    let of = |p: &str| schedules.iter().filter(|s| s.starts_with(p)).count();
    assert!(of("stage-a-") > 0 && of("stage-a-") == of("stage-b-"), "{schedules:?}");
    assert_eq!(of("stage-a-") + of("stage-b-"), schedules.len(), "{schedules:?}");
    Ok(())
}

/// A stack of the drop-zone shape: a bucket that sends its events to EventBridge, and rules
/// made by CloudFormation (SAM's EventBridgeRule events) that start a state machine (defined
/// in a file, with a substitution) and invoke a function for objects under `incoming/`.
const DROP_ZONE: &str = r#"AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  DropBucket:
    Type: AWS::S3::Bucket
    Properties:
      NotificationConfiguration:
        EventBridgeConfiguration:
          EventBridgeEnabled: true
  Ingest:
    Type: AWS::Serverless::StateMachine
    Properties:
      Name: !Sub "${AWS::StackName}-ingest"
      DefinitionUri: infra/statemachines/drop.asl.json
      DefinitionSubstitutions:
        Stack: !Ref AWS::StackName
      Policies: []
      Events:
        Dropped:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.s3]
              detail-type: [Object Created]
              detail:
                bucket:
                  name: [!Ref DropBucket]
                object:
                  key: [{prefix: incoming/}]
  Watcher:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: provided.al2023
      Handler: bootstrap
      CodeUri: watcher/
      Events:
        Dropped:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.s3]
              detail-type: [Object Created]
              detail:
                bucket:
                  name: [!Ref DropBucket]
                object:
                  key: [{prefix: incoming/}]
Outputs:
  Bucket:
    Value: !Ref DropBucket
  Ingest:
    Value: !Ref Ingest
  Watcher:
    Value: !Ref Watcher
"#;

const DROP_ASL: &str = r#"{"StartAt": "Note", "States": {"Note": {"Type": "Pass",
 "Parameters": {"stack": "${Stack}", "key.$": "$.detail.object.key", "size.$": "$.detail.object.size",
  "etag.$": "$.detail.object.etag", "reason.$": "$.detail.reason", "time.$": "$.time"}, "End": true}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_created_in_the_drop_zone_reach_the_state_machine_and_the_function() -> anyhow::Result<()> {
    let emulator = Emulator::start().await?;
    let project = sam_project(DROP_ZONE)?;
    std::fs::write(project.path().join("infra/statemachines/drop.asl.json"), DROP_ASL)?;
    sam_deploy(project.path(), &emulator, "drop", &[])?;
    let stack = describe(&emulator, "drop")?;
    assert_eq!(stack.status, "CREATE_COMPLETE");
    let bucket = stack.outputs["Bucket"].clone();

    // The function is served here: every event it receives is kept.
    let host = LambdaHost::start().await?;
    let received = Arc::new(Mutex::new(Vec::<Value>::new()));
    let keep = received.clone();
    host.register_fn(
        &emulator,
        &stack.outputs["Watcher"],
        Duration::from_secs(30),
        move |event: LambdaEvent<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock()
                    .map_err(|_| Diagnostic::from("poisoned"))?
                    .push(event.payload);
                Ok::<_, Diagnostic>(json!({}))
            }
        },
    )
    .await?;

    // One object each way S3 creates one, and one outside the drop zone.
    boto(
        &emulator,
        "s3 = c('s3'); b = a['b']\n\
         s3.put_object(Bucket=b, Key='incoming/put.json', Body=b'{\"a\": 1}')\n\
         s3.put_object(Bucket=b, Key='elsewhere/source.json', Body=b'xyz')\n\
         s3.copy_object(Bucket=b, Key='incoming/copy.json', CopySource={'Bucket': b, 'Key': 'elsewhere/source.json'})\n\
         u = s3.create_multipart_upload(Bucket=b, Key='incoming/multi.csv')['UploadId']\n\
         p = s3.upload_part(Bucket=b, Key='incoming/multi.csv', UploadId=u, PartNumber=1, Body=b'line\\n')\n\
         s3.complete_multipart_upload(Bucket=b, Key='incoming/multi.csv', UploadId=u,\n\
             MultipartUpload={'Parts': [{'ETag': p['ETag'], 'PartNumber': 1}]})",
        json!({ "b": bucket }),
    )?;

    let config = emulator.sdk_config().await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    let mut outputs = Vec::new();
    for _ in 0..POLLS {
        let listed = sfn
            .list_executions()
            .state_machine_arn(&stack.outputs["Ingest"])
            .send()
            .await?;
        let done: Vec<_> = listed
            .executions()
            .iter()
            .filter(|e| e.status() == &ExecutionStatus::Succeeded)
            .map(|e| e.execution_arn().to_owned())
            .collect();
        let functions = received.lock().map(|r| r.len()).unwrap_or(0);
        if done.len() >= 3 && functions >= 3 {
            for arn in done {
                let execution = sfn.describe_execution().execution_arn(arn).send().await?;
                outputs.push(serde_json::from_str::<Value>(execution.output().unwrap_or("null"))?);
            }
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    if outputs.is_empty() {
        bail!("the state machine and the function did not both get three events");
    }
    // Nothing more arrives: once per object, and nothing from outside incoming/.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let listed = sfn
        .list_executions()
        .state_machine_arn(&stack.outputs["Ingest"])
        .send()
        .await?;
    assert_eq!(listed.executions().len(), 3);
    let events = received.lock().map(|r| r.clone()).unwrap_or_default();
    assert_eq!(events.len(), 3, "{events:?}");

    let mut reasons: Vec<(String, String)> = outputs
        .iter()
        .map(|o| {
            assert_eq!(o["stack"], json!("drop"), "the substitution applied: {o}");
            assert!(o["size"].as_u64().is_some() && o["etag"].as_str().is_some_and(|e| !e.contains('"')));
            assert!(
                o["time"].as_str().is_some_and(|t| t.ends_with('Z')),
                "an RFC 3339 time: {o}"
            );
            (
                o["key"].as_str().unwrap_or("").to_owned(),
                o["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("incoming/copy.json".to_owned(), "CopyObject".to_owned()),
            ("incoming/multi.csv".to_owned(), "CompleteMultipartUpload".to_owned()),
            ("incoming/put.json".to_owned(), "PutObject".to_owned()),
        ]
    );
    let put = events
        .iter()
        .find(|e| e["detail"]["object"]["key"] == json!("incoming/put.json"))
        .context("the function's PutObject event")?;
    assert_eq!(put["source"], json!("aws.s3"));
    assert_eq!(put["detail-type"], json!("Object Created"));
    assert_eq!(put["detail"]["bucket"]["name"], json!(bucket));
    assert_eq!(put["detail"]["object"]["size"], json!(8));
    assert!(put["detail"]["object"]["sequencer"].as_str().is_some());
    Ok(())
}
