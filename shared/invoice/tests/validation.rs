//! Validation of template versions: every way a version can be broken is
//! refused at load, with an error naming the version and file.

use invoice::samples;
use invoice::{RenderError, SmsError, TemplateError, TemplateSource, Templates};

fn v1() -> TemplateSource<'static> {
    invoice::embedded_sources()[0]
}

/// A file of a template version, for the tests that replace one.
#[derive(Clone, Copy)]
enum File {
    SmsTxt,
    EmailHtml,
    MetaJson,
    SubjectTxt,
}
use File::*;

/// v1 under the name `version`, with `file` replaced by `text`.
fn v1_with<'a>(version: &'a str, file: File, text: &'a str) -> TemplateSource<'a> {
    let mut src = TemplateSource { version, ..v1() };
    match file {
        SmsTxt => src.sms_txt = text,
        EmailHtml => src.email_html = text,
        MetaJson => src.meta_json = text,
        SubjectTxt => src.subject_txt = text,
    }
    src
}

/// v1's e-mail HTML with `from` replaced by `to`.
fn v1_email_html(from: &str, to: &str) -> String {
    v1().email_html.replace(from, to)
}

fn load(src: TemplateSource<'_>) -> Result<Templates, TemplateError> {
    Templates::from_sources([src])
}

fn err(src: TemplateSource<'_>) -> (TemplateError, String) {
    let e = load(src).err().expect("the version should be refused");
    let text = e.to_string();
    (e, text)
}

#[test]
fn a_copy_of_v1_under_another_name_loads() {
    let t = Templates::from_sources([v1(), TemplateSource { version: "v2", ..v1() }]).unwrap();
    assert_eq!(t.versions().collect::<Vec<_>>(), ["v1", "v2"]);
}

#[test]
fn no_versions_duplicate_versions_and_bad_names_are_refused() {
    assert!(matches!(Templates::from_sources([]), Err(TemplateError::NoVersions)));
    let e = Templates::from_sources([v1(), v1()]).err().unwrap();
    assert!(matches!(e, TemplateError::DuplicateVersion { .. }), "{e}");
    for bad in ["", "V1", "v 1", "../v1", "v1/x", &"v".repeat(33)] {
        let (e, _) = err(TemplateSource { version: bad, ..v1() });
        assert!(matches!(e, TemplateError::BadVersionName { .. }), "{bad:?}: {e}");
    }
}

