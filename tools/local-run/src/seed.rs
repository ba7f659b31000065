//! Queued deliveries written straight into a provisioned stack, for the
//! senders' tests and benchmark: customers with sealed contact data (the
//! development keyring), one rendered invoice they all link to, `QUEUED`
//! deliveries, and their messages on the email and SMS queues.

use adapters::customers::CustomerStore;
use adapters::data_bucket::DataBucket;
use adapters::deliveries::DeliveryStore;
use adapters::dynamo::batch_put;
use adapters::queue::{DeliveryQueue, SEND_BATCH_LIMIT};
use adapters::retry::Backoff;
use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use domain::customer::{Contact, Customer};
use domain::delivery::{Delivery, DeliveryContent, DeliveryMessage};
use domain::{Channel, CustomerId, Cycle, Krw, SendDay, SlotSet};
use futures::{StreamExt, TryStreamExt, stream};
use local_aws::Resources;

/// What was seeded.
pub struct Seeded {
    pub cycle: Cycle,
    /// Delivery ids with the channel they were queued on.
    pub deliveries: Vec<(String, Channel)>,
    /// The contact data generated (for checks that it never leaks).
    pub emails: Vec<String>,
    pub phones: Vec<String>,
}

/// The cycle seeded deliveries belong to.
pub const SEED_CYCLE: &str = "2026-11";

/// `n` customers (`shard_size` a shard), every `sms_every`-th preferring
/// SMS, each with a `QUEUED` delivery and its message. `dnd` is every
/// customer's DND.
pub async fn seed_queued(
    sdk: &SdkConfig,
    resources: &Resources,
    n: u32,
    shard_size: u32,
    sms_every: u32,
    dnd: SlotSet,
) -> anyhow::Result<Seeded> {
    seed(sdk, resources, (n, shard_size), sms_every, dnd, true).await
}

/// As [`seed_queued`], but the deliveries are `READY` (due on the 15th of the month after
/// the cycle, in the `Due` index) and nothing is on the queues: what dispatch finds after
/// rendering.
pub async fn seed_ready(
    sdk: &SdkConfig,
    resources: &Resources,
    n: u32,
    shard_size: u32,
    sms_every: u32,
    dnd: SlotSet,
) -> anyhow::Result<Seeded> {
    seed(sdk, resources, (n, shard_size), sms_every, dnd, false).await
}

