//! The suppression list: `suppressions list` (`GET /suppressions`), `suppressions add
//! (--email-stdin | --customer ID) --reason …` (`POST /suppressions`) and `suppressions remove
//! HASH --reason …` (`DELETE /suppressions/{hash}`). An address is read from standard input,
//! never from the command line, so that it stays out of shell history and process lists; the
//! answers name the keyed hash, never the address. The API audits every change.

use std::io::Read;

use serde_json::{Value, json};

use super::command_body;
use crate::api::{Api, Failure};
use crate::cli::SuppressionsAction;
use crate::output::{Output, rows, table, text};

fn usage(message: impl Into<String>) -> Failure {
    Failure::Exit {
        code: 2,
        message: message.into(),
    }
}

/// The address on standard input: its first line, trimmed; refused when empty.
fn address(stdin: &mut dyn Read) -> Result<String, Failure> {
    let mut input = String::new();
    stdin
        .take(4096)
        .read_to_string(&mut input)
        .map_err(|_| usage("--email-stdin: standard input could not be read as UTF-8"))?;
    let line = input.lines().next().unwrap_or_default().trim().to_owned();
    if line.is_empty() {
        return Err(usage("--email-stdin: standard input holds no address"));
    }
    Ok(line)
}

/// The body of `add`: the command's id and reason, and the address or the customer.
fn add_body(
    email_stdin: bool,
    customer: Option<String>,
    reason: String,
    command_id: Option<String>,
    stdin: &mut dyn Read,
) -> Result<Value, Failure> {
    let mut body = command_body(command_id, reason);
    match (email_stdin, customer) {
        (true, None) => body["email"] = json!(address(stdin)?),
        (false, Some(c)) => body["customer_id"] = json!(c),
        _ => return Err(usage("give --email-stdin or --customer ID, one of them")),
    }
    Ok(body)
}

/// `suppressions`: listed, added or removed.
pub(crate) async fn suppressions(
    api: &Api,
    out: Output,
    action: SuppressionsAction,
    stdin: &mut dyn Read,
) -> Result<(), Failure> {
    match action {
        SuppressionsAction::List { limit, next } => {
            let mut path = format!("/suppressions?limit={}", limit.unwrap_or(25));
            if let Some(n) = next {
                path.push_str(&format!("&next={n}"));
            }
            let v = api.call("GET", &path, None).await?;
            out.print(&v, show_list(&v));
        }
        SuppressionsAction::Add {
            email_stdin,
            customer,
            reason,
            command_id,
        } => {
            let body = add_body(email_stdin, customer, reason, command_id, stdin)?;
            let v = api.call("POST", "/suppressions", Some(body)).await?;
            let head = if v["replayed"] == json!(true) {
                "already added under this command id (nothing changed now)"
            } else {
                "suppressed"
            };
            let human = format!(
                "{head}: {} (command id {})",
                text(&v["contact_hash"]),
                text(&v["command_id"])
            );
            out.print(&v, human);
        }
        SuppressionsAction::Remove {
            hash,
            reason,
            command_id,
        } => {
            let body = command_body(command_id, reason);
            let v = api.call("DELETE", &format!("/suppressions/{hash}"), Some(body)).await?;
            let head = if v["replayed"] == json!(true) {
                "already removed under this command id (nothing changed now)"
            } else {
                "removed"
            };
            let human = format!(
                "{head}: {} (was {} since {}; command id {})",
                text(&v["contact_hash"]),
                text(&v["removed"]["reason"]),
                text(&v["removed"]["created_at"]),
                text(&v["command_id"])
            );
            out.print(&v, human);
        }
    }
    Ok(())
}

fn show_list(v: &Value) -> String {
    let entries = v["suppressions"].as_array().cloned().unwrap_or_default();
    let mut human = table(
        &["HASH", "REASON", "SINCE", "SOURCE", "DELIVERY"],
        &rows(
            &entries,
            &["contact_hash", "reason", "created_at", "source", "delivery_id"],
        ),
    );
    if let Some(n) = v["next"].as_str() {
        human.push_str(&format!("\nmore: --next {n}"));
    }
    human
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_comes_from_standard_input_and_one_target_is_required() {
        let mut input: &[u8] = b"  kim@example.com \nignored\n";
        let body = add_body(true, None, "r".into(), Some("c-1".into()), &mut input)
            .ok()
            .unwrap();
        assert_eq!(
            body,
            json!({"command_id": "c-1", "reason": "r", "email": "kim@example.com"})
        );
        let mut none: &[u8] = b"";
        let body = add_body(
            false,
            Some("C0000001".into()),
            "r".into(),
            Some("c-2".into()),
            &mut none,
        )
        .ok()
        .unwrap();
        assert_eq!(body["customer_id"], "C0000001");
        assert!(add_body(true, None, "r".into(), None, &mut none).is_err(), "no address");
        assert!(add_body(false, None, "r".into(), None, &mut none).is_err(), "no target");
    }
}
