//! The run's files other than the summary: the diff as CSV rows, and the HTML report (one
//! self-contained page: inline SVG and CSS, no script, no external asset, customer ids only).

use std::fmt::Write;

use crate::diff::CustomerDiff;
use crate::summary::{Summary, won};

/// The CSV header of `diff.csv`.
pub const CSV_HEADER: &str = "customer_id,shard,plan,old_total,new_total,delta,changed_lines\n";

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One changed customer as a CSV row: an absent total is an empty field; the changed lines
/// are `CODE old>new` joined by `; `.
pub fn csv_row(d: &CustomerDiff) -> String {
    let opt = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    let lines = d
        .lines
        .iter()
        .map(|l| format!("{} {}>{}", l.code, l.old, l.new))
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "{},{},{},{},{},{},{}\n",
        field(&d.customer_id),
        d.shard,
        field(&d.plan),
        opt(d.old_total),
        opt(d.new_total),
        d.delta,
        field(&lines)
    )
}

/// Text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The histogram of deltas as an inline SVG bar chart (one bar per bucket, counts above).
pub fn histogram_svg(s: &Summary) -> String {
    let buckets = &s.histogram.0;
    let (bar_w, gap, chart_h, top, bottom) = (56, 8, 180, 24, 64);
    let width = buckets.len() * (bar_w + gap) + gap;
    let height = top + chart_h + bottom;
    let max = buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Histogram of deltas" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"##
    );
    let _ = write!(
        svg,
        r##"<line x1="0" y1="{y}" x2="{width}" y2="{y}" stroke="#888"/>"##,
        y = top + chart_h
    );
    for (i, b) in buckets.iter().enumerate() {
        let x = gap + i * (bar_w + gap);
        let h = (b.count as f64 / max as f64 * chart_h as f64).round() as usize;
        let h = if b.count > 0 { h.max(1) } else { 0 };
        let y = top + chart_h - h;
        let negative = b.max.is_some_and(|m| m < 0);
        let colour = if negative { "#2e7d32" } else { "#c62828" };
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{y}" width="{bar_w}" height="{h}" fill="{colour}"><title>{label}: {count}</title></rect>"##,
            label = escape(&b.label),
            count = b.count
        );
        let _ = write!(
            svg,
            r##"<text x="{cx}" y="{ty}" text-anchor="middle">{count}</text>"##,
            cx = x + bar_w / 2,
            ty = y.saturating_sub(4).max(10),
            count = won(b.count as i64, false)
        );
        let _ = write!(
            svg,
            r##"<text x="{cx}" y="{ly}" text-anchor="end" transform="rotate(-35 {cx} {ly})">{label}</text>"##,
            cx = x + bar_w / 2,
            ly = top + chart_h + 14,
            label = escape(&b.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The report page.
pub fn html(s: &Summary) -> String {
    let mut h = String::new();
    let title = format!("Re-pricing of {} with {}", s.cycle, s.catalog);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}\
td,th{{border:1px solid #ccc;padding:4px 8px}}td.n{{text-align:right;font-variant-numeric:tabular-nums}}\
th{{background:#f3f3f3}}.muted{{color:#666}}</style></head><body>\n",
        escape(&title)
    );
    let _ = writeln!(h, "<h1>{}</h1>", escape(&title));
    let _ = writeln!(
        h,
        "<p class=\"muted\">Settled with catalog {}; run {}. A shadow re-pricing: live bills, deliveries and invoices are unchanged.</p>",
        escape(&s.live_catalog),
        escape(&s.run)
    );
    let inputs = format!(
        "{} shards from their rating snapshot, {} from the customers table as it is now",
        s.inputs.snapshot, s.inputs.live_customers
    );
    h.push_str("<table>\n");
    for (k, v) in [
        ("Customers rated", won(s.customers as i64, false)),
        ("Customers changed", won(s.changed as i64, false)),
        (
            "Billed live only / now only",
            format!("{} / {}", s.only_old, s.only_new),
        ),
        (
            "Same total, some line moved",
            won(s.lines_changed_same_total as i64, false),
        ),
        (
            "Bills live / now",
            format!(
                "{} / {}",
                won(s.bills_old as i64, false),
                won(s.bills_new as i64, false)
            ),
        ),
        ("Σ old (won)", won(s.sum_old, false)),
        ("Σ new (won)", won(s.sum_new, false)),
        ("Σ delta (won)", won(s.sum_delta, true)),
        ("Inputs", inputs),
    ] {
        let _ = writeln!(h, "<tr><th>{}</th><td class=\"n\">{}</td></tr>", escape(k), escape(&v));
    }
    h.push_str("</table>\n<h2>Deltas of changed customers (won)</h2>\n");
    h.push_str(&histogram_svg(s));
    let _ = write!(h, "\n<h2>Top {} by |delta|</h2>\n", s.top.len());
    h.push_str("<table><tr><th>#</th><th>Customer</th><th>Shard</th><th>Plan</th><th>Old total</th><th>New total</th><th>Delta</th></tr>\n");
    let opt = |n: Option<i64>| n.map_or_else(|| "—".to_owned(), |n| won(n, false));
    for (i, t) in s.top.iter().enumerate() {
        let _ = writeln!(
            h,
            "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            i + 1,
            escape(&t.customer_id),
            t.shard,
            escape(&t.plan),
            opt(t.old_total),
            opt(t.new_total),
            won(t.delta, true)
        );
    }
    h.push_str("</table>\n<h2>By plan</h2>\n");
    h.push_str("<table><tr><th>Plan</th><th>Customers</th><th>Changed</th><th>Σ delta (won)</th></tr>\n");
    for (plan, f) in &s.by_plan {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(plan),
            won(f.customers as i64, false),
            won(f.changed as i64, false),
            won(f.sum_delta, true)
        );
    }
    h.push_str("</table>\n<p class=\"muted\">Every changed customer, with the lines that moved: diff.jsonl and diff.csv beside this page.</p>\n</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::LineChange;

    fn diff() -> CustomerDiff {
        CustomerDiff {
            customer_id: "C0000001".into(),
            shard: 2,
            plan: "5G_STANDARD".into(),
            old_total: Some(75_900),
            new_total: None,
            delta: -75_900,
            lines: vec![
                LineChange {
                    code: "5G_STANDARD".into(),
                    old: 69_000,
                    new: 0,
                },
                LineChange {
                    code: "VAT".into(),
                    old: 6_900,
                    new: 0,
                },
            ],
        }
    }

    #[test]
    fn a_csv_row_has_every_column_and_quotes_when_needed() {
        assert_eq!(
            csv_row(&diff()),
            "C0000001,2,5G_STANDARD,75900,,-75900,5G_STANDARD 69000>0; VAT 6900>0\n"
        );
        assert_eq!(CSV_HEADER.split(',').count(), 7);
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"x\""), "\"say \"\"x\"\"\"");
    }

    #[test]
    fn the_page_is_self_contained() {
        let mut s = Summary::empty("2026-11", "2026-v2", "2026-v1", "run<1>");
        s.top.push(crate::summary::TopEntry::from(&diff()));
        s.histogram.add(-75_900);
        s.changed = 1;
        let page = html(&s);
        assert!(page.contains("<svg") && page.contains("C0000001"));
        assert!(page.contains("run&lt;1&gt;") && !page.contains("run<1>"));
        for external in ["<script", "src=", "href=", "url(", "@import"] {
            assert!(!page.contains(external), "{external}");
        }
    }
}
