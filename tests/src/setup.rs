//! Set-ups the end-to-end tests share on top of [`Month`].

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{DataSet, Month, generate};

/// A fresh stack named after `name` with a generated month loaded into it: `customers`
/// customers in shards of `shard_size` (see [`generate`]).
pub async fn loaded(name: &str, customers: u32, shard_size: u32) -> anyhow::Result<(DataSet, Month)> {
    let data = generate(customers, shard_size)?;
    let month = Month::new(name).await?;
    month.load(&data).await?;
    Ok((data, month))
}

/// Serves the function `logical_id` of `month` with `handle` over `deps` (settings a test
/// chose) in place of the deployed ones, five minutes an invocation.
pub async fn rehost<D, In, Out, E, F, Fut>(month: &Month, logical_id: &str, deps: D, handle: F) -> anyhow::Result<()>
where
    D: Send + Sync + 'static,
    In: DeserializeOwned + Send + 'static,
    Out: Serialize + 'static,
    E: Into<Diagnostic> + 'static,
    F: Fn(Arc<D>, LambdaEvent<In>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Out, E>> + Send + 'static,
{
    let deps = Arc::new(deps);
    let name = month.function(logical_id);
    let serve = move |ev| handle(deps.clone(), ev);
    month
        .host
        .register_fn(month.emulator, &name, Duration::from_secs(300), serve)
        .await?;
    Ok(())
}
