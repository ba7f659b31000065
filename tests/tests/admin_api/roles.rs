//! The platform roles: every route of the table answers each role as the table says (a
//! refusal is a 403 that names the role needed and the caller's, and changes nothing); a role
//! change is an administrator's audited, idempotent command that takes effect on the next
//! request; the bootstrap administrator cannot be demoted; reads are logged with the caller
//! masked.

use std::io::Write;
use std::sync::{Arc, Mutex};

use admin_api::access::{ROUTES, Route};
use admin_api::identity::Principal;
use admin_api::roles::Role;
use chrono::{DateTime, Utc};
use integration_tests::admin::{ADMINISTRATOR, Api, OPERATOR, VIEWER, error_code};
use serde_json::{Value, json};

/// 10:00 in Seoul on 16 December: cycle 2026-11's deliveries are being sent.
fn ten() -> DateTime<Utc> {
    "2026-12-16T01:00:00Z".parse().unwrap()
}

fn message(r: &admin_api::Response) -> &str {
    r.body["error"]["message"].as_str().unwrap_or_default()
}

fn principal(caller: &str) -> String {
    Principal::of(caller).unwrap().arn
}

/// A request for `route`, its placeholders filled, with a body that would be applied were the
/// role not checked (command id `id`; `principal` for the roles route).
fn request_for(route: &Route, customer: &str, principal: &str, id: &str) -> (String, Option<Value>) {
    let path = route
        .pattern
        .replace("{cycle}", "2026-11")
        .replace("{customer}", customer)
        .replace("{command_id}", "g-viewer")
        .replace("{version}", "v1")
        .replace("{name}", "channel-policy")
        .replace("{queue}", "delivery-dlq")
        .replace("{principal+}", principal);
    let path = if route.pattern == "/audit" {
        format!("{path}?day={}", Utc::now().format("%Y-%m-%d"))
    } else {
        path
    };
    if route.method == "GET" {
        return (path, None);
    }
    let mut body = json!({"command_id": id, "reason": "roles test"});
    if route.pattern.ends_with("/schedule") {
        body["available_at"] = json!("2026-12-16T01:00:00Z");
    }
    if route.pattern.starts_with("/settings") {
        body["value"] = json!("sms");
    }
    if route.pattern.starts_with("/roles") {
        body["role"] = json!("administrator");
    }
    (path, Some(body))
}

/// What a refused command could have changed: the delivery, the settings, the roles.
async fn state(api: &Api, delivery: &str) -> (Value, Value, Value) {
    let item: std::collections::BTreeMap<String, String> = api
        .raw(delivery)
        .await
        .into_iter()
        .map(|(k, v)| (k, format!("{v:?}")))
        .collect();
    let settings = api.get("/settings").await.body;
    let roles = api.get("/roles").await.body;
    (json!(item), settings, roles)
}

