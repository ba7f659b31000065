//! The view model: everything a template may show about one bill, already
//! masked and formatted, so templates only interpolate, loop and branch.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use domain::pii::{Secret, mask_name, mask_phone};
use domain::{Bill, BillLine, Cycle, Krw, LineKind};
use serde::Serialize;

use crate::sms::euc_kr_encodable;

/// At most this many characters of the masked name go into the text message,
/// so that the worst-case sample of validation bounds every real message.
pub const SMS_NAME_MAX_CHARS: usize = 12;

/// Printed on the rounding line when the bill gives no detail: the total is
/// rounded down to 10 won (`Bill::rounding` is in (-10, 0]).
pub const ROUNDING_DETAIL: &str = "10원 미만 절사";

/// The due date of a cycle's invoice: **the last day of the month after the
/// cycle** (cycle 2026-11 → 2026-12-31). Invoices go out on each customer's
/// send day in that month (1st–31st), so every customer gets at least the
/// rest of that month to pay, and everyone of a cycle has the same date.
pub fn due_date(cycle: Cycle) -> NaiveDate {
    cycle.next().last_day()
}

/// One bill line as printed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LineView {
    /// `plan`, `addon`, `usage`, `discount`, `vat` or `rounding`.
    pub kind: &'static str,
    pub label: Arc<str>,
    /// The line's explanation (`일할 17/30일`), empty when there is none.
    pub detail: String,
    /// `12,345원`, `-1,234원`.
    pub amount: String,
}

/// Everything a template may show about one bill. Personal data only masked
/// (`김*수`, `010-****-5678`): the clear values never reach a template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvoiceView {
    pub customer_id: String,
    /// Masked name (`김*수`).
    pub customer_name: String,
    /// The masked name for the text message: characters EUC-KR cannot encode
    /// shown as `*`, at most [`SMS_NAME_MAX_CHARS`] characters.
    pub sms_customer_name: String,
    /// Masked phone number (`010-****-5678`).
    pub customer_phone: String,
    /// `2026-11`.
    pub cycle: String,
    /// `2026년 11월`.
    pub cycle_label: String,
    /// The cycle's first to last day, `2026.11.01 ~ 2026.11.30`.
    pub service_period: String,
    /// See [`due_date`]: `2026년 12월 31일`.
    pub due_date: String,
    /// The label of the bill's plan line, empty if it has none.
    pub plan_name: Arc<str>,
    /// Plan, add-on and usage lines, in the bill's order.
    pub charge_lines: Vec<LineView>,
    /// Discount lines, each with its own label.
    pub discount_lines: Vec<LineView>,
    pub vat_lines: Vec<LineView>,
    /// The rounding line (`10원 미만 절사`), when the total was rounded.
    pub rounding_lines: Vec<LineView>,
    /// Charges before discounts.
    pub charges_total: String,
    /// Sum of the discounts (≤ 0).
    pub discounts_total: String,
    /// What VAT is computed on.
    pub taxable_base: String,
    pub vat_total: String,
    /// Charges outside VAT (micropayments, device instalments).
    pub non_taxable_total: String,
    pub has_non_taxable: bool,
    pub rounding_total: String,
    /// The amount due.
    pub total: String,
    pub catalog_version: String,
}

impl InvoiceView {
    /// Builds the view of `bill` for a customer. The name and phone are
    /// masked here; nothing else of them is kept.
    pub fn new(bill: &Bill, name: &Secret<String>, phone: &Secret<String>) -> InvoiceView {
        let mut charge_lines = Vec::with_capacity(bill.lines.len());
        let mut discount_lines = Vec::new();
        let mut vat_lines = Vec::with_capacity(1);
        let mut rounding_lines = Vec::new();
        let mut plan_name: Option<&Arc<str>> = None;
        let mut non_taxable = Krw::ZERO;
        for line in &bill.lines {
            let view = line_view(line);
            match line.kind {
                LineKind::Plan | LineKind::Addon | LineKind::Usage => {
                    if line.kind == LineKind::Plan && plan_name.is_none() {
                        plan_name = Some(&line.label);
                    }
                    if !line.taxable {
                        non_taxable += line.amount;
                    }
                    charge_lines.push(view);
                }
                LineKind::Discount => discount_lines.push(view),
                LineKind::Vat => vat_lines.push(view),
                LineKind::Rounding => rounding_lines.push(view),
            }
        }
        let masked_name = mask_name(name.expose());
        let cycle = bill.cycle;
        let (first, last, due) = (cycle.first_day(), cycle.last_day(), due_date(cycle));
        InvoiceView {
            customer_id: bill.customer_id.to_string(),
            sms_customer_name: sms_name(&masked_name),
            customer_name: masked_name,
            customer_phone: mask_phone(phone.expose()),
            cycle: cycle.to_string(),
            cycle_label: format!("{}년 {}월", cycle.year(), cycle.month()),
            service_period: format!(
                "{}.{:02}.{:02} ~ {}.{:02}.{:02}",
                first.year(),
                first.month(),
                first.day(),
                last.year(),
                last.month(),
                last.day()
            ),
            due_date: format!("{}년 {}월 {}일", due.year(), due.month(), due.day()),
            plan_name: plan_name.cloned().unwrap_or_else(|| Arc::from("")),
            charge_lines,
            discount_lines,
            vat_lines,
            rounding_lines,
            charges_total: won(bill.charges),
            discounts_total: won(bill.discounts),
            taxable_base: won(bill.taxable_base),
            vat_total: won(bill.vat),
            non_taxable_total: won(non_taxable),
            has_non_taxable: non_taxable != Krw::ZERO,
            rounding_total: won(bill.rounding),
            total: won(bill.total),
            catalog_version: bill.catalog_version.clone(),
        }
    }
}

