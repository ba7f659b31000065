//! The platform roles: who has which (`roles list`) and an administrator's change of one
//! (`roles set PRINCIPAL ROLE --reason`).

use serde_json::{Value, json};

use super::{command_body, set_head};
use crate::api::{Api, Failure};
use crate::cli::RolesAction;
use crate::output::{Output, rows, table, text};

/// `roles`: listed (`GET /roles`) or set (`PUT /roles/{principal}`).
pub(crate) async fn roles(api: &Api, out: Output, action: RolesAction) -> Result<(), Failure> {
    match action {
        RolesAction::List => {
            let v = api.call("GET", "/roles", None).await?;
            let grants = v["roles"].as_array().cloned().unwrap_or_default();
            let human = format!(
                "you: {} ({})\n\n{}",
                text(&v["you"]["principal"]),
                text(&v["you"]["role"]),
                table(
                    &["PRINCIPAL", "ROLE", "SOURCE", "UPDATED", "BY"],
                    &rows(&grants, &["principal", "role", "source", "updated_at", "updated_by"]),
                )
            );
            out.print(&v, human);
        }
        RolesAction::Set {
            principal,
            role,
            reason,
            command_id,
        } => {
            let mut body = command_body(command_id, reason);
            body["role"] = json!(role);
            let v = api.call("PUT", &format!("/roles/{principal}"), Some(body)).await?;
            out.print(&v, show_set(&v));
        }
    }
    Ok(())
}

fn show_set(v: &Value) -> String {
    let head = set_head(v);
    format!(
        "{head}\n{}: {} (was {}), from its next request",
        text(&v["principal"]),
        text(&v["role"]),
        text(&v["previous"])
    )
}
