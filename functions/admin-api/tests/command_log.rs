//! The command log's rules: command ids and reasons, and the digest of a request.

use admin_api::command_log::{NewCommand, Requested, check_command_id, check_reason};
use admin_api::{ApiError, Request};

#[test]
fn command_ids_and_reasons_are_checked() {
    assert!(check_command_id("0b6f8a52-6c1e-4c1a-9d3e-2f4a5b6c7d8e").is_ok());
    assert!(check_command_id("ops:2026-12-04.resend_1").is_ok());
    for bad in ["", "has space", "slash/no", &"x".repeat(65), "ünïcode"] {
        assert!(check_command_id(bad).is_err(), "{bad:?}");
    }
    assert!(check_reason("customer called: email bounced").is_ok());
    assert!(check_reason("   ").is_err());
    assert!(check_reason(&"x".repeat(501)).is_err());
}

#[test]
fn contact_data_is_refused_as_a_command_id_or_in_a_reason_without_being_quoted() {
    for id in ["010-1234-5678", "01012345678", "+821012345678"] {
        let e = check_command_id(id).unwrap_err().to_string();
        assert!(e.contains("command_id") && !e.contains(id), "{e}");
    }
    for reason in [
        "customer kim.minsu@example.com asked again",
        "called back on 010 1234 5678",
        "+82-10-1234-5678 says the invoice never came",
    ] {
        let e = check_reason(reason).unwrap_err().to_string();
        assert!(e.contains("reason") && !domain::text::echoes(&e, reason), "{e}");
        assert!(!e.contains("1234") && !e.contains("kim.minsu"), "{e}");
    }
    assert!(check_reason("C000041 asked for a resend after ticket OPS-4411").is_ok());
}

fn request(body: &str) -> Request {
    Request {
        method: "POST".into(),
        path: "/cycles/2026-11/deliveries/C1/schedule".into(),
        body: Some(body.into()),
        ..Request::default()
    }
}

#[test]
fn a_request_is_digested_as_sent_whatever_its_field_order() {
    let a = Requested::parse(&request(
        r#"{"command_id": "c-1", "reason": "r", "available_at": "2026-12-01T00:00:00Z"}"#,
    ))
    .unwrap();
    let b = Requested::parse(&request(
        r#"{"available_at":"2026-12-01T00:00:00Z","reason":"r","command_id":"c-1"}"#,
    ))
    .unwrap();
    assert_eq!((a.command_id.as_str(), &a.digest), ("c-1", &b.digest));
    for other in [
        r#"{"command_id": "c-1", "reason": "r2", "available_at": "2026-12-01T00:00:00Z"}"#,
        r#"{"command_id": "c-1", "reason": "r", "available_at": "2026-12-01T00:00:01Z"}"#,
        r#"{"command_id": "c-1", "reason": "r"}"#,
    ] {
        assert_ne!(Requested::parse(&request(other)).unwrap().digest, a.digest, "{other}");
    }
    let mut elsewhere = request(r#"{"command_id": "c-1", "reason": "r", "available_at": "2026-12-01T00:00:00Z"}"#);
    elsewhere.path = "/cycles/2026-11/deliveries/C2/schedule".into();
    assert_ne!(Requested::parse(&elsewhere).unwrap().digest, a.digest);
    for (bad, code) in [
        ("", "missing-body"),
        ("[1]", "malformed-body"),
        ("{", "malformed-body"),
        (r#"{"reason": "r"}"#, "malformed-body"),
        (r#"{"command_id": 7}"#, "invalid-command-id"),
        (r#"{"command_id": "has space"}"#, "invalid-command-id"),
    ] {
        match Requested::parse(&request(bad)) {
            Err(ApiError::BadRequest { code: c, .. }) => assert_eq!(c, code, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn a_body_that_does_not_fit_names_the_field_not_the_value() {
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct B {
        command_id: String,
        max: u32,
    }
    let r = Requested::parse(&request(r#"{"command_id": "c", "max": "someone@example.com"}"#)).unwrap();
    let e = r.body::<B>().unwrap_err().to_string();
    assert!(
        !e.contains("example.com") && e.contains("field `max`: expected u32"),
        "{e}"
    );
    let r = Requested::parse(&request(r#"{"command_id": "c", "max": 1, "extra": 1}"#)).unwrap();
    let e = r.body::<B>().unwrap_err().to_string();
    assert!(e.contains("field `extra`: unknown field"), "{e}");
    // A field named by the value itself is not shown.
    let r = Requested::parse(&request(r#"{"command_id": "c", "max": 1, "someone@example.com": 1}"#)).unwrap();
    let e = r.body::<B>().unwrap_err().to_string();
    assert!(!e.contains("example.com") && e.contains("unknown field"), "{e}");
}

#[test]
fn the_digest_tells_commands_apart() {
    let a = NewCommand::digest("schedule", "2026-11#00001#C1", &serde_json::json!({"at": "x"}));
    assert_eq!(
        a,
        NewCommand::digest("schedule", "2026-11#00001#C1", &serde_json::json!({"at": "x"}))
    );
    assert_ne!(
        a,
        NewCommand::digest("schedule", "2026-11#00001#C1", &serde_json::json!({"at": "y"}))
    );
    assert_ne!(
        a,
        NewCommand::digest("schedule", "2026-11#00001#C2", &serde_json::json!({"at": "x"}))
    );
}
