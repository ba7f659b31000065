//! The sample events in `events/`, which users send with `sam local invoke`
//! or `cargo lambda invoke`: each one parses into its function's input type,
//! and the documented `cargo lambda watch` + `cargo lambda invoke` session
//! answers what `events/README.md` says, against a fresh stack in the
//! emulator loaded with the data set the events describe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use adapters::cycles::CycleStatus;
use adapters::failures::FailureStage;
use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use dispatch_slot::{DispatchEvent, DispatchReport};
use domain::delivery::{DeliveryMessage, parse_delivery_id};
use domain::settlement::{
    BeginInput, BeginOutput, BeginStatus, FinishInput, FinishOutput, FinishStatus, RenderResult, ShardResult, ShardTask,
};
use domain::{Channel, Cycle};
use integration_tests::lambda_cli::Watch;
use integration_tests::{CYCLE, Month, generate};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The run every sample event belongs to: execution `settle-2026-11` of the
/// state machine of a stack named `billing`.
const RUN_ID: &str = "arn:aws:states:ap-northeast-2:123456789012:execution:billing-settlement:settle-2026-11";

/// Function folder under `events/` → the function's logical id in template.yaml.
const FUNCTIONS: [(&str, &str); 13] = [
    ("settle-begin", "SettleBeginFunction"),
    ("settle-shard", "SettleShardFunction"),
    ("render-shard", "RenderShardFunction"),
    ("settle-finish", "SettleFinishFunction"),
    ("dispatch-slot", "DispatchSlotFunction"),
    ("record-failure", "RecordFailureFunction"),
    ("send-email", "SendEmailFunction"),
    ("send-sms", "SendSmsFunction"),
    ("admin-api", "AdminApiFunction"),
    ("ingest", "IngestFunction"),
    ("invoice-link", "InvoiceLinkFunction"),
    ("delivery-events", "DeliveryEventsFunction"),
    ("reprice", "RepriceFunction"),
];

/// The link keys the invoice-link events are signed with (events/README.md): put into the
/// stack's link secret before the session, as an operator would rotate them in.
const SAMPLE_LINK_KEYS: &str = "sample:c2FtcGxlLWxpbmsta2V5LW5vdC1mb3ItcHJvZCEhISE=";

/// The caller the admin API's sample requests are signed by.
const OPERATOR: &str = "arn:aws:sts::123456789012:assumed-role/billing-admin/kim";

/// The senders' folders: the channel each one's queue carries.
fn sender_channel(folder: &str) -> Option<Channel> {
    match folder {
        "send-email" => Some(Channel::Email),
        "send-sms" => Some(Channel::Sms),
        _ => None,
    }
}

/// The ARN of a channel's queue in the stack named `billing`.
fn queue_arn(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "arn:aws:sqs:ap-northeast-2:123456789012:billing-EmailQueue",
        Channel::Sms => "arn:aws:sqs:ap-northeast-2:123456789012:billing-SmsQueue",
    }
}

/// Every event file, as `events/<function>/<case>.json`.
fn all_events() -> BTreeSet<String> {
    FUNCTIONS
        .iter()
        .flat_map(|(f, _)| {
            sorted_entries(&events_dir().join(f))
                .into_iter()
                .map(move |p| format!("events/{f}/{}", p.file_name().unwrap().to_string_lossy()))
        })
        .collect()
}

/// The record of a sender's sample event, checked against what the
/// dispatch function enqueues: the queue of the folder's channel, and (but
/// in `bad-input.json`) a delivery message for that channel of the cycle.
fn check_sender_event(shown: &str, channel: Channel, sqs: &SqsEvent) {
    assert!(!sqs.records.is_empty(), "{shown}: no records");
    for r in &sqs.records {
        assert_eq!(r.event_source.as_deref(), Some("aws:sqs"), "{shown}");
        assert_eq!(r.event_source_arn.as_deref(), Some(queue_arn(channel)), "{shown}");
        assert_eq!(r.aws_region.as_deref(), Some("ap-northeast-2"), "{shown}");
        assert!(r.message_id.is_some() && r.receipt_handle.is_some(), "{shown}");
        assert!(
            r.attributes.contains_key("ApproximateReceiveCount"),
            "{shown}: SQS always sends ApproximateReceiveCount"
        );
        if shown.ends_with("/bad-input.json") {
            continue;
        }
        let body = r.body.as_deref().unwrap_or_default();
        let m: DeliveryMessage =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{shown}: {body:?} is not a delivery message: {e}"));
        assert_eq!(m.channel, channel, "{shown}: a message on the {channel} queue");
        let (cycle, ..) = parse_delivery_id(&m.delivery_id).unwrap_or_else(|e| panic!("{shown}: {e}"));
        assert_eq!(cycle.to_string(), CYCLE, "{shown}");
    }
}

/// The records of a delivery-events sample event: from the stack's evidence queue, each body
/// a provider event the function reads (but the one of `batch.json` that is none), naming a
/// delivery of the sample month.
fn check_evidence_event(shown: &str, sqs: &SqsEvent) {
    assert!(!sqs.records.is_empty(), "{shown}: no records");
    for r in &sqs.records {
        assert_eq!(r.event_source.as_deref(), Some("aws:sqs"), "{shown}");
        assert_eq!(
            r.event_source_arn.as_deref(),
            Some("arn:aws:sqs:ap-northeast-2:123456789012:billing-EvidenceQueue"),
            "{shown}"
        );
        assert!(r.attributes.contains_key("ApproximateReceiveCount"), "{shown}");
        let body = r.body.as_deref().unwrap_or_default();
        match domain::evidence::parse(body) {
            Ok(e) => {
                let d = e
                    .delivery
                    .unwrap_or_else(|| panic!("{shown}: an event that names no delivery"));
                assert_eq!(d.id.cycle.to_string(), CYCLE, "{shown}");
            }
            Err(e) => assert!(shown.ends_with("/batch.json"), "{shown}: {e}"),
        }
    }
}

