//! Rendering the embedded v1 templates: masking, escaping, determinism,
//! the view model, the text message and its link.

use std::io::Read;
use std::sync::Arc;

use domain::pii::Secret;
use domain::{Bill, LineKind};
use invoice::samples::{self, Sample};
use invoice::{
    Gzip, InvoiceView, LINK_PLACEHOLDER, LMS_MAX_BYTES, MAX_LINK_BYTES, Rendered, Renderer, Templates, content_hash,
    euc_kr_len, sms_with_link,
};

fn templates() -> Templates {
    Templates::embedded().unwrap()
}

fn render(r: &Renderer, s: &Sample) -> Rendered {
    r.render_bill(&s.bill, &s.name, &s.phone).unwrap()
}

/// Every sample with what v1 renders for it.
fn rendered_samples() -> Vec<(Sample, Rendered)> {
    let t = templates();
    let v1 = t.version("v1").unwrap();
    samples::all()
        .unwrap()
        .into_iter()
        .map(|s| {
            let r = render(v1, &s);
            (s, r)
        })
        .collect()
}

fn with_contact(mut s: Sample, name: &str, phone: &str) -> Sample {
    s.name = Secret::new(name.to_owned());
    s.phone = Secret::new(phone.to_owned());
    s
}

#[test]
fn embedded_versions_load_and_unknown_versions_are_listed() {
    let t = templates();
    assert_eq!(t.versions().collect::<Vec<_>>(), ["v1"]);
    assert_eq!(invoice::embedded_sources().len(), 1);
    let err = t.version("v9").err().unwrap().to_string();
    // The versions this build knows are listed; the one asked for is not quoted back.
    assert!(err.contains("known versions: v1") && !err.contains("v9"), "{err}");
    let v1 = t.version("v1").unwrap();
    assert_eq!(v1.version(), "v1");
    assert_eq!(v1.meta().brand, "한빛텔레콤");
    assert_eq!(v1.meta().sms.max_bytes, LMS_MAX_BYTES);
}

#[test]
fn templates_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Templates>();
    send_sync::<Arc<Templates>>();
}

#[test]
fn no_clear_name_or_phone_in_any_output() {
    for (s, r) in rendered_samples() {
        let name = s.name.expose();
        let phone = s.phone.expose();
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        let middle = &digits[3..7];
        for (what, text) in [("html", &r.html), ("subject", &r.subject), ("sms", &r.sms)] {
            assert!(!text.contains(name.as_str()), "{}: clear name in {what}", s.key);
            assert!(!text.contains(phone.as_str()), "{}: clear phone in {what}", s.key);
            assert!(!text.contains(&digits), "{}: phone digits in {what}", s.key);
            assert!(!text.contains(middle), "{}: phone middle digits in {what}", s.key);
        }
        let masked = domain::pii::mask_name(name);
        assert!(r.html.contains(&format!("{masked} 고객님")), "{}", s.key);
        assert!(r.sms.contains(&format!("{masked} 고객님")), "{}", s.key);
        assert!(r.html.contains(&domain::pii::mask_phone(phone)), "{}", s.key);
    }
    // Nor in the view model itself.
    let s = samples::family().unwrap();
    let view = serde_json::to_string(&InvoiceView::new(&s.bill, &s.name, &s.phone)).unwrap();
    assert!(!view.contains("김민수") && !view.contains("1234-5678") && view.contains("김*수"));
}

#[test]
fn html_escapes_every_value_and_text_templates_do_not() {
    let t = templates();
    let v1 = t.version("v1").unwrap();
    let mut s = with_contact(samples::family().unwrap(), "<script>alert(1)</script>", "010-1234-5678");
    s.bill.lines[0].label = Arc::from("<script>alert(1)</script>");
    s.bill.lines[0].detail = "a & b \"c\" 'd'".to_owned();
    let r = render(v1, &s);
    assert!(!r.html.contains("<script"), "raw script tag in the HTML");
    assert!(!r.html.contains("alert(1)</"), "raw script tag in the HTML");
    assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The masked name keeps its first and last character, escaped.
    let masked = domain::pii::mask_name("<script>alert(1)</script>");
    assert!(!r.html.contains(&masked));
    assert!(
        r.html
            .contains(&format!("&lt;{}&gt; 고객님", "*".repeat(masked.chars().count() - 2)))
    );
    assert!(r.html.contains("a &amp; b &quot;c&quot; &#39;d&#39;"));
    // The text message is plain text: no entities.
    // (shortened to the SMS name length)
    assert!(
        r.sms
            .contains(&format!("<{}> 고객님", "*".repeat(invoice::SMS_NAME_MAX_CHARS - 2))),
        "{}",
        r.sms
    );
    assert!(!r.sms.contains("&lt;"));
}

