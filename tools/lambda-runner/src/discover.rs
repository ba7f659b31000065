//! What runs: a stack's functions (CloudFormation `DescribeStackResources`), or functions
//! named one by one, each with its configuration (Lambda `GetFunction`), its deployment
//! package (the S3 object the stack's template names, else the object behind the function's
//! `Code.Location`) unpacked into a task directory, and the SQS event source mappings that
//! feed them (`ListEventSourceMappings`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use aws_config::SdkConfig;
use serde_json::Value;

/// One function as Lambda would run it.
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    /// The physical name (`stack-LogicalId-RANDOM` when CloudFormation named it).
    pub name: String,
    pub logical_id: Option<String>,
    pub arn: String,
    pub handler: String,
    pub runtime: String,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub env: BTreeMap<String, String>,
    pub log_group: String,
    /// `JSON` or `Text` (Lambda's advanced logging controls), when configured.
    pub log_format: Option<String>,
    /// Where the package is unpacked (Lambda's `/var/task`).
    pub task_dir: PathBuf,
}

/// An SQS event source mapping of one of the functions.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    pub uuid: String,
    pub function_name: String,
    pub queue_arn: String,
    pub batch_size: usize,
    pub window: Duration,
    pub report_failures: bool,
    pub max_concurrency: Option<usize>,
    pub enabled: bool,
}

/// The emulator's endpoint (`AWS_ENDPOINT_URL`): the runner serves functions for the local
/// emulator only.
pub fn endpoint() -> anyhow::Result<String> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(u) if u.trim().starts_with("http://") => Ok(u.trim().trim_end_matches('/').to_owned()),
        Ok(_) => bail!("AWS_ENDPOINT_URL must be the local emulator's http:// endpoint"),
        Err(_) => bail!(
            "AWS_ENDPOINT_URL is not set: lambda-runner runs functions for the local emulator \
             (source scripts/lib.sh and call use_emulator, or export it)"
        ),
    }
}

/// The stack's functions: (logical id, physical name).
pub async fn stack_functions(sdk: &SdkConfig, stack: &str) -> anyhow::Result<Vec<(String, String)>> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let out = cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .with_context(|| format!("DescribeStackResources of stack {stack}"))?;
    let mut functions: Vec<(String, String)> = out
        .stack_resources
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.resource_type.as_deref() == Some("AWS::Lambda::Function"))
        .filter_map(|r| Some((r.logical_resource_id?, r.physical_resource_id?)))
        .collect();
    functions.sort();
    if functions.is_empty() {
        bail!("stack {stack} has no AWS::Lambda::Function resource");
    }
    Ok(functions)
}

/// The stack's template as deployed (the packaged one `sam deploy` sent), parsed; YAML tags
/// (`!GetAtt`, `!Sub`) are kept as tagged values.
pub async fn stack_template(sdk: &SdkConfig, stack: &str) -> anyhow::Result<serde_yaml::Value> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let out = cfn
        .get_template()
        .stack_name(stack)
        .template_stage(aws_sdk_cloudformation::types::TemplateStage::Original)
        .send()
        .await
        .with_context(|| format!("GetTemplate of stack {stack}"))?;
    let body = out.template_body.unwrap_or_default();
    serde_yaml::from_str(&body).with_context(|| format!("the template of stack {stack} does not parse"))
}

fn untag(v: &serde_yaml::Value) -> &serde_yaml::Value {
    match v {
        serde_yaml::Value::Tagged(t) => &t.value,
        v => v,
    }
}

/// The S3 object (bucket, key) the template gives as a function's code: SAM's `CodeUri`
/// (`s3://bucket/key` or `{Bucket, Key}`) or CloudFormation's `Code.{S3Bucket, S3Key}`.
pub fn template_code(template: &serde_yaml::Value, logical_id: &str) -> Option<(String, String)> {
    let props = untag(template.get("Resources")?.get(logical_id)?.get("Properties")?);
    let s = |v: Option<&serde_yaml::Value>| v.map(untag).and_then(|v| v.as_str()).map(str::to_owned);
    if let Some(uri) = props.get("CodeUri").map(untag) {
        if let Some((bucket, key)) = uri.as_str().and_then(|u| u.strip_prefix("s3://")?.split_once('/')) {
            return Some((bucket.to_owned(), key.to_owned()));
        }
        if let (Some(b), Some(k)) = (s(uri.get("Bucket")), s(uri.get("Key"))) {
            return Some((b, k));
        }
    }
    let code = props.get("Code").map(untag)?;
    Some((s(code.get("S3Bucket"))?, s(code.get("S3Key"))?))
}

