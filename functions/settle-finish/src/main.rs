#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(settle_finish::Deps::load, settle_finish::handle).await
}
