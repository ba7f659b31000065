use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let deps = settle_shard::Deps::from_env().await?;
    run(service_fn(|event| settle_shard::handle(&deps, event))).await
}
