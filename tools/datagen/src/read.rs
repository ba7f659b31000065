//! Reading customer files (`.jsonl`) line by line, keeping the good records
//! and naming every bad line.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;

use domain::{Customer, CustomerId};

use crate::error::DatagenError;

/// A customer line that could not be used. Names the file, the 1-based line
/// and the customer id when the line has a readable one; the message never
/// quotes a value from the line (it could be personal data).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct LineError {
    pub file: String,
    pub line: u32,
    pub customer_id: Option<String>,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.file, self.line)?;
        if let Some(c) = &self.customer_id {
            write!(f, " (customer {c})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Reads a customer file: one JSON `Customer` per line, blank lines ignored.
///
/// Returns the customers that parse and one [`LineError`] per line that
/// does not (malformed JSON, a missing or mistyped field, a send day outside
/// 1–31, a bad DND slot, …) or that repeats a customer id seen earlier in
/// the file. Never panics on content; only failing to open or read the file
/// is an `Err`.
///
/// Parsing is not validation: run `Customer::validate` and
/// `Customer::check_contact` on the result for the business rules.
pub fn read_customers(path: impl AsRef<Path>) -> Result<(Vec<Customer>, Vec<LineError>), DatagenError> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| DatagenError::io(path, "open the customer file", e))?;
    let name = path.display().to_string();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut customers = Vec::new();
    let mut errors = Vec::new();
    let mut first_seen: HashMap<String, u32> = HashMap::new();
    let mut buf = Vec::with_capacity(1024);
    let mut line_no = 0u32;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DatagenError::io(path, "read the customer file", e))?;
        if n == 0 {
            break;
        }
        line_no = line_no.saturating_add(1);
        let line = buf.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let error = |customer_id: Option<String>, message: String| LineError {
            file: name.clone(),
            line: line_no,
            customer_id,
            message,
        };
        match serde_json::from_slice::<Customer>(line) {
            Ok(c) => match first_seen.get(c.customer_id.as_str()) {
                Some(&first) => errors.push(error(
                    Some(c.customer_id.to_string()),
                    format!("customer id appears again (first on line {first}); this line is ignored"),
                )),
                None => {
                    first_seen.insert(c.customer_id.to_string(), line_no);
                    customers.push(c);
                }
            },
            Err(e) => errors.push(error(customer_id_of(line), redact(&e.to_string()))),
        }
    }
    Ok((customers, errors))
}

/// The `customer_id` of a line that is JSON but not a valid customer, if it
/// is a well-formed id.
fn customer_id_of(line: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let id = v.get("customer_id")?.as_str()?;
    CustomerId::new(id).ok().map(|id| id.to_string())
}

/// Removes values quoted from the input out of a serde message: the text
/// inside `"…"` and the variant name of `unknown variant `…``. Field names
/// and the domain's own messages (`expected a send day of 1-31`) stay.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(['"', '`']) {
        let quote = rest[i..].chars().next().unwrap_or('"');
        let before = &rest[..i];
        out.push_str(before);
        let after = &rest[i + 1..];
        let Some(j) = after.find(quote) else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = &after[..j];
        let hide = quote == '"' || before.ends_with("unknown variant ");
        out.push(quote);
        out.push_str(if hide { "…" } else { inner });
        out.push(quote);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_field_names_and_hides_values() {
        assert_eq!(
            redact("invalid type: string \"kim@example.com\", expected u32 at line 1 column 9"),
            "invalid type: string \"…\", expected u32 at line 1 column 9"
        );
        assert_eq!(
            redact("unknown variant `kim@example.com`, expected `email` or `sms`"),
            "unknown variant `…`, expected `email` or `sms`"
        );
        assert_eq!(redact("missing field `plan`"), "missing field `plan`");
        assert_eq!(
            redact("send day 0 is out of range 1-31"),
            "send day 0 is out of range 1-31"
        );
        assert_eq!(redact("odd \"quote"), "odd \"quote");
    }
}