/// The input an EventBridge Scheduler schedule of the template sends to `logical_id`
/// (its `ScheduleV2` event's `Input`).
pub fn schedule_input(template: &serde_yaml::Value, logical_id: &str) -> Option<String> {
    let events = untag(
        template
            .get("Resources")?
            .get(logical_id)?
            .get("Properties")?
            .get("Events")?,
    );
    events.as_mapping()?.values().find_map(|e| {
        let e = untag(e);
        if e.get("Type").and_then(|t| t.as_str()) != Some("ScheduleV2") {
            return None;
        }
        untag(e.get("Properties")?.get("Input")?).as_str().map(str::to_owned)
    })
}

/// One HTTP/1.0 exchange with the emulator (loopback), for answers the SDK's strict
/// deserialisers refuse: moto gives the numeric environment values a template holds as JSON
/// numbers, where Lambda gives strings.
async fn emulator_get(endpoint: &str, region: &str, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = endpoint.trim_start_matches("http://");
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(authority).await?;
        // moto picks the service and the region's backend from the credential scope.
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/{region}/lambda/aws4_request, \
             SignedHeaders=host, Signature=0\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .context("the emulator did not answer within 60 s")?
        .context("talking to the emulator")?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("a malformed answer from the emulator")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("an answer without a status")?;
    Ok((status, raw[split + 4..].to_vec()))
}

/// `GetFunction` of `name`, as JSON.
pub async fn get_function(endpoint: &str, region: &str, name: &str) -> anyhow::Result<Value> {
    let (status, body) = emulator_get(endpoint, region, &format!("/2015-03-31/functions/{name}")).await?;
    if status == 404 {
        bail!("no function named {name} in the emulator");
    }
    if status != 200 {
        bail!("GetFunction of {name}: HTTP {status}");
    }
    serde_json::from_slice(&body).with_context(|| format!("GetFunction of {name}: not JSON"))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The configuration part of a `GetFunction` answer.
pub fn spec_of(answer: &Value, logical_id: Option<String>, task_dir: PathBuf) -> anyhow::Result<FunctionSpec> {
    let c = answer.get("Configuration").context("GetFunction: no Configuration")?;
    let name = c
        .get("FunctionName")
        .and_then(Value::as_str)
        .context("GetFunction: no FunctionName")?
        .to_owned();
    let env = c
        .pointer("/Environment/Variables")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), text(v)?))).collect())
        .unwrap_or_default();
    let num = |field: &str, default: u64| c.get(field).and_then(Value::as_u64).unwrap_or(default);
    Ok(FunctionSpec {
        arn: c
            .get("FunctionArn")
            .and_then(Value::as_str)
            .map(|a| a.split(':').take(7).collect::<Vec<_>>().join(":"))
            .unwrap_or_default(),
        handler: c
            .get("Handler")
            .and_then(Value::as_str)
            .unwrap_or("bootstrap")
            .to_owned(),
        runtime: c
            .get("Runtime")
            .and_then(Value::as_str)
            .unwrap_or("provided.al2023")
            .to_owned(),
        timeout: Duration::from_secs(num("Timeout", 3)),
        memory_mb: u32::try_from(num("MemorySize", 128)).unwrap_or(128),
        env,
        log_group: c
            .pointer("/LoggingConfig/LogGroup")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("/aws/lambda/{name}")),
        log_format: c
            .pointer("/LoggingConfig/LogFormat")
            .and_then(Value::as_str)
            .map(str::to_owned),
        name,
        logical_id,
        task_dir,
    })
}

