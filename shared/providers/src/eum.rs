//! AWS End User Messaging SMS as the SMS provider (`SMS_PROVIDER=end-user-messaging`),
//! through the `pinpoint-sms-voice-v2` API's `SendTextMessage`.
//!
//! * One `SendTextMessage` per message: the recipient as an E.164 number
//!   (`DestinationPhoneNumber`), the configured origination identity (a phone
//!   number, sender ID or pool, best given as its ARN), the configuration set
//!   when one is configured (where the delivery events go), `MessageType`
//!   `TRANSACTIONAL` (an invoice notice, never promotional), `MaxPrice` when
//!   one is configured (US dollars per message part: a dearer message is not
//!   sent), the text as `MessageBody`, and the message's tags as `Context`,
//!   which End User Messaging echoes in its events as `context`.
//! * The recipient is written the way customers give it: a Korean number
//!   with its trunk `0` (`010-1234-5678`, `(02) 345-6789`) becomes
//!   `+821012345678`; an international one (`+82 10-1234-5678`,
//!   `+82 (0)10 …`, `+1 415 555 0100`) keeps its country code. Digits, blanks,
//!   `-`, `.`, `(` and `)` are accepted; anything else, a number of the wrong
//!   length, or one without `+` or a trunk `0` is refused before any request
//!   ([`ErrorKind::Permanent`](crate::ErrorKind), `InvalidDestinationPhoneNumber`,
//!   naming the field, never the value). Landlines are not told apart here:
//!   End User Messaging accepts the request and its events report the failure.
//! * Korean carriers count a message in EUC-KR bytes: up to
//!   [`SMS_MAX_BYTES`] is a short SMS, up to [`LMS_MAX_BYTES`] a long message
//!   (LMS). End User Messaging has no LMS message type: it sends the text as
//!   SMS message parts (70 UCS-2 characters in one part, 67 per part once
//!   split; Hangul forces UCS-2) and bills each part; how the parts reach a
//!   Korean handset (joined, or converted to an LMS by the local route) is
//!   the carrier's. We send one `SendTextMessage` with the whole text either
//!   way, and refuse a text over the LMS limit, or with a character EUC-KR
//!   cannot encode, before calling (`SmsTooLong`, `SmsUnencodable`; the
//!   invoice's renderer already keeps texts within both).
//! * The SDK does not retry `SendTextMessage` (its standard retries would
//!   resend a message whose answer was lost, and hide that from the caller):
//!   every failure goes back to the sender, which retries on its own terms.
//! * Errors name End User Messaging's exception and, where it gives one, its
//!   reason (`ConflictException/DESTINATION_PHONE_NUMBER_OPTED_OUT`), and say
//!   what a retry can do:
//!   - throttled (never counted as an attempt): `ThrottlingException` (the
//!     API's request rate or the origination identity's message parts per
//!     second);
//!   - retryable: `InternalServerException` (the service says it could not
//!     complete the request), `ServiceUnavailable`, a
//!     `ServiceQuotaExceededException` other than a monthly spend limit, and
//!     a request that never left: the connection could not be made
//!     (`EumConnect`) or the request could not be built, e.g. no credentials
//!     (`EumNotSent`);
//!   - permanent: a monthly spend limit reached
//!     (`ServiceQuotaExceededException/MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT`:
//!     it lasts until an operator raises the limit or the month ends, so
//!     trying again within the sender's backoff only spends attempts; the
//!     delivery ends dead, and operators resend it once the limit is raised),
//!     `ValidationException/<reason>` (e.g. `CANNOT_PARSE`,
//!     `PRICE_OVER_THRESHOLD`, `DESTINATION_COUNTRY_BLOCKED`),
//!     `ConflictException/<reason>` (e.g. `DESTINATION_PHONE_NUMBER_OPTED_OUT`),
//!     `AccessDeniedException[/<reason>]`, `ResourceNotFoundException[/<type>]`,
//!     and every other 4xx answer;
//!   - unknown (End User Messaging may have accepted the message): any other
//!     5xx answer, a timeout (`EumTimeout`), an answer that could not be read
//!     (`EumResponseError`), and any failure on a connection that was made
//!     (`EumDispatch`), as for SES ([`crate::transport`]).
//! * End User Messaging cannot be asked whether a key was accepted:
//!   [`SmsProvider::find_sms`] answers [`Lookup::Unsupported`](crate::Lookup).
//! * Neither the recipient nor the text reaches an error, a log or `Debug`:
//!   the service's own message is kept with the recipient in every form we
//!   know, every word that is not ASCII and every run of seven digits or
//!   more replaced by `***`; a
//!   `ValidationException` contributes the names of its fields, never their
//!   values; a `ConflictException`'s or `ResourceNotFoundException`'s
//!   resource id is dropped. An origination identity that is a phone number
//!   is masked in `Debug` too.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_pinpointsmsvoicev2::Client;
use aws_sdk_pinpointsmsvoicev2::config::http::HttpResponse;
use aws_sdk_pinpointsmsvoicev2::config::retry::RetryConfig;
use aws_sdk_pinpointsmsvoicev2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_pinpointsmsvoicev2::operation::send_text_message::SendTextMessageError;
use aws_sdk_pinpointsmsvoicev2::types::MessageType;
use invoice::sms::{LMS_MAX_BYTES, SMS_MAX_BYTES, SmsError, euc_kr_len};

