//! The money side of a shard's deliveries: the total each delivery states, read back for
//! reconciliation (its sum must equal the sum of the shard's bills).

use domain::Cycle;

use super::DeliveryStore;
use crate::StoreError;
use crate::bills::ShardAmounts;

impl DeliveryStore {
    /// The total of every delivery of a shard as stored, in customer-id order: one
    /// consistent `Query` (paginated) projecting `customer_id` and `total`.
    pub async fn totals(&self, cycle: Cycle, shard: u32) -> Result<ShardAmounts, StoreError> {
        crate::bills::shard_amounts(&self.client, &self.table, cycle, shard).await
    }
}
