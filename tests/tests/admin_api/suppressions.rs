//! The suppression list through the admin API: operators add an address (given, or a
//! customer's current one) and remove entries, viewers list them; every entry, answer and
//! audit record names the keyed hash, never the address; commands are idempotent by their id
//! and refused with the field named.

use domain::pii::{Field, Keyring};
use integration_tests::admin::{Api, OPERATOR, VIEWER, error_code};
use serde_json::{Value, json};

/// An address none of the seeded customers has.
const ADDRESS: &str = "blocked.person@example.org";

fn hash(email: &str) -> String {
    Keyring::dev().lookup_hash(Field::Email, email)
}

fn message(r: &admin_api::Response) -> &str {
    r.body["error"]["message"].as_str().unwrap_or_default()
}

async fn post(api: &Api, caller: &str, body: Value) -> admin_api::Response {
    api.call_as(caller, "POST", "/suppressions", Some(body)).await
}

async fn entries(api: &Api) -> Vec<Value> {
    let r = api.call_as(VIEWER, "GET", "/suppressions?limit=100", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["suppressions"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_suppresses_an_address_as_its_hash_and_removes_it_again() {
    let api = Api::new("admin-suppress").await;
    api.grant(OPERATOR, "operator", "g-op").await;
    api.grant(VIEWER, "viewer", "g-viewer").await;
    let h = hash(ADDRESS);

    let body = json!({"command_id": "s-1", "reason": "the customer asked for no email", "email": ADDRESS});
    let r = post(&api, OPERATOR, body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["contact_hash"].as_str(), r.body["replayed"].as_bool()),
        (Some(h.as_str()), Some(false))
    );
    assert!(!r.body.to_string().contains("blocked.person"), "{}", r.body);
    // Replayed: the first answer; the same address under any spelling: already listed.
    let again = post(&api, OPERATOR, body).await;
    assert_eq!((again.status, again.body["replayed"].as_bool()), (200, Some(true)));
    let spelled = post(
        &api,
        OPERATOR,
        json!({"command_id": "s-2", "reason": "again", "email": " Blocked.Person@EXAMPLE.org"}),
    )
    .await;
    assert_eq!(
        (spelled.status, error_code(&spelled)),
        (409, "already-suppressed"),
        "{}",
        spelled.body
    );
    assert!(message(&spelled).contains(&h) && !message(&spelled).to_lowercase().contains("blocked.person"));

    // Listed for viewers: the hash, why, since when, from what.
    let list = entries(&api).await;
    assert_eq!(list.len(), 1);
    assert_eq!(
        (&list[0]["contact_hash"], &list[0]["reason"], &list[0]["source"]),
        (&json!(h), &json!("operator"), &json!("s-1"))
    );
    assert!(!Value::Array(list).to_string().contains("blocked.person"));
    // Audited by the hash.
    let audit = api.get("/commands/s-1").await;
    assert_eq!(audit.status, 200);
    assert_eq!(audit.body["target"], format!("suppression:{h}"));
    assert_eq!(audit.body["command"], "add-suppression");
    assert!(!audit.body.to_string().contains("blocked.person"), "{}", audit.body);
    // The store holds the hash and nothing of the address.
    let stored = api.deps.suppressions.get(&h, true).await.unwrap().unwrap();
    assert_eq!(
        stored.by.as_deref(),
        Some("arn:aws:iam::123456789012:role/billing-operator")
    );
    assert!(!format!("{stored:?}").contains("blocked.person"));

    // Removed by an operator; a viewer may not; a second removal finds nothing.
    let path = format!("/suppressions/{h}");
    let viewer = api
        .call_as(
            VIEWER,
            "DELETE",
            &path,
            Some(json!({"command_id": "d-0", "reason": "r"})),
        )
        .await;
    assert_eq!(viewer.status, 403);
    let remove = json!({"command_id": "d-1", "reason": "the address works again"});
    let r = api.call_as(OPERATOR, "DELETE", &path, Some(remove.clone())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["removed"]["reason"], "operator");
    assert_eq!(
        api.get("/commands/d-1").await.body["target"],
        format!("suppression:{h}")
    );
    let replay = api.call_as(OPERATOR, "DELETE", &path, Some(remove)).await;
    assert_eq!((replay.status, replay.body["replayed"].as_bool()), (200, Some(true)));
    let gone = api
        .call_as(
            OPERATOR,
            "DELETE",
            &path,
            Some(json!({"command_id": "d-2", "reason": "again"})),
        )
        .await;
    assert_eq!((gone.status, error_code(&gone)), (404, "not-suppressed"));
    assert!(entries(&api).await.is_empty());
    // A hash written with its colon escaped reaches the same entry.
    post(
        &api,
        OPERATOR,
        json!({"command_id": "s-3", "reason": "again", "email": ADDRESS}),
    )
    .await;
    let escaped = path.replace(':', "%3A");
    let r = api
        .call_as(
            OPERATOR,
            "DELETE",
            &escaped,
            Some(json!({"command_id": "d-3", "reason": "escaped"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_id_suppresses_the_customers_current_email() {
    let api = Api::new("admin-suppress-customer").await;
    api.grant(OPERATOR, "operator", "g-op").await;
    let (_, customer) = api.delivery(1);
    let r = post(
        &api,
        OPERATOR,
        json!({"command_id": "c-1", "reason": "bounced in the old system", "customer_id": customer}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let expected = hash(&api.seeded.emails[1]);
    assert_eq!(r.body["contact_hash"], expected);
    assert_eq!(r.body["customer_id"], customer);
    // The same address given directly is listed already.
    let direct = post(
        &api,
        OPERATOR,
        json!({"command_id": "c-2", "reason": "again", "email": api.seeded.emails[1]}),
    )
    .await;
    assert_eq!((direct.status, error_code(&direct)), (409, "already-suppressed"));
    let unknown = post(
        &api,
        OPERATOR,
        json!({"command_id": "c-3", "reason": "r", "customer_id": "C9999999"}),
    )
    .await;
    assert_eq!((unknown.status, error_code(&unknown)), (404, "unknown-customer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_never_the_value() {
    let api = Api::new("admin-suppress-bad").await;
    api.grant(OPERATOR, "operator", "g-op").await;
    api.grant(VIEWER, "viewer", "g-viewer").await;
    let cases = [
        (
            json!({"command_id": "b-1", "reason": "r", "email": "not an address"}),
            "invalid-email",
            "email",
        ),
        (
            json!({"command_id": "b-2", "reason": "r", "email": ADDRESS, "customer_id": "C0000001"}),
            "invalid-target",
            "customer_id",
        ),
        (json!({"command_id": "b-3", "reason": "r"}), "invalid-target", "email"),
        (
            json!({"command_id": "b-4", "email": ADDRESS}),
            "malformed-body",
            "reason",
        ),
        (
            json!({"command_id": "b-5", "reason": format!("write to {ADDRESS}"), "email": ADDRESS}),
            "invalid-reason",
            "reason",
        ),
        (
            json!({"command_id": "b-6", "reason": "r", "customer_id": "C 1"}),
            "invalid-customer-id",
            "",
        ),
        (
            json!({"command_id": "b-7", "reason": "r", "phone": "010-1234-5678"}),
            "malformed-body",
            "phone",
        ),
    ];
    for (body, code, field) in cases {
        let r = post(&api, OPERATOR, body.clone()).await;
        assert_eq!((r.status, error_code(&r)), (400, code), "{body}: {}", r.body);
        assert!(message(&r).contains(field), "{body}: {}", message(&r));
        for value in ["not an address", "blocked.person", "1234-5678"] {
            assert!(!message(&r).contains(value), "{body}: {}", message(&r));
        }
    }
    // A viewer may list but not add.
    let r = post(
        &api,
        VIEWER,
        json!({"command_id": "b-8", "reason": "r", "email": ADDRESS}),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(entries(&api).await.is_empty(), "nothing was listed");
    let r = api
        .call_as(
            OPERATOR,
            "DELETE",
            "/suppressions/kim@example.com",
            Some(json!({"command_id": "b-9", "reason": "r"})),
        )
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "invalid-hash"));
    assert!(!message(&r).contains("kim@"));
    let r = api
        .call_as(VIEWER, "GET", "/suppressions?next=kim@example.com", None)
        .await;
    assert_eq!((r.status, error_code(&r)), (400, "invalid-page-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_pages_and_a_new_email_gives_waiting_deliveries_its_hash() {
    let api = Api::new("admin-suppress-pages").await;
    api.grant(OPERATOR, "operator", "g-op").await;
    api.grant(VIEWER, "viewer", "g-viewer").await;
    for i in 0..5 {
        let email = format!("list.{i}@example.org");
        let r = post(
            &api,
            OPERATOR,
            json!({"command_id": format!("p-{i}"), "reason": "r", "email": email}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..10 {
        let path = match &next {
            Some(n) => format!("/suppressions?limit=2&next={n}"),
            None => "/suppressions?limit=2".to_owned(),
        };
        let r = api.call_as(VIEWER, "GET", &path, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for e in r.body["suppressions"].as_array().unwrap() {
            seen.push(e["contact_hash"].as_str().unwrap().to_owned());
        }
        next = r.body["next"].as_str().map(str::to_owned);
        if next.is_none() {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);

    // A customer's new email: their waiting (queued, never claimed) delivery takes its hash.
    let (id, customer) = api.delivery(0);
    let r = api
        .call_as(
            OPERATOR,
            "PUT",
            &format!("/customers/{customer}/preferences"),
            Some(json!({"command_id": "e-1", "reason": "new address", "contact": {"email": "moved.kim@example.org"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let item = api.raw(&id).await;
    assert_eq!(
        item.get("email_hash").and_then(|v| v.as_s().ok()),
        Some(&hash("moved.kim@example.org"))
    );
}
