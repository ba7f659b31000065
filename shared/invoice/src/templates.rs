//! The template registry: every version's files parsed once, checked, and
//! rendered on demand.

use std::collections::BTreeSet;

use domain::Bill;
use domain::pii::Secret;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tera::{Context, ErrorKind, Tera};

use crate::correction::{Adjustment, AdjustmentKind, CorrectionView};
use crate::error::{RenderError, TemplateError};
use crate::meta::Meta;
use crate::samples;
use crate::sms::{LINK_PLACEHOLDER, check_rendered};
use crate::view::InvoiceView;

/// The HTML email's file name in a version folder.
pub const EMAIL_FILE: &str = "email.html";
/// The email subject's file name.
pub const SUBJECT_FILE: &str = "subject.txt";
/// The text message's file name.
pub const SMS_FILE: &str = "sms.txt";
/// The versioned texts' file name.
pub const META_FILE: &str = "meta.json";

/// The corrected invoice's files ([`crate::correction`]): one set for every version, rendered
/// with the version's `meta.json`.
pub const CORRECTION_EMAIL_FILE: &str = "corrections/email.html";
pub const CORRECTION_SUBJECT_FILE: &str = "corrections/subject.txt";
pub const CORRECTION_SMS_FILE: &str = "corrections/sms.txt";
const CORRECTION_SOURCES: [(&str, &str); 3] = [
    (CORRECTION_EMAIL_FILE, include_str!("../corrections/email.html")),
    (CORRECTION_SUBJECT_FILE, include_str!("../corrections/subject.txt")),
    (CORRECTION_SMS_FILE, include_str!("../corrections/sms.txt")),
];

/// Variables every template gets besides the view model's fields: the
/// version's `meta.json`, its name, and the link placeholder.
pub const GLOBAL_VARIABLES: [&str; 3] = ["meta", "template_version", "invoice_url"];

/// The files of one template version, as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateSource<'a> {
    pub version: &'a str,
    pub email_html: &'a str,
    pub subject_txt: &'a str,
    pub sms_txt: &'a str,
    pub meta_json: &'a str,
}

// `EMBEDDED`: one `TemplateSource` per folder under `templates/`, made by
// build.rs.
include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The template versions compiled into this crate, in name order.
pub fn embedded_sources() -> &'static [TemplateSource<'static>] {
    EMBEDDED
}

/// One rendered invoice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    pub template_version: String,
    /// One line, no trailing newline.
    pub subject: String,
    /// The complete HTML document.
    pub html: String,
    /// The text message with [`LINK_PLACEHOLDER`] where the link goes; see
    /// [`crate::sms_with_link`].
    pub sms: String,
    /// See [`content_hash`].
    pub content_hash: String,
}

/// Hex SHA-256 of a rendered invoice: a domain tag, then version, subject,
/// HTML and SMS, each preceded by its length in bytes (8 bytes, big-endian),
/// so that no two different invoices hash the same input (no separator can
/// be forged by content). Equal content gives an equal hash.
pub fn content_hash(version: &str, subject: &str, html: &str, sms: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"invoice-content-v1\n");
    for part in [version, subject, html, sms] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Every loaded template version, each validated.
pub struct Templates {
    /// In version-name order.
    renderers: Vec<Renderer>,
}

impl Templates {
    /// Loads and validates every version compiled into the crate (see
    /// [`embedded_sources`]). Call it once, at start-up.
    pub fn embedded() -> Result<Templates, TemplateError> {
        Templates::from_sources(EMBEDDED.iter().copied())
    }

    /// Loads and validates the given versions (tests build ad-hoc ones
    /// with this). Fails on the first invalid version.
    pub fn from_sources<'a>(sources: impl IntoIterator<Item = TemplateSource<'a>>) -> Result<Templates, TemplateError> {
        let mut renderers: Vec<Renderer> = Vec::new();
        for source in sources {
            if renderers.iter().any(|r| r.version == source.version) {
                return Err(TemplateError::DuplicateVersion {
                    version: source.version.to_owned(),
                });
            }
            renderers.push(Renderer::load(source)?);
        }
        if renderers.is_empty() {
            return Err(TemplateError::NoVersions);
        }
        renderers.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(Templates { renderers })
    }

    /// The renderer of one version, or an error listing the known ones.
    pub fn version(&self, version: &str) -> Result<&Renderer, TemplateError> {
        self.renderers
            .iter()
            .find(|r| r.version == version)
            .ok_or_else(|| TemplateError::UnknownVersion {
                version: version.to_owned(),
                known: self.versions().collect::<Vec<_>>().join(", "),
            })
    }

    /// The loaded version names, in name order.
    pub fn versions(&self) -> impl Iterator<Item = &str> + '_ {
        self.renderers.iter().map(|r| r.version.as_str())
    }
}

