//! The shard items of the cycles table: each shard's settlement result and
//! its rendering, written through the gate.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use domain::Cycle;

use super::{CycleStore, Gated, MAX_SHARD_ERRORS, RenderRecord, ShardRecord, decode, encode, s, shard_item};
use crate::StoreError;
use crate::dynamo::{get_item, query_all};

impl CycleStore {
    pub async fn get_shard(&self, cycle: Cycle, shard: u32) -> Result<Option<ShardRecord>, StoreError> {
        let got = get_item(&self.client, &self.table, Self::key(cycle, shard_item(shard)), true).await?;
        got.map(|mut item| {
            item.remove("cycle");
            item.remove("item");
            decode(&self.table, &format!("cycle {cycle} shard {shard}"), item)
        })
        .transpose()
    }

    /// Writes a shard's record (the latest state wins; shard results are
    /// deterministic for a catalog version, so any two writers agree), if
    /// `rec.run_id` may write the cycle: one transaction with the gate.
    /// Never [`Gated::Stale`]. The record's errors are bounded on the way in
    /// (at most [`MAX_SHARD_ERRORS`] of [`domain::text::MAX_REASON_BYTES`]).
    pub async fn put_shard(&self, cycle: Cycle, rec: &ShardRecord) -> Result<Gated, StoreError> {
        let mut rec = rec.clone();
        rec.errors.truncate(MAX_SHARD_ERRORS);
        for e in &mut rec.errors {
            if e.len() > domain::text::MAX_REASON_BYTES {
                *e = domain::text::reason(e);
            }
        }
        let mut item = encode(&self.table, "shard record", &rec)?;
        item.insert("cycle".into(), s(cycle.to_string()));
        item.insert("item".into(), s(shard_item(rec.shard)));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(|e| self.build_error("shard record", e))?;
        self.gated(cycle, &rec.run_id, TransactWriteItem::builder().put(put).build())
            .await
    }

    /// Records a shard's rendering on its shard record, if `run_id` may
    /// write the cycle ([`Gated::NotOwned`] if not) and the record is still
    /// the settled one the render read (same digest): a settlement that
    /// rewrote the bills meanwhile makes this a no-op ([`Gated::Stale`]).
    pub async fn put_render(
        &self,
        cycle: Cycle,
        run_id: &str,
        shard: u32,
        render: &RenderRecord,
    ) -> Result<Gated, StoreError> {
        let value = serde_dynamo::to_attribute_value(render)
            .map_err(|e| self.build_error(&format!("render record of shard {shard}"), e))?;
        let update = Update::builder()
            .table_name(&self.table)
            .key("cycle", s(cycle.to_string()))
            .key("item", s(shard_item(shard)))
            .update_expression("SET #r = :r")
            .condition_expression("#st = :done AND digest = :digest")
            .expression_attribute_names("#r", "render")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":r", value)
            .expression_attribute_values(":done", s("DONE"))
            .expression_attribute_values(":digest", s(&render.bills_digest))
            .build()
            .map_err(|e| self.build_error("render record", e))?;
        self.gated(cycle, run_id, TransactWriteItem::builder().update(update).build())
            .await
    }

    /// Every shard record of a cycle, by shard number.
    pub async fn shards(&self, cycle: Cycle) -> Result<HashMap<u32, ShardRecord>, StoreError> {
        let req = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#c = :c AND begins_with(#i, :p)")
            .expression_attribute_names("#c", "cycle")
            .expression_attribute_names("#i", "item")
            .expression_attribute_values(":c", s(cycle.to_string()))
            .expression_attribute_values(":p", s("SHARD#"))
            .consistent_read(true);
        let mut out = HashMap::new();
        for mut item in query_all(req, &self.table).await?.items {
            item.remove("cycle");
            let what = item
                .remove("item")
                .and_then(|v| v.as_s().ok().cloned())
                .unwrap_or_default();
            let rec: ShardRecord = decode(&self.table, &format!("cycle {cycle} {what}"), item)?;
            out.insert(rec.shard, rec);
        }
        Ok(out)
    }
}
