//! The admin API's test fixture: a fresh stack in the emulator with six customers, each with
//! a queued delivery, and the handler called in process as the bootstrap administrator or as
//! any other caller (every answer checked for contact data in clear); the senders that take
//! the queued messages, and what the mock providers accepted.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use admin_api::{Caller, Deps, Request, Response, serve};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use domain::{Channel, SlotSet};
use local_aws::Stack;
use local_run::seed::{Seeded, seed_queued};
use local_run::send::{Poller, VirtualClock};
use serde_json::Value;

/// The caller of [`Api::call`] and its shorthands: a session of the stack's bootstrap
/// administrator role (the template's `AdminBootstrapRole`, `billing-admin`).
pub const ADMINISTRATOR: &str = "arn:aws:sts::123456789012:assumed-role/billing-admin/kim";
/// A session of the role the roles tests make an operator.
pub const OPERATOR: &str = "arn:aws:sts::123456789012:assumed-role/billing-operator/lee@example.com";
/// A session of the role the roles tests make a viewer.
pub const VIEWER: &str = "arn:aws:sts::123456789012:assumed-role/billing-viewer/park";

/// How long the admin API's tests let the senders drain their queues.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// A stack with seeded deliveries and the admin API's dependencies on it.
pub struct Api {
    pub stack: Stack,
    pub deps: Deps,
    pub seeded: Seeded,
    /// The admin API's variables on this stack.
    pub env: BTreeMap<String, String>,
}

impl Api {
    /// Six customers with no do-not-disturb slots, each with a queued delivery.
    pub async fn new(name: &str) -> Api {
        Api::with_dnd(name, SlotSet::EMPTY).await
    }

    /// Six customers whose do-not-disturb slots are `dnd`, each with a queued delivery.
    pub async fn with_dnd(name: &str, dnd: SlotSet) -> Api {
        let stack = local_aws::fresh_stack(name).await.unwrap();
        let seeded = seed_queued(&stack.config, &stack.resources, 6, 3, 3, dnd)
            .await
            .unwrap();
        let env = local_run::settle::local_function_env(&stack.resources, "AdminApiFunction");
        let deps = Deps::load(&stack.config, &env).await.unwrap();
        Api {
            stack,
            deps,
            seeded,
            env,
        }
    }

    /// The administrator's request at `now`; its answer must not hold contact data in clear.
    pub async fn call_at(&self, method: &str, path: &str, body: Option<Value>, now: DateTime<Utc>) -> Response {
        self.call_as_at(ADMINISTRATOR, method, path, body, now).await
    }

    /// `caller`'s request (an ARN as the function URL gives it), now.
    pub async fn call_as(&self, caller: &str, method: &str, path: &str, body: Option<Value>) -> Response {
        self.call_as_at(caller, method, path, body, Utc::now()).await
    }

    /// `caller`'s request at `now`; its answer must not hold contact data in clear.
    pub async fn call_as_at(
        &self,
        caller: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        now: DateTime<Utc>,
    ) -> Response {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (
                p,
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
            None => (path, HashMap::new()),
        };
        let req = Request {
            method: method.into(),
            path: path.into(),
            query,
            body: body.map(|b| b.to_string()),
            caller: Some(Caller { arn: caller.into() }),
            request_id: "test-request".into(),
        };
        let r = serve(&self.deps, &req, now).await;
        // Whatever the route, no answer carries contact data in clear.
        let text = r.body.to_string();
        for secret in self.seeded.emails.iter().chain(&self.seeded.phones) {
            assert!(!text.contains(secret.as_str()), "{method} {path} leaks contact data");
        }
        r
    }