/// The names of a version's templates inside its tera instance.
struct Names {
    email: String,
    subject: String,
    sms: String,
    /// The corrected invoice's, in the same order.
    correction: [String; 3],
}

/// The globals of a version, as one serialisable value.
#[derive(Serialize)]
struct Globals<'a> {
    meta: &'a Meta,
    template_version: &'a str,
    invoice_url: &'a str,
}

/// Renders invoices with one template version: its templates parsed once,
/// its `meta.json`, version and link placeholder bound as globals.
pub struct Renderer {
    version: String,
    meta: Meta,
    tera: Tera,
    names: Names,
    /// Output buffer sizes to reserve (HTML, subject, SMS), from the
    /// validation renders, so a render does not regrow its buffers.
    hints: [usize; 3],
}

impl Renderer {
    /// Parses and validates one version.
    ///
    /// Fails, naming version and file, when the version name is unusable,
    /// `meta.json` is malformed, a template does not parse, a template uses a
    /// top-level variable the view model does not provide, the email or
    /// subject uses the link, or rendering the built-in samples and the
    /// worst case fails — which includes a text message over its limit
    /// (with the link budget), without the link placeholder exactly once, or
    /// with a character EUC-KR cannot encode.
    pub fn load(src: TemplateSource<'_>) -> Result<Renderer, TemplateError> {
        let version = src.version.to_owned();
        if !valid_version(&version) {
            return Err(TemplateError::BadVersionName { version });
        }
        let meta = Meta::parse(src.meta_json).map_err(|message| TemplateError::Meta {
            version: version.clone(),
            message,
        })?;
        let names = Names {
            email: format!("{version}/{EMAIL_FILE}"),
            subject: format!("{version}/{SUBJECT_FILE}"),
            sms: format!("{version}/{SMS_FILE}"),
            correction: CORRECTION_SOURCES.map(|(file, _)| format!("{version}/{file}")),
        };
        let mut tera = Tera::new();
        // Escape every value in the HTML; the text templates are plain text.
        tera.autoescape_on([".html"]);
        for (name, file, content) in [
            (&names.email, EMAIL_FILE, src.email_html),
            (&names.subject, SUBJECT_FILE, src.subject_txt),
            (&names.sms, SMS_FILE, src.sms_txt),
        ] {
            tera.add_raw_template(name, content).map_err(|e| TemplateError::Parse {
                version: version.clone(),
                file,
                message: e.to_string(),
            })?;
        }
        for (name, (file, content)) in names.correction.iter().zip(CORRECTION_SOURCES) {
            tera.add_raw_template(name, content).map_err(|e| TemplateError::Parse {
                version: version.clone(),
                file,
                message: e.to_string(),
            })?;
        }
        let globals = Context::from_serialize(&Globals {
            meta: &meta,
            template_version: &version,
            invoice_url: LINK_PLACEHOLDER,
        })
        .map_err(|e| TemplateError::Meta {
            version: version.clone(),
            message: e.to_string(),
        })?;
        tera.global_context().extend(globals);

        let mut renderer = Renderer {
            version,
            meta,
            tera,
            names,
            hints: [4_096, 128, 512],
        };
        renderer.check_variables()?;
        renderer.check_samples()?;
        Ok(renderer)
    }

    /// The version's name (`v1`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The version's `meta.json`.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Renders a bill for a customer: builds the view (masking name and
    /// phone) and renders it.
    pub fn render_bill(
        &self,
        bill: &Bill,
        name: &Secret<String>,
        phone: &Secret<String>,
    ) -> Result<Rendered, RenderError> {
        self.render(&InvoiceView::new(bill, name, phone))
    }

