//! The customers table: key (`shard` N, `customer_id` S), one item per
//! customer, a keys-only index `ByCustomerId` for look-ups by id.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use domain::{Customer, CustomerError};

use crate::dynamo::{BatchStats, Item, attr_s, batch_put, get_item, put_new, query_all};
use crate::retry::Backoff;
use crate::{PutOutcome, StoreError};

pub const BY_CUSTOMER_ID: &str = "ByCustomerId";

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
        let got = get_item(
            &self.client,
            &self.table,
            [("shard", shard), ("customer_id", id)],
            false,
        )
        .await?;
        Ok(got.map(Self::decode))
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
