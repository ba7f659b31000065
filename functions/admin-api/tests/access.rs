//! Who may use which route, and who the caller is: the route table against the roles the
//! operators' documentation promises, the routing of paths, and the caller's principal and
//! masked form.

use admin_api::DELIVERY_COMMANDS;
use admin_api::access::{Endpoint, Found, ROUTES, find};
use admin_api::identity::{Kind, Principal};
use admin_api::roles::Role;

/// Every route and its role, as docs/admin-api.md's roles table says, written out here so
/// that a change to the table is a change to this list too.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "/cycles", "viewer"),
    ("GET", "/cycles/{cycle}", "viewer"),
    ("GET", "/cycles/{cycle}/funnel", "viewer"),
    ("GET", "/cycles/{cycle}/failures", "viewer"),
    ("GET", "/cycles/{cycle}/deliveries/{customer}", "viewer"),
    ("POST", "/cycles/{cycle}/deliveries/{customer}/hold", "operator"),
    ("POST", "/cycles/{cycle}/deliveries/{customer}/schedule", "operator"),
    ("POST", "/cycles/{cycle}/deliveries/{customer}/resend", "operator"),
    (
        "POST",
        "/cycles/{cycle}/deliveries/{customer}/convert-to-sms",
        "operator",
    ),
    ("POST", "/cycles/{cycle}/deliveries/{customer}/confirm", "operator"),
    (
        "POST",
        "/cycles/{cycle}/deliveries/{customer}/force-send",
        "administrator",
    ),
    ("GET", "/commands/{command_id}", "viewer"),
    ("GET", "/audit", "viewer"),
    ("GET", "/templates", "viewer"),
    ("GET", "/templates/{version}/preview", "viewer"),
    ("POST", "/templates/{version}/activate", "administrator"),
    ("GET", "/settings", "viewer"),
    ("GET", "/settings/{name}", "viewer"),
    ("PUT", "/settings/{name}", "administrator"),
    ("GET", "/queues", "viewer"),
    ("GET", "/queues/{queue}", "viewer"),
    ("POST", "/queues/{queue}/redrive", "administrator"),
    ("GET", "/roles", "viewer"),
    ("PUT", "/roles/{principal+}", "administrator"),
    ("PUT", "/customers/{customer}/preferences", "operator"),
    ("GET", "/suppressions", "viewer"),
    ("POST", "/suppressions", "operator"),
    ("DELETE", "/suppressions/{hash}", "operator"),
    ("GET", "/cycles/{cycle}/bills/{customer}/corrections", "viewer"),
    ("POST", "/cycles/{cycle}/bills/{customer}/corrections", "administrator"),
];

#[test]
fn every_route_needs_the_role_the_documentation_names() {
    let table: Vec<(&str, &str, &str)> = ROUTES.iter().map(|r| (r.method, r.pattern, r.needs.as_str())).collect();
    assert_eq!(table, EXPECTED);
    // Every read is a viewer's; nothing that writes is.
    for r in ROUTES {
        assert_eq!(r.method == "GET", r.needs == Role::Viewer, "{} {}", r.method, r.pattern);
    }
    // Every delivery command has its route, and the route runs that command.
    for verb in DELIVERY_COMMANDS {
        let found = ROUTES
            .iter()
            .find(|r| r.pattern.ends_with(&format!("/{verb}")))
            .unwrap_or_else(|| panic!("no route for {verb}"));
        assert_eq!(found.endpoint, Endpoint::DeliveryCommand(verb));
    }
    assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Administrator);
    assert_eq!(Role::parse("operator"), Some(Role::Operator));
    assert_eq!(Role::parse("root"), None);
}

