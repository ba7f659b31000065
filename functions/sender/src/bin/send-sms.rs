// The handler's future nests every step of the send pipeline; under the runtime's own futures
// its layout is deeper than the default limit of 128.
#![recursion_limit = "256"]

use domain::Channel;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::run(
        |sdk, env| sender::Deps::from_vars(Channel::Sms, sdk, env),
        sender::handle,
    )
    .await
}
