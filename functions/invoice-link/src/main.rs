#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(invoice_link::Deps::load, invoice_link::handle).await
}
