//! `billingctl --stack NAME` against a stack in the emulator, run as a user runs it (the
//! binary, the AWS environment, `AWS_ENDPOINT_URL`).
//!
//! The emulator cannot create template.yaml's stack through CloudFormation, so each test
//! provisions the template's resources (`local_aws`) and creates a plain CloudFormation
//! stack whose outputs name them (a wait-condition handle, literal outputs, and Lambda
//! functions carrying the provisioned functions' environments): what billingctl reads of
//! a deployed stack (DescribeStacks, ListStackResources, GetFunctionConfiguration) is then
//! real. Ingest is played by the test: it writes the report of an uploaded object as the
//! ingest state machine does (docs/ingest.md), with the object's ETag.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use domain::SlotSet;
use local_aws::{Emulator, Stack};
use local_run::seed::seed_queued;
use serde_json::{Value, json};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn says(&self) -> String {
        format!("exit {}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr)
    }
}

/// billingctl with `args`, in the emulator's AWS environment and nothing of the caller's.
async fn billingctl(args: &[&str]) -> Run {
    let emulator = Emulator::shared().await.unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_billingctl"))
        .args(args)
        .env("AWS_ENDPOINT_URL", emulator.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", "OPERATORKEY1")
        .env("AWS_SECRET_ACCESS_KEY", "not-checked-locally")
        .env("AWS_REGION", local_aws::REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("BILLING_STACK")
        .env_remove("BILLING_ADMIN_URL")
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A CloudFormation stack name from a provisioning prefix.
fn stack_name(stack: &Stack, suffix: &str) -> String {
    let clean: String = stack
        .resources
        .prefix()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("bc-{clean}-{suffix}")
}

/// The outputs template.yaml declares (and the ingest ones), naming `stack`'s resources.
fn outputs_of(stack: &Stack, admin_url: &str) -> Vec<(&'static str, String)> {
    let r = &stack.resources;
    let bucket = r.bucket("DataBucket").unwrap().to_owned();
    vec![
        ("DataBucketName", bucket.clone()),
        ("DropZoneUri", format!("s3://{bucket}/incoming/")),
        (
            "SettlementStateMachineArn",
            r.state_machine_arn("SettlementStateMachine").unwrap().to_owned(),
        ),
        ("CyclesTableName", r.table("CyclesTable").unwrap().to_owned()),
        ("CustomersTableName", r.table("CustomersTable").unwrap().to_owned()),
        ("AdminApiUrl", admin_url.to_owned()),
    ]
}

/// Creates CloudFormation stack `name` with `outputs` and a Lambda function per
/// `functions` entry (logical id, environment).
async fn cloudformation(
    config: &SdkConfig,
    name: &str,
    outputs: &[(&str, String)],
    functions: &[(&str, BTreeMap<String, String>)],
) {
    let mut resources = json!({
        "Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"},
    });
    if !functions.is_empty() {
        resources["FunctionRole"] = json!({"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}});
    }
    for (logical_id, env) in functions {
        resources[*logical_id] = json!({"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "provided.al2023", "Handler": "bootstrap",
            "Role": {"Fn::GetAtt": ["FunctionRole", "Arn"]},
            "Code": {"ZipFile": "not run"},
            "Environment": {"Variables": env}}});
    }
    let outputs: serde_json::Map<String, Value> = outputs
        .iter()
        .map(|(k, v)| (k.to_string(), json!({ "Value": v })))
        .collect();
    let template = json!({"Resources": resources, "Outputs": outputs});
    let cf = aws_sdk_cloudformation::Client::new(config);
    cf.create_stack()
        .stack_name(name)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
    for _ in 0..100 {
        let d = cf.describe_stacks().stack_name(name).send().await.unwrap();
        if d.stacks()[0].stack_status().map(|s| s.as_str()) == Some("CREATE_COMPLETE") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stack {name} was not created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_is_found_by_name_and_admin_commands_and_settle_status_go_through_it() {
    let stack = local_aws::fresh_stack("billingctl-stack").await.unwrap();
    let seeded = seed_queued(&stack.config, &stack.resources, 4, 2, 2, SlotSet::EMPTY)
        .await
        .unwrap();
    let env = local_run::settle::local_function_env(&stack.resources, "AdminApiFunction");
    let deps = admin_api::Deps::load(&stack.config, &env).await.unwrap();
    let addr = admin_local::start_with(deps, 0, admin_local::Callers::default())
        .await
        .unwrap();
    let name = stack_name(&stack, "a");
    cloudformation(
        &stack.config,
        &name,
        &outputs_of(&stack, &format!("http://{addr}/")),
        &[],
    )
    .await;

    // The admin API at the stack's AdminApiUrl.
    let r = billingctl(&["--stack", &name, "cycle", "2026-11"]).await;
    assert_eq!(r.code, 0, "{}", r.says());
    assert!(r.stdout.contains("SETTLED"), "{}", r.says());
    let r = billingctl(&["--stack", &name, "--json", "funnel", "2026-11"]).await;
    assert_eq!(r.code, 0, "{}", r.says());
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["deliveries"], 4);

    // settle status reads the cycle record (no execution of that name: the seed settled it).
    let r = billingctl(&["--stack", &name, "settle", "status", "--cycle", "2026-11"]).await;
    assert_eq!(r.code, 0, "{}", r.says());
    assert!(
        r.stdout.contains("SETTLED") && r.stdout.contains("no execution of that name"),
        "{}",
        r.says()
    );
    for secret in seeded.emails.iter().chain(&seeded.phones) {
        assert!(!r.stdout.contains(secret.as_str()) && !r.stderr.contains(secret.as_str()));
    }
    let r = billingctl(&["--stack", &name, "--json", "settle", "status", "--cycle", "2026-11"]).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["record"]["status"], "SETTLED", "{}", r.says());
    assert!(v["execution"].is_null());
    let r = billingctl(&["--stack", &name, "settle", "status", "--cycle", "2031-01"]).await;
    assert_eq!(r.code, 3, "{}", r.says());
    assert!(r.stderr.contains("settle start --cycle 2031-01"), "{}", r.says());

    // A stack that does not exist, and one without the outputs a command needs.
    let r = billingctl(&["--stack", "no-such-billing-stack", "settle", "status"]).await;
    assert_eq!(r.code, 3, "{}", r.says());
    assert!(
        r.stderr
            .contains("no stack named no-such-billing-stack in ap-northeast-2"),
        "{}",
        r.says()
    );
    let bare = stack_name(&stack, "bare");
    let bucket = stack.resources.bucket("DataBucket").unwrap().to_owned();
    cloudformation(&stack.config, &bare, &[("DataBucketName", bucket)], &[]).await;
    let r = billingctl(&["--stack", &bare, "settle", "start", "--cycle", "2026-11"]).await;
    assert_eq!(r.code, 1, "{}", r.says());
    assert!(
        r.stderr.contains("has no output SettlementStateMachineArn"),
        "{}",
        r.says()
    );
    let r = billingctl(&["--stack", &bare, "cycle", "2026-11"]).await;
    assert_eq!(r.code, 1, "{}", r.says());
    assert!(r.stderr.contains("has no output AdminApiUrl"), "{}", r.says());
    // Without a stack, the stack's commands say what they need.
    let r = billingctl(&["settle", "status"]).await;
    assert_eq!(r.code, 2, "{}", r.says());
    assert!(r.stderr.contains("--stack NAME"), "{}", r.says());
}

/// Plays ingest for one upload: waits (bounded) for the object at `key` to be there with an
/// ETag other than `not`, then writes `report` (with the object's key and ETag) where ingest
/// writes it. Answers the ETag.
async fn play_ingest(
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    not: Option<String>,
    mut report: Value,
) -> String {
    for _ in 0..600 {
        if let Ok(head) = s3.head_object().bucket(&bucket).key(&key).send().await {
            let etag = head.e_tag().unwrap().to_owned();
            if not.as_deref() != Some(etag.as_str()) {
                report["file"] = json!(key);
                report["etag"] = json!(etag.trim_matches('"'));
                let report_key = format!("ingest-reports/{}.json", key.strip_prefix("incoming/").unwrap());
                s3.put_object()
                    .bucket(&bucket)
                    .key(report_key)
                    .body(ByteStream::from(report.to_string().into_bytes()))
                    .send()
                    .await
                    .unwrap();
                return etag;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{key} was never uploaded");
}

fn report(kind: &str, status: &str, lines: u64, rejections: Value) -> Value {
    let rejected = rejections.as_array().map_or(0, |r| r.len() as u64);
    json!({"kind": kind, "status": status, "lines": lines, "applied": lines - rejected, "unchanged": 0,
        "rejected_lines": rejected, "rejections": rejections, "rejections_truncated": 0, "notes": [],
        "execution": "arn:aws:states:ap-northeast-2:123456789012:execution:x-ingest:e1",
        "started_at": "2026-12-01T00:00:00Z", "finished_at": "2026-12-01T00:00:01Z"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_land_at_their_drop_zone_keys_and_print_the_report_of_their_etag() {
    let stack = local_aws::fresh_stack("billingctl-upload").await.unwrap();
    let name = stack_name(&stack, "u");
    cloudformation(&stack.config, &name, &outputs_of(&stack, "http://127.0.0.1:9/"), &[]).await;
    let bucket = stack.resources.bucket("DataBucket").unwrap().to_owned();
    let s3 = stack.s3();
    let dir = tempfile::tempdir().unwrap();
    let root = local_aws::project_root().unwrap();

    // A catalog, applied: exit 0.
    let catalog = dir.path().join("2026-v1.json");
    std::fs::copy(root.join("catalog/2026-v1.json"), &catalog).unwrap();
    let key = "incoming/catalog/2026-v1.json".to_owned();
    let mut applied = report("catalog", "applied", 1, json!([]));
    applied["catalog_version"] = json!("2026-v1");
    let player = tokio::spawn(play_ingest(s3.clone(), bucket.clone(), key.clone(), None, applied));
    let r = billingctl(&[
        "--stack",
        &name,
        "upload",
        "catalog",
        catalog.to_str().unwrap(),
        "--timeout",
        "60",
    ])
    .await;
    let etag = player.await.unwrap();
    assert_eq!(r.code, 0, "{}", r.says());
    assert!(
        r.stdout
            .starts_with("catalog incoming/catalog/2026-v1.json: applied: 1 lines"),
        "{}",
        r.says()
    );
    assert!(r.stdout.contains("catalog version 2026-v1"), "{}", r.says());
    let stored = s3.get_object().bucket(&bucket).key(&key).send().await.unwrap();
    assert_eq!(stored.e_tag(), Some(etag.as_str()));
    assert_eq!(
        stored.body.collect().await.unwrap().into_bytes().as_ref(),
        std::fs::read(&catalog).unwrap().as_slice()
    );

    // The same file again: the earlier report has the same ETag, and billingctl waits for the
    // new one (the player removes the object first, to see it arrive).
    s3.delete_object().bucket(&bucket).key(&key).send().await.unwrap();
    let mut unchanged = report("catalog", "applied", 1, json!([]));
    unchanged["unchanged"] = json!(1);
    unchanged["applied"] = json!(0);
    // billingctl looks at the earlier report before it uploads, so the player (which waits
    // for the upload) writes the new report after that look.
    let player = tokio::spawn(play_ingest(s3.clone(), bucket.clone(), key.clone(), None, unchanged));
    let r = billingctl(&[
        "--stack",
        &name,
        "--json",
        "upload",
        "catalog",
        catalog.to_str().unwrap(),
        "--timeout",
        "60",
    ])
    .await;
    player.await.unwrap();
    assert_eq!(r.code, 0, "{}", r.says());
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["unchanged"], 1, "the report of the second upload: {}", r.says());

    // Customers with a rejected line: exit 3, the rejection by line, field and reason, and no
    // value of the file printed.
    let customers = dir.path().join("crm-2026-11.jsonl");
    let email = "kim.minji@example.com";
    std::fs::write(
        &customers,
        format!(
            "{{\"customer_id\":\"C0000001\",\"contact\":{{\"email\":\"{email}\"}}}}\n{{\"customer_id\":\"C0000002\"}}\n"
        ),
    )
    .unwrap();
    let key = "incoming/customers/crm-2026-11.jsonl".to_owned();
    let mut partial = report(
        "customers",
        "applied_with_rejections",
        2,
        json!([{"line": 2, "field": "contact", "reason": "is missing"}]),
    );
    partial["shards"] = json!([0]);
    let player = tokio::spawn(play_ingest(s3.clone(), bucket.clone(), key.clone(), None, partial));
    let r = billingctl(&["--stack", &name, "upload", "customers", customers.to_str().unwrap()]).await;
    player.await.unwrap();
    assert_eq!(r.code, 3, "{}", r.says());
    assert!(
        r.stdout.contains("LINE  FIELD    REASON\n2     contact  is missing"),
        "{}",
        r.says()
    );
    assert!(r.stderr.contains("1 line(s) rejected"), "{}", r.says());
    assert!(!r.stdout.contains(email) && !r.stderr.contains(email));

    // A usage file, its cycle and shard from its path, rejected: exit 4.
    let usage_dir = dir.path().join("usage/2026-11");
    std::fs::create_dir_all(&usage_dir).unwrap();
    let usage = usage_dir.join("shard-00001.csv");
    std::fs::write(&usage, "customer_id,product,quantity,amount\n").unwrap();
    let key = "incoming/usage/2026-11/shard-00001.csv".to_owned();
    let mut rejected = report("usage", "rejected", 0, json!([]));
    rejected["file_error"] = json!({"field": "file", "reason": "has no usage lines"});
    let player = tokio::spawn(play_ingest(s3.clone(), bucket.clone(), key.clone(), None, rejected));
    let r = billingctl(&["--stack", &name, "upload", "usage", usage.to_str().unwrap()]).await;
    player.await.unwrap();
    assert_eq!(r.code, 4, "{}", r.says());
    assert!(
        r.stdout.contains("file rejected: file: has no usage lines"),
        "{}",
        r.says()
    );

    // --no-wait: where it went and its ETag; --cycle/--shard name another shard.
    let r = billingctl(&[
        "--stack",
        &name,
        "--json",
        "upload",
        "usage",
        usage.to_str().unwrap(),
        "--cycle",
        "2026-12",
        "--shard",
        "7",
        "--no-wait",
    ])
    .await;
    assert_eq!(r.code, 0, "{}", r.says());
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["key"], "incoming/usage/2026-12/shard-00007.csv");
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("incoming/usage/2026-12/shard-00007.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(v["etag"].as_str(), head.e_tag());

    // A big file goes in parts (5 MiB parts here); the report of its multipart ETag is found.
    let big = dir.path().join("big.jsonl");
    let line = format!("{}\n", "x".repeat(1023));
    std::fs::write(&big, line.repeat(21 * 1024)).unwrap();
    let key = "incoming/customers/big.jsonl".to_owned();
    let player = tokio::spawn(play_ingest(
        s3.clone(),
        bucket.clone(),
        key.clone(),
        None,
        report("customers", "applied", 21 * 1024, json!([])),
    ));
    let r = billingctl(&[
        "--stack",
        &name,
        "upload",
        "customers",
        big.to_str().unwrap(),
        "--part-mib",
        "5",
    ])
    .await;
    let etag = player.await.unwrap();
    assert_eq!(r.code, 0, "{}", r.says());
    assert!(r.stderr.contains("in 5 parts of 5 MiB"), "{}", r.says());
    assert!(etag.trim_matches('"').ends_with("-5"), "a multipart ETag: {etag}");

    // No report in time: exit 7, the file uploaded and where its report will be.
    let r = billingctl(&[
        "--stack",
        &name,
        "upload",
        "customers",
        customers.to_str().unwrap(),
        "--name",
        "late.jsonl",
        "--timeout",
        "1",
    ])
    .await;
    assert_eq!(r.code, 7, "{}", r.says());
    assert!(
        r.stderr.contains("ingest-reports/customers/late.jsonl.json"),
        "{}",
        r.says()
    );
    // A name the drop zone does not take: a usage error, nothing uploaded.
    let r = billingctl(&["--stack", &name, "upload", "catalog", customers.to_str().unwrap()]).await;
    assert_eq!(r.code, 2, "{}", r.says());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_start_names_the_run_as_the_console_does_and_env_json_writes_the_functions_environment() {
    let stack = local_aws::fresh_stack("billingctl-settle").await.unwrap();
    let name = stack_name(&stack, "s");
    let functions: Vec<(&str, BTreeMap<String, String>)> = ["SettleBeginFunction", "AdminApiFunction"]
        .into_iter()
        .map(|f| (f, stack.resources.function_env(f)))
        .collect();
    cloudformation(
        &stack.config,
        &name,
        &outputs_of(&stack, "http://127.0.0.1:9/"),
        &functions,
    )
    .await;

    let r = billingctl(&["--stack", &name, "settle", "start", "--cycle", "2026-11"]).await;
    assert_eq!(r.code, 0, "{}", r.says());
    assert!(
        r.stdout
            .starts_with("started settle-2026-11 with input {\"cycle\":\"2026-11\"}"),
        "{}",
        r.says()
    );
    let machine = stack.resources.state_machine_arn("SettlementStateMachine").unwrap();
    let arn = format!("{}:settle-2026-11", machine.replace(":stateMachine:", ":execution:"));
    let described = stack
        .sfn()
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(described.input(), Some(r#"{"cycle":"2026-11"}"#));
    assert!(
        r.stdout.contains("#/v2/executions/details/arn:aws:states:"),
        "{}",
        r.says()
    );

    // Again: the run exists; its state is shown, nothing is started (exit 4).
    let r = billingctl(&["--stack", &name, "settle", "start", "--cycle", "2026-11"]).await;
    assert_eq!(r.code, 4, "{}", r.says());
    assert!(
        r.stdout.contains("settle-2026-11") && r.stderr.contains("exists already"),
        "{}",
        r.says()
    );
    let listed = stack
        .sfn()
        .list_executions()
        .state_machine_arn(machine)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.executions().len(), 1);
    let r = billingctl(&["--stack", &name, "settle", "start", "--cycle", "2026-13"]).await;
    assert_eq!(r.code, 2, "{}", r.says());

    // status without --cycle: the latest settle-YYYY-MM run.
    let r = billingctl(&["--stack", &name, "--json", "settle", "status"]).await;
    assert_eq!(r.code, 0, "{}", r.says());
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["cycle"], "2026-11");
    assert_eq!(v["execution"]["name"], "settle-2026-11");
    assert_eq!(v["execution"]["arn"], arn.as_str());

    // env-json: {"LogicalId": {"VAR": "value"}} for every function of the stack, as deployed.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env.json");
    let r = billingctl(&["--stack", &name, "env-json", "--out", file.to_str().unwrap()]).await;
    assert_eq!(r.code, 0, "{}", r.says());
    let written: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let expected: BTreeMap<String, BTreeMap<String, String>> =
        functions.iter().map(|(f, env)| (f.to_string(), env.clone())).collect();
    assert_eq!(written, expected);
    assert!(written["SettleBeginFunction"].contains_key("CYCLES_TABLE"));
    let r = billingctl(&["--stack", &name, "env-json"]).await;
    assert_eq!(r.code, 0, "{}", r.says());
    let printed: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(printed, expected);
}
