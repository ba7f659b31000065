//! The example bills in docs/billing-rules.md, computed by the engine: each `text` block after
//! an `<!-- example: NAME -->` marker must be exactly what the engine bills for that example,
//! so the document cannot drift from the rules. `BLESS=1` rewrites the blocks from the engine
//! (then read the difference before committing it).

use billing::rate;
use billing::usage::parse_usage;
use billing::{Catalog, catalog::DEFAULT_CATALOG_JSON};
use domain::{Bill, CustomerRecord, Cycle};
use serde_json::{Value, json};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/billing-rules.md");

/// A customer in November 2026 with the attributes of `extra` over a plain record.
fn customer(plan: &str, extra: Value) -> CustomerRecord<()> {
    let mut v = json!({
        "customer_id": "C0000001", "shard": 0, "plan": plan, "addons": [],
        "birthday": "1990-01-15", "joined_on": "2025-03-01",
        "send_day": 15, "preferred_channel": "email", "contact": null,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn examples() -> Vec<(&'static str, CustomerRecord<()>, &'static str)> {
    vec![
        (
            "soldier",
            customer(
                "5G_STANDARD",
                json!({
                    "soldier": {"start": "2026-02-10", "end": "2027-08-09"},
                    "contract": {"start": "2024-11-11", "end": "2026-11-10"},
                }),
            ),
            "",
        ),
        (
            "welfare",
            customer(
                "5G_PREMIUM",
                json!({
                    "welfare": {"grade": "basic_livelihood", "start": "2025-04-01"},
                    "contract": {"start": "2026-01-01", "end": "2027-12-31"},
                    "family": {"group_id": "F0000001", "members": 3},
                }),
            ),
            "",
        ),
        (
            "premium_contract",
            customer(
                "5G_SIGNATURE",
                json!({
                    "premium_contract": {"start": "2026-11-11", "end": "2028-11-10"},
                    "addons": ["OTT_BASIC", "OTT_PREMIUM"],
                }),
            ),
            "",
        ),
        (
            "ott_tiers",
            customer("5G_PREMIUM", json!({"addons": ["OTT_BASIC", "MUSIC"]})),
            "",
        ),
        (
            "wired_bundle",
            customer(
                "5G_LITE",
                json!({"wired": [{"product": "INTERNET_1G"}, {"product": "IPTV_BASIC"}]}),
            ),
            "C0000001,DATA,9000,\n",
        ),
        (
            "birthday_joined_mid_month",
            customer(
                "5G_STANDARD",
                json!({"joined_on": "2026-11-21", "birthday": "1990-11-03", "contract": {"start": "2026-11-21", "end": "2028-11-20"}}),
            ),
            "",
        ),
    ]
}

fn won(x: i64) -> String {
    let digits = x.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if x < 0 { format!("-{out}") } else { out }
}

/// A bill as the document shows it: one line per bill line (code, amount, label, detail),
/// then the total.
fn render(b: &Bill) -> String {
    let mut out = String::new();
    for l in &b.lines {
        let detail = if l.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", l.detail)
        };
        out.push_str(&format!(
            "{:<22} {:>9}  {}{detail}\n",
            l.code,
            won(l.amount.won()),
            l.label
        ));
    }
    out.push_str(&format!("{:<22} {:>9}\n", "TOTAL", won(b.total.won())));
    out
}

fn bill(example: &(&str, CustomerRecord<()>, &str)) -> Bill {
    let cat = Catalog::from_json(DEFAULT_CATALOG_JSON, "catalog").unwrap();
    let file = format!("customer_id,product,quantity,amount\n{}", example.2);
    let usage = parse_usage(file.as_bytes(), "example.csv", &cat);
    assert!(usage.errors.is_empty(), "{:?}", usage.errors);
    let nov: Cycle = "2026-11".parse().unwrap();
    rate(&cat, nov, &example.1, &usage.records).unwrap().unwrap()
}

/// The byte range of the `text` block after `<!-- example: NAME -->`.
fn block(doc: &str, name: &str) -> Option<(usize, usize)> {
    let marker = format!("<!-- example: {name} -->");
    let at = doc.find(&marker)?;
    let open = at + doc[at..].find("```text\n")? + "```text\n".len();
    let close = open + doc[open..].find("```")?;
    Some((open, close))
}

#[test]
fn the_documented_example_bills_are_what_the_engine_bills() {
    let mut doc = std::fs::read_to_string(DOC).unwrap();
    let bless = std::env::var_os("BLESS").is_some();
    let mut wrong = Vec::new();
    for ex in examples() {
        let want = render(&bill(&ex));
        let Some((open, close)) = block(&doc, ex.0) else {
            wrong.push(format!("{}: no example block in the document", ex.0));
            continue;
        };
        if doc[open..close] != want {
            if bless {
                doc.replace_range(open..close, &want);
            } else {
                wrong.push(format!(
                    "{}: the document shows\n{}the engine bills\n{want}",
                    ex.0,
                    &doc[open..close]
                ));
            }
        }
    }
    if bless {
        std::fs::write(DOC, doc).unwrap();
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
