//! A customer's own preferences, changed for them (`preferences CUSTOMER --send-day 20 --dnd
//! 4,5 --channel sms --contact-stdin --reason …`): `PUT /customers/{customer}/preferences`.
//! Contact data is read from standard input as JSON, never from the command line, so that
//! it stays out of shell history and process lists; the answer names the fields changed and
//! what happened to each delivery not yet sent, never a value.

use std::io::Read;

use serde_json::{Map, Value, json};

use super::{command_body, set_head};
use crate::api::{Api, Failure};
use crate::output::{Output, rows, table};

/// What the command line asks to change.
pub(crate) struct Change {
    pub(crate) customer: String,
    pub(crate) dnd: Option<String>,
    pub(crate) send_day: Option<u32>,
    pub(crate) channel: Option<String>,
    pub(crate) contact_stdin: bool,
    pub(crate) reason: String,
    pub(crate) command_id: Option<String>,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Exit {
        code: 2,
        message: message.into(),
    }
}

/// `--dnd 4,5` → `[4, 5]`; `--dnd none` → `[]`.
fn slots(text: &str) -> Result<Vec<u8>, Failure> {
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|s| {
            s.trim()
                .parse::<u8>()
                .ok()
                .filter(|k| *k < 12)
                .ok_or_else(|| usage("--dnd takes slot numbers 0 to 11 separated by commas, or none"))
        })
        .collect()
}

/// The contact object from standard input: `{"name", "email", "phone"}`, any of them.
fn contact(input: &str) -> Result<Value, Failure> {
    let v: Value =
        serde_json::from_str(input).map_err(|_| usage("--contact-stdin: standard input is not a JSON object"))?;
    let Value::Object(fields) = &v else {
        return Err(usage("--contact-stdin: standard input is not a JSON object"));
    };
    if let Some(k) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "name" | "email" | "phone"))
    {
        let k = if k.len() <= 20 && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            k.as_str()
        } else {
            "(unnamed)"
        };
        return Err(usage(format!(
            "--contact-stdin: unknown field {k}; the contact has name, email and phone"
        )));
    }
    Ok(v)
}

/// The request body for `change`, reading the contact from `stdin` when asked.
fn body(change: &Change, stdin: &mut dyn Read) -> Result<Value, Failure> {
    let mut body = command_body(change.command_id.clone(), change.reason.clone());
    let mut fields = Map::new();
    if let Some(d) = &change.dnd {
        fields.insert("dnd".into(), json!(slots(d)?));
    }
    if let Some(day) = change.send_day {
        fields.insert("send_day".into(), json!(day));
    }
    if let Some(c) = &change.channel {
        fields.insert("preferred_channel".into(), json!(c));
    }
    if change.contact_stdin {
        let mut text = String::new();
        stdin
            .read_to_string(&mut text)
            .map_err(|_| usage("--contact-stdin: standard input could not be read as UTF-8"))?;
        fields.insert("contact".into(), contact(&text)?);
    }
    if fields.is_empty() {
        return Err(usage(
            "nothing to change: give --dnd, --send-day, --channel or --contact-stdin",
        ));
    }
    if let Value::Object(b) = &mut body {
        b.extend(fields);
    }
    Ok(body)
}

/// `preferences`: sends the change and prints the fields changed and each delivery's fate.
pub(crate) async fn preferences(api: &Api, out: Output, change: Change) -> Result<(), Failure> {
    let body = body(&change, &mut std::io::stdin())?;
    let path = format!("/customers/{}/preferences", change.customer);
    let v = api.call("PUT", &path, Some(body)).await?;
    out.print(&v, show(&v));
    Ok(())
}

fn show(v: &Value) -> String {
    let changed: Vec<&str> = v["changed"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let changed = if changed.is_empty() {
        "nothing (the preferences were already so)".to_owned()
    } else {
        changed.join(", ")
    };
    let deliveries = v["deliveries"].as_array().cloned().unwrap_or_default();
    format!(
        "{}\nchanged: {changed}\n\n{}",
        set_head(v),
        table(
            &["DELIVERY", "OUTCOME", "STATE", "SEND DATE", "AVAILABLE AT", "NOTE"],
            &rows(
                &deliveries,
                &["delivery_id", "outcome", "state", "send_date", "available_at", "note"]
            ),
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(r: Result<Value, Failure>) -> Value {
        match r {
            Ok(v) => v,
            Err(_) => panic!("the body was refused"),
        }
    }

    fn change() -> Change {
        Change {
            customer: "C0000001".into(),
            dnd: None,
            send_day: None,
            channel: None,
            contact_stdin: false,
            reason: "customer asked".into(),
            command_id: Some("c-1".into()),
        }
    }

    #[test]
    fn the_body_carries_only_what_was_given() {
        let mut c = change();
        c.dnd = Some("4, 5".into());
        c.send_day = Some(20);
        let b = ok(body(&c, &mut std::io::empty()));
        assert_eq!(b["dnd"], json!([4, 5]));
        assert_eq!(b["send_day"], json!(20));
        assert!(b.get("preferred_channel").is_none() && b.get("contact").is_none());
        assert_eq!(b["command_id"], json!("c-1"));
        c.dnd = Some("none".into());
        assert_eq!(ok(body(&c, &mut std::io::empty()))["dnd"], json!([]));
    }

    #[test]
    fn contact_comes_from_stdin_and_bad_input_names_no_value() {
        let mut c = change();
        c.contact_stdin = true;
        let mut input: &[u8] = br#"{"email": "kim@example.kr"}"#;
        assert_eq!(ok(body(&c, &mut input))["contact"]["email"], json!("kim@example.kr"));
        for bad in [
            &b"kim@example.kr"[..],
            br#"{"mail": "kim@example.kr"}"#,
            br#"{"kim@example.kr": 1}"#,
        ] {
            let mut input = bad;
            let Err(Failure::Exit { code, message }) = body(&c, &mut input) else {
                panic!("refused")
            };
            assert_eq!(code, 2);
            assert!(!message.contains("kim@"), "{message}");
        }
    }

    #[test]
    fn nothing_to_change_and_bad_slots_are_refused() {
        assert!(body(&change(), &mut std::io::empty()).is_err());
        let mut c = change();
        c.dnd = Some("12".into());
        assert!(body(&c, &mut std::io::empty()).is_err());
    }
}
