#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(settle_begin::Deps::load, settle_begin::handle).await
}
