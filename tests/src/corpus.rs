//! The personal-data corpus: a customer's email, name and phone number in every format a
//! caller might type, the inputs a sample input becomes with one of them in each of its fields,
//! and the search of everything the functions left behind for any of them.
//!
//! A [`Scanner`] looks for each value without regard to case, percent-encoded as a URL path
//! would carry it, and for a phone number for its digits whatever separates them (`+82 10-1234
//! 5678` is found by its digits `1012345678`). A hit is reported with the value masked, so the
//! report itself names no value.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One value placed in the inputs: what it is (`email`, `phone 010 1234 5678`...) and its text.
#[derive(Clone, Debug)]
pub struct Placed {
    pub label: String,
    pub text: String,
}

/// The values of one customer placed in the corpus: the email as stored and in upper case,
/// the name, and the phone number in every format of [`phone_formats`].
pub fn placed_values(name: &str, email: &str, phone: &str) -> Vec<Placed> {
    let mut out = vec![
        Placed {
            label: "email".into(),
            text: email.to_owned(),
        },
        Placed {
            label: "email upper case".into(),
            text: email.to_uppercase(),
        },
        Placed {
            label: "name".into(),
            text: name.to_owned(),
        },
    ];
    for (i, f) in phone_formats(phone).into_iter().enumerate() {
        out.push(Placed {
            label: format!("phone format {i}"),
            text: f,
        });
    }
    out
}

/// A Korean mobile number `010-1234-5678` as people write it: `010-1234-5678`, `01012345678`,
/// `+82-10-1234-5678`, `+821012345678`, `010 1234 5678`, `(010)1234-5678`.
pub fn phone_formats(national: &str) -> Vec<String> {
    let parts: Vec<&str> = national.split('-').collect();
    let [a, b, c] = parts.as_slice() else {
        return vec![national.to_owned()];
    };
    let trunk = a.strip_prefix('0').unwrap_or(a);
    vec![
        format!("{a}-{b}-{c}"),
        format!("{a}{b}{c}"),
        format!("+82-{trunk}-{b}-{c}"),
        format!("+82{trunk}{b}{c}"),
        format!("{a} {b} {c}"),
        format!("({a}){b}-{c}"),
    ]
}

/// `text` percent-encoded as a URL path segment carries it: unreserved characters and the
/// sub-delimiters a segment allows stay, the rest (space, non-ASCII bytes) become `%XX`.
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a search looks for: each value's forms in lower case, and the digits of the phone
/// number without its trunk prefix.
struct Needle {
    label: String,
    forms: Vec<String>,
}

/// One place a value was found.
#[derive(Clone, Debug)]
pub struct Hit {
    pub case: String,
    pub sink: String,
    pub value: String,
    /// Up to 60 characters either side, every value in it masked.
    pub excerpt: String,
}

/// Searches texts for the placed values and keeps count of what it read.
pub struct Scanner {
    needles: Vec<Needle>,
    /// The phone number's digits without the trunk prefix (`1012345678`).
    phone_digits: String,
    pub texts: u64,
    pub bytes: u64,
    pub hits: Vec<Hit>,
    /// Texts read by sink.
    pub by_sink: BTreeMap<String, u64>,
}

impl Scanner {
    /// A scanner for `values`, whose phone number (national format) is `phone`.
    pub fn new(values: &[Placed], phone: &str) -> Scanner {
        let needles = values
            .iter()
            .map(|v| {
                let mut forms = vec![v.text.to_lowercase(), path_segment(&v.text).to_lowercase()];
                forms.dedup();
                Needle {
                    label: v.label.clone(),
                    forms,
                }
            })
            .collect();
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        Scanner {
            needles,
            phone_digits: digits.strip_prefix('0').unwrap_or(&digits).to_owned(),
            texts: 0,
            bytes: 0,
            hits: Vec::new(),
            by_sink: BTreeMap::new(),
        }
    }

