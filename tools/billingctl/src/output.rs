//! How answers are printed: [`Output`] chooses the API's JSON (`--json`) or the human view,
//! and the helpers build that view (aligned tables, labelled fields).

use serde_json::Value;

/// Where an answer goes: the API's JSON, pretty-printed, with `--json`; the human view
/// otherwise.
#[derive(Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    pub(crate) fn print(self, v: &Value, human: String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            println!("{human}");
        }
    }
}

/// A value as a cell: `-` for null, a string as it is, anything else as JSON.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Aligned columns, a header line first.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

/// One `label  value` line per name, the labels aligned; a name is a dotted path into `v`.
pub(crate) fn fields(v: &Value, names: &[(&str, &str)]) -> String {
    let width = names.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    names
        .iter()
        .map(|(label, path)| {
            let value = path.split('.').fold(v, |v, k| &v[k]);
            format!("{label:<width$}  {}", text(value))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One row per item: the values of `keys`, as text.
pub(crate) fn rows(items: &[Value], keys: &[&str]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|item| keys.iter().map(|k| text(&item[*k])).collect())
        .collect()
}
