//! The deliveries table: one item per bill, key (`pk` = `{cycle}#{shard:05}`,
//! `customer_id`) like the bills, so a shard's deliveries are one `Query`
//! away and a delivery id (`{cycle}#{shard:05}#{customer}`) names its key.
//!
//! The `Due` index (partition `due_pk` = `{cycle}#{bucket:02}`, sort
//! `available_at`) is sparse: every delivery that is not finished and not
//! held carries `due_pk`, sorted by when it may go, spread over
//! [`domain::delivery::DUE_BUCKETS`] partitions. `QUEUED` and `SENDING` ones
//! keep their place and carry `recheck_at`, when to look at them again (a run
//! that crashed between marking and sending, a message lost or dead-lettered,
//! a sender that died with no message left); [`DeliveryStore::due_page`]
//! leaves them out until then. The index projects no `state`: `recheck_at`
//! tells an entry on its way from a waiting one (every write that makes a
//! delivery `READY` removes it), and the enqueue's condition reads the item's
//! state itself. So an entry costs three index writes: the render's put, the
//! enqueue's in place (where moving the sort key would cost a delete and a
//! put), and the removal; a sender's claim changes nothing the index holds.
//! Only a hold or an end state (`SENT_*`, `DEAD`, `UNCONFIRMED`) removes
//! `due_pk`: whatever goes wrong, a delivery is finished or dispatch finds it
//! again.
//!
//! Every change goes through [`write`] ([`write::Change`], typed outcomes,
//! lost answers recognised); the senders' steps are in [`claims`], the operators' in
//! [`commands`], a customer's new preferences in [`preferences`], the providers' evidence
//! (a sent delivery's lifecycle, the fallback to SMS after a bounce) in [`evidence`].
//!
//! Every write is conditional: creation only where nothing exists, a content
//! update only on a waiting delivery (`READY`, or `HELD` by an operator) whose
//! content is what the caller read. A re-render can therefore never reset a
//! delivery that moved on, and a held one is released with its bill's latest
//! invoice.

pub mod claims;
pub mod commands;
pub mod dispatch;
pub mod evidence;
pub mod preferences;
pub mod totals;
pub mod write;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use domain::delivery::{DeliveryContent, utc_seconds};
use domain::{Channel, CustomerId, Cycle, Delivery, DeliveryId, DeliveryState, Krw, SlotSet};

use crate::dynamo::{Item, attr_s, get_item, put_new, query_all, shard_query};
use crate::{PutOutcome, StoreError};
use write::{Change, Written};

pub use crate::dynamo::shard_partition as partition_key;

/// The due-index partition of a delivery.
pub fn due_key(cycle: Cycle, bucket: u32) -> String {
    format!("{cycle}#{bucket:02}")
}

/// A delivery as the `Due` index shows it: what dispatch needs to decide and
/// to enqueue, nothing more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueEntry {
    pub cycle: Cycle,
    pub shard: u32,
    pub customer_id: CustomerId,
    pub available_at: DateTime<Utc>,
    pub dnd: SlotSet,
    pub preferred_channel: Channel,
    /// When it was last enqueued (only for `QUEUED`).
    pub queued_at: Option<String>,
    /// When dispatch looks again at a `QUEUED` or `SENDING` delivery no sender has finished
    /// (`recheck_at`, set by the enqueue): a non-key attribute, so that enqueueing updates the
    /// index entry in place (one write) instead of moving its sort key (a delete and a put).
    pub recheck_at: Option<DateTime<Utc>>,
    /// The one channel the delivery may still go by (`route`, see
    /// [`Delivery::route`](domain::Delivery)): dispatch never enqueues it on
    /// the other.
    pub route: Option<Channel>,
    /// The keyed look-up hash of the customer's email (`email_hash`), which
    /// dispatch checks against the suppression list.
    pub email_hash: Option<String>,
}

impl DueEntry {
    pub fn id(&self) -> String {
        domain::bill::bill_id(self.cycle, self.shard, &self.customer_id)
    }

    pub fn delivery_id(&self) -> DeliveryId {
        DeliveryId::new(self.cycle, self.shard, self.customer_id.clone())
    }

