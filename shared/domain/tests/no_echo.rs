//! Every parser and decoder of the domain, fed personal data and long text where an id, a
//! cycle, a channel or a number belongs: the error names the field and the expected shape,
//! never the value, and is bounded.

use domain::decode::{self, MAX_DECODE_ERROR_BYTES};
use domain::delivery::{DeadLetter, DeliveryMessage, parse_delivery_id};
use domain::dispatch::ChannelPolicy;
use domain::text::{MAX_REASON_BYTES, echoes};
use domain::{Customer, CustomerId, Cycle, DeliveryId, QuietWindow};

/// Values a user may put in the wrong field: emails, phone numbers in every usual format,
/// a name, and text far longer than any field.
fn corpus() -> Vec<String> {
    vec![
        "kim.minjun.1987@example-mail.co.kr".to_owned(),
        "+82 10-1234-5678".to_owned(),
        "010-1234-5678".to_owned(),
        "01012345678".to_owned(),
        "(010) 1234 5678".to_owned(),
        "김민준".to_owned(),
        "Kim Minjun".to_owned(),
        "p".repeat(10_000),
        format!("2026-11#00001#{}", "kim.minjun.1987@example-mail.co.kr"),
    ]
}

fn assert_clean(what: &str, message: &str, value: &str) {
    assert!(!echoes(message, value), "{what}: {value:?} echoed in {message:?}");
    assert!(message.len() <= MAX_REASON_BYTES, "{what}: {} bytes", message.len());
}

#[test]
fn the_text_parsers_name_the_shape_not_the_value() {
    for v in corpus() {
        let e = DeliveryId::parse(&v).unwrap_err().to_string();
        assert!(e.starts_with("delivery_id is not cycle#shard#customer"), "{e}");
        assert_clean("DeliveryId", &e, &v);
        assert_clean("parse_delivery_id", &parse_delivery_id(&v).unwrap_err(), &v);
        let e = v.parse::<Cycle>().unwrap_err().to_string();
        assert!(e.contains("YYYY-MM"), "{e}");
        assert_clean("Cycle", &e, &v);
        let e = v.parse::<QuietWindow>().unwrap_err().to_string();
        assert!(e.contains("HH:MM-HH:MM"), "{e}");
        assert_clean("QuietWindow", &e, &v);
        let e = v.parse::<ChannelPolicy>().unwrap_err().to_string();
        assert!(e.contains("email and sms"), "{e}");
        assert_clean("ChannelPolicy", &e, &v);
        // No phone number, email or spaced name is a customer id.
        let e = CustomerId::new(v.clone()).unwrap_err().to_string();
        assert_clean("CustomerId", &e, &v);
    }
}

#[test]
fn queue_messages_name_the_field_not_the_value() {
    for v in corpus() {
        let json = serde_json::json!({"delivery_id": "2026-11#00001#C1", "channel": v, "run_id": "r"});
        let e = decode::from_value::<DeliveryMessage>(json).unwrap_err().to_string();
        assert_eq!(e, "field `channel`: unknown variant, expected email or sms");
        let json = serde_json::json!({"delivery_id": "2026-11#00001#C1", "channel": "sms", "run_id": "r", "copies": v});
        let e = decode::from_value::<DeliveryMessage>(json).unwrap_err().to_string();
        assert_eq!(e, "field `copies`: expected u32");
        let json = serde_json::json!({"delivery_id": "x", "channel": "sms", "attempts": v});
        let e = decode::from_value::<DeadLetter>(json).unwrap_err().to_string();
        assert_eq!(e, "field `attempts`: expected u32");
        // An unknown field whose name is the value.
        let mut json = serde_json::json!({"delivery_id": "x", "channel": "sms", "run_id": "r"});
        json[v.as_str()] = serde_json::json!(1);
        let e = decode::from_value::<DeliveryMessage>(json).unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
        assert_clean("unknown field", &e, &v);
        assert!(e.len() <= MAX_DECODE_ERROR_BYTES);
    }
}

