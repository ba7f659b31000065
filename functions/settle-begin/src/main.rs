#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(settle_begin::Deps::from_vars, settle_begin::handle).await
}
