//! **Benchmark only.** A hand-written renderer of template version `v1`: the
//! email HTML, subject and text message built with `push_str` from the same
//! [`InvoiceView`], byte for byte what tera renders from
//! `templates/v1/` (a test compares them for every sample). It is the floor
//! the benchmark measures tera against — what rendering costs with no
//! template engine at all — and is not used to send anything: an edit to
//! the v1 templates that this file does not follow fails that test, which
//! is the point.
//!
//! HTML values are escaped like tera 2's default escape function
//! (`tera::escape_html`): `&`, `<`, `>`, `"` and `'` become `&amp;`, `&lt;`,
//! `&gt;`, `&quot;` and `&#39;`; nothing else changes.

use crate::meta::Meta;
use crate::sms::LINK_PLACEHOLDER;
use crate::templates::Rendered;
use crate::view::{InvoiceView, LineView};

/// Renders subject, HTML and text message of `view` into `out`, reusing its
/// buffers, as version `v1` does (the content hash is left alone).
pub fn render_into(meta: &Meta, version: &str, view: &InvoiceView, out: &mut Rendered) {
    out.template_version.clear();
    out.template_version.push_str(version);
    out.subject.clear();
    subject(meta, view, &mut out.subject);
    out.html.clear();
    email_html(meta, version, view, &mut out.html);
    out.sms.clear();
    sms(meta, view, &mut out.sms);
}

/// `[한빛텔레콤] 2026년 11월 이용요금 청구서`
pub fn subject(meta: &Meta, v: &InvoiceView, out: &mut String) {
    out.push('[');
    out.push_str(&meta.brand);
    out.push_str("] ");
    out.push_str(&v.cycle_label);
    out.push_str(" 이용요금 청구서");
}

/// The text message, with the link placeholder.
pub fn sms(meta: &Meta, v: &InvoiceView, out: &mut String) {
    out.push('[');
    out.push_str(&meta.brand);
    out.push_str("] ");
    out.push_str(&v.cycle_label);
    out.push_str(" 이용요금 안내\n");
    out.push_str(&v.sms_customer_name);
    out.push_str(" 고객님, 청구금액은 ");
    out.push_str(&v.total);
    out.push_str("이며 납부기한은 ");
    out.push_str(&v.due_date);
    out.push_str("입니다.\n청구서 보기: ");
    out.push_str(LINK_PLACEHOLDER);
    out.push_str("\n문의: ");
    out.push_str(&meta.customer_service.contact);
}