fn events_dir() -> PathBuf {
    local_aws::project_root().unwrap().join("events")
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

/// Parses `value` as `T` and gives it back as `T` writes it.
fn typed<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Value, serde_json::Error> {
    serde_json::to_value(serde_json::from_value::<T>(value.clone())?)
}

/// Fields of `event` that the input type does not have (it would ignore
/// them silently: a misspelt `scheduled_time`, say).
fn unknown_fields(event: &Value, typed: &Value, at: &str, out: &mut Vec<String>) {
    if let (Value::Object(e), Value::Object(t)) = (event, typed) {
        for (k, v) in e {
            match t.get(k) {
                None => out.push(format!("{at}.{k}")),
                Some(tv) => unknown_fields(v, tv, &format!("{at}.{k}"), out),
            }
        }
    }
}

/// The senders' environment in the session, on top of the one template.yaml
/// gives them: no provider latency, no provider failures, no quiet window.
fn sender_overrides() -> [(&'static str, String); 4] {
    [
        ("MOCK_LATENCY_MS", "0".into()),
        ("MOCK_FAILURE_RATE", "0".into()),
        ("MOCK_TIMEOUT_RATE", "0".into()),
        ("QUIET_WINDOW", "00:00-00:00".into()),
    ]
}

/// What each sender's events make of the sample month.
struct SenderCase {
    function: &'static str,
    sent_state: &'static str,
    /// The delivery that the other channel's message in `bad-input.json` names.
    other_channel_delivery: &'static str,
    /// For each record of `bad-input.json`: whether the record is kept under the
    /// delivery id (else under the SQS message id), its code and part of its reason.
    parked: [(bool, &'static str, &'static str); 3],
}

const SENDERS: [SenderCase; 2] = [
    SenderCase {
        function: "send-email",
        sent_state: "SENT_EMAIL",
        other_channel_delivery: "2026-11#00000#C0000031",
        parked: [
            (false, "malformed-message", "the body is not a delivery message"),
            (false, "malformed-message", "missing field `run_id`"),
            (true, "wrong-channel", "a sms message on the email queue"),
        ],
    },
    SenderCase {
        function: "send-sms",
        sent_state: "SENT_SMS",
        other_channel_delivery: "2026-11#00000#C0000001",
        parked: [
            (false, "malformed-message", "is not cycle#shard#customer"),
            (true, "wrong-channel", "a email message on the sms queue"),
            (true, "unknown-delivery", "no delivery 2026-11#00001#C0009999 exists"),
        ],
    },
];

/// The metrics line (CloudWatch EMF) a sender printed last in the output of
/// `watch`: one per invocation, counts only.
fn last_metrics(watch: &Watch, channel: Channel) -> Value {
    let tail = watch.log_tail();
    let line = tail
        .lines()
        .rev()
        .find(|l| l.contains("\"CloudWatchMetrics\""))
        .unwrap_or_else(|| panic!("no metrics line in the output of watch:\n{tail}"));
    let start = line.find('{').unwrap();
    let metrics: Value = serde_json::from_str(&line[start..]).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(metrics["Channel"], channel.as_str(), "{line}");
    metrics
}

fn message_of(record: &aws_lambda_events::event::sqs::SqsMessage) -> DeliveryMessage {
    serde_json::from_str(record.body.as_deref().unwrap_or_default()).unwrap()
}

/// A delivery's stored item, as the senders read and write it.
async fn delivery_item(month: &Month, id: &str) -> adapters::dynamo::Item {
    let (cycle, shard, customer) = parse_delivery_id(id).unwrap();
    month
        .deliveries
        .raw(cycle, shard, &customer)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no delivery {id}"))
}

fn attr<'a>(item: &'a adapters::dynamo::Item, name: &str) -> &'a str {
    item.get(name).and_then(|v| v.as_s().ok()).map_or("", String::as_str)
}

