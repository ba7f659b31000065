//! `billingctl`: the operators' command line for the admin API.
//!
//! Every request is signed with SigV4 (service `lambda`) with the credentials of the default
//! AWS chain (environment, profile, SSO, role), as the function URL's `AWS_IAM` auth wants;
//! the identity is who the audit names. Tables by default, the API's JSON with `--json`.
//!
//! Exit codes: 0 done; 1 failed (network, server error, unreadable answer); 2 usage;
//! 3 not found (404); 4 refused in this state or command id reused (409); 5 bad request
//! (400, 405); 6 not allowed (401, 403).

use std::process::ExitCode;
use std::time::SystemTime;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use clap::{Args, Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "billingctl",
    version,
    about = "Where a billing month stands, one delivery, the failure log, and audited commands (the admin API)."
)]
struct Cli {
    /// The admin API's URL: the stack's AdminApiUrl output.
    #[arg(long, env = "BILLING_ADMIN_URL")]
    url: String,
    /// The region of the function URL (for the signature).
    #[arg(long, env = "AWS_REGION", default_value = "ap-northeast-2")]
    region: String,
    /// Print the API's JSON answer instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// A cycle's settlement: state, shards, counts, checksum, the execution.
    Cycle { cycle: String },
    /// A cycle's deliveries by state, channel and send day.
    Funnel { cycle: String },
    /// A cycle's failure log.
    Failures {
        cycle: String,
        #[arg(long, default_value_t = 25)]
        limit: u32,
        /// Start at this page token (printed after a page).
        #[arg(long)]
        next: Option<String>,
        /// Every page (at most 1,000).
        #[arg(long)]
        all: bool,
    },
    /// One customer's delivery of a cycle (contact data masked).
    Delivery { cycle: String, customer: String },
    /// Send a READY or HELD delivery no earlier than --at.
    Schedule {
        #[command(flatten)]
        on: OnDelivery,
        /// RFC 3339, e.g. 2026-12-15T09:00:00+09:00.
        #[arg(long)]
        at: String,
    },
    /// Send a sent, dead, held or unconfirmed delivery once more (a new send round), or put
    /// a QUEUED or SENDING one that no sender holds any more back to dispatch (its round).
    Resend {
        #[command(flatten)]
        on: OnDelivery,
        /// Not before this (RFC 3339); now when absent.
        #[arg(long)]
        at: Option<String>,
        /// Resend on this channel (email or sms) instead of the preferred one.
        #[arg(long)]
        channel: Option<String>,
    },
    /// Send a READY or HELD delivery by SMS instead of email.
    ConvertToSms {
        #[command(flatten)]
        on: OnDelivery,
        /// Not before this (RFC 3339); now when absent.
        #[arg(long)]
        at: Option<String>,
    },
    /// Send a READY or HELD delivery now, ignoring the customer's do-not-disturb slots
    /// (never the quiet window).
    ForceSend {
        #[command(flatten)]
        on: OnDelivery,
        /// Not before this (RFC 3339); now when absent.
        #[arg(long)]
        at: Option<String>,
    },
    /// Hold a READY delivery: no dispatch run sends it until schedule, resend,
    /// convert-to-sms or force-send releases it. The reason is shown on the delivery.
    Hold {
        #[command(flatten)]
        on: OnDelivery,
    },
    /// Record an UNCONFIRMED delivery as sent on its channel, once the provider's evidence
    /// (its console, the recipient) shows the message went out; resend it otherwise.
    Confirm {
        #[command(flatten)]
        on: OnDelivery,
    },
    /// One command: who, what, why, when, its answer.
    Command { id: String },
    /// The commands of a day (UTC, YYYY-MM-DD).
    Audit { day: String },
    /// The runtime settings: the channel policy and the active template version.
    Settings,
    /// The channel policy: shown, or set (email,sms | email | sms | none, which pauses delivery).
    Policy {
        #[command(subcommand)]
        action: Option<PolicyAction>,
    },
    /// Invoice template versions: listed, previewed, activated for the next cycles.
    Templates {
        #[command(subcommand)]
        action: Option<TemplateAction>,
    },
    /// The dead-letter queues: messages waiting, in flight, and their redrives.
    Queues,
    /// Move a dead-letter queue's messages back at a bounded rate (delivery-dlq, dispatch-dlq).
    Redrive {
        queue: String,
        /// Messages per second (1 to 500).
        #[arg(long, default_value_t = 10)]
        rate: u32,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        command_id: Option<String>,
    },
}

