//! The text message: EUC-KR byte counts, the link placeholder and its
//! substitution at send time.
//!
//! # LMS, not SMS
//! Korean carriers count message length in EUC-KR bytes (a Hangul syllable
//! is 2 bytes, ASCII 1). A short SMS holds 90 bytes — 45 Hangul syllables —
//! which cannot carry a Korean invoice summary *and* a link to the full
//! invoice. We therefore deliberately send an **LMS** (long message, up to
//! 2,000 bytes), at the LMS price, and every size check is against that
//! limit (or the lower one a template version's `meta.json` declares).
//!
//! # The link budget
//! The SMS links to the full invoice with a signed link to the invoice-link
//! function, `{function URL}/i/{token}` (`domain::link`, docs/channels.md,
//! "Links that last"): it works until 90 days after the due date, whoever's
//! credentials expire. Rendering happens at settlement, days before the send
//! day, and the link is made by the SMS sender at send time. The rendered text
//! holds [`LINK_PLACEHOLDER`] where the link goes, and [`sms_with_link`]
//! puts the real URL in when the message is sent.
//!
//! Every size check at render and validation time counts the link as
//! [`MAX_LINK_BYTES`] (1,600) bytes, whatever the placeholder's own length: a
//! text that passes rendering still fits when the real link is substituted.
//! The budget dates from presigned S3 URLs (1,100–1,500 bytes with a Lambda
//! role's session token); a signed link is about 125 bytes, and the budget is
//! kept so that every template version released under it stays valid. [`sms_with_link`] checks the final size
//! again, so a link longer than the budget can never produce an over-long
//! message silently.

use encoding_rs::{EUC_KR, EncoderResult};

/// Stands for the invoice link in a rendered SMS until the message is sent.
/// Templates get it as the variable `invoice_url`; it is printable ASCII, so
/// it is the same in UTF-8 and EUC-KR and cannot be confused with Hangul.
pub const LINK_PLACEHOLDER: &str = "[[INVOICE_LINK]]";

/// The bytes every render-time size check reserves for the link (see the
/// module documentation for why 1,600).
pub const MAX_LINK_BYTES: usize = 1_600;

/// A short message's carrier limit, in EUC-KR bytes.
pub const SMS_MAX_BYTES: usize = 90;

/// A long message's (LMS) carrier limit, in EUC-KR bytes.
pub const LMS_MAX_BYTES: usize = 2_000;

/// Line breaks a message may hold: a handful keeps it readable on a phone; a
/// template that spreads the text over many lines is rejected.
pub const MAX_SMS_LINE_BREAKS: usize = 6;

/// A message that cannot be sent as it is. Names sizes and characters, never
/// the text itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    /// EUC-KR has no code for this character (emoji, most non-Korean
    /// scripts, some symbols).
    #[error("character U+{:04X} {ch:?} cannot be encoded in EUC-KR", u32::from(*ch))]
    Unencodable { ch: char },
    #[error(
        "{} bytes in EUC-KR ({text_bytes} of text + {link_bytes} {}) exceed the limit of {limit} bytes",
        text_bytes + link_bytes,
        if *link_budgeted { "budgeted for the link" } else { "of link" }
    )]
    TooLong {
        text_bytes: usize,
        link_bytes: usize,
        /// Whether `link_bytes` is the [`MAX_LINK_BYTES`] budget (render time)
        /// or the real link's length (send time).
        link_budgeted: bool,
        limit: usize,
    },
    #[error(
        "the message holds the link (`{{{{ invoice_url }}}}`, rendered as {LINK_PLACEHOLDER}) {count} times; \
         exactly one is required"
    )]
    Placeholder { count: usize },
    #[error("the message has {count} line breaks; at most {max} are allowed")]
    TooManyLines { count: usize, max: usize },
    #[error("the link must be non-empty printable ASCII without spaces")]
    BadLink,
}

