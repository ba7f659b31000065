//! The reads: a cycle's settlement, its funnel, its failure log, one delivery, one command
//! and a day's commands.

use serde_json::{Value, json};

use crate::api::{Api, Failure};
use crate::output::{Output, fields, rows, table, text};

/// `cycle`: `GET /cycles/{cycle}`.
pub(crate) async fn cycle(api: &Api, out: Output, cycle: &str) -> Result<(), Failure> {
    let v = api.call("GET", &format!("/cycles/{cycle}"), None).await?;
    out.print(&v, show_cycle(&v));
    Ok(())
}

/// `funnel`: `GET /cycles/{cycle}/funnel`.
pub(crate) async fn funnel(api: &Api, out: Output, cycle: &str) -> Result<(), Failure> {
    let v = api.call("GET", &format!("/cycles/{cycle}/funnel"), None).await?;
    out.print(&v, show_funnel(&v));
    Ok(())
}

/// `failures`: `GET /cycles/{cycle}/failures`, one page from `next`, or with `all` every
/// page (at most 1,000).
pub(crate) async fn failures(
    api: &Api,
    out: Output,
    cycle: &str,
    limit: u32,
    next: Option<String>,
    all: bool,
) -> Result<(), Failure> {
    let mut token = next;
    let mut records = Vec::new();
    for _ in 0..1000 {
        let mut path = format!("/cycles/{cycle}/failures?limit={limit}");
        if let Some(t) = &token {
            path.push_str(&format!("&next={t}"));
        }
        let page = api.call("GET", &path, None).await?;
        records.extend(page["records"].as_array().cloned().unwrap_or_default());
        token = page["next"].as_str().map(str::to_owned);
        if !all || token.is_none() {
            break;
        }
    }
    let v = json!({"cycle": cycle, "records": records, "next": token});
    let mut human = show_failures(&records);
    if let Some(t) = &token {
        human.push_str(&format!("\nmore: --next {t}"));
    }
    out.print(&v, human);
    Ok(())
}

/// `delivery`: `GET /cycles/{cycle}/deliveries/{customer}`.
pub(crate) async fn delivery(api: &Api, out: Output, cycle: &str, customer: &str) -> Result<(), Failure> {
    let v = api
        .call("GET", &format!("/cycles/{cycle}/deliveries/{customer}"), None)
        .await?;
    out.print(&v, show_delivery(&v));
    Ok(())
}

/// `command`: `GET /commands/{id}`.
pub(crate) async fn command(api: &Api, out: Output, id: &str) -> Result<(), Failure> {
    let v = api.call("GET", &format!("/commands/{id}"), None).await?;
    let human = fields(
        &v,
        &[
            ("command id", "command_id"),
            ("command", "command"),
            ("target", "target"),
            ("who", "who"),
            ("why", "why"),
            ("at", "at"),
        ],
    ) + &format!("\nanswer      {}", v["result"]);
    out.print(&v, human);
    Ok(())
}

/// `audit`: `GET /audit?day={day}`, the day's first 100 commands.
pub(crate) async fn audit(api: &Api, out: Output, day: &str) -> Result<(), Failure> {
    let v = api.call("GET", &format!("/audit?day={day}&limit=100"), None).await?;
    let commands = v["commands"].as_array().cloned().unwrap_or_default();
    out.print(&v, show_commands(&commands));
    Ok(())
}

fn show_cycle(v: &Value) -> String {
    let mut out = fields(
        v,
        &[
            ("cycle", "cycle"),
            ("status", "status"),
            ("execution", "execution"),
            ("runs", "runs"),
            ("catalog", "catalog_version"),
            ("template", "template_version"),
            ("shards", "shards.total"),
            ("  done", "shards.done"),
            ("  in progress", "shards.in_progress"),
            ("  failed", "shards.failed"),
            ("  not started", "shards.not_started"),
            ("  rendered", "shards.rendered"),
            ("customers", "customers"),
            ("bills", "bills"),
            ("not billable", "not_billable"),
            ("checksum (KRW)", "checksum"),
            ("billed (KRW)", "money.billed_total"),
            ("corrections", "money.adjustments"),
            ("  sum (KRW)", "money.adjustments_total"),
            ("net (KRW)", "money.net_total"),
            ("deliveries", "deliveries"),
            ("started", "started_at"),
            ("finished", "finished_at"),
        ],
    );
    let failed = v["failed_shards"].as_array().cloned().unwrap_or_default();
    if !failed.is_empty() {
        let rows: Vec<Vec<String>> = failed
            .iter()
            .map(|s| {
                vec![
                    text(&s["shard"]),
                    text(&s["error_count"]),
                    s["errors"][0].as_str().unwrap_or("").to_owned(),
                ]
            })
            .collect();
        out.push_str("\n\nfailed shards\n");
        out.push_str(&table(&["SHARD", "ERRORS", "FIRST ERROR"], &rows));
    }
    for r in v["reasons"].as_array().into_iter().flatten() {
        out.push_str(&format!("\nreason: {}", text(r)));
    }
    out
}

