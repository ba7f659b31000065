//! The admin API on a loopback port, over the stack a local run provisioned:
//!
//!     set -a; . out/month/stack.env; set +a
//!     export AWS_REGION=ap-northeast-2 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
//!     cargo run -p admin-local -- 8080
//!     BILLING_ADMIN_URL=http://127.0.0.1:8080/ billingctl cycle 2026-11
//!
//! Requests must carry a SigV4 `Authorization` header (billingctl signs with any
//! credentials); its access key id names the caller: a session of the stack's bootstrap
//! administrator role named after the key, unless `ADMIN_LOCAL_CALLERS=KEY=ARN[,KEY=ARN...]`
//! gives the key another caller (to try the other roles). Signatures are not verified.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    lambda_runtime::tracing::init_default_subscriber();
    let port = match std::env::args().nth(1).map(|p| p.parse::<u16>()) {
        None => 8080,
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            eprintln!("usage: admin-api-local [PORT]  (the variables of out/<run>/stack.env in the environment)");
            return ExitCode::from(2);
        }
    };
    let sdk = adapters::load_sdk_config().await;
    let deps = match admin_api::Deps::load(&sdk, &adapters::ProcessEnv).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("admin-api-local: {e} (source out/<run>/stack.env first)");
            return ExitCode::from(2);
        }
    };
    let callers = match admin_local::Callers::parse(&std::env::var("ADMIN_LOCAL_CALLERS").unwrap_or_default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("admin-api-local: ADMIN_LOCAL_CALLERS: {e}");
            return ExitCode::from(2);
        }
    };
    match admin_local::start_with(deps, port, callers).await {
        Ok(addr) => {
            println!("admin API on http://{addr}/ (Ctrl-C stops)");
            let _ = tokio::signal::ctrl_c().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("admin-api-local: cannot listen on 127.0.0.1:{port}: {e}");
            ExitCode::FAILURE
        }
    }
}
