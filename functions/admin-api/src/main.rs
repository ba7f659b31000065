#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(admin_api::Deps::load, admin_api::handle).await
}