async fn seed(
    sdk: &SdkConfig,
    resources: &Resources,
    (n, shard_size): (u32, u32),
    sms_every: u32,
    dnd: SlotSet,
    queued: bool,
) -> anyhow::Result<Seeded> {
    let env = crate::settle::local_function_env(resources, crate::send::SEND_EMAIL);
    let var = |k: &str| env.get(k).cloned().with_context(|| format!("{k} is not in the stack"));
    let ddb = adapters::dynamodb_client(sdk);
    let sqs = adapters::sqs_client(sdk);
    // Sealed with the keyring the local stack's secret holds (local_aws::project_secrets):
    // `PII_KEYS` when set, else the development keyring.
    let keys = datagen::keyring_from_spec(std::env::var("PII_KEYS").ok().as_deref()).context("PII_KEYS")?;
    let cycle: Cycle = SEED_CYCLE.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = Utc::now();
    let send_day = SendDay::new(15).map_err(anyhow::Error::msg)?;

    // A settled cycle, so that dispatch picks up what senders defer.
    crate::bench::settled_cycle(sdk, resources, cycle, (n, shard_size), "seed", now).await?;

    // One invoice and one SMS text for everybody: what the senders read (email, SMS) or link to
    // (SMS), stored as render-shard stores them, a pack per shard (here of one bill's two
    // members, the same bytes).
    let bucket = DataBucket::new(adapters::s3_client(sdk), var("DATA_BUCKET")?);
    let html = "<!doctype html><html><body><h1>2026년 11월 청구서</h1><p>청구 금액 55,000원</p></body></html>";
    let mut pack = gzip(html.as_bytes())?;
    let email_range = domain::range::ByteRange::new(0, pack.len() as u64).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sms = gzip(format!("{}[[INVOICE_LINK]]", "요금 안내 ".repeat(10)).as_bytes())?;
    let sms_range =
        domain::range::ByteRange::new(pack.len() as u64, sms.len() as u64).map_err(|e| anyhow::anyhow!("{e}"))?;
    pack.extend_from_slice(&sms);
    let hash = adapters::data_bucket::sha256_hex(&pack);
    let pack_name = adapters::data_bucket::pack_name("v1", &hash);
    for shard in 0..n.div_ceil(shard_size.max(1)) {
        let key = adapters::data_bucket::pack_key(cycle, shard, &pack_name);
        bucket.put_invoice(&key, pack.clone(), &hash).await?;
    }

    let mut customers = Vec::with_capacity(n as usize);
    let mut items = Vec::with_capacity(n as usize);
    let mut seeded = Seeded {
        cycle,
        deliveries: Vec::with_capacity(n as usize),
        emails: Vec::with_capacity(n as usize),
        phones: Vec::with_capacity(n as usize),
    };
    let store = DeliveryStore::new(ddb.clone(), var("DELIVERIES_TABLE")?);
    let mut messages: [Vec<DeliveryMessage>; 2] = [Vec::new(), Vec::new()];
    for i in 0..n {
        let id = CustomerId::new(format!("C{i:07}")).map_err(|e| anyhow::anyhow!(e.reason))?;
        let shard = i / shard_size.max(1);
        let email = format!("seed.customer{i:07}@example.net");
        let phone = format!("010-{:04}-{:04}", 7000 + i / 10_000, i % 10_000);
        let channel = if sms_every > 0 && i % sms_every == 0 {
            Channel::Sms
        } else {
            Channel::Email
        };
        customers.push(Customer {
            customer_id: id.clone(),
            shard,
            plan: "5G-STANDARD".into(),
            addons: Vec::new(),
            family: None,
            contract: None,
            soldier: None,
            welfare: None,
            premium_contract: None,
            wired: vec![],
            birthday: NaiveDate::from_ymd_opt(1990, 1, 1).context("date")?,
            joined_on: NaiveDate::from_ymd_opt(2020, 1, 1).context("date")?,
            cancelled_on: None,
            send_day,
            dnd,
            preferred_channel: channel,
            contact: Contact::seal(&keys, &id, "김시드", &email, &phone),
        });
        let content = DeliveryContent {
            email_range: Some(email_range),
            template_version: "v1".into(),
            content_hash: format!("{:064x}", u128::from(i) * 7919),
            email_key: adapters::data_bucket::pack_key(cycle, shard, &pack_name),
            subject: "[이동통신] 2026년 11월 이용요금 안내".into(),
            sms_text: String::new(),
            sms_range: Some(sms_range),
        };
        let d = Delivery::ready(
            cycle,
            shard,
            id,
            send_day,
            dnd,
            channel,
            Krw(45_000 + i64::from(i % 50_000)),
            content,
            now,
        );
        let mut item = store.encode(&d)?;
        if queued {
            item.remove("due_pk");
            item.insert("state".into(), AttributeValue::S("QUEUED".into()));
            item.insert("channel".into(), AttributeValue::S(channel.as_str().into()));
            item.insert("run_id".into(), AttributeValue::S("seed".into()));
        }
        items.push(item);
        let message = DeliveryMessage {
            delivery_id: d.id(),
            channel,
            run_id: "seed".into(),
            copies: 0,
        };
        seeded.deliveries.push((d.id(), channel));
        if queued {
            messages[usize::from(channel == Channel::Sms)].push(message);
        }
        seeded.emails.push(email);
        seeded.phones.push(phone);
    }
    CustomerStore::new(ddb.clone(), var("CUSTOMERS_TABLE")?)
        .put_all(&customers)
        .await?;
    batch_put(&ddb, store.table(), items, 4, Backoff::default()).await?;
    for (channel, list) in [(Channel::Email, &messages[0]), (Channel::Sms, &messages[1])] {
        let url = var(match channel {
            Channel::Email => "EMAIL_QUEUE_URL",
            Channel::Sms => "SMS_QUEUE_URL",
        })?;
        let queue = DeliveryQueue::new(sqs.clone(), url);
        let failed: Vec<usize> = stream::iter(list.chunks(SEND_BATCH_LIMIT))
            .map(|chunk| {
                let queue = queue.clone();
                async move { queue.send_batch(chunk).await.map(|o| o.failed.len()) }
            })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        anyhow::ensure!(failed.iter().sum::<usize>() == 0, "SQS refused seeded messages");
    }
    Ok(seeded)
}

fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes)?;
    Ok(enc.finish()?)
}