    /// Searches `text`, which `case` left in `sink`; each value found is a hit.
    pub fn scan(&mut self, case: &str, sink: &str, text: &str) {
        self.texts += 1;
        self.bytes += text.len() as u64;
        *self.by_sink.entry(sink.to_owned()).or_default() += 1;
        let lower = text.to_lowercase();
        let mut found: Vec<(String, usize, usize)> = Vec::new();
        for n in &self.needles {
            if let Some((at, len)) = n
                .forms
                .iter()
                .find_map(|f| lower.find(f.as_str()).map(|at| (at, f.len())))
                // The email and its upper case are one search: one hit for one place.
                && !found.iter().any(|(_, a, _)| *a == at)
            {
                found.push((n.label.clone(), at, len));
            }
        }
        // Every way of writing the number keeps its last four digits together: only a text
        // with them is searched digit by digit.
        let last4 = &self.phone_digits[self.phone_digits.len().saturating_sub(4)..];
        if found.is_empty()
            && lower.contains(last4)
            && let Some((at, len)) = digits_at(&lower, &self.phone_digits)
        {
            found.push(("phone digits".into(), at, len));
        }
        for (label, at, len) in found {
            let excerpt = self.excerpt(&lower, at, len);
            self.hits.push(Hit {
                case: case.to_owned(),
                sink: sink.to_owned(),
                value: label,
                excerpt,
            });
        }
    }

    /// The text around a hit, every value in it replaced by `<value>`.
    fn excerpt(&self, lower: &str, at: usize, len: usize) -> String {
        let start = floor_char(lower, at.saturating_sub(60));
        let end = floor_char(lower, (at + len + 60).min(lower.len()));
        let mut e = format!("{}<value>{}", &lower[start..at], &lower[at + len..end]);
        for n in &self.needles {
            for f in &n.forms {
                e = e.replace(f.as_str(), "<value>");
            }
        }
        let digits = &self.phone_digits;
        e.replace(digits.as_str(), "<digits>")
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Where `digits` occurs in `text` among digits that only spaces, hyphens, dots, brackets and
/// plus signs separate: its byte offset and length in `text`.
fn digits_at(text: &str, digits: &str) -> Option<(usize, usize)> {
    if digits.is_empty() {
        return None;
    }
    let mut run: Vec<(usize, char)> = Vec::new();
    let check = |run: &[(usize, char)]| -> Option<(usize, usize)> {
        let ds: String = run.iter().map(|(_, c)| *c).collect();
        let k = ds.find(digits)?;
        let first = run[k].0;
        let last = run[k + digits.len() - 1].0;
        Some((first, last + 1 - first))
    };
    for (i, c) in text.char_indices() {
        if c.is_ascii_digit() {
            run.push((i, c));
        } else if !" -.()+".contains(c) {
            if let Some(hit) = check(&run) {
                return Some(hit);
            }
            run.clear();
        }
    }
    check(&run)
}

/// One input made from a sample: which field holds the value and how, and the input.
#[derive(Clone, Debug)]
pub struct Variant {
    pub field: String,
    pub input: Value,
}

/// The inputs `sample` becomes with `value` in it: each leaf replaced by the value (of a list,
/// the first element's leaves: the elements are one field); each string leaf replaced by a
/// list holding it (a wrong type); and in each object an unknown field holding it, and an
/// unknown field named by it. Fields are JSON pointers.
pub fn variants(sample: &Value, value: &str) -> Vec<Variant> {
    let mut leaves = Vec::new();
    let mut objects = Vec::new();
    pointers(sample, String::new(), &mut leaves, &mut objects);
    let text = Value::String(value.to_owned());
    let mut out = Vec::new();
    for p in &leaves {
        let old = sample.pointer(p).cloned().unwrap_or(Value::Null);
        out.push(replaced(sample, p, text.clone(), p.clone()));
        if old.is_string() {
            out.push(replaced(
                sample,
                p,
                Value::Array(vec![text.clone()]),
                format!("{p} (wrong type)"),
            ));
        }
    }
    for p in &objects {
        for (key, field) in [
            ("corpus_note".to_owned(), format!("{p}/corpus_note (unknown field)")),
            (
                value.to_owned(),
                format!("{p}/<value> (unknown field named by the value)"),
            ),
        ] {
            let mut input = sample.clone();
            if let Some(Value::Object(m)) = input.pointer_mut(p) {
                m.insert(key, text.clone());
            }
            out.push(Variant { field, input });
        }
    }
    out
}

/// Texts that are not the input `sample` describes but hold `value`: the value alone, the
/// value as a JSON string, and JSON cut off right after the value.
pub fn malformed(sample: &Value, value: &str) -> Vec<(String, String)> {
    let mut out = vec![
        ("raw text".to_owned(), value.to_owned()),
        ("a JSON string".to_owned(), Value::String(value.to_owned()).to_string()),
    ];
    if let Some(first) = variants(sample, value).into_iter().next() {
        let full = first.input.to_string();
        if let Some(at) = full.find(value) {
            out.push((
                format!("truncated JSON ({})", first.field),
                full[..at + value.len()].to_owned(),
            ));
        }
    }
    out
}

fn replaced(sample: &Value, pointer: &str, with: Value, field: String) -> Variant {
    let mut input = sample.clone();
    if let Some(slot) = input.pointer_mut(pointer) {
        *slot = with;
    }
    Variant { field, input }
}

/// JSON pointers of the leaves (scalars and empty containers) and of the objects in `v`.
fn pointers(v: &Value, at: String, leaves: &mut Vec<String>, objects: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            objects.push(at.clone());
            if m.is_empty() {
                leaves.push(at.clone());
            }
            for (k, child) in m {
                pointers(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    leaves,
                    objects,
                );
            }
        }
        // The elements of a list are one field: its first stands for the others.
        Value::Array(a) if !a.is_empty() => pointers(&a[0], format!("{at}/0"), leaves, objects),
        _ => leaves.push(at),
    }
}

