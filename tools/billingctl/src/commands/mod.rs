//! Each command: [`run`] sends the parsed command line to its group (the reads, the
//! commands on one delivery, the settings, the dead-letter queues, the roles), which calls
//! the API and prints the answer.

mod delivery;
mod queues;
mod reads;
mod roles;
mod settings;

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::api::{Api, Failure};
use crate::cli::{Action, Cli, PolicyAction, RolesAction, TemplateAction};
use crate::output::Output;

/// Runs one command line: the API client from its URL and region, then the command.
pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    let api = Api::new(&cli.url, &cli.region).await?;
    let out = Output { json: cli.json };
    match cli.command {
        Action::Cycle { cycle } => reads::cycle(&api, out, &cycle).await,
        Action::Funnel { cycle } => reads::funnel(&api, out, &cycle).await,
        Action::Failures {
            cycle,
            limit,
            next,
            all,
        } => reads::failures(&api, out, &cycle, limit, next, all).await,
        Action::Delivery { cycle, customer } => reads::delivery(&api, out, &cycle, &customer).await,
        Action::Schedule { on, at } => delivery::apply(&api, out, on, "schedule", Some(at), None).await,
        Action::Resend { on, at, channel } => delivery::apply(&api, out, on, "resend", at, channel).await,
        Action::ConvertToSms { on, at } => delivery::apply(&api, out, on, "convert-to-sms", at, None).await,
        Action::ForceSend { on, at } => delivery::apply(&api, out, on, "force-send", at, None).await,
        Action::Hold { on } => delivery::apply(&api, out, on, "hold", None, None).await,
        Action::Confirm { on } => delivery::apply(&api, out, on, "confirm", None, None).await,
        Action::Command { id } => reads::command(&api, out, &id).await,
        Action::Audit { day } => reads::audit(&api, out, &day).await,
        Action::Settings => settings::settings(&api, out).await,
        Action::Policy { action } => settings::policy(&api, out, action.unwrap_or(PolicyAction::Get)).await,
        Action::Templates { action } => settings::templates(&api, out, action.unwrap_or(TemplateAction::List)).await,
        Action::Queues => queues::queues(&api, out).await,
        Action::Redrive {
            queue,
            rate,
            reason,
            command_id,
        } => queues::redrive(&api, out, &queue, rate, reason, command_id).await,
        Action::Roles { action } => roles::roles(&api, out, action.unwrap_or(RolesAction::List)).await,
    }
}

/// A command's body: its id (a new one when not given) and the reason.
fn command_body(command_id: Option<String>, reason: String) -> Value {
    json!({"command_id": command_id.unwrap_or_else(new_command_id), "reason": reason})
}

/// The first line of a setting's or a role's change: set now, or already set by an earlier
/// call with the same command id.
fn set_head(v: &Value) -> String {
    if v["replayed"] == json!(true) {
        format!(
            "already set under command id {} (nothing changed now)",
            crate::output::text(&v["command_id"])
        )
    } else {
        format!("set (command id {})", crate::output::text(&v["command_id"]))
    }
}

fn new_command_id() -> String {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("cli-{ms}-{:08x}", fastrand::u32(..))
}
