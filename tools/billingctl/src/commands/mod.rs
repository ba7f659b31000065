//! Each command: [`run`] sends the parsed command line to its group: the stack's own
//! commands (`upload`, `settle`, `env-json`, which find what they need in the stack's
//! outputs) or the admin API's (the reads, the commands on one delivery, the settings, the
//! dead-letter queues, the roles, the suppression list), which call the API and print the
//! answer.

mod corrections;
mod delivery;
mod env_json;
mod preferences;
mod queues;
mod reads;
mod reprice;
mod roles;
mod settings;
mod settle;
mod suppressions;
mod upload;

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::api::{Api, Failure};
use crate::cli::{
    Action, AdminAction, Cli, PolicyAction, RolesAction, SettleAction, SuppressionsAction, TemplateAction,
};
use crate::output::Output;
use crate::stack::{Stack, region_of, sdk_config};

/// Runs one command line: the AWS configuration, the stack (for its own commands) or the
/// admin API client (from --url or the stack's AdminApiUrl), then the command.
pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    let out = Output { json: cli.json };
    let sdk = sdk_config(cli.region.as_deref()).await;
    let stack = || async {
        let Some(name) = cli.stack.as_deref() else {
            return Err(Failure::Exit {
                code: 2,
                message: "this command needs the stack: --stack NAME (or BILLING_STACK)".into(),
            });
        };
        Stack::find(&sdk, name).await
    };
    let command = match cli.command {
        Action::Upload(args) => return upload::upload(&sdk, &stack().await?, out, args).await,
        Action::Settle {
            action: SettleAction::Start { cycle },
        } => return settle::start(&sdk, &stack().await?, out, &cycle).await,
        Action::Settle {
            action: SettleAction::Status { cycle },
        } => return settle::status(&sdk, &stack().await?, out, cycle.as_deref()).await,
        Action::Reprice {
            cycle,
            catalog,
            out: dir,
            timeout,
        } => {
            let args = reprice::Args {
                cycle,
                catalog,
                out: dir,
                timeout,
            };
            return reprice::reprice(&sdk, &stack().await?, out, args).await;
        }
        Action::EnvJson { out: file } => return env_json::env_json(&sdk, &stack().await?, file.as_deref()).await,
        Action::Console(args) => Command::Console(args),
        Action::Admin(action) => Command::Admin(action),
    };
    let url = match (&cli.url, &cli.stack) {
        (Some(url), _) => url.clone(),
        (None, Some(_)) => stack().await?.output("AdminApiUrl")?.to_owned(),
        (None, None) => {
            return Err(Failure::Exit {
                code: 2,
                message: "no admin API: give --stack NAME (or BILLING_STACK), or --url (BILLING_ADMIN_URL)".into(),
            });
        }
    };
    let api = Api::new(&url, &region_of(&sdk), &sdk).await?;
    match command {
        Command::Admin(action) => admin(&api, out, action).await,
        Command::Console(args) => {
            let session = crate::console::Session {
                stack: cli.stack.clone(),
                region: region_of(&sdk),
                cycle: args.cycle,
            };
            crate::console::serve(api, session, args.port).await
        }
    }
}

/// A command that talks to the admin API.
enum Command {
    Admin(AdminAction),
    Console(crate::cli::ConsoleArgs),
}

/// An admin API command.
async fn admin(api: &Api, out: Output, action: AdminAction) -> Result<(), Failure> {
    match action {
        AdminAction::Cycle { cycle } => reads::cycle(api, out, &cycle).await,
        AdminAction::Funnel { cycle } => reads::funnel(api, out, &cycle).await,
        AdminAction::Failures {
            cycle,
            limit,
            next,
            all,
        } => reads::failures(api, out, &cycle, limit, next, all).await,
        AdminAction::Delivery { cycle, customer } => reads::delivery(api, out, &cycle, &customer).await,
        AdminAction::Schedule { on, at } => delivery::apply(api, out, on, "schedule", Some(at), None).await,
        AdminAction::Resend { on, at, channel } => delivery::apply(api, out, on, "resend", at, channel).await,
        AdminAction::ConvertToSms { on, at } => delivery::apply(api, out, on, "convert-to-sms", at, None).await,
        AdminAction::ForceSend { on, at } => delivery::apply(api, out, on, "force-send", at, None).await,
        AdminAction::Hold { on } => delivery::apply(api, out, on, "hold", None, None).await,
        AdminAction::Confirm { on } => delivery::apply(api, out, on, "confirm", None, None).await,
        AdminAction::Command { id } => reads::command(api, out, &id).await,
        AdminAction::Audit { day } => reads::audit(api, out, &day).await,
        AdminAction::Settings => settings::settings(api, out).await,
        AdminAction::Policy { action } => settings::policy(api, out, action.unwrap_or(PolicyAction::Get)).await,
        AdminAction::Templates { action } => {
            settings::templates(api, out, action.unwrap_or(TemplateAction::List)).await
        }
        AdminAction::Queues => queues::queues(api, out).await,
        AdminAction::Redrive {
            queue,
            rate,
            reason,
            command_id,
        } => queues::redrive(api, out, &queue, rate, reason, command_id).await,
        AdminAction::Preferences {
            customer,
            dnd,
            send_day,
            channel,
            contact_stdin,
            reason,
            command_id,
        } => {
            let change = preferences::Change {
                customer,
                dnd,
                send_day,
                channel,
                contact_stdin,
                reason,
                command_id,
            };
            preferences::preferences(api, out, change).await
        }
        AdminAction::Corrections { action } => corrections::corrections(api, out, action).await,
        AdminAction::Roles { action } => roles::roles(api, out, action.unwrap_or(RolesAction::List)).await,
        AdminAction::Suppressions { action } => {
            let action = action.unwrap_or(SuppressionsAction::List {
                limit: None,
                next: None,
            });
            suppressions::suppressions(api, out, action, &mut std::io::stdin()).await
        }
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