fn read_event<T: DeserializeOwned>(relative: &str) -> T {
    let path = local_aws::project_root().unwrap().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

#[test]
fn every_event_parses_into_the_input_of_its_function() {
    let dir = events_dir();
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("events/README.md");
    let mut folders = BTreeSet::new();
    let mut files = 0;
    for folder in sorted_entries(&dir).into_iter().filter(|p| p.is_dir()) {
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            FUNCTIONS.iter().any(|(f, _)| *f == name),
            "events/{name}/ is not the folder of a known function: add its input type to this test"
        );
        folders.insert(name.clone());
        for path in sorted_entries(&folder) {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let shown = format!("events/{name}/{file}");
            assert!(file.ends_with(".json"), "{shown}: only JSON events belong here");
            let text = std::fs::read_to_string(&path).unwrap();
            let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{shown}: not JSON: {e}"));
            let back = match name.as_str() {
                "settle-begin" => typed::<BeginInput>(&value),
                "settle-shard" | "render-shard" => typed::<ShardTask>(&value),
                "settle-finish" => typed::<FinishInput>(&value),
                // The schedule's event, or an SQS event of the continuation queue whose
                // bodies are the schedule's event with the run's progress.
                "dispatch-slot" if value.get("Records").is_some() => {
                    let sqs: SqsEvent = serde_json::from_value(value.clone())
                        .unwrap_or_else(|e| panic!("{shown}: not an SQS event: {e}"));
                    for r in &sqs.records {
                        let body = r.body.as_deref().unwrap_or_default();
                        dispatch_slot::parse_event(body).unwrap_or_else(|e| panic!("{shown}: record body: {e}"));
                    }
                    typed::<SqsEvent>(&value)
                }
                "dispatch-slot" => typed::<DispatchEvent>(&value),
                "record-failure" => typed::<SqsEvent>(&value),
                "admin-api" => {
                    let request: LambdaFunctionUrlRequest = serde_json::from_value(value.clone())
                        .unwrap_or_else(|e| panic!("{shown}: not a function URL request: {e}"));
                    let http = &request.request_context.http;
                    assert_eq!(request.raw_path, http.path, "{shown}: rawPath");
                    if let Some(body) = &request.body {
                        serde_json::from_str::<Value>(body).unwrap_or_else(|e| panic!("{shown}: body: {e}"));
                    }
                    typed::<LambdaFunctionUrlRequest>(&value)
                }
                "send-email" | "send-sms" => {
                    let sqs: SqsEvent = serde_json::from_value(value.clone())
                        .unwrap_or_else(|e| panic!("{shown}: not an SQS event: {e}"));
                    check_sender_event(&shown, sender_channel(&name).unwrap(), &sqs);
                    typed::<SqsEvent>(&value)
                }
                "ingest" => typed::<ingest::event::Input>(&value),
                "reprice" => typed::<reprice::event::Input>(&value),
                "invoice-link" => {
                    let request: LambdaFunctionUrlRequest = serde_json::from_value(value.clone())
                        .unwrap_or_else(|e| panic!("{shown}: not a function URL request: {e}"));
                    assert_eq!(request.raw_path, request.request_context.http.path, "{shown}: rawPath");
                    typed::<LambdaFunctionUrlRequest>(&value)
                }
                "delivery-events" => {
                    let sqs: SqsEvent = serde_json::from_value(value.clone())
                        .unwrap_or_else(|e| panic!("{shown}: not an SQS event: {e}"));
                    check_evidence_event(&shown, &sqs);
                    typed::<SqsEvent>(&value)
                }
                other => unreachable!("{other}"),
            }
            .unwrap_or_else(|e| panic!("{shown} is not a valid input of {name}: {e}"));
            let mut unknown = Vec::new();
            unknown_fields(&value, &back, "$", &mut unknown);
            assert!(unknown.is_empty(), "{shown}: fields {name} does not know: {unknown:?}");
            // All settlement events belong to one run, so they can be sent in sequence.
            if ![
                "dispatch-slot",
                "record-failure",
                "send-email",
                "send-sms",
                "admin-api",
                "ingest",
                "invoice-link",
                "delivery-events",
                "reprice",
            ]
            .contains(&name.as_str())
            {
                assert_eq!(value["run_id"], RUN_ID, "{shown}: run_id");
            }
            assert!(readme.contains(&shown), "events/README.md does not describe {shown}");
            files += 1;
        }
    }
    let expected: BTreeSet<String> = FUNCTIONS.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(folders, expected, "every function has sample events");
    assert!(files >= 36, "{files} events");
}