    /// On its way: enqueued (it carries `recheck_at`), so `QUEUED` or `SENDING` as far as the
    /// index knows, and in a page because its re-check time has come (no sender took it, or
    /// its sender's lease ended and no message is left). The index does not project `state`:
    /// a sender's claim then changes nothing of the entry and costs the index no write. Every
    /// write that makes a delivery `READY` removes `recheck_at` (`write::Change`); the
    /// enqueue's condition reads the item's state itself.
    pub fn in_flight(&self) -> bool {
        self.recheck_at.is_some()
    }
}

/// A `Due` index entry that cannot be read: the delivery's key (as far as it
/// could be read) and why. Never a personal value: the index holds none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadEntry {
    /// The table key as stored (the index always projects it), so the item
    /// can be parked even when nothing else of it reads.
    pub pk: String,
    pub customer_id: String,
    /// The index partition it was found in.
    pub due_pk: String,
    pub reason: String,
}

impl BadEntry {
    /// `pk#customer_id`: the delivery id when the key is well formed.
    pub fn key(&self) -> String {
        format!("{}#{}", self.pk, self.customer_id)
    }
}

/// One page of the `Due` index.
#[derive(Debug, Default)]
pub struct DuePage {
    pub entries: Vec<DueEntry>,
    pub bad: Vec<BadEntry>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<Item>,
}

/// What a shard's re-render needs to know about an existing delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    pub customer_id: String,
    pub state: String,
    pub content_hash: String,
    pub template_version: String,
    /// The keyed look-up hash of the customer's email it holds (`email_hash`).
    pub email_hash: Option<String>,
    /// The total due it states, in won (`None`: missing or not a whole number).
    pub total: Option<i64>,
    /// Where its invoice is (`email_key`, and `email_range` in a pack).
    pub email_key: String,
    pub email_range: Option<domain::range::ByteRange>,
    /// Where its SMS text is in the pack (`None`: in the item, `sms_text`).
    pub sms_range: Option<domain::range::ByteRange>,
}

impl Existing {
    /// Not sent nor on its way: `READY`, or `HELD` by an operator. Its content
    /// follows its bill.
    pub fn is_waiting(&self) -> bool {
        self.state == DeliveryState::Ready.as_str() || self.state == DeliveryState::Held.as_str()
    }
}

/// Where one delivery stands (see [`DeliveryStore::shard_funnel`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunnelEntry {
    pub state: String,
    pub channel: Option<String>,
    pub send_date: String,
    /// When its latest send went out (`SENT_*`; kept by an email's fallback to SMS until the
    /// SMS goes).
    pub sent_at: Option<String>,
    /// When it was last enqueued (only while `QUEUED`).
    pub queued_at: Option<String>,
}

/// Outcome of a content update.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    Updated,
    /// The delivery is no longer waiting with the content read: left alone.
    Moved,
}

#[derive(Clone, Debug)]
pub struct DeliveryStore {
    client: Client,
    table: String,
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
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

