//! The generator: settings, per-shard generation and the shared tables.

use std::fmt::Write as _;
use std::ops::Range;

use billing::Catalog;
use billing::catalog::DEFAULT_CATALOG_JSON;
use domain::pii::Keyring;
use domain::{Customer, Cycle, QuietWindow};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::DatagenError;
use crate::names::{EMAIL_DOMAINS, FAMILY_NAMES};
use crate::parts::{Member, PHONE_SPACE, ProductIx, UsageLine};
use crate::rng::{Stream, Weighted, key_from_seed, splitmix64, stream_rng};

/// Customer ids have seven digits (`C0000001`).
pub const MAX_CUSTOMERS: u32 = 9_999_999;
/// Shard numbers in file names have five digits.
pub const MAX_SHARDS: u32 = 100_000;
/// Family groups are laid out in blocks of this many consecutive customers
/// (cut at shard ends), so a group never spans two shards and any block can
/// be generated alone.
pub const FAMILY_BLOCK: u32 = 40;

/// The order of the lines in a usage file.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum UsageOrder {
    /// As a mediation system drops them: customers interleaved (a seeded
    /// shuffle of the shard's lines). The default, and what the settlement
    /// benchmark should see.
    #[default]
    Shuffled,
    /// Grouped by customer, in customer order (easier to read).
    Customer,
}

/// The four kinds of malformed usage lines `--inject-bad` writes, in turn.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BadLineKind {
    /// Three columns instead of four: `C0000007,DATA,512`.
    ColumnCount,
    /// `C0000007,VOICE,-120,`.
    NegativeQuantity,
    /// `C0000007,DATA_6G,100,` (not in the catalog).
    UnknownProduct,
    /// `C0000007,MICROPAY,1,15000KRW`.
    NonNumericAmount,
}

impl BadLineKind {
    pub const ALL: [BadLineKind; 4] = [
        BadLineKind::ColumnCount,
        BadLineKind::NegativeQuantity,
        BadLineKind::UnknownProduct,
        BadLineKind::NonNumericAmount,
    ];

    /// The kind of the `j`-th injected line.
    pub fn of(j: u64) -> BadLineKind {
        Self::ALL[(j % 4) as usize]
    }
}

/// What to generate. The output depends on every field and on nothing else
/// (apart from the sealing key, which changes only the ciphertexts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenConfig {
    pub customers: u32,
    pub seed: u64,
    pub cycle: Cycle,
    pub shard_size: u32,
    /// Malformed usage lines to append, spread evenly over the shards.
    pub inject_bad: u32,
    pub usage_order: UsageOrder,
    /// Every generated customer must leave a slot outside this window.
    pub quiet_window: QuietWindow,
}

impl GenConfig {
    /// The defaults of the command line: seed 42, shards of 1,000, no bad
    /// lines, shuffled usage, the Korean quiet window.
    pub fn new(customers: u32, cycle: Cycle) -> Self {
        GenConfig {
            customers,
            seed: 42,
            cycle,
            shard_size: 1000,
            inject_bad: 0,
            usage_order: UsageOrder::Shuffled,
            quiet_window: QuietWindow::default_korea(),
        }
    }

    pub fn shard_count(&self) -> u32 {
        if self.shard_size == 0 {
            0
        } else {
            self.customers.div_ceil(self.shard_size)
        }
    }

    pub fn validate(&self) -> Result<(), DatagenError> {
        let bad = |m: String| Err(DatagenError::Config(m));
        if self.customers > MAX_CUSTOMERS {
            return bad(format!(
                "{} customers is over the maximum {MAX_CUSTOMERS} (ids have 7 digits)",
                self.customers
            ));
        }
        if self.shard_size == 0 {
            return bad("the shard size must be at least 1".into());
        }
        if self.shard_count() > MAX_SHARDS {
            return bad(format!(
                "{} shards is over the maximum {MAX_SHARDS} (shard numbers have 5 digits): raise the shard size",
                self.shard_count()
            ));
        }
        if self.inject_bad > 0 && self.customers == 0 {
            return bad("cannot inject bad usage lines into an empty data set".into());
        }
        Ok(())
    }
}

/// How a customer line carries the contact data.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ContactForm {
    /// Sealed with the generator's keyring, as the local data set stores it.
    Sealed,
    /// In clear, as a CRM export hands it to the drop zone.
    Clear,
}