use crate::{Accepted, BoxFuture, OutgoingSms, ProviderError, SmsProvider, transport};

/// Error codes, modelled or not, that mean the sending rate was hit: nothing
/// was sent, and a later try goes through (never counted as an attempt).
const THROTTLED: &[&str] = &["ThrottlingException", "Throttling", "TooManyRequestsException"];

/// Error codes after which the same request may succeed later.
const RETRYABLE: &[&str] = &["InternalServerException", "ServiceUnavailable"];

/// The reasons of a `ServiceQuotaExceededException` that are a monthly spend
/// limit (permanent, see the module documentation) start with this.
const SPEND_LIMIT: &str = "MONTHLY_SPEND_LIMIT_REACHED";

/// The longest part of the service's own error message kept in an error.
const SERVICE_MESSAGE_MAX: usize = 300;

/// The longest reason or field name kept in a code or message.
const NAME_MAX: usize = 64;

/// A run of digits and separators holding this many digits is taken for a
/// phone number and masked in the service's messages.
const NUMBER_DIGITS: usize = 7;

/// What `Debug` prints in place of an origination identity that is a phone number.
const MASK: &str = "***";

/// The End User Messaging SMS provider. `Debug` shows the origination
/// identity (unless it is a phone number), the configuration set and the
/// price limit: our own settings, never a recipient.
#[derive(Clone)]
pub struct EumSmsProvider {
    client: Client,
    origination_identity: String,
    configuration_set: Option<String>,
    max_price: Option<String>,
}

impl fmt::Debug for EumSmsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let identity = if self
            .origination_identity
            .starts_with(|c: char| c == '+' || c.is_ascii_digit())
        {
            MASK
        } else {
            self.origination_identity.as_str()
        };
        f.debug_struct("EumSmsProvider")
            .field("origination_identity", &identity)
            .field("configuration_set", &self.configuration_set)
            .field("max_price", &self.max_price)
            .finish_non_exhaustive()
    }
}

