//! The corrected invoice (정정 청구서): what a correction of a settled bill sends.
//!
//! A bill is never rewritten; a correction (a credit, a debit, or a re-rating under another
//! catalog version) is a new document that names the original and says what changed, as a
//! credit note does (the original invoice's number and total, the reason, the amount credited,
//! what is left to pay) and as an invoice item adjustment does (the original items untouched,
//! the adjustment a signed item of its own, the balance recomputed). The corrected invoice
//! shows:
//!
//! - the original total, as the customer's first invoice stated it;
//! - every correction of the bill so far, in order: its number, kind (감액 credit, 증액 debit,
//!   재산정 re-rating), date, reason, signed amount, and for a re-rating the catalog version
//!   and each line whose amount changed (old → new);
//! - their sum and the new amount due, with the original due date;
//! - the original lines below, marked as unchanged.
//!
//! The text message says the same in five lines: original total → new amount due, the latest
//! correction's amount and reason (made safe for EUC-KR and cut to [`SMS_REASON_MAX_CHARS`]),
//! and the link. The templates (`corrections/` in this crate) use the version's `meta.json`, so a
//! corrected invoice carries the brand and contact of the cycle's template version.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use domain::pii::Secret;
use domain::{Bill, Krw};
use serde::Serialize;

use crate::sms::euc_kr_encodable;
use crate::view::{InvoiceView, won};

/// The most characters of a correction's reason the text message carries.
pub const SMS_REASON_MAX_CHARS: usize = 30;

/// The kind of a correction, as printed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AdjustmentKind {
    Credit,
    Debit,
    Rerate,
}

impl AdjustmentKind {
    /// `감액`, `증액`, `재산정`.
    pub fn label(self) -> &'static str {
        match self {
            AdjustmentKind::Credit => "감액",
            AdjustmentKind::Debit => "증액",
            AdjustmentKind::Rerate => "요금 재산정",
        }
    }
}

/// One line code whose amount a re-rating changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangedAmount {
    pub code: String,
    pub old: Krw,
    pub new: Krw,
}

/// One correction of a bill, as the corrected invoice shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adjustment {
    /// 1, 2, … per bill.
    pub seq: u32,
    pub kind: AdjustmentKind,
    /// Signed: a credit is negative.
    pub amount: Krw,
    /// The operator's reason (checked to hold no contact data before it gets here).
    pub reason: String,
    pub issued_on: NaiveDate,
    /// A re-rating's catalog version.
    pub catalog_version: Option<String>,
    pub changed: Vec<ChangedAmount>,
}

/// A changed line as printed: its label on the bill (its code when the bill has no such line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangedLineView {
    pub label: String,
    pub old: String,
    pub new: String,
}

/// One correction as printed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdjustmentView {
    pub seq: u32,
    pub kind_label: &'static str,
    /// `-10,000원`, `+2,000원`.
    pub sign_amount: String,
    pub reason: String,
    /// The reason for the text message: one line, EUC-KR safe, at most
    /// [`SMS_REASON_MAX_CHARS`] characters.
    pub sms_reason: String,
    /// `2026년 12월 15일`.
    pub issued_on: String,
    pub catalog_version: Option<String>,
    pub changed_lines: Vec<ChangedLineView>,
}

/// Everything the correction templates see (with the version's globals: `meta`,
/// `template_version`, `invoice_url`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CorrectionView {
    /// The original bill's view (masked name and phone, its lines, its due date).
    pub invoice: InvoiceView,
    /// The number of the latest correction: this corrected invoice's.
    pub seq: u32,
    pub issued_on: String,
    pub original_total: String,
    pub corrections: Vec<AdjustmentView>,
    /// The latest correction (the one this invoice is sent for).
    pub latest: AdjustmentView,
    /// Σ of the corrections, signed.
    pub adjustments_total: String,
    pub amount_due: String,
}

fn korean_date(d: NaiveDate) -> String {
    format!("{}년 {}월 {}일", d.year(), d.month(), d.day())
}

/// `+2,000원` for a positive amount, `-2,000원`, `0원`.
pub(crate) fn signed(amount: Krw) -> String {
    if amount.won() > 0 {
        format!("+{}", won(amount))
    } else {
        won(amount)
    }
}

/// One line, EUC-KR safe (anything else shown as `*`), at most `max` characters (`…` ends a
/// cut text).
fn sms_safe(text: &str, max: usize) -> String {
    let line: Vec<char> = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| if !c.is_control() && euc_kr_encodable(c) { c } else { '*' })
        .collect();
    if line.len() <= max {
        return line.into_iter().collect();
    }
    let mut out: String = line[..max - 1].iter().collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

