//! Decoding input without echoing it: the one way every function turns JSON (an SQS body, a
//! Step Functions task input, an admin API body or query) or a stored item into a typed value.
//!
//! serde's own messages quote the value they refused (``unknown variant `kim@example.com`,
//! expected one of `email`, `sms` ``, `invalid type: string "010-1234-5678", expected u32`),
//! and an input in the wrong field may be anyone's email or phone number. A [`DecodeError`]
//! keeps only what the code knows: the path to the field (`channels[0]`) and what was expected
//! there (`unknown variant, expected one of email, sms`). Its text is bounded
//! ([`MAX_DECODE_ERROR_BYTES`]).
//!
//! The field path comes from `serde_path_to_error`. A map key is shown only when it has the
//! shape of a field name (a letter or `_`, then up to 40 letters, digits or `_`); any other key
//! is shown as `?`, so that a key taken from the input (a `HashMap<String, _>`) cannot carry a
//! value out either.

use std::fmt;

use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde_path_to_error::{Path, Segment};

use crate::text::bounded;

/// Bytes a [`DecodeError`]'s text may take.
pub const MAX_DECODE_ERROR_BYTES: usize = 400;
/// Bytes the "expected …" part of a message may take (a long list of variants is cut).
const MAX_EXPECTED_BYTES: usize = 200;
/// Bytes a field name in a path may take before it is shown as `?`.
const MAX_KEY_BYTES: usize = 40;
/// Segments of a path shown (deeper ones are elided with `…`).
const MAX_SEGMENTS: usize = 8;

/// An input that does not decode: where, and what was expected there. Never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The path to the field (`channels[0]`, `task.cycle`), empty for the input as a whole.
    pub path: String,
    /// What is wrong there, in words the code chose (`expected a string`).
    pub problem: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = if self.path.is_empty() {
            format!("the input: {}", self.problem)
        } else {
            format!("field `{}`: {}", self.path, self.problem)
        };
        f.write_str(&bounded(&text, MAX_DECODE_ERROR_BYTES))
    }
}

impl std::error::Error for DecodeError {}

/// Decodes JSON text into `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    from_slice(text.as_bytes())
}

/// Decodes JSON bytes into `T`. Text that is not JSON at all is reported with its position.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| DecodeError {
        path: String::new(),
        problem: not_json(&e),
    })?;
    from_value(value)
}

/// Decodes an already parsed JSON value into `T`.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, DecodeError> {
    from_deserializer(value)
}

/// Decodes `T` from any serde deserializer (a DynamoDB item's, for one), with the same
/// rules: the path and what was expected, never the value.
pub fn from_deserializer<'de, D, T>(d: D) -> Result<T, DecodeError>
where
    D: Deserializer<'de>,
    D::Error: fmt::Display,
    T: Deserialize<'de>,
{
    serde_path_to_error::deserialize(d).map_err(|e| DecodeError {
        path: path_text(e.path()),
        problem: problem(&e.inner().to_string()),
    })
}

/// The problem of a JSON syntax error: its kind and position, which serde_json's messages
/// give without quoting the text.
fn not_json(e: &serde_json::Error) -> String {
    if e.is_eof() {
        "not JSON: it ends too early".to_owned()
    } else {
        format!("not JSON (line {}, column {})", e.line(), e.column())
    }
}

/// The path as `a.b[2].c`, keeping only keys shaped like field names.
fn path_text(path: &Path) -> String {
    let mut out = String::new();
    for (i, segment) in path.iter().enumerate() {
        if i == MAX_SEGMENTS {
            out.push_str(".…");
            break;
        }
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if is_field_name(key) { key } else { "?" });
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if is_field_name(variant) { variant } else { "?" });
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

/// A letter or `_`, then letters, digits or `_`; at most [`MAX_KEY_BYTES`].
fn is_field_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    key.len() <= MAX_KEY_BYTES
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A deserializer's message reduced to the parts the code wrote: the kind of problem, the
/// expected shape and a missing field's name. Anything else becomes "invalid value".
fn problem(message: &str) -> String {
    // serde's own messages (serde::de::Error's provided constructors).
    const KINDS: [(&str, &str); 5] = [
        ("invalid type:", "invalid type"),
        ("invalid value:", "invalid value"),
        ("invalid length ", "invalid length"),
        ("unknown variant ", "unknown variant"),
        ("unknown field ", "unknown field"),
    ];
    for (prefix, kind) in KINDS {
        if message.starts_with(prefix) {
            return match expected(message) {
                Some(exp) if kind == "invalid type" => format!("expected {exp}"),
                Some(exp) => format!("{kind}, expected {exp}"),
                None => kind.to_owned(),
            };
        }
    }
    if let Some(field) = backticked(message, "missing field `") {
        return format!("missing field `{field}`");
    }
    if let Some(field) = backticked(message, "duplicate field `") {
        return format!("duplicate field `{field}`");
    }
    // serde_dynamo's fixed messages ("Expected string", "Expected map", …) carry no value;
    // its number errors ("Failed to parse '…' as an integer") do.
    if let Some(what) = message.strip_prefix("Expected ")
        && what.len() <= 40
        && what.bytes().all(|b| b.is_ascii_alphabetic() || b == b' ')
    {
        return format!("expected {what}");
    }
    if message.starts_with("Failed to parse ") {
        return "expected a number".to_owned();
    }
    "invalid value".to_owned()
}