/// The length of `text` in EUC-KR bytes (ASCII 1, Hangul and other KS X 1001
/// characters 2), or the first character EUC-KR cannot encode.
///
/// `encoding_rs`'s EUC-KR is the WHATWG encoding (Windows-949), which also
/// encodes every modern Hangul syllable, as Korean handsets do. ASCII and
/// the 11,172 syllables are counted without the encoder (a test checks the
/// encoder agrees); anything else asks it.
pub fn euc_kr_len(text: &str) -> Result<usize, SmsError> {
    if text.is_ascii() {
        return Ok(text.len());
    }
    let mut total = 0usize;
    for ch in text.chars() {
        total += match ch {
            '\0'..='\x7f' => 1,
            '\u{AC00}'..='\u{D7A3}' => 2,
            _ => encoded_len(ch)?,
        };
    }
    Ok(total)
}

/// One character's EUC-KR length, from the encoder.
fn encoded_len(ch: char) -> Result<usize, SmsError> {
    let mut utf8 = [0u8; 4];
    let mut out = [0u8; 8];
    let (result, _, written) =
        EUC_KR
            .new_encoder()
            .encode_from_utf8_without_replacement(ch.encode_utf8(&mut utf8), &mut out, true);
    match result {
        EncoderResult::InputEmpty => Ok(written),
        // No EUC-KR character takes more than 2 bytes, so `OutputFull`
        // cannot happen; treat it as unencodable rather than guess.
        EncoderResult::Unmappable(_) | EncoderResult::OutputFull => Err(SmsError::Unencodable { ch }),
    }
}

/// Whether EUC-KR can encode `ch`.
pub fn euc_kr_encodable(ch: char) -> bool {
    ch.is_ascii() || ('\u{AC00}'..='\u{D7A3}').contains(&ch) || encoded_len(ch).is_ok()
}

/// Puts the send-time link into a rendered message.
///
/// The message must hold [`LINK_PLACEHOLDER`] exactly once; the link must be
/// printable ASCII without spaces (a URL, as S3 presigns it); the result must
/// fit the LMS limit of [`LMS_MAX_BYTES`] in EUC-KR.
pub fn sms_with_link(sms: &str, url: &str) -> Result<String, SmsError> {
    let count = sms.matches(LINK_PLACEHOLDER).count();
    if count != 1 {
        return Err(SmsError::Placeholder { count });
    }
    if url.is_empty() || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SmsError::BadLink);
    }
    let text_bytes = euc_kr_len(sms)? - LINK_PLACEHOLDER.len();
    if text_bytes + url.len() > LMS_MAX_BYTES {
        return Err(SmsError::TooLong {
            text_bytes,
            link_bytes: url.len(),
            link_budgeted: false,
            limit: LMS_MAX_BYTES,
        });
    }
    Ok(sms.replacen(LINK_PLACEHOLDER, url, 1))
}

