//! `lambda-runner` runs functions created in the emulator from deployment packages, as Lambda
//! would: the package of a debug bootstrap uploaded to S3, the function created with the AWS
//! CLI's `lambda create-function` (as CloudFormation creates it, from an S3 object), the runner
//! started for it, and every call made the way a user or a service makes it — `aws lambda
//! invoke` through the emulator, an SQS event source mapping, the virtual clock's file.
//!
//! The binaries run here (`lambda-runner`, `record-failure`) are built before the tests start
//! (scripts/test.sh), next to this test's own executable.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const READY_LIMIT: Duration = Duration::from_secs(180);
const CLI_LIMIT: Duration = Duration::from_secs(120);

/// The directory of the workspace's debug binaries (this test is in `<target>/debug/deps`).
fn debug_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test executable is not in <target>/debug/deps")?;
    Ok(dir.to_path_buf())
}

fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = debug_dir()?.join(name);
    if !path.is_file() {
        bail!(
            "{} is not built: run scripts/test.sh, which builds it before the tests (or cargo build --bin {name})",
            path.display()
        );
    }
    Ok(path)
}

/// The AWS CLI of the project's venv, against the emulator.
struct Cli {
    aws: PathBuf,
    endpoint: String,
}

impl Cli {
    fn new(endpoint: &str) -> anyhow::Result<Cli> {
        let aws = local_aws::project_root()?.join(".venv/bin/aws");
        if !aws.is_file() {
            bail!("{} is missing: run scripts/setup.sh", aws.display());
        }
        Ok(Cli {
            aws,
            endpoint: endpoint.to_owned(),
        })
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<Value> {
        let out = tokio::time::timeout(
            CLI_LIMIT,
            tokio::process::Command::new(&self.aws)
                .arg("--endpoint-url")
                .arg(&self.endpoint)
                .args(["--region", local_aws::REGION, "--output", "json"])
                .args(args)
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env_remove("AWS_PROFILE")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .with_context(|| format!("aws {} took over {CLI_LIMIT:?}", args.join(" ")))??;
        if !out.status.success() {
            bail!(
                "aws {} failed: {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// `aws lambda invoke`: the CLI's answer and the payload it wrote.
    async fn invoke(&self, function: &str, payload: &Value, dir: &Path) -> anyhow::Result<(Value, Value)> {
        let input = dir.join(format!("{function}-in.json"));
        let output = dir.join(format!("{function}-out.json"));
        std::fs::write(&input, serde_json::to_vec(payload)?)?;
        let answer = self
            .run(&[
                "lambda",
                "invoke",
                "--function-name",
                function,
                "--payload",
                &format!("fileb://{}", input.display()),
                &output.display().to_string(),
            ])
            .await?;
        let body = std::fs::read(&output)?;
        Ok((answer, serde_json::from_slice(&body)?))
    }
}

/// A `lambda-runner serve` child process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Runner {
    child: tokio::process::Child,
    _work: tempfile::TempDir,
    clock: PathBuf,
}

impl Runner {
    async fn start(endpoint: &str, functions: &[&str]) -> anyhow::Result<Runner> {
        let work = tempfile::tempdir()?;
        let clock = work.path().join("clock");
        let mut cmd = tokio::process::Command::new(binary("lambda-runner")?);
        cmd.arg("serve")
            .arg("--work-dir")
            .arg(work.path())
            .arg("--clock-file")
            .arg(&clock)
            .args(["--instances", "2", "--refresh-seconds", "1"]);
        for f in functions {
            cmd.args(["--function", f]);
        }
        let mut child = cmd
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", local_aws::REGION)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_LIMIT, async {
            // Bounded by the timeout around it and by the end of the output.
            while let Some(line) = lines.next_line().await? {
                if line.trim() == "ready" {
                    return Ok::<bool, std::io::Error>(true);
                }
            }
            Ok(false)
        })
        .await;
        match ready {
            Ok(Ok(true)) => Ok(Runner {
                child,
                _work: work,
                clock,
            }),
            Ok(Ok(false)) => bail!("lambda-runner exited before it was ready: {:?}", child.wait().await?),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => bail!("lambda-runner was not ready within {READY_LIMIT:?}"),
        }
    }

    fn set_clock(&self, t: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
        let offset = (t - chrono::Utc::now()).num_milliseconds() as f64 / 1000.0;
        std::fs::write(&self.clock, format!("{offset:+.3}\n"))?;
        Ok(())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM lets the runner unregister its routes and stop its instances.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.start_kill();
    }
}

/// An emulator stack of the template's storage, a code bucket and the CLI.
struct Setup {
    stack: local_aws::Stack,
    cli: Cli,
    bucket: String,
    endpoint: String,
    dir: tempfile::TempDir,
}

async fn setup(name: &str) -> anyhow::Result<Setup> {
    let emulator = local_aws::Emulator::shared().await?;
    let stack = local_aws::fresh_stack(name).await?;
    // The packages go where the stack's data goes (a deployment puts them in SAM's bucket).
    let bucket = stack.resources.bucket("DataBucket").context("DataBucket")?.to_owned();
    Ok(Setup {
        cli: Cli::new(emulator.endpoint_url())?,
        endpoint: emulator.endpoint_url().to_owned(),
        bucket,
        stack,
        dir: tempfile::tempdir()?,
    })
}

impl Setup {
    /// A function created from the package of a debug bootstrap: uploaded to `bucket`, created
    /// with `aws lambda create-function` from that object.
    async fn create_function(
        &self,
        name: &str,
        bootstrap: &str,
        timeout_s: u32,
        env: &[(String, String)],
    ) -> anyhow::Result<()> {
        let (cli, stack, bucket, dir) = (&self.cli, &self.stack, self.bucket.as_str(), self.dir.path());
        let zip = dir.join(format!("{name}.zip"));
        let status = tokio::process::Command::new(binary("lambda-runner")?)
            .arg("package")
            .arg(binary(bootstrap)?)
            .arg(&zip)
            .status()
            .await?;
        anyhow::ensure!(status.success(), "lambda-runner package failed");
        stack
            .s3()
            .put_object()
            .bucket(bucket)
            .key(format!("code/{name}.zip"))
            .body(std::fs::read(&zip)?.into())
            .send()
            .await
            .context("PutObject of the package")?;
        let role = format!("{name}-role");
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let created = cli
            .run(&[
                "iam",
                "create-role",
                "--role-name",
                &role,
                "--assume-role-policy-document",
                trust,
            ])
            .await?;
        let role_arn = created["Role"]["Arn"]
            .as_str()
            .context("CreateRole: no Arn")?
            .to_owned();
        cli.run(&[
            "lambda",
            "create-function",
            "--function-name",
            name,
            "--runtime",
            "provided.al2023",
            "--handler",
            "bootstrap",
            "--role",
            &role_arn,
            "--timeout",
            &timeout_s.to_string(),
            "--memory-size",
            "256",
            "--code",
            &format!("S3Bucket={bucket},S3Key=code/{name}.zip"),
            "--environment",
            &serde_json::json!({
                "Variables": env.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>()
            })
            .to_string(),
        ])
        .await?;
        Ok(())
    }

    fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.stack.resources.prefix())
    }