impl EumSmsProvider {
    /// Sends from `origination_identity` (a phone number, sender ID or pool:
    /// its id or ARN) through `configuration_set` (`None`, or blank: none),
    /// with no price limit (see [`with_max_price`](Self::with_max_price)).
    pub fn new(client: Client, origination_identity: impl Into<String>, configuration_set: Option<String>) -> Self {
        EumSmsProvider {
            client,
            origination_identity: origination_identity.into().trim().to_owned(),
            configuration_set: configuration_set.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()),
            max_price: None,
        }
    }

    /// The most a message part may cost, in US dollars (`"0.10"`); blank: no
    /// limit. A decimal of at most two integer and five fraction digits,
    /// above zero.
    pub fn with_max_price(mut self, max_price: &str) -> Result<Self, String> {
        self.max_price = parse_max_price(max_price)?;
        Ok(self)
    }

    /// Reads `SMS_ORIGINATION_IDENTITY` (required), `SMS_CONFIGURATION_SET`
    /// (optional; unset or empty: none) and `SMS_MAX_PRICE` (optional; unset
    /// or empty: no limit) through `lookup`.
    pub fn from_lookup(client: Client, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let identity = lookup("SMS_ORIGINATION_IDENTITY")
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .ok_or(
                "SMS_ORIGINATION_IDENTITY (the phone number, sender ID or pool to send from, best its ARN) \
                 is required when SMS_PROVIDER is end-user-messaging",
            )?;
        if identity.chars().any(char::is_whitespace) {
            return Err("SMS_ORIGINATION_IDENTITY must be an id or ARN, without blanks".to_owned());
        }
        Self::new(client, identity, lookup("SMS_CONFIGURATION_SET"))
            .with_max_price(&lookup("SMS_MAX_PRICE").unwrap_or_default())
            .map_err(|e| format!("SMS_MAX_PRICE {e}"))
    }

    pub fn origination_identity(&self) -> &str {
        &self.origination_identity
    }

    pub fn configuration_set(&self) -> Option<&str> {
        self.configuration_set.as_deref()
    }

    pub fn max_price(&self) -> Option<&str> {
        self.max_price.as_deref()
    }

    async fn send(&self, sms: &OutgoingSms) -> Result<Accepted, ProviderError> {
        let key = &sms.idempotency_key;
        let destination = e164(&sms.to).ok_or_else(|| {
            ProviderError::permanent(
                "InvalidDestinationPhoneNumber",
                format!(
                    "DestinationPhoneNumber of {key} is not a phone number (E.164 with its +, or a Korean \
                     number with its leading 0)"
                ),
            )
        })?;
        let bytes = checked_text(key, &sms.text)?;
        tracing::debug!(
            idempotency_key = %key,
            euc_kr_bytes = bytes,
            class = if bytes <= SMS_MAX_BYTES { "sms" } else { "lms" },
            "SendTextMessage"
        );
        let context: HashMap<String, String> = sms.tags.iter().cloned().collect();
        let out = self
            .client
            .send_text_message()
            .destination_phone_number(&destination)
            .origination_identity(&self.origination_identity)
            .set_configuration_set_name(self.configuration_set.clone())
            .message_type(MessageType::Transactional)
            .set_max_price(self.max_price.clone())
            .message_body(&sms.text)
            .set_context((!context.is_empty()).then_some(context))
            .customize()
            .config_override(
                aws_sdk_pinpointsmsvoicev2::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| classify(sms, &destination, e))?;
        // The service always answers a message id; without one the message
        // was still accepted, so it is not an error (a retry would send it twice).
        Ok(Accepted {
            provider_message_id: out.message_id.unwrap_or_default(),
        })
    }
}

impl SmsProvider for EumSmsProvider {
    fn send_sms<'a>(&'a self, sms: &'a OutgoingSms) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(self.send(sms))
    }
}

/// `raw` as an E.164 number (`+821012345678`), or `None` when it is not a
/// phone number we can write so; see the module documentation.
pub(crate) fn e164(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (international, rest) = match raw.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    if international {
        if let Some(national) = digits.strip_prefix("82") {
            // `+82 (0)10 …`: the trunk 0 written after the country code is dropped.
            return korean(national.strip_prefix('0').unwrap_or(national));
        }
        // E.164: a country code (never starting with 0), at most 15 digits in all.
        (!digits.starts_with('0') && (8..=15).contains(&digits.len())).then(|| format!("+{digits}"))
    } else {
        // A Korean number as dialled at home: the trunk 0, then the national number
        // (`00…` is an international access code, not a number).
        korean(digits.strip_prefix('0')?)
    }
}

/// A Korean national number (without the trunk 0) as E.164: 8 to 10 digits
/// (`2 123 4567` in Seoul, `10 1234 5678` a mobile).
fn korean(national: &str) -> Option<String> {
    (!national.starts_with('0') && (8..=10).contains(&national.len())).then(|| format!("+82{national}"))
}

/// The text's length in EUC-KR bytes, or why it cannot be sent.
fn checked_text(key: &str, text: &str) -> Result<usize, ProviderError> {
    if text.trim().is_empty() {
        return Err(ProviderError::permanent(
            "SmsEmpty",
            format!("the text of {key} is empty"),
        ));
    }
    match euc_kr_len(text) {
        Ok(bytes) if bytes <= LMS_MAX_BYTES => Ok(bytes),
        Ok(bytes) => Err(ProviderError::permanent(
            "SmsTooLong",
            format!("the text of {key} is {bytes} bytes in EUC-KR, over the LMS limit of {LMS_MAX_BYTES}"),
        )),
        Err(SmsError::Unencodable { ch }) => Err(ProviderError::permanent(
            "SmsUnencodable",
            format!(
                "the text of {key} holds U+{:04X}, which EUC-KR cannot encode",
                u32::from(ch)
            ),
        )),
        Err(e) => Err(ProviderError::permanent(
            "SmsInvalid",
            format!("the text of {key} cannot be sent: {e}"),
        )),
    }
}

