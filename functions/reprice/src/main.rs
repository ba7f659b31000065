#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(reprice::Deps::load, reprice::handle).await
}