    /// Renders the email (HTML and subject) and the text message of a view.
    pub fn render(&self, view: &InvoiceView) -> Result<Rendered, RenderError> {
        let mut out = Rendered::default();
        self.render_into(view, &mut out)?;
        Ok(out)
    }

    /// Like [`render`](Self::render), reusing `out`'s buffers: a loop over
    /// many invoices allocates its output buffers once. On error `out` holds
    /// partial output and must not be used.
    pub fn render_into(&self, view: &InvoiceView, out: &mut Rendered) -> Result<(), RenderError> {
        let ctx = Context::from_serialize(view).map_err(|e| self.tera_error(EMAIL_FILE, &e))?;
        let names = [&self.names.email, &self.names.subject, &self.names.sms];
        self.render_files(names, [EMAIL_FILE, SUBJECT_FILE, SMS_FILE], &ctx, out)
    }

    /// Renders the corrected invoice of a bill ([`crate::correction`]): HTML, subject and text
    /// message, with this version's `meta.json`, hashed like an invoice.
    pub fn render_correction(&self, view: &CorrectionView) -> Result<Rendered, RenderError> {
        let ctx = Context::from_serialize(view).map_err(|e| self.tera_error(CORRECTION_EMAIL_FILE, &e))?;
        let [email, subject, sms] = &self.names.correction;
        let files = [CORRECTION_EMAIL_FILE, CORRECTION_SUBJECT_FILE, CORRECTION_SMS_FILE];
        let mut out = Rendered::default();
        self.render_files([email, subject, sms], files, &ctx, &mut out)?;
        Ok(out)
    }