fn line_view(line: &BillLine) -> LineView {
    let detail = if line.kind == LineKind::Rounding && line.detail.is_empty() {
        ROUNDING_DETAIL.to_owned()
    } else {
        line.detail.clone()
    };
    LineView {
        kind: match line.kind {
            LineKind::Plan => "plan",
            LineKind::Addon => "addon",
            LineKind::Usage => "usage",
            LineKind::Discount => "discount",
            LineKind::Vat => "vat",
            LineKind::Rounding => "rounding",
        },
        label: line.label.clone(),
        detail,
        amount: won(line.amount),
    }
}

/// `12,345원`, `-1,234원`: `Krw`'s own format, written straight into one
/// right-sized string (`Krw`'s `Display` goes through two temporary strings,
/// and a view formats about twenty amounts).
pub(crate) fn won(amount: Krw) -> String {
    let value = amount.won();
    let mut digits = [0u8; 20];
    let mut n = value.unsigned_abs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = &digits[start..];
    let mut s = String::with_capacity(1 + digits.len() + digits.len() / 3 + '원'.len_utf8());
    if value < 0 {
        s.push('-');
    }
    for (i, &d) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(char::from(d));
    }
    s.push('원');
    s
}

/// The masked name as the text message carries it: EUC-KR has no code for
/// many characters a name may hold (accented Latin letters, emoji, rare
/// Hanja); those are shown as `*` rather than failing the message. Long names
/// keep their first characters and their last one, like the mask.
fn sms_name(masked: &str) -> String {
    let count = masked.chars().count();
    let keep_head = if count > SMS_NAME_MAX_CHARS {
        SMS_NAME_MAX_CHARS - 1
    } else {
        count
    };
    let mut out = String::with_capacity(masked.len().min(SMS_NAME_MAX_CHARS * 4));
    let safe = |c: char| {
        if !c.is_control() && euc_kr_encodable(c) { c } else { '*' }
    };
    out.extend(masked.chars().take(keep_head).map(safe));
    if count > SMS_NAME_MAX_CHARS {
        out.extend(masked.chars().last().map(safe));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_date_is_the_last_day_of_the_next_month() {
        let d = |s: &str| due_date(s.parse().unwrap()).to_string();
        assert_eq!(d("2026-11"), "2026-12-31");
        assert_eq!(d("2026-12"), "2027-01-31");
        assert_eq!(d("2027-01"), "2027-02-28");
        assert_eq!(d("2028-01"), "2028-02-29");
        assert_eq!(d("2026-03"), "2026-04-30");
    }

    #[test]
    fn won_formats_like_krw() {
        let mut values = vec![0, 1, -1, 9, 10, 99, 100, 999, 1_000, -1_000, 12_345, 999_999, 1_000_000];
        values.extend([i64::MAX, i64::MIN, i64::MIN + 1, -123_456_789, 10_000_000_000]);
        let mut x: i64 = 7;
        for _ in 0..2_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            values.push(x >> (x.rem_euclid(60)));
        }
        for v in values {
            assert_eq!(won(Krw(v)), Krw(v).to_string(), "{v}");
        }
    }

    #[test]
    fn sms_name_is_encodable_and_bounded() {
        assert_eq!(sms_name("김*수"), "김*수");
        assert_eq!(sms_name("J**é"), "J***");
        assert_eq!(sms_name("😀*😀"), "***");
        let long = mask_name(&"가".repeat(40));
        let s = sms_name(&long);
        assert_eq!(s.chars().count(), SMS_NAME_MAX_CHARS);
        assert!(s.starts_with('가') && s.ends_with('가'));
        assert_eq!(sms_name(""), "");
    }
}
