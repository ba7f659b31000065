//! The catalog codes the property tests draw customers from (catalog/2026-v1.json's).

#![allow(dead_code)]

pub const PLANS: [&str; 5] = ["LTE_SLIM", "5G_LITE", "5G_STANDARD", "5G_PREMIUM", "5G_SIGNATURE"];
pub const ADDONS: [&str; 7] = [
    "VCOLORING",
    "INSURANCE",
    "OTT_BASIC",
    "OTT_PREMIUM",
    "MUSIC",
    "CLOUD_100G",
    "SPAM_GUARD",
];
pub const WIRED: [&str; 4] = ["INTERNET_500M", "INTERNET_1G", "IPTV_BASIC", "IPTV_PREMIUM"];
pub const GRADES: [&str; 5] = [
    "disabled",
    "national_merit",
    "basic_livelihood",
    "near_poverty",
    "basic_pension",
];