/// One generated shard, in memory.
#[derive(Debug)]
pub struct ShardData {
    pub shard: u32,
    pub customers: Vec<Customer>,
    /// The customer file: one JSON object per line (contact data sealed,
    /// or in clear from [`Generator::crm_shard`]).
    pub customers_jsonl: Vec<u8>,
    /// The usage file, header included.
    pub usage_csv: Vec<u8>,
    /// Good usage lines (without the header and the injected bad lines).
    pub usage_lines: u32,
    pub bad_lines: u32,
    /// Customers with at least one day of service in the cycle.
    pub billable: u32,
}

/// A configured generator: the tables derived from the settings and the
/// catalog. Cheap to share between threads (`&Generator` is `Sync`).
///
/// Distributions (per customer unless said otherwise):
///
/// * **plan**: catalog plans weighted `LTE_SLIM` 15, `5G_LITE` 30,
///   `5G_STANDARD` 32, `5G_PREMIUM` 15, `5G_SIGNATURE` 8 (other codes 5);
/// * **add-ons**: 0–4 distinct ones, 50 / 28 / 12 / 7 / 3 %;
/// * **family groups**: about 30 % of customers, in groups of 2–5 consecutive
///   customers sharing group id (`F` + first member's number) and member
///   count, most sharing a family name;
/// * **selective contract**: 40 %, 12 or 24 months; of those 10 % end inside
///   the cycle, 10 % ended before it, the rest run past it;
/// * **joined**: uniform over the 15 years before the cycle, 1.5 % inside
///   the cycle; **cancelled**: 1 % inside the cycle (still billed,
///   prorated), 0.3 % in the 90 days before it (in the file, no bill);
/// * **birthday**: any day of the year, adults aged 18–85, at least 14 when
///   they joined;
/// * **send day**: 25 % the 15th, 20 % the 25th, the rest uniform 1–31;
/// * **DND**: 70 % none, 20 % night slots, 10 % two or more daytime slots;
///   re-drawn until the customer passes `Customer::validate`;
/// * **channel**: 85 % e-mail; **names** Korean; **e-mail** at example.com
///   / .net / .org; **phone** `010-XXXX-XXXX`, unique per customer.
///
/// Usage (only for customers billable in the cycle, scaled by their days of service):
/// 5 % none; DATA for 92 % (1–4 lines, 10 % above the plan's allowance),
/// VOICE 85 % (1–3), SMS 35 % (1–2), roaming 3 %, MICROPAY 15 % (1–3 lines,
/// 1,000–50,000 won), DEVICE_INST 35 % (one line, 20,000–60,000 won): about
/// five lines per customer.
pub struct Generator {
    pub(crate) cfg: GenConfig,
    pub(crate) catalog: Catalog,
    catalog_json: String,
    pub(crate) keys: Keyring,
    pub(crate) key: [u8; 32],
    pub(crate) plan_weights: Weighted,
    pub(crate) addon_count: Weighted,
    pub(crate) family_size: Weighted,
    pub(crate) surnames: Weighted,
    pub(crate) domains: Weighted,
    pub(crate) products: ProductIx,
    /// Offset of the phone-number permutation (from the seed).
    pub(crate) phone_offset: u64,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("cfg", &self.cfg)
            .field("catalog", &self.catalog.version())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

const PLAN_WEIGHTS: &[(&str, u32)] = &[
    ("LTE_SLIM", 15),
    ("5G_LITE", 30),
    ("5G_STANDARD", 32),
    ("5G_PREMIUM", 15),
    ("5G_SIGNATURE", 8),
];
const OTHER_PLAN_WEIGHT: u32 = 5;

impl Generator {
    /// A generator for the catalog the repository ships.
    pub fn new(cfg: GenConfig, keys: Keyring) -> Result<Self, DatagenError> {
        Self::with_catalog(cfg, keys, DEFAULT_CATALOG_JSON, billing::catalog::DEFAULT_CATALOG_FILE)
    }