#[tokio::test]
async fn each_role_may_what_the_route_table_says_and_a_refusal_changes_nothing() {
    let api = Api::new("admin-roles").await;
    let (id0, c0) = api.delivery(0);
    let (id1, c1) = api.delivery(1);
    api.make_ready(&id0).await;
    api.make_ready(&id1).await;

    // No role yet: even a read is refused, saying which role it needs and that there is none.
    let r = api.call_as(VIEWER, "GET", "/cycles/2026-11", None).await;
    assert_eq!((r.status, error_code(&r)), (403, "forbidden"), "{}", r.body);
    assert!(
        message(&r).contains("GET /cycles/{cycle} needs the viewer role") && message(&r).contains("has no role"),
        "{}",
        r.body
    );
    assert_eq!(api.grant(VIEWER, "viewer", "g-viewer").await.status, 200);
    assert_eq!(api.grant(OPERATOR, "operator", "g-operator").await.status, 200);

    // Every route of the table, as a viewer then as an operator: the reads are served, every
    // command above the caller's role is a 403 naming both roles, with no record and no change.
    for (caller, role) in [(VIEWER, Role::Viewer), (OPERATOR, Role::Operator)] {
        let before = state(&api, &id0).await;
        for (i, route) in ROUTES.iter().enumerate() {
            let id = format!("{}-{i}", role.as_str());
            let (path, body) = request_for(route, &c0, &principal(caller), &id);
            if route.needs <= role && route.method != "GET" {
                continue; // the commands a role may give are given below
            }
            let r = api.call_as_at(caller, route.method, &path, body, ten()).await;
            if route.needs > role {
                assert_eq!(
                    (r.status, error_code(&r)),
                    (403, "forbidden"),
                    "{role} {} {path}: {}",
                    route.method,
                    r.body
                );
                let why = format!(
                    "{} {} needs the {} role; the caller ({}) has the {role} role",
                    route.method,
                    route.pattern,
                    route.needs,
                    principal(caller)
                );
                assert_eq!(message(&r), why);
                assert_eq!(
                    api.get(&format!("/commands/{id}")).await.status,
                    404,
                    "nothing recorded"
                );
            } else {
                assert_eq!(r.status, 200, "{role} {path}: {}", r.body);
            }
        }
        assert_eq!(state(&api, &id0).await, before, "{role}: the refusals changed nothing");
    }

    // The operator's commands: hold, schedule, convert-to-sms, resend; confirm is theirs too
    // (refused here for the delivery's state, not for the role).
    let on = |customer: &str, verb: &str| format!("/cycles/2026-11/deliveries/{customer}/{verb}");
    let cmd = |id: &str| json!({"command_id": id, "reason": "customer called"});
    let as_operator =
        async |path: String, body: Value| api.call_as_at(OPERATOR, "POST", &path, Some(body), ten()).await;
    let r = as_operator(on(&c0, "hold"), cmd("o-hold")).await;
    assert_eq!((r.status, &r.body["state"]), (200, &json!("HELD")), "{}", r.body);
    let mut schedule = cmd("o-schedule");
    schedule["available_at"] = json!("2026-12-16T03:00:00Z");
    let r = as_operator(on(&c0, "schedule"), schedule).await;
    assert_eq!((r.status, &r.body["state"]), (200, &json!("READY")), "{}", r.body);
    let r = as_operator(on(&c0, "convert-to-sms"), cmd("o-sms")).await;
    assert_eq!((r.status, &r.body["channel"]), (200, &json!("sms")), "{}", r.body);
    let r = as_operator(on(&c1, "hold"), cmd("o-hold-1")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = as_operator(on(&c1, "resend"), cmd("o-resend")).await;
    assert_eq!((r.status, &r.body["state"]), (200, &json!("READY")), "{}", r.body);
    let r = as_operator(on(&c0, "confirm"), cmd("o-confirm")).await;
    assert_eq!((r.status, error_code(&r)), (409, "wrong-state"), "{}", r.body);
    let audit = api.get("/commands/o-hold").await;
    assert_eq!(audit.body["who"], OPERATOR, "the audit keeps the verified ARN");

    // The administrator's: force-send, past the slots.
    let r = api
        .call_as_at(
            ADMINISTRATOR,
            "POST",
            &on(&c0, "force-send"),
            Some(cmd("a-force")),
            ten(),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["command"]),
        (200, &json!("force-send")),
        "{}",
        r.body
    );

    // A caller that is neither a role session nor a user (the account's root) has no role.
    let r = api
        .call_as("arn:aws:iam::123456789012:root", "GET", "/cycles/2026-11", None)
        .await;
    assert_eq!((r.status, error_code(&r)), (403, "forbidden"), "{}", r.body);
}