/// The S3 key of the code behind the emulator's `Code.Location` (moto answers a URL on AWS's
/// own code bucket host, `https://awslambda-<region>-tasks.s3.<region>.amazonaws.com/<key>`,
/// that nobody can fetch: the object itself is in the emulator's S3).
pub fn location_key(location: &str) -> Option<String> {
    let rest = location.strip_prefix("https://")?;
    let (host, key) = rest.split_once('/')?;
    (host.starts_with("awslambda-") && host.ends_with(".amazonaws.com") && !key.is_empty())
        .then(|| key.split('?').next().unwrap_or(key).to_owned())
}

/// Reads the package from S3: `object` when the template named it, else the key behind
/// `Code.Location` from whichever of the emulator's buckets holds it.
pub async fn package(sdk: &SdkConfig, answer: &Value, object: Option<(String, String)>) -> anyhow::Result<Vec<u8>> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            // The emulator's multipart checksums are part-level: nothing the SDK can validate.
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
            .build(),
    );
    let (bucket, key) = match object {
        Some(o) => o,
        None => {
            let location = answer
                .pointer("/Code/Location")
                .and_then(Value::as_str)
                .context("GetFunction: no Code.Location (an image function? only zip packages run here)")?;
            let key = location_key(location).with_context(|| {
                format!(
                    "Code.Location {location} is not the emulator's code location; name the stack to read its template"
                )
            })?;
            let buckets = s3
                .list_buckets()
                .send()
                .await
                .context("ListBuckets")?
                .buckets
                .unwrap_or_default();
            let mut found = None;
            for b in buckets.into_iter().filter_map(|b| b.name) {
                if s3.head_object().bucket(&b).key(&key).send().await.is_ok() {
                    found = Some(b);
                    break;
                }
            }
            let bucket = found.with_context(|| {
                format!(
                    "the package {key} is in none of the emulator's buckets (a function created with ZipFile: \
                     create it from an S3 object, as CloudFormation does)"
                )
            })?;
            (bucket, key)
        }
    };
    let out = s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .with_context(|| format!("GetObject s3://{bucket}/{key}"))?;
    let bytes = out
        .body
        .collect()
        .await
        .with_context(|| format!("reading s3://{bucket}/{key}"))?;
    Ok(bytes.into_bytes().to_vec())
}

/// Fetches and unpacks every function: (logical id, physical name) pairs, with the stack's
/// template when there is one.
pub async fn functions(
    sdk: &SdkConfig,
    endpoint: &str,
    names: &[(Option<String>, String)],
    template: Option<&serde_yaml::Value>,
    work: &Path,
) -> anyhow::Result<Vec<FunctionSpec>> {
    let mut out = Vec::with_capacity(names.len());
    for (logical, name) in names {
        let region = sdk.region().map_or(local_aws::REGION, |r| r.as_ref());
        let answer = get_function(endpoint, region, name).await?;
        let object = logical
            .as_deref()
            .and_then(|l| template.and_then(|t| template_code(t, l)));
        let zip = package(sdk, &answer, object)
            .await
            .with_context(|| format!("the package of {name}"))?;
        let task_dir = work.join(name).join("task");
        if task_dir.exists() {
            std::fs::remove_dir_all(&task_dir).with_context(|| format!("clearing {}", task_dir.display()))?;
        }
        std::fs::create_dir_all(&task_dir).with_context(|| format!("creating {}", task_dir.display()))?;
        crate::zip::unpack(&zip, &task_dir).with_context(|| format!("unpacking the package of {name}"))?;
        let spec = spec_of(&answer, logical.clone(), task_dir)?;
        if !spec.runtime.starts_with("provided") {
            bail!(
                "{name} runs on {}: only the OS-only runtimes (provided.al2023, provided.al2) run here",
                spec.runtime
            );
        }
        out.push(spec);
    }
    Ok(out)
}

