//! The suppression list against the local emulator (moto server), with its table provisioned
//! from template.yaml.

use adapters::dynamodb_client;
use adapters::suppressions::{BATCH_GET_LIMIT, Suppression, SuppressionReason, SuppressionStore};
use chrono::{DateTime, Utc};
use domain::pii::{Field, Keyring};

async fn store(name: &str) -> (local_aws::Stack, SuppressionStore) {
    let stack = local_aws::fresh_stack(name).await.expect("emulator and template");
    let table = stack.env()["SUPPRESSION_TABLE"].clone();
    let store = SuppressionStore::new(dynamodb_client(&stack.config), table);
    (stack, store)
}

fn at() -> DateTime<Utc> {
    "2026-12-15T01:30:00Z".parse().unwrap()
}

fn entry(hash: &str, reason: SuppressionReason) -> Suppression {
    Suppression {
        contact_hash: hash.to_owned(),
        reason,
        created_at: at(),
        source: "ses-event-0001".into(),
        delivery_id: Some("2026-11#00001#C0000042".into()),
        note: Some("Bounce/Permanent/General".into()),
        by: None,
    }
}

/// A hash of the development keyring for the address `n@example.com`.
fn hash(n: usize) -> String {
    Keyring::dev().lookup_hash(Field::Email, &format!("user{n}@example.com"))
}

#[tokio::test]
async fn the_first_entry_of_a_hash_stays_and_reads_back_whole() {
    let (_stack, store) = store("suppress-add").await;
    let first = entry(&hash(1), SuppressionReason::Bounce);
    assert!(store.add(&first).await.unwrap(), "added");
    let again = Suppression {
        reason: SuppressionReason::Complaint,
        source: "ses-event-0002".into(),
        ..first.clone()
    };
    assert!(!store.add(&again).await.unwrap(), "already listed: nothing changed");
    let got = store.find(std::slice::from_ref(&first.contact_hash)).await.unwrap();
    assert_eq!(got, Some(first.clone()), "the first evidence is kept");
    let operator = Suppression {
        contact_hash: hash(2),
        reason: SuppressionReason::Operator,
        source: "cmd-1".into(),
        delivery_id: None,
        note: Some("the customer asked for no email".into()),
        by: Some("arn:aws:iam::123456789012:role/ops".into()),
        created_at: at(),
    };
    assert!(store.add(&operator).await.unwrap());
    assert_eq!(store.get(&operator.contact_hash, true).await.unwrap(), Some(operator));
}

#[tokio::test]
async fn an_entry_that_is_not_a_hash_is_refused_before_any_write() {
    let (_stack, store) = store("suppress-refuse").await;
    let e = store
        .add(&entry("kim@example.com", SuppressionReason::Operator))
        .await
        .unwrap_err()
        .to_string();
    assert!(!e.contains("kim@example.com") && e.contains("look-up hash"), "{e}");
    assert_eq!(store.list(10, None).await.unwrap().0, Vec::new());
}

#[tokio::test]
async fn find_looks_under_every_key_of_a_rotated_keyring() {
    let (_stack, store) = store("suppress-rotation").await;
    // Listed under the old key; the keyring now seals with a new one and keeps the old.
    let old = Keyring::dev();
    let rotated = Keyring::parse(&format!(
        "k2:{},{}",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        domain::pii::DEV_KEYRING
    ))
    .unwrap();
    let address = "Kim.Minsu@Example.com";
    store
        .add(&entry(
            &old.lookup_hash(Field::Email, address),
            SuppressionReason::Complaint,
        ))
        .await
        .unwrap();
    let hashes = rotated.lookup_hashes(Field::Email, " kim.minsu@example.com ");
    assert_eq!(hashes.len(), 2);
    assert!(hashes[0].starts_with("k2:"), "the active key first");
    let found = store.find(&hashes).await.unwrap().expect("found under the old key");
    assert_eq!(found.reason, SuppressionReason::Complaint);
    assert_eq!(
        store
            .find(&rotated.lookup_hashes(Field::Email, "lee@example.com"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.find(&[]).await.unwrap(), None);
}

#[tokio::test]
async fn suppressed_answers_for_pages_over_the_batch_limit_with_repeats() {
    let (_stack, store) = store("suppress-batch").await;
    // Every seventh of 250 addresses listed; the page asks for each twice.
    let all: Vec<String> = (0..250).map(hash).collect();
    let listed: std::collections::HashSet<String> = all.iter().step_by(7).cloned().collect();
    for h in &listed {
        assert!(store.add(&entry(h, SuppressionReason::Bounce)).await.unwrap());
    }
    let mut page = all.clone();
    page.extend(all.iter().cloned());
    assert!(page.len() > 2 * BATCH_GET_LIMIT);
    let found = store.suppressed(&page).await.unwrap();
    assert_eq!(found, listed);
    assert!(store.suppressed(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_list_pages_to_its_end_and_removal_says_whether_there_was_one() {
    let (_stack, store) = store("suppress-list").await;
    let hashes: Vec<String> = (0..7).map(hash).collect();
    for h in &hashes {
        store.add(&entry(h, SuppressionReason::Bounce)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut start = None;
    for _ in 0..10 {
        let (page, next) = store.list(3, start).await.unwrap();
        assert!(page.len() <= 3);
        seen.extend(page.into_iter().map(|e| e.contact_hash));
        start = next;
        if start.is_none() {
            break;
        }
    }
    assert!(start.is_none(), "the list ends");
    seen.sort();
    let mut expected = hashes.clone();
    expected.sort();
    assert_eq!(seen, expected);

    assert!(store.remove(&hashes[0]).await.unwrap());
    assert!(!store.remove(&hashes[0]).await.unwrap(), "gone already");
    assert_eq!(store.find(std::slice::from_ref(&hashes[0])).await.unwrap(), None);
    assert_eq!(store.suppressed(&hashes).await.unwrap().len(), 6);
}
