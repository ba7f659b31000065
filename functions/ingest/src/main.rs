#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(ingest::Deps::load, ingest::handle).await
}