/// The session `events/README.md` describes, as a user runs it without
/// Docker: `cargo lambda watch` with the functions' environment, then each
/// event through `cargo lambda invoke`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_cargo_lambda_session_settles_the_sample_month() {
    let t0 = Instant::now();
    let cycle: Cycle = CYCLE.parse().unwrap();
    // The data set the shard events describe: 300 customers, shards of 200.
    let data = generate(300, 200).unwrap();
    let shards = &data.manifest.shards;
    assert_eq!(
        shards.iter().map(|s| s.customers).collect::<Vec<_>>(),
        [200, 100],
        "shard sizes"
    );
    let month = Month::new("sample-events").await.unwrap();
    let load = month.load(&data).await.unwrap();
    assert!(load.rejected.is_empty(), "{:?}", load.rejected);
    let loaded = t0.elapsed();

    // The functions' environments as deployed, pointed at the emulator: the
    // keyring is the stack's own secret in the emulator, which PII_KEYS_SECRET
    // names; no key is in the environment.
    let mut env = BTreeMap::new();
    for (_, logical_id) in FUNCTIONS {
        for (k, v) in local_run::settle::local_function_env(&month.resources, logical_id) {
            if let Some(other) = env.insert(k.clone(), v.clone()) {
                assert_eq!(other, v, "{k} differs between the functions");
            }
        }
    }
    let endpoint = local_aws::Emulator::shared().await.unwrap().endpoint_url().to_owned();
    env.insert("AWS_ENDPOINT_URL".into(), endpoint);
    env.insert("AWS_ACCESS_KEY_ID".into(), "test".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "test".into());
    env.insert("AWS_REGION".into(), local_aws::REGION.into());
    for k in [
        "CUSTOMERS_TABLE",
        "CATALOG_TABLE",
        "CYCLES_TABLE",
        "BILLS_TABLE",
        "DATA_BUCKET",
        "DELIVERIES_TABLE",
        "CATALOG_VERSION",
        "TEMPLATE_VERSION",
        "PII_KEYS_SECRET",
        "FAILURES_TABLE",
        "EMAIL_QUEUE_URL",
        "SMS_QUEUE_URL",
        "DEAD_LETTER_QUEUE_URL",
        "MOCK_SENDS_TABLE",
    ] {
        assert!(env.contains_key(k), "template.yaml gives the functions {k}");
    }
    // The senders get the same environment in a `watch` of their own, with the mock provider
    // made fast and infallible and no quiet window: a sender checks the slot against the wall
    // clock, and this test must answer the same at any hour (the sample deliveries' customers
    // have no DND slots). The default quiet window stays with dispatch-slot (`quiet.json`).
    let mut sender_env = env.clone();
    for (k, v) in sender_overrides() {
        sender_env.insert(k.to_owned(), v);
    }
    // The invoice-link events are signed with the sample link keys: the stack's link secret
    // holds them before any function reads it (at its cold start, in the session).
    let link_secret = month.resources.arn("LinkSigningSecret").unwrap().to_owned();
    assert_eq!(env.get("LINK_KEYS_SECRET"), Some(&link_secret));
    aws_sdk_secretsmanager::Client::new(&month.config)
        .put_secret_value()
        .secret_id(&link_secret)
        .secret_string(SAMPLE_LINK_KEYS)
        .send()
        .await
        .unwrap();
    let watch = Watch::start(&env).unwrap();
    let sender_watch = Watch::start(&sender_env).unwrap();
    let mut timings = vec![("generate, provision, load".to_owned(), loaded)];
    let mut invoked = BTreeSet::new();
    let mut invoke = async |function: &str, event: &str| {
        let w = if sender_channel(function).is_some() {
            &sender_watch
        } else {
            &watch
        };
        let inv = w
            .invoke(function, event)
            .await
            .unwrap_or_else(|e| panic!("{function} {event}: {e:#}"));
        timings.push((format!("{function} {event}"), inv.elapsed));
        invoked.insert(event.to_owned());
        inv
    };

    // BeginCycle: a fresh cycle is frozen for the run …
    let begin: BeginOutput = invoke("settle-begin", "events/settle-begin/start.json")
        .await
        .output()
        .unwrap();
    assert_eq!(begin.status, BeginStatus::Started, "{begin:?}");
    assert_eq!(
        (
            begin.cycle,
            begin.run_id.as_str(),
            begin.catalog_version.as_str(),
            begin.shard_count
        ),
        (cycle, RUN_ID, "2026-v1", 2)
    );
    // … and the shard events are exactly the manifest it writes for this data set.
    let manifest: Vec<ShardTask> = month.bucket.get_json(&begin.manifest_key).await.unwrap().unwrap();
    assert_eq!(
        manifest,
        [
            read_event::<ShardTask>("events/settle-shard/shard-0.json"),
            read_event::<ShardTask>("events/settle-shard/shard-1.json"),
        ],
        "events/settle-shard/*.json vs the manifest BeginCycle wrote"
    );

    // The scheduler's form names the same cycle; the same run resumes it.
    let resumed: BeginOutput = invoke("settle-begin", "events/settle-begin/scheduled.json")
        .await
        .output()
        .unwrap();
    assert_eq!(resumed.status, BeginStatus::Resumed, "{resumed:?}");
    assert_eq!((resumed.cycle, resumed.run_id.as_str()), (cycle, RUN_ID));

    // A month 13 is the function error InvalidInput: exit code 1, nothing on stdout. The
    // message names the shape expected, never the value given.
    let invalid = invoke("settle-begin", "events/settle-begin/invalid-cycle.json").await;
    let error = invalid
        .error()
        .unwrap_or_else(|| panic!("invalid-cycle.json succeeded: {invalid:?}"));
    assert_eq!(error.error_type, "InvalidInput", "{invalid:?}");
    assert!(error.error_message.contains("cycle must be YYYY-MM"), "{error:?}");
    assert!(!error.error_message.contains("2026-13"), "{error:?}");
    assert_eq!(invalid.exit_code, Some(1), "{invalid:?}");
    assert!(invalid.stdout.trim().is_empty(), "{invalid:?}");

    // SettleShard: one bill per billable customer of each shard.
    let mut bills = 0;
    let mut checksum = 0;
    for (i, entry) in shards.iter().enumerate() {
        let event = format!("events/settle-shard/shard-{i}.json");
        let r: ShardResult = invoke("settle-shard", &event).await.output().unwrap();
        assert_eq!((r.cycle, r.shard, r.skipped), (cycle, entry.shard, false), "{r:?}");
        assert_eq!(r.bills, u64::from(entry.billable_customers), "{event}: bills");
        assert_eq!(
            r.not_billable,
            u64::from(entry.customers - entry.billable_customers),
            "{event}: not billable"
        );
        bills += r.bills;
        checksum += r.checksum;
    }
    assert_eq!(bills, u64::from(data.manifest.billable_customers));
    // Sent again, a done shard is skipped with the same counts.
    let again: ShardResult = invoke("settle-shard", "events/settle-shard/shard-1.json")
        .await
        .output()
        .unwrap();
    assert!(again.skipped, "{again:?}");
    assert_eq!(again.bills, u64::from(shards[1].billable_customers));

    // RenderShard: one READY delivery per bill, each invoice uploaded once.
    for (i, entry) in shards.iter().enumerate() {
        let event = format!("events/render-shard/shard-{i}.json");
        let r: RenderResult = invoke("render-shard", &event).await.output().unwrap();
        assert_eq!(
            (r.cycle, r.shard, r.template_version.as_str()),
            (cycle, entry.shard, "v1")
        );
        let billable = u64::from(entry.billable_customers);
        assert_eq!(
            (r.deliveries, r.created, r.unchanged),
            (billable, billable, 0),
            "{event}: {r:?}"
        );
        assert!(r.bytes_uploaded > 0, "{r:?}");
    }
    // Sent again: every invoice is already there; nothing is uploaded or written.
    let again: RenderResult = invoke("render-shard", "events/render-shard/shard-1.json")
        .await
        .output()
        .unwrap();
    let billable = u64::from(shards[1].billable_customers);
    assert_eq!(
        (again.created, again.updated, again.unchanged, again.bytes_uploaded),
        (0, 0, billable, 0),
        "{again:?}"
    );
    let unknown = invoke("render-shard", "events/render-shard/unknown-template.json").await;
    let error = unknown
        .error()
        .unwrap_or_else(|| panic!("unknown-template.json succeeded: {unknown:?}"));
    assert_eq!(error.error_type, "TemplateInvalid", "{unknown:?}");
    assert!(error.error_message.contains("\"v0\""), "{error:?}");

    // FinishCycle: reconciled and settled.
    let finish: FinishOutput = invoke("settle-finish", "events/settle-finish/finish.json")
        .await
        .output()
        .unwrap();
    assert_eq!(finish.status, FinishStatus::Settled, "{finish:?}");
    assert_eq!(
        (
            finish.shards,
            finish.shards_done,
            finish.customers,
            finish.bills,
            finish.checksum
        ),
        (2, 2, 300, bills, checksum),
        "{finish:?}"
    );
    assert!(finish.reasons.is_empty(), "{:?}", finish.reasons);
    let record = month.cycles.get(cycle).await.unwrap().unwrap();
    assert_eq!((record.status, record.bills), (CycleStatus::Settled, bills));

    // Reprice: a same-version audit of the settled month, each step as its state machine runs
    // it (plan, one item per shard, finish); it writes under shadow/ only and changes nothing.
    let prefix = "shadow/2026-11/2026-v1/audit-2026-11";
    let plan: Value = invoke("reprice", "events/reprice/plan.json").await.output().unwrap();
    assert_eq!(
        (&plan["shards"], &plan["prefix"], &plan["live_catalog"]),
        (&json!([0, 1]), &json!(prefix), &json!("2026-v1")),
        "{plan}"
    );
    for shard in [0u32, 1] {
        let out: Value = invoke("reprice", &format!("events/reprice/shard-{shard}.json"))
            .await
            .output()
            .unwrap();
        assert_eq!((&out["shard"], &out["changed"]), (&json!(shard), &json!(0)), "{out}");
    }
    let audit: Value = invoke("reprice", "events/reprice/finish.json").await.output().unwrap();
    assert_eq!(
        (
            &audit["summary"]["customers"],
            &audit["summary"]["changed"],
            &audit["summary"]["sum_delta"]
        ),
        (&json!(300), &json!(0), &json!(0)),
        "{audit}"
    );
    assert_eq!(
        audit["files"]["report"],
        json!(format!("{prefix}/report.html")),
        "{audit}"
    );
    let unknown = invoke("reprice", "events/reprice/unknown-catalog.json").await;
    let error = unknown
        .error()
        .unwrap_or_else(|| panic!("unknown-catalog.json succeeded: {unknown:?}"));
    assert_eq!(error.error_type, "CatalogMissing", "{unknown:?}");
    assert!(!error.error_message.contains("2031-v9"), "{error:?}");

    // DispatchSlot: the 15 December, 10:00 run enqueues every delivery whose send day has
    // come and whose customer allows 10:00-12:00; the same slot again, nothing new.
    let deliveries: Vec<_> = [0, 1]
        .into_iter()
        .map(|shard| month.deliveries.shard(cycle, shard))
        .collect::<futures::future::JoinAll<_>>()
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    let slot = domain::dispatch::SlotRun::containing(
        chrono::DateTime::parse_from_rfc3339("2026-12-15T10:00:00+09:00")
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    let due = deliveries
        .iter()
        .filter(|d| domain::delivery::start_of_day(d.send_date) <= slot.start() && !d.dnd.contains(slot.slot))
        .count() as u64;
    assert!(due > 50, "{due}");
    let r: DispatchReport = invoke("dispatch-slot", "events/dispatch-slot/slot.json")
        .await
        .output()
        .unwrap();
    assert!(r.open && r.complete, "{r:?}");
    assert_eq!(
        (r.cycles.as_slice(), r.run_id.as_str()),
        (["2026-11".to_owned()].as_slice(), "dispatch-2026-12-15T01:00:00Z")
    );
    assert_eq!(r.enqueued_email + r.enqueued_sms, due, "{r:?}");
    let again: DispatchReport = invoke("dispatch-slot", "events/dispatch-slot/slot.json")
        .await
        .output()
        .unwrap();
    assert_eq!(again.enqueued_email + again.enqueued_sms, 0, "{again:?}");
    // The continuation queue's event: the run's buckets 00-03 are done; the rest is read again
    // (all taken by now) and the run ends complete. An SQS event answers a list of reports.
    let continued: Vec<DispatchReport> = invoke("dispatch-slot", "events/dispatch-slot/continuation.json")
        .await
        .output()
        .unwrap();
    assert_eq!(continued.len(), 1, "{continued:?}");
    assert!(continued[0].complete && !continued[0].continued, "{continued:?}");
    assert_eq!(continued[0].enqueued_email + continued[0].enqueued_sms, 0);
    // 22:00 is in the quiet window: the slot is closed, nothing is looked at.
    let quiet: DispatchReport = invoke("dispatch-slot", "events/dispatch-slot/quiet.json")
        .await
        .output()
        .unwrap();
    assert!(!quiet.open && quiet.cycles.is_empty(), "{quiet:?}");
    let invalid = invoke("dispatch-slot", "events/dispatch-slot/invalid-time.json").await;
    let error = invalid
        .error()
        .unwrap_or_else(|| panic!("invalid-time.json succeeded: {invalid:?}"));
    assert_eq!(error.error_type, "InvalidInput", "{invalid:?}");
    assert!(
        error
            .error_message
            .contains("scheduled_time is not an RFC 3339 instant"),
        "{error:?}"
    );
    assert!(!error.error_message.contains("next tuesday"), "{error:?}");

    // RecordFailure: both dead-lettered messages become failure records; none is handed back.
    let out: aws_lambda_events::event::sqs::SqsBatchResponse =
        invoke("record-failure", "events/record-failure/dead-letter.json")
            .await
            .output()
            .unwrap();
    assert!(out.batch_item_failures.is_empty(), "{out:?}");
    let log = adapters::failures::FailureLog::new(
        adapters::dynamodb_client(&month.config),
        month.resources.table("FailuresTable").unwrap(),
    );
    let stage = adapters::failures::FailureStage::DeadLetter;
    let r = log
        .get(Some(cycle), "2026-11#00001#C0000250", stage)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.code.as_str(), r.attempts), ("MockTransient", 3));
    let r = log
        .get(None, "5d7c9b1e-2a43-4c1f-9e0a-6b8f3d2c1a02", stage)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.code, "malformed-message");

    // SendEmail and SendSms, each with its queue's three events.
    let sends = providers::DynamoLog::new(
        adapters::dynamodb_client(&month.config),
        month.resources.table("MockSendsTable").unwrap(),
    );
    for s in SENDERS {
        let function = s.function;
        let channel = sender_channel(function).unwrap();
        let batch_file = format!("events/{function}/batch.json");
        let batch: SqsEvent = read_event(&batch_file);
        let ids: Vec<String> = batch.records.iter().map(|r| message_of(r).delivery_id).collect();
        // slot.json queued each of them on this channel (their customers have no DND).
        for id in &ids {
            let item = delivery_item(&month, id).await;
            assert_eq!(
                (attr(&item, "state"), attr(&item, "channel")),
                ("QUEUED", channel.as_str()),
                "{id} after events/dispatch-slot/slot.json"
            );
        }

        // batch.json through `cargo lambda`: each delivery claimed and sent once. (`watch`
        // hands the function a deadline in the past; the sender counts its own 60 s from the
        // start then, as it would have on Lambda.)
        let out: SqsBatchResponse = invoke(function, &batch_file).await.output().unwrap();
        assert!(out.batch_item_failures.is_empty(), "{batch_file}: {out:?}");
        let metrics = last_metrics(&sender_watch, channel);
        assert_eq!(metrics["Sent"], 3, "{batch_file}: {metrics}");
        for name in ["Deferred", "DuplicatesSuppressed", "Parked", "Busy", "Failed"] {
            assert_eq!(metrics[name], 0, "{batch_file}: {name} in {metrics}");
        }
        let mut sent_items = Vec::new();
        for id in &ids {
            let item = delivery_item(&month, id).await;
            assert_eq!(attr(&item, "state"), s.sent_state, "{id}");
            assert!(!attr(&item, "provider_message_id").is_empty(), "{id}: {item:?}");
            sent_items.push(item);
        }
        let counts = sends.count_by_key().await.unwrap();
        for id in &ids {
            assert_eq!(
                counts.get(&sender::idempotency_key(
                    &domain::DeliveryId::parse(id).unwrap(),
                    channel
                )),
                Some(&1),
                "{id}: sends"
            );
        }

        // duplicate.json: the first message received again and a second message for the
        // second delivery. Both already sent: acknowledged, nothing sent, nothing written.
        let file = format!("events/{function}/duplicate.json");
        let out: SqsBatchResponse = invoke(function, &file).await.output().unwrap();
        assert!(out.batch_item_failures.is_empty(), "{file}: {out:?}");
        let metrics = last_metrics(&sender_watch, channel);
        assert_eq!(
            (&metrics["DuplicatesSuppressed"], &metrics["Sent"]),
            (&Value::from(2), &Value::from(0)),
            "{file}: {metrics}"
        );
        assert_eq!(sends.count_by_key().await.unwrap(), counts, "{file}: new sends");
        for (id, before) in ids.iter().zip(&sent_items) {
            assert_eq!(&delivery_item(&month, id).await, before, "{file}: {id} changed");
        }

        // bad-input.json: every message parked with a failure record, none handed back, and
        // the delivery named by the other channel's message left to its own sender.
        let file = format!("events/{function}/bad-input.json");
        let bad: SqsEvent = read_event(&file);
        let other = s.other_channel_delivery;
        let other_before = delivery_item(&month, other).await;
        let out: SqsBatchResponse = invoke(function, &file).await.output().unwrap();
        assert!(out.batch_item_failures.is_empty(), "{file}: {out:?}");
        let metrics = last_metrics(&sender_watch, channel);
        assert_eq!(
            (&metrics["Parked"], &metrics["Sent"]),
            (&Value::from(3), &Value::from(0)),
            "{file}: {metrics}"
        );
        assert_eq!(sends.count_by_key().await.unwrap(), counts, "{file}: new sends");
        assert_eq!(
            delivery_item(&month, other).await,
            other_before,
            "{file}: {other} changed"
        );
        let stage = match channel {
            Channel::Email => FailureStage::Email,
            Channel::Sms => FailureStage::Sms,
        };
        assert_eq!(bad.records.len(), s.parked.len(), "{file}");
        for (record, (by_delivery, code, reason)) in bad.records.iter().zip(s.parked) {
            let (partition, subject) = if by_delivery {
                let body: serde_json::Value = serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
                (Some(cycle), body["delivery_id"].as_str().unwrap().to_owned())
            } else {
                (None, record.message_id.clone().unwrap())
            };
            let r = log
                .get(partition, &subject, stage)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{file}: no failure record for {subject}"));
            assert_eq!(r.code, code, "{file}: {subject}: {r:?}");
            assert!(r.reason.contains(reason), "{file}: {subject}: {:?}", r.reason);
            assert_eq!(r.channel, Some(channel), "{file}: {subject}");
        }
    }

    // InvoiceLink: the SMS's link to C0000031's invoice serves the stored bytes, gzip-encoded
    // HTML, private; a tampered, expired or unknown link, or a POST, serves nothing. The sample
    // token names the invoice as this month renders it (its pack and range: a change of the
    // templates or of the sample data changes them, and the files must follow).
    let c31 = month
        .deliveries
        .shard(cycle, 0)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.customer_id.as_str() == "C0000031")
        .unwrap();
    let sample_keys = domain::link::LinkKeys::parse(SAMPLE_LINK_KEYS).unwrap();
    let sample: LambdaFunctionUrlRequest =
        serde_json::from_str(&std::fs::read_to_string(events_dir().join("invoice-link/invoice.json")).unwrap())
            .unwrap();
    let in_file = sample_keys
        .authenticate(adapters::links::token_of_path(sample.raw_path.as_deref().unwrap()).unwrap())
        .unwrap();
    let rendered = domain::link::InvoiceLink {
        template_version: adapters::data_bucket::invoice_object_name(cycle, 0, "C0000031", &c31.content.email_key)
            .unwrap()
            .to_owned(),
        range: c31.content.email_range,
        ..in_file.clone()
    };
    assert_eq!(
        in_file,
        rendered,
        "events/invoice-link/{{invoice,post}}.json must carry the token {} (tampered.json: the same with \
         the customer C0000046 and the MAC kept)",
        sample_keys.sign(&rendered).unwrap()
    );
    let mut link =
        async |event: &str| -> LambdaFunctionUrlResponse { invoke("invoice-link", event).await.output().unwrap() };
    let served = link("events/invoice-link/invoice.json").await;
    assert_eq!(served.status_code, 200, "{served:?}");
    let header = |r: &LambdaFunctionUrlResponse, name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header(&served, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&served, "content-encoding"), "gzip");
    assert_eq!(header(&served, "cache-control"), "private, no-store");
    assert_eq!(header(&served, "referrer-policy"), "no-referrer");
    assert_eq!(header(&served, "x-robots-tag"), "noindex");
    assert!(served.is_base64_encoded);
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD
        .decode(served.body.as_deref().unwrap_or_default())
        .unwrap();
    let stored = month.bucket.get_invoice(&c31.content).await.unwrap().unwrap().body;
    assert_eq!(body, stored, "the invoice's stored bytes");
    for (event, status) in [
        ("events/invoice-link/tampered.json", 403),
        ("events/invoice-link/expired.json", 410),
        ("events/invoice-link/missing.json", 404),
        ("events/invoice-link/post.json", 405),
    ] {
        let r = link(event).await;
        assert_eq!(r.status_code, status, "{event}: {r:?}");
        assert_eq!(header(&r, "cache-control"), "private, no-store", "{event}");
    }

    // AdminApi, after the month above: the operators' view of it and one audited command.
    let mut api = async |event: &str| -> (i64, Value) {
        let r: LambdaFunctionUrlResponse = invoke("admin-api", event).await.output().unwrap();
        let body: Value = serde_json::from_str(r.body.as_deref().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{event}: the answer is not JSON: {e}"));
        (r.status_code, body)
    };
    let (status, v) = api("events/admin-api/cycle.json").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["status"], &v["bills"]),
        (&Value::from("SETTLED"), &Value::from(bills)),
        "{v}"
    );
    assert_eq!(v["shards"]["done"], 2, "{v}");
    let (status, v) = api("events/admin-api/funnel.json").await;
    assert_eq!((status, &v["deliveries"]), (200, &Value::from(bills)), "{v}");
    assert_eq!(v["by_state"]["SENT_EMAIL"], 3, "{v}");
    let (status, v) = api("events/admin-api/delivery.json").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["state"], &v["send_round"]),
        (&Value::from("SENT_EMAIL"), &Value::from(0)),
        "{v}"
    );
    assert!(v["contact"]["email"].as_str().unwrap().contains('*'), "masked: {v}");
    let (status, v) = api("events/admin-api/failures.json").await;
    assert_eq!(status, 200, "{v}");
    assert!(!v["records"].as_array().unwrap().is_empty(), "{v}");
    let (status, v) = api("events/admin-api/unknown-cycle.json").await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (404, &Value::from("unknown-cycle")),
        "{v}"
    );
    let (status, v) = api("events/admin-api/no-identity.json").await;
    assert_eq!((status, &v["error"]["code"]), (403, &Value::from("forbidden")), "{v}");
    // A resend of the sent delivery: READY in send round 1, audited; sent again, replayed.
    let (status, v) = api("events/admin-api/resend.json").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["state"], &v["send_round"], &v["replayed"]),
        (&Value::from("READY"), &Value::from(1), &Value::from(false)),
        "{v}"
    );
    let (_, v) = api("events/admin-api/resend.json").await;
    assert_eq!(
        (&v["send_round"], &v["replayed"]),
        (&Value::from(1), &Value::from(true)),
        "{v}"
    );
    let item = delivery_item(&month, "2026-11#00000#C0000001").await;
    assert_eq!(attr(&item, "last_command"), "sample-resend-C0000001");
    let (status, v) = api("events/admin-api/set-channel-policy.json").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["value"], &v["previous"], &v["revision"]),
        (&Value::from("email,sms"), &Value::from("email,sms"), &Value::from(1)),
        "{v}"
    );
    let audit = adapters::settings::SettingsStore::new(
        adapters::dynamodb_client(&month.config),
        month.resources.table("AdminTable").unwrap(),
    )
    .get(adapters::settings::CHANNEL_POLICY)
    .await
    .unwrap()
    .unwrap();
    assert_eq!((audit.updated_by.as_str(), audit.revision), (OPERATOR, 1));

    // DeliveryEvents, after the senders and the admin API: the providers' events about the
    // sample month's sends give them their lifecycle; a permanent bounce sends the invoice on
    // to SMS (READY, route sms) and suppresses the contact; a redelivery changes nothing.
    let evidence_log = adapters::evidence::EvidenceLog::new(
        adapters::dynamodb_client(&month.config),
        month.resources.table("EvidenceTable").unwrap(),
    );
    let mut evidence = async |event: &str| -> SqsBatchResponse {
        let r: SqsBatchResponse = invoke("delivery-events", event).await.output().unwrap();
        assert!(r.batch_item_failures.is_empty(), "{event}: {r:?}");
        // Every event names its delivery's actual send: the provider message id the sender stored.
        let sqs: SqsEvent = read_event(event);
        for record in &sqs.records {
            let Ok(e) = domain::evidence::parse(record.body.as_deref().unwrap_or_default()) else {
                continue;
            };
            let d = e.delivery.unwrap();
            if let Some(item) = month
                .deliveries
                .raw(d.id.cycle, d.id.shard, &d.id.customer)
                .await
                .unwrap()
            {
                assert_eq!(
                    attr(&item, "provider_message_id"),
                    e.provider_message_id,
                    "{event}: {}",
                    d.id
                );
            }
        }
        r
    };
    evidence("events/delivery-events/ses-delivery.json").await;
    let item = delivery_item(&month, "2026-11#00001#C0000208").await;
    assert_eq!(
        (attr(&item, "state"), attr(&item, "evidence")),
        ("SENT_EMAIL", "DELIVERED")
    );
    evidence("events/delivery-events/ses-bounce.json").await;
    let item = delivery_item(&month, "2026-11#00000#C0000005").await;
    assert_eq!(
        (attr(&item, "state"), attr(&item, "route"), attr(&item, "evidence")),
        ("READY", "sms", "BOUNCED"),
        "{item:?}"
    );
    let bounce_id = "1b5e2c3a-0005-4b02-9e11-000000000005";
    let bounce = evidence_log.get(bounce_id).await.unwrap().unwrap();
    assert_eq!(bounce.outcome, Some(adapters::evidence::EvidenceOutcome::Applied));
    evidence("events/delivery-events/ses-complaint.json").await;
    let item = delivery_item(&month, "2026-11#00001#C0000208").await;
    assert_eq!(
        (attr(&item, "state"), attr(&item, "evidence")),
        ("SENT_EMAIL", "COMPLAINED")
    );
    let suppressions = adapters::suppressions::SuppressionStore::new(
        adapters::dynamodb_client(&month.config),
        month.resources.table("SuppressionTable").unwrap(),
    );
    let (listed, _) = suppressions.list(100, None).await.unwrap();
    let mut sources: Vec<&str> = listed.iter().map(|s| s.source.as_str()).collect();
    sources.sort();
    assert_eq!(
        sources,
        [bounce_id, "1b5e2c3a-0208-4c03-9e11-000000000208"],
        "{listed:?}"
    );
    evidence("events/delivery-events/sms-delivered.json").await;
    let item = delivery_item(&month, "2026-11#00000#C0000031").await;
    assert_eq!(
        (
            attr(&item, "state"),
            attr(&item, "evidence"),
            attr(&item, "evidence_channel")
        ),
        ("SENT_SMS", "DELIVERED", "sms")
    );
    evidence("events/delivery-events/sms-failed.json").await;
    let item = delivery_item(&month, "2026-11#00000#C0000046").await;
    assert_eq!((attr(&item, "state"), attr(&item, "evidence")), ("SENT_SMS", ""));
    let failed = evidence_log
        .get("5c0fa4f8-0046-4e02-8101-000000000046")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.outcome, Some(adapters::evidence::EvidenceOutcome::RecordedOnly));
    let before = delivery_item(&month, "2026-11#00000#C0000005").await;
    evidence("events/delivery-events/batch.json").await;
    let item = delivery_item(&month, "2026-11#00001#C0000205").await;
    assert_eq!(attr(&item, "evidence"), "DELIVERED");
    let unknown = evidence_log
        .get("1b5e2c3a-9999-4d04-9e11-000000009999")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        unknown.outcome,
        Some(adapters::evidence::EvidenceOutcome::UnknownMessage)
    );
    // The bounce again (its second receive): the delivery is as the first one left it.
    let after = delivery_item(&month, "2026-11#00000#C0000005").await;
    assert_eq!(attr(&after, "last_write"), attr(&before, "last_write"));
    assert_eq!(attr(&after, "available_at"), attr(&before, "available_at"));

    // Ingest: the same data set's drop-zone files at their keys, then each ingest event with
    // the stack's bucket in place of the stand-in. The stack was loaded the local way, so the
    // drop zone's population is found already stored: the catalog and every customer unchanged.
    let zone = tempfile::tempdir().unwrap();
    let mut cfg = datagen::GenConfig::new(300, cycle);
    cfg.seed = 7;
    cfg.shard_size = 200;
    let g = datagen::Generator::new(cfg, domain::pii::Keyring::dev()).unwrap();
    let dropped = datagen::write_drop_zone(&g, zone.path(), &datagen::DropZoneOptions::default(), &|_| {}).unwrap();
    let s3 = local_aws::s3_client(&month.config);
    for f in &dropped.files {
        let body = std::fs::read(zone.path().join(&f.path)).unwrap();
        s3.put_object()
            .bucket(month.bucket.bucket())
            .key(&f.key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }
    let events = tempfile::tempdir().unwrap();
    let mut ingest = async |name: &str| -> Value {
        let original = format!("events/ingest/{name}.json");
        let text = std::fs::read_to_string(events_dir().join("ingest").join(format!("{name}.json")))
            .unwrap()
            .replace("billing-databucket-k7q2m9x4w1zt", month.bucket.bucket());
        let path = events.path().join(format!("{name}.json"));
        std::fs::write(&path, text).unwrap();
        let inv = invoke("ingest", path.to_str().unwrap()).await;
        inv.output::<Value>().unwrap_or_else(|e| panic!("{original}: {e:#}"))
    };
    let catalog = ingest("catalog").await;
    assert_eq!(
        (&catalog["status"], &catalog["kind"]),
        (&json!("done"), &json!("catalog")),
        "{catalog}"
    );
    let planned = ingest("customers").await;
    assert_eq!(
        (&planned["status"], &planned["work"]["chunks"]),
        (&json!("planned"), &json!(1)),
        "{planned}"
    );
    let planned = ingest("plan").await;
    assert_eq!(planned["status"], json!("planned"), "{planned}");
    for _ in 0..2 {
        let applied = ingest("apply").await;
        assert_eq!(
            (&applied["records"], &applied["applied"], &applied["unchanged"]),
            (&json!(300), &json!(0), &json!(300)),
            "{applied}"
        );
    }
    let finished = ingest("finish").await;
    assert_eq!(finished["status"], json!("applied"), "{finished}");
    for (name, shard_lines) in [("usage-shard-0", 962), ("usage-shard-1", 510)] {
        let usage = ingest(name).await;
        assert_eq!(
            (&usage["status"], &usage["kind"]),
            (&json!("done"), &json!("usage")),
            "{usage}"
        );
        let report: Value = month
            .bucket
            .get_json(usage["report"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (&report["lines"], &report["applied"]),
            (&json!(shard_lines), &json!(shard_lines)),
            "{report}"
        );
    }
    let catalog_report: Value = month
        .bucket
        .get_json(catalog["report"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(catalog_report["unchanged"], json!(1), "{catalog_report}");
    let rejected = ingest("unknown-key").await;
    assert_eq!(rejected["status"], json!("rejected"), "{rejected}");
    // The events went from copies with the stack's bucket: count them as the files they are.
    let copies = events.path().to_string_lossy().into_owned();
    invoked.retain(|e| !e.starts_with(&copies));
    for name in [
        "catalog",
        "customers",
        "plan",
        "apply",
        "finish",
        "usage-shard-0",
        "usage-shard-1",
        "unknown-key",
    ] {
        invoked.insert(format!("events/ingest/{name}.json"));
    }

    // Every sample event was sent through `cargo lambda invoke` and its answer checked.
    assert_eq!(invoked, all_events(), "events invoked vs events/");

    for (step, took) in &timings {
        eprintln!("sample events: {step}: {took:.1?}");
    }
    eprintln!("sample events: total {:.1?}", t0.elapsed());
}