/// The SQS event source mappings of `function` (by name).
pub async fn mappings(lambda: &aws_sdk_lambda::Client, function: &str) -> anyhow::Result<Vec<Mapping>> {
    let mut out = Vec::new();
    let mut marker = None;
    // Bounded by the mappings: each page moves the marker on.
    loop {
        let page = lambda
            .list_event_source_mappings()
            .function_name(function)
            .set_marker(marker.take())
            .send()
            .await
            .with_context(|| format!("ListEventSourceMappings of {function}"))?;
        for m in page.event_source_mappings.unwrap_or_default() {
            let Some(arn) = m.event_source_arn.filter(|a| a.starts_with("arn:aws:sqs:")) else {
                continue;
            };
            out.push(Mapping {
                uuid: m.uuid.unwrap_or_default(),
                function_name: function.to_owned(),
                queue_arn: arn,
                batch_size: usize::try_from(m.batch_size.unwrap_or(10).max(1)).unwrap_or(10),
                window: Duration::from_secs(
                    u64::try_from(m.maximum_batching_window_in_seconds.unwrap_or(0)).unwrap_or(0),
                ),
                report_failures: m
                    .function_response_types
                    .unwrap_or_default()
                    .iter()
                    .any(|t| t.as_str() == "ReportBatchItemFailures"),
                max_concurrency: m
                    .scaling_config
                    .and_then(|s| s.maximum_concurrency)
                    .and_then(|c| usize::try_from(c).ok()),
                enabled: m.state.as_deref().is_none_or(|s| s == "Enabled" || s == "Creating"),
            });
        }
        match page.next_marker {
            Some(m) if !m.is_empty() => marker = Some(m),
            _ => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGED: &str = r#"
Resources:
  DispatchSlotFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: s3://aws-sam-cli-managed-default-samclisourcebucket-x/0a1b2c
      Environment:
        Variables:
          QUEUE: !Ref Queue
      Events:
        Continuation:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
        EverySlot:
          Type: ScheduleV2
          Properties:
            Name: !Sub "${AWS::StackName}-dispatch-slot"
            Input: '{"scheduled_time": "<aws.scheduler.scheduled-time>"}'
  Plain:
    Type: AWS::Lambda::Function
    Properties:
      Code:
        S3Bucket: b
        S3Key: k/1
"#;

    #[test]
    fn the_template_names_the_code_and_the_schedule_input() {
        let t: serde_yaml::Value = serde_yaml::from_str(PACKAGED).unwrap();
        assert_eq!(
            template_code(&t, "DispatchSlotFunction"),
            Some((
                "aws-sam-cli-managed-default-samclisourcebucket-x".into(),
                "0a1b2c".into()
            ))
        );
        assert_eq!(template_code(&t, "Plain"), Some(("b".into(), "k/1".into())));
        assert_eq!(template_code(&t, "Missing"), None);
        assert_eq!(
            schedule_input(&t, "DispatchSlotFunction").as_deref(),
            Some(r#"{"scheduled_time": "<aws.scheduler.scheduled-time>"}"#)
        );
    }

    #[test]
    fn the_emulators_code_location_gives_the_key() {
        assert_eq!(
            location_key("https://awslambda-ap-northeast-2-tasks.s3.ap-northeast-2.amazonaws.com/code/f.zip")
                .as_deref(),
            Some("code/f.zip")
        );
        assert_eq!(location_key("https://example.com/x"), None);
    }

    #[test]
    fn numeric_environment_values_become_strings() {
        let answer = serde_json::json!({"Configuration": {
            "FunctionName": "s-F-1", "FunctionArn": "arn:aws:lambda:r:1:function:s-F-1",
            "Runtime": "provided.al2023", "Handler": "bootstrap", "Timeout": 900, "MemorySize": 512,
            "Environment": {"Variables": {"MAX": 6, "Q": "url"}},
            "LoggingConfig": {"LogFormat": "JSON", "LogGroup": "/g"}}});
        let s = spec_of(&answer, None, PathBuf::from("/t")).unwrap();
        assert_eq!(s.env["MAX"], "6");
        assert_eq!((s.timeout, s.memory_mb), (Duration::from_secs(900), 512));
        assert_eq!((s.log_group.as_str(), s.log_format.as_deref()), ("/g", Some("JSON")));
    }
}
