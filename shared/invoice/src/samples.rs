//! Built-in sample invoices: five representative customers (for previews,
//! golden files and the benchmark) and the worst case that validation
//! renders every template version with.
//!
//! The five bills are written out by hand, line by line, exactly as the
//! rating engine produces them for the 2026-v1 catalog (a test of this
//! crate rates the same customers with `billing::rate` and compares), so
//! this crate does not depend on the billing engine.
//!
//! The names and phone numbers are invented.

use std::sync::Arc;

use domain::pii::Secret;
use domain::{Bill, BillLine, CustomerError, CustomerId, Cycle, CycleError, Krw, LineKind};
use serde::Deserialize;

/// The keys of the built-in samples, in the order [`all`] returns them.
pub const SAMPLE_KEYS: [&str; 5] = ["family", "contract", "birthday", "prorated", "zero-usage"];

/// A bill with the contact data it is rendered for.
#[derive(Clone, Debug, Deserialize)]
pub struct Sample {
    /// File-name friendly key (`family`).
    #[serde(default)]
    pub key: String,
    pub bill: Bill,
    #[serde(deserialize_with = "secret")]
    pub name: Secret<String>,
    #[serde(deserialize_with = "secret")]
    pub phone: Secret<String>,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret<String>, D::Error> {
    String::deserialize(d).map(Secret::new)
}

/// The five representative samples, in [`SAMPLE_KEYS`] order.
pub fn all() -> Result<Vec<Sample>, SampleError> {
    Ok(vec![family()?, contract()?, birthday()?, prorated()?, zero_usage()?])
}

/// One sample by key.
pub fn by_key(key: &str) -> Result<Option<Sample>, SampleError> {
    Ok(all()?.into_iter().find(|s| s.key == key))
}

/// A sample that cannot be built (a fixture bug, never bad input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("sample fixture: {0}")]
    Customer(#[from] CustomerError),
    #[error("sample fixture: {0}")]
    Cycle(#[from] CycleError),
}

/// The cycle of every sample, 2026-11.
pub fn cycle() -> Result<Cycle, CycleError> {
    Cycle::new(2026, 11)
}

/// Family bundle: 5G 프리미엄 in a group of four, two add-ons (bundle
/// discount), seven years of tenure, roaming data and a micropayment
/// (outside VAT).
pub fn family() -> Result<Sample, SampleError> {
    let lines = vec![
        plan("5G_PREMIUM", "5G 프리미엄", 30, 89_000, 89_000, ""),
        addon(
            "OTT_BASIC",
            "OTT 베이직 구독",
            30,
            4_950,
            4_950,
            "5G 프리미엄 요금제 월 4950원",
        ),
        addon("MUSIC", "음악 스트리밍", 30, 7_900, 7_900, ""),
        usage(
            "ROAM_DATA",
            "해외로밍 데이터",
            350,
            "MB",
            45,
            15_750,
            true,
            "사용 350MB",
        ),
        usage("MICROPAY", "소액결제", 2, "건", 0, 12_800, false, ""),
        discount("DISC_FAMILY", "가족결합 할인", -17_800, "4인 결합 20%"),
        discount("DISC_LONG_TERM", "장기고객 할인", -3_560, "7년 5%"),
        discount("DISC_ADDON_BUNDLE", "부가서비스 묶음 할인", -1_285, "2개 10%"),
        vat(9_495),
    ];
    sample("family", "C0001042", lines, "김민수", "010-1234-5678")
}

/// Selective contract (25%) for the whole cycle, six years of tenure, phone
/// insurance and a device instalment (outside VAT).
pub fn contract() -> Result<Sample, SampleError> {
    let lines = vec![
        plan("5G_STANDARD", "5G 스탠다드", 30, 69_000, 69_000, ""),
        addon("INSURANCE", "휴대폰 보험", 30, 5_900, 5_900, ""),
        usage("DEVICE_INST", "단말기 할부금", 1, "회", 0, 41_250, false, ""),
        discount("DISC_CONTRACT", "선택약정 할인", -17_250, "25% × 30/30일"),
        discount("DISC_LONG_TERM", "장기고객 할인", -2_587, "6년 5%"),
        vat(5_506),
        rounding(-9),
    ];
    sample("contract", "C0002318", lines, "이서연", "010-2345-6789")
}

/// Birthday month (fixed 3,000원 off) on LTE 슬림 with data, voice and text
/// over the allowance; the total needs no rounding.
pub fn birthday() -> Result<Sample, SampleError> {
    let lines = vec![
        plan("LTE_SLIM", "LTE 슬림", 30, 33_000, 33_000, ""),
        addon("VCOLORING", "V컬러링", 30, 3_300, 3_300, ""),
        usage(
            "DATA",
            "데이터 초과 사용",
            452,
            "MB",
            22,
            9_944,
            true,
            "사용 2500MB, 기본제공 2048MB 초과 452MB",
        ),
        usage(
            "VOICE",
            "음성통화 초과",
            1_237,
            "초",
            18,
            2_232,
            true,
            "사용 19237초, 기본제공 18000초 초과 1237초",
        ),
        usage(
            "SMS",
            "문자 초과",
            42,
            "건",
            22,
            924,
            true,
            "사용 342건, 기본제공 300건 초과 42건",
        ),
        discount("DISC_BIRTHDAY", "생일 달 할인", -3_000, ""),
        vat(4_640),
    ];
    sample("birthday", "C0003577", lines, "박지훈", "010-3456-7890")
}

/// Joined on 2026-11-14: plan and add-ons prorated for 17 of 30 days.
pub fn prorated() -> Result<Sample, SampleError> {
    let lines = vec![
        plan("5G_LITE", "5G 라이트", 17, 47_000, 26_633, "일할 17/30일"),
        addon("CLOUD_100G", "클라우드 100GB", 17, 2_200, 1_246, "일할 17/30일"),
        addon("SPAM_GUARD", "스팸차단 플러스", 17, 1_100, 623, "일할 17/30일"),
        discount("DISC_ADDON_BUNDLE", "부가서비스 묶음 할인", -186, "2개 10%"),
        vat(2_831),
        rounding(-7),
    ];
    sample("prorated", "C0004120", lines, "최유진", "010-4567-8901")
}

/// A plan and nothing else: no usage, no discount, no rounding. A
/// two-syllable name and a phone number without dashes.
pub fn zero_usage() -> Result<Sample, SampleError> {
    let lines = vec![plan("LTE_SLIM", "LTE 슬림", 30, 33_000, 33_000, ""), vat(3_300)];
    sample("zero-usage", "C0005009", lines, "이민", "01098765432")
}

/// The longest a plan label may reasonably be (catalog labels are about 10).
pub const WORST_LABEL_CHARS: usize = 40;

/// The worst case validation renders every version with: the longest
/// customer id (64 characters), a 40-syllable name, a 40-character plan
/// label, every kind of line several times, and every amount the longest an
/// `i64` of won formats to (`-9,223,372,036,854,775,808원`). A template whose
/// text message fits with this sample fits with every bill.
pub fn worst_case() -> Result<Sample, SampleError> {
    let long = "가".repeat(WORST_LABEL_CHARS);
    let big = i64::MIN;
    let detail = "사용 999999999999MB, 기본제공 999999999999MB 초과 999999999999MB";
    let mut lines = vec![plan("WORST_PLAN", &long, 31, big, big, detail)];
    for _ in 0..6 {
        lines.push(addon("WORST_ADDON", &long, 31, big, big, detail));
    }
    for _ in 0..7 {
        lines.push(usage("WORST_USAGE", &long, big, "MB", big, big, true, detail));
    }
    for _ in 0..5 {
        lines.push(discount("WORST_DISCOUNT", &long, big, detail));
    }
    lines.push(usage("WORST_PASS", &long, big, "건", 0, big, false, ""));
    lines.push(vat(big));
    lines.push(rounding(big));
    let mut s = sample(
        "worst-case",
        &"Z".repeat(64),
        lines,
        &"가".repeat(WORST_LABEL_CHARS),
        "010-1234-5678",
    )?;
    let b = &mut s.bill;
    (b.charges, b.discounts, b.taxable_base, b.vat, b.rounding, b.total) =
        (Krw(big), Krw(big), Krw(big), Krw(big), Krw(big), Krw(big));
    b.catalog_version = "z".repeat(32);
    Ok(s)
}

/// An example of a presigned S3 GET URL as the sender makes them: virtual
/// host, object key, the SigV4 query parameters and a session token of a
/// Lambda role's temporary credentials — 1,300 to 1,400 bytes. The
/// signature and token are made up.
pub fn example_presigned_url() -> String {
    let token: String = "IQoJb3JpZ2luX2VjEOr//////////wEaDmFwLW5vcnRoZWFzdC0yIkcwRQIhAP"
        .chars()
        .chain(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%2F%2B"
                .chars()
                .cycle()
                .take(1_000),
        )
        .collect();
    format!(
        "https://billing-data-prod-ap-northeast-2.s3.ap-northeast-2.amazonaws.com/\
         invoices/2026-11/00042/C0001042/v1.html\
         ?X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=ASIAEXAMPLEEXAMPLE12%2F20261215%2Fap-northeast-2%2Fs3%2Faws4_request\
         &X-Amz-Date=20261215T010203Z&X-Amz-Expires=604800\
         &X-Amz-Security-Token={token}\
         &X-Amz-SignedHeaders=host\
         &X-Amz-Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )
}

fn sample(key: &str, id: &str, lines: Vec<BillLine>, name: &str, phone: &str) -> Result<Sample, SampleError> {
    let sum = |f: &dyn Fn(&BillLine) -> bool| lines.iter().filter(|l| f(l)).map(|l| l.amount).sum::<Krw>();
    let charges = sum(&|l| matches!(l.kind, LineKind::Plan | LineKind::Addon | LineKind::Usage));
    let discounts = sum(&|l| l.kind == LineKind::Discount);
    let taxable_base = sum(&|l| l.taxable);
    let vat = sum(&|l| l.kind == LineKind::Vat);
    let rounding = sum(&|l| l.kind == LineKind::Rounding);
    let total = sum(&|_| true);
    Ok(Sample {
        key: key.to_owned(),
        bill: Bill {
            cycle: cycle()?,
            customer_id: CustomerId::new(id)?,
            shard: 42,
            catalog_version: "2026-v1".to_owned(),
            charges,
            discounts,
            taxable_base,
            vat,
            rounding,
            total,
            lines,
        },
        name: Secret::new(name.to_owned()),
        phone: Secret::new(phone.to_owned()),
    })
}

#[allow(clippy::too_many_arguments)]
fn line(
    kind: LineKind,
    code: &str,
    label: &str,
    quantity: i64,
    unit: &str,
    unit_price: i64,
    amount: i64,
    taxable: bool,
    detail: &str,
) -> BillLine {
    BillLine {
        kind,
        code: Arc::from(code),
        label: Arc::from(label),
        quantity,
        unit: Arc::from(unit),
        unit_price: Krw(unit_price),
        amount: Krw(amount),
        taxable,
        detail: detail.to_owned(),
    }
}

fn plan(code: &str, label: &str, days: i64, fee: i64, amount: i64, detail: &str) -> BillLine {
    line(LineKind::Plan, code, label, days, "일", fee, amount, true, detail)
}

fn addon(code: &str, label: &str, days: i64, fee: i64, amount: i64, detail: &str) -> BillLine {
    line(LineKind::Addon, code, label, days, "일", fee, amount, true, detail)
}

#[allow(clippy::too_many_arguments)]
fn usage(
    code: &str,
    label: &str,
    quantity: i64,
    unit: &str,
    unit_price: i64,
    amount: i64,
    taxable: bool,
    detail: &str,
) -> BillLine {
    line(
        LineKind::Usage,
        code,
        label,
        quantity,
        unit,
        unit_price,
        amount,
        taxable,
        detail,
    )
}

fn discount(code: &str, label: &str, amount: i64, detail: &str) -> BillLine {
    line(LineKind::Discount, code, label, 1, "", 0, amount, true, detail)
}

fn vat(amount: i64) -> BillLine {
    line(LineKind::Vat, "VAT", "부가가치세", 1, "", 0, amount, false, "10%")
}

fn rounding(amount: i64) -> BillLine {
    line(
        LineKind::Rounding,
        "ROUNDING",
        "원 단위 절사",
        1,
        "",
        0,
        amount,
        false,
        "",
    )
}