#[test]
fn rendering_is_deterministic_and_reuse_gives_the_same_bytes() {
    let t = templates();
    let v1 = t.version("v1").unwrap();
    let all = samples::all().unwrap();
    let mut reused = Rendered::default();
    let mut hashes = Vec::new();
    for s in &all {
        let a = render(v1, s);
        let b = render(v1, s);
        assert_eq!(a, b, "{}", s.key);
        v1.render_into(&InvoiceView::new(&s.bill, &s.name, &s.phone), &mut reused)
            .unwrap();
        assert_eq!(reused, a, "{}: render_into differs", s.key);
        assert_eq!(a.template_version, "v1");
        assert_eq!(a.content_hash, content_hash("v1", &a.subject, &a.html, &a.sms));
        assert_eq!(a.content_hash.len(), 64);
        hashes.push(a.content_hash);
    }
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), all.len(), "different invoices, different hashes");
}

#[test]
fn content_hash_separates_its_parts() {
    let h = content_hash("v1", "ab", "c", "d");
    assert_ne!(h, content_hash("v1", "a", "bc", "d"));
    assert_ne!(h, content_hash("v1a", "b", "c", "d"));
    assert_ne!(content_hash("v1", "", "", "x"), content_hash("v1", "", "x", ""));
    assert_eq!(h, content_hash("v1", "ab", "c", "d"));
}

#[test]
fn the_view_groups_and_formats_the_bill() {
    let s = samples::family().unwrap();
    let v = InvoiceView::new(&s.bill, &s.name, &s.phone);
    assert_eq!(v.customer_id, "C0001042");
    assert_eq!(v.customer_name, "김*수");
    assert_eq!(v.customer_phone, "010-****-5678");
    assert_eq!(v.cycle, "2026-11");
    assert_eq!(v.cycle_label, "2026년 11월");
    assert_eq!(v.service_period, "2026.11.01 ~ 2026.11.30");
    assert_eq!(v.due_date, "2026년 12월 31일");
    assert_eq!(&*v.plan_name, "5G 프리미엄");
    let kinds: Vec<&str> = v.charge_lines.iter().map(|l| l.kind).collect();
    assert_eq!(kinds, ["plan", "addon", "addon", "usage", "usage"]);
    assert_eq!(v.charge_lines[3].detail, "사용 350MB");
    assert_eq!(v.charge_lines[3].amount, "15,750원");
    let discounts: Vec<(&str, &str)> = v
        .discount_lines
        .iter()
        .map(|l| (&*l.label, l.amount.as_str()))
        .collect();
    assert_eq!(
        discounts,
        [
            ("가족결합 할인", "-17,800원"),
            ("장기고객 할인", "-3,560원"),
            ("부가서비스 묶음 할인", "-1,285원")
        ]
    );
    assert_eq!(v.charge_lines[1].detail, "5G 프리미엄 요금제 월 4950원");
    assert_eq!(v.vat_lines.len(), 1);
    assert_eq!(v.vat_lines[0].amount, "9,495원");
    assert!(v.rounding_lines.is_empty());
    assert_eq!(
        (
            v.charges_total.as_str(),
            v.discounts_total.as_str(),
            v.taxable_base.as_str(),
            v.vat_total.as_str(),
            v.non_taxable_total.as_str(),
            v.rounding_total.as_str(),
            v.total.as_str()
        ),
        (
            "130,400원",
            "-22,645원",
            "94,955원",
            "9,495원",
            "12,800원",
            "0원",
            "117,250원"
        )
    );
    assert!(v.has_non_taxable);
    assert_eq!(v.catalog_version, "2026-v1");

    // The 10-won rounding, as a line of its own.
    let c = samples::contract().unwrap();
    let v = InvoiceView::new(&c.bill, &c.name, &c.phone);
    assert_eq!(v.rounding_lines[0].detail, "10원 미만 절사");
    assert_eq!(v.rounding_lines[0].amount, "-9원");

    let z = samples::zero_usage().unwrap();
    let v = InvoiceView::new(&z.bill, &z.name, &z.phone);
    assert_eq!(
        (v.customer_name.as_str(), v.customer_phone.as_str()),
        ("이*", "***-****-5432")
    );
    assert!(v.discount_lines.is_empty() && v.rounding_lines.is_empty() && !v.has_non_taxable);
}

