//! Rating snapshots: the billing attributes of a shard's customers exactly as a settlement
//! rated them, kept beside the usage file (`snapshots/{cycle}/shard-{nnnnn}.jsonl`, one
//! customer per line, in customer-id order).
//!
//! The customers table holds each customer as they are now; a closed month must be re-priced
//! (shadow re-pricing) and re-rated (a correction) from what it was billed on. SettleShard writes
//! the snapshot with the bills, one `PutObject` per shard, overwritten with the same content
//! by a re-run. A snapshot holds no contact data, and of the birthday only its month (the one
//! thing the rules read of it): a customer's birthday is stored as the first day of that month in
//! year 2000.
//!
//! [`load_shard_inputs`] gives what a shard was rated on: the snapshot when there is one, else
//! the customers table as it is now (a month settled before snapshots existed), saying which.

use chrono::{Datelike, NaiveDate};
use domain::{CustomerError, CustomerRecord, Cycle};
use serde::Serialize;

use crate::StoreError;
use crate::customers::CustomerStore;
use crate::data_bucket::{DataBucket, usage_key};

/// A customer as rating sees it: every billing attribute, no contact data.
pub type RatingCustomer = CustomerRecord<()>;

/// The object key of a shard's rating snapshot.
pub fn snapshot_key(cycle: Cycle, shard: u32) -> String {
    format!("snapshots/{cycle}/shard-{shard:05}.jsonl")
}

/// What a snapshot keeps of a customer: no contact data, the birthday reduced to its month.
pub fn rating_customer<C>(c: &CustomerRecord<C>) -> RatingCustomer {
    let mut r = c.with_contact(());
    r.birthday = birth_month(c.birthday);
    r
}

fn birth_month(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, d.month(), 1).unwrap_or(d)
}

/// The snapshot document: one JSON line per customer, in the order given.
pub fn encode<'a>(customers: impl IntoIterator<Item = &'a RatingCustomer>) -> Vec<u8> {
    let mut out = Vec::new();
    for c in customers {
        // A customer record holds strings, numbers, dates and enums: it always serialises.
        if serde_json::to_writer(&mut out, c).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// The snapshot document of `customers` as rated, in the order given.
pub fn document<C>(customers: &[CustomerRecord<C>]) -> Vec<u8> {
    let rating: Vec<RatingCustomer> = customers.iter().map(rating_customer).collect();
    encode(&rating)
}

/// Reads a snapshot document; an unreadable line names the object and the line.
pub fn decode(bytes: &[u8], resource: &str) -> Result<Vec<RatingCustomer>, StoreError> {
    let text = std::str::from_utf8(bytes).map_err(|e| StoreError::Decode {
        resource: resource.to_owned(),
        what: "rating snapshot".into(),
        message: e.to_string(),
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| StoreError::Decode {
                resource: resource.to_owned(),
                what: format!("rating snapshot line {}", i + 1),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Where a shard's rating inputs came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputsSource {
    /// The snapshot the settlement wrote: exactly what the month was billed on.
    Snapshot,
    /// No snapshot: the customers table as it is now (a customer changed since may differ).
    LiveCustomers,
}

/// What a shard of a settled month was rated on.
#[derive(Debug)]
pub struct ShardInputs {
    pub customers: Vec<RatingCustomer>,
    /// Customer records of the table that do not read (only with [`InputsSource::LiveCustomers`]).
    pub errors: Vec<CustomerError>,
    /// The usage file, `None` when there is none.
    pub usage: Option<Vec<u8>>,
    /// Its key, for error messages.
    pub usage_key: String,
    pub source: InputsSource,
}

impl DataBucket {
    /// Writes a shard's rating snapshot, a [`document`].
    pub async fn put_snapshot(&self, cycle: Cycle, shard: u32, document: Vec<u8>) -> Result<(), StoreError> {
        self.put_bytes(&snapshot_key(cycle, shard), document, "application/x-ndjson")
            .await
    }

    /// A shard's rating snapshot, `None` when the shard has none.
    pub async fn get_snapshot(&self, cycle: Cycle, shard: u32) -> Result<Option<Vec<RatingCustomer>>, StoreError> {
        let key = snapshot_key(cycle, shard);
        match self.get_bytes(&key).await? {
            Some(bytes) => decode(&bytes, &format!("s3://{}/{key}", self.bucket())).map(Some),
            None => Ok(None),
        }
    }
}

/// The inputs a shard of `cycle` was rated on: its snapshot (or, without one, the customers
/// table as it is now) and its usage file, read concurrently.
pub async fn load_shard_inputs(
    bucket: &DataBucket,
    customers: &CustomerStore,
    cycle: Cycle,
    shard: u32,
) -> Result<ShardInputs, StoreError> {
    let (snapshot, usage) = tokio::try_join!(bucket.get_snapshot(cycle, shard), bucket.get(cycle, shard))?;
    let (customers, errors, source) = match snapshot {
        Some(s) => (s, Vec::new(), InputsSource::Snapshot),
        None => {
            let live = customers.shard(shard).await?;
            (
                live.customers.iter().map(rating_customer).collect(),
                live.errors,
                InputsSource::LiveCustomers,
            )
        }
    };
    Ok(ShardInputs {
        customers,
        errors,
        usage,
        usage_key: usage_key(cycle, shard),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_no_contact_and_only_the_birth_month_and_reads_back() {
        let keys = domain::pii::Keyring::dev();
        let id = domain::CustomerId::new("C0000001").unwrap();
        let line = serde_json::json!({
            "customer_id": "C0000001", "shard": 3, "plan": "5G_STANDARD", "addons": ["MUSIC"],
            "birthday": "1990-11-23", "joined_on": "2020-01-05", "send_day": 10,
            "preferred_channel": "email",
            "contact": domain::Contact::seal(&keys, &id, "김민수", "kim@example.com", "010-1234-5678"),
        });
        let customer: domain::Customer = serde_json::from_value(line).unwrap();
        let r = rating_customer(&customer);
        let doc = encode([&r]);
        let text = String::from_utf8(doc.clone()).unwrap();
        assert!(
            !text.contains("1990") && !text.contains("sealed") && text.contains("\"contact\":null"),
            "{text}"
        );
        assert_eq!(r.birthday.month(), 11);
        let back = decode(&doc, "s3://b/k").unwrap();
        assert_eq!(back, vec![r]);
        let e = decode(b"{\"customer_id\": 1}\n", "s3://b/k").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
