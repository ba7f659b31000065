//! One line of a customers file: decoded, checked and (in `apply`) sealed. Pure: no I/O, so
//! that the plan, the apply step and the benchmark share it.
//!
//! Every problem is a [`Rejection`] naming the line, the field and the rule, never a value
//! from the line (it may be anyone's name, email address or phone number).

use domain::pii::Sealed;
use domain::{ClearContact, Contact, QuietWindow};

/// A line longer than this is refused before it is decoded.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Characters a name may have.
pub const MAX_NAME_CHARS: usize = 100;
/// Bytes an email address may have (RFC 5321).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Bytes a plan code, an add-on code or a family group id may have.
pub const MAX_CODE_BYTES: usize = 64;
/// Add-ons a customer may have.
pub const MAX_ADDONS: usize = 50;

/// A refused line: its number, the field, the rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    pub line: u64,
    pub field: String,
    pub reason: String,
}

/// A line's problem before its number is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub reason: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Problem {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn at(self, line: u64) -> Rejection {
        Rejection {
            line,
            field: self.field,
            reason: self.reason,
        }
    }
}

/// A customers-file line as the CRM exports it: [`domain::ClearCustomer`], the fields of
/// [`Customer`] with the contact data in clear.
pub type UploadCustomer = domain::ClearCustomer;

/// Decodes and checks one non-blank line of a customers file: the rules
/// [`Customer::validate`] holds (against the stack's quiet window), the contact data's
/// formats, and bounds that keep an item far below DynamoDB's limit.
pub fn check_customer_line(line: &[u8], quiet: QuietWindow) -> Result<UploadCustomer, Problem> {
    if line.len() > MAX_LINE_BYTES {
        return Err(Problem::new("line", format!("is longer than {MAX_LINE_BYTES} bytes")));
    }
    let c: UploadCustomer = domain::decode::from_slice(line).map_err(decode_problem)?;
    check_bounds(&c)?;
    check_contact(&c.contact)?;
    // `validate` looks at everything but the contact data: an empty placeholder stands in.
    let empty = Sealed::from_stored(String::new());
    let probe = c.with_contact(Contact {
        name: empty.clone(),
        email: empty.clone(),
        phone: empty,
    });
    probe
        .validate(quiet)
        .map_err(|e| Problem::new(e.field.unwrap_or("record"), e.reason))?;
    Ok(c)
}

/// A decode error as a problem: the field is the error's path (or the missing field), `line`
/// when the line as a whole is not a JSON object.
fn decode_problem(e: domain::decode::DecodeError) -> Problem {
    let missing = e
        .problem
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    let field = match (e.path.is_empty(), missing) {
        (true, Some(name)) => name,
        (false, Some(name)) => format!("{}.{name}", e.path),
        (true, None) => "line".to_owned(),
        (false, None) => e.path,
    };
    Problem::new(field, e.problem)
}

fn check_bounds(c: &UploadCustomer) -> Result<(), Problem> {
    let code = |field: &str, s: &str| {
        if s.len() > MAX_CODE_BYTES {
            Err(Problem::new(field, format!("is longer than {MAX_CODE_BYTES} bytes")))
        } else {
            Ok(())
        }
    };
    code("plan", &c.plan)?;
    if c.addons.len() > MAX_ADDONS {
        return Err(Problem::new("addons", format!("lists more than {MAX_ADDONS} add-ons")));
    }
    for a in &c.addons {
        code("addons", a)?;
    }
    if let Some(f) = &c.family {
        code("family.group_id", &f.group_id)?;
    }
    Ok(())
}

/// The contact data's formats: a name of 1 to 100 characters without control characters, an
/// email address `local@domain.tld`, a phone number of 9 to 15 digits written with digits,
/// spaces, `-`, `(`, `)` and a leading `+`.
pub fn check_contact(c: &ClearContact) -> Result<(), Problem> {
    let name = c.name.trim();
    if name.is_empty() {
        return Err(Problem::new("contact.name", "is empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Problem::new(
            "contact.name",
            format!("must be 1 to {MAX_NAME_CHARS} characters without control characters"),
        ));
    }
    if !is_email(&c.email) {
        return Err(Problem::new(
            "contact.email",
            "is not an email address (local@domain.tld, at most 254 bytes)",
        ));
    }
    if !is_phone(&c.phone) {
        return Err(Problem::new(
            "contact.phone",
            "is not a phone number (9 to 15 digits; digits, spaces, '-', '(', ')' and a leading '+')",
        ));
    }
    Ok(())
}

