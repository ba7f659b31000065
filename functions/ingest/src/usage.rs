//! A usage file, checked without I/O: the rules of `billing::usage` against the catalog, and
//! every line's customer against the shard's customers. The lines that pass are the file
//! settlement reads.

use std::collections::{HashMap, HashSet};

use billing::Catalog;
use billing::usage::{HEADER, UsageErrorKind, parse_usage};
use domain::{Customer, Cycle};

use crate::planner::{FileProblem, Rejections};
use crate::records::Problem;

/// What a usage file holds after the check.
#[derive(Debug, Default)]
pub struct CheckedUsage {
    /// Data lines (not the header, not blank).
    pub records: u64,
    pub rejections: Rejections,
    /// The header and every good line, `\n`-terminated: what is stored.
    pub output: Vec<u8>,
}

/// The shard's customers as the check needs them: id → whether the customer has a day of
/// service in `cycle`.
pub fn in_service(customers: &[Customer], cycle: Cycle) -> HashMap<String, bool> {
    customers
        .iter()
        .map(|c| (c.customer_id.as_str().to_owned(), c.is_billable(cycle)))
        .collect()
}

/// Checks `bytes` (a whole file, byte-order mark removed, known to be UTF-8) for shard
/// `shard` of `cycle`: each line against `catalog` and `in_shard` (the shard's stored
/// customers, [`in_service`]).
pub fn check_usage(
    bytes: &[u8],
    catalog: &Catalog,
    cycle: Cycle,
    shard: u32,
    in_shard: &HashMap<String, bool>,
) -> Result<CheckedUsage, FileProblem> {
    let parsed = parse_usage(bytes, "usage", catalog);
    if parsed
        .errors
        .iter()
        .any(|e| matches!(e.kind, UsageErrorKind::MissingHeader))
    {
        return Err(FileProblem(format!("the first line must be the header {HEADER}")));
    }
    let mut out = CheckedUsage {
        records: u64::from(parsed.lines),
        ..Default::default()
    };
    for e in &parsed.errors {
        out.rejections
            .add(problem(&e.kind, catalog, cycle, shard).at(u64::from(e.line)));
    }
    for r in &parsed.records {
        let problem = match in_shard.get(r.customer_id) {
            None => Some(problem(&UsageErrorKind::UnknownCustomer, catalog, cycle, shard)),
            Some(false) => Some(problem(&UsageErrorKind::NotInService, catalog, cycle, shard)),
            Some(true) => None,
        };
        if let Some(p) = problem {
            out.rejections.add(p.at(u64::from(r.line)));
        }
    }
    out.rejections.sort();
    let rejected: HashSet<u64> = out.rejections.lines.iter().copied().collect();
    out.output.reserve(bytes.len());
    out.output.extend_from_slice(HEADER.as_bytes());
    out.output.push(b'\n');
    let mut header_seen = false;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.trim_ascii().is_empty() {
            continue;
        }
        if !header_seen {
            header_seen = true;
            continue;
        }
        if !rejected.contains(&(i as u64 + 1)) {
            out.output.extend_from_slice(line);
            out.output.push(b'\n');
        }
    }
    Ok(out)
}

/// A usage line's problem: the column and the rule, never the value.
fn problem(kind: &UsageErrorKind, catalog: &Catalog, cycle: Cycle, shard: u32) -> Problem {
    match kind {
        UsageErrorKind::MissingHeader => Problem::new("line", format!("the first line must be the header {HEADER}")),
        UsageErrorKind::ColumnCount(n) => Problem::new("line", format!("expected 4 columns, found {n}")),
        UsageErrorKind::BadCustomerId => Problem::new("customer_id", "is empty or not letters, digits, '-' or '_'"),
        UsageErrorKind::UnknownProduct(_) => Problem::new(
            "product",
            format!("is not a product of catalog version {}", catalog.version()),
        ),
        UsageErrorKind::NotANumber { column } => Problem::new(*column, "is not a whole number"),
        UsageErrorKind::Negative { column } => Problem::new(*column, "is negative"),
        UsageErrorKind::TooLarge { column } => Problem::new(*column, "is larger than the accepted maximum"),
        UsageErrorKind::AmountOnMetered => Problem::new("amount", "metered products take a quantity, not an amount"),
        UsageErrorKind::MissingAmount => {
            Problem::new("amount", "pass-through products need an amount of at least 1 won")
        }
        UsageErrorKind::ZeroQuantity => Problem::new("quantity", "pass-through products need a quantity of at least 1"),
        UsageErrorKind::NotUtf8 => Problem::new("product", "is not valid UTF-8"),
        UsageErrorKind::UnknownCustomer => Problem::new("customer_id", format!("no such customer in shard {shard}")),
        UsageErrorKind::NotInService => Problem::new(
            "customer_id",
            format!("the customer has no day of service in cycle {cycle}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::tests::line;
    use domain::QuietWindow;
    use domain::pii::Keyring;

    fn customer(id: &str) -> Customer {
        let v = line(id, 4);
        crate::records::check_customer_line(v.to_string().as_bytes(), QuietWindow::default_korea())
            .unwrap()
            .seal(&Keyring::dev())
    }

    #[test]
    fn good_lines_are_kept_and_each_bad_one_is_named() {
        let catalog = Catalog::default_catalog().unwrap();
        let cycle: Cycle = "2026-11".parse().unwrap();
        let text = format!(
            "{HEADER}\r\nC1,DATA,100,\nC404,DATA,1,\n\nC1,NOPE,1,\nC1,DATA,-1,\nC1,VOICE,60,\n010-1234-5678,DATA,1,\n"
        );
        let out = check_usage(
            text.as_bytes(),
            &catalog,
            cycle,
            4,
            &in_service(&[customer("C1")], cycle),
        )
        .unwrap();
        assert_eq!(out.records, 6);
        let got: Vec<(u64, &str)> = out
            .rejections
            .listed
            .iter()
            .map(|r| (r.line, r.field.as_str()))
            .collect();
        assert_eq!(
            got,
            [(3, "customer_id"), (5, "product"), (6, "quantity"), (8, "customer_id")]
        );
        assert_eq!(out.rejections.listed[0].reason, "no such customer in shard 4");
        assert!(out.rejections.listed.iter().all(|r| !r.reason.contains("1234")));
        assert_eq!(
            String::from_utf8(out.output).unwrap(),
            format!("{HEADER}\nC1,DATA,100,\nC1,VOICE,60,\n")
        );
        assert!(check_usage(b"C1,DATA,1,\n", &catalog, cycle, 4, &HashMap::new()).is_err());
    }
}
