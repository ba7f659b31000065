//! `billingctl`: the operators' command line for the admin API.
//!
//! Every request is signed with SigV4 (service `lambda`) with the credentials of the default
//! AWS chain (environment, profile, SSO, role), as the function URL's `AWS_IAM` auth wants;
//! the identity is who the audit names, and its platform role (viewer, operator,
//! administrator; `billingctl roles`) what it may do. Tables by default, the API's JSON with
//! `--json`.
//!
//! Exit codes: 0 done; 1 failed (network, server error, unreadable answer); 2 usage;
//! 3 not found (404); 4 refused in this state or command id reused (409); 5 bad request
//! (400, 405); 6 not allowed (401, 403: the caller's role does not cover the command; the
//! message says which role it needs and which the caller has).
//!
//! Where things are: `cli` (the command line clap parses), `api` (the signed HTTP client and
//! the failures that name the exit code), `commands` (each group of commands: the reads, the
//! commands on one delivery, the settings and templates, the dead-letter queues, the
//! roles), `output` (tables, fields, `--json`). `main` runs the command and prints its
//! failure.

mod api;
mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;
use serde_json::json;

use crate::api::Failure;
use crate::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_errors = cli.json;
    match commands::run(cli).await {
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
                Failure::Api { status, code, message } => {
                    eprintln!("billingctl: {status} {code}: {message}");
                    if *status == 403 {
                        eprintln!(
                            "billingctl: not allowed for the caller your AWS credentials sign as; an administrator grants \
                             roles with `billingctl roles set PRINCIPAL ROLE --reason ...` (docs/admin-api.md#roles)"
                        );
                    }
                }
                Failure::Other(m) => eprintln!("billingctl: {m}"),
            }
            ExitCode::from(code)
        }
    }
}
