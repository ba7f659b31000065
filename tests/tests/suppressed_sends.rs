//! The email sender and the suppression list, against the emulator: an address on the list
//! is never emailed; its delivery goes to SMS without an email attempt, or ends `DEAD`
//! (code `suppressed`) when the channel policy allows no SMS. The logs name the hash, never
//! the address.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::deliveries::DeliveryStore;
use adapters::suppressions::{Suppression, SuppressionReason, SuppressionStore};
use domain::delivery::parse_delivery_id;
use domain::pii::Field;
use domain::{Channel, DeliveryState, SlotSet};
use integration_tests::senders::{Stack, mid_morning, pollers, stack};
use local_run::seed::{Seeded, seed_queued};
use local_run::send::{PollStats, VirtualClock, drain};

/// The first `n` seeded customers' addresses put on the list (a bounce each), hashed with the
/// keyring the sender opens contacts with.
async fn suppress_first(
    stack: &Stack,
    seeded: &Seeded,
    n: usize,
    keys: &adapters::keyring::PiiKeys,
) -> SuppressionStore {
    let list = SuppressionStore::new(adapters::dynamodb_client(&stack.config), stack.var("SUPPRESSION_TABLE"));
    let keys = keys.current().await;
    for (i, email) in seeded.emails.iter().take(n).enumerate() {
        // Spelled differently from the stored address: the hash normalises it.
        let hash = keys.lookup_hash(Field::Email, &format!(" {} ", email.to_uppercase()));
        let added = list
            .add(&Suppression {
                contact_hash: hash,
                reason: SuppressionReason::Bounce,
                created_at: mid_morning(),
                source: format!("event-{i}"),
                delivery_id: None,
                note: Some("Bounce/Permanent/General".into()),
                by: None,
            })
            .await
            .unwrap();
        assert!(added);
    }
    list
}

async fn run(stack: &Stack, extra: &[(&str, &str)]) -> (PollStats, String) {
    let logs = local_run::logs::capture();
    let clock = VirtualClock::at(mid_morning());
    let deps = [
        stack.deps_with(Channel::Email, 0.0, &clock, extra).await,
        stack.deps_with(Channel::Sms, 0.0, &clock, extra).await,
    ];
    assert!(deps[0].suppressions.is_some(), "SUPPRESSION_TABLE reaches the sender");
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let pollers = pollers(stack, deps, &bodies, None);
    let (stats, drained) = drain(&pollers, 2, Duration::from_secs(120)).await.unwrap();
    assert!(drained, "{stats:?}");
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    (stats, logs)
}

async fn delivery(stack: &Stack, id: &str) -> domain::Delivery {
    let store = DeliveryStore::new(adapters::dynamodb_client(&stack.config), stack.var("DELIVERIES_TABLE"));
    let (cycle, shard, customer) = parse_delivery_id(id).unwrap();
    store.get(cycle, shard, &customer).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppressed_address_is_not_emailed_and_its_delivery_goes_by_sms() {
    let stack = stack("suppress-send").await;
    let seeded = seed_queued(&stack.config, &stack.resources, 6, 6, 0, SlotSet::EMPTY)
        .await
        .unwrap();
    let keys = stack
        .deps(Channel::Email, 0.0, 0.0, &VirtualClock::at(mid_morning()))
        .await
        .keys;
    suppress_first(&stack, &seeded, 2, &keys).await;
    let (stats, logs) = run(&stack, &[]).await;

    let r = &stats.report;
    assert_eq!((r.suppressed, r.failed, r.fallback), (2, 0, 0), "{r:?}");
    let sent = stack.log().count_by_key().await.unwrap();
    for (i, (id, _)) in seeded.deliveries.iter().enumerate() {
        let d = delivery(&stack, id).await;
        let email_key = format!("{id}#email");
        if i < 2 {
            assert_eq!(d.state, DeliveryState::SentSms, "{id}");
            assert_eq!(d.attempts_email, 0, "no email attempt counted: {id}");
            assert!(!sent.contains_key(&email_key), "never emailed: {id}");
            assert_eq!(sent.get(&format!("{id}#sms")), Some(&1), "{id}");
        } else {
            assert_eq!(d.state, DeliveryState::SentEmail, "{id}");
            assert_eq!(sent.get(&email_key), Some(&1), "{id}");
        }
    }
    assert!(logs.contains("on the suppression list"), "the log says why");
    for email in &seeded.emails {
        assert!(
            !logs.to_lowercase().contains(&email.to_lowercase()),
            "an address leaked"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sms_in_the_channel_policy_a_suppressed_delivery_ends_dead() {
    let stack = stack("suppress-dead").await;
    let seeded = seed_queued(&stack.config, &stack.resources, 3, 3, 0, SlotSet::EMPTY)
        .await
        .unwrap();
    let keys = stack
        .deps(Channel::Email, 0.0, 0.0, &VirtualClock::at(mid_morning()))
        .await
        .keys;
    suppress_first(&stack, &seeded, 1, &keys).await;
    let (stats, _) = run(&stack, &[("CHANNEL_POLICY", "email")]).await;

    assert_eq!((stats.report.dead, stats.report.sent), (1, 2), "{:?}", stats.report);
    let first = delivery(&stack, &seeded.deliveries[0].0).await;
    assert_eq!(first.state, DeliveryState::Dead);
    let item = DeliveryStore::new(adapters::dynamodb_client(&stack.config), stack.var("DELIVERIES_TABLE"));
    let (cycle, shard, customer) = parse_delivery_id(&seeded.deliveries[0].0).unwrap();
    let raw = item.raw(cycle, shard, &customer).await.unwrap().unwrap();
    assert_eq!(
        raw.get("last_error").and_then(|v| v.as_s().ok()).map(String::as_str),
        Some("suppressed")
    );
    let sent = stack.log().count_by_key().await.unwrap();
    assert!(!sent.contains_key(&format!("{}#email", seeded.deliveries[0].0)));
}
