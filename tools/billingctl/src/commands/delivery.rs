//! The commands on one delivery (`POST /cycles/{cycle}/deliveries/{customer}/{verb}`):
//! schedule, resend, convert-to-sms, force-send, hold and confirm.

use serde_json::{Value, json};

use super::command_body;
use crate::api::{Api, Failure};
use crate::cli::OnDelivery;
use crate::output::{Output, text};

/// Sends the command `verb` on the delivery and prints what it applied.
pub(crate) async fn apply(
    api: &Api,
    out: Output,
    on: OnDelivery,
    verb: &str,
    at: Option<String>,
    channel: Option<String>,
) -> Result<(), Failure> {
    let v = on.send(api, verb, at, channel).await?;
    out.print(&v, show_applied(&v));
    Ok(())
}

impl OnDelivery {
    /// `POST /cycles/{cycle}/deliveries/{customer}/{verb}` with the command's body: its id
    /// (a new one when not given), the reason and, when given, the time and the channel.
    async fn send(self, api: &Api, verb: &str, at: Option<String>, channel: Option<String>) -> Result<Value, Failure> {
        let mut body = command_body(self.command_id, self.reason);
        if let Some(at) = at {
            body["available_at"] = json!(at);
        }
        if let Some(channel) = channel {
            body["channel"] = json!(channel);
        }
        let path = format!("/cycles/{}/deliveries/{}/{verb}", self.cycle, self.customer);
        api.call("POST", &path, Some(body)).await
    }
}

fn show_applied(v: &Value) -> String {
    let what = text(&v["command"]);
    let head = if v["replayed"] == json!(true) {
        format!(
            "{what} was already applied under command id {} (nothing changed now)",
            text(&v["command_id"])
        )
    } else {
        format!("{what} applied (command id {})", text(&v["command_id"]))
    };
    let mut out = if v["command"] == "confirm" {
        format!(
            "{head}\ndelivery {} is {}: confirmed as sent by {}",
            text(&v["delivery_id"]),
            text(&v["state"]),
            text(&v["channel"])
        )
    } else if v["state"] == "HELD" {
        format!(
            "{head}\ndelivery {} is HELD ({}); schedule, resend, convert-to-sms or force-send releases it",
            text(&v["delivery_id"]),
            text(&v["held_reason"])
        )
    } else {
        format!(
            "{head}\ndelivery {} is {}, available at {}",
            text(&v["delivery_id"]),
            text(&v["state"]),
            text(&v["available_at"])
        )
    };
    if !v["send_round"].is_null() {
        out.push_str(&format!(", send round {}", text(&v["send_round"])));
        if v["new_round"] == json!(false) {
            out.push_str(" (its own: no sender held it any more; the next one asks the provider before sending)");
        }
    }
    out
}
