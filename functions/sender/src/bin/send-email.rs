#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sender::serve(domain::Channel::Email).await
}
