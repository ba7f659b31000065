//! Billing rules, computed only from the cycle's dates, the customer
//! snapshot, the usage records and a pinned catalog version — never from the
//! clock — so the same inputs give the same bill in any month.
//!
//! * [`catalog`]: the versioned price list (plans, add-ons, usage products,
//!   discount tables), kept as data in `catalog/` and validated on load.
//! * [`usage`]: the usage file format (CSV, one file per shard) and its
//!   parser, which names file and line for every bad record.
//! * [`rating`]: the engine that turns one customer's snapshot and usage
//!   into a [`domain::Bill`], and [`rating::settle`] for a whole shard.

pub mod catalog;
pub mod rating;
pub mod usage;

pub use catalog::{Catalog, CatalogError};
pub use rating::{RatingError, ShardSettlement, Suspended, rate, settle, suspense_csv, suspense_key};
pub use usage::{UsageError, UsageParse, UsageRecord, parse_usage};
