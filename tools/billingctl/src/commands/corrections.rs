//! Corrections of settled bills: `corrections add --cycle C --customer ID (--credit N |
//! --debit N | --rerate VERSION) --reason …` (`POST /cycles/{cycle}/bills/{customer}/corrections`,
//! administrators) and `corrections list --cycle C --customer ID` (`GET` of the same path). The
//! API keeps the bill, records the correction, renders the corrected invoice and sends it once
//! through the bill's delivery (docs/corrections.md).

use serde_json::{Value, json};

use super::command_body;
use crate::api::{Api, Failure};
use crate::cli::CorrectionsAction;
use crate::output::{Output, text};

fn path(cycle: &str, customer: &str) -> String {
    format!("/cycles/{cycle}/bills/{customer}/corrections")
}

/// The body of `add`: exactly one of a credit, a debit or a re-rating.
pub(crate) fn add_body(
    credit: Option<i64>,
    debit: Option<i64>,
    rerate: Option<String>,
    reason: String,
    command_id: Option<String>,
) -> Result<Value, Failure> {
    let mut body = command_body(command_id, reason);
    match (credit, debit, rerate) {
        (Some(n), None, None) => {
            body["kind"] = json!("credit");
            body["amount_won"] = json!(n);
        }
        (None, Some(n), None) => {
            body["kind"] = json!("debit");
            body["amount_won"] = json!(n);
        }
        (None, None, Some(v)) => {
            body["kind"] = json!("rerate");
            body["catalog_version"] = json!(v);
        }
        _ => {
            return Err(Failure::Exit {
                code: 2,
                message: "give one of --credit WON, --debit WON or --rerate CATALOG_VERSION".into(),
            });
        }
    }
    Ok(body)
}

fn won(v: &Value) -> String {
    v.as_i64().map_or_else(|| text(v), |n| domain::Krw(n).to_string())
}

fn show_one(c: &Value) -> String {
    let mut line = format!(
        "#{} {} {} ({}), due {} -> {}: {}",
        text(&c["seq"]),
        text(&c["kind"]),
        won(&c["amount_won"]),
        text(&c["at"]),
        won(&c["due_before"]),
        won(&c["due_after"]),
        text(&c["reason"])
    );
    if let Some(version) = c["catalog_version"].as_str() {
        line.push_str(&format!("\n    catalog {version}:"));
        for l in c["changed_lines"].as_array().into_iter().flatten() {
            line.push_str(&format!(
                " {} {} -> {};",
                text(&l["code"]),
                won(&l["old"]),
                won(&l["new"])
            ));
        }
    }
    line
}

fn show_added(v: &Value) -> String {
    let head = if v["replayed"] == json!(true) {
        format!(
            "the correction was already applied under command id {} (nothing changed now)",
            text(&v["command_id"])
        )
    } else {
        format!("correction applied (command id {})", text(&v["command_id"]))
    };
    let d = &v["delivery"];
    let send = if d["new_round"] == json!(true) {
        format!("sent once more in send round {}", text(&d["send_round"]))
    } else {
        "not sent yet: it goes out corrected, in its round".to_owned()
    };
    format!(
        "{head}\n{}\ncorrected invoice {}\ndelivery {} is {} ({send})",
        show_one(&v["correction"]),
        text(&v["correction"]["invoice_key"]),
        text(&d["delivery_id"]),
        text(&d["state"])
    )
}

fn show_list(v: &Value) -> String {
    let mut out = format!(
        "bill {}: original total {}, amount due {}",
        text(&v["bill_id"]),
        won(&v["original_total"]),
        won(&v["amount_due"])
    );
    let list = v["corrections"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        out.push_str("\nno corrections");
    }
    for c in &list {
        out.push('\n');
        out.push_str(&show_one(c));
    }
    out
}

/// `corrections add` or `corrections list`.
pub(crate) async fn corrections(api: &Api, out: Output, action: CorrectionsAction) -> Result<(), Failure> {
    match action {
        CorrectionsAction::Add {
            cycle,
            customer,
            credit,
            debit,
            rerate,
            reason,
            command_id,
        } => {
            let body = add_body(credit, debit, rerate, reason, command_id)?;
            let v = api.call("POST", &path(&cycle, &customer), Some(body)).await?;
            out.print(&v, show_added(&v));
        }
        CorrectionsAction::List { cycle, customer } => {
            let v = api.call("GET", &path(&cycle, &customer), None).await?;
            out.print(&v, show_list(&v));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_kind_makes_the_body() {
        let b = add_body(Some(5_000), None, None, "refund".into(), Some("c-1".into()))
            .ok()
            .unwrap();
        assert_eq!(
            b,
            json!({"command_id": "c-1", "reason": "refund", "kind": "credit", "amount_won": 5_000})
        );
        let b = add_body(None, None, Some("2026-v2".into()), "r".into(), Some("c-2".into()))
            .ok()
            .unwrap();
        assert_eq!(
            (&b["kind"], &b["catalog_version"]),
            (&json!("rerate"), &json!("2026-v2"))
        );
        assert!(add_body(Some(1), Some(1), None, "r".into(), None).is_err());
        assert!(add_body(None, None, None, "r".into(), None).is_err());
    }

    #[test]
    fn a_listing_shows_the_original_the_due_and_each_correction() {
        let v = json!({"bill_id": "2026-11#00000#C0000001", "original_total": 55_000, "amount_due": 50_000,
            "corrections": [{"seq": 1, "kind": "credit", "amount_won": -5_000, "at": "2026-12-31T00:30:00.000Z",
                "due_before": 55_000, "due_after": 50_000, "reason": "refund"}]});
        let s = show_list(&v);
        assert!(
            s.contains("55,000원") && s.contains("-5,000원") && s.contains("50,000원") && s.contains("refund"),
            "{s}"
        );
    }
}
