#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(render_shard::Deps::from_vars, render_shard::handle).await
}
