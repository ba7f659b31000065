//! The hand-written floor renders exactly what tera renders from the v1
//! templates, so the benchmark compares like with like.

use std::sync::Arc;

use domain::pii::Secret;
use invoice::samples::{self, Sample};
use invoice::{InvoiceView, Rendered, Templates, floor};

fn cases() -> Vec<Sample> {
    let mut all = samples::all().unwrap();
    all.push(samples::worst_case().unwrap());
    // Every character the escape function changes, in every kind of value.
    let mut xss = samples::family().unwrap();
    xss.key = "escaping".into();
    xss.name = Secret::new("<script>alert('x')</script>".into());
    for l in &mut xss.bill.lines {
        l.label = Arc::from(format!("{} <b>&\"'</b>", l.label));
        l.detail = format!("{} & <i>\"'", l.detail);
    }
    all.push(xss);
    all
}

#[test]
fn floor_output_equals_tera_output_for_every_sample() {
    let t = Templates::embedded().unwrap();
    let v1 = t.version("v1").unwrap();
    let mut ours = Rendered::default();
    for s in cases() {
        let view = InvoiceView::new(&s.bill, &s.name, &s.phone);
        let theirs = v1.render(&view).unwrap();
        floor::render_into(v1.meta(), "v1", &view, &mut ours);
        assert_eq!(ours.subject, theirs.subject, "{}: subject", s.key);
        assert_eq!(ours.sms, theirs.sms, "{}: sms", s.key);
        if ours.html != theirs.html {
            let at = ours
                .html
                .bytes()
                .zip(theirs.html.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(ours.html.len().min(theirs.html.len()));
            let from = at.saturating_sub(60);
            panic!(
                "{}: HTML differs at byte {at}\nfloor: {:?}\ntera:  {:?}",
                s.key,
                String::from_utf8_lossy(&ours.html.as_bytes()[from..(at + 60).min(ours.html.len())]),
                String::from_utf8_lossy(&theirs.html.as_bytes()[from..(at + 60).min(theirs.html.len())]),
            );
        }
        assert_eq!(ours.template_version, theirs.template_version);
    }
}
