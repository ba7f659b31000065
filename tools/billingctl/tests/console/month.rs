//! The console's test fixture: a month on a fresh stack in the emulator (generated, loaded,
//! settled and rendered through the deployable state machine, or seeded for the benchmark's
//! 10,000 deliveries), `admin-api-local` in front of it, `billingctl console` processes
//! against that, and plain HTTP to both.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_config::SdkConfig;
use chrono::Utc;
use domain::Cycle;
use domain::dispatch::SlotRun;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use local_aws::lambda::LambdaHost;
use local_aws::{Emulator, Resources};
use local_run::send::{Poller, VirtualClock};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

/// The role session the viewer's access key calls as.
pub const VIEWER: &str = "arn:aws:sts::123456789012:assumed-role/billing-viewer/park";
/// The viewer's access key id (`admin_local::Callers`).
pub const VIEWER_KEY: &str = "VIEWERKEY";
/// An access key id no caller names: a session of the stack's bootstrap administrator role.
pub const ADMIN_KEY: &str = "ADMINKEY1";

/// The cycle the fixture settles: this month (Asia/Seoul), so that every send day of its
/// invoices (next month) is still ahead of the wall clock the admin API runs on, and an
/// operator's resend (due now) is enqueued by any slot run of the issue month.
pub fn current_cycle() -> Cycle {
    let today = Utc::now().with_timezone(&domain::slots::seoul()).date_naive();
    Cycle::containing(today).expect("today is in a cycle")
}

/// A provisioned stack with a month in it.
pub struct LocalMonth {
    pub emulator: &'static Emulator,
    pub config: SdkConfig,
    pub resources: Resources,
    pub cycle: Cycle,
    pub shards: u32,
    /// Billable customers with a delivery.
    pub deliveries: u64,
    /// Serves the settlement functions to the emulator's Step Functions engine.
    pub _host: Option<LambdaHost>,
    _data: Option<tempfile::TempDir>,
}

impl LocalMonth {
    /// `customers` generated customers in shards of `shard_size`, loaded, settled and
    /// rendered (`settle-CYCLE`, at most `limit`): every delivery `READY`.
    pub async fn settled(name: &str, customers: u32, shard_size: u32, limit: Duration) -> anyhow::Result<LocalMonth> {
        let cycle = current_cycle();
        let emulator = Emulator::shared().await?;
        let config = emulator.sdk_config().await;
        let resources = local_aws::provision(&config, &local_aws::unique_prefix(name)).await?;
        let host = LambdaHost::start().await?;
        local_run::settle::host_settlement(&host, emulator, &config, &resources).await?;

        let keys = || datagen::keyring_from_spec(std::env::var("PII_KEYS").ok().as_deref());
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("data");
        let mut cfg = datagen::GenConfig::new(customers, cycle);
        cfg.seed = 22;
        cfg.shard_size = shard_size;
        let generator = datagen::Generator::new(cfg, keys()?)?;
        let written = datagen::write_dataset(&generator, &path, 2, &|_| {})?;
        let stores = local_run::load::Stores::of(&config, resources.env())?;
        let loaded = local_run::load::load_dataset(
            &path,
            &stores,
            &keys()?,
            domain::QuietWindow::default_korea(),
            4,
            &|_| {},
        )
        .await?;
        anyhow::ensure!(loaded.rejected.is_empty(), "rejected: {:?}", loaded.rejected);

        let sfn = aws_sdk_sfn::Client::new(&config);
        let machine = resources
            .arn(local_run::settle::STATE_MACHINE)
            .context("no settlement state machine")?
            .to_owned();
        let run =
            local_run::settle::settle_cycle(&sfn, &machine, cycle, &format!("settle-{cycle}"), limit, &|_| {}).await?;
        let finish = run
            .finish_output()
            .with_context(|| format!("the settlement did not finish: {run:?}"))?;
        anyhow::ensure!(
            finish.status == domain::settlement::FinishStatus::Settled,
            "the cycle did not settle: {:?}",
            finish.reasons
        );
        let rendered = local_run::settle::rendered_summary(&config, &resources, cycle).await?;
        anyhow::ensure!(
            rendered.ready() == finish.bills && finish.bills > 0,
            "{} bills, deliveries {:?}",
            finish.bills,
            rendered.states
        );
        Ok(LocalMonth {
            emulator,
            config,
            resources,
            cycle,
            shards: written.manifest.shard_count,
            deliveries: finish.bills,
            _host: Some(host),
            _data: Some(dir),
        })
    }

