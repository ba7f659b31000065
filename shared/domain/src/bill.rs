//! Bills: one per customer and cycle, with every line a self-contained
//! snapshot (names and prices copied from the catalog version used).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::calendar::Cycle;
use crate::customer::CustomerId;
use crate::money::Krw;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Plan,
    Addon,
    Usage,
    Discount,
    Vat,
    Rounding,
}

/// One line of a bill. `amount` is negative for discounts and rounding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillLine {
    pub kind: LineKind,
    /// Catalog code of the product or rule (`5G_STANDARD`, `DATA`,
    /// `DISC_CONTRACT`, `VAT`, …). Shared text: every bill of a settlement
    /// refers to the catalog's one copy instead of allocating its own.
    pub code: Arc<str>,
    /// Label as printed on the invoice, copied from the catalog.
    pub label: Arc<str>,
    /// Quantity in `unit` (days of service for fees, MB/seconds/messages for
    /// usage, count of charges for pass-through lines).
    pub quantity: i64,
    pub unit: Arc<str>,
    /// Price per unit where one applies (monthly fee, price per block).
    #[serde(default)]
    pub unit_price: Krw,
    pub amount: Krw,
    /// Whether the line is subject to VAT.
    pub taxable: bool,
    /// A short explanation for the customer (`20/30 days`, `1,234 MB over
    /// the 10,240 MB allowance`), empty when there is nothing to say.
    #[serde(default)]
    pub detail: String,
}

/// A settled bill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bill {
    pub cycle: Cycle,
    pub customer_id: CustomerId,
    pub shard: u32,
    pub catalog_version: String,
    /// Charges before discounts (plan, add-ons, usage).
    pub charges: Krw,
    /// Sum of discount lines (≤ 0).
    pub discounts: Krw,
    /// The discounted amount VAT is computed on.
    pub taxable_base: Krw,
    pub vat: Krw,
    /// Rounding adjustment to the final total (≤ 0, > -10).
    pub rounding: Krw,
    pub total: Krw,
    pub lines: Vec<BillLine>,
}

impl Bill {
    /// Deterministic bill id from (cycle, shard, customer): a re-run
    /// produces the same id and overwrites instead of adding.
    pub fn id(&self) -> String {
        bill_id(self.cycle, self.shard, &self.customer_id)
    }

    /// The sum of all line amounts; equals `total` for every valid bill.
    pub fn sum_of_lines(&self) -> Krw {
        self.lines.iter().map(|l| l.amount).sum()
    }
}

pub fn bill_id(cycle: Cycle, shard: u32, customer: &CustomerId) -> String {
    format!("{cycle}#{shard:05}#{customer}")
}
