//! `meta.json`: the versioned text of a template version that is not about
//! the customer — brand, customer-service contact, web address — and the
//! kind and size limit of its text message. Templates see it as `meta`.

use serde::{Deserialize, Serialize};

use crate::sms::{LMS_MAX_BYTES, SMS_MAX_BYTES};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// The brand as printed on invoices (`한빛텔레콤`).
    pub brand: String,
    pub customer_service: CustomerService,
    /// The web address shown in the footer.
    pub web: String,
    pub sms: SmsMeta,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerService {
    /// Numbers as printed (`고객센터 114 (무료) · 1599-0011`).
    pub contact: String,
    /// Opening hours as printed.
    pub hours: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsMeta {
    pub kind: MessageKind,
    /// The size limit in EUC-KR bytes, at most the kind's carrier limit.
    pub max_bytes: usize,
}

/// The kind of text message a version sends.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MessageKind {
    /// Short message, 90 bytes: too small for a Korean invoice with a link.
    Sms,
    /// Long message, 2,000 bytes: what invoices are sent as.
    Lms,
}

impl MessageKind {
    /// The carrier's limit for this kind, in EUC-KR bytes.
    pub fn carrier_limit(self) -> usize {
        match self {
            MessageKind::Sms => SMS_MAX_BYTES,
            MessageKind::Lms => LMS_MAX_BYTES,
        }
    }
}

impl Meta {
    /// Parses and checks a `meta.json`; the error says what is wrong.
    pub fn parse(json: &str) -> Result<Meta, String> {
        let meta: Meta = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let required = [
            ("brand", &meta.brand),
            ("customer_service.contact", &meta.customer_service.contact),
            ("customer_service.hours", &meta.customer_service.hours),
            ("web", &meta.web),
        ];
        if let Some((name, _)) = required.iter().find(|(_, v)| v.trim().is_empty()) {
            return Err(format!("{name} is empty"));
        }
        let limit = meta.sms.kind.carrier_limit();
        if meta.sms.max_bytes == 0 || meta.sms.max_bytes > limit {
            return Err(format!(
                "sms.max_bytes is {}, but a {:?} holds 1 to {limit} bytes",
                meta.sms.max_bytes, meta.sms.kind
            ));
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"brand":"B","customer_service":{"contact":"114","hours":"9-18"},"web":"w","sms":{"kind":"LMS","max_bytes":2000}}"#;

    #[test]
    fn parses_and_checks() {
        let m = Meta::parse(GOOD).unwrap();
        assert_eq!(m.sms.kind, MessageKind::Lms);
        assert!(
            Meta::parse(&GOOD.replace("2000", "2001"))
                .unwrap_err()
                .contains("max_bytes")
        );
        assert!(Meta::parse(&GOOD.replace("\"LMS\"", "\"SMS\"")).is_err());
        assert!(Meta::parse(&GOOD.replace("\"MMS\"", "\"LMS\"")).is_ok());
        assert!(
            Meta::parse(&GOOD.replace("\"B\"", "\" \""))
                .unwrap_err()
                .contains("brand")
        );
        assert!(Meta::parse(&GOOD.replace("\"web\"", "\"www\"")).is_err());
        assert!(Meta::parse("{").is_err());
    }
}