#[test]
fn the_email_shows_what_a_bill_must_show() {
    let t = templates();
    let v1 = t.version("v1").unwrap();
    let s = samples::prorated().unwrap();
    let r = render(v1, &s);
    assert!(r.html.starts_with("<!DOCTYPE html>\n<html lang=\"ko\">"));
    assert!(r.html.contains("<meta charset=\"utf-8\">"));
    assert!(r.html.trim_end().ends_with("</html>"));
    for needle in [
        "한빛텔레콤",
        "2026년 11월 이용요금 청구서",
        "2026.11.01 ~ 2026.11.30",
        "5G 라이트",
        "일할 17/30일",
        "부가서비스 묶음 할인",
        "부가가치세",
        "10원 미만 절사",
        "31,140원",
        "2026년 12월 31일",
        "최*진",
        "010-****-8901",
        "C0004120",
        "고객센터 114 (무료) · 1599-0011",
        "청구서 양식 v1",
    ] {
        assert!(r.html.contains(needle), "missing {needle}");
    }
    assert_eq!(r.subject, "[한빛텔레콤] 2026년 11월 이용요금 청구서");
    let kb = r.html.len() as f64 / 1024.0;
    assert!((2.5..=4.5).contains(&kb), "{kb:.1} KB");
}

#[test]
fn the_text_message_is_an_lms_with_one_placeholder() {
    for (s, r) in rendered_samples() {
        assert_eq!(r.sms.matches(LINK_PLACEHOLDER).count(), 1, "{}", s.key);
        assert!(r.sms.lines().count() <= 6, "{}", s.key);
        assert!(!r.sms.ends_with('\n'));
        for needle in ["[한빛텔레콤]", "2026년 11월", "고객님", "원", "2026년 12월 31일", "114"] {
            assert!(r.sms.contains(needle), "{}: missing {needle}", s.key);
        }
        let bytes = euc_kr_len(&r.sms).unwrap();
        assert!(bytes < 300, "{}: {bytes}", s.key);
        assert!(bytes - LINK_PLACEHOLDER.len() + MAX_LINK_BYTES <= LMS_MAX_BYTES);
        // At send time: a realistic presigned URL goes in.
        let url = samples::example_presigned_url();
        assert!((1_100..=1_500).contains(&url.len()), "{}", url.len());
        let sent = sms_with_link(&r.sms, &url).unwrap();
        assert!(sent.contains(&url) && !sent.contains(LINK_PLACEHOLDER));
        assert!(euc_kr_len(&sent).unwrap() <= LMS_MAX_BYTES);
        assert_eq!(
            sms_with_link(&sent, &url).unwrap_err().to_string(),
            sms_with_link("", "x").unwrap_err().to_string()
        );
    }
}

#[test]
fn names_the_sms_cannot_encode_are_starred_not_fatal() {
    let t = templates();
    let v1 = t.version("v1").unwrap();
    let s = with_contact(samples::zero_usage().unwrap(), "José 😀", "010-1111-2222");
    let r = render(v1, &s);
    assert!(r.html.contains("J****😀 고객님"), "the email keeps the characters");
    assert!(r.sms.contains("J***** 고객님"), "{}", r.sms);
    let long = with_contact(samples::zero_usage().unwrap(), &"가".repeat(300), "010-1111-2222");
    let r = render(v1, &long);
    assert!(euc_kr_len(&r.sms).unwrap() < 300);
}

#[test]
fn a_bill_without_plan_renders_with_an_empty_plan_name() {
    let t = templates();
    let v1 = t.version("v1").unwrap();
    let mut s = samples::zero_usage().unwrap();
    s.bill.lines.retain(|l| l.kind != LineKind::Plan);
    let r = render(v1, &s);
    assert!(r.html.contains("<tr><td>요금제</td><td align=\"right\"></td></tr>"));
}

#[test]
fn a_bill_from_json_renders() {
    let s = samples::contract().unwrap();
    let json = serde_json::json!({
        "bill": s.bill,
        "name": "이서연",
        "phone": "010-2345-6789",
    });
    let parsed: Sample = serde_json::from_value(json).unwrap();
    let back: Bill = parsed.bill.clone();
    assert_eq!(back, s.bill);
    let t = templates();
    assert_eq!(
        render(t.version("v1").unwrap(), &parsed),
        render(t.version("v1").unwrap(), &s)
    );
}

#[test]
fn rendered_html_gzips_and_gunzips() {
    let mut gz = Gzip::new(invoice::DEFAULT_GZIP_LEVEL);
    let mut out = Vec::new();
    for (s, r) in rendered_samples() {
        out.clear();
        gz.compress(r.html.as_bytes(), &mut out).unwrap();
        assert!(
            out.len() < r.html.len() / 2,
            "{}: {} of {}",
            s.key,
            out.len(),
            r.html.len()
        );
        let mut back = String::new();
        flate2::read::GzDecoder::new(out.as_slice())
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, r.html);
    }
}
