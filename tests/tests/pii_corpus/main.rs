//! No value echoed (issue 18): a generated customer's email (as stored and in upper case), name
//! and phone number (in six formats) placed in every field of every function's input — the
//! senders' and RecordFailure's SQS bodies, DispatchSlot's scheduled event and continuation
//! messages, the settlement tasks' inputs and the state machine's execution input, the admin
//! API's path segments, query parameters, JSON bodies and caller — and then searched for in
//! everything the functions left: their answers and errors, every log line (debug and up, all
//! crates), the failure records, every message on every queue (dead-letter queues included)
//! and what the functions wrote into each execution's history. The corpus grows with the
//! sample inputs in `events/`: each sample is walked leaf by leaf. The test prints the corpus's
//! size and every hit (where, with the value masked) and fails on any hit.

mod admin;
mod inputs;
mod sinks;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datagen::{GenConfig, Generator};
use domain::pii::Keyring;
use domain::{Channel, SlotSet};
use futures::StreamExt;
use futures::future::LocalBoxFuture;
use integration_tests::Month;
use integration_tests::corpus::{Scanner, placed_values};
use integration_tests::senders::mid_morning;
use lambda_runtime::{Diagnostic, LambdaEvent};
use local_aws::lambda::{FunctionError, Handler, handler_fn};
use local_run::send::VirtualClock;
use serde_json::Value;
use tracing::Instrument;

use crate::inputs::{Case, Target};

/// How long one case's handler may run (the senders and dispatch budget their work by it).
const CASE_TIMEOUT: Duration = Duration::from_secs(60);
/// Cases in flight at once.
const CONCURRENCY: usize = 12;
/// Where a hit is when no case can be named: a queue's message, a log line outside every
/// case's span (a task a handler spawned, the host serving the state machine's invocations).
const UNATTRIBUTED: &str = "(any case)";
/// Executions in flight at once.
const EXECUTIONS_AT_ONCE: usize = 6;

/// A function's handler over raw JSON payloads, on this test's task.
type Call = Arc<dyn Fn(Value) -> LocalBoxFuture<'static, Result<Value, FunctionError>>>;

/// A [`Handler`] (which the Lambda host also serves) as a [`Call`].
fn call(handler: Handler) -> Call {
    Arc::new(move |payload| handler(payload))
}

/// Every function's handler, as its runtime calls it, by its `events/` folder name.
async fn handlers(month: &Month, clock: &VirtualClock) -> HashMap<&'static str, Call> {
    let env = |id: &str| local_run::settle::local_function_env(&month.resources, id);
    let config = &month.config;
    let mut out: HashMap<&'static str, Call> = HashMap::new();
    macro_rules! host {
        ($name:literal, $deps:expr, $handle:path) => {{
            let deps = Arc::new($deps);
            out.insert(
                $name,
                call(handler_fn(concat!("corpus-", $name), CASE_TIMEOUT, move |ev| {
                    let deps = deps.clone();
                    async move { $handle(&deps, ev).await }
                })),
            );
        }};
    }
    host!(
        "settle-begin",
        settle_begin::Deps::load(config, &env("SettleBeginFunction"))
            .await
            .unwrap(),
        settle_begin::handle
    );
    host!(
        "settle-shard",
        settle_shard::Deps::load(config, &env("SettleShardFunction"))
            .await
            .unwrap(),
        settle_shard::handle
    );
    host!(
        "render-shard",
        render_shard::Deps::load(config, &env("RenderShardFunction"))
            .await
            .unwrap(),
        render_shard::handle
    );
    host!(
        "settle-finish",
        settle_finish::Deps::load(config, &env("SettleFinishFunction"))
            .await
            .unwrap(),
        settle_finish::handle
    );
    // DispatchSlot takes any JSON (no unmarshalling), and its future is not provably `Send`:
    // it runs on this test's task instead of through a `Handler`.
    let dispatch = Arc::new(
        dispatch_slot::Deps::load(config, &env("DispatchSlotFunction"))
            .await
            .unwrap(),
    );
    out.insert(
        "dispatch-slot",
        Arc::new(move |payload| {
            let deps = dispatch.clone();
            Box::pin(async move {
                let event = LambdaEvent::new(payload, local_run::invocation(CASE_TIMEOUT));
                dispatch_slot::handle(&deps, event)
                    .await
                    .map_err(|e| FunctionError::from(Diagnostic::from(e)))
            })
        }),
    );
    host!(
        "record-failure",
        record_failure::Deps::load(config, &env("RecordFailureFunction"))
            .await
            .unwrap(),
        record_failure::handle
    );
    host!(
        "admin-api",
        admin_api::Deps::load(config, &env("AdminApiFunction")).await.unwrap(),
        admin_api::handle
    );
    for channel in [Channel::Email, Channel::Sms] {
        let overrides = [
            ("MOCK_LATENCY_MS", "0".to_owned()),
            ("MOCK_FAILURE_RATE", "0".to_owned()),
        ];
        let vars = local_run::send::sender_env(&month.resources, channel, &overrides);
        let mut d = sender::Deps::load(channel, config, &vars).await.unwrap();
        d.clock = clock.clock();
        match channel {
            Channel::Email => host!("send-email", d, sender::handle),
            Channel::Sms => host!("send-sms", d, sender::handle),
        }
    }
    out
}

