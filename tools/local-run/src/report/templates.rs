//! The report's templates, embedded at compile time (the binary needs no files to write a
//! report) and parsed once: the page (`templates/month.html`) and the charts
//! (`templates/chart.svg`). Every value is escaped in both.

use std::sync::OnceLock;

use anyhow::Context as _;
use serde::Serialize;
use tera::{Context, Tera};

const TEMPLATES: [(&str, &str); 2] = [
    ("month.html", include_str!("../../templates/month.html")),
    ("chart.svg", include_str!("../../templates/chart.svg")),
];

/// The parsed templates.
fn tera() -> anyhow::Result<&'static Tera> {
    static TERA: OnceLock<Tera> = OnceLock::new();
    if let Some(tera) = TERA.get() {
        return Ok(tera);
    }
    let mut tera = Tera::new();
    tera.autoescape_on([".html", ".svg"]);
    tera.add_raw_templates(TEMPLATES)
        .context("parsing the report's templates")?;
    Ok(TERA.get_or_init(|| tera))
}

/// Renders the template `name` (`month.html` or `chart.svg`) with `view` as its context.
pub(super) fn render(name: &str, view: &impl Serialize) -> anyhow::Result<String> {
    let context = Context::from_serialize(view).with_context(|| format!("the values for {name}"))?;
    tera()?
        .render(name, &context)
        .with_context(|| format!("rendering {name}"))
}