    /// `n` `READY` deliveries in shards of `shard_size` and their customers written straight
    /// into the tables (`local_run::seed::seed_ready`: cycle 2026-11, a settled cycle record
    /// with no shard records).
    pub async fn seeded(name: &str, n: u32, shard_size: u32) -> anyhow::Result<LocalMonth> {
        let emulator = Emulator::shared().await?;
        let config = emulator.sdk_config().await;
        let resources = local_aws::provision(&config, &local_aws::unique_prefix(name)).await?;
        let seeded = local_run::seed::seed_ready(&config, &resources, n, shard_size, 5, domain::SlotSet::EMPTY).await?;
        Ok(LocalMonth {
            emulator,
            config,
            resources,
            cycle: seeded.cycle,
            shards: n.div_ceil(shard_size),
            deliveries: u64::from(n),
            _host: None,
            _data: None,
        })
    }

    /// Both senders on this stack on `clock`, the mock provider failing every attempt
    /// (`failing`) or none, answering at once, retrying one or two seconds apart.
    pub async fn senders(&self, clock: &VirtualClock, failing: bool) -> anyhow::Result<Vec<Poller>> {
        let rate = if failing { "1" } else { "0" };
        let overrides: Vec<(&str, String)> = [
            ("MOCK_LATENCY_MS", "0"),
            ("MOCK_FAILURE_RATE", rate),
            ("MOCK_TIMEOUT_RATE", "0"),
            ("RETRY_BASE_DELAY_SECONDS", "1"),
            ("RETRY_MAX_DELAY_SECONDS", "2"),
        ]
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
        local_run::send::pollers(&self.config, &self.resources, &overrides, clock).await
    }

    /// The dispatch function on this stack.
    pub async fn dispatch(&self) -> anyhow::Result<dispatch_slot::Deps> {
        local_run::dispatch::dispatch_deps(&self.config, &self.resources).await
    }

    /// The first slot run of the issue month that enqueues anything (the senders on `clock`
    /// then drain what it enqueued): that run.
    pub async fn first_sending_slot(&self, clock: &VirtualClock, senders: &[Poller]) -> anyhow::Result<SlotRun> {
        let dispatch = self.dispatch().await?;
        for run in SlotRun::issue_month(self.cycle) {
            let report = local_run::dispatch::run_slot(&dispatch, run).await?;
            if report.enqueued_email + report.enqueued_sms > 0 {
                clock.set(run.start());
                let (_, drained) = local_run::send::drain(senders, 2, Duration::from_secs(120)).await?;
                anyhow::ensure!(drained, "the senders did not drain the queues of {run} in 120 s");
                return Ok(run);
            }
        }
        bail!("no slot run of the issue month of {} enqueued anything", self.cycle)
    }

    /// RecordFailure as its event source mapping runs it on the delivery dead-letter queue,
    /// until the queue is empty: how many dead letters it recorded.
    pub async fn record_failures(&self) -> anyhow::Result<usize> {
        let env = local_run::settle::local_function_env(&self.resources, "RecordFailureFunction");
        let deps = record_failure::Deps::load(&self.config, &env).await?;
        let dlq = self
            .resources
            .queue_url("DeliveryDeadLetterQueue")
            .context("no delivery dead-letter queue")?
            .to_owned();
        let sqs = adapters::sqs_client(&self.config);
        let mut recorded = 0;
        for _ in 0..20 {
            let out = sqs
                .receive_message()
                .queue_url(&dlq)
                .max_number_of_messages(10)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(recorded);
            }
            let event = local_run::send::sqs_event(&messages);
            let answer = record_failure::handle(
                &deps,
                lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()),
            )
            .await
            .map_err(|e| anyhow::anyhow!("RecordFailure: {e}"))?;
            anyhow::ensure!(
                answer.batch_item_failures.is_empty(),
                "RecordFailure gave back {:?}",
                answer.batch_item_failures
            );
            let all: Vec<&aws_sdk_sqs::types::Message> = messages.iter().collect();
            local_run::send::delete_messages(&sqs, &dlq, &all).await?;
            recorded += messages.len();
        }
        bail!("the delivery dead-letter queue still has messages after 20 receives")
    }

    /// Accepted sends at the mock providers, by idempotency key.
    pub async fn accepted_sends(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let env = local_run::send::sender_env(&self.resources, domain::Channel::Email, &[]);
        let table = env.get("MOCK_SENDS_TABLE").context("MOCK_SENDS_TABLE")?;
        let client = adapters::dynamodb_client(&self.config);
        let mut counts = BTreeMap::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in page.items() {
                if let Some(Ok(pk)) = item.get("pk").map(|v| v.as_s()) {
                    *counts.entry(pk.clone()).or_insert(0) += 1;
                }
            }
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(counts);
            }
        }
    }

    /// admin-api-local on a free port in front of this stack, `VIEWERKEY` calling as
    /// [`VIEWER`] and every other key as the bootstrap administrator: its address.
    pub async fn admin_api(&self) -> anyhow::Result<AdminApi> {
        let env = local_run::settle::local_function_env(&self.resources, "AdminApiFunction");
        let deps = admin_api::Deps::load(&self.config, &env).await?;
        let callers = admin_local::Callers::default().with(VIEWER_KEY, VIEWER);
        let addr = admin_local::start_with(deps, 0, callers).await?;
        Ok(AdminApi {
            url: format!("http://{addr}/"),
        })
    }
}

