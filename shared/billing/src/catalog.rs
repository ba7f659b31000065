//! The versioned catalog. A cycle pins one version and every bill records
//! it; a published version never changes (the store refuses a different
//! document under an existing version).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use domain::Krw;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The catalog the repository ships (`catalog/2026-v1.json`).
pub const DEFAULT_CATALOG_JSON: &str = include_str!("../../../catalog/2026-v1.json");
pub const DEFAULT_CATALOG_FILE: &str = "catalog/2026-v1.json";
/// The second shipped version (`catalog/2026-v2.json`): 2026-v1 with a lower 5G_STANDARD fee
/// and a larger 10-year long-term discount, effective from December 2026.
pub const CATALOG_2026_V2_JSON: &str = include_str!("../../../catalog/2026-v2.json");
pub const CATALOG_2026_V2_FILE: &str = "catalog/2026-v2.json";

/// Every catalog version the repository ships: (version, file, JSON).
pub const SHIPPED_CATALOGS: [(&str, &str, &str); 2] = [
    ("2026-v1", DEFAULT_CATALOG_FILE, DEFAULT_CATALOG_JSON),
    ("2026-v2", CATALOG_2026_V2_FILE, CATALOG_2026_V2_JSON),
];

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Basic,
    Standard,
    Premium,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub code: String,
    pub name: String,
    pub tier: Tier,
    pub monthly_fee: Krw,
    /// Included data in MB per month; `null` = unlimited.
    pub data_mb: Option<i64>,
    /// Included voice in seconds per month; `null` = unlimited.
    pub voice_sec: Option<i64>,
    /// Included messages per month; `null` = unlimited.
    pub sms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addon {
    pub code: String,
    pub name: String,
    pub monthly_fee: Krw,
    /// The add-on's price on particular plans or plan tiers (e.g. included in one plan, half
    /// price on premium plans). A row naming the customer's plan wins over a row naming its
    /// tier; with neither, `monthly_fee` applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan_prices: Vec<AddonPrice>,
}

/// One row of an add-on's plan-dependent price: exactly one of `plan` and `tier`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonPrice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    pub monthly_fee: Krw,
}

impl Addon {
    /// The monthly fee of this add-on for a customer on `plan`.
    pub fn fee_on(&self, plan: &Plan) -> Krw {
        self.plan_prices
            .iter()
            .find(|p| p.plan.as_deref() == Some(plan.code.as_str()))
            .or_else(|| self.plan_prices.iter().find(|p| p.tier == Some(plan.tier)))
            .map_or(self.monthly_fee, |p| p.monthly_fee)
    }
}

/// The kind of a wired line.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WiredKind {
    Internet,
    Iptv,
}