/// Parses a price limit; see [`EumSmsProvider::with_max_price`]. Written
/// back with a decimal point (`"1"` → `"1.0"`).
fn parse_max_price(raw: &str) -> Result<Option<String>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, "0"));
    let digits = |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole, 2) || !digits(fraction, 5) {
        return Err("must be a price in US dollars such as 0.10 (at most 2 digits before the point, 5 after)".into());
    }
    if format!("{whole}{fraction}").bytes().all(|b| b == b'0') {
        return Err("must be above zero (leave it empty for no limit)".into());
    }
    Ok(Some(format!("{whole}.{fraction}")))
}

/// `exception/REASON`, the reason kept to `[A-Za-z0-9_-]`; the exception
/// alone without one.
fn coded(exception: &str, reason: Option<&str>) -> String {
    match reason.map(name).filter(|r| !r.is_empty()) {
        Some(reason) => format!("{exception}/{reason}"),
        None => exception.to_owned(),
    }
}

/// A reason or field name as the service's model spells it: only
/// `[A-Za-z0-9_.-]`, at most [`NAME_MAX`] characters.
fn name(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(NAME_MAX)
        .collect()
}

/// What a retry can do after `err`; see the module documentation.
fn classify(sms: &OutgoingSms, destination: &str, err: SdkError<SendTextMessageError, HttpResponse>) -> ProviderError {
    let key = &sms.idempotency_key;
    match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let e = se.err();
            let said = redact(e.message().unwrap_or("no message"), sms, destination);
            let message = |extra: String| format!("End User Messaging answered {status} to {key}{extra}: {said}");
            match e {
                SendTextMessageError::ThrottlingException(_) => {
                    ProviderError::throttled("ThrottlingException", message(String::new()))
                }
                SendTextMessageError::ServiceQuotaExceededException(q) => {
                    let reason = q.reason().map(|r| r.as_str());
                    let code = coded("ServiceQuotaExceededException", reason);
                    if reason.is_some_and(|r| r.starts_with(SPEND_LIMIT)) {
                        ProviderError::permanent(code, message(" (the monthly spend limit)".into()))
                    } else {
                        ProviderError::retryable(code, message(String::new()))
                    }
                }
                SendTextMessageError::InternalServerException(_) => {
                    ProviderError::retryable("InternalServerException", message(String::new()))
                }
                SendTextMessageError::ValidationException(v) => {
                    let fields: Vec<String> = v.fields().iter().map(|f| name(f.name())).collect();
                    let extra = if fields.is_empty() {
                        String::new()
                    } else {
                        format!(" (fields: {})", fields.join(", "))
                    };
                    ProviderError::permanent(
                        coded("ValidationException", v.reason().map(|r| r.as_str())),
                        message(extra),
                    )
                }
                SendTextMessageError::ConflictException(c) => ProviderError::permanent(
                    coded("ConflictException", c.reason().map(|r| r.as_str())),
                    message(String::new()),
                ),
                SendTextMessageError::AccessDeniedException(a) => ProviderError::permanent(
                    coded("AccessDeniedException", a.reason().map(|r| r.as_str())),
                    message(String::new()),
                ),
                SendTextMessageError::ResourceNotFoundException(r) => ProviderError::permanent(
                    coded("ResourceNotFoundException", r.resource_type().map(|t| t.as_str())),
                    message(String::new()),
                ),
                _ => {
                    let code = e
                        .code()
                        .map(name)
                        .filter(|c| !c.is_empty())
                        .unwrap_or_else(|| format!("EumHttp{status}"));
                    let message = message(String::new());
                    if THROTTLED.contains(&code.as_str()) {
                        ProviderError::throttled(code, message)
                    } else if RETRYABLE.contains(&code.as_str()) {
                        ProviderError::retryable(code, message)
                    } else if status >= 500 {
                        ProviderError::unknown(code, message)
                    } else {
                        ProviderError::permanent(code, message)
                    }
                }
            }
        }
        _ => transport::without_answer(&err, "End User Messaging", "Eum", key),
    }
}

