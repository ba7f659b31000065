#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(render_shard::Deps::load, render_shard::handle).await
}
