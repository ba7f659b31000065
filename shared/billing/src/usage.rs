//! Usage files: what the upstream mediation system drops in S3 for each
//! shard, `usage/{cycle}/shard-{nnnnn}.csv`.
//!
//! Format (UTF-8, `\n` or `\r\n` line ends):
//!
//! ```text
//! customer_id,product,quantity,amount
//! C0000001,DATA,51200,
//! C0000001,VOICE,3600,
//! C0000001,MICROPAY,1,15000
//! ```
//!
//! * `product` is a usage product code of the pinned catalog version.
//! * Metered products (data, voice, SMS, roaming) give a `quantity` ≥ 0 in
//!   the product's unit and leave `amount` empty (or `0`).
//! * Pass-through products (micropayments, device instalments) give a
//!   `quantity` ≥ 1 (number of charges) and an `amount` ≥ 1 in won.
//! * The header line is required; blank lines are ignored.
//!
//! Every bad line becomes a [`UsageError`] naming the file, the line number
//! and the rule; the parser never panics and never drops a line silently.

use std::fmt;

use domain::Krw;

use crate::catalog::{Catalog, Pricing};

pub const HEADER: &str = "customer_id,product,quantity,amount";
/// Largest accepted quantity on one line (keeps sums far from overflow).
pub const MAX_QUANTITY: i64 = 1_000_000_000_000;
/// Largest accepted amount on one line, in won.
pub const MAX_AMOUNT: i64 = 10_000_000_000;

/// One parsed usage line. `customer_id` borrows from the file's bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UsageRecord<'a> {
    pub customer_id: &'a str,
    /// Index of the product in the catalog ([`Catalog::product`]).
    pub product: u16,
    pub quantity: i64,
    pub amount: Krw,
    /// 1-based line number in the file.
    pub line: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageErrorKind {
    MissingHeader,
    ColumnCount(usize),
    BadCustomerId,
    UnknownProduct(String),
    NotANumber { column: &'static str },
    Negative { column: &'static str },
    TooLarge { column: &'static str },
    AmountOnMetered,
    MissingAmount,
    ZeroQuantity,
    NotUtf8,
    UnknownCustomer,
    NotInService,
}

/// A rejected usage line. Carries the customer id when it could be read;
/// never the raw line (whose contents are not ours to log).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct UsageError {
    pub file: String,
    pub line: u32,
    pub customer_id: Option<String>,
    pub kind: UsageErrorKind,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.file, self.line)?;
        if let Some(c) = &self.customer_id {
            write!(f, " (customer {c})")?;
        }
        f.write_str(": ")?;
        match &self.kind {
            UsageErrorKind::MissingHeader => {
                write!(f, "the first line must be the header {HEADER:?}; the file was not read")
            }
            UsageErrorKind::ColumnCount(n) => write!(f, "expected 4 columns, found {n}"),
            UsageErrorKind::BadCustomerId => f.write_str("customer id is empty or not letters, digits, '-' or '_'"),
            UsageErrorKind::UnknownProduct(p) => write!(f, "unknown product code {p:?}"),
            UsageErrorKind::NotANumber { column } => write!(f, "{column} is not a whole number"),
            UsageErrorKind::Negative { column } => write!(f, "{column} is negative"),
            UsageErrorKind::TooLarge { column } => write!(f, "{column} is larger than the accepted maximum"),
            UsageErrorKind::AmountOnMetered => f.write_str("metered products take a quantity, not an amount"),
            UsageErrorKind::MissingAmount => f.write_str("pass-through products need an amount of at least 1 won"),
            UsageErrorKind::ZeroQuantity => f.write_str("pass-through products need a quantity of at least 1"),
            UsageErrorKind::NotUtf8 => f.write_str("line is not valid UTF-8"),
            UsageErrorKind::UnknownCustomer => f.write_str("usage for a customer who is not in this shard"),
            UsageErrorKind::NotInService => f.write_str("usage for a customer with no day of service in the cycle"),
        }
    }
}

/// The result of parsing one file: the good records and every rejected line.
#[derive(Debug, Default)]
pub struct UsageParse<'a> {
    pub records: Vec<UsageRecord<'a>>,
    pub errors: Vec<UsageError>,
    /// Non-blank data lines read (records + rejected lines).
    pub lines: u32,
}

