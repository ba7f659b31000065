//! Invoice rendering: a settled [`domain::Bill`] becomes an HTML email (with
//! its subject) and a text message, from versioned templates kept in the
//! repository.
//!
//! # Templates
//! `shared/invoice/templates/<version>/` holds one version: `email.html`,
//! `subject.txt`, `sms.txt` (tera 2 templates) and `meta.json` (the brand,
//! customer-service contact, web address, and the kind and size limit of the
//! text message). `build.rs` embeds every folder, so adding a folder adds a
//! version with no code change; a version, once released, is never edited —
//! a cycle pins the version it renders with.
//!
//! [`Templates::embedded`] parses and validates every version once, at
//! start-up; [`Templates::version`] gives its [`Renderer`]. Validation fails,
//! naming version and file, when a template does not parse, uses a variable
//! the view model does not provide, `meta.json` is malformed, or the
//! built-in samples and the worst case ([`samples::worst_case`]) do not
//! render — which includes a text message over its limit or without the
//! link placeholder exactly once.
//!
//! # What templates see
//! An [`InvoiceView`]: the bill's lines grouped (charges, discounts, VAT,
//! rounding) with amounts formatted as on a Korean bill (`12,345원`,
//! `-1,234원`), subtotals, the total, the cycle (`2026년 11월`), the service
//! period (the cycle's first to last day), the due date, the plan name, the
//! customer id, and the customer's name and phone **masked**
//! ([`domain::pii::mask_name`], [`domain::pii::mask_phone`]): the clear
//! values never reach a template. Besides the view, every template gets
//! `meta` (its version's `meta.json`), `template_version` and
//! `invoice_url` (the link placeholder, see below). Templates only
//! interpolate, loop and branch. The HTML is autoescaped; the `.txt`
//! templates are not.
//!
//! # Due date
//! An invoice is due on **the last day of the month after its cycle** (cycle
//! 2026-11 → 2026-12-31; see [`due_date`]). Invoices are delivered in that
//! month on each customer's send day, so the date gives every customer the
//! rest of the month at least, and is the same for everyone of a cycle.
//!
//! # The text message is an LMS, and its link is added at send time
//! See [`sms`]: a Korean invoice summary with a link does not fit the
//! 90-byte SMS, so it is sent as an LMS (2,000 bytes, counted in EUC-KR). The
//! link is a signed link to the invoice-link function (`domain::link`: a
//! token naming the invoice, valid until 90 days after its due date, about
//! 125 bytes in all), made only when the message is sent, days after
//! rendering: the rendered text holds [`LINK_PLACEHOLDER`], every
//! render-time size check counts the link as [`MAX_LINK_BYTES`] (1,600, a
//! budget from when the link was a presigned S3 URL), and [`sms_with_link`]
//! substitutes the real URL and checks the final size.
//!
//! # Output
//! [`Rendered`] holds the version, subject, HTML, text message and a
//! [`content_hash`] over all four: rendering is deterministic, so the same
//! bill renders to the same bytes and hash. [`Gzip`] compresses the HTML
//! for S3 with one reused compressor (see [`gzip`] for why it is reused and
//! which level).
//!
//! `floor` (feature `floor`, enabled only for this crate's tests and benchmark)
//! is a hand-written renderer of version `v1`, the lower bound of what
//! rendering can cost, which the benchmark measures tera against.

pub mod correction;
mod error;
#[cfg(feature = "floor")]
pub mod floor;
pub mod gzip;
mod meta;
pub mod samples;
pub mod sms;
mod templates;
mod view;

pub use correction::{Adjustment, AdjustmentKind, ChangedAmount, CorrectionView};
pub use error::{RenderError, TemplateError};
pub use gzip::{DEFAULT_GZIP_LEVEL, Gzip, GzipError};
pub use meta::{CustomerService, MessageKind, Meta, SmsMeta};
pub use sms::{
    LINK_PLACEHOLDER, LMS_MAX_BYTES, MAX_LINK_BYTES, MAX_SMS_LINE_BREAKS, SMS_MAX_BYTES, SmsError, euc_kr_encodable,
    euc_kr_len, sms_with_link,
};
pub use templates::{
    CORRECTION_EMAIL_FILE, CORRECTION_SMS_FILE, CORRECTION_SUBJECT_FILE, EMAIL_FILE, GLOBAL_VARIABLES, META_FILE,
    Rendered, Renderer, SMS_FILE, SUBJECT_FILE, TemplateSource, Templates, content_hash, embedded_sources,
};
pub use view::{InvoiceView, LineView, ROUNDING_DETAIL, SMS_NAME_MAX_CHARS, due_date};