/// The render-time checks of a message: encodable, the placeholder exactly
/// once, a few line breaks at most, and within `limit` bytes with the link
/// counted as [`MAX_LINK_BYTES`]. Returns the size with the link budget.
pub(crate) fn check_rendered(sms: &str, limit: usize) -> Result<usize, SmsError> {
    let bytes = euc_kr_len(sms)?;
    let count = sms.matches(LINK_PLACEHOLDER).count();
    if count != 1 {
        return Err(SmsError::Placeholder { count });
    }
    let breaks = sms.bytes().filter(|&b| b == b'\n').count();
    if breaks > MAX_SMS_LINE_BREAKS {
        return Err(SmsError::TooManyLines {
            count: breaks,
            max: MAX_SMS_LINE_BREAKS,
        });
    }
    let text_bytes = bytes - LINK_PLACEHOLDER.len();
    if text_bytes + MAX_LINK_BYTES > limit {
        return Err(SmsError::TooLong {
            text_bytes,
            link_bytes: MAX_LINK_BYTES,
            link_budgeted: true,
            limit,
        });
    }
    Ok(text_bytes + MAX_LINK_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_euc_kr_bytes() {
        assert_eq!(euc_kr_len("").unwrap(), 0);
        assert_eq!(euc_kr_len("abc 123").unwrap(), 7);
        assert_eq!(euc_kr_len("한빛").unwrap(), 4);
        assert_eq!(euc_kr_len("[한빛텔레콤] 75,900원").unwrap(), 1 + 10 + 2 + 6 + 2);
        assert_eq!(euc_kr_len("·").unwrap(), 2);
        // Modern syllables outside KS X 1001's 2,350 (Windows-949 extension).
        assert_eq!(euc_kr_len("똠").unwrap(), 2);
        // Longer than the internal buffer.
        assert_eq!(euc_kr_len(&"가".repeat(1_000)).unwrap(), 2_000);
    }

    #[test]
    fn every_hangul_syllable_is_two_bytes_as_the_encoder_says() {
        let mut encoder = EUC_KR.new_encoder();
        for cp in 0xAC00..=0xD7A3u32 {
            let ch = char::from_u32(cp).unwrap();
            let mut out = [0u8; 8];
            let mut utf8 = [0u8; 4];
            let (result, _, written) =
                encoder.encode_from_utf8_without_replacement(ch.encode_utf8(&mut utf8), &mut out, true);
            assert_eq!((result, written), (EncoderResult::InputEmpty, 2), "U+{cp:04X}");
            assert_eq!(euc_kr_len(ch.encode_utf8(&mut utf8)).unwrap(), 2);
        }
    }

    #[test]
    fn rejects_unencodable_characters_by_name() {
        let err = euc_kr_len("요금 😀 안내").unwrap_err();
        assert_eq!(err, SmsError::Unencodable { ch: '😀' });
        assert!(err.to_string().contains("U+1F600"), "{err}");
        assert!(!euc_kr_encodable('😀'));
        assert!(euc_kr_encodable('김'));
    }

    #[test]
    fn substitutes_the_link_once() {
        let sms = format!("안내 {LINK_PLACEHOLDER} 끝");
        assert_eq!(
            sms_with_link(&sms, "https://x/y?a=b").unwrap(),
            "안내 https://x/y?a=b 끝"
        );
        assert_eq!(
            sms_with_link("no link", "https://x").unwrap_err(),
            SmsError::Placeholder { count: 0 }
        );
        let twice = format!("{LINK_PLACEHOLDER}{LINK_PLACEHOLDER}");
        assert_eq!(
            sms_with_link(&twice, "https://x").unwrap_err(),
            SmsError::Placeholder { count: 2 }
        );
        assert_eq!(sms_with_link(&sms, "").unwrap_err(), SmsError::BadLink);
        assert_eq!(sms_with_link(&sms, "https://x/a b").unwrap_err(), SmsError::BadLink);
        assert_eq!(sms_with_link(&sms, "https://x/\n").unwrap_err(), SmsError::BadLink);
    }

    #[test]
    fn checks_the_final_size() {
        let sms = format!("{}{LINK_PLACEHOLDER}", "가".repeat(200)); // 400 bytes of text
        let fits = format!("https://{}", "a".repeat(LMS_MAX_BYTES - 400 - 8));
        assert_eq!(sms_with_link(&sms, &fits).unwrap().len(), 600 + fits.len());
        let over = format!("{fits}a");
        let err = sms_with_link(&sms, &over).unwrap_err();
        assert_eq!(
            err,
            SmsError::TooLong {
                text_bytes: 400,
                link_bytes: 1_601,
                link_budgeted: false,
                limit: LMS_MAX_BYTES
            }
        );
        assert!(err.to_string().contains("2001 bytes"), "{err}");
    }

    #[test]
    fn render_check_budgets_the_link() {
        let ok = format!("{}{LINK_PLACEHOLDER}", "가".repeat(200));
        assert_eq!(check_rendered(&ok, LMS_MAX_BYTES).unwrap(), 400 + MAX_LINK_BYTES);
        let long = format!("{}{LINK_PLACEHOLDER}", "가".repeat(201));
        assert!(matches!(
            check_rendered(&long, LMS_MAX_BYTES),
            Err(SmsError::TooLong {
                text_bytes: 402,
                link_budgeted: true,
                ..
            })
        ));
        // No Korean SMS with a link fits the 90-byte short-message limit.
        assert!(check_rendered(LINK_PLACEHOLDER, SMS_MAX_BYTES).is_err());
        let lines = format!("{LINK_PLACEHOLDER}{}", "\n".repeat(MAX_SMS_LINE_BREAKS + 1));
        assert!(matches!(
            check_rendered(&lines, LMS_MAX_BYTES),
            Err(SmsError::TooManyLines { .. })
        ));
    }
}