/// Parses a usage file against the catalog. `file` is the name used in
/// error messages (the S3 key or path).
pub fn parse_usage<'a>(bytes: &'a [u8], file: &str, catalog: &Catalog) -> UsageParse<'a> {
    let mut out = UsageParse {
        records: Vec::with_capacity(bytes.len() / 24),
        ..Default::default()
    };
    let mut lines = bytes.split(|&b| b == b'\n').enumerate();
    let err = |line: usize, customer_id: Option<&str>, kind| UsageError {
        file: file.to_owned(),
        line: u32::try_from(line + 1).unwrap_or(u32::MAX),
        customer_id: customer_id.map(str::to_owned),
        kind,
    };
    // Header.
    let header = loop {
        match lines.next() {
            Some((_, l)) if trim_cr(l).is_empty() => continue,
            other => break other,
        }
    };
    match header {
        Some((_, l)) if trim_cr(l) == HEADER.as_bytes() => {}
        Some((n, _)) => {
            // Nothing after a wrong first line is read: the file counts as one
            // bad line, so that records + errors = lines still holds.
            out.errors.push(err(n, None, UsageErrorKind::MissingHeader));
            out.lines = 1;
            return out;
        }
        None => return out, // an empty file: no usage
    }
    for (n, raw) in lines {
        let line = trim_cr(raw);
        if line.is_empty() {
            continue;
        }
        out.lines += 1;
        match parse_line(line, catalog) {
            Ok((customer_id, product, quantity, amount)) => out.records.push(UsageRecord {
                customer_id,
                product,
                quantity,
                amount,
                line: u32::try_from(n + 1).unwrap_or(u32::MAX),
            }),
            Err((customer, kind)) => out.errors.push(err(n, customer, kind)),
        }
    }
    out
}

fn trim_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

type LineResult<'a> = Result<(&'a str, u16, i64, Krw), (Option<&'a str>, UsageErrorKind)>;

fn parse_line<'a>(line: &'a [u8], catalog: &Catalog) -> LineResult<'a> {
    let mut cols: [&[u8]; 4] = [&[]; 4];
    let mut n = 0usize;
    for c in line.split(|&b| b == b',') {
        if n < 4 {
            cols[n] = c;
        }
        n += 1;
    }
    let id_ok = !cols[0].is_empty()
        && cols[0].len() <= 64
        && cols[0]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    // An id that passed the check is ASCII, hence UTF-8.
    let customer = if id_ok { std::str::from_utf8(cols[0]).ok() } else { None };
    if n != 4 {
        return Err((customer, UsageErrorKind::ColumnCount(n)));
    }
    let Some(customer) = customer else {
        return Err((None, UsageErrorKind::BadCustomerId));
    };
    let fail = |kind| Err((Some(customer), kind));
    let Ok(code) = std::str::from_utf8(cols[1]) else {
        return fail(UsageErrorKind::NotUtf8);
    };
    let Some(product) = catalog.product_index(code) else {
        return fail(UsageErrorKind::UnknownProduct(code.chars().take(32).collect()));
    };
    let quantity = match parse_int(cols[2], "quantity", MAX_QUANTITY) {
        Ok(Some(q)) => q,
        Ok(None) => return fail(UsageErrorKind::NotANumber { column: "quantity" }),
        Err(k) => return fail(k),
    };
    let amount = match parse_int(cols[3], "amount", MAX_AMOUNT) {
        Ok(a) => a,
        Err(k) => return fail(k),
    };
    let Some(p) = catalog.product(product) else {
        return fail(UsageErrorKind::UnknownProduct(code.to_owned()));
    };
    match p.pricing {
        Pricing::Metered { .. } => {
            if amount.unwrap_or(0) != 0 {
                return fail(UsageErrorKind::AmountOnMetered);
            }
            Ok((customer, product, quantity, Krw::ZERO))
        }
        Pricing::PassThrough => match amount {
            None | Some(0) => fail(UsageErrorKind::MissingAmount),
            Some(_) if quantity == 0 => fail(UsageErrorKind::ZeroQuantity),
            Some(a) => Ok((customer, product, quantity, Krw(a))),
        },
    }
}

