#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(settle_shard::Deps::from_vars, settle_shard::handle).await
}