    /// A generator for another catalog document (`source_name` is named in
    /// errors). The data set gets a verbatim copy of `catalog_json`.
    pub fn with_catalog(
        cfg: GenConfig,
        keys: Keyring,
        catalog_json: &str,
        source_name: &str,
    ) -> Result<Self, DatagenError> {
        cfg.validate()?;
        let catalog = Catalog::from_json(catalog_json, source_name)?;
        let plans = &catalog.doc().plans;
        let plan_weights = Weighted::new(plans.iter().map(|p| {
            PLAN_WEIGHTS
                .iter()
                .find(|(c, _)| *c == p.code)
                .map_or(OTHER_PLAN_WEIGHT, |(_, w)| *w)
        }))
        .ok_or_else(|| DatagenError::Config("the catalog has no plans".into()))?;
        let addons = catalog.doc().addons.len();
        let addon_count = Weighted::new([50, 28, 12, 7, 3].into_iter().take(addons.min(4) + 1))
            .ok_or_else(|| DatagenError::Config("no add-on weights".into()))?;
        let weighted =
            |w: Option<Weighted>, what: &str| w.ok_or_else(|| DatagenError::Config(format!("no {what} weights")));
        let family_size = weighted(Weighted::new([40, 30, 20, 10]), "family size")?;
        let surnames = weighted(Weighted::new(FAMILY_NAMES.iter().map(|x| x.2)), "family name")?;
        let domains = weighted(Weighted::new(EMAIL_DOMAINS.iter().map(|x| x.1)), "domain")?;
        let products = ProductIx::from_catalog(&catalog);
        let mut s = cfg.seed ^ 0x5048_4f4e_4521; // "PHONE!"
        let phone_offset = splitmix64(&mut s) % PHONE_SPACE;
        Ok(Generator {
            key: key_from_seed(cfg.seed),
            cfg,
            catalog,
            catalog_json: catalog_json.to_owned(),
            keys,
            plan_weights,
            addon_count,
            family_size,
            surnames,
            domains,
            products,
            phone_offset,
        })
    }