/// The HTML email.
pub fn email_html(meta: &Meta, version: &str, v: &InvoiceView, out: &mut String) {
    out.reserve(4_096);
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"ko\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<title>",
    );
    escape(&meta.brand, out);
    out.push(' ');
    escape(&v.cycle_label, out);
    out.push_str(
        " 청구서</title>\n</head>\n<body style=\"margin:0;padding:0;background:#eef1f5\">\n\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"background:#eef1f5\">\
         <tr><td align=\"center\" style=\"padding:20px 8px\">\n\
         <table role=\"presentation\" width=\"600\" cellpadding=\"0\" cellspacing=\"0\" style=\"width:100%;max-width:600px;\
         background:#fff;font-family:'Malgun Gothic','Apple SD Gothic Neo',sans-serif;font-size:14px;line-height:1.5;\
         color:#222\">\n\
         <tr><td style=\"padding:20px 24px;background:#1a3d7c;color:#fff\"><b style=\"font-size:18px\">",
    );
    escape(&meta.brand, out);
    out.push_str("</b><br>");
    escape(&v.cycle_label, out);
    out.push_str(" 이용요금 청구서</td></tr>\n<tr><td style=\"padding:20px 24px 4px\">");
    escape(&v.customer_name, out);
    out.push_str(" 고객님, ");
    escape(&v.cycle_label, out);
    out.push_str(
        " 이용요금을 안내해 드립니다.</td></tr>\n<tr><td style=\"padding:8px 24px\">\n\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"background:#f3f6fb\"><tr>\n\
         <td style=\"padding:14px 16px\">청구금액<br><b style=\"font-size:24px;color:#1a3d7c\">",
    );
    escape(&v.total, out);
    out.push_str("</b></td>\n<td align=\"right\" style=\"padding:14px 16px\">납부기한<br><b>");
    escape(&v.due_date, out);
    out.push_str(
        "</b></td>\n</tr></table></td></tr>\n<tr><td style=\"padding:8px 24px\">\n\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"color:#555\">\n\
         <tr><td>고객번호</td><td align=\"right\">",
    );
    escape(&v.customer_id, out);
    out.push_str("</td></tr>\n<tr><td>휴대폰</td><td align=\"right\">");
    escape(&v.customer_phone, out);
    out.push_str("</td></tr>\n<tr><td>요금제</td><td align=\"right\">");
    escape(&v.plan_name, out);
    out.push_str("</td></tr>\n<tr><td>이용기간</td><td align=\"right\">");
    escape(&v.service_period, out);
    out.push_str(
        "</td></tr>\n</table></td></tr>\n<tr><td style=\"padding:8px 24px 16px\">\n\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"4\" cellspacing=\"0\" style=\"border-collapse:collapse\">\n\
         <tr><td colspan=\"2\" style=\"border-bottom:2px solid #1a3d7c\"><b>이용 요금</b></td></tr>",
    );
    for l in &v.charge_lines {
        line_row(l, out);
    }
    out.push_str(
        "\n<tr><td style=\"border-top:1px solid #ccc\"><b>요금 합계</b></td>\
         <td align=\"right\" style=\"border-top:1px solid #ccc\"><b>",
    );
    escape(&v.charges_total, out);
    out.push_str("</b></td></tr>");
    if !v.discount_lines.is_empty() {
        out.push_str(
            "\n<tr><td colspan=\"2\" style=\"padding-top:14px;border-bottom:2px solid #1a3d7c\"><b>할인</b></td></tr>",
        );
        for l in &v.discount_lines {
            line_row(l, out);
        }
        out.push_str(
            "\n<tr><td style=\"border-top:1px solid #ccc\"><b>할인 합계</b></td>\
             <td align=\"right\" style=\"border-top:1px solid #ccc;color:#c0392b\"><b>",
        );
        escape(&v.discounts_total, out);
        out.push_str("</b></td></tr>");
    }
    out.push_str(
        "\n<tr><td colspan=\"2\" style=\"padding-top:14px;border-bottom:2px solid #1a3d7c\"><b>부가세 및 조정</b></td></tr>",
    );
    for l in &v.vat_lines {
        out.push_str("\n<tr><td>");
        escape(&l.label, out);
        out.push(' ');
        escape(&l.detail, out);
        out.push_str("<br><small style=\"color:#888\">과세 대상 ");
        escape(&v.taxable_base, out);
        if v.has_non_taxable {
            out.push_str(" (비과세 ");
            escape(&v.non_taxable_total, out);
            out.push_str(" 제외)");
        }
        out.push_str("</small></td><td align=\"right\">");
        escape(&l.amount, out);
        out.push_str("</td></tr>");
    }
    for l in &v.rounding_lines {
        out.push_str("\n<tr><td>");
        escape(&l.label, out);
        out.push_str("<br><small style=\"color:#888\">");
        escape(&l.detail, out);
        out.push_str("</small></td><td align=\"right\">");
        escape(&l.amount, out);
        out.push_str("</td></tr>");
    }
    out.push_str(
        "\n<tr><td style=\"border-top:2px solid #1a3d7c;font-size:16px\"><b>이번 달 청구금액</b></td>\
         <td align=\"right\" style=\"border-top:2px solid #1a3d7c;font-size:16px;color:#1a3d7c\"><b>",
    );
    escape(&v.total, out);
    out.push_str(
        "</b></td></tr>\n</table></td></tr>\n\
         <tr><td style=\"padding:16px 24px 20px;background:#f7f8fa;font-size:12px;color:#777\">",
    );
    escape(&meta.customer_service.contact, out);
    out.push_str(" · ");
    escape(&meta.customer_service.hours, out);
    out.push_str("<br>");
    escape(&meta.web, out);
    out.push_str("<br>이 메일은 발신 전용입니다. 청구서 양식 ");
    escape(version, out);
    out.push_str(" · 요금표 ");
    escape(&v.catalog_version, out);
    out.push_str("</td></tr>\n</table>\n</td></tr></table>\n</body>\n</html>\n");
}

/// A charge or discount row.
fn line_row(l: &LineView, out: &mut String) {
    out.push_str("\n<tr><td>");
    escape(&l.label, out);
    if !l.detail.is_empty() {
        out.push_str("<br><small style=\"color:#888\">");
        escape(&l.detail, out);
        out.push_str("</small>");
    }
    out.push_str("</td><td align=\"right\">");
    escape(&l.amount, out);
    out.push_str("</td></tr>");
}

/// Appends `s` HTML-escaped as tera 2's default escape function does.
pub fn escape(s: &str, out: &mut String) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices are on char boundaries.
        out.push_str(&s[start..i]);
        out.push_str(entity);
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_tera() {
        for s in [
            "",
            "plain",
            "<script>alert('x')</script>",
            "a & b \"c\" 'd' > e",
            "김*수 &amp; 한빛",
            "&&<<>>\"\"''",
        ] {
            let mut ours = String::new();
            escape(s, &mut ours);
            let mut theirs = Vec::new();
            tera::escape_html(s, &mut theirs).unwrap();
            assert_eq!(ours.as_bytes(), theirs, "{s}");
        }
    }
}
