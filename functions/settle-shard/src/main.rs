#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(settle_shard::Deps::load, settle_shard::handle).await
}
