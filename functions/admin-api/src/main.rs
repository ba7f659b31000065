#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(admin_api::Deps::from_vars, admin_api::handle).await
}