/// admin-api-local, called as a `billingctl` user with an access key would (the signature is
/// not checked there: the key names the caller).
pub struct AdminApi {
    pub url: String,
}

impl AdminApi {
    /// `key`'s request: the status and the JSON answer.
    pub async fn call(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let stamp = Utc::now().format("%Y%m%d");
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={key}/{stamp}/{}/lambda/aws4_request, SignedHeaders=host, Signature=0",
            local_aws::REGION
        );
        let url = format!("{}{}", self.url.trim_end_matches('/'), path);
        let body = body.map(|b| b.to_string());
        let mut headers = vec![("authorization", auth)];
        if body.is_some() {
            headers.push(("content-type", "application/json".into()));
        }
        let answer = http(method, &url, &headers, body.as_deref()).await?;
        let json = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        Ok((answer.status, json))
    }

    /// The administrator grants `role` to the IAM role behind `caller` (a role session ARN).
    pub async fn grant(&self, caller: &str, role: &str) -> anyhow::Result<()> {
        let principal = admin_api::identity::Principal::of(caller)
            .context("not a role session")?
            .arn;
        let body = serde_json::json!({"command_id": format!("console-test-grant-{role}"), "reason": "the console's test", "role": role});
        let (status, answer) = self
            .call(ADMIN_KEY, "PUT", &format!("/roles/{principal}"), Some(body))
            .await?;
        anyhow::ensure!(status == 200, "granting {role}: {status} {answer}");
        Ok(())
    }
}

/// What a plain HTTP request got back.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One plain HTTP/1 request to a loopback server (explicit headers win: a `host` header given
/// here is sent as it is), at most 30 s.
pub async fn http(method: &str, url: &str, headers: &[(&str, String)], body: Option<&str>) -> anyhow::Result<Answer> {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))?;
    let res = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .with_context(|| format!("{method} {url}: no answer in 30 s"))??;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await?.to_bytes().to_vec();
    Ok(Answer { status, headers, body })
}

/// A `billingctl console` process (killed when dropped).
pub struct Console {
    _child: tokio::process::Child,
    /// `http://127.0.0.1:PORT/login?token=TOKEN`, as printed.
    pub login_url: String,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    pub port: u16,
}

impl Console {
    /// `billingctl console --url ADMIN --cycle CYCLE` with the access key `key`, in the
    /// emulator's AWS environment and nothing of the caller's; waits (at most 30 s) for the
    /// line naming its login address.
    pub async fn start(admin_url: &str, cycle: Cycle, key: &str) -> anyhow::Result<Console> {
        let emulator = Emulator::shared().await?;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_billingctl"))
            .args(["console", "--url", admin_url, "--cycle", &cycle.to_string()])
            .env("AWS_ENDPOINT_URL", emulator.endpoint_url())
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", "not-checked-locally")
            .env("AWS_REGION", local_aws::REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("BILLING_STACK")
            .env_remove("BILLING_ADMIN_URL")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start billingctl console")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("billingctl console printed no line in 30 s")??
            .context("billingctl console ended without printing its address")?;
        let login_url = parse_console_line(&line)?;
        let origin = login_url
            .split("/login")
            .next()
            .context("no /login in the address")?
            .to_owned();
        let port = origin
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no port in {origin}"))?;
        // Keep reading stdout so that the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Console {
            _child: child,
            login_url,
            origin,
            port,
        })
    }
}

/// The login address of `console on http://127.0.0.1:PORT/login?token=TOKEN (Ctrl-C stops)`.
pub fn parse_console_line(line: &str) -> anyhow::Result<String> {
    let rest = line
        .strip_prefix("console on ")
        .with_context(|| format!("not the console's line: {line:?}"))?;
    let (url, tail) = rest
        .split_once(' ')
        .with_context(|| format!("not the console's line: {line:?}"))?;
    anyhow::ensure!(tail == "(Ctrl-C stops)", "not the console's line: {line:?}");
    anyhow::ensure!(
        url.starts_with("http://127.0.0.1:") && url.contains("/login?token="),
        "not a loopback login address: {line:?}"
    );
    Ok(url.to_owned())
}
