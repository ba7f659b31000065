#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(delivery_events::Deps::load, delivery_events::handle).await
}
