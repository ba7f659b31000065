#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(dispatch_slot::Deps::load, dispatch_slot::handle).await
}