#[test]
fn a_path_finds_its_route_and_its_values() {
    let Found::Route(r, p) = find("POST", &["cycles", "2026-11", "deliveries", "C0000001", "force-send"]) else {
        panic!("force-send is a route");
    };
    assert_eq!(
        (r.needs, p.get("cycle"), p.get("customer")),
        (Role::Administrator, "2026-11", "C0000001")
    );
    let Found::Route(r, p) = find(
        "PUT",
        &["roles", "arn:aws:iam::123456789012:role", "ops", "billing-viewer"],
    ) else {
        panic!("a principal's path is the rest of the path");
    };
    assert_eq!(r.endpoint, Endpoint::SetRole);
    assert_eq!(p.get("principal"), "arn:aws:iam::123456789012:role/ops/billing-viewer");
    assert!(matches!(find("DELETE", &["cycles", "2026-11"]), Found::WrongMethod));
    assert!(matches!(find("PUT", &["roles"]), Found::WrongMethod));
    assert!(matches!(find("GET", &["nowhere"]), Found::Nothing));
    assert!(matches!(
        find("POST", &["cycles", "2026-11", "deliveries", "C1", "delete"]),
        Found::Nothing
    ));
    assert!(matches!(
        find("GET", &["cycles", "2026-11", "funnel", "x"]),
        Found::Nothing
    ));
}

#[test]
fn a_caller_is_the_role_or_user_behind_its_arn() {
    let session = Principal::of("arn:aws:sts::123456789012:assumed-role/billing-operator/kim@example.com").unwrap();
    assert_eq!(session.arn, "arn:aws:iam::123456789012:role/billing-operator");
    assert_eq!(
        (session.kind, session.session.as_deref()),
        (Kind::Role, Some("kim@example.com"))
    );
    // A role's path is not part of the principal: a session's ARN never carries it.
    for arn in [
        "arn:aws:iam::123456789012:role/billing-operator",
        "arn:aws:iam::123456789012:role/ops/team/billing-operator",
    ] {
        assert_eq!(Principal::of(arn).unwrap().arn, session.arn, "{arn}");
    }
    let user = Principal::of("arn:aws:iam::123456789012:user/ops/han").unwrap();
    assert_eq!(
        (user.arn.as_str(), user.kind),
        ("arn:aws:iam::123456789012:user/han", Kind::User)
    );
    let china = Principal::of("arn:aws-cn:sts::123456789012:assumed-role/admin/s1").unwrap();
    assert_eq!(china.arn, "arn:aws-cn:iam::123456789012:role/admin");
    for not_one in [
        "",
        "kim@example.com",
        "arn:aws:iam::123456789012:root",
        "arn:aws:sts::123456789012:federated-user/kim",
        "arn:aws:iam::12345:role/short-account",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role/bad name",
        "arn:aws:sts::123456789012:assumed-role/only-role",
        "arn:aws:s3:::bucket/role/x",
    ] {
        assert_eq!(Principal::of(not_one), None, "{not_one}");
    }
}

#[test]
fn the_logs_name_the_role_and_a_hash_of_the_session_never_the_session() {
    let p = Principal::of("arn:aws:sts::123456789012:assumed-role/billing-operator/kim@example.com").unwrap();
    let masked = p.masked();
    assert!(masked.starts_with("role/billing-operator session#"), "{masked}");
    assert!(!masked.contains("kim"), "{masked}");
    assert_eq!(masked, p.masked(), "stable, so one operator's lines can be followed");
    let other = Principal::of("arn:aws:sts::123456789012:assumed-role/billing-operator/lee").unwrap();
    assert_ne!(masked, other.masked());
    let user = Principal::of("arn:aws:iam::123456789012:user/kim@example.com").unwrap();
    assert!(user.masked().starts_with("user#") && !user.masked().contains("kim"));
    let role = Principal::of("arn:aws:iam::123456789012:role/ops@example.com").unwrap();
    assert!(!role.masked().contains("ops@"), "{}", role.masked());
    let phone = Principal::of("arn:aws:iam::123456789012:role/010-1234-5678").unwrap();
    assert!(!phone.masked().contains("1234"), "{}", phone.masked());
    let unknown = admin_api::Caller {
        arn: "arn:aws:iam::123456789012:root".into(),
    };
    assert!(unknown.masked().starts_with("unknown#") && !unknown.masked().contains("123456789012"));
}