/// What a case was answered: the handler's output, or its error as the runtime reports it.
fn answer_text(r: &Result<Value, FunctionError>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => e.to_string(),
    }
}

/// The case a failure record was written by: records of unreadable messages are kept under
/// the message id, which names the case.
fn case_of_record(text: &str) -> Option<usize> {
    let at = text.find("corpus-m")? + "corpus-m".len();
    text.get(at..at + 5)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_of_a_customer_placed_in_any_input_comes_back_in_any_answer_log_record_queue_or_history() {
    let t0 = Instant::now();
    let logs = local_run::logs::capture();
    let month = Month::new("pii-corpus").await.unwrap();
    // Six seeded customers with queued deliveries (shards of 3, every third by SMS), in a
    // settled cycle 2026-11.
    let seeded = local_run::seed::seed_queued(&month.config, &month.resources, 6, 3, 3, SlotSet::EMPTY)
        .await
        .unwrap();
    // The customer whose values the corpus places: a generated one (seed 7, as the other
    // tests' months), stored in the stack as the load stores it.
    let mut cfg = GenConfig::new(100, integration_tests::CYCLE.parse().unwrap());
    cfg.seed = 7;
    let generator = Generator::new(cfg, Keyring::dev()).unwrap();
    let customer = generator.customer(41).unwrap();
    let open = customer.contact.open(&Keyring::dev(), &customer.customer_id).unwrap();
    let (name, email, phone) = (open.name.expose(), open.email.expose(), open.phone.expose());
    assert_eq!(
        phone.split('-').map(str::len).collect::<Vec<_>>(),
        [3, 4, 4],
        "a 010-XXXX-XXXX number"
    );
    month.customers.put_all(std::slice::from_ref(&customer)).await.unwrap();
    let values = placed_values(name, email, phone);

    let delivery = |channel| {
        seeded
            .deliveries
            .iter()
            .find(|(_, c)| *c == channel)
            .map(|(id, _)| id.clone())
            .unwrap()
    };
    let (email_delivery, sms_delivery) = (delivery(Channel::Email), delivery(Channel::Sms));
    let admin_customer = email_delivery.rsplit('#').next().unwrap().to_owned();
    // A customer of its own for the preferences route: a valid change moves that customer's
    // waiting deliveries, which must not change what the other cases find.
    let preferences_customer = seeded
        .deliveries
        .iter()
        .map(|(id, _)| id.rsplit('#').next().unwrap().to_owned())
        .find(|c| *c != admin_customer && !sms_delivery.ends_with(&format!("#{c}")))
        .unwrap();
    let mut cases: Vec<Case> = inputs::cases(&values, &email_delivery, &sms_delivery, 0);
    // Every admin request is the bootstrap administrator's (a session of the stack's
    // AdminBootstrapRole), so that each route gets past the role check to its own.
    let bootstrap = local_run::settle::local_function_env(&month.resources, "AdminApiFunction")
        .get("ADMIN_BOOTSTRAP_PRINCIPAL")
        .cloned()
        .unwrap_or_else(|| "arn:aws:iam::123456789012:role/billing-admin".into());
    let (account, role) = bootstrap
        .strip_prefix("arn:aws:iam::")
        .and_then(|r| r.split_once(":role/"))
        .expect("ADMIN_BOOTSTRAP_PRINCIPAL is an IAM role's ARN");
    let caller = format!("arn:aws:sts::{account}:assumed-role/{role}/corpus");
    cases.extend(admin::cases(
        &values,
        &admin_customer,
        &preferences_customer,
        &caller,
        cases.len(),
    ));
    let setup = t0.elapsed();

    // Every function case through its handler, each in a span that names it.
    let clock = VirtualClock::at(mid_morning());
    let handlers = handlers(&month, &clock).await;
    let answers: Vec<(usize, String)> = futures::stream::iter(cases.iter().enumerate())
        .filter_map(|(n, case)| {
            let handler = match case.target {
                Target::Function(f) => Some(handlers[f].clone()),
                Target::Execution => None,
            };
            let payload = case.payload.clone();
            async move {
                let handler = handler?;
                Some(async move {
                    let span = tracing::info_span!("corpus_case", case = n);
                    let r = handler(payload).instrument(span).await;
                    (n, answer_text(&r))
                })
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let functions_done = t0.elapsed();

    // The state machine's executions, each read back from its history.
    let histories: Vec<(usize, Vec<String>)> = futures::stream::iter(cases.iter().enumerate())
        .filter(|(_, c)| std::future::ready(c.target == Target::Execution))
        .map(|(n, case)| {
            let month = &month;
            async move {
                let name = format!("corpus-e{n:05}");
                let texts =
                    sinks::execution_texts(&month.sfn, &month.state_machine, &name, &case.payload, CASE_TIMEOUT).await;
                (n, texts)
            }
        })
        .buffer_unordered(EXECUTIONS_AT_ONCE)
        .collect()
        .await;
    let executions_done = t0.elapsed();

    // Everything left behind, searched.
    let mut scanner = Scanner::new(&values, phone);
    let name_of = |n: Option<usize>| n.and_then(|n| cases.get(n)).map_or(UNATTRIBUTED.to_owned(), Case::name);
    for (n, text) in &answers {
        scanner.scan(&name_of(Some(*n)), "answer", text);
    }
    for (n, texts) in &histories {
        for text in texts {
            scanner.scan(&name_of(Some(*n)), "execution history", text);
        }
    }
    let queues = sinks::drain_queues(&month.config, &month.resources, Duration::from_secs(15)).await;
    for (queue, bodies) in &queues {
        for body in bodies {
            scanner.scan(UNATTRIBUTED, &format!("queue {queue}"), body);
        }
    }
    let failures = month.resources.table("FailuresTable").unwrap();
    for item in sinks::table_items(&month.config, failures).await {
        scanner.scan(&name_of(case_of_record(&item)), "failure record", &item);
    }
    let buffer = logs.lock().unwrap().clone();
    for (n, line) in sinks::log_lines(&buffer) {
        scanner.scan(&name_of(n), "log line", &line);
    }

    // The corpus's size and every hit, for the report.
    let mut by_target: BTreeMap<String, usize> = BTreeMap::new();
    for c in &cases {
        let t = match c.target {
            Target::Function(f) => f.to_owned(),
            Target::Execution => "settlement execution".to_owned(),
        };
        *by_target.entry(t).or_default() += 1;
    }
    eprintln!(
        "pii corpus: {} cases ({} values of one generated customer), {} texts scanned ({} bytes); hits: {}",
        cases.len(),
        values.len(),
        scanner.texts,
        scanner.bytes,
        scanner.hits.len()
    );
    eprintln!("pii corpus: cases by input: {by_target:?}");
    eprintln!("pii corpus: texts by sink: {:?}", scanner.by_sink);
    eprintln!(
        "pii corpus: set-up {setup:.1?}, function cases done at {functions_done:.1?}, executions at {executions_done:.1?}, total {:.1?}",
        t0.elapsed()
    );
    let mut grouped: BTreeMap<(String, String), Vec<&integration_tests::corpus::Hit>> = BTreeMap::new();
    for h in &scanner.hits {
        let target = if h.case == UNATTRIBUTED {
            h.case.clone()
        } else {
            h.case.split(' ').next().unwrap_or_default().to_owned()
        };
        grouped.entry((target, h.sink.clone())).or_default().push(h);
    }
    for ((target, sink), hits) in &grouped {
        eprintln!("pii corpus: {} hits: {target} → {sink}", hits.len());
        for h in hits.iter().take(10) {
            eprintln!("    {} [{}]: …{}…", h.case, h.value, h.excerpt);
        }
    }
    assert!(cases.len() > 1_000, "the corpus has {} cases", cases.len());
    assert!(
        scanner.hits.is_empty(),
        "{} hits of the customer's values (listed above)",
        scanner.hits.len()
    );
}