#[test]
fn text_typed_fields_name_the_field_and_the_shape() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Input {
        cycle: Option<Cycle>,
        quiet: Option<QuietWindow>,
        policy: Option<ChannelPolicy>,
        customer: Option<CustomerId>,
    }
    for v in corpus() {
        for (field, expected) in [
            ("cycle", "field `cycle`: invalid value, expected a cycle as YYYY-MM"),
            (
                "quiet",
                "field `quiet`: invalid value, expected a quiet window as HH:MM-HH:MM",
            ),
            (
                "policy",
                "field `policy`: invalid value, expected a channel policy: email, sms, email,sms or none",
            ),
        ] {
            let json = serde_json::json!({ field: v });
            let e = decode::from_value::<Input>(json.clone()).unwrap_err().to_string();
            assert_eq!(e, expected);
            // Plain serde_json, outside the decoder, does not quote the text either.
            let plain = serde_json::from_value::<Input>(json).unwrap_err().to_string();
            assert_clean(field, &plain, &v);
        }
        if CustomerId::new(v.clone()).is_err() {
            let json = serde_json::json!({ "customer": v });
            let e = decode::from_value::<Input>(json.clone()).unwrap_err().to_string();
            assert_eq!(
                e,
                "field `customer`: invalid value, expected a customer id: a letter, then up to 63 letters, digits, '-' or '_'"
            );
            let plain = serde_json::from_value::<Input>(json).unwrap_err().to_string();
            assert_clean("customer", &plain, &v);
        }
    }
}

#[test]
fn a_customer_record_names_the_field_not_the_value() {
    let phone_as_number = serde_json::json!(1_012_345_678u32);
    let e = decode::from_value::<Customer>(serde_json::json!({ "send_day": phone_as_number }))
        .unwrap_err()
        .to_string();
    assert!(!e.contains("1012345678"), "{e}");
    for v in corpus() {
        let e = decode::from_value::<Customer>(serde_json::json!({ "customer_id": "C1", "joined_on": v }))
            .unwrap_err()
            .to_string();
        assert_clean("Customer", &e, &v);
    }
}

#[test]
fn a_message_or_a_dead_letter_holds_ids_only_once_checked() {
    let good = DeliveryMessage {
        delivery_id: "2026-11#00001#C1".into(),
        channel: domain::Channel::Email,
        run_id: "dispatch-2026-12-15T00:00:00Z".into(),
        copies: 0,
    };
    assert_eq!(good.check().unwrap().canonical(), "2026-11#00001#C1");
    let letter = DeadLetter {
        delivery_id: "2026-11#00001#C1".into(),
        channel: domain::Channel::Sms,
        run_id: Some("dispatch-2026-12-15T00:00:00Z".into()),
        attempts: Some(3),
        last_error: Some("MessageRejected".into()),
        dead_at: Some("2026-12-15T01:02:03Z".into()),
    };
    assert!(letter.check().is_ok());
    for v in corpus() {
        let e = DeliveryMessage {
            run_id: v.clone(),
            ..good.clone()
        }
        .check()
        .unwrap_err();
        assert!(e.starts_with("run_id must be"), "{e}");
        assert_clean("DeliveryMessage", &e, &v);
        for (field, bad) in [
            (
                "delivery_id",
                DeadLetter {
                    delivery_id: v.clone(),
                    ..letter.clone()
                },
            ),
            (
                "run_id",
                DeadLetter {
                    run_id: Some(v.clone()),
                    ..letter.clone()
                },
            ),
            (
                "last_error",
                DeadLetter {
                    last_error: Some(v.clone()),
                    ..letter.clone()
                },
            ),
            (
                "dead_at",
                DeadLetter {
                    dead_at: Some(v.clone()),
                    ..letter.clone()
                },
            ),
        ] {
            let e = bad.check().unwrap_err();
            assert!(e.starts_with(field), "{field}: {e}");
            assert_clean(field, &e, &v);
        }
    }
}
