//! `billingctl`: the operators' command line for a deployed stack.
//!
//! `--stack NAME` finds the stack's resources in its CloudFormation outputs: `upload` puts a
//! file into the drop zone and prints its ingest report, `settle start|status` runs and
//! follows a settlement as the console does, `env-json` writes the `sam local invoke`
//! environment file, and the admin commands reach the admin API at the stack's
//! `AdminApiUrl` (or `--url`).
//!
//! Every request is signed with SigV4 (service `lambda`) with the credentials of the default
//! AWS chain (environment, profile, SSO, role), as the function URL's `AWS_IAM` auth wants;
//! the identity is who the audit names, and its platform role (viewer, operator,
//! administrator; `billingctl roles`) what it may do. Tables by default, the API's JSON with
//! `--json`.
//!
//! Exit codes: 0 done; 1 failed (network, server error, unreadable answer, a stack output
//! missing); 2 usage; 3 not found (404, no such stack, no such execution or cycle); 4 refused
//! in this state or command id reused (409, an execution of that name exists already);
//! 5 bad request (400, 405); 6 not allowed (401, 403: the caller's role does not cover the
//! command; the message says which role it needs and which the caller has; for `upload`,
//! S3's refusal, naming the permission). `upload`: 0 the file was applied, 3 applied with
//! rejected lines, 4 the file was rejected (nothing applied), 7 no report within `--timeout`
//! (the file is uploaded; ingest may still run).
//!
//! Where things are: `cli` (the command line clap parses), `stack` (the AWS configuration and
//! the stack's outputs), `api` (the signed HTTP client and the failures that name the exit
//! code), `commands` (each group of commands: upload, settle, env-json, the reads, the
//! commands on one delivery, the settings and templates, the dead-letter queues, the
//! roles), `output` (tables, fields, `--json`). `main` runs the command and prints its
//! failure.

mod api;
mod cli;
mod commands;
mod console;
mod output;
mod stack;

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
                Failure::Exit { message, .. } if json_errors => {
                    eprintln!("{}", json!({"error": {"code": code, "message": message}}))
                }
                Failure::Exit { message, .. } | Failure::Other(message) => eprintln!("billingctl: {message}"),
            }
            ExitCode::from(code)
        }
    }
}