fn is_email(s: &str) -> bool {
    if s.len() > MAX_EMAIL_BYTES || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-'))
}

fn is_phone(s: &str) -> bool {
    let s = s.trim();
    let body = s.strip_prefix('+').unwrap_or(s);
    let digits = body.bytes().filter(u8::is_ascii_digit).count();
    (9..=15).contains(&digits)
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'(' | b')'))
        && body.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'(')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use domain::pii::Keyring;

    pub const EMAIL: &str = "kim.minjun.1987@example-mail.co.kr";
    pub const PHONE: &str = "010-2345-6789";
    pub const NAME: &str = "김민준";

    pub fn line(id: &str, shard: u32) -> serde_json::Value {
        serde_json::json!({
            "customer_id": id, "shard": shard, "plan": "5G_STANDARD", "addons": [], "family": null,
            "contract": null, "birthday": "1987-03-14", "joined_on": "2020-05-01", "cancelled_on": null,
            "send_day": 15, "dnd": [], "preferred_channel": "email",
            "contact": {"name": NAME, "email": EMAIL, "phone": PHONE}
        })
    }

    fn check(v: &serde_json::Value) -> Result<UploadCustomer, Problem> {
        check_customer_line(v.to_string().as_bytes(), QuietWindow::default_korea())
    }

    #[test]
    fn a_good_line_passes_and_seals_deterministically() {
        let c = check(&line("C0000001", 3)).unwrap();
        let keys = Keyring::dev();
        let a = c.seal(&keys);
        assert_eq!(a, c.seal(&keys));
        assert_eq!(a.shard, 3);
        assert!(c.same_contact(&a.contact.open(&keys, &a.customer_id).unwrap()));
        let shown = format!("{c:?} {:?}", c.contact);
        assert!(
            !shown.contains("kim.minjun") && !shown.contains(NAME) && !shown.contains("1987"),
            "{shown}"
        );
    }

    #[test]
    fn each_rule_names_its_field_and_never_the_value() {
        let q = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = line("C0000001", 0);
            f(&mut v);
            check(&v).map(drop).unwrap_err()
        };
        let cases: Vec<(Problem, &str)> = vec![
            (q(&|v| v["contact"]["email"] = "not-an-address".into()), "contact.email"),
            (q(&|v| v["contact"]["phone"] = "010-12".into()), "contact.phone"),
            (q(&|v| v["contact"]["phone"] = EMAIL.into()), "contact.phone"),
            (q(&|v| v["contact"]["name"] = " ".into()), "contact.name"),
            (q(&|v| v["send_day"] = 40.into()), "send_day"),
            (q(&|v| v["send_day"] = PHONE.into()), "send_day"),
            (q(&|v| v["customer_id"] = EMAIL.into()), "customer_id"),
            (q(&|v| v["plan"] = "".into()), "plan"),
            (q(&|v| v["cancelled_on"] = "2019-01-01".into()), "cancelled_on"),
            (q(&|v| v["dnd"] = serde_json::json!([4, 5, 6, 7, 8, 9])), "dnd"),
            (q(&|v| v["addons"] = serde_json::json!(["A", "A"])), "addons"),
            (
                q(&|v| v["family"] = serde_json::json!({"group_id": "F1", "members": 1})),
                "family",
            ),
            (
                q(&|v| v.as_object_mut().unwrap().remove("joined_on").map(drop).unwrap_or(())),
                "joined_on",
            ),
        ];
        for (p, field) in cases {
            assert_eq!(p.field, field, "{p:?}");
            for secret in [EMAIL, PHONE, NAME, "kim.minjun"] {
                assert!(!p.reason.contains(secret), "{p:?}");
            }
        }
        let e = check_customer_line(b"{not json", QuietWindow::default_korea()).unwrap_err();
        assert_eq!(e.field, "line");
        let long = vec![b'x'; MAX_LINE_BYTES + 1];
        assert_eq!(
            check_customer_line(&long, QuietWindow::default_korea())
                .unwrap_err()
                .field,
            "line"
        );
    }

    #[test]
    fn phone_and_email_formats() {
        for ok in ["010-1234-5678", "01012345678", "+82 10-1234-5678", "(02) 345-6789"] {
            assert!(is_phone(ok), "{ok}");
        }
        for bad in ["", "010", "phone", "010-1234-5678 ext 9", "+", "1234567890123456"] {
            assert!(!is_phone(bad), "{bad}");
        }
        for ok in [EMAIL, "a@b.co"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in ["", "a@b", "@b.co", "a@@b.co", "a b@c.co", "a@b..co"] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