    fn failures_table(&self) -> anyhow::Result<String> {
        Ok(self
            .stack
            .resources
            .table("FailuresTable")
            .context("FailuresTable")?
            .to_owned())
    }

    async fn record_failure(&self, suffix: &str, timeout_s: u32, extra: &[(&str, &str)]) -> anyhow::Result<String> {
        let name = self.name(suffix);
        let mut env: Vec<(String, String)> = self
            .stack
            .resources
            .function_env("RecordFailureFunction")
            .into_iter()
            .collect();
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self.create_function(&name, "record-failure", timeout_s, &env).await?;
        Ok(name)
    }

    /// (sort key, first_at) of the failure records, with `first_at` empty for a record whose
    /// occurrences are not counted (a record that was never written whole).
    async fn failure_times(&self) -> anyhow::Result<Vec<(String, String)>> {
        let ddb = aws_sdk_dynamodb::Client::new(&self.stack.config);
        let items = ddb
            .scan()
            .table_name(self.failures_table()?)
            .consistent_read(true)
            .send()
            .await?
            .items
            .unwrap_or_default();
        let s = |i: &std::collections::HashMap<String, AttributeValue>, k: &str| {
            i.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
        };
        let counted = |i: &std::collections::HashMap<String, AttributeValue>| {
            matches!(i.get("occurrences"), Some(AttributeValue::N(_)))
        };
        let mut out: Vec<(String, String)> = items
            .iter()
            .map(|i| (s(i, "sk"), if counted(i) { s(i, "first_at") } else { String::new() }))
            .collect();
        out.sort();
        Ok(out)
    }
}