    pub fn config(&self) -> &GenConfig {
        &self.cfg
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The catalog document as it is copied into the data set.
    pub fn catalog_json(&self) -> &str {
        &self.catalog_json
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keys
    }

    pub fn shard_count(&self) -> u32 {
        self.cfg.shard_count()
    }

    /// Customer indices (0-based; the id is index + 1) of a shard.
    pub fn shard_range(&self, shard: u32) -> Range<u32> {
        let start = shard.saturating_mul(self.cfg.shard_size).min(self.cfg.customers);
        let end = start.saturating_add(self.cfg.shard_size).min(self.cfg.customers);
        start..end
    }

    /// The customer with a 0-based index, exactly as in its shard file.
    pub fn customer(&self, index: u32) -> Result<Customer, DatagenError> {
        if index >= self.cfg.customers {
            return Err(DatagenError::Config(format!(
                "customer index {index} is beyond {}",
                self.cfg.customers
            )));
        }
        let (start, members) = self.block_of(index);
        let member = members.get((index - start) as usize).copied().flatten();
        self.make_customer(index, member).map(|(c, _)| c)
    }

    /// The family block containing `index`: its first index and its layout.
    fn block_of(&self, index: u32) -> (u32, Vec<Option<Member>>) {
        let shard = self.shard_range(index / self.cfg.shard_size);
        let start = shard.start + (index - shard.start) / FAMILY_BLOCK * FAMILY_BLOCK;
        let end = (start + FAMILY_BLOCK).min(shard.end);
        (start, self.family_block(start, end))
    }

    /// Generates one shard in memory: its customers, customer file and
    /// usage file.
    pub fn shard(&self, shard: u32) -> Result<ShardData, DatagenError> {
        self.shard_as(shard, ContactForm::Sealed)
    }

    /// The same shard with its customer lines as the drop zone takes them:
    /// the contact data in clear ([`crate::CrmCustomer`]), every other field
    /// and the usage file as [`Generator::shard`] writes them. `customers`
    /// still holds the sealed records.
    pub fn crm_shard(&self, shard: u32) -> Result<ShardData, DatagenError> {
        self.shard_as(shard, ContactForm::Clear)
    }

    fn shard_as(&self, shard: u32, form: ContactForm) -> Result<ShardData, DatagenError> {
        let range = self.shard_range(shard);
        let n = range.len();
        let mut customers = Vec::with_capacity(n);
        let mut jsonl = Vec::with_capacity(n * 640);
        let mut lines: Vec<UsageLine> = Vec::with_capacity(n * 6);
        let mut billable = 0u32;
        let mut block: (u32, Vec<Option<Member>>) = (u32::MAX, Vec::new());
        for index in range.clone() {
            if block.0 == u32::MAX || index >= block.0 + block.1.len() as u32 {
                block = self.block_of(index);
            }
            let member = block.1.get((index - block.0) as usize).copied().flatten();
            let (customer, clear, plan_ix) = self.make_customer_clear(index, member)?;
            let written = match form {
                ContactForm::Sealed => serde_json::to_writer(&mut jsonl, &customer),
                ContactForm::Clear => serde_json::to_writer(&mut jsonl, &customer.with_contact(clear)),
            };
            written.map_err(|e| DatagenError::Format {
                path: crate::write::customers_file(shard).into(),
                what: "customer record",
                message: e.to_string(),
            })?;
            jsonl.push(b'\n');
            if customer.is_billable(self.cfg.cycle) {
                billable += 1;
                self.usage_for(index, &customer, plan_ix, &mut lines);
            }
            customers.push(customer);
        }
        if self.cfg.usage_order == UsageOrder::Shuffled {
            lines.shuffle(&mut stream_rng(&self.key, Stream::ShardOrder, u64::from(shard)));
        }
        let mut csv = String::with_capacity(40 + lines.len() * 24);
        csv.push_str(billing::usage::HEADER);
        csv.push('\n');
        for l in &lines {
            self.write_usage_line(&mut csv, l);
        }
        let bad_lines = self.write_bad_lines(shard, &range, &mut csv);
        Ok(ShardData {
            shard,
            customers,
            customers_jsonl: jsonl,
            usage_csv: csv.into_bytes(),
            usage_lines: u32::try_from(lines.len()).unwrap_or(u32::MAX),
            bad_lines,
            billable,
        })
    }

    /// The injected lines `j` with `floor(j × shards ÷ K) == shard`, so the K
    /// lines are spread evenly over the shards.
    fn bad_lines_of(&self, shard: u32) -> Range<u64> {
        let k = u64::from(self.cfg.inject_bad);
        let s = u64::from(self.shard_count().max(1));
        let first = |sh: u64| (sh * k).div_ceil(s);
        first(u64::from(shard))..first(u64::from(shard) + 1)
    }

    fn write_bad_lines(&self, shard: u32, customers: &Range<u32>, csv: &mut String) -> u32 {
        let mut n = 0;
        for j in self.bad_lines_of(shard) {
            let mut r: ChaCha8Rng = stream_rng(&self.key, Stream::BadLines, j);
            let index = r.random_range(customers.clone());
            let id = index + 1;
            // Writing to a String cannot fail.
            let _ = match BadLineKind::of(j) {
                BadLineKind::ColumnCount => writeln!(csv, "C{id:07},DATA,{}", r.random_range(1..5000)),
                BadLineKind::NegativeQuantity => writeln!(csv, "C{id:07},VOICE,-{},", r.random_range(1..600)),
                BadLineKind::UnknownProduct => writeln!(csv, "C{id:07},DATA_6G,{},", r.random_range(1..5000)),
                BadLineKind::NonNumericAmount => {
                    writeln!(csv, "C{id:07},MICROPAY,1,{}KRW", r.random_range(10..500) * 100)
                }
            };
            n += 1;
        }
        n
    }

    /// `C0000042,DATA,512,` — written digit by digit (this runs ~5 times
    /// per customer; `write!` costs a third of the generator's own time).
    fn write_usage_line(&self, csv: &mut String, l: &UsageLine) {
        let code = self.catalog.product(l.product).map_or("", |p| p.code.as_str());
        push_customer_id(csv, l.customer + 1);
        csv.push(',');
        csv.push_str(code);
        csv.push(',');
        push_uint(csv, u64::try_from(l.quantity).unwrap_or(0));
        csv.push(',');
        if l.amount > 0 {
            push_uint(csv, u64::try_from(l.amount).unwrap_or(0));
        }
        csv.push('\n');
    }
}

/// `C` and seven digits.
fn push_customer_id(out: &mut String, id: u32) {
    let mut buf = *b"C0000000";
    let mut v = id;
    for b in buf[1..].iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.push_str(std::str::from_utf8(&buf).unwrap_or("C???????"));
}

fn push_uint(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_like_display() {
        for v in [0u64, 7, 10, 99, 1_000, 123_456_789, u64::MAX] {
            let mut s = String::new();
            push_uint(&mut s, v);
            assert_eq!(s, v.to_string());
        }
        let mut s = String::new();
        push_customer_id(&mut s, 42);
        push_customer_id(&mut s, 9_999_999);
        assert_eq!(s, "C0000042C9999999");
    }
}