    pub(crate) fn decode(&self, mut item: Item) -> Result<Delivery, StoreError> {
        let pk = attr_s(&item, "pk").unwrap_or_default().to_owned();
        let id = attr_s(&item, "customer_id").unwrap_or_default().to_owned();
        item.remove("pk");
        item.remove("due_pk");
        crate::dynamo::decode_item(item).map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("delivery {pk}#{id}"),
            message: e.to_string(),
        })
    }

    /// Creates a delivery where none exists. `AlreadyExists` leaves the
    /// stored one untouched, whatever its state.
    pub async fn create(&self, d: &Delivery) -> Result<PutOutcome, StoreError> {
        put_new(&self.client, &self.table, self.encode(d)?, "pk").await
    }

    /// Replaces the rendered content and the total of a waiting delivery (`READY` or `HELD`)
    /// whose content hash is still `expected_hash`, and its `email_hash` when
    /// one is given (the customer's email changed since it was rendered).
    /// State, attempts, `available_at`, a hold and history are not touched.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_content(
        &self,
        cycle: Cycle,
        shard: u32,
        customer: &CustomerId,
        expected_hash: &str,
        content: &DeliveryContent,
        total: Krw,
        email_hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<UpdateOutcome, StoreError> {
        let id = DeliveryId::new(cycle, shard, customer.clone());
        // The token names the content and total (and the email hash): finding it means this
        // content is there already.
        let token = match email_hash {
            Some(h) => format!("render/{}/{}/{h}", content.content_hash, total.won()),
            None => format!("render/{}/{}", content.content_hash, total.won()),
        };
        let mut change = Change::new(token, now);
        if let Some(h) = email_hash {
            change = change.set("email_hash = :eh").text(":eh", h);
        }
        let change = change
            .set("template_version = :v")
            .set("content_hash = :h")
            .set("email_key = :k")
            .set("subject = :subj")
            .set("#total = :total")
            .name("#total", "total")
            .number(":total", total.won())
            .condition("#st IN (:ready, :held) AND content_hash = :old")
            .text(":ready", DeliveryState::Ready.as_str())
            .text(":held", DeliveryState::Held.as_str())
            .text(":old", expected_hash)
            .text(":v", &content.template_version)
            .text(":h", &content.content_hash)
            .text(":k", &content.email_key)
            .text(":subj", &content.subject);
        let change = with_locations(change, content);
        match self.write(&id, &change).await {
            Written::Applied(_) => Ok(UpdateOutcome::Updated),
            Written::Refused(_) => Ok(UpdateOutcome::Moved),
            Written::Unknown(e) => Err(e),
        }
    }

    /// The state and content hash of every delivery of a shard, in customer
    /// order (a projection: a few dozen bytes per delivery).
    pub async fn shard_summary(&self, cycle: Cycle, shard: u32) -> Result<Vec<Existing>, StoreError> {
        let req = shard_query(&self.client, &self.table, cycle, shard)
            .projection_expression(
                "customer_id, #st, content_hash, template_version, email_hash, #t, email_key, email_range, sms_range",
            )
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#t", "total")
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
                email_hash: attr_s(item, "email_hash").map(str::to_owned),
                total: item
                    .get("total")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok()),
                email_key: attr_s(item, "email_key").unwrap_or_default().to_owned(),
                email_range: attr_s(item, "email_range").and_then(|r| r.parse().ok()),
                sms_range: attr_s(item, "sms_range").and_then(|r| r.parse().ok()),
            })
            .collect())
    }

    /// Where each delivery of a shard stands, for the funnel: state, channel
    /// (once queued), send date, when it was sent and when queued, read with
    /// one eventually consistent `Query` (paginated) projecting only those.
    pub async fn shard_funnel(&self, cycle: Cycle, shard: u32) -> Result<Vec<FunnelEntry>, StoreError> {
        let req = shard_query(&self.client, &self.table, cycle, shard)
            .projection_expression("#st, channel, send_date, sent_at, queued_at")
            .expression_attribute_names("#st", "state");
        Ok(query_all(req, &self.table)
            .await?
            .items
            .iter()
            .map(|item| FunnelEntry {
                state: attr_s(item, "state").unwrap_or("?").to_owned(),
                channel: attr_s(item, "channel").map(str::to_owned),
                send_date: attr_s(item, "send_date").unwrap_or("?").to_owned(),
                sent_at: attr_s(item, "sent_at").map(str::to_owned),
                queued_at: attr_s(item, "queued_at").map(str::to_owned),
            })
            .collect())
    }

    /// Every delivery of a shard, in customer order.
    pub async fn shard(&self, cycle: Cycle, shard: u32) -> Result<Vec<Delivery>, StoreError> {
        query_all(shard_query(&self.client, &self.table, cycle, shard), &self.table)
            .await?
            .items
            .into_iter()
            .map(|item| self.decode(item))
            .collect()
    }

    /// Number of deliveries stored for a shard (a `Select=COUNT` query).
    pub async fn count(&self, cycle: Cycle, shard: u32) -> Result<u64, StoreError> {
        let req = shard_query(&self.client, &self.table, cycle, shard).select(aws_sdk_dynamodb::types::Select::Count);
        Ok(query_all(req, &self.table).await?.count)
    }

    /// One delivery.
    pub async fn get(&self, cycle: Cycle, shard: u32, customer: &CustomerId) -> Result<Option<Delivery>, StoreError> {
        self.raw(cycle, shard, customer)
            .await?
            .map(|item| self.decode(item))
            .transpose()
    }

    /// The stored item as it is (consistent read).
    pub async fn raw(&self, cycle: Cycle, shard: u32, customer: &CustomerId) -> Result<Option<Item>, StoreError> {
        let key = [
            ("pk", s(partition_key(cycle, shard))),
            ("customer_id", s(customer.as_str())),
        ];
        get_item(&self.client, &self.table, key, true).await
    }

    /// One page of the `Due` index for one bucket: entries whose
    /// `available_at` is at or before `until`, oldest first, at most `limit`.
    /// Entries that do not decode are returned apart, so one corrupt item
    /// never stops the rest.
    pub async fn due_page(
        &self,
        cycle: Cycle,
        bucket: u32,
        until: DateTime<Utc>,
        limit: i32,
        start: Option<Item>,
    ) -> Result<DuePage, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("due_pk = :b AND available_at <= :until")
            .expression_attribute_values(":b", s(due_key(cycle, bucket)))
            .expression_attribute_values(":until", s(utc_seconds::format(&until)))
            .limit(limit.max(1))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query", format!("{}/index/{DUE_INDEX}", self.table), e))?;
        let mut page = DuePage {
            next: out.last_evaluated_key.filter(|k| !k.is_empty()),
            ..DuePage::default()
        };
        for item in out.items.unwrap_or_default() {
            match due_entry(cycle, &item) {
                // On its way, its re-check time not come: a sender has it or will.
                Ok(e) if e.recheck_at.is_some_and(|t| t > until) => {}
                Ok(e) => page.entries.push(e),
                Err(reason) => page.bad.push(BadEntry {
                    pk: attr_s(&item, "pk").unwrap_or_default().to_owned(),
                    customer_id: attr_s(&item, "customer_id").unwrap_or_default().to_owned(),
                    due_pk: due_key(cycle, bucket),
                    reason,
                }),
            }
        }
        Ok(page)
    }
}

