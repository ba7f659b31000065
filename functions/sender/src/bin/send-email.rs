use domain::Channel;
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = adapters::load_sdk_config().await;
    let deps = sender::Deps::from_vars(Channel::Email, &sdk, &adapters::ProcessEnv)?;
    run(service_fn(|event| sender::handle_lambda(&deps, event))).await
}
