//! Deterministic demo and benchmark data for one billing cycle: customers
//! (contact data sealed), usage files in the format of [`billing::usage`],
//! a copy of the pinned catalog and a manifest.
//!
//! # Layout of a data set
//!
//! ```text
//! <out>/catalog/<version>.json              the catalog the cycle pins
//! <out>/customers/shard-00000.jsonl         one `domain::Customer` per line
//! <out>/usage/<cycle>/shard-00000.csv       the usage file of that shard
//! <out>/manifest.json                       what was generated and how (written last)
//! ```
//!
//! [`write_drop_zone`] writes the same population as a deployed stack's
//! drop zone takes it: the catalog, one customers file with the contact
//! data in clear, the same usage files and `drop-zone.json`.
//!
//! Shard `n` holds customers `n × shard_size ..`, ids `C0000001`, `C0000002`, …
//!
//! # Determinism
//!
//! The bytes written depend only on the seed, the customer count, the cycle,
//! the shard size and the generator options (usage order, injected bad
//! lines, quiet window, sealing key) — never on the clock, the thread count
//! or the order in which shards are written. Every customer draws from its
//! own ChaCha8 stream keyed by `(seed, customer index)`, its usage from a
//! second stream, family groups from a stream per block of
//! [`FAMILY_BLOCK`] customers and the line order of a usage file from a
//! stream per shard, so any shard can be generated alone, in any thread.
//!
//! # Distributions
//!
//! All dates are computed from the cycle: see [`Generator`] for the shares
//! (plans, add-ons, family groups, contracts, joins and cancellations, send
//! days, DND slots, channels) and the usage mix (about five lines per
//! customer).

mod drop_zone;
mod error;
mod gen_customer;
mod gen_usage;
mod generator;
mod manifest;
mod names;
mod parts;
mod read;
mod rng;
mod write;

pub use drop_zone::{
    BadCustomerKind, BadCustomerLine, CUSTOMERS_FILE_LIMIT, ClearContact, CrmCustomer, DROP_ZONE_PREFIX, DropFile,
    DropZoneManifest, DropZoneOptions, bad_lines_for, crm_customers_file, write_drop_zone,
};
pub use error::DatagenError;
pub use generator::{
    BadLineKind, FAMILY_BLOCK, GenConfig, Generator, MAX_CUSTOMERS, MAX_SHARDS, ShardData, UsageOrder,
};
pub use manifest::{Manifest, ShardEntry};
pub use read::{LineError, read_customers};
pub use write::{ShardStats, Summary, customers_file, keyring_from_spec, usage_file, write_dataset};

/// The generator's version, recorded in every manifest. The part after `+`
/// changes whenever the distributions change, so that a manifest tells which
/// algorithm produced its bytes.
pub const GENERATOR_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+gen1");
