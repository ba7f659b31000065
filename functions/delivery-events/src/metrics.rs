//! The invocation's metrics: one CloudWatch Embedded Metric Format line per
//! channel the batch held (namespace [`NAMESPACE`], dimensions `Stack` and
//! `Channel`, as the senders'). Counts only; never an id or anything
//! personal. Records that do not parse have no channel: they are counted
//! under `Channel` [`NO_CHANNEL`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::Channel;

pub const NAMESPACE: &str = "BillingPlatform/Delivery";

/// The `Channel` dimension of records that name none (they do not parse).
pub const NO_CHANNEL: &str = "unknown";

/// What is counted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Count {
    /// A delivery receipt applied (`DELIVERED`).
    Delivered = 0,
    /// A permanent bounce, a reject, a permanent SMS failure applied (`BOUNCED`).
    Bounced,
    /// A complaint applied (`COMPLAINED`).
    Complained,
    /// A soft bounce SES gave up on, an undetermined one, or an SMS failure that may pass.
    TransientBounces,
    /// An SES delivery delay.
    Delayed,
    /// A bounced email's invoice sent on to SMS.
    EvidenceFallbacks,
    /// An event that names no delivery, a missing or never-sent one, or that does not parse.
    UnknownEvidence,
    /// A contact newly on the suppression list.
    SuppressedContacts,
}

/// The metric names, in [`Count`] order.
pub const NAMES: [&str; 8] = [
    "Delivered",
    "Bounced",
    "Complained",
    "TransientBounces",
    "Delayed",
    "EvidenceFallbacks",
    "UnknownEvidence",
    "SuppressedContacts",
];

/// The counts of one record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// The event's channel (`None`: it did not parse).
    pub channel: Option<Channel>,
    pub counts: [u64; 8],
}

impl Tally {
    pub fn new(channel: Channel) -> Self {
        Tally {
            channel: Some(channel),
            counts: [0; 8],
        }
    }

    /// A record that does not parse: unknown evidence, no channel.
    pub fn unparsed() -> Self {
        let mut t = Tally::default();
        t.add(Count::UnknownEvidence);
        t
    }

    pub fn add(&mut self, c: Count) {
        self.counts[c as usize] += 1;
    }

    pub fn get(&self, c: Count) -> u64 {
        self.counts[c as usize]
    }
}

/// The counts of an invocation, per `Channel` dimension.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvidenceReport {
    /// Records in the batch.
    pub records: u64,
    /// Records handed back to be tried again.
    pub retried: u64,
    pub by_channel: BTreeMap<&'static str, [u64; 8]>,
}

impl EvidenceReport {
    pub fn add(&mut self, t: &Tally, retried: bool) {
        self.records += 1;
        if retried {
            self.retried += 1;
        }
        let key = t.channel.map_or(NO_CHANNEL, Channel::as_str);
        let counts = self.by_channel.entry(key).or_default();
        for (sum, n) in counts.iter_mut().zip(t.counts) {
            *sum += n;
        }
    }

    /// The total of `c` over every channel.
    pub fn total(&self, c: Count) -> u64 {
        self.by_channel.values().map(|v| v[c as usize]).sum()
    }

    /// One EMF document per channel.
    pub fn emf_lines(&self, stack: &str, at: DateTime<Utc>) -> Vec<String> {
        self.by_channel
            .iter()
            .map(|(channel, counts)| {
                let metrics: Vec<(&'static str, u64)> = NAMES.iter().copied().zip(counts.iter().copied()).collect();
                runtime::emf::line(
                    NAMESPACE,
                    &[("Stack", stack), ("Channel", channel)],
                    &metrics,
                    at.timestamp_millis(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn one_document_per_channel_with_every_metric() {
        let mut r = EvidenceReport::default();
        let mut bounce = Tally::new(Channel::Email);
        bounce.add(Count::Bounced);
        bounce.add(Count::EvidenceFallbacks);
        r.add(&bounce, false);
        r.add(&Tally::new(Channel::Sms), true);
        r.add(&Tally::unparsed(), false);
        assert_eq!((r.records, r.retried, r.total(Count::UnknownEvidence)), (3, 1, 1));
        let lines = r.emf_lines("billing-prod", DateTime::UNIX_EPOCH);
        assert_eq!(lines.len(), 3);
        let email: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            (&email["Channel"], &email["Stack"]),
            (&Value::from("email"), &Value::from("billing-prod"))
        );
        assert_eq!(email["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        for name in NAMES {
            assert!(email[name].is_u64(), "{name}");
        }
        assert_eq!(
            (email["Bounced"].as_u64(), email["EvidenceFallbacks"].as_u64()),
            (Some(1), Some(1))
        );
    }
}
