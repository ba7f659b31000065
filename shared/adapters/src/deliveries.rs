//! The deliveries table: one item per bill, key (`pk` = `{cycle}#{shard:05}`,
//! `customer_id`) like the bills, so a shard's deliveries are one `Query`
//! away and a delivery id (`{cycle}#{shard:05}#{customer}`) names its key.
//!
//! The `Due` index (partition `due_pk` = `{cycle}#{bucket:02}`, sort
//! `available_at`) is sparse: only `READY` deliveries carry `due_pk`, so it
//! holds exactly what dispatch may pick, spread over
//! [`domain::delivery::DUE_BUCKETS`] partitions.
//!
//! Every write is conditional: creation only where nothing exists, a content
//! update only on a `READY` delivery whose content is what the caller read.
//! A re-render can therefore never reset a delivery that moved on.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::delivery::DeliveryContent;
use domain::{CustomerId, Cycle, Delivery, DeliveryState};

use crate::dynamo::{Item, attr_s, conditional_put, conditional_update, query_all};
use crate::{PutOutcome, StoreError};

pub fn partition_key(cycle: Cycle, shard: u32) -> String {
    format!("{cycle}#{shard:05}")
}

/// The due-index partition of a delivery.
pub fn due_key(cycle: Cycle, bucket: u32) -> String {
    format!("{cycle}#{bucket:02}")
}

/// What a shard's re-render needs to know about an existing delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    pub customer_id: String,
    pub state: String,
    pub content_hash: String,
    pub template_version: String,
}

impl Existing {
    pub fn is_ready(&self) -> bool {
        self.state == DeliveryState::Ready.as_str()
    }
}

/// Outcome of a content update.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    Updated,
    /// The delivery is no longer `READY` with the content read: left alone.
    Moved,
}

#[derive(Clone, Debug)]
pub struct DeliveryStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl DeliveryStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DeliveryStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The item of a delivery: its fields, the key and, while `READY`, the
    /// due-index partition.
    pub fn encode(&self, d: &Delivery) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(d).map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("delivery {}", d.id()),
            message: e.to_string(),
        })?;
        item.insert("pk".into(), s(partition_key(d.cycle, d.shard)));
        if d.state == DeliveryState::Ready {
            item.insert("due_pk".into(), s(due_key(d.cycle, d.due_bucket())));
        }
        Ok(item)
    }

    fn decode(&self, mut item: Item) -> Result<Delivery, StoreError> {
        let pk = attr_s(&item, "pk").unwrap_or_default().to_owned();
        let id = attr_s(&item, "customer_id").unwrap_or_default().to_owned();
        item.remove("pk");
        item.remove("due_pk");
        serde_dynamo::from_item(item).map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("delivery {pk}#{id}"),
            message: e.to_string(),
        })
    }

    /// Creates a delivery where none exists. `AlreadyExists` leaves the
    /// stored one untouched, whatever its state.
    pub async fn create(&self, d: &Delivery) -> Result<PutOutcome, StoreError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.encode(d)?))
            .condition_expression("attribute_not_exists(pk)");
        Ok(if conditional_put(req, &self.table).await? {
            PutOutcome::Created
        } else {
            PutOutcome::AlreadyExists
        })
    }

    /// Replaces the rendered content of a `READY` delivery whose content hash
    /// is still `expected_hash`. State, attempts, `available_at` and history
    /// are not touched.
    pub async fn update_content(
        &self,
        cycle: Cycle,
        shard: u32,
        customer: &CustomerId,
        expected_hash: &str,
        content: &DeliveryContent,
        now: DateTime<Utc>,
    ) -> Result<UpdateOutcome, StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(partition_key(cycle, shard)))
            .key("customer_id", s(customer.as_str()))
            .update_expression(
                "SET template_version = :v, content_hash = :h, email_key = :k, subject = :subj, \
                 sms_text = :sms, updated_at = :now",
            )
            .condition_expression("#st = :ready AND content_hash = :old")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":ready", s(DeliveryState::Ready.as_str()))
            .expression_attribute_values(":old", s(expected_hash))
            .expression_attribute_values(":v", s(&content.template_version))
            .expression_attribute_values(":h", s(&content.content_hash))
            .expression_attribute_values(":k", s(&content.email_key))
            .expression_attribute_values(":subj", s(&content.subject))
            .expression_attribute_values(":sms", s(&content.sms_text))
            .expression_attribute_values(":now", s(now.to_rfc3339_opts(SecondsFormat::Millis, true)));
        Ok(if conditional_update(req, &self.table).await? {
            UpdateOutcome::Updated
        } else {
            UpdateOutcome::Moved
        })
    }

    fn shard_query(
        &self,
        cycle: Cycle,
        shard: u32,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(partition_key(cycle, shard)))
    }

    /// The state and content hash of every delivery of a shard, in customer
    /// order (a projection: a few dozen bytes per delivery).
    pub async fn shard_summary(&self, cycle: Cycle, shard: u32) -> Result<Vec<Existing>, StoreError> {
        let req = self
            .shard_query(cycle, shard)
            .projection_expression("customer_id, #st, content_hash, template_version")
            .expression_attribute_names("#st", "state")
            .consistent_read(true);
        let result = query_all(req, &self.table).await?;
        Ok(result
            .items
            .iter()
            .map(|item| Existing {
                customer_id: attr_s(item, "customer_id").unwrap_or_default().to_owned(),
                state: attr_s(item, "state").unwrap_or_default().to_owned(),
                content_hash: attr_s(item, "content_hash").unwrap_or_default().to_owned(),
                template_version: attr_s(item, "template_version").unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// Every delivery of a shard, in customer order.
    pub async fn shard(&self, cycle: Cycle, shard: u32) -> Result<Vec<Delivery>, StoreError> {
        query_all(self.shard_query(cycle, shard), &self.table)
            .await?
            .items
            .into_iter()
            .map(|item| self.decode(item))
            .collect()
    }

    /// Number of deliveries stored for a shard (a `Select=COUNT` query).
    pub async fn count(&self, cycle: Cycle, shard: u32) -> Result<u64, StoreError> {
        let req = self
            .shard_query(cycle, shard)
            .select(aws_sdk_dynamodb::types::Select::Count);
        Ok(query_all(req, &self.table).await?.count)
    }

    /// One delivery.
    pub async fn get(&self, cycle: Cycle, shard: u32, customer: &CustomerId) -> Result<Option<Delivery>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(partition_key(cycle, shard)))
            .key("customer_id", s(customer.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", &self.table, e))?;
        got.item.map(|item| self.decode(item)).transpose()
    }
}