/// A wired product (internet or IPTV) billed on the mobile bill, prorated like an add-on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WiredProduct {
    pub code: String,
    pub name: String,
    pub kind: WiredKind,
    pub monthly_fee: Krw,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Allowance {
    Data,
    Voice,
    Sms,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Pricing {
    /// Charged per started `block` of units beyond the plan's allowance (if
    /// any). Usage records carry a quantity and no amount.
    Metered {
        allowance: Option<Allowance>,
        block: i64,
        price_per_block: Krw,
    },
    /// Charged as recorded: usage records carry an amount (micropayments,
    /// device instalments).
    PassThrough,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageProduct {
    pub code: String,
    pub name: String,
    pub unit: String,
    pub pricing: Pricing,
    pub taxable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PercentRule {
    pub code: String,
    pub name: String,
    pub percent: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyRow {
    pub min_members: u8,
    pub tier: Tier,
    pub percent: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyRule {
    pub code: String,
    pub name: String,
    pub table: Vec<FamilyRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YearsTier {
    pub min_years: u32,
    pub percent: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongTermRule {
    pub code: String,
    pub name: String,
    pub tiers: Vec<YearsTier>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmountRule {
    pub code: String,
    pub name: String,
    pub amount: Krw,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonCountTier {
    pub min_addons: u32,
    pub percent: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonTierRule {
    pub code: String,
    pub name: String,
    pub tiers: Vec<AddonCountTier>,
}

/// One welfare grade: a percentage of the plan fee with a monthly cap in won.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WelfareGrade {
    pub grade: String,
    pub name: String,
    pub percent: u32,
    pub monthly_cap: Krw,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WelfareRule {
    pub code: String,
    pub name: String,
    pub grades: Vec<WelfareGrade>,
}

/// A fixed monthly amount off the plan fee of the listed tiers under a premium contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PremiumContractRule {
    pub code: String,
    pub name: String,
    pub amount: Krw,
    pub tiers: Vec<Tier>,
}

/// A line on the bill a wired bundle counts: the mobile line (always there) or a wired kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BundlePart {
    Mobile,
    Internet,
    Iptv,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WiredBundleRow {
    /// Every part must be on the bill for the row to apply.
    pub parts: Vec<BundlePart>,
    pub percent: u32,
}

/// A percentage off the wired lines' charges when the bill holds the parts of a row; of the
/// rows that apply, the one with the largest percentage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WiredBundleRule {
    pub code: String,
    pub name: String,
    pub rows: Vec<WiredBundleRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discounts {
    pub contract: PercentRule,
    pub family: FamilyRule,
    pub long_term: LongTermRule,
    pub birthday: AmountRule,
    pub addon_tiers: AddonTierRule,
    /// The plan-fee discounts together never exceed this share of the
    /// (prorated) plan fee.
    pub plan_discount_cap_percent: u32,
    /// Soldier discount (병사 요금할인): percent of the plan fee for the days of military
    /// service; on a day the selective contract also covers, only the larger applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soldier: Option<PercentRule>,
    /// Welfare discount (복지 할인) by grade, outside the plan-discount cap, with its own
    /// monthly cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welfare: Option<WelfareRule>,
    /// Premium-contract discount: a fixed monthly amount, prorated by the days covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub premium_contract: Option<PremiumContractRule>,
    /// Wired bundle discount on the wired lines' charges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wired_bundle: Option<WiredBundleRule>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogDoc {
    pub version: String,
    pub effective_from: NaiveDate,
    pub currency: String,
    pub vat_percent: u32,
    /// The final total is rounded down to a multiple of this many won.
    pub total_rounding_unit: i64,
    pub plans: Vec<Plan>,
    pub addons: Vec<Addon>,
    pub usage_products: Vec<UsageProduct>,
    /// Internet and IPTV products billed with the mobile line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wired_products: Vec<WiredProduct>,
    pub discounts: Discounts,
}

/// The text of a bill line, shared by every bill that has the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineText {
    pub code: Arc<str>,
    pub label: Arc<str>,
    pub unit: Arc<str>,
}

impl LineText {
    fn new(code: &str, label: &str, unit: &str) -> Self {
        LineText {
            code: code.into(),
            label: label.into(),
            unit: unit.into(),
        }
    }
}

/// Line texts of a catalog version, built once when it is loaded.
#[derive(Clone, Debug)]
pub struct Texts {
    /// By plan index; unit "일" (days of service).
    pub plans: Vec<LineText>,
    /// By add-on index; unit "일".
    pub addons: Vec<LineText>,
    /// By usage product index; the product's unit.
    pub products: Vec<LineText>,
    pub contract: LineText,
    pub family: LineText,
    pub long_term: LineText,
    pub birthday: LineText,
    pub addon_tiers: LineText,
    /// By wired product index; unit "일".
    pub wired: Vec<LineText>,
    pub soldier: Option<LineText>,
    pub welfare: Option<LineText>,
    pub premium_contract: Option<LineText>,
    pub wired_bundle: Option<LineText>,
    pub vat: LineText,
    pub rounding: LineText,
}

impl Texts {
    fn of(doc: &CatalogDoc) -> Texts {
        let d = &doc.discounts;
        Texts {
            plans: doc
                .plans
                .iter()
                .map(|p| LineText::new(&p.code, &p.name, "일"))
                .collect(),
            addons: doc
                .addons
                .iter()
                .map(|a| LineText::new(&a.code, &a.name, "일"))
                .collect(),
            products: doc
                .usage_products
                .iter()
                .map(|p| LineText::new(&p.code, &p.name, &p.unit))
                .collect(),
            contract: LineText::new(&d.contract.code, &d.contract.name, ""),
            family: LineText::new(&d.family.code, &d.family.name, ""),
            long_term: LineText::new(&d.long_term.code, &d.long_term.name, ""),
            birthday: LineText::new(&d.birthday.code, &d.birthday.name, ""),
            addon_tiers: LineText::new(&d.addon_tiers.code, &d.addon_tiers.name, ""),
            wired: doc
                .wired_products
                .iter()
                .map(|w| LineText::new(&w.code, &w.name, "일"))
                .collect(),
            soldier: d.soldier.as_ref().map(|r| LineText::new(&r.code, &r.name, "")),
            welfare: d.welfare.as_ref().map(|r| LineText::new(&r.code, &r.name, "")),
            premium_contract: d.premium_contract.as_ref().map(|r| LineText::new(&r.code, &r.name, "")),
            wired_bundle: d.wired_bundle.as_ref().map(|r| LineText::new(&r.code, &r.name, "")),
            vat: LineText::new("VAT", "부가가치세", ""),
            rounding: LineText::new("ROUNDING", "원 단위 절사", ""),
        }
    }
}

/// A validated catalog with code indexes.
#[derive(Clone, Debug)]
pub struct Catalog {
    doc: CatalogDoc,
    texts: Texts,
    digest: String,
    plans: HashMap<String, usize>,
    addons: HashMap<String, usize>,
    products: HashMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("{source_name}: not a valid catalog document: {message}")]
    Parse { source_name: String, message: String },
    #[error("{source_name}: {message}")]
    Invalid { source_name: String, message: String },
}

/// Upper bounds that keep every computation far from `i64` overflow.
pub const MAX_FEE: i64 = 100_000_000;
pub const MAX_ALLOWANCE: i64 = 1_000_000_000_000;

impl Catalog {
    /// The catalog shipped in the repository.
    pub fn default_catalog() -> Result<Catalog, CatalogError> {
        Catalog::from_json(DEFAULT_CATALOG_JSON, DEFAULT_CATALOG_FILE)
    }

    /// A catalog version the repository ships ([`SHIPPED_CATALOGS`]), by its version name.
    pub fn shipped(version: &str) -> Result<Catalog, CatalogError> {
        let (_, file, json) =
            SHIPPED_CATALOGS
                .iter()
                .find(|(v, _, _)| *v == version)
                .ok_or_else(|| CatalogError::Invalid {
                    source_name: "catalog".to_owned(),
                    message: format!(
                        "no shipped catalog has the version asked for (shipped: {})",
                        SHIPPED_CATALOGS.map(|(v, _, _)| v).join(", ")
                    ),
                })?;
        Catalog::from_json(json, file)
    }

    /// Parses and validates a catalog document. `source_name` (a file name
    /// or store key) is named in every error.
    pub fn from_json(json: &str, source_name: &str) -> Result<Catalog, CatalogError> {
        let doc: CatalogDoc = serde_json::from_str(json).map_err(|e| CatalogError::Parse {
            source_name: source_name.to_owned(),
            message: e.to_string(),
        })?;
        Catalog::from_doc(doc, source_name)
    }

    pub fn from_doc(doc: CatalogDoc, source_name: &str) -> Result<Catalog, CatalogError> {
        validate(&doc).map_err(|message| CatalogError::Invalid {
            source_name: source_name.to_owned(),
            message,
        })?;
        let index = |codes: Vec<&String>| codes.into_iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
        let canonical = serde_json::to_vec(&doc).map_err(|e| CatalogError::Parse {
            source_name: source_name.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Catalog {
            plans: index(doc.plans.iter().map(|p| &p.code).collect()),
            addons: index(doc.addons.iter().map(|p| &p.code).collect()),
            products: index(doc.usage_products.iter().map(|p| &p.code).collect()),
            digest: hex::encode(Sha256::digest(&canonical)),
            texts: Texts::of(&doc),
            doc,
        })
    }

    pub fn doc(&self) -> &CatalogDoc {
        &self.doc
    }

    pub fn version(&self) -> &str {
        &self.doc.version
    }

    /// SHA-256 of the canonical JSON of the document: two stores holding the
    /// same version must hold the same digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn to_json(&self) -> String {
        // A `CatalogDoc` contains only strings, integers, dates and enums,
        // which always serialise.
        serde_json::to_string_pretty(&self.doc).unwrap_or_default()
    }

    pub fn plan(&self, code: &str) -> Option<&Plan> {
        self.plan_index(code).map(|i| &self.doc.plans[i])
    }

    pub fn plan_index(&self, code: &str) -> Option<usize> {
        lookup(&self.doc.plans, &self.plans, code, |p| &p.code)
    }

    pub fn addon(&self, code: &str) -> Option<&Addon> {
        self.addon_index(code).map(|i| &self.doc.addons[i])
    }

    pub fn addon_index(&self, code: &str) -> Option<usize> {
        lookup(&self.doc.addons, &self.addons, code, |a| &a.code)
    }

    /// Index of a wired product (stable within this catalog version).
    pub fn wired_index(&self, code: &str) -> Option<usize> {
        self.doc.wired_products.iter().position(|w| w.code == code)
    }

    /// The shared texts of this version's bill lines.
    pub fn texts(&self) -> &Texts {
        &self.texts
    }

    /// Index of a usage product (stable within this catalog version).
    pub fn product_index(&self, code: &str) -> Option<u16> {
        lookup(&self.doc.usage_products, &self.products, code, |p| &p.code).map(|i| i as u16)
    }

    pub fn product(&self, index: u16) -> Option<&UsageProduct> {
        self.doc.usage_products.get(usize::from(index))
    }

    pub fn products(&self) -> &[UsageProduct] {
        &self.doc.usage_products
    }
}

/// Below this many entries a linear scan of the codes beats hashing the key
/// (catalogs have a handful of plans and products; this is on the per-line
/// and per-bill path).
const LINEAR_LOOKUP_MAX: usize = 16;

fn lookup<T>(items: &[T], index: &HashMap<String, usize>, code: &str, key: impl Fn(&T) -> &String) -> Option<usize> {
    if items.len() <= LINEAR_LOOKUP_MAX {
        items.iter().position(|x| key(x) == code)
    } else {
        index.get(code).copied()
    }
}

fn validate(doc: &CatalogDoc) -> Result<(), String> {
    // The version names files and store keys (`catalog/<version>.json`).
    let v = &doc.version;
    if v.is_empty()
        || v.len() > 64
        || v.starts_with('.')
        || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(format!(
            "version {v:?} must be 1-64 letters, digits, '.', '_' or '-', not starting with '.'"
        ));
    }
    if doc.currency != "KRW" {
        return Err(format!("currency {:?} is not supported (only KRW)", doc.currency));
    }
    if doc.vat_percent > 100 {
        return Err(format!("vat_percent {} is over 100", doc.vat_percent));
    }
    if !(1..=1000).contains(&doc.total_rounding_unit) {
        return Err(format!(
            "total_rounding_unit {} must be 1-1000",
            doc.total_rounding_unit
        ));
    }
    if doc.plans.is_empty() {
        return Err("no plans".into());
    }
    let mut codes = HashSet::new();
    let mut unique = |code: &str, what: &str| -> Result<(), String> {
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("{what} code {code:?} must be ASCII letters, digits or '_'"));
        }
        if !codes.insert(code.to_owned()) {
            return Err(format!("{what} code {code:?} is defined twice"));
        }
        Ok(())
    };
    let fee = |f: Krw, what: &str, code: &str| -> Result<(), String> {
        if !(0..=MAX_FEE).contains(&f.won()) {
            return Err(format!("{what} {code}: fee {} is outside 0-{MAX_FEE}", f.won()));
        }
        Ok(())
    };
    for p in &doc.plans {
        unique(&p.code, "plan")?;
        fee(p.monthly_fee, "plan", &p.code)?;
        for (name, a) in [("data_mb", p.data_mb), ("voice_sec", p.voice_sec), ("sms", p.sms)] {
            if let Some(a) = a
                && !(0..=MAX_ALLOWANCE).contains(&a)
            {
                return Err(format!("plan {}: {name} {a} is outside 0-{MAX_ALLOWANCE}", p.code));
            }
        }
    }
    for a in &doc.addons {
        unique(&a.code, "add-on")?;
        fee(a.monthly_fee, "add-on", &a.code)?;
        let mut keys = HashSet::new();
        for p in &a.plan_prices {
            fee(p.monthly_fee, "add-on", &a.code)?;
            let key = match (&p.plan, p.tier) {
                (Some(plan), None) => {
                    if !doc.plans.iter().any(|x| &x.code == plan) {
                        return Err(format!(
                            "add-on {}: plan_prices names plan {plan:?}, which is not in the catalog",
                            a.code
                        ));
                    }
                    format!("plan {plan}")
                }
                (None, Some(tier)) => format!("tier {tier:?}"),
                _ => {
                    return Err(format!(
                        "add-on {}: each plan_prices row names exactly one of plan and tier",
                        a.code
                    ));
                }
            };
            if !keys.insert(key.clone()) {
                return Err(format!("add-on {}: plan_prices has {key} twice", a.code));
            }
        }
    }
    for w in &doc.wired_products {
        unique(&w.code, "wired product")?;
        fee(w.monthly_fee, "wired product", &w.code)?;
    }
    for u in &doc.usage_products {
        unique(&u.code, "usage product")?;
        if let Pricing::Metered {
            block, price_per_block, ..
        } = &u.pricing
        {
            if !(1..=1_000_000).contains(block) {
                return Err(format!("usage product {}: block {block} must be 1-1000000", u.code));
            }
            fee(*price_per_block, "usage product", &u.code)?;
        }
    }
    let d = &doc.discounts;
    for (code, what) in [
        (&d.contract.code, "discount"),
        (&d.family.code, "discount"),
        (&d.long_term.code, "discount"),
        (&d.birthday.code, "discount"),
        (&d.addon_tiers.code, "discount"),
    ] {
        unique(code, what)?;
    }
    for code in [
        d.soldier.as_ref().map(|r| &r.code),
        d.welfare.as_ref().map(|r| &r.code),
        d.premium_contract.as_ref().map(|r| &r.code),
        d.wired_bundle.as_ref().map(|r| &r.code),
    ]
    .into_iter()
    .flatten()
    {
        unique(code, "discount")?;
    }
    let pct = |p: u32, what: &str| -> Result<(), String> {
        if p > 100 {
            Err(format!("{what}: percent {p} is over 100"))
        } else {
            Ok(())
        }
    };
    pct(d.contract.percent, &d.contract.code)?;
    pct(d.plan_discount_cap_percent, "plan_discount_cap_percent")?;
    let mut seen = HashSet::new();
    for row in &d.family.table {
        pct(row.percent, &d.family.code)?;
        if !(2..=10).contains(&row.min_members) {
            return Err(format!(
                "{}: min_members {} must be 2-10",
                d.family.code, row.min_members
            ));
        }
        if !seen.insert((row.min_members, row.tier)) {
            return Err(format!(
                "{}: row ({}, {:?}) is defined twice",
                d.family.code, row.min_members, row.tier
            ));
        }
    }
    let mut years = HashSet::new();
    for t in &d.long_term.tiers {
        pct(t.percent, &d.long_term.code)?;
        if !years.insert(t.min_years) {
            return Err(format!(
                "{}: min_years {} is defined twice",
                d.long_term.code, t.min_years
            ));
        }
    }
    fee(d.birthday.amount, "discount", &d.birthday.code)?;
    if let Some(r) = &d.soldier {
        pct(r.percent, &r.code)?;
    }
    if let Some(r) = &d.welfare {
        let mut grades = HashSet::new();
        for g in &r.grades {
            pct(g.percent, &r.code)?;
            fee(g.monthly_cap, "discount", &r.code)?;
            if g.grade.is_empty() || !g.grade.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "{}: grade {:?} must be ASCII letters, digits or '_'",
                    r.code, g.grade
                ));
            }
            if !grades.insert(g.grade.as_str()) {
                return Err(format!("{}: grade {:?} is defined twice", r.code, g.grade));
            }
        }
    }
    if let Some(r) = &d.premium_contract {
        fee(r.amount, "discount", &r.code)?;
        if r.tiers.is_empty() {
            return Err(format!("{}: no tiers", r.code));
        }
    }
    if let Some(r) = &d.wired_bundle {
        let mut sets = HashSet::new();
        for row in &r.rows {
            pct(row.percent, &r.code)?;
            let mut parts = row.parts.clone();
            parts.sort_by_key(|p| *p as u8);
            parts.dedup();
            if parts.len() != row.parts.len() || parts.len() < 2 {
                return Err(format!("{}: a row needs two or more different parts", r.code));
            }
            if !sets.insert(parts) {
                return Err(format!("{}: a set of parts is defined twice", r.code));
            }
        }
    }
    let mut counts = HashSet::new();
    for t in &d.addon_tiers.tiers {
        pct(t.percent, &d.addon_tiers.code)?;
        if t.min_addons == 0 || !counts.insert(t.min_addons) {
            return Err(format!(
                "{}: min_addons {} is zero or defined twice",
                d.addon_tiers.code, t.min_addons
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalog_is_valid() {
        let c = Catalog::default_catalog().unwrap();
        assert_eq!(c.version(), "2026-v1");
        assert!(c.plan("5G_STANDARD").is_some());
        assert!(c.product_index("DATA").is_some());
        assert_eq!(c.digest().len(), 64);
        // Round trip through JSON keeps the digest.
        let again = Catalog::from_json(&c.to_json(), "again").unwrap();
        assert_eq!(again.digest(), c.digest());
    }

    #[test]
    fn shipped_versions_by_name_and_what_v2_changes() {
        let v1 = Catalog::shipped("2026-v1").unwrap();
        let v2 = Catalog::shipped("2026-v2").unwrap();
        assert_eq!((v1.version(), v2.version()), ("2026-v1", "2026-v2"));
        assert_eq!(v1.digest(), Catalog::default_catalog().unwrap().digest());
        let e = Catalog::shipped("2030-v9").unwrap_err().to_string();
        assert!(e.contains("shipped: 2026-v1, 2026-v2") && !e.contains("2030-v9"), "{e}");
        // v2 is v1 but for the version, the date, one plan fee and one long-term tier.
        let mut doc = v2.doc().clone();
        assert_eq!(doc.effective_from, NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
        assert_eq!(v2.plan("5G_STANDARD").unwrap().monthly_fee, Krw(66_000));
        assert_eq!(v1.plan("5G_STANDARD").unwrap().monthly_fee, Krw(69_000));
        doc.version = "2026-v1".into();
        doc.effective_from = v1.doc().effective_from;
        doc.plans[2].monthly_fee = Krw(69_000);
        let ten = doc
            .discounts
            .long_term
            .tiers
            .iter_mut()
            .find(|t| t.min_years == 10)
            .unwrap();
        assert_eq!(ten.percent, 12);
        ten.percent = 10;
        assert_eq!(&doc, v1.doc());
        // A catalog without the newer sections still reads, and serialises without them.
        let mut old: serde_json::Value = serde_json::from_str(DEFAULT_CATALOG_JSON).unwrap();
        old.as_object_mut().unwrap().remove("wired_products");
        for k in ["soldier", "welfare", "premium_contract", "wired_bundle"] {
            old["discounts"].as_object_mut().unwrap().remove(k);
        }
        for a in old["addons"].as_array_mut().unwrap() {
            a.as_object_mut().unwrap().remove("plan_prices");
        }
        let c = Catalog::from_json(&old.to_string(), "old").unwrap();
        assert!(!c.to_json().contains("wired") && !c.to_json().contains("plan_prices"));
    }

    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;

    fn mutate(f: impl FnOnce(&mut serde_json::Value)) -> CatalogError {
        let mut v: serde_json::Value = serde_json::from_str(DEFAULT_CATALOG_JSON).unwrap();
        f(&mut v);
        Catalog::from_json(&v.to_string(), "catalog/bad.json").unwrap_err()
    }

    #[test]
    fn malformed_catalogs_get_clear_errors() {
        let e = Catalog::from_json("{ not json", "catalog/x.json")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("catalog/x.json: not a valid catalog document"), "{e}");
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|v| v["plans"][1]["code"] = "LTE_SLIM".into()), "defined twice"),
            (Box::new(|v| v["plans"][0]["monthly_fee"] = (-1).into()), "fee -1"),
            (Box::new(|v| v["vat_percent"] = 101.into()), "vat_percent"),
            (Box::new(|v| v["currency"] = "USD".into()), "currency"),
            (
                Box::new(|v| v["discounts"]["contract"]["percent"] = 250.into()),
                "over 100",
            ),
            (
                Box::new(|v| v["usage_products"][0]["pricing"]["metered"]["block"] = 0.into()),
                "block 0",
            ),
            (Box::new(|v| v["plans"][0]["colour"] = "red".into()), "unknown field"),
            (
                Box::new(|v| v["plans"][0]["monthly_fee"] = "33000".into()),
                "invalid type",
            ),
            (
                Box::new(|v| v["discounts"]["family"]["table"][0]["min_members"] = 1.into()),
                "min_members 1",
            ),
            (
                Box::new(|v| v["addons"][2]["plan_prices"][0]["plan"] = "6G_ULTRA".into()),
                "names plan \"6G_ULTRA\", which is not in the catalog",
            ),
            (
                Box::new(|v| v["addons"][2]["plan_prices"][0]["tier"] = "premium".into()),
                "exactly one of plan and tier",
            ),
            (
                Box::new(|v| v["wired_products"][1]["code"] = "INTERNET_500M".into()),
                "wired product code \"INTERNET_500M\" is defined twice",
            ),
            (
                Box::new(|v| v["wired_products"][0]["code"] = "VCOLORING".into()),
                "defined twice",
            ),
            (
                Box::new(|v| v["discounts"]["welfare"]["grades"][1]["grade"] = "disabled".into()),
                "grade \"disabled\" is defined twice",
            ),
            (
                Box::new(|v| v["discounts"]["welfare"]["grades"][0]["percent"] = 101.into()),
                "over 100",
            ),
            (
                Box::new(|v| v["discounts"]["soldier"]["code"] = "DISC_CONTRACT".into()),
                "defined twice",
            ),
            (
                Box::new(|v| v["discounts"]["wired_bundle"]["rows"][0]["parts"] = serde_json::json!(["internet"])),
                "two or more different parts",
            ),
            (
                Box::new(|v| v["discounts"]["premium_contract"]["tiers"] = serde_json::json!([])),
                "no tiers",
            ),
            (
                Box::new(|v| v["wired_products"][0]["kind"] = "satellite".into()),
                "unknown variant",
            ),
        ];
        for (f, want) in cases {
            let e = mutate(f).to_string();
            assert!(
                e.contains("catalog/bad.json") && e.contains(want),
                "{e} should contain {want}"
            );
        }
    }
}
