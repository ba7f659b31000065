//! The customers table: key (`shard` N, `customer_id` S), one item per
//! customer, a keys-only index `ByCustomerId` for look-ups by id.
//!
//! **Preferences set by the customer.** A customer's own preferences (do-not-disturb slots,
//! send day, preferred channel, contact data), set through the admin API, are written by
//! [`CustomerStore::preferences_update`] together with the item attribute
//! [`PREFERENCES_UPDATED_AT`] (RFC 3339, UTC), which ingest honours: an upload older than it
//! keeps those four fields. The attribute is not a field of [`Customer`] (whose decoding
//! ignores it). Contact data arrives in clear and is checked here ([`check_name`],
//! [`check_email`], [`check_phone`]: the error names the field, never the value) before it is
//! sealed.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, Update};
use chrono::{DateTime, SecondsFormat, Utc};
use domain::{Channel, Contact, Customer, CustomerError, SendDay, SlotSet};

use crate::dynamo::{BatchStats, Item, attr_s, batch_put, get_item, put_new, query_all};
use crate::retry::Backoff;
use crate::{PutOutcome, StoreError};

pub const BY_CUSTOMER_ID: &str = "ByCustomerId";

/// The item attribute naming when the customer last set their preferences (RFC 3339, UTC).
pub const PREFERENCES_UPDATED_AT: &str = "preferences_updated_at";

/// The attributes a preference change writes, [`PREFERENCES_UPDATED_AT`] included.
pub const PREFERENCE_ATTRIBUTES: [&str; 5] = [
    "dnd",
    "send_day",
    "preferred_channel",
    "contact",
    PREFERENCES_UPDATED_AT,
];

/// Longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest email address accepted, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// A contact value that is not of its field's form. Names the field and the rule, never the
/// value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct ContactFormatError {
    /// `contact.name`, `contact.email` or `contact.phone`.
    pub field: &'static str,
    pub problem: &'static str,
}

fn bad(field: &'static str, problem: &'static str) -> ContactFormatError {
    ContactFormatError { field, problem }
}

/// A name: 1 to [`MAX_NAME_CHARS`] characters, no control characters, not blank.
pub fn check_name(name: &str) -> Result<(), ContactFormatError> {
    let field = "contact.name";
    if name.trim().is_empty() {
        return Err(bad(field, "is empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad(field, "is longer than 100 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad(field, "holds a control character"));
    }
    Ok(())
}

/// An email address: `local@domain`, at most [`MAX_EMAIL_BYTES`]; the local part 1 to 64 of
/// letters, digits and ``!#$%&'*+/=?^_`{|}~.-`` (no leading, trailing or double dot); the
/// domain two or more dot-separated labels of letters, digits and `-` (not at either end),
/// the last one letters only.
pub fn check_email(email: &str) -> Result<(), ContactFormatError> {
    let field = "contact.email";
    let shape = "is not an email address (local-part@domain)";
    if email.len() > MAX_EMAIL_BYTES {
        return Err(bad(field, "is longer than 254 bytes"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(bad(field, shape));
    };
    let local_ok = (1..=64).contains(&local.len())
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(bad(field, shape))
    }
}

/// A phone number as Korean numbers are written: `0` first (`010-1234-5678`, `02 123 4567`)
/// or `+` and a country code (`+82 10-1234-5678`), then digits with `-`, `.`, spaces or
/// brackets between them; 9 to 15 digits in all.
pub fn check_phone(phone: &str) -> Result<(), ContactFormatError> {
    let field = "contact.phone";
    let rest = phone.strip_prefix('+').unwrap_or(phone);
    let chars_ok = rest
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | ' ' | '(' | ')'));
    let first_digit = rest.chars().find(char::is_ascii_digit);
    let starts_ok = phone.starts_with('+') || first_digit == Some('0');
    let digits = rest.chars().filter(char::is_ascii_digit).count();
    if !chars_ok || !starts_ok {
        return Err(bad(
            field,
            "is not a phone number (0 or + and a country code first, then digits with '-', '.', spaces or brackets)",
        ));
    }
    if !(9..=15).contains(&digits) {
        return Err(bad(field, "must hold 9 to 15 digits"));
    }
    Ok(())
}

/// A customer as stored: the record, and the item it was read from (a preference change is
/// conditioned on the item's preference attributes as read).
#[derive(Clone, Debug)]
pub struct StoredCustomer {
    pub customer: Customer,
    pub item: Item,
}

