//! Set-ups the end-to-end tests share on top of [`Month`].

use crate::{DataSet, Month, generate};

/// A fresh stack named after `name` with a generated month loaded into it: `customers`
/// customers in shards of `shard_size` (see [`generate`]).
pub async fn loaded(name: &str, customers: u32, shard_size: u32) -> anyhow::Result<(DataSet, Month)> {
    let data = generate(customers, shard_size)?;
    let month = Month::new(name).await?;
    month.load(&data).await?;
    Ok((data, month))
}
