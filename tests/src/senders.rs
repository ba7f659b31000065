//! The senders' test stack: a provisioned copy of the stack, sender
//! dependencies with fast retries on a virtual clock, and pollers that play
//! the event source mapping.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use domain::Channel;
use local_aws::{Emulator, Resources};
use local_run::seed::states;
use local_run::send::{Poller, VirtualClock, sender_deps};
use providers::DynamoLog;
use sender::Deps;

pub struct Stack {
    pub config: aws_config::SdkConfig,
    pub resources: Resources,
    /// An emulator of this test's own, stopped when the stack is dropped.
    _own: Option<Emulator>,
}

pub async fn stack(name: &str) -> Stack {
    let emulator = Emulator::shared().await.unwrap();
    provisioned(emulator, name).await
}

/// A stack on an emulator of its own, for the longest drains: the suite's shared emulator is
/// one Python process (about one core), and a test that keeps it busy for minutes would slow
/// every other test; a second process puts the machine's other core to work.
pub async fn stack_on_own_emulator(name: &str) -> Stack {
    let emulator = Emulator::start().await.unwrap();
    provisioned(&emulator, name).await.owning(emulator)
}

pub async fn provisioned(emulator: &Emulator, name: &str) -> Stack {
    let config = emulator.sdk_config().await;
    let resources = local_aws::provision(&config, &local_aws::unique_prefix(name))
        .await
        .unwrap();
    Stack {
        config,
        resources,
        _own: None,
    }
}

impl Stack {
    /// Keeps `emulator` running as long as the stack.
    pub fn owning(mut self, emulator: Emulator) -> Self {
        self._own = Some(emulator);
        self
    }

    pub fn var(&self, k: &str) -> String {
        self.resources.env().get(k).cloned().unwrap_or_else(|| {
            local_run::settle::local_function_env(&self.resources, "SendEmailFunction")
                .get(k)
                .cloned()
                .unwrap_or_default()
        })
    }

    /// A sender with fast retries, no provider latency and the given mock rates.
    pub async fn deps(&self, channel: Channel, failure: f64, timeout: f64, clock: &VirtualClock) -> Deps {
        let timeout = timeout.to_string();
        self.deps_with(channel, failure, clock, &[("MOCK_TIMEOUT_RATE", &timeout)])
            .await
    }

    /// [`deps`](Self::deps) with more of the function's variables set (the
    /// mock's hangs, the provider timeout).
    pub async fn deps_with(
        &self,
        channel: Channel,
        failure: f64,
        clock: &VirtualClock,
        extra: &[(&str, &str)],
    ) -> Deps {
        let mut overrides = vec![
            ("MOCK_LATENCY_MS", "0".to_owned()),
            ("MOCK_FAILURE_RATE", failure.to_string()),
            ("MOCK_SEED", "7".to_owned()),
            ("RETRY_BASE_DELAY_SECONDS", "1".to_owned()),
            ("RETRY_MAX_DELAY_SECONDS", "2".to_owned()),
        ];
        overrides.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let mut d = sender_deps(&self.config, &self.resources, channel, &overrides)
            .await
            .unwrap();
        d.clock = clock.clock();
        // A busy message comes back when the holder's lease ends: a minute here is a test's
        // whole budget, so look again after two seconds.
        d.config.busy_delay_max = Duration::from_secs(2);
        d
    }

    pub fn log(&self) -> DynamoLog {
        DynamoLog::new(adapters::dynamodb_client(&self.config), self.var("MOCK_SENDS_TABLE"))
    }

    pub async fn states(&self) -> BTreeMap<String, u64> {
        states(&self.config, &self.var("DELIVERIES_TABLE")).await.unwrap()
    }

    /// The ids of the deliveries in `state`.
    pub async fn deliveries_in(&self, state: &str) -> Vec<String> {
        let ddb = adapters::dynamodb_client(&self.config);
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = ddb
                .scan()
                .table_name(self.var("DELIVERIES_TABLE"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items.unwrap_or_default() {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                if text("state") == state {
                    out.push(format!("{}#{}", text("pk"), text("customer_id")));
                }
            }
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return out;
            }
        }
    }
}

/// 10:30 Asia/Seoul on 15 December 2026, inside slot 5 (10:00-12:00).
pub fn mid_morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 15, 1, 30, 0).unwrap()
}

pub fn pollers(
    stack: &Stack,
    deps: [Deps; 2],
    bodies: &Arc<Mutex<Vec<String>>>,
    visibility: Option<i32>,
) -> Vec<Poller> {
    deps.into_iter()
        .map(|d| {
            let mut p = Poller::new(&stack.config, Arc::new(d));
            p.visibility = visibility;
            p.bodies = Some(bodies.clone());
            p
        })
        .collect()
}
