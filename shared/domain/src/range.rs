//! A byte range of a stored object: where one rendered invoice sits in a shard's invoice pack
//! (one S3 object holding many invoices, each its own gzip member; see `docs/invoices.md`).
//!
//! Its text is HTTP's inclusive `first-last` (`1310-2619`), what a ranged `GET` asks for as
//! `Range: bytes=first-last`.

use std::fmt;
use std::str::FromStr;

/// `len` bytes from `start`; never empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByteRange {
    start: u64,
    len: u64,
}

/// Why a range was refused. Never carries the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("a byte range is `first-last` with first <= last, both whole numbers")]
    Malformed,
    #[error("a byte range cannot be empty or end past 2^63 bytes")]
    OutOfBounds,
}

impl ByteRange {
    /// `len` bytes from `start`: `len` at least 1, the end within `i64::MAX`.
    pub fn new(start: u64, len: u64) -> Result<Self, RangeError> {
        let end = start.checked_add(len).ok_or(RangeError::OutOfBounds)?;
        if len == 0 || end > i64::MAX as u64 {
            return Err(RangeError::OutOfBounds);
        }
        Ok(ByteRange { start, len })
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: a range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The last byte, inclusive.
    pub fn last(&self) -> u64 {
        self.start + self.len - 1
    }

    /// The value of an HTTP `Range` header for it: `bytes=first-last`.
    pub fn http_header(&self) -> String {
        format!("bytes={self}")
    }

    /// Its bytes of `whole` (a whole object), if `whole` holds them.
    pub fn slice<'a>(&self, whole: &'a [u8]) -> Option<&'a [u8]> {
        let start = usize::try_from(self.start).ok()?;
        let end = start.checked_add(usize::try_from(self.len).ok()?)?;
        whole.get(start..end)
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.last())
    }
}

impl FromStr for ByteRange {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (first, last) = s.split_once('-').ok_or(RangeError::Malformed)?;
        let digits = |t: &str| !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(first) || !digits(last) {
            return Err(RangeError::Malformed);
        }
        let (first, last): (u64, u64) = (
            first.parse().map_err(|_| RangeError::Malformed)?,
            last.parse().map_err(|_| RangeError::Malformed)?,
        );
        if last < first {
            return Err(RangeError::Malformed);
        }
        ByteRange::new(first, last - first + 1)
    }
}

serde_as_text!(ByteRange, "a byte range `first-last`");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_http_s_inclusive_first_last_and_round_trips() {
        let r = ByteRange::new(1310, 1310).unwrap();
        assert_eq!(r.to_string(), "1310-2619");
        assert_eq!(r.http_header(), "bytes=1310-2619");
        assert_eq!(r.last(), 2619);
        assert_eq!("1310-2619".parse::<ByteRange>().unwrap(), r);
        assert_eq!("0-0".parse::<ByteRange>().unwrap(), ByteRange::new(0, 1).unwrap());
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"1310-2619\"");
        assert_eq!(serde_json::from_str::<ByteRange>(&json).unwrap(), r);
    }

    #[test]
    fn malformed_or_empty_ranges_are_refused_without_the_text() {
        for bad in [
            "",
            "-",
            "5",
            "5-",
            "-5",
            "7-5",
            "a-b",
            "+1-2",
            "1 - 2",
            "1-2-3",
            "99999999999999999999-1",
        ] {
            assert!(bad.parse::<ByteRange>().is_err(), "{bad:?}");
        }
        assert_eq!(ByteRange::new(0, 0), Err(RangeError::OutOfBounds));
        assert_eq!(ByteRange::new(u64::MAX, 1), Err(RangeError::OutOfBounds));
        let e = serde_json::from_str::<ByteRange>("\"secret-text\"")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn a_range_slices_exactly_its_bytes_of_a_whole_object() {
        let whole = b"aaabbbbcc";
        assert_eq!(ByteRange::new(3, 4).unwrap().slice(whole), Some(&b"bbbb"[..]));
        assert_eq!(ByteRange::new(7, 3).unwrap().slice(whole), None);
    }
}