impl StoredCustomer {
    /// When the customer last set their preferences.
    pub fn preferences_updated_at(&self) -> Option<&str> {
        attr_s(&self.item, PREFERENCES_UPDATED_AT)
    }
}

/// A customer's preferences, all four as they are to be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preferences {
    pub dnd: SlotSet,
    pub send_day: SendDay,
    pub preferred_channel: Channel,
    pub contact: Contact,
}

#[derive(Clone, Debug)]
pub struct CustomerStore {
    client: Client,
    table: String,
}

/// A shard's customers as read from the store: the good records and an
/// error for every item that could not be decoded (naming its id).
#[derive(Debug, Default)]
pub struct ShardCustomers {
    pub customers: Vec<Customer>,
    pub errors: Vec<CustomerError>,
    /// `Query` pages read (for cost accounting).
    pub pages: usize,
}

impl CustomerStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        CustomerStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn to_item(&self, c: &Customer) -> Result<Item, StoreError> {
        serde_dynamo::to_item(c).map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("customer {}", c.customer_id),
            message: e.to_string(),
        })
    }

    fn decode(item: Item) -> Result<Customer, CustomerError> {
        let id = attr_s(&item, "customer_id").unwrap_or("?").to_owned();
        crate::dynamo::decode_item(item).map_err(|e| CustomerError::new(id, format!("stored record is invalid: {e}")))
    }

    /// Writes customers (creating or replacing), 25 per request.
    pub async fn put_all(&self, customers: &[Customer]) -> Result<BatchStats, StoreError> {
        let items = customers
            .iter()
            .map(|c| self.to_item(c))
            .collect::<Result<Vec<_>, _>>()?;
        batch_put(&self.client, &self.table, items, 4, Backoff::default()).await
    }

    /// Creates a customer unless one with the same key exists.
    pub async fn put_new(&self, customer: &Customer) -> Result<PutOutcome, StoreError> {
        put_new(&self.client, &self.table, self.to_item(customer)?, "customer_id").await
    }

    /// Every customer of a shard, in customer-id order (the sort key).
    pub async fn shard(&self, shard: u32) -> Result<ShardCustomers, StoreError> {
        let req = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", "shard")
            .expression_attribute_values(":s", AttributeValue::N(shard.to_string()));
        let result = query_all(req, &self.table).await?;
        let mut out = ShardCustomers {
            pages: result.pages,
            ..Default::default()
        };
        for item in result.items {
            match Self::decode(item) {
                Ok(c) => out.customers.push(c),
                Err(e) => out.errors.push(e),
            }
        }
        Ok(out)
    }

    /// One customer by id, through the `ByCustomerId` index. `Ok(None)` if
    /// there is no such customer.
    pub async fn get(&self, customer_id: &str) -> Result<Option<Result<Customer, CustomerError>>, StoreError> {
        Ok(self.item(customer_id, false).await?.map(Self::decode))
    }

    /// One customer by id with the item as stored, read consistently (after the index's
    /// look-up): what a preference change starts from. `Ok(None)` if there is no such customer.
    pub async fn stored(&self, customer_id: &str) -> Result<Option<Result<StoredCustomer, CustomerError>>, StoreError> {
        Ok(self
            .item(customer_id, true)
            .await?
            .map(|item| Self::decode(item.clone()).map(|customer| StoredCustomer { customer, item })))
    }

    /// The item of a customer found by id through the `ByCustomerId` index.
    async fn item(&self, customer_id: &str, consistent: bool) -> Result<Option<Item>, StoreError> {
        let keys = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_CUSTOMER_ID)
            .key_condition_expression("customer_id = :c")
            .expression_attribute_values(":c", AttributeValue::S(customer_id.to_owned()))
            .limit(1)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query", &self.table, e))?;
        let Some(key) = keys.items.unwrap_or_default().into_iter().next() else {
            return Ok(None);
        };
        let (Some(shard), Some(id)) = (key.get("shard").cloned(), key.get("customer_id").cloned()) else {
            return Ok(None);
        };
        get_item(
            &self.client,
            &self.table,
            [("shard", shard), ("customer_id", id)],
            consistent,
        )
        .await
    }

    /// The write of a customer's new preferences `new` and [`PREFERENCES_UPDATED_AT`] = `now`,
    /// as a transaction item (the admin API writes it with the command's record and the
    /// customer's deliveries). Its condition: the customer exists and its preference
    /// attributes (the four and [`PREFERENCES_UPDATED_AT`]) are still as `seen` read them, so
    /// a change made meanwhile (another command, an ingest) refuses it instead of being
    /// overwritten unseen.
    pub fn preferences_update(
        &self,
        seen: &StoredCustomer,
        new: &Preferences,
        now: DateTime<Utc>,
    ) -> Result<Update, StoreError> {
        let encode = |what: &str, v: Result<AttributeValue, serde_dynamo::Error>| {
            v.map_err(|e| StoreError::Decode {
                resource: self.table.clone(),
                what: format!("customer {} {what}", seen.customer.customer_id),
                message: e.to_string(),
            })
        };
        let values = [
            encode("dnd", serde_dynamo::to_attribute_value(new.dnd))?,
            AttributeValue::N(new.send_day.get().to_string()),
            AttributeValue::S(new.preferred_channel.as_str().to_owned()),
            encode("contact", serde_dynamo::to_attribute_value(&new.contact))?,
            AttributeValue::S(now.to_rfc3339_opts(SecondsFormat::Millis, true)),
        ];
        let mut sets = Vec::new();
        let mut condition = vec!["attribute_exists(customer_id)".to_owned()];
        let mut u = Update::builder()
            .table_name(&self.table)
            .key("shard", AttributeValue::N(seen.customer.shard.to_string()))
            .key(
                "customer_id",
                AttributeValue::S(seen.customer.customer_id.as_str().to_owned()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (i, (name, value)) in PREFERENCE_ATTRIBUTES.iter().zip(values).enumerate() {
            u = u
                .expression_attribute_names(format!("#p{i}"), *name)
                .expression_attribute_values(format!(":new{i}"), value);
            sets.push(format!("#p{i} = :new{i}"));
            match seen.item.get(*name) {
                Some(old) => {
                    condition.push(format!("#p{i} = :old{i}"));
                    u = u.expression_attribute_values(format!(":old{i}"), old.clone());
                }
                None => condition.push(format!("attribute_not_exists(#p{i})")),
            }
        }
        u.update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(condition.join(" AND "))
            .build()
            .map_err(|e| StoreError::Decode {
                resource: self.table.clone(),
                what: "customer preferences update".into(),
                message: e.to_string(),
            })
    }

    /// One customer by shard and id: a single `GetItem` (a delivery knows
    /// its customer's shard). `Ok(None)` if there is no such customer.
    pub async fn get_in_shard(
        &self,
        shard: u32,
        customer_id: &str,
    ) -> Result<Option<Result<Customer, CustomerError>>, StoreError> {
        let key = [
            ("shard", AttributeValue::N(shard.to_string())),
            ("customer_id", AttributeValue::S(customer_id.to_owned())),
        ];
        Ok(get_item(&self.client, &self.table, key, false).await?.map(Self::decode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_formats_are_checked_and_errors_name_the_field_never_the_value() {
        for ok in [
            "kim.minjun+bills@example-mail.co.kr",
            "a@b.kr",
            "o'neil@mail.example.com",
        ] {
            assert_eq!(check_email(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "kim",
            "kim@",
            "@example.com",
            "kim@example",
            "kim@@example.com",
            "kim min@example.com",
            ".kim@example.com",
            "kim..min@example.com",
            "kim@-example.com",
            "kim@example.c0m",
            "kim@example..com",
        ] {
            let e = check_email(bad).unwrap_err();
            assert_eq!(e.field, "contact.email");
            assert!(bad.is_empty() || !e.to_string().contains(bad), "{e}");
        }
        assert!(check_email(&format!("{}@example.com", "k".repeat(65))).is_err());
        assert!(check_email(&format!("k@{}.com", "e".repeat(250))).is_err());
        for ok in [
            "010-1234-5678",
            "01012345678",
            "02 123 4567",
            "+82 10-1234-5678",
            "(02) 123-4567",
        ] {
            assert_eq!(check_phone(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "1234-5678",
            "010-1234",
            "010-1234-5678-9999-1",
            "010 l234 5678",
            "+",
            "kim@example.com",
        ] {
            let e = check_phone(bad).unwrap_err();
            assert_eq!(e.field, "contact.phone");
            assert!(bad.is_empty() || !e.to_string().contains(bad), "{e}");
        }
        assert_eq!(check_name("김민수"), Ok(()));
        for bad in [" ", "kim\nlee", &"가".repeat(101)] {
            assert_eq!(check_name(bad).unwrap_err().field, "contact.name");
        }
    }
}