/// The text after the last `, expected ` (what the code expected: it comes last, after the
/// quoted value), without backticks, bounded.
fn expected(message: &str) -> Option<String> {
    let (_, exp) = message.rsplit_once(", expected ")?;
    let exp = exp.replace('`', "");
    Some(bounded(exp.trim(), MAX_EXPECTED_BYTES).into_owned())
}

/// The name in `` prefix`name` `` when it has the shape of a field name.
fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    let (name, _) = rest.split_once('`')?;
    is_field_name(name).then_some(name)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;

    use super::*;
    use crate::text::echoes;

    const EMAIL: &str = "kim.minjun.1987@example-mail.co.kr";
    const PHONE: &str = "+82 10-1234-5678";

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Channel {
        Email,
        Sms,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        channel: Channel,
        count: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        id: String,
        items: Vec<Inner>,
        #[serde(default)]
        tags: HashMap<String, u32>,
    }

    fn err(json: &str) -> String {
        from_str::<Outer>(json).unwrap_err().to_string()
    }

    fn assert_clean(message: &str, value: &str) {
        assert!(!echoes(message, value), "{value:?} echoed in {message:?}");
        assert!(message.len() <= MAX_DECODE_ERROR_BYTES, "{} bytes", message.len());
    }

    #[test]
    fn an_unknown_variant_names_the_field_and_the_choices_not_the_value() {
        for v in [EMAIL, PHONE] {
            let m = err(&format!(r#"{{"id":"a","items":[{{"channel":"{v}","count":1}}]}}"#));
            assert_eq!(m, "field `items[0].channel`: unknown variant, expected email or sms");
            assert_clean(&m, v);
        }
    }

    #[test]
    fn a_wrong_type_names_the_field_and_the_expected_type() {
        let m = err(&format!(
            r#"{{"id":"a","items":[{{"channel":"sms","count":"{PHONE}"}}]}}"#
        ));
        assert_eq!(m, "field `items[0].count`: expected u32");
        assert_clean(&m, PHONE);
        let m = from_str::<u32>(&format!("\"{EMAIL}\"")).unwrap_err().to_string();
        assert_eq!(m, "the input: expected u32");
    }

    #[test]
    fn an_unknown_field_and_a_key_from_the_input_are_not_shown() {
        let m = err(&format!(r#"{{"id":"a","items":[],"{EMAIL}":1}}"#));
        assert_eq!(m, "field `?`: unknown field, expected one of id, items, tags");
        assert_clean(&m, EMAIL);
        let m = err(&format!(r#"{{"id":"a","items":[],"tags":{{"{EMAIL}":"x"}}}}"#));
        assert_eq!(m, "field `tags.?`: expected u32");
        assert_clean(&m, EMAIL);
        // A digit-only key (a phone number) is not a field name either.
        let m = err(r#"{"id":"a","items":[],"tags":{"01012345678":"x"}}"#);
        assert_eq!(m, "field `tags.?`: expected u32");
    }

    #[test]
    fn a_missing_field_is_named() {
        assert_eq!(err(r#"{"items":[]}"#), "the input: missing field `id`");
    }

    #[test]
    fn text_that_is_not_json_gives_its_position_only() {
        let m = from_str::<Outer>(&format!("{EMAIL} {PHONE}")).unwrap_err().to_string();
        assert_eq!(m, "the input: not JSON (line 1, column 1)");
        let m = from_str::<Outer>(&format!(r#"{{"id":"{EMAIL}"#))
            .unwrap_err()
            .to_string();
        assert_eq!(m, "the input: not JSON: it ends too early");
    }

    #[test]
    fn a_custom_message_that_may_quote_the_value_is_dropped() {
        #[derive(Debug)]
        struct Picky;
        impl<'de> Deserialize<'de> for Picky {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Err(serde::de::Error::custom(format!("{s:?} is not allowed")))
            }
        }
        let m = from_str::<Picky>(&format!("\"{EMAIL}\"")).unwrap_err().to_string();
        assert_eq!(m, "the input: invalid value");
    }

    #[test]
    fn a_value_crafted_to_look_like_the_expected_part_stays_out() {
        let crafted = format!("x, expected {EMAIL}");
        let m = err(&format!(
            r#"{{"id":"a","items":[{{"channel":"{crafted}","count":1}}]}}"#
        ));
        assert_eq!(m, "field `items[0].channel`: unknown variant, expected email or sms");
        let m = err(&format!(
            r#"{{"id":"a","items":[{{"channel":"sms","count":"{crafted}"}}]}}"#
        ));
        assert_clean(&m, &crafted);
    }

    #[test]
    fn a_long_value_and_a_deep_path_stay_bounded() {
        let long = "가".repeat(100_000);
        let m = err(&format!(r#"{{"id":"a","items":[{{"channel":"{long}","count":1}}]}}"#));
        assert_clean(&m, &long);
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let m = from_str::<Vec<Vec<Vec<Vec<Vec<Vec<Vec<Vec<Vec<Vec<String>>>>>>>>>>>(&deep)
            .unwrap_err()
            .to_string();
        assert!(m.len() <= MAX_DECODE_ERROR_BYTES && m.contains('…'), "{m}");
    }

    #[test]
    fn serde_dynamo_style_messages_keep_only_their_fixed_words() {
        assert_eq!(problem("Expected string"), "expected string");
        assert_eq!(
            problem(&format!("Failed to parse '{PHONE}' as an integer: invalid digit")),
            "expected a number"
        );
        assert_eq!(problem(&format!("Expected {EMAIL}")), "invalid value");
    }
}
