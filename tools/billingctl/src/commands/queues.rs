//! The dead-letter queues: what waits in them, and their redrives.

use serde_json::{Value, json};

use super::command_body;
use crate::api::{Api, Failure};
use crate::output::{Output, table, text};

/// `queues`: `GET /queues`.
pub(crate) async fn queues(api: &Api, out: Output) -> Result<(), Failure> {
    let v = api.call("GET", "/queues", None).await?;
    let queues = v["queues"].as_array().cloned().unwrap_or_default();
    out.print(&v, show_queues(&queues));
    Ok(())
}

/// `redrive`: `POST /queues/{queue}/redrive`, at most `rate` messages a second.
pub(crate) async fn redrive(
    api: &Api,
    out: Output,
    queue: &str,
    rate: u32,
    reason: String,
    command_id: Option<String>,
) -> Result<(), Failure> {
    let mut body = command_body(command_id, reason);
    body["max_per_second"] = json!(rate);
    let v = api
        .call("POST", &format!("/queues/{queue}/redrive"), Some(body))
        .await?;
    let head = if v["replayed"] == json!(true) {
        "already started under this command id (nothing started now)"
    } else {
        "redrive started"
    };
    let human = format!(
        "{head}: {} messages of {} to {}, at most {} a second (command id {})",
        text(&v["waiting"]),
        text(&v["queue"]),
        text(&v["destination"]),
        text(&v["max_per_second"]),
        text(&v["command_id"])
    );
    out.print(&v, human);
    Ok(())
}

fn show_queues(queues: &[Value]) -> String {
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            let last = &q["redrives"][0];
            let redrive = if last.is_null() {
                "-".to_owned()
            } else {
                format!(
                    "{} {}/{}",
                    text(&last["status"]),
                    text(&last["moved"]),
                    text(&last["to_move"])
                )
            };
            vec![text(&q["queue"]), text(&q["waiting"]), text(&q["in_flight"]), redrive]
        })
        .collect();
    table(&["QUEUE", "WAITING", "IN FLIGHT", "LAST REDRIVE"], &rows)
}
