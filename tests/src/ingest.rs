//! The drop zone of a fresh stack: the ingest function hosted in this process, files put
//! under `incoming/` and the ingest state machine started with the event S3 sends through
//! EventBridge (the emulator's rule is not provisioned: the test starts the execution with
//! exactly the rule's input).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use chrono::{DateTime, SecondsFormat, Utc};
use local_aws::lambda::LambdaHost;
use local_aws::{ACCOUNT_ID, Emulator, REGION, Resources};
use local_run::settle::{ExecutionOutcome, wait_for};
use serde_json::{Value, json};

use crate::Month;

pub const FUNCTION: &str = "IngestFunction";
pub const STATE_MACHINE: &str = "IngestStateMachine";

/// Hosts the ingest function of `resources` in `host` with the environment template.yaml
/// gives it, `overrides` on top (limits and chunk sizes a test chooses).
pub async fn host_ingest(
    host: &LambdaHost,
    emulator: &Emulator,
    sdk: &SdkConfig,
    resources: &Resources,
    overrides: &[(&str, &str)],
) -> anyhow::Result<()> {
    let mut env: BTreeMap<String, String> = resources.function_env(FUNCTION);
    for (k, v) in overrides {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let deps = Arc::new(ingest::Deps::load(sdk, &env).await?);
    let name = resources
        .function_name(FUNCTION)
        .with_context(|| format!("template.yaml declares no {FUNCTION}"))?
        .to_owned();
    host.register_fn(emulator, &name, Duration::from_secs(900), move |ev| {
        let deps = deps.clone();
        async move { ingest::handle(&deps, ev).await }
    })
    .await?;
    Ok(())
}

/// S3's EventBridge event for an object created in `bucket`.
pub fn object_created(bucket: &str, key: &str, size: u64, etag: &str, time: DateTime<Utc>) -> Value {
    json!({
        "version": "0",
        "id": format!("evt-{}", time.timestamp_nanos_opt().unwrap_or_default()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT_ID,
        "time": time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": REGION,
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, "etag": etag.trim_matches('"'), "sequencer": "0000000000000000"},
            "request-id": "LOCAL",
            "requester": ACCOUNT_ID,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject"
        }
    })
}

/// A fresh stack with the ingest function hosted.
pub struct DropZone {
    pub month: Month,
    pub bucket: String,
    pub state_machine: String,
    uploads: std::sync::atomic::AtomicU32,
}

/// One upload's outcome: the execution and the report it wrote (when it wrote one).
#[derive(Debug)]
pub struct Upload {
    pub key: String,
    pub execution: ExecutionOutcome,
    pub report: Option<Value>,
    /// The report's text as stored.
    pub report_text: String,
    pub rejected_copy: Option<Value>,
}

impl Upload {
    pub fn status(&self) -> &str {
        self.report
            .as_ref()
            .and_then(|r| r["status"].as_str())
            .unwrap_or("no report")
    }

    pub fn count(&self, field: &str) -> u64 {
        self.report.as_ref().and_then(|r| r[field].as_u64()).unwrap_or(0)
    }
}

impl DropZone {
    pub async fn new(name: &str, overrides: &[(&str, &str)]) -> anyhow::Result<DropZone> {
        let month = Month::new(name).await?;
        host_ingest(&month.host, month.emulator, &month.config, &month.resources, overrides).await?;
        let bucket = month.bucket.bucket().to_owned();
        let state_machine = month
            .resources
            .arn(STATE_MACHINE)
            .with_context(|| format!("template.yaml declares no {STATE_MACHINE}"))?
            .to_owned();
        Ok(DropZone {
            month,
            bucket,
            state_machine,
            uploads: Default::default(),
        })
    }

    /// Puts `body` at `key` (under `incoming/`), starts the ingest state machine with the
    /// event, waits for it (at most five minutes) and reads the report.
    pub async fn upload(&self, key: &str, body: impl Into<Vec<u8>>) -> anyhow::Result<Upload> {
        self.upload_at(key, body, Utc::now()).await
    }