/// An empty JSON object.
pub fn object() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_come_in_every_format() {
        assert_eq!(
            phone_formats("010-1234-5678"),
            [
                "010-1234-5678",
                "01012345678",
                "+82-10-1234-5678",
                "+821012345678",
                "010 1234 5678",
                "(010)1234-5678"
            ]
        );
    }

    #[test]
    fn a_value_is_found_in_any_case_encoding_or_separation_and_masked_in_the_report() {
        let values = placed_values("김민수", "Kim.M@example.com", "010-1234-5678");
        let mut s = Scanner::new(&values, "010-1234-5678");
        for (text, found) in [
            ("error: unknown customer KIM.M@EXAMPLE.COM", true),
            ("no route GET /cycles/%EA%B9%80%EB%AF%BC%EC%88%98", true),
            ("called +82 10 1234-5678 twice", true),
            ("{\"id\":\"010.1234.5678\"}", true),
            ("k***@example.com 010-****-5678 김*수 at 1765760402000", false),
        ] {
            let before = s.hits.len();
            s.scan("case", "sink", text);
            assert_eq!(s.hits.len() > before, found, "{text}");
        }
        assert!(s.hits.iter().all(|h| !h.excerpt.contains("1234")), "{:?}", s.hits);
        assert_eq!((s.texts, s.by_sink["sink"]), (5, 5));
    }

    #[test]
    fn every_leaf_and_object_of_a_sample_gets_the_value() {
        let sample = serde_json::json!({"cycle": "2026-11", "shard": 0, "resume": {"done": ["a"], "cursors": {}}});
        let v = variants(&sample, "x@y.z");
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert!(
            fields.contains(&"/cycle") && fields.contains(&"/cycle (wrong type)"),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"/shard") && fields.contains(&"/resume/done/0"),
            "{fields:?}"
        );
        assert!(fields.contains(&"/resume/cursors"), "{fields:?}");
        assert!(
            fields.contains(&"/resume/cursors/corpus_note (unknown field)"),
            "{fields:?}"
        );
        assert!(v.iter().all(|v| v.input.to_string().contains("x@y.z")));
        let m = malformed(&sample, "x@y.z");
        assert!(m.iter().all(|(_, t)| t.contains("x@y.z")) && m.len() == 3, "{m:?}");
    }
}
