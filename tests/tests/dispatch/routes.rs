//! A delivery's `route` and the suppression list at dispatch: a delivery routed to SMS goes
//! by SMS only, in an allowed slot, and waits (paused) while SMS is disabled — never by
//! email; due email whose `email_hash` the suppression list has goes by SMS instead.

use chrono::{DateTime, Utc};
use domain::dispatch::ChannelPolicy;
use domain::{Channel, DeliveryState, SlotSet};
use integration_tests::Month;

use super::written::{Spec, email_hash, settled, write};
use super::{cycle, dispatch, dispatch_deps, drain, utc};

/// 20 December 2026, 10:00 Asia/Seoul (slot 5).
fn slot5() -> DateTime<Utc> {
    utc("2026-12-20T01:00:00Z")
}

fn ids(messages: &[domain::delivery::DeliveryMessage]) -> Vec<String> {
    let mut ids: Vec<String> = messages.iter().map(|m| m.delivery_id.clone()).collect();
    ids.sort();
    ids
}

/// A delivery's state, and the channel it was enqueued on (item attribute `channel`).
async fn state(month: &Month, d: &domain::Delivery) -> (DeliveryState, Option<Channel>) {
    let item = month
        .deliveries
        .raw(d.cycle, d.shard, &d.customer_id)
        .await
        .unwrap()
        .unwrap();
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let channel = match text("channel").as_str() {
        "email" => Some(Channel::Email),
        "sms" => Some(Channel::Sms),
        _ => None,
    };
    (DeliveryState::parse(&text("state")).unwrap(), channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_and_suppressed_email_goes_by_sms_only_and_waits_while_sms_is_disabled() {
    let month = Month::new("dispatch-routes").await.unwrap();
    settled(&month, cycle()).await;
    let mut deps = dispatch_deps(&month).await;
    // No sender runs here: what is enqueued is not re-checked within the test.
    deps.config.recheck_after = chrono::Duration::days(60);
    // The configured policy applies (no runtime setting is written); the quota is unlimited.
    deps.quota = providers::QuotaSource::Unlimited;
    let store = deps
        .suppressions
        .clone()
        .expect("DispatchSlot reads the suppression list");

    let bounced = email_hash("kim.minjun.1987@example-mail.co.kr");
    let fine = email_hash("lee.seoyeon@example-mail.co.kr");
    let slot6 = SlotSet::from_bits(1 << 6).unwrap();
    let specs = [
        // Routed to SMS after a permanent bounce (its email hash is listed too).
        Spec {
            route: Some(Channel::Sms),
            email_hash: Some(bounced.clone()),
            ..Spec::new("C0000001")
        },
        // Routed to SMS, its customer preferring SMS anyway.
        Spec {
            route: Some(Channel::Sms),
            preferred: Channel::Sms,
            ..Spec::new("C0000002")
        },
        // Routed to SMS, but the customer's DND has slot 6 (12:00-14:00).
        Spec {
            route: Some(Channel::Sms),
            dnd: slot6,
            ..Spec::new("C0000003")
        },
        // Not routed, but its email is on the suppression list.
        Spec {
            email_hash: Some(bounced.clone()),
            ..Spec::new("C0000004")
        },
        // An email that is not listed.
        Spec {
            email_hash: Some(fine.clone()),
            ..Spec::new("C0000005")
        },
        // No hash at all (rendered before hashes were kept): email, as before.
        Spec::new("C0000006"),
    ];
    let ds = write(&month, cycle(), &specs).await;
    let [routed, routed_sms, routed_dnd, suppressed, listed_not, no_hash] = [0, 1, 2, 3, 4, 5].map(|i| &ds[i]);
    let entry = adapters::suppressions::Suppression {
        contact_hash: bounced.clone(),
        reason: adapters::suppressions::SuppressionReason::Bounce,
        created_at: slot5() - chrono::Duration::days(3),
        source: "test-bounce-1".into(),
        delivery_id: None,
        note: None,
        by: None,
    };
    assert!(store.add(&entry).await.unwrap());

    // SMS disabled: the routed ones and the suppressed one wait; the others go by email.
    deps.config.policy = ChannelPolicy {
        email: true,
        sms: false,
    };
    let r = dispatch(&deps, slot5(), None).await.unwrap();
    assert_eq!(
        (r.policy.as_str(), r.policy_source.as_str()),
        ("email", "config"),
        "{r:?}"
    );
    assert_eq!((r.enqueued_email, r.enqueued_sms), (2, 0), "{r:?}");
    assert_eq!(r.suppressed, 1, "{r:?}");
    assert_eq!(r.paused, 4, "three routed to SMS and one suppressed: {r:?}");
    assert_eq!(ids(&drain(&month, "EmailQueue").await), {
        let mut v = vec![listed_not.id().to_string(), no_hash.id().to_string()];
        v.sort();
        v
    });
    assert!(drain(&month, "SmsQueue").await.is_empty());
    for d in [routed, routed_sms, routed_dnd, suppressed] {
        assert_eq!(state(&month, d).await.0, DeliveryState::Ready, "{}", d.customer_id);
    }

    // SMS enabled at 12:00 (slot 6): the routed ones and the suppressed one go by SMS, but not
    // the one whose DND has slot 6.
    deps.config.policy = ChannelPolicy::ALL;
    let noon = slot5() + chrono::Duration::hours(2);
    let r = dispatch(&deps, noon, None).await.unwrap();
    assert_eq!((r.enqueued_email, r.enqueued_sms), (0, 3), "{r:?}");
    assert_eq!((r.suppressed, r.paused, r.not_this_slot), (1, 0, 1), "{r:?}");
    let sms = drain(&month, "SmsQueue").await;
    assert!(sms.iter().all(|m| m.channel == Channel::Sms), "{sms:?}");
    assert_eq!(ids(&sms), {
        let mut v = vec![
            routed.id().to_string(),
            routed_sms.id().to_string(),
            suppressed.id().to_string(),
        ];
        v.sort();
        v
    });
    assert!(drain(&month, "EmailQueue").await.is_empty());
    for d in [routed, routed_sms, suppressed] {
        assert_eq!(
            state(&month, d).await,
            (DeliveryState::Queued, Some(Channel::Sms)),
            "{}",
            d.customer_id
        );
    }

    // 14:00 (slot 7): the last routed one goes, by SMS, in the slot its DND allows.
    let r = dispatch(&deps, noon + chrono::Duration::hours(2), None).await.unwrap();
    assert_eq!((r.enqueued_email, r.enqueued_sms, r.suppressed), (0, 1, 0), "{r:?}");
    assert_eq!(ids(&drain(&month, "SmsQueue").await), vec![routed_dnd.id().to_string()]);
    assert_eq!(
        state(&month, routed_dnd).await,
        (DeliveryState::Queued, Some(Channel::Sms))
    );
    // Unlimited: the plan says so and carries nothing.
    let plan = r.quota.expect("a plan");
    assert_eq!(
        (plan.source.as_str(), plan.max_24h, plan.budget),
        ("unlimited", None, None)
    );
    assert_eq!((r.over_quota, r.carried_to), (0, None));
}
