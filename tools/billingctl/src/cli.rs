//! The command line: [`Cli`] and its subcommands, as clap parses them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "billingctl",
    version,
    about = "A deployed billing stack: uploads through its drop zone, settlement runs, where a billing month stands, \
             one delivery, the failure log, and audited commands (the admin API)."
)]
pub(crate) struct Cli {
    /// The stack's name (as deployed with sam deploy): billingctl finds the admin API, the data
    /// bucket, the state machines and the tables in its CloudFormation outputs.
    #[arg(long, env = "BILLING_STACK", global = true)]
    pub(crate) stack: Option<String>,
    /// The admin API's URL (the stack's AdminApiUrl output), for the admin commands without
    /// --stack; it takes precedence over the stack's.
    #[arg(long, env = "BILLING_ADMIN_URL", global = true)]
    pub(crate) url: Option<String>,
    /// The AWS region (default: the profile's, else ap-northeast-2).
    #[arg(long, env = "AWS_REGION", global = true)]
    pub(crate) region: Option<String>,
    /// Print JSON (the API's answer, the ingest report, ...) instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Action,
}

/// What `upload` sends: the kind names the drop-zone folder.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum UploadKind {
    /// A catalog (JSON, as catalog/2026-v1.json) to `incoming/catalog/`.
    Catalog,
    /// A CRM export (JSON Lines, clear contact data) to `incoming/customers/`.
    Customers,
    /// One shard's usage CSV of a cycle to `incoming/usage/<cycle>/shard-<NNNNN>.csv`.
    Usage,
}

/// What `upload` takes.
#[derive(Args)]
pub(crate) struct UploadArgs {
    pub(crate) kind: UploadKind,
    pub(crate) file: PathBuf,
    /// Usage: the cycle (YYYY-MM); default: the file's folder, as datagen writes it
    /// (usage/2026-11/shard-00003.csv).
    #[arg(long)]
    pub(crate) cycle: Option<String>,
    /// Usage: the shard; default: from the file name shard-NNNNN.csv.
    #[arg(long)]
    pub(crate) shard: Option<u32>,
    /// Catalog and customers: the object's name in the drop zone (default: the file's
    /// name; .json for a catalog, .jsonl for customers).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Seconds to wait for the ingest report.
    #[arg(long, default_value_t = 900)]
    pub(crate) timeout: u64,
    /// Upload only; do not wait for the report.
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// The part size (MiB) of a multipart upload; a file over four parts is sent in parts,
    /// four at a time.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(5..=512))]
    pub(crate) part_mib: u64,
}

