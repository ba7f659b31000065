//! The DynamoDB capacity units the emulator counted (`shared/local-aws/capacity.py`): per
//! table, per index and per operation, by DynamoDB's rules for item sizes, conditional
//! writes, transactions and global secondary indexes.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Emulator;
use super::router::percent_encode;
use crate::{Error, admin};

/// Write and read units of one table, index or operation.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
pub struct Units {
    pub write_units: f64,
    pub read_units: f64,
}

impl Units {
    /// `self` minus `earlier` (never below zero).
    pub fn since(self, earlier: Units) -> Units {
        Units {
            write_units: (self.write_units - earlier.write_units).max(0.0),
            read_units: (self.read_units - earlier.read_units).max(0.0),
        }
    }
}

/// The units of one index of a table.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct IndexCapacity {
    #[serde(flatten)]
    pub units: Units,
    /// By DynamoDB operation (`PutItem`, `Query`, …).
    #[serde(default)]
    pub operations: BTreeMap<String, Units>,
}

/// The units of one table: its own (`units`, `operations`) and each index's apart.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct TableCapacity {
    #[serde(flatten)]
    pub units: Units,
    #[serde(default)]
    pub operations: BTreeMap<String, Units>,
    #[serde(default)]
    pub indexes: BTreeMap<String, IndexCapacity>,
}

/// The units counted per table name.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Capacity {
    pub tables: BTreeMap<String, TableCapacity>,
}

fn ops_since(now: &BTreeMap<String, Units>, earlier: &BTreeMap<String, Units>) -> BTreeMap<String, Units> {
    now.iter()
        .map(|(k, u)| (k.clone(), u.since(earlier.get(k).copied().unwrap_or_default())))
        .collect()
}

impl Capacity {
    /// What was consumed between `earlier` and `self` (two readings of the same emulator).
    pub fn since(&self, earlier: &Capacity) -> Capacity {
        let empty = TableCapacity::default();
        let tables = self
            .tables
            .iter()
            .map(|(name, t)| {
                let e = earlier.tables.get(name).unwrap_or(&empty);
                let indexes = t
                    .indexes
                    .iter()
                    .map(|(i, now)| {
                        let before = e.indexes.get(i).cloned().unwrap_or_default();
                        let c = IndexCapacity {
                            units: now.units.since(before.units),
                            operations: ops_since(&now.operations, &before.operations),
                        };
                        (i.clone(), c)
                    })
                    .collect();
                let c = TableCapacity {
                    units: t.units.since(e.units),
                    operations: ops_since(&t.operations, &e.operations),
                    indexes,
                };
                (name.clone(), c)
            })
            .collect();
        Capacity { tables }
    }
}

impl Emulator {
    /// The DynamoDB capacity units the emulator counted since it started (or since the last
    /// reset of the request counts) for tables whose name contains `contains`. Fails with
    /// [`Error::NoLambdaRouter`] when the emulator is a plain moto server.
    pub async fn capacity(&self, contains: &str) -> Result<Capacity, Error> {
        let path = format!("/_local/capacity?contains={}", percent_encode(contains));
        let (status, text) = admin::request(self.endpoint_url(), "GET", &path, None).await?;
        match serde_json::from_str::<Capacity>(&text) {
            Ok(c) if (200..300).contains(&status) => Ok(c),
            _ => Err(self.no_router(status, &text)),
        }
    }

    /// Forget the capacity counted so far (the request counts stay).
    pub async fn reset_capacity(&self) -> Result<(), Error> {
        let (status, text) = admin::request(self.endpoint_url(), "POST", "/_local/capacity/reset", None).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(self.no_router(status, &text))
        }
    }
}