#[tokio::test]
async fn a_role_change_is_audited_idempotent_and_takes_effect_on_the_next_request() {
    let api = Api::new("admin-role-change").await;
    let (id0, c0) = api.delivery(0);
    api.make_ready(&id0).await;
    let viewer = principal(VIEWER);
    let read = async || api.call_as(VIEWER, "GET", "/cycles/2026-11", None).await.status;
    assert_eq!(read().await, 403);

    // Granted: audited, answered with the previous role; a replay changes nothing more.
    let r = api.grant(VIEWER, "viewer", "r-1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            &r.body["principal"],
            &r.body["role"],
            &r.body["previous"],
            &r.body["revision"]
        ),
        (&json!(viewer), &json!("viewer"), &json!("none"), &json!(1))
    );
    assert_eq!(read().await, 200, "in effect on the next request");
    let again = api.grant(VIEWER, "viewer", "r-1").await;
    assert_eq!((again.status, &again.body["replayed"]), (200, &json!(true)));
    assert_eq!(api.get("/roles").await.body["revision"], 1, "the replay wrote nothing");
    let reused = api.grant(VIEWER, "operator", "r-1").await;
    assert_eq!((reused.status, error_code(&reused)), (409, "command-id-reused"));
    let audit = api.get("/commands/r-1").await;
    assert_eq!(
        (
            &audit.body["command"],
            &audit.body["target"],
            &audit.body["who"],
            &audit.body["why"]
        ),
        (
            &json!("set-role"),
            &json!(format!("role:{viewer}")),
            &json!(ADMINISTRATOR),
            &json!("roles test")
        )
    );
    let day = api.get(&format!("/audit?day={}", Utc::now().format("%Y-%m-%d"))).await;
    assert!(
        day.body["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["command_id"] == "r-1"),
        "{}",
        day.body
    );

    // A viewer may not hold; made an operator, the next request may.
    let hold = format!("/cycles/2026-11/deliveries/{c0}/hold");
    let body = json!({"command_id": "h-1", "reason": "bill disputed"});
    let r = api.call_as_at(VIEWER, "POST", &hold, Some(body.clone()), ten()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(api.raw(&id0).await["state"].as_s().unwrap(), "READY");
    assert_eq!(api.grant(VIEWER, "operator", "r-2").await.body["previous"], "viewer");
    let r = api.call_as_at(VIEWER, "POST", &hold, Some(body), ten()).await;
    assert_eq!((r.status, &r.body["state"]), (200, &json!("HELD")), "{}", r.body);

    // An operator cannot change roles, not even its own; nothing changes.
    let roles = api.get("/roles").await.body;
    for target in [VIEWER, OPERATOR, ADMINISTRATOR] {
        let r = api
            .call_as(
                VIEWER,
                "PUT",
                &format!("/roles/{}", principal(target)),
                Some(json!({"command_id": "x-1", "reason": "r", "role": "administrator"})),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(message(&r).contains("needs the administrator role"), "{}", r.body);
    }
    assert_eq!(api.get("/roles").await.body, roles);
    assert_eq!(api.get("/commands/x-1").await.status, 404);

    // Removed: refused again on the next request.
    let r = api.grant(VIEWER, "none", "r-3").await;
    assert_eq!((r.status, &r.body["previous"]), (200, &json!("operator")), "{}", r.body);
    assert_eq!(read().await, 403);

    // The bootstrap administrator cannot be demoted, by itself or by another administrator,
    // named by its role, a path or one of its sessions; it stays administrator.
    assert_eq!(api.grant(OPERATOR, "administrator", "r-4").await.status, 200);
    for (caller, target, id) in [
        (ADMINISTRATOR, "arn:aws:iam::123456789012:role/billing-admin", "b-1"),
        (OPERATOR, "arn:aws:iam::123456789012:role/ops/billing-admin", "b-2"),
        (OPERATOR, ADMINISTRATOR, "b-3"),
    ] {
        let body = json!({"command_id": id, "reason": "r", "role": "viewer"});
        let r = api
            .call_as(caller, "PUT", &format!("/roles/{target}"), Some(body))
            .await;
        assert_eq!(
            (r.status, error_code(&r)),
            (409, "bootstrap-administrator"),
            "{target}: {}",
            r.body
        );
        assert_eq!(api.get(&format!("/commands/{id}")).await.status, 404);
    }
    let list = api.get("/roles").await;
    assert_eq!(list.body["you"]["role"], "administrator");
    assert_eq!(list.body["roles"][0]["principal"], principal(ADMINISTRATOR));
    assert_eq!(list.body["roles"][0]["role"], "administrator");

    // Principals are named without their path, also when percent-encoded; others are refused.
    let body = |id: &str, role: &str| json!({"command_id": id, "reason": "r", "role": role});
    let r = api
        .put(
            "/roles/arn:aws:iam::123456789012:role/team/billing-viewer",
            body("p-1", "viewer"),
        )
        .await;
    assert_eq!((r.status, &r.body["principal"]), (200, &json!(viewer)), "{}", r.body);
    let r = api
        .put(
            "/roles/arn%3Aaws%3Aiam%3A%3A123456789012%3Auser%2Fops%2Fhan",
            body("p-2", "viewer"),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["principal"]),
        (200, &json!("arn:aws:iam::123456789012:user/han")),
        "{}",
        r.body
    );
    for (path, code) in [
        ("/roles/not-an-arn", "invalid-principal"),
        ("/roles/arn:aws:iam::123456789012:root", "invalid-principal"),
        // IAM allows `@` and `+` in names; a name shaped like contact data is not granted,
        // and the answer does not quote it.
        (
            "/roles/arn:aws:iam::123456789012:role/kim.minsu@example.com",
            "invalid-principal",
        ),
        (
            "/roles/arn:aws:iam::123456789012:user/+821012345678",
            "invalid-principal",
        ),
    ] {
        let r = api.put(path, body("p-3", "viewer")).await;
        assert_eq!((r.status, error_code(&r)), (400, code), "{path}: {}", r.body);
        let text = r.body.to_string();
        assert!(!text.contains("kim.minsu") && !text.contains("1012345678"), "{text}");
    }
    let r = api.put(&format!("/roles/{viewer}"), body("p-4", "owner")).await;
    assert_eq!((r.status, error_code(&r)), (400, "invalid-role"), "{}", r.body);
    assert_eq!(read().await, 200, "the path-named grant is the session's role");
}

/// The log lines written while it runs, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn reads_are_logged_with_the_route_the_role_and_the_caller_masked() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let api = Api::new("admin-read-log").await;
    assert_eq!(api.grant(OPERATOR, "operator", "g-1").await.status, 200);
    let (_, customer) = api.delivery(0);
    let r = api
        .call_as(OPERATOR, "GET", &format!("/cycles/2026-11/deliveries/{customer}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let refused = api.call_as(OPERATOR, "PUT", "/settings/channel-policy", None).await;
    assert_eq!(refused.status, 403);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let session = OPERATOR.rsplit('/').next().unwrap();
    assert!(!text.contains(session), "the session name is never in clear");
    assert!(!text.contains(ADMINISTRATOR), "nor any caller's ARN");
    let masked = Principal::of(OPERATOR).unwrap().masked();
    assert!(masked.starts_with("role/billing-operator session#"), "{masked}");
    let read = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "read" && l["fields"]["route"] == "/cycles/{cycle}/deliveries/{customer}")
        .unwrap_or_else(|| panic!("a read line: {text}"));
    assert_eq!(
        (&read["fields"]["role"], &read["fields"]["caller"]),
        (&json!("operator"), &json!(masked))
    );
}