/// The delivery a command acts on, and what every command carries.
#[derive(Args)]
struct OnDelivery {
    cycle: String,
    customer: String,
    /// Why (kept in the audit trail).
    #[arg(long)]
    reason: String,
    /// Replays safely when given again; a new one is made when absent.
    #[arg(long)]
    command_id: Option<String>,
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

#[derive(Subcommand)]
enum PolicyAction {
    /// The policy in force and where it comes from.
    Get,
    /// Set it; dispatch's next run and the senders (within a minute) apply it.
    Set {
        value: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        command_id: Option<String>,
    },
}

#[derive(Subcommand)]
enum TemplateAction {
    /// The versions this build carries, the default and the active one.
    List,
    /// A version rendered for a fictional sample bill (subject and text message; the HTML
    /// with --json, or into --html FILE).
    Preview {
        version: String,
        #[arg(long, default_value = "family")]
        sample: String,
        /// Write the HTML email here.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
    },
    /// New cycles pin this version (a settled cycle keeps its own).
    Activate {
        version: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        command_id: Option<String>,
    },
}

/// An answer that is not a success, or no answer.
enum Failure {
    Api { status: u16, code: String, message: String },
    Other(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Api { status: 404, .. } => 3,
            Failure::Api { status: 409, .. } => 4,
            Failure::Api { status: 400 | 405, .. } => 5,
            Failure::Api { status: 401 | 403, .. } => 6,
            _ => 1,
        }
    }
}

struct Api {
    url: String,
    region: String,
    identity: Identity,
    client: Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>,
}

