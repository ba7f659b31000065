//! Data the benchmarks write straight into a provisioned stack: a settled cycle and its
//! `READY` deliveries, as settlement and rendering would have left them.

use adapters::cycles::{CycleRecord, CycleStatus};
use adapters::deliveries::DeliveryStore;
use adapters::dynamo::{batch_put, item_size};
use adapters::retry::Backoff;
use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use domain::delivery::{Delivery, DeliveryContent};
use domain::{Channel, CustomerId, Cycle, Krw, SendDay, SlotSet};
use local_aws::Resources;

/// `cycle` settled by `run_id` with `deliveries` bills in shards of `shard_size`.
pub async fn settled_cycle(
    sdk: &SdkConfig,
    resources: &Resources,
    cycle: Cycle,
    (deliveries, shard_size): (u32, u32),
    run_id: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let env = resources.function_env(crate::dispatch::DISPATCH);
    let table = env.get("CYCLES_TABLE").context("CYCLES_TABLE")?;
    let shards = deliveries.div_ceil(shard_size.max(1));
    let settled = CycleRecord {
        cycle,
        status: CycleStatus::Settled,
        run_id: run_id.into(),
        catalog_version: "2026-v1".into(),
        template_version: "v1".into(),
        cutoff: "2026-12-01T00:00:00+09:00".into(),
        shard_count: shards,
        manifest_key: String::new(),
        started_at: now.to_rfc3339(),
        finished_at: Some(now.to_rfc3339()),
        runs: 1,
        shards_done: shards,
        customers: u64::from(deliveries),
        bills: u64::from(deliveries),
        not_billable: 0,
        checksum: 0,
        reasons: Vec::new(),
    };
    let mut item: adapters::dynamo::Item = serde_dynamo::to_item(&settled)?;
    item.insert("item".into(), AttributeValue::S(adapters::cycles::CYCLE_ITEM.into()));
    adapters::dynamodb_client(sdk)
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .context("PutItem cycle")?;
    Ok(())
}

/// `n` `READY` deliveries of `cycle` in shards of `shard_size` (customers `C0000000`, …),
/// all with send day 15, no DND, one in five preferring SMS, items of the size rendering
/// writes. Returns the largest item's size in bytes.
pub async fn ready_deliveries(
    sdk: &SdkConfig,
    resources: &Resources,
    cycle: Cycle,
    n: u32,
    shard_size: u32,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let env = resources.function_env(crate::dispatch::DISPATCH);
    let table = env.get("DELIVERIES_TABLE").context("DELIVERIES_TABLE")?.clone();
    let ddb = adapters::dynamodb_client(sdk);
    let store = DeliveryStore::new(ddb.clone(), &table);
    let send_day = SendDay::new(15).map_err(anyhow::Error::msg)?;
    let mut items = Vec::with_capacity(n as usize);
    let mut size = 0;
    for i in 0..n {
        let customer = CustomerId::new(format!("C{i:07}")).map_err(|e| anyhow::anyhow!(e.reason))?;
        let content = DeliveryContent {
            email_range: None,
            template_version: "v1".into(),
            content_hash: format!("{:064x}", u128::from(i) * 7919),
            email_key: format!("invoices/{cycle}/{:05}/{customer}/v1.html", i / shard_size),
            subject: "[이동통신] 2026년 11월 이용요금 안내".into(),
            // A delivery as rendered before its SMS text went into the pack: an LMS of about
            // 250 bytes with the link placeholder, in the item.
            sms_text: format!("{}[[INVOICE_LINK]]", "요금 안내 ".repeat(14)),
            sms_range: None,
        };
        let channel = if i % 5 == 0 { Channel::Sms } else { Channel::Email };
        let d = Delivery::ready(
            cycle,
            i / shard_size,
            customer,
            send_day,
            SlotSet::EMPTY,
            channel,
            Krw(45_000 + i64::from(i % 50_000)),
            content,
            now,
        );
        let encoded = store.encode(&d)?;
        size = size.max(item_size(&encoded));
        items.push(encoded);
    }
    batch_put(&ddb, &table, items, 4, Backoff::default()).await?;
    Ok(size)
}

/// A fresh stack on the shared emulator holding a settled `cycle` and its `READY` deliveries
/// (see [`ready_deliveries`]), for a benchmark named `name`.
pub struct MonthStack {
    pub emulator: &'static local_aws::Emulator,
    pub config: SdkConfig,
    /// The stack's resource prefix (what the emulator's request counts filter on).
    pub prefix: String,
    pub resources: Resources,
    /// The largest delivery item, in bytes.
    pub item_size: usize,
    /// How long writing the deliveries took.
    pub load_time: std::time::Duration,
}

pub async fn month_stack(name: &str, cycle: Cycle, deliveries: u32, shard_size: u32) -> anyhow::Result<MonthStack> {
    let emulator = local_aws::Emulator::shared().await?;
    let config = emulator.sdk_config().await;
    let prefix = local_aws::unique_prefix(name);
    let resources = local_aws::provision(&config, &prefix).await?;
    let now = Utc::now();
    settled_cycle(&config, &resources, cycle, (deliveries, shard_size), name, now).await?;
    let t = std::time::Instant::now();
    let item_size = ready_deliveries(&config, &resources, cycle, deliveries, shard_size, now).await?;
    Ok(MonthStack {
        emulator,
        config,
        prefix,
        resources,
        item_size,
        load_time: t.elapsed(),
    })
}
