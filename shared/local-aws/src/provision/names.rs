//! Physical names: `{prefix}-{LogicalId}` made valid for each service, and unique prefixes.

use std::hash::{BuildHasher, Hasher};

use crate::emulator::{ACCOUNT_ID, REGION};

/// The ARN of a Lambda function in the emulator's region and account:
/// `arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}`.
pub fn function_arn(function_name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}")
}

/// A stand-in function URL of the shape AWS gives one,
/// `https://{32 lowercase letters and digits}.lambda-url.{REGION}.on.aws/`, the same for the same
/// function name.
pub(crate) fn function_url(function_name: &str) -> String {
    let id: String = (0..4u8)
        .map(|i| {
            let mut h =
                std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
            h.write_u8(i);
            h.write(function_name.as_bytes());
            format!("{:08x}", h.finish() as u32)
        })
        .collect();
    format!("https://{id}.lambda-url.{REGION}.on.aws/")
}

/// Lowercase letters, digits and single hyphens, at most `max` characters, never empty.
pub(super) fn slug(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.truncate(max);
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() {
        "x".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn short_hash(text: &str) -> String {
    // A fixed-key hash: the same logical id always shortens to the same name.
    let mut h = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
    h.write(text.as_bytes());
    format!("{:08x}", h.finish() as u32)
}

/// Fit `{prefix}-{rest}` into `max` characters; when it does not fit, the tail of `rest`
/// is replaced by a hash of it so that names stay distinct.
fn fit(prefix: &str, rest: &str, max: usize) -> String {
    let full = format!("{prefix}-{rest}");
    if full.len() <= max {
        return full;
    }
    let hash = short_hash(rest);
    let room = max.saturating_sub(prefix.len() + hash.len() + 2);
    let head: String = rest.chars().take(room).collect();
    let head = head.trim_end_matches(['-', '.', '_']);
    if head.is_empty() {
        format!("{prefix}-{hash}")
    } else {
        format!("{prefix}-{head}-{hash}")
    }
}

/// DynamoDB: `[a-zA-Z0-9_.-]`, 3–255 characters.
pub(crate) fn table_name(prefix: &str, logical_id: &str) -> String {
    let rest: String = logical_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    fit(prefix, &rest, 255)
}

/// S3: lowercase letters, digits and hyphens, 3–63 characters, starting with a letter or digit.
pub(crate) fn bucket_name(prefix: &str, logical_id: &str) -> String {
    fit(prefix, &slug(logical_id, 63), 63)
}

/// SQS: `[a-zA-Z0-9_-]`, at most 80 characters including a `.fifo` suffix.
#[cfg_attr(not(feature = "sqs"), allow(dead_code))]
pub(crate) fn queue_name(prefix: &str, logical_id: &str, fifo: bool) -> String {
    let rest: String = logical_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' })
        .collect();
    if fifo {
        format!("{}.fifo", fit(prefix, &rest, 75))
    } else {
        fit(prefix, &rest, 80)
    }
}

/// Lambda: `[a-zA-Z0-9_-]`, 1–64 characters.
pub(crate) fn function_name(prefix: &str, logical_id: &str) -> String {
    let rest: String = logical_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' })
        .collect();
    fit(prefix, &rest, 64)
}

/// Step Functions: `[a-zA-Z0-9_-]`, 1–80 characters.
#[cfg_attr(not(feature = "sfn"), allow(dead_code))]
pub(crate) fn state_machine_name(prefix: &str, logical_id: &str) -> String {
    let rest: String = logical_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' })
        .collect();
    fit(prefix, &rest, 80)
}

/// A prefix unique across processes and calls: the slug of `name` (at most 20 characters)
/// and a random suffix.
pub fn unique_prefix(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    let mut n = h.finish();
    let mut suffix = String::new();
    for _ in 0..8 {
        let d = (n % 36) as u32;
        suffix.push(char::from_digit(d, 36).unwrap_or('0'));
        n /= 36;
    }
    format!("{}-{suffix}", slug(name, 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_service_rules() {
        let prefix = unique_prefix("Settles a Cycle! twice");
        assert!(prefix.starts_with("settles-a-cycle-twic-"), "{prefix}");
        assert_eq!(prefix.len(), "settles-a-cycle-twic-".len() + 8);

        let b = bucket_name(&prefix, "DataBucket");
        assert_eq!(b, format!("{prefix}-databucket"));
        let long = bucket_name(&prefix, "AVeryLongLogicalIdForTheRenderedInvoicesBucketOfTheProject");
        assert!(long.len() <= 63, "{long}");
        assert!(
            long.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        );
        assert_ne!(
            long,
            bucket_name(&prefix, "AVeryLongLogicalIdForTheRenderedInvoicesBucketOfTheProjectB")
        );

        assert_eq!(table_name("p", "CustomersTable"), "p-CustomersTable");
        assert_eq!(queue_name("p", "EmailQueue", true), "p-EmailQueue.fifo");
        assert!(queue_name(&prefix, &"Q".repeat(100), true).len() <= 80);
        assert!(queue_name(&prefix, &"Q".repeat(100), false).len() <= 80);

        assert_eq!(function_name("p", "SettleShardFunction"), "p-SettleShardFunction");
        let long = function_name(&prefix, &"F".repeat(70));
        assert!(long.len() <= 64, "{long}");
        assert_ne!(long, function_name(&prefix, &"F".repeat(71)));
        assert!(state_machine_name(&prefix, &"S".repeat(100)).len() <= 80);
        assert_eq!(
            function_arn("p-F"),
            format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:p-F")
        );
    }

    #[test]
    fn prefixes_are_unique() {
        let a: std::collections::BTreeSet<_> = (0..1000).map(|_| unique_prefix("t")).collect();
        assert_eq!(a.len(), 1000);
    }

    #[test]
    fn slug_is_never_empty() {
        assert_eq!(slug("---", 10), "x");
        assert_eq!(slug("A__B", 10), "a-b");
    }
}