    /// The administrator's request, now.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        self.call_at(method, path, body, Utc::now()).await
    }

    /// The administrator's `GET path`, now.
    pub async fn get(&self, path: &str) -> Response {
        self.call("GET", path, None).await
    }

    /// The administrator's `GET path` at `now`.
    pub async fn get_at(&self, path: &str, now: DateTime<Utc>) -> Response {
        self.call_at("GET", path, None, now).await
    }

    /// The administrator's `PUT path` with `body`, now.
    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.call("PUT", path, Some(body)).await
    }

    /// The administrator's `POST path` with `body`, now.
    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.call("POST", path, Some(body)).await
    }

    /// The administrator's `POST path` with `body` at `now`.
    pub async fn post_at(&self, path: &str, body: Value, now: DateTime<Utc>) -> Response {
        self.call_at("POST", path, Some(body), now).await
    }

    /// The administrator grants `role` (`viewer`, `operator`, `administrator`, `none`) to the
    /// IAM role or user behind `caller`, under the command id `command_id`; the answer.
    pub async fn grant(&self, caller: &str, role: &str, command_id: &str) -> Response {
        let principal = admin_api::identity::Principal::of(caller).unwrap().arn;
        let body = serde_json::json!({"command_id": command_id, "reason": "roles test", "role": role});
        self.put(&format!("/roles/{principal}"), body).await
    }

    /// The delivery id and customer of the seeded delivery `i`.
    pub fn delivery(&self, i: usize) -> (String, String) {
        let id = self.seeded.deliveries[i].0.clone();
        let customer = id.rsplit('#').next().unwrap().to_owned();
        (id, customer)
    }

    /// The delivery's item as stored.
    pub async fn raw(&self, id: &str) -> HashMap<String, AttributeValue> {
        let (cycle, shard, customer) = domain::delivery::parse_delivery_id(id).unwrap();
        self.deps
            .deliveries
            .raw(cycle, shard, &customer)
            .await
            .unwrap()
            .unwrap()
    }

    /// Both senders on this stack, on `clock`, with a mock provider that answers at once
    /// and never fails.
    pub async fn senders(&self, clock: &VirtualClock) -> Vec<Poller> {
        senders(&self.stack, clock, &[("MOCK_FAILURE_RATE", "0")]).await
    }

    /// Test set-up: string attributes of a delivery, as a writer would have left them.
    pub async fn set_attrs(&self, id: &str, attrs: &[(&str, &str)]) {
        let (pk, customer) = id.rsplit_once('#').unwrap();
        let mut update = adapters::dynamodb_client(&self.stack.config)
            .update_item()
            .table_name(self.deps.deliveries.table())
            .key("pk", AttributeValue::S(pk.into()))
            .key("customer_id", AttributeValue::S(customer.into()));
        let mut sets = Vec::new();
        for (i, (name, value)) in attrs.iter().enumerate() {
            sets.push(format!("#a{i} = :v{i}"));
            update = update
                .expression_attribute_names(format!("#a{i}"), *name)
                .expression_attribute_values(format!(":v{i}"), AttributeValue::S((*value).into()));
        }
        update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .unwrap();
    }

    /// Test set-up: put a delivery back to READY as a re-render would find it.
    pub async fn make_ready(&self, id: &str) {
        local_run::seed::make_ready(&self.stack.config, &self.stack.resources, id)
            .await
            .unwrap();
    }
}

/// Both senders on `stack`, on `clock`, with a mock provider that answers at once; `overrides`
/// set the rest of their variables (the provider's failure rate, the retry delays).
pub async fn senders(stack: &Stack, clock: &VirtualClock, overrides: &[(&str, &str)]) -> Vec<Poller> {
    let overrides: Vec<(&str, String)> = [("MOCK_LATENCY_MS", "0")]
        .iter()
        .chain(overrides)
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    local_run::send::pollers(&stack.config, &stack.resources, &overrides, clock)
        .await
        .unwrap()
}

/// Runs the senders until their queues are empty (at most `limit`): whether they are.
pub async fn drain_all(senders: &[Poller], limit: Duration) -> bool {
    let (_, drained) = local_run::send::drain(senders, 2, limit).await.unwrap();
    drained
}

/// Accepted sends at the mock providers, by idempotency key.
pub async fn accepted_sends(api: &Api) -> BTreeMap<String, u64> {
    let table = local_run::send::sender_env(&api.stack.resources, Channel::Email, &[])["MOCK_SENDS_TABLE"].clone();
    let client = adapters::dynamodb_client(&api.stack.config);
    let mut counts = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(&table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            *counts.entry(item["pk"].as_s().unwrap().clone()).or_insert(0) += 1;
        }
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            break;
        }
    }
    counts
}

/// The error code of an answer (`<none>` for a success).
pub fn error_code(r: &Response) -> &str {
    r.body["error"]["code"].as_str().unwrap_or("<none>")
}
