//! The pieces the generator hands between its halves: a customer's place in a family
//! group, the catalog indices of the usage products, one usage line. The generator holds
//! them and `gen_customer` / `gen_usage` fill them in (`impl Generator` there), so the
//! arrows run generator → parts ← gen_*, and gen_* → generator only through that `impl`.

use billing::Catalog;

/// Phone numbers `010-XXXX-XXXX` with a middle block 2000–9999: 80,000,000
/// numbers, walked by an affine permutation so no two customers share one.
pub(crate) const PHONE_SPACE: u64 = 8_000 * 10_000;
/// A customer's place in a family group.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    /// Index of the group's first member (the group id is derived from it).
    pub first: u32,
    pub size: u8,
    /// Family name most members share.
    pub surname: u16,
}

/// One usage line before formatting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UsageLine {
    /// 0-based customer index (the id is index + 1).
    pub customer: u32,
    pub product: u16,
    pub quantity: i64,
    /// Won for pass-through products, 0 (written empty) for metered ones.
    pub amount: i64,
}

/// Catalog indices of the usage products the generator knows; a product
/// missing from the catalog is simply never generated.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProductIx {
    pub data: Option<u16>,
    pub voice: Option<u16>,
    pub sms: Option<u16>,
    pub roam_data: Option<u16>,
    pub roam_voice: Option<u16>,
    pub micropay: Option<u16>,
    pub device: Option<u16>,
}

impl ProductIx {
    pub(crate) fn from_catalog(c: &Catalog) -> Self {
        ProductIx {
            data: c.product_index("DATA"),
            voice: c.product_index("VOICE"),
            sms: c.product_index("SMS"),
            roam_data: c.product_index("ROAM_DATA"),
            roam_voice: c.product_index("ROAM_VOICE"),
            micropay: c.product_index("MICROPAY"),
            device: c.product_index("DEVICE_INST"),
        }
    }
}
