use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = adapters::load_sdk_config().await;
    let deps = render_shard::Deps::from_vars(&sdk, &adapters::ProcessEnv)?;
    run(service_fn(|event| render_shard::handle(&deps, event))).await
}