/// `Ok(None)` for an empty field.
fn parse_int(field: &[u8], column: &'static str, max: i64) -> Result<Option<i64>, UsageErrorKind> {
    let f = field.trim_ascii();
    if f.is_empty() {
        return Ok(None);
    }
    let (neg, digits) = match f.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, f),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(UsageErrorKind::NotANumber { column });
    }
    if neg {
        return Err(UsageErrorKind::Negative { column });
    }
    if digits.len() > 18 {
        return Err(UsageErrorKind::TooLarge { column });
    }
    let v = digits.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    if v > max {
        return Err(UsageErrorKind::TooLarge { column });
    }
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalog {
        Catalog::default_catalog().unwrap()
    }

    #[test]
    fn parses_good_lines() {
        let c = cat();
        let f = b"customer_id,product,quantity,amount\r\nC1,DATA,51200,\r\n\nC1,MICROPAY,2,15000\nC2,VOICE,60,0\n";
        let p = parse_usage(f, "u.csv", &c);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.lines, 3);
        assert_eq!(p.records.len(), 3);
        assert_eq!(p.records[0].customer_id, "C1");
        assert_eq!(p.records[0].quantity, 51200);
        assert_eq!(p.records[1].amount, Krw(15000));
        assert_eq!(p.records[1].line, 4);
        assert_eq!(p.records[2].line, 5);
    }

    #[test]
    fn empty_file_is_no_usage() {
        let p = parse_usage(b"", "u.csv", &cat());
        assert!(p.records.is_empty() && p.errors.is_empty());
        let p = parse_usage(b"customer_id,product,quantity,amount\n", "u.csv", &cat());
        assert!(p.records.is_empty() && p.errors.is_empty());
    }

    #[test]
    fn every_bad_line_is_named_and_counted() {
        let f = "customer_id,product,quantity,amount\n\
                 C1,DATA,10\n\
                 C1,DATA,10,,extra\n\
                 C1,FOO,1,\n\
                 C1,DATA,-5,\n\
                 C1,DATA,ten,\n\
                 C1,MICROPAY,1,12.5\n\
                 C1,MICROPAY,1,\n\
                 C1,DATA,5,100\n\
                 C1,MICROPAY,0,100\n\
                 ,DATA,1,\n\
                 C1,DATA,9999999999999999999,\n\
                 C2,DATA,7,\n";
        let p = parse_usage(f.as_bytes(), "usage/2026-11/shard-00003.csv", &cat());
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.errors.len(), 11);
        assert_eq!(p.lines, 12);
        let msgs: Vec<String> = p.errors.iter().map(|e| e.to_string()).collect();
        let expect = [
            "line 2 (customer C1): expected 4 columns, found 3",
            "line 3 (customer C1): expected 4 columns, found 5",
            "line 4 (customer C1): unknown product code \"FOO\"",
            "line 5 (customer C1): quantity is negative",
            "line 6 (customer C1): quantity is not a whole number",
            "line 7 (customer C1): amount is not a whole number",
            "line 8 (customer C1): pass-through products need an amount",
            "line 9 (customer C1): metered products take a quantity, not an amount",
            "line 10 (customer C1): pass-through products need a quantity of at least 1",
            "line 11: customer id is empty",
            "line 12 (customer C1): quantity is larger",
        ];
        for (m, want) in msgs.iter().zip(expect) {
            assert!(m.starts_with("usage/2026-11/shard-00003.csv "), "{m}");
            assert!(m.contains(want), "{m:?} should contain {want:?}");
        }
    }

    #[test]
    fn missing_header_is_one_error_for_the_file() {
        let p = parse_usage(b"C1,DATA,1,\n", "u.csv", &cat());
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].kind, UsageErrorKind::MissingHeader);
        assert_eq!(p.lines as usize, p.records.len() + p.errors.len());
        assert!(p.errors[0].to_string().contains("u.csv line 1"));
    }

    #[test]
    fn garbage_never_panics() {
        let c = cat();
        let mut junk = b"customer_id,product,quantity,amount\n".to_vec();
        junk.extend((0u8..=255).cycle().take(5000));
        junk.extend_from_slice(b"\n\xff\xfe,DATA,1,\nC1,\xff,1,\n");
        let p = parse_usage(&junk, "u.csv", &c);
        assert_eq!(p.records.len() + p.errors.len(), p.lines as usize);
    }
}