fn show_funnel(v: &Value) -> String {
    let states: Vec<(String, Value)> = v["by_state"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    // The breakdowns show the states some delivery is in (the state table shows them all).
    let names: Vec<String> = states
        .iter()
        .filter(|(_, n)| n.as_u64() != Some(0))
        .map(|(k, _)| k.clone())
        .collect();
    let mut out = format!(
        "cycle {}: {} deliveries for {} bills\n",
        text(&v["cycle"]),
        text(&v["deliveries"]),
        text(&v["bills"])
    );
    match v["needs_operator"].as_u64() {
        Some(n) if n > 0 => out.push_str(&format!(
            "{n} UNCONFIRMED: a send may have gone out and the provider cannot be asked; billingctl confirm or resend each\n\n"
        )),
        _ => out.push('\n'),
    }
    out.push_str(&table(
        &["STATE", "DELIVERIES"],
        &states.iter().map(|(k, n)| vec![k.clone(), text(n)]).collect::<Vec<_>>(),
    ));
    let by = |key: &str, first: &str| -> String {
        let mut headers = vec![first];
        headers.extend(names.iter().map(String::as_str));
        let rows: Vec<Vec<String>> = v[key]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, counts)| {
                let mut row = vec![k.clone()];
                row.extend(names.iter().map(|s| counts[s].as_u64().unwrap_or(0).to_string()));
                row
            })
            .collect();
        table(&headers, &rows)
    };
    out.push_str("\n\n");
    out.push_str(&by("by_channel", "CHANNEL"));
    out.push_str("\n\n");
    out.push_str(&by("by_send_day", "SEND DAY"));
    out
}

fn show_failures(records: &[Value]) -> String {
    let keys = [
        "subject",
        "stage",
        "code",
        "channel",
        "attempts",
        "occurrences",
        "last_at",
        "reason",
    ];
    table(
        &[
            "SUBJECT", "STAGE", "CODE", "CHANNEL", "ATTEMPTS", "SEEN", "LAST", "REASON",
        ],
        &rows(records, &keys),
    )
}

fn show_delivery(v: &Value) -> String {
    let mut out = fields(
        v,
        &[
            ("delivery", "delivery_id"),
            ("state", "state"),
            ("channel", "channel"),
            ("preferred", "preferred_channel"),
            ("send date", "send_date"),
            ("available at", "available_at"),
            ("send round", "send_round"),
            ("email attempts", "attempts.email"),
            ("sms attempts", "attempts.sms"),
            ("last error", "last_error"),
            ("held because", "held_reason"),
            ("lease until", "lease_until"),
            ("sent at", "sent_at"),
            ("confirmed at", "confirmed_at"),
            ("operator", "operator_action"),
            ("template", "template_version"),
            ("name", "contact.name"),
            ("email", "contact.email"),
            ("phone", "contact.phone"),
            ("invoice", "invoice.link"),
        ],
    );
    let dnd: Vec<String> = v["dnd_slots"].as_array().into_iter().flatten().map(text).collect();
    out.push_str(&format!(
        "\ndo not disturb  {}",
        if dnd.is_empty() { "-".into() } else { dnd.join(" ") }
    ));
    let failures = v["failures"].as_array().cloned().unwrap_or_default();
    if !failures.is_empty() {
        out.push_str("\n\nfailures\n");
        let rows = rows(&failures, &["stage", "code", "last_at", "reason"]);
        out.push_str(&table(&["STAGE", "CODE", "LAST", "REASON"], &rows));
    }
    let commands = v["commands"].as_array().cloned().unwrap_or_default();
    if !commands.is_empty() {
        out.push_str("\n\ncommands\n");
        out.push_str(&show_commands(&commands));
    }
    out
}

pub(crate) fn show_commands(commands: &[Value]) -> String {
    let keys = ["at", "command", "command_id", "target", "who", "why"];
    table(&["AT", "COMMAND", "ID", "TARGET", "WHO", "WHY"], &rows(commands, &keys))
}
