//! Bounded texts: anything stored in a record or written to a log that came
//! from outside (an input line, an error from a library or a service) gets a
//! size limit, so that no record can outgrow DynamoDB's 400 KB item and no
//! log line carries a quarter of a megabyte.
//!
//! [`bounded`] truncates (for reasons and errors, where the beginning says
//! what went wrong); [`check_len`] refuses (for identifiers, which must be
//! exact or nothing).

use std::borrow::Cow;

/// What a truncated text ends with (3 bytes in UTF-8).
pub const ELLIPSIS: &str = "…";

/// Bytes an error message or failure reason may take in a record, a log line
/// or a function's error answer.
pub const MAX_REASON_BYTES: usize = 1_024;

/// Bytes an identifier from outside may take (a run id: an execution ARN is
/// at most about 230).
pub const MAX_ID_BYTES: usize = 256;

/// `s` if it fits in `max_bytes`, else its longest prefix that ends on a
/// character boundary and leaves room for [`ELLIPSIS`], followed by it. The
/// result never exceeds `max_bytes` (for `max_bytes` below the marker's
/// size, the marker is left out and the text is cut on a char boundary).
pub fn bounded(s: &str, max_bytes: usize) -> Cow<'_, str> {
    if s.len() <= max_bytes {
        return Cow::Borrowed(s);
    }
    let (room, marker) = match max_bytes.checked_sub(ELLIPSIS.len()) {
        Some(room) => (room, ELLIPSIS),
        None => (max_bytes, ""),
    };
    let mut end = room;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + marker.len());
    out.push_str(&s[..end]);
    out.push_str(marker);
    Cow::Owned(out)
}

/// [`bounded`] with [`MAX_REASON_BYTES`], as an owned string.
pub fn reason(s: &str) -> String {
    bounded(s, MAX_REASON_BYTES).into_owned()
}

/// A field longer than its limit: refused, naming the field and the limit,
/// never echoing the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {len} bytes long; at most {max} are accepted")]
pub struct TooLong {
    pub field: &'static str,
    pub len: usize,
    pub max: usize,
}

/// `Ok(s)` if `s` is at most `max_bytes` long, else [`TooLong`] naming `field`.
pub fn check_len<'a>(field: &'static str, s: &'a str, max_bytes: usize) -> Result<&'a str, TooLong> {
    if s.len() <= max_bytes {
        Ok(s)
    } else {
        Err(TooLong {
            field,
            len: s.len(),
            max: max_bytes,
        })
    }
}

/// An identifier from outside (a run id) that is not id-shaped: refused, naming the field and
/// the shape, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be 1-{max} characters: a letter, then letters, digits or . _ : / # + -")]
pub struct NotAnId {
    pub field: &'static str,
    pub max: usize,
}

/// `Ok(s)` if `s` is 1 to `max_bytes` bytes, begins with an ASCII letter and holds only ASCII
/// letters, digits and `. _ : / # + -` (an execution ARN, `dispatch-2026-12-15T00:00:00Z`);
/// else [`NotAnId`]. An email (`@`), a phone number (a digit or `+` first, spaces), a name
/// with a space or in Hangul is not an id, and is never copied into a record or a message.
pub fn check_id<'a>(field: &'static str, s: &'a str, max_bytes: usize) -> Result<&'a str, NotAnId> {
    let mut bytes = s.bytes();
    let ok = s.len() <= max_bytes
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"._:/#+-".contains(&b));
    if ok {
        Ok(s)
    } else {
        Err(NotAnId { field, max: max_bytes })
    }
}

/// Whether free text holds something shaped like contact data: an email address (a word with
/// `@` and a dot after it) or a phone number (a run of digits and `+ - ( ) .` or single spaces
/// that begins with `0` or `+` and holds 9 to 15 digits, as Korean numbers do in every usual
/// format). Operators' reasons, command ids and principals are refused when they do (naming the
/// field), since they are stored, logged and shown to every viewer.
pub fn holds_contact(s: &str) -> bool {
    let email = s
        .split(|c: char| c.is_whitespace() || "<>()[],;:\"'".contains(c))
        .any(|word| {
            word.split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.ends_with('.'))
        });
    email || phone_runs(s).any(|digits| (9..=15).contains(&digits))
}

/// The digit counts of the phone-shaped runs of `s`: maximal runs of digits and `+ - ( ) .`
/// (a single space may join two parts) that begin with `0`, `+` or `(0` and stand alone.
fn phone_runs(s: &str) -> impl Iterator<Item = usize> + '_ {
    let chars: Vec<char> = s.chars().collect();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts = match chars[i] {
            '0' | '+' => true,
            '(' => chars.get(i + 1) == Some(&'0'),
            _ => false,
        };
        // A run stands alone: no letter or digit right before it or right after it (a UUID's
        // `01234567-89ab…` is no phone number).
        if !starts || (i > 0 && chars[i - 1].is_alphanumeric()) {
            i += 1;
            continue;
        }
        let mut digits = 0;
        let mut j = i;
        while j < chars.len() {
            let c = chars[j];
            let joins =
                "+-().".contains(c) || (c == ' ' && chars.get(j + 1).is_some_and(|n| n.is_ascii_digit() || *n == '('));
            if c.is_ascii_digit() {
                digits += 1;
            } else if !joins {
                break;
            }
            j += 1;
        }
        if !chars.get(j).is_some_and(|c| c.is_alphanumeric()) {
            runs.push(digits);
        }
        i = j.max(i + 1);
    }
    runs.into_iter()
}

/// Shortest part of a value that counts as an echo in [`echoes`].
pub const ECHO_WINDOW: usize = 20;