    fn render_files(
        &self,
        [email, subject, sms]: [&String; 3],
        [email_file, subject_file, sms_file]: [&'static str; 3],
        ctx: &Context,
        out: &mut Rendered,
    ) -> Result<(), RenderError> {
        self.render_template(email, email_file, ctx, &mut out.html, self.hints[0])?;
        self.render_template(subject, subject_file, ctx, &mut out.subject, self.hints[1])?;
        self.render_template(sms, sms_file, ctx, &mut out.sms, self.hints[2])?;

        // A final newline in a text file is not part of the text.
        out.subject.truncate(out.subject.trim_end().len());
        out.sms.truncate(out.sms.trim_end().len());
        if out.subject.contains(['\r', '\n']) {
            return Err(self.subject_error("the subject must be one line"));
        }
        if out.subject.trim().is_empty() {
            return Err(self.subject_error("the subject is empty"));
        }
        check_rendered(&out.sms, self.meta.sms.max_bytes).map_err(|source| RenderError::Sms {
            version: self.version.clone(),
            source,
        })?;

        out.template_version.clear();
        out.template_version.push_str(&self.version);
        out.content_hash = content_hash(&out.template_version, &out.subject, &out.html, &out.sms);
        Ok(())
    }

    fn render_template(
        &self,
        name: &str,
        file: &'static str,
        ctx: &Context,
        out: &mut String,
        hint: usize,
    ) -> Result<(), RenderError> {
        let mut buf = std::mem::take(out).into_bytes();
        buf.clear();
        buf.reserve(hint);
        self.tera
            .render_to(name, ctx, &mut buf)
            .map_err(|e| self.tera_error(file, &e))?;
        *out = String::from_utf8(buf).map_err(|_| RenderError::Template {
            version: self.version.clone(),
            file,
            message: "the output is not UTF-8".to_owned(),
        })?;
        Ok(())
    }

    fn tera_error(&self, file: &'static str, e: &tera::Error) -> RenderError {
        // The position and message, not tera's full report: that quotes the
        // template source, which is long and says nothing more.
        let message = match e.kind() {
            ErrorKind::RenderingError(r) | ErrorKind::SyntaxError(r) => {
                let s = r.span();
                format!("{} (line {}, column {})", r.message(), s.start_line, s.start_col + 1)
            }
            _ => e.to_string(),
        };
        RenderError::Template {
            version: self.version.clone(),
            file,
            message,
        }
    }

    fn subject_error(&self, reason: &'static str) -> RenderError {
        RenderError::Subject {
            version: self.version.clone(),
            reason,
        }
    }

    /// Every top-level variable a template uses must be a view-model field
    /// or a global; only the text message may use the link.
    fn check_variables(&self) -> Result<(), TemplateError> {
        let mut known: BTreeSet<String> = view_fields()?;
        known.extend(GLOBAL_VARIABLES.iter().map(|s| (*s).to_owned()));
        for (name, file) in [
            (&self.names.email, EMAIL_FILE),
            (&self.names.subject, SUBJECT_FILE),
            (&self.names.sms, SMS_FILE),
        ] {
            let used = self
                .tera
                .get_template_variables(name)
                .map_err(|e| TemplateError::Parse {
                    version: self.version.clone(),
                    file,
                    message: e.to_string(),
                })?;
            let mut unknown: Vec<String> = used
                .iter()
                .filter(|v| !known.contains(**v))
                .map(|v| (*v).to_owned())
                .collect();
            if !unknown.is_empty() {
                unknown.sort();
                return Err(TemplateError::UnknownVariables {
                    version: self.version.clone(),
                    file,
                    names: unknown,
                    known: known.into_iter().collect(),
                });
            }
            if file != SMS_FILE && used.contains("invoice_url") {
                return Err(TemplateError::LinkOutsideSms {
                    version: self.version.clone(),
                    file,
                });
            }
        }
        Ok(())
    }

    /// Renders the built-in samples and the worst case; keeps the largest
    /// representative sizes as buffer hints.
    fn check_samples(&mut self) -> Result<(), TemplateError> {
        let mut hints = [0usize; 3];
        let mut list = samples::all()?;
        list.push(samples::worst_case()?);
        for s in &list {
            let view = InvoiceView::new(&s.bill, &s.name, &s.phone);
            let r = self.render(&view).map_err(|source| TemplateError::Sample {
                version: self.version.clone(),
                sample: s.key.clone(),
                source,
            })?;
            if r.html.contains(LINK_PLACEHOLDER) || r.subject.contains(LINK_PLACEHOLDER) {
                return Err(TemplateError::LinkOutsideSms {
                    version: self.version.clone(),
                    file: if r.html.contains(LINK_PLACEHOLDER) {
                        EMAIL_FILE
                    } else {
                        SUBJECT_FILE
                    },
                });
            }
            // Its corrected invoice, with the longest reason a command takes.
            let longest = if s.key == "worst-case" {
                "가".repeat(500)
            } else {
                "요금 정정".to_owned()
            };
            let adjustments = sample_adjustments(&s.bill, &longest);
            let view = CorrectionView::new(&s.bill, &s.name, &s.phone, &adjustments, s.bill.total);
            self.render_correction(&view).map_err(|source| TemplateError::Sample {
                version: self.version.clone(),
                sample: format!("{} correction", s.key),
                source,
            })?;
            if s.key != "worst-case" {
                hints[0] = hints[0].max(r.html.len());
                hints[1] = hints[1].max(r.subject.len());
                hints[2] = hints[2].max(r.sms.len());
            }
        }
        // Some room for longer bills than the samples.
        self.hints = hints.map(|h| h + h / 4 + 64);
        Ok(())
    }
}

/// A credit and a re-rating of `bill`, for validation: the largest amounts, every line changed.
fn sample_adjustments(bill: &Bill, reason: &str) -> Vec<Adjustment> {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap_or_default();
    let big = domain::Krw(i64::MIN / 4);
    vec![
        Adjustment {
            seq: 9_998,
            kind: AdjustmentKind::Credit,
            amount: big,
            reason: reason.to_owned(),
            issued_on: day,
            catalog_version: None,
            changed: Vec::new(),
        },
        Adjustment {
            seq: 9_999,
            kind: AdjustmentKind::Rerate,
            amount: big,
            reason: reason.to_owned(),
            issued_on: day,
            catalog_version: Some("x".repeat(32)),
            changed: bill
                .lines
                .iter()
                .map(|l| crate::correction::ChangedAmount {
                    code: l.code.to_string(),
                    old: big,
                    new: big,
                })
                .collect(),
        },
    ]
}

/// The top-level field names of the view model, read from a serialised
/// sample so the list can never drift from the struct.
fn view_fields() -> Result<BTreeSet<String>, TemplateError> {
    let s = samples::zero_usage()?;
    let view = InvoiceView::new(&s.bill, &s.name, &s.phone);
    Ok(match serde_json::to_value(&view) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => BTreeSet::new(),
    })
}

pub(crate) fn valid_version(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}