/// `text` without the recipient (as given, as E.164, as bare digits), the
/// message's text, any word that is not ASCII, or any run of digits and
/// separators holding [`NUMBER_DIGITS`] digits or more; at most
/// [`SERVICE_MESSAGE_MAX`] characters.
fn redact(text: &str, sms: &OutgoingSms, destination: &str) -> String {
    let mut text = text.to_owned();
    let bare: String = sms.to.chars().filter(char::is_ascii_digit).collect();
    for secret in [sms.text.trim(), sms.to.trim(), destination, bare.as_str()] {
        if !secret.is_empty() {
            text = text.replace(secret, MASK);
        }
    }
    // The service speaks English: a word in another script came from the message.
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|word| if word.is_ascii() { word } else { MASK })
        .collect();
    let masked = mask_numbers(&words.join(" "));
    match masked.char_indices().nth(SERVICE_MESSAGE_MAX) {
        Some((end, _)) => format!("{}…", &masked[..end]),
        None => masked,
    }
}

/// `text` with every run of digits, blanks, `+`, `-`, `.`, `(` and `)` that
/// holds [`NUMBER_DIGITS`] digits or more replaced by `***` (blanks around
/// it kept).
fn mask_numbers(text: &str) -> String {
    fn flush(run: &mut String, out: &mut String) {
        if run.bytes().filter(u8::is_ascii_digit).count() >= NUMBER_DIGITS {
            let lead = run.len() - run.trim_start().len();
            let trail = run.len() - run.trim_end().len();
            out.push_str(&run[..lead]);
            out.push_str(MASK);
            out.push_str(&run[run.len() - trail..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    }
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '.' | '(' | ')') {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_pinpointsmsvoicev2::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_pinpointsmsvoicev2::types::error::{ConflictException, ServiceQuotaExceededException};
    use aws_sdk_pinpointsmsvoicev2::types::{ConflictExceptionReason, ServiceQuotaExceededExceptionReason};
    use aws_smithy_types::body::SdkBody;

    use crate::ErrorKind;

    const KEY: &str = "2026-11#00001#C0000001#sms";

    fn sms() -> OutgoingSms {
        OutgoingSms {
            idempotency_key: KEY.into(),
            attempt: 1,
            to: "010-1234-5678".into(),
            text: "김민수님 11월 청구 금액 55,000원".into(),
            tags: vec![("customer".into(), "C0000001".into())],
        }
    }

    fn client() -> Client {
        Client::from_conf(
            aws_sdk_pinpointsmsvoicev2::Config::builder()
                .behavior_version(aws_sdk_pinpointsmsvoicev2::config::BehaviorVersion::latest())
                .build(),
        )
    }

    fn assert_private(e: &ProviderError) {
        let printed = format!("{e} {e:?}");
        for secret in [
            "010-1234-5678",
            "01012345678",
            "1012345678",
            "1234",
            "5678",
            "김민수",
            "55,000",
        ] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
        assert!(printed.contains(KEY), "{printed}");
    }

    fn service_error(status: u16, err: SendTextMessageError) -> SdkError<SendTextMessageError, HttpResponse> {
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::from("{}"));
        SdkError::service_error(err, raw)
    }

    #[test]
    fn numbers_are_written_in_e164() {
        for (raw, written) in [
            ("010-1234-5678", "+821012345678"),
            ("01012345678", "+821012345678"),
            (" 010 1234 5678 ", "+821012345678"),
            ("011-123-4567", "+82111234567"),
            ("(02) 345-6789", "+8223456789"),
            ("02-3456-7890", "+82234567890"),
            ("+82 10-1234-5678", "+821012345678"),
            ("+82 (0)10-1234-5678", "+821012345678"),
            ("+821012345678", "+821012345678"),
            ("+1 (415) 555-0100", "+14155550100"),
            ("+44 20 7946 0958", "+442079460958"),
        ] {
            assert_eq!(e164(raw).as_deref(), Some(written), "{raw:?}");
        }
        for bad in [
            "",
            "+",
            "010",
            "010-1234",
            "1012345678",
            "821012345678",
            "0082-10-1234-5678",
            "010-1234-5678 ext 9",
            "010-1234-567a",
            "kim@example.com",
            "+82 10-1234-56789012",
            "+0 123 456 789",
            "+1234567",
            "+1234567890123456",
            "010-1234-5678-9012",
        ] {
            assert_eq!(e164(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn texts_over_the_lms_limit_or_unencodable_are_refused() {
        assert_eq!(checked_text(KEY, "안녕"), Ok(4));
        assert_eq!(checked_text(KEY, &"가".repeat(1000)), Ok(LMS_MAX_BYTES));
        let e = checked_text(KEY, &format!("{}a", "가".repeat(1000))).unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Permanent, "SmsTooLong"), "{e}");
        assert!(
            e.message.contains("2001") && e.message.contains("2000") && e.message.contains(KEY),
            "{e}"
        );
        assert!(!e.message.contains('가'), "{e}");
        let e = checked_text(KEY, "청구서 😀").unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Permanent, "SmsUnencodable"),
            "{e}"
        );
        assert!(e.message.contains("U+1F600") && !e.message.contains("청구서"), "{e}");
        let e = checked_text(KEY, "  ").unwrap_err();
        assert_eq!(e.code, "SmsEmpty");
    }

    #[test]
    fn max_prices_are_decimals_above_zero() {
        assert_eq!(parse_max_price(""), Ok(None));
        assert_eq!(parse_max_price("  "), Ok(None));
        assert_eq!(parse_max_price("0.10").unwrap().as_deref(), Some("0.10"));
        assert_eq!(parse_max_price(" 1 ").unwrap().as_deref(), Some("1.0"));
        assert_eq!(parse_max_price("12.00001").unwrap().as_deref(), Some("12.00001"));
        for bad in [
            "0", "0.000", "abc", "1,5", "-0.1", ".5", "1.", "100.0", "0.123456", "1e-2",
        ] {
            assert!(parse_max_price(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn configuration_from_lookup() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        for missing in [vars(&[]), vars(&[("SMS_ORIGINATION_IDENTITY", " ")])] {
            let e = EumSmsProvider::from_lookup(client(), missing).unwrap_err();
            assert!(e.contains("SMS_ORIGINATION_IDENTITY"), "{e}");
        }
        let e = EumSmsProvider::from_lookup(client(), vars(&[("SMS_ORIGINATION_IDENTITY", "pool 1")])).unwrap_err();
        assert!(e.contains("SMS_ORIGINATION_IDENTITY"), "{e}");
        let e = EumSmsProvider::from_lookup(
            client(),
            vars(&[("SMS_ORIGINATION_IDENTITY", "pool-1"), ("SMS_MAX_PRICE", "ten cents")]),
        )
        .unwrap_err();
        assert!(e.contains("SMS_MAX_PRICE") && !e.contains("ten cents"), "{e}");

        let p = EumSmsProvider::from_lookup(
            client(),
            vars(&[
                ("SMS_ORIGINATION_IDENTITY", " pool-0123456789abcdef "),
                ("SMS_CONFIGURATION_SET", ""),
                ("SMS_MAX_PRICE", ""),
            ]),
        )
        .unwrap();
        assert_eq!(p.origination_identity(), "pool-0123456789abcdef");
        assert_eq!((p.configuration_set(), p.max_price()), (None, None));
        let p = EumSmsProvider::from_lookup(
            client(),
            vars(&[
                ("SMS_ORIGINATION_IDENTITY", "pool-1"),
                ("SMS_CONFIGURATION_SET", " invoices "),
                ("SMS_MAX_PRICE", "0.10"),
            ]),
        )
        .unwrap();
        assert_eq!((p.configuration_set(), p.max_price()), (Some("invoices"), Some("0.10")));
    }

    #[test]
    fn debug_masks_an_origination_number() {
        let p = EumSmsProvider::new(client(), "+82 2 1588 0000", None);
        let printed = format!("{p:?} {p:#?}");
        assert!(!printed.contains("1588") && printed.contains("***"), "{printed}");
        let p = EumSmsProvider::new(client(), "pool-abc", Some("invoices".into()));
        let printed = format!("{p:?}");
        assert!(
            printed.contains("pool-abc") && printed.contains("invoices"),
            "{printed}"
        );
    }

    #[test]
    fn service_messages_lose_every_number() {
        let m = redact(
            "The destination phone number +821012345678 (010-1234-5678, 010 1234 5678) is opted out \
             since 2026-11-01 12:00; body 김민수님 11월 청구 금액 55,000원",
            &sms(),
            "+821012345678",
        );
        assert_eq!(
            m,
            "The destination phone number *** (***, *** is opted out since ***:00; body ***"
        );
        assert_eq!(mask_numbers("pool 12 and 123-456"), "pool 12 and 123-456");
        let long = redact(&"a".repeat(1000), &sms(), "+821012345678");
        assert_eq!(long.chars().count(), SERVICE_MESSAGE_MAX + 1);
    }

    #[test]
    fn reasons_name_the_code_and_say_what_a_retry_can_do() {
        let opted_out = service_error(
            400,
            SendTextMessageError::ConflictException(
                ConflictException::builder()
                    .reason(ConflictExceptionReason::DestinationPhoneNumberOptedOut)
                    .resource_id("+821012345678")
                    .message("+821012345678 opted out")
                    .meta(ErrorMetadata::builder().code("ConflictException").build())
                    .build(),
            ),
        );
        let e = classify(&sms(), "+821012345678", opted_out);
        assert_eq!(
            (e.kind, e.code.as_str()),
            (
                ErrorKind::Permanent,
                "ConflictException/DESTINATION_PHONE_NUMBER_OPTED_OUT"
            ),
            "{e}"
        );
        assert_private(&e);

        for (reason, kind) in [
            (
                ServiceQuotaExceededExceptionReason::MonthlySpendLimitReachedForText,
                ErrorKind::Permanent,
            ),
            (
                ServiceQuotaExceededExceptionReason::DailyNotifyTierMessageLimit,
                ErrorKind::Retryable,
            ),
        ] {
            let err = service_error(
                402,
                SendTextMessageError::ServiceQuotaExceededException(
                    ServiceQuotaExceededException::builder()
                        .reason(reason.clone())
                        .meta(ErrorMetadata::builder().code("ServiceQuotaExceededException").build())
                        .build(),
                ),
            );
            let e = classify(&sms(), "+821012345678", err);
            assert_eq!(e.kind, kind, "{e}");
            assert_eq!(e.code, format!("ServiceQuotaExceededException/{}", reason.as_str()));
        }

        for (status, code, kind) in [
            (400, "Throttling", ErrorKind::Throttled),
            (429, "TooManyRequestsException", ErrorKind::Throttled),
            (503, "ServiceUnavailable", ErrorKind::Retryable),
            (500, "InternalFailure", ErrorKind::Unknown),
            (400, "UnrecognizedClientException", ErrorKind::Permanent),
        ] {
            let err = service_error(
                status,
                SendTextMessageError::generic(
                    ErrorMetadata::builder()
                        .code(code)
                        .message("to 010-1234-5678: 김민수님")
                        .build(),
                ),
            );
            let e = classify(&sms(), "+821012345678", err);
            assert_eq!((e.kind, e.code.as_str()), (kind, code), "{e}");
            assert_private(&e);
        }
    }

    #[test]
    fn transport_errors_are_retryable_only_when_nothing_was_sent() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = classify(
            &sms(),
            "+821012345678",
            SdkError::dispatch_failure(ConnectorError::io(refused.into())),
        );
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Retryable, "EumConnect"), "{e}");
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let e = classify(
            &sms(),
            "+821012345678",
            SdkError::dispatch_failure(ConnectorError::io(reset.into())),
        );
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Unknown, "EumDispatch"), "{e}");
        let e = classify(&sms(), "+821012345678", SdkError::timeout_error("operation timed out"));
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Unknown, "EumTimeout"), "{e}");
        let e = classify(
            &sms(),
            "+821012345678",
            SdkError::response_error("bad json", HttpResponse::new(200.try_into().unwrap(), SdkBody::empty())),
        );
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Unknown, "EumResponseError"),
            "{e}"
        );
        let e = classify(
            &sms(),
            "+821012345678",
            SdkError::construction_failure("no credentials"),
        );
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Retryable, "EumNotSent"), "{e}");
        assert_private(&e);
    }
}