impl CorrectionView {
    /// The view of `bill` corrected by `adjustments` (in order, at least one), leaving
    /// `amount_due`. Name and phone are masked as for the invoice.
    pub fn new(
        bill: &Bill,
        name: &Secret<String>,
        phone: &Secret<String>,
        adjustments: &[Adjustment],
        amount_due: Krw,
    ) -> CorrectionView {
        let labels: HashMap<&str, &str> = bill.lines.iter().map(|l| (&*l.code, &*l.label)).collect();
        let corrections: Vec<AdjustmentView> = adjustments
            .iter()
            .map(|a| AdjustmentView {
                seq: a.seq,
                kind_label: a.kind.label(),
                sign_amount: signed(a.amount),
                reason: a.reason.trim().to_owned(),
                sms_reason: sms_safe(&a.reason, SMS_REASON_MAX_CHARS),
                issued_on: korean_date(a.issued_on),
                catalog_version: a.catalog_version.clone(),
                changed_lines: a
                    .changed
                    .iter()
                    .map(|c| ChangedLineView {
                        label: labels.get(c.code.as_str()).copied().unwrap_or(&c.code).to_owned(),
                        old: won(c.old),
                        new: won(c.new),
                    })
                    .collect(),
            })
            .collect();
        let latest = corrections.last().cloned().unwrap_or_else(|| AdjustmentView {
            seq: 0,
            kind_label: "",
            sign_amount: won(Krw::ZERO),
            reason: String::new(),
            sms_reason: String::new(),
            issued_on: String::new(),
            catalog_version: None,
            changed_lines: Vec::new(),
        });
        let total: Krw = adjustments.iter().map(|a| a.amount).sum();
        CorrectionView {
            invoice: InvoiceView::new(bill, name, phone),
            seq: latest.seq,
            issued_on: latest.issued_on.clone(),
            original_total: won(bill.total),
            corrections,
            latest,
            adjustments_total: signed(total),
            amount_due: won(amount_due),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LINK_PLACEHOLDER, Templates, samples};

    #[test]
    fn the_corrected_invoice_shows_the_original_total_each_correction_and_the_new_amount_due() {
        let templates = Templates::embedded().unwrap();
        let r = templates.version("v1").unwrap();
        let s = samples::by_key("family").unwrap().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 12, 15).unwrap();
        let code = s.bill.lines[0].code.to_string();
        let adjustments = vec![
            Adjustment {
                seq: 1,
                kind: AdjustmentKind::Credit,
                amount: Krw(-10_000),
                reason: "<b>데이터 요금 오류</b> 환불".into(),
                issued_on: day,
                catalog_version: None,
                changed: Vec::new(),
            },
            Adjustment {
                seq: 2,
                kind: AdjustmentKind::Rerate,
                amount: Krw(1_230),
                reason: "요금표 정정".into(),
                issued_on: day,
                catalog_version: Some("2026-v2".into()),
                changed: vec![ChangedAmount {
                    code,
                    old: Krw(55_000),
                    new: Krw(56_000),
                }],
            },
        ];
        let due = Krw(s.bill.total.won() - 10_000 + 1_230);
        let view = CorrectionView::new(&s.bill, &s.name, &s.phone, &adjustments, due);
        let out = r.render_correction(&view).unwrap();
        let original = won(s.bill.total);
        for part in [
            "정정 청구서",
            original.as_str(),
            "-10,000원",
            "+1,230원",
            "&lt;b&gt;데이터 요금 오류",
            "요금표 정정",
            "2026-v2",
            "55,000원 → 56,000원",
            &won(due),
            "정정 2차",
        ] {
            assert!(out.html.contains(part), "{part} in the HTML");
        }
        assert!(!out.html.contains("<b>데이터"), "the reason is escaped");
        assert!(
            out.subject.contains("정정 청구서") && out.subject.contains("2차"),
            "{}",
            out.subject
        );
        assert!(
            out.sms.contains(&original) && out.sms.contains(&won(due)),
            "{}",
            out.sms
        );
        assert!(
            out.sms.contains("+1,230원") && out.sms.contains("요금표 정정"),
            "{}",
            out.sms
        );
        assert_eq!(out.sms.matches(LINK_PLACEHOLDER).count(), 1);
        // Masked only.
        assert!(!out.html.contains(s.name.expose().as_str()) && !out.sms.contains(s.phone.expose().as_str()));
        // Deterministic.
        assert_eq!(r.render_correction(&view).unwrap().content_hash, out.content_hash);
    }

    #[test]
    fn amounts_carry_their_sign_and_the_sms_reason_is_one_safe_line() {
        assert_eq!(signed(Krw(2_000)), "+2,000원");
        assert_eq!(signed(Krw(-10_000)), "-10,000원");
        assert_eq!(signed(Krw(0)), "0원");
        assert_eq!(sms_safe("  요금 \n 오류  정정 ", 30), "요금 오류 정정");
        assert_eq!(sms_safe("😀 환불", 30), "* 환불");
        let cut = sms_safe(&"가".repeat(40), SMS_REASON_MAX_CHARS);
        assert_eq!(cut.chars().count(), SMS_REASON_MAX_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(sms_safe(&"가".repeat(30), 30), "가".repeat(30));
    }
}