    /// [`upload`](Self::upload) with the event's time given.
    pub async fn upload_at(&self, key: &str, body: impl Into<Vec<u8>>, time: DateTime<Utc>) -> anyhow::Result<Upload> {
        let body = body.into();
        let size = body.len() as u64;
        let put = local_aws::s3_client(&self.month.config)
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .context("PutObject")?;
        let etag = put.e_tag.unwrap_or_default();
        let event = object_created(&self.bucket, key, size, &etag, time);
        let n = self.uploads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = self
            .month
            .sfn
            .start_execution()
            .state_machine_arn(&self.state_machine)
            .name(format!("upload-{n}"))
            .input(event.to_string())
            .send()
            .await
            .context("StartExecution")?;
        let execution = wait_for(
            &self.month.sfn,
            &started.execution_arn,
            Duration::from_secs(300),
            &|_| {},
        )
        .await?;
        let report_key = ingest::zone::report_key(key);
        let report_text = self
            .month
            .bucket
            .get_bytes(&report_key)
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let report = serde_json::from_str(&report_text).ok();
        let rejected_copy = self.month.bucket.get_json(&ingest::zone::rejected_key(key)).await?;
        Ok(Upload {
            key: key.to_owned(),
            execution,
            report,
            report_text,
            rejected_copy,
        })
    }

    /// Every item of the customers table, in key order (as stored, attribute by attribute).
    pub async fn customer_items(&self) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
        let table = self.month.customers.table().to_owned();
        let ddb = adapters::dynamodb_client(&self.month.config);
        let mut out = Vec::new();
        let mut start = None;
        for _ in 0..10_000 {
            let page = ddb
                .scan()
                .table_name(&table)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in page.items.unwrap_or_default() {
                out.push(item.into_iter().map(|(k, v)| (k, canonical(&v))).collect());
            }
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                break;
            }
        }
        out.sort_by(|a: &BTreeMap<String, String>, b| {
            (a.get("shard"), a.get("customer_id")).cmp(&(b.get("shard"), b.get("customer_id")))
        });
        Ok(out)
    }
}

/// An attribute value as text, maps in key order (so that equal items print equal).
pub fn canonical(v: &aws_sdk_dynamodb::types::AttributeValue) -> String {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::M(m) => {
            let inner: BTreeMap<&String, String> = m.iter().map(|(k, v)| (k, canonical(v))).collect();
            format!("M{inner:?}")
        }
        A::L(l) => format!("L{:?}", l.iter().map(canonical).collect::<Vec<_>>()),
        other => format!("{other:?}"),
    }
}

/// A customer of a CRM export: contact data in clear.
#[derive(Clone, Debug)]
pub struct ClearCustomer {
    pub id: String,
    pub shard: u32,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub line: Value,
}

/// `n` customers in `shards` shards, as a CRM export writes them (one JSON line each).
pub fn crm_customers(n: u32, shards: u32) -> Vec<ClearCustomer> {
    const FAMILY: [&str; 5] = ["김", "이", "박", "최", "정"];
    const GIVEN: [&str; 6] = ["민준", "서연", "도윤", "하은", "지호", "수아"];
    (0..n)
        .map(|i| {
            let id = format!("C{i:07}");
            let shard = i % shards.max(1);
            let name = format!("{}{}", FAMILY[i as usize % 5], GIVEN[(i as usize / 5) % 6]);
            let email = format!("user{i:05}.{}@example-mail.co.kr", 1970 + i % 40);
            let phone = format!("010-{:04}-{:04}", 2000 + i % 7000, (i * 7919) % 10_000);
            let line = json!({
                "customer_id": id, "shard": shard, "plan": "5G_STANDARD", "addons": [], "family": null,
                "contract": null, "birthday": "1987-03-14", "joined_on": "2020-05-01", "cancelled_on": null,
                "send_day": 1 + i % 28, "dnd": [], "preferred_channel": if i % 3 == 0 { "sms" } else { "email" },
                "contact": {"name": name, "email": email, "phone": phone}
            });
            ClearCustomer {
                id,
                shard,
                name,
                email,
                phone,
                line,
            }
        })
        .collect()
}

/// The JSON Lines file of `customers`.
pub fn jsonl(customers: &[ClearCustomer]) -> String {
    let mut out = String::new();
    for c in customers {
        out.push_str(&c.line.to_string());
        out.push('\n');
    }
    out
}

/// Whether `text` repeats any contact value of `customers`.
pub fn echoes_contact(text: &str, customers: &[ClearCustomer]) -> Option<String> {
    customers.iter().find_map(|c| {
        [&c.name, &c.email, &c.phone]
            .into_iter()
            .find(|v| domain::text::echoes(text, v) || text.contains(v.as_str()))
            .map(|_| c.id.clone())
    })
}
