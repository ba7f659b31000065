#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(record_failure::Deps::load, record_failure::handle).await
}