#[derive(Subcommand)]
pub(crate) enum SettleAction {
    /// Start the settlement of a cycle: execution settle-YYYY-MM with input {"cycle":"YYYY-MM"},
    /// as from the Step Functions console.
    Start {
        /// YYYY-MM.
        #[arg(long)]
        cycle: String,
    },
    /// The execution settle-YYYY-MM and the cycle's record: state, shards, bills, checksum.
    Status {
        /// YYYY-MM (default: the cycle of the latest settle-YYYY-MM execution).
        #[arg(long)]
        cycle: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum Action {
    /// Upload a file through the stack's drop zone, wait for its ingest report and print it
    /// (exit 0 applied, 3 applied with rejected lines, 4 rejected, 7 no report in time).
    Upload(UploadArgs),
    /// A settlement run: start one (the console's input), or where it stands.
    Settle {
        #[command(subcommand)]
        action: SettleAction,
    },
    /// Re-price a settled month with a catalog version in the shadow area (docs/reprice.md):
    /// start the reprice state machine, wait, download the summary, diff and report, print
    /// the summary. The month's own version is an audit (0 changed).
    Reprice {
        /// YYYY-MM (a SETTLED month).
        #[arg(long)]
        cycle: String,
        /// The catalog version to re-price with (published in the stack's catalog table).
        #[arg(long)]
        catalog: String,
        /// Where the files are written (default: a folder named after the execution).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds to wait for the execution (exit 7 if it is still running).
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Write the `sam local invoke --env-vars` file: every function's environment as deployed,
    /// keyed by its logical id.
    EnvJson {
        /// Write here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The operators' web console on 127.0.0.1 (docs/console.md): its calls go to the admin
    /// API signed with your AWS credentials, as every command's do. Prints the address to
    /// open (with its one-time session token); Ctrl-C stops it.
    Console(ConsoleArgs),
    #[command(flatten)]
    Admin(AdminAction),
}

/// What `console` takes.
#[derive(Args)]
pub(crate) struct ConsoleArgs {
    /// The loopback port to serve on (0: a free one).
    #[arg(long, default_value_t = 0)]
    pub(crate) port: u16,
    /// The cycle (YYYY-MM) the console opens on (default: the latest).
    #[arg(long)]
    pub(crate) cycle: Option<String>,
}

/// The admin API's commands (through --url, or the stack's AdminApiUrl).
#[derive(Subcommand)]
pub(crate) enum AdminAction {
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
    /// Change a customer's own preferences for them (operators: a customer-service
    /// application acting for the customer): do-not-disturb slots, send day, channel, and
    /// contact data read as JSON from standard input. Deliveries not yet sent follow the
    /// change; one a sender has claimed is never touched.
    Preferences {
        customer: String,
        /// Do-not-disturb slots, 0 to 11 separated by commas (slot k is 2k:00 to 2k+2:00
        /// Asia/Seoul), or none.
        #[arg(long)]
        dnd: Option<String>,
        /// Day of the month to send on (1 to 31, the month's last day when shorter).
        #[arg(long)]
        send_day: Option<u32>,
        /// email or sms.
        #[arg(long)]
        channel: Option<String>,
        /// Read {"name", "email", "phone"} (any of them) as JSON from standard input.
        #[arg(long)]
        contact_stdin: bool,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        command_id: Option<String>,
    },
    /// Platform roles (viewer, operator, administrator): who has which, and changing them
    /// (administrators only).
    Roles {
        #[command(subcommand)]
        action: Option<RolesAction>,
    },
    /// The suppression list: email addresses not emailed (a permanent bounce, a complaint, an
    /// operator's entry), each kept as its keyed hash, never the address.
    Suppressions {
        #[command(subcommand)]
        action: Option<SuppressionsAction>,
    },
    /// Corrections of settled bills: a credit, a debit or a re-rating (administrators), sent
    /// once as a corrected invoice; the bill itself never changes.
    Corrections {
        #[command(subcommand)]
        action: CorrectionsAction,
    },
}

#[derive(Subcommand)]
pub(crate) enum CorrectionsAction {
    /// Correct a settled bill: exactly one of --credit, --debit (whole won, 1 to 10,000,000)
    /// or --rerate (a published catalog version).
    Add {
        #[arg(long)]
        cycle: String,
        #[arg(long)]
        customer: String,
        #[arg(long)]
        credit: Option<i64>,
        #[arg(long)]
        debit: Option<i64>,
        #[arg(long)]
        rerate: Option<String>,
        /// Why (kept in the audit trail and printed on the corrected invoice).
        #[arg(long)]
        reason: String,
        /// Replays safely when given again; a new one is made when absent.
        #[arg(long)]
        command_id: Option<String>,
    },
    /// A bill's corrections, its original total and the amount due now.
    List {
        #[arg(long)]
        cycle: String,
        #[arg(long)]
        customer: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum SuppressionsAction {
    /// The entries: hash, reason, since when, source, delivery.
    List {
        /// Entries per page (1 to 100).
        #[arg(long)]
        limit: Option<u32>,
        /// The page to start at (the `next` a previous page gave).
        #[arg(long)]
        next: Option<String>,
    },
    /// Put an address on the list (operators): the address read from standard input
    /// (--email-stdin, so it stays out of shell history and process lists), or a customer's
    /// current email (--customer).
    Add {
        #[arg(long, conflicts_with = "customer", required_unless_present = "customer")]
        email_stdin: bool,
        #[arg(long)]
        customer: Option<String>,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        command_id: Option<String>,
    },
    /// Take an entry off the list (operators), by the hash `list` shows.
    Remove {
        hash: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        command_id: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum RolesAction {
    /// Every grant, the bootstrap administrator, and your own role.
    List,
    /// Grant ROLE to PRINCIPAL, an IAM role or user ARN (a role session's ARN names its role):
    /// viewer, operator, administrator, or none to remove the grant. Takes effect on the
    /// principal's next request.
    Set {
        principal: String,
        role: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        command_id: Option<String>,
    },
}

/// The delivery a command acts on, and what every command carries.
#[derive(Args)]
pub(crate) struct OnDelivery {
    pub(crate) cycle: String,
    pub(crate) customer: String,
    /// Why (kept in the audit trail).
    #[arg(long)]
    pub(crate) reason: String,
    /// Replays safely when given again; a new one is made when absent.
    #[arg(long)]
    pub(crate) command_id: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum PolicyAction {
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
pub(crate) enum TemplateAction {
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