/// The `Due` index of the deliveries table.
pub const DUE_INDEX: &str = "Due";

fn due_entry(cycle: Cycle, item: &Item) -> Result<DueEntry, String> {
    let text = |name: &str| attr_s(item, name).ok_or_else(|| format!("{name} is missing or not a string"));
    let pk = text("pk")?;
    let shard = pk
        .rsplit_once('#')
        .and_then(|(c, n)| (c == cycle.to_string()).then(|| n.parse().ok()).flatten())
        .ok_or_else(|| format!("pk {pk:?} is not {cycle}#<shard>"))?;
    let customer_id = CustomerId::new(text("customer_id")?).map_err(|e| e.reason)?;
    let instant = |name: &str| {
        DateTime::parse_from_rfc3339(text(name)?)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("{name}: {e}"))
    };
    let available_at = instant("available_at")?;
    let dnd: SlotSet = item
        .get("dnd")
        .map(|v| serde_dynamo::from_attribute_value(v.clone()))
        .transpose()
        .map_err(|e| format!("dnd: {e}"))?
        .unwrap_or_default();
    let channel = |name: &str, v: &str| match v {
        "email" => Ok(Channel::Email),
        "sms" => Ok(Channel::Sms),
        other => Err(format!("{name} {other:?} is not email or sms")),
    };
    let preferred_channel = channel("preferred_channel", text("preferred_channel")?)?;
    let route = match item.get("route") {
        None => None,
        Some(_) => Some(channel("route", text("route")?)?),
    };
    let email_hash = match item.get("email_hash") {
        None => None,
        Some(_) => Some(text("email_hash")?.to_owned()),
    };
    Ok(DueEntry {
        cycle,
        shard,
        customer_id,
        available_at,
        dnd,
        preferred_channel,
        queued_at: attr_s(item, "queued_at").map(str::to_owned),
        recheck_at: match item.get("recheck_at") {
            None => None,
            Some(_) => Some(instant("recheck_at")?),
        },
        route,
        email_hash,
    })
}

/// `change` setting where `content`'s invoice and SMS text are: the pack's ranges, or the
/// item's own text (and the attributes of the other form removed).
pub(crate) fn with_locations(change: Change, content: &DeliveryContent) -> Change {
    let change = match content.email_range {
        Some(r) => change.set("email_range = :loc_range").text(":loc_range", r.to_string()),
        None => change.remove("email_range"),
    };
    match content.sms_range {
        Some(r) => change
            .set("sms_range = :loc_sms_range")
            .text(":loc_sms_range", r.to_string())
            .remove("sms_text"),
        None => change
            .set("sms_text = :loc_sms")
            .text(":loc_sms", &content.sms_text)
            .remove("sms_range"),
    }
}
