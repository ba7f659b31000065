#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(dispatch_slot::Deps::from_vars, dispatch_slot::handle).await
}