fn malformed(id: &str) -> Value {
    serde_json::json!({"Records": [{
        "messageId": id, "receiptHandle": "r", "body": "not a delivery message",
        "attributes": {"ApproximateReceiveCount": "6"}, "messageAttributes": {}, "md5OfBody": "",
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:ap-northeast-2:123456789012:q",
        "awsRegion": "ap-northeast-2"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoke_through_the_emulator_runs_the_deployed_bootstrap_and_errors_look_like_lambdas() -> anyhow::Result<()>
{
    let s = setup("runner-invoke").await?;
    let f = s.record_failure("rf", 10, &[]).await?;
    // A function whose table never answers: the SDK waits longer than its one-second timeout.
    let hole = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let hole_url = format!("http://{}", hole.local_addr()?);
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        // Bounded by the test: the task is aborted at its end.
        while let Ok((conn, _)) = hole.accept().await {
            open.push(conn);
        }
    });
    let slow = s
        .record_failure("slow", 1, &[("AWS_ENDPOINT_URL_DYNAMODB", &hole_url)])
        .await?;
    let _runner = Runner::start(&s.endpoint, &[&f, &slow]).await?;

    let (answer, body) = s.cli.invoke(&f, &malformed("m-ok"), s.dir.path()).await?;
    assert_eq!(answer["StatusCode"], 200, "{answer}");
    assert!(answer.get("FunctionError").is_none(), "{answer}");
    assert_eq!(body, serde_json::json!({"batchItemFailures": []}));
    let records = s.failure_times().await?;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, "m-ok#dead-letter");

    let (answer, body) = s
        .cli
        .invoke(&f, &serde_json::json!({"Records": 5}), s.dir.path())
        .await?;
    assert_eq!(answer["FunctionError"], "Unhandled", "{answer}");
    assert_eq!(body["errorType"], "InvalidInput", "{body}");
    assert_eq!(
        body["errorMessage"], "invalid input: field `Records`: expected a sequence",
        "{body}"
    );

    let (answer, body) = s.cli.invoke(&slow, &malformed("m-slow"), s.dir.path()).await?;
    assert_eq!(answer["FunctionError"], "Unhandled", "{answer}");
    assert_eq!(body["errorType"], "Sandbox.Timedout", "{body}");
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(message.ends_with("Task timed out after 1.00 seconds"), "{message}");
    // The killed instance is replaced: the next invocation runs (and times out) again.
    let (_, body) = s.cli.invoke(&slow, &malformed("m-slow-2"), s.dir.path()).await?;
    assert_eq!(body["errorType"], "Sandbox.Timedout", "{body}");
    held.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_mapping_drains_its_queue_and_leaves_the_failed_items_of_a_batch() -> anyhow::Result<()> {
    let s = setup("runner-sqs").await?;
    let f = s.record_failure("rf", 10, &[]).await?;
    let sqs = s.stack.sqs();
    let queue = s.name("dead-letters");
    let url = sqs
        .create_queue()
        .queue_name(&queue)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "2")
        .send()
        .await?
        .queue_url
        .context("CreateQueue: no URL")?;
    for i in 1..=3 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!(
                r#"{{"delivery_id":"2026-11#00001#C000000{i}","channel":"sms"}}"#
            ))
            .send()
            .await?;
    }
    // The second delivery's record cannot be written: its item holds a counter that is not a
    // number, so RecordFailure hands that message back in its batch response.
    let ddb = aws_sdk_dynamodb::Client::new(&s.stack.config);
    ddb.put_item()
        .table_name(s.failures_table()?)
        .item("pk", AttributeValue::S("2026-11".into()))
        .item("sk", AttributeValue::S("2026-11#00001#C0000002#dead-letter".into()))
        .item("occurrences", AttributeValue::S("not a number".into()))
        .send()
        .await?;
    let arn = format!("arn:aws:sqs:{}:{}:{queue}", local_aws::REGION, local_aws::ACCOUNT_ID);
    s.cli
        .run(&[
            "lambda",
            "create-event-source-mapping",
            "--function-name",
            &f,
            "--event-source-arn",
            &arn,
            "--batch-size",
            "10",
            "--function-response-types",
            "ReportBatchItemFailures",
        ])
        .await?;
    let _runner = Runner::start(&s.endpoint, &[&f]).await?;

    let depth = || async {
        let a = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await?
            .attributes
            .unwrap_or_default();
        let n = |k: aws_sdk_sqs::types::QueueAttributeName| a.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok::<u64, anyhow::Error>(
            n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                + n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    };
    let recorded = |records: &[(String, String)]| {
        records
            .iter()
            .filter(|(sk, at)| sk.starts_with("2026-11#00001#") && !at.is_empty())
            .count()
    };
    let started = Instant::now();
    // Bounded: a minute for the two good messages to be recorded and deleted.
    loop {
        let (records, left) = (s.failure_times().await?, depth().await?);
        if recorded(&records) == 2 && left == 1 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the mapping did not drain the good messages: {records:?}, {left} on the queue"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The failed one stays and comes back after each visibility timeout.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(depth().await?, 1);
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .visibility_timeout(0)
        .wait_time_seconds(3)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await?
        .messages
        .unwrap_or_default();
    if let Some(m) = received.first() {
        assert!(m.body().unwrap_or_default().contains("C0000002"), "{m:?}");
    }
    // Once the item is repaired, the next delivery of the message records it and the queue empties.
    ddb.delete_item()
        .table_name(s.failures_table()?)
        .key("pk", AttributeValue::S("2026-11".into()))
        .key("sk", AttributeValue::S("2026-11#00001#C0000002#dead-letter".into()))
        .send()
        .await?;
    let started = Instant::now();
    // Bounded: a minute.
    loop {
        if recorded(&s.failure_times().await?) == 3 && depth().await? == 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the failed message was never redelivered"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_file_moves_the_time_of_running_functions() -> anyhow::Result<()> {
    let s = setup("runner-clock").await?;
    let f = s.record_failure("rf", 10, &[]).await?;
    let runner = Runner::start(&s.endpoint, &[&f]).await?;
    let t = chrono::DateTime::parse_from_rfc3339("2031-03-04T05:06:00Z")?.with_timezone(&chrono::Utc);
    runner.set_clock(t)?;
    s.cli.invoke(&f, &malformed("m-2031"), s.dir.path()).await?;
    // The same instance, a year back: the clock moves under a running function.
    runner.set_clock(t - chrono::Duration::days(365))?;
    s.cli.invoke(&f, &malformed("m-2030"), s.dir.path()).await?;
    let records = s.failure_times().await?;
    let at = |sk: &str| {
        records
            .iter()
            .find(|(k, _)| k == sk)
            .map(|(_, at)| at.clone())
            .unwrap_or_default()
    };
    assert!(at("m-2031#dead-letter").starts_with("2031-03-04T05:0"), "{records:?}");
    assert!(at("m-2030#dead-letter").starts_with("2030-03-04T05:0"), "{records:?}");
    Ok(())
}