/// Whether `text` repeats `value`: the whole of it, or any run of [`ECHO_WINDOW`] of its
/// characters. What tests hold every error text, record and answer to (a message may name a
/// field and what was expected; it may not carry what was given).
pub fn echoes(text: &str, value: &str) -> bool {
    if value.is_empty() {
        return false;
    }
    if text.contains(value) {
        return true;
    }
    // Every character boundary, the end included: each window of 21 boundaries spans 20
    // characters.
    let bounds: Vec<usize> = value.char_indices().map(|(i, _)| i).chain([value.len()]).collect();
    bounds
        .windows(ECHO_WINDOW + 1)
        .any(|w| text.contains(&value[w[0]..w[ECHO_WINDOW]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_shaped_text_is_found_in_every_usual_format() {
        for s in [
            "kim.minsu@example.com",
            "customer wrote from KIM.MINSU@EXAMPLE.COM today",
            "010-1234-5678",
            "01012345678",
            "+82-10-1234-5678",
            "+821012345678",
            "call 010 1234 5678 back",
            "(010)1234-5678",
            "cmd-010-1234-5678",
        ] {
            assert!(holds_contact(s), "{s}");
        }
    }

    #[test]
    fn ordinary_reasons_and_ids_are_not_contact_data() {
        for s in [
            "customer asked for a resend after the outage",
            "2026-11 cycle, amount 12,000 won, ticket OPS-4411",
            "5f0e8d2c-1b7a-4c3e-9a51-0d2b6e7f8a90",
            "01234567-89ab-4cde-8f01-23456789abcd",
            "dispatch-2026-12-15T00:00:00Z",
            "billing-admin",
            "a@b",
            "",
        ] {
            assert!(!holds_contact(s), "{s}");
        }
    }

    #[test]
    fn a_short_text_is_borrowed_unchanged() {
        assert!(matches!(bounded("abc", 3), Cow::Borrowed("abc")));
        assert_eq!(bounded("", 0), "");
    }

    #[test]
    fn a_long_text_is_cut_with_a_marker_within_the_limit() {
        let s = "x".repeat(250_000);
        let b = bounded(&s, 100);
        assert_eq!(b.len(), 100);
        assert!(b.ends_with(ELLIPSIS));
        assert_eq!(&b[..97], &s[..97]);
    }

    #[test]
    fn the_cut_falls_on_a_char_boundary() {
        // 한 is 3 bytes: 10 of them are 30 bytes.
        let s = "한".repeat(10);
        for max in 0..=30 {
            let b = bounded(&s, max);
            assert!(b.len() <= max, "{max}: {} bytes", b.len());
            if max < 30 {
                let body = b.strip_suffix(ELLIPSIS).unwrap_or(&b);
                assert!(body.chars().all(|c| c == '한'), "{max}: {b:?}");
                if max >= ELLIPSIS.len() {
                    assert!(b.ends_with(ELLIPSIS), "{max}: {b:?}");
                    // As much of the text as fits.
                    assert_eq!(body.len(), (max - ELLIPSIS.len()) / 3 * 3, "{max}");
                }
            } else {
                assert_eq!(b, s);
            }
        }
        // A 4-byte character straddling the cut.
        let s = format!("ab{}", "😀".repeat(3));
        assert_eq!(bounded(&s, 8), format!("ab{ELLIPSIS}"));
        assert_eq!(bounded(&s, 9), format!("ab😀{ELLIPSIS}"));
    }

    #[test]
    fn reasons_have_a_fixed_limit() {
        let r = reason(&"e".repeat(MAX_REASON_BYTES * 3));
        assert_eq!(r.len(), MAX_REASON_BYTES);
        assert_eq!(reason("short"), "short");
    }

    #[test]
    fn an_id_is_a_letter_then_id_characters() {
        for ok in [
            "dispatch-2026-12-15T00:00:00Z",
            "arn:aws:states:ap-northeast-2:123456789012:execution:Settle:run-1",
            "local/resend#3",
        ] {
            assert_eq!(check_id("run_id", ok, MAX_ID_BYTES), Ok(ok));
        }
        for bad in [
            "",
            "kim.minjun@example.com",
            "01012345678",
            "+82 10-1234-5678",
            "Kim Minjun",
            "김민준",
            &"r".repeat(MAX_ID_BYTES + 1),
        ] {
            let e = check_id("run_id", bad, MAX_ID_BYTES).unwrap_err().to_string();
            assert!(e.starts_with("run_id must be 1-256 characters"), "{e}");
            assert!(!echoes(&e, bad), "{e}");
        }
    }

    #[test]
    fn an_echo_is_the_value_or_twenty_of_its_characters() {
        let email = "kim.minjun.1987@example-mail.co.kr";
        assert!(echoes(&format!("bad {email}!"), email));
        assert!(echoes("…minjun.1987@example-mail…", email));
        // 19 characters of it are not an echo.
        assert!(!echoes("…njun.1987@example-m…", email));
        // The last twenty characters count too.
        assert!(echoes("x 1987@example-mail.co.kr", email));
        assert!(echoes("a short 010-1234", "010-1234"));
        assert!(!echoes("field `phone`: expected a string", "010-1234-5678"));
        assert!(!echoes("anything", ""));
    }

    #[test]
    fn an_over_long_field_is_refused_by_name_without_its_value() {
        assert_eq!(check_len("run_id", "abc", 3), Ok("abc"));
        let long = "secret-".repeat(100);
        let e = check_len("run_id", &long, 256).unwrap_err();
        assert_eq!(
            e,
            TooLong {
                field: "run_id",
                len: 700,
                max: 256
            }
        );
        let m = e.to_string();
        assert!(m.contains("run_id") && m.contains("256"), "{m}");
        assert!(!m.contains("secret"), "{m}");
    }
}