impl Api {
    async fn new(url: &str, region: &str) -> Result<Api, Failure> {
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| Failure::Other("no AWS credentials configured".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| Failure::Other(format!("AWS credentials: {e}")))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| Failure::Other(format!("TLS roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Api {
            url: url.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            identity: credentials.into(),
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let uri = format!("{}{path}", self.url);
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload.clone())))
            .map_err(|e| Failure::Other(format!("bad request {uri}: {e}")))?;
        let host = req.uri().authority().map(|a| a.to_string()).unwrap_or_default();
        req.headers_mut().insert(
            "host",
            host.parse().map_err(|_| Failure::Other(format!("bad host in {uri}")))?,
        );
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("lambda")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Failure::Other(format!("signing: {e}")))?
            .into();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
            .collect();
        let signable = SignableRequest::new(
            method,
            uri.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(payload.as_bytes()),
        )
        .map_err(|e| Failure::Other(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Failure::Other(format!("signing: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut req);

        let response = self
            .client
            .request(req)
            .await
            .map_err(|e| Failure::Other(format!("{method} {uri}: {e}")))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Other(format!("reading the answer: {e}")))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            Failure::Other(format!(
                "{status}: the answer is not JSON: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })?;
        if (200..300).contains(&status) {
            return Ok(value);
        }
        Err(Failure::Api {
            status,
            code: value["error"]["code"].as_str().unwrap_or("?").to_owned(),
            message: value["error"]["message"].as_str().unwrap_or("").to_owned(),
        })
    }
}

/// A command's body: its id (a new one when not given) and the reason.
fn command_body(command_id: Option<String>, reason: String) -> Value {
    json!({"command_id": command_id.unwrap_or_else(new_command_id), "reason": reason})
}

fn new_command_id() -> String {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("cli-{ms}-{:08x}", fastrand::u32(..))
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Aligned columns, a header line first.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

fn fields(v: &Value, names: &[(&str, &str)]) -> String {
    let width = names.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    names
        .iter()
        .map(|(label, path)| {
            let value = path.split('.').fold(v, |v, k| &v[k]);
            format!("{label:<width$}  {}", text(value))
        })
        .collect::<Vec<_>>()
        .join("\n")
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

/// One row per item: the values of `keys`, as text.
fn rows(items: &[Value], keys: &[&str]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|item| keys.iter().map(|k| text(&item[*k])).collect())
        .collect()
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

fn show_commands(commands: &[Value]) -> String {
    let keys = ["at", "command", "command_id", "target", "who", "why"];
    table(&["AT", "COMMAND", "ID", "TARGET", "WHO", "WHY"], &rows(commands, &keys))
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

fn show_settings(settings: &[Value]) -> String {
    let keys = [
        "name",
        "value",
        "source",
        "revision",
        "updated_at",
        "updated_by",
        "takes_effect",
    ];
    table(
        &["SETTING", "VALUE", "SOURCE", "REV", "UPDATED", "BY", "TAKES EFFECT"],
        &rows(settings, &keys),
    )
}

fn show_setting_applied(v: &Value) -> String {
    let head = if v["replayed"] == json!(true) {
        format!(
            "already set under command id {} (nothing changed now)",
            text(&v["command_id"])
        )
    } else {
        format!("set (command id {})", text(&v["command_id"]))
    };
    let mut out = format!(
        "{head}
{} = {} (was {}), revision {}",
        text(&v["setting"]),
        text(&v["value"]),
        text(&v["previous"]),
        text(&v["revision"])
    );
    if let Some(note) = v["note"].as_str() {
        out.push_str(&format!(
            "
note: {note}"
        ));
    }
    out
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

async fn run(cli: Cli) -> Result<(), Failure> {
    let api = Api::new(&cli.url, &cli.region).await?;
    let print = |v: &Value, human: String| {
        if cli.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            println!("{human}");
        }
    };
    match cli.command {
        Action::Cycle { cycle } => {
            let v = api.call("GET", &format!("/cycles/{cycle}"), None).await?;
            print(&v, show_cycle(&v));
        }
        Action::Funnel { cycle } => {
            let v = api.call("GET", &format!("/cycles/{cycle}/funnel"), None).await?;
            print(&v, show_funnel(&v));
        }
        Action::Failures {
            cycle,
            limit,
            next,
            all,
        } => {
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
            print(&v, human);
        }
        Action::Delivery { cycle, customer } => {
            let v = api
                .call("GET", &format!("/cycles/{cycle}/deliveries/{customer}"), None)
                .await?;
            print(&v, show_delivery(&v));
        }
        Action::Schedule { on, at } => {
            let v = on.send(&api, "schedule", Some(at), None).await?;
            print(&v, show_applied(&v));
        }
        Action::Resend { on, at, channel } => {
            let v = on.send(&api, "resend", at, channel).await?;
            print(&v, show_applied(&v));
        }
        Action::ConvertToSms { on, at } => {
            let v = on.send(&api, "convert-to-sms", at, None).await?;
            print(&v, show_applied(&v));
        }
        Action::ForceSend { on, at } => {
            let v = on.send(&api, "force-send", at, None).await?;
            print(&v, show_applied(&v));
        }
        Action::Hold { on } => {
            let v = on.send(&api, "hold", None, None).await?;
            print(&v, show_applied(&v));
        }
        Action::Confirm { on } => {
            let v = on.send(&api, "confirm", None, None).await?;
            print(&v, show_applied(&v));
        }
        Action::Command { id } => {
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
            print(&v, human);
        }
        Action::Audit { day } => {
            let v = api.call("GET", &format!("/audit?day={day}&limit=100"), None).await?;
            let commands = v["commands"].as_array().cloned().unwrap_or_default();
            print(&v, show_commands(&commands));
        }
        Action::Settings => {
            let v = api.call("GET", "/settings", None).await?;
            let settings = v["settings"].as_array().cloned().unwrap_or_default();
            print(&v, show_settings(&settings));
        }
        Action::Policy { action } => match action.unwrap_or(PolicyAction::Get) {
            PolicyAction::Get => {
                let v = api.call("GET", "/settings/channel-policy", None).await?;
                print(&v, show_settings(std::slice::from_ref(&v)));
            }
            PolicyAction::Set {
                value,
                reason,
                command_id,
            } => {
                let mut body = command_body(command_id, reason);
                body["value"] = json!(value);
                let v = api.call("PUT", "/settings/channel-policy", Some(body)).await?;
                print(&v, show_setting_applied(&v));
            }
        },
        Action::Templates { action } => match action.unwrap_or(TemplateAction::List) {
            TemplateAction::List => {
                let v = api.call("GET", "/templates", None).await?;
                let rows: Vec<Vec<String>> = v["versions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|t| {
                        let name = text(&t["version"]);
                        let mut marks = Vec::new();
                        if name == text(&v["active"]) {
                            marks.push(format!("active ({})", text(&v["active_source"])));
                        }
                        if name == text(&v["default"]) {
                            marks.push("deployment default".to_owned());
                        }
                        vec![name, text(&t["meta"]["brand"]), marks.join(", ")]
                    })
                    .collect();
                print(&v, table(&["VERSION", "BRAND", ""], &rows));
            }
            TemplateAction::Preview { version, sample, html } => {
                let v = api
                    .call("GET", &format!("/templates/{version}/preview?sample={sample}"), None)
                    .await?;
                let mut human = format!(
                    "{version} for the sample {sample:?}\nsubject: {}\n\ntext message:\n{}",
                    text(&v["subject"]),
                    text(&v["sms"])
                );
                if let Some(path) = html {
                    std::fs::write(&path, v["html"].as_str().unwrap_or_default())
                        .map_err(|e| Failure::Other(format!("writing {}: {e}", path.display())))?;
                    human.push_str(&format!("\n\nHTML email written to {}", path.display()));
                }
                print(&v, human);
            }
            TemplateAction::Activate {
                version,
                reason,
                command_id,
            } => {
                let body = command_body(command_id, reason);
                let v = api
                    .call("POST", &format!("/templates/{version}/activate"), Some(body))
                    .await?;
                print(&v, show_setting_applied(&v));
            }
        },
        Action::Queues => {
            let v = api.call("GET", "/queues", None).await?;
            let queues = v["queues"].as_array().cloned().unwrap_or_default();
            print(&v, show_queues(&queues));
        }
        Action::Redrive {
            queue,
            rate,
            reason,
            command_id,
        } => {
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
            print(&v, human);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_errors = cli.json;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let code = f.exit_code();
            match &f {
                Failure::Api { status, code, message } if json_errors => {
                    eprintln!(
                        "{}",
                        json!({"status": status, "error": {"code": code, "message": message}})
                    )
                }
                Failure::Api { status, code, message } => eprintln!("billingctl: {status} {code}: {message}"),
                Failure::Other(m) => eprintln!("billingctl: {m}"),
            }
            ExitCode::from(code)
        }
    }
}
