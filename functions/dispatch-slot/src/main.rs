use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = adapters::load_sdk_config().await;
    let deps = dispatch_slot::Deps::from_vars(&sdk, &adapters::ProcessEnv)?;
    run(service_fn(|event| dispatch_slot::handle_invocation(&deps, event))).await
}