/// Every item of `table` (a consistent scan), with only `projection`.
async fn scan_all(
    sdk: &SdkConfig,
    table: &str,
    projection: &str,
) -> anyhow::Result<Vec<std::collections::HashMap<String, AttributeValue>>> {
    let ddb = adapters::dynamodb_client(sdk);
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = ddb
            .scan()
            .table_name(table)
            .projection_expression(projection)
            .expression_attribute_names("#st", "state")
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .context("Scan")?;
        out.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(out),
        }
    }
}

/// Deliveries by state (a consistent scan of the table).
pub async fn states(sdk: &SdkConfig, table: &str) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let mut out = std::collections::BTreeMap::new();
    for item in scan_all(sdk, table, "#st").await? {
        let s = item
            .get("state")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        *out.entry(s).or_insert(0) += 1;
    }
    Ok(out)
}

/// One delivery that went out: its id, when (`sent_at`), its DND and its final state.
#[derive(Clone, Debug)]
pub struct Sent {
    pub id: String,
    pub at: DateTime<Utc>,
    pub dnd: SlotSet,
    /// `SENT_EMAIL`, `SENT_SMS` (or `DEAD`, for one that went out before it died).
    pub state: String,
}

/// Every delivery with a `sent_at` (a consistent scan of the table).
pub async fn sends(sdk: &SdkConfig, table: &str) -> anyhow::Result<Vec<Sent>> {
    let mut out = Vec::new();
    for item in scan_all(sdk, table, "pk, customer_id, sent_at, dnd, #st").await? {
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let Some(sent) = s("sent_at") else { continue };
        let at = DateTime::parse_from_rfc3339(&sent)
            .with_context(|| format!("sent_at {sent:?}"))?
            .with_timezone(&Utc);
        let dnd: SlotSet = match item.get("dnd") {
            Some(v) => serde_dynamo::from_attribute_value(v.clone()).context("dnd")?,
            None => SlotSet::EMPTY,
        };
        out.push(Sent {
            id: format!(
                "{}#{}",
                s("pk").unwrap_or_default(),
                s("customer_id").unwrap_or_default()
            ),
            at,
            dnd,
            state: s("state").unwrap_or_default(),
        });
    }
    Ok(out)
}

/// When each sent delivery went out (`sent_at`), with its DND, by id.
pub async fn sent_times(sdk: &SdkConfig, table: &str) -> anyhow::Result<Vec<(String, DateTime<Utc>, SlotSet)>> {
    Ok(sends(sdk, table)
        .await?
        .into_iter()
        .map(|s| (s.id, s.at, s.dnd))
        .collect())
}

/// Receives the email queue's messages without answering them, as a sender that never
/// answers would, until SQS has moved them to the delivery dead-letter queue (its
/// `maxReceiveCount` is 10). For a seeded handful (at most 10 messages): 12 rounds at most.
pub async fn dead_letter_email(sdk: &SdkConfig, resources: &Resources) -> anyhow::Result<()> {
    let env = crate::settle::local_function_env(resources, crate::send::SEND_EMAIL);
    let queue = env.get("EMAIL_QUEUE_URL").context("EMAIL_QUEUE_URL")?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    for _ in 0..12 {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .context("ReceiveMessage")?;
        if got.messages().is_empty() {
            return Ok(());
        }
    }
    anyhow::bail!("the email queue still has messages after 12 rounds of receives")
}

/// Test set-up: puts a seeded delivery back to `READY` (no channel), as a re-render would
/// find it, so that the commands that apply to a waiting delivery can be given.
pub async fn make_ready(sdk: &SdkConfig, resources: &Resources, delivery_id: &str) -> anyhow::Result<()> {
    let env = crate::settle::local_function_env(resources, crate::send::SEND_EMAIL);
    let table = env.get("DELIVERIES_TABLE").context("DELIVERIES_TABLE")?;
    let (pk, customer) = delivery_id
        .rsplit_once('#')
        .with_context(|| format!("{delivery_id} is not a delivery id"))?;
    adapters::dynamodb_client(sdk)
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("customer_id", AttributeValue::S(customer.into()))
        .update_expression("SET #st = :ready REMOVE channel")
        .expression_attribute_names("#st", "state")
        .expression_attribute_values(":ready", AttributeValue::S("READY".into()))
        .send()
        .await
        .context("UpdateItem")?;
    Ok(())
}