#[test]
fn a_template_that_does_not_parse_is_named() {
    let (e, text) = err(v1_with(
        "broken",
        EmailHtml,
        "<p>{% for l in charge_lines %}{{ l.label }}</p>",
    ));
    assert!(matches!(e, TemplateError::Parse { file: "email.html", .. }), "{e:?}");
    assert!(text.starts_with("template broken/email.html does not parse"), "{text}");

    let (e, text) = err(v1_with("broken", SubjectTxt, "{{ cycle_label "));
    assert!(
        matches!(
            e,
            TemplateError::Parse {
                file: "subject.txt",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(text.contains("broken/subject.txt"), "{text}");
}

#[test]
fn an_unknown_variable_is_refused_at_validation() {
    let sms = format!("{} {{{{ nickname }}}} {{{{ loyalty_points }}}}", v1().sms_txt);
    let (e, text) = err(v1_with("v-unknown", SmsTxt, &sms));
    match &e {
        TemplateError::UnknownVariables {
            version, file, names, ..
        } => {
            assert_eq!((version.as_str(), *file), ("v-unknown", "sms.txt"));
            assert_eq!(names, &["loyalty_points", "nickname"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        text.starts_with("template v-unknown/sms.txt uses the variables `loyalty_points`, `nickname`"),
        "{text}"
    );
    assert!(
        text.contains("customer_name") && text.contains("meta"),
        "lists what exists: {text}"
    );

    // A loop variable or a `set` is not a top-level variable.
    let html = v1_email_html(
        "</body>",
        "{% set n = 1 %}{% for x in discount_lines %}{{ x.label }}{{ n }}{% endfor %}</body>",
    );
    load(v1_with("v-local", EmailHtml, &html)).unwrap();
}

#[test]
fn a_missing_field_is_caught_when_a_sample_reaches_it() {
    // `customer_grade` is not a field of `meta`; every sample renders the
    // footer, so validation reaches it.
    let html = v1_email_html("{{ meta.web }}", "{{ meta.web }} {{ meta.customer_grade }}");
    let (e, text) = err(v1_with("v-field", EmailHtml, &html));
    assert!(matches!(e, TemplateError::Sample { .. }), "{e:?}");
    assert!(text.contains("template v-field/email.html"), "{text}");
    assert!(text.contains("customer_grade"), "{text}");
}

#[test]
fn a_missing_field_at_render_time_is_an_error_naming_template_and_version() {
    // A branch no validation sample takes: only bills of exactly 1,000원.
    let html = v1_email_html(
        "</body>",
        "{% if total == \"1,000원\" %}{{ meta.customer_grade }}{% endif %}</body>",
    );
    let t = load(v1_with("v-branch", EmailHtml, &html)).unwrap();
    let r = t.version("v-branch").unwrap();
    let mut s = samples::zero_usage().unwrap();
    r.render_bill(&s.bill, &s.name, &s.phone).unwrap();
    s.bill.total = domain::Krw(1_000);
    let e = r.render_bill(&s.bill, &s.name, &s.phone).unwrap_err();
    assert!(
        matches!(&e, RenderError::Template { version, file: "email.html", .. } if version == "v-branch"),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.starts_with("template v-branch/email.html: "), "{text}");
    assert!(text.contains("customer_grade") && text.contains("line "), "{text}");
    assert!(
        !text.contains("이민") && !text.contains("9876"),
        "no personal data: {text}"
    );
}

#[test]
fn malformed_meta_is_refused() {
    for (meta, needle) in [
        ("{", "EOF"),
        ("[]", "expected struct Meta"),
        (r#"{"brand":"B"}"#, "missing field"),
        (
            &v1().meta_json.replace("\"max_bytes\": 2000", "\"max_bytes\": 5000"),
            "max_bytes",
        ),
        (&v1().meta_json.replace("\"LMS\"", "\"MMS\""), "unknown variant"),
        (&v1().meta_json.replace("\"한빛텔레콤\"", "\"\""), "brand is empty"),
        (&v1().meta_json.replace("\"web\"", "\"homepage\""), "unknown field"),
    ] {
        let (e, text) = err(v1_with("v-meta", MetaJson, meta));
        assert!(matches!(e, TemplateError::Meta { .. }), "{e:?}");
        assert!(text.starts_with("template v-meta/meta.json is malformed"), "{text}");
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn an_sms_over_the_limit_is_refused_with_version_and_sizes() {
    // 200 syllables more: 400 bytes, over 2,000 with the 1,600-byte link budget.
    let sms = format!("{}\n{}", v1().sms_txt.trim_end(), "가".repeat(200));
    let (e, text) = err(v1_with("v-long", SmsTxt, &sms));
    let TemplateError::Sample { version, source, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(version, "v-long");
    let RenderError::Sms {
        source:
            SmsError::TooLong {
                text_bytes,
                link_bytes,
                link_budgeted,
                limit,
            },
        ..
    } = source
    else {
        panic!("{source:?}")
    };
    assert_eq!((*link_bytes, *link_budgeted, *limit), (1_600, true, 2_000));
    assert!(*text_bytes > 400);
    assert!(text.contains("template v-long/sms.txt"), "{text}");
    assert!(
        text.contains(&format!(
            "{} bytes in EUC-KR ({text_bytes} of text + 1600 budgeted for the link) exceed the limit of 2000 bytes",
            text_bytes + 1_600
        )),
        "{text}"
    );

    // A lower limit in meta.json is honoured.
    let meta = v1().meta_json.replace("\"max_bytes\": 2000", "\"max_bytes\": 1700");
    let (_, text) = err(v1_with("v-small", MetaJson, &meta));
    assert!(text.contains("exceed the limit of 1700 bytes"), "{text}");

    // And a short SMS cannot carry a Korean invoice with a link at all.
    let meta = v1()
        .meta_json
        .replace("\"LMS\"", "\"SMS\"")
        .replace("\"max_bytes\": 2000", "\"max_bytes\": 90");
    let (_, text) = err(v1_with("v-sms", MetaJson, &meta));
    assert!(text.contains("exceed the limit of 90 bytes"), "{text}");
}

#[test]
fn the_sms_must_hold_the_link_exactly_once() {
    let none = v1().sms_txt.replace("{{ invoice_url }}", "");
    let (_, text) = err(v1_with("v-nolink", SmsTxt, &none));
    assert!(text.contains("v-nolink/sms.txt") && text.contains("0 times"), "{text}");
    let twice = format!("{} {{{{ invoice_url }}}}", v1().sms_txt.trim_end());
    let (_, text) = err(v1_with("v-twice", SmsTxt, &twice));
    assert!(text.contains("v-twice/sms.txt") && text.contains("2 times"), "{text}");
}

#[test]
fn the_link_is_only_for_the_sms() {
    let html = v1_email_html("</body>", "<a href=\"{{ invoice_url }}\">보기</a></body>");
    let (e, text) = err(v1_with("v-a", EmailHtml, &html));
    assert!(
        matches!(e, TemplateError::LinkOutsideSms { file: "email.html", .. }),
        "{e:?}"
    );
    assert!(text.contains("v-a/email.html"), "{text}");
}

#[test]
fn characters_euc_kr_cannot_encode_are_named() {
    let sms = v1().sms_txt.replace("이용요금 안내", "이용요금 안내 📱");
    let (_, text) = err(v1_with("v-emoji", SmsTxt, &sms));
    assert!(text.contains("v-emoji/sms.txt"), "{text}");
    assert!(text.contains("U+1F4F1") && text.contains("EUC-KR"), "{text}");
}

#[test]
fn too_many_line_breaks_and_multiline_subjects_are_refused() {
    let sms = v1().sms_txt.replace("\n", "\n\n\n");
    let (_, text) = err(v1_with("v-lines", SmsTxt, &sms));
    assert!(text.contains("line breaks"), "{text}");
    let (_, text) = err(v1_with("v-subj", SubjectTxt, "[{{ meta.brand }}]\n{{ cycle_label }}"));
    assert!(
        text.contains("v-subj/subject.txt: the subject must be one line"),
        "{text}"
    );
}
