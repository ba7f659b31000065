use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = adapters::load_sdk_config().await;
    let deps = admin_api::Deps::from_vars(&sdk, &adapters::ProcessEnv)?;
    run(service_fn(|event| admin_api::handle(&deps, event))).await
}
