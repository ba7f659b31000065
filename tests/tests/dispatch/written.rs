//! What the route and quota tests write one by one: a settled cycle record, and `READY`
//! deliveries with the send day, DND, channel, route and email hash a case needs.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use domain::{Channel, CustomerId, Cycle, Delivery, SendDay, SlotSet};
use futures::{StreamExt, stream};
use integration_tests::Month;

/// November 2026's cycle record, `SETTLED` as settlement leaves it.
pub(super) async fn settled(month: &Month, cycle: Cycle) {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let item: HashMap<String, AttributeValue> = [
        ("cycle", s(&cycle.to_string())),
        ("item", s(adapters::cycles::CYCLE_ITEM)),
        ("status", s("SETTLED")),
        ("run_id", s(&format!("settle-{cycle}"))),
        ("catalog_version", s("2026-v1")),
        ("template_version", s("v1")),
        ("cutoff", s(&format!("{}T00:00:00+09:00", cycle.next().first_day()))),
        ("shard_count", AttributeValue::N("3".into())),
        ("manifest_key", s("")),
        ("started_at", s("2026-12-01T00:00:00Z")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    adapters::dynamodb_client(&month.config)
        .put_item()
        .table_name(month.cycles.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

/// One delivery to write.
#[derive(Clone, Debug)]
pub(super) struct Spec {
    pub customer: String,
    pub shard: u32,
    pub send_day: u32,
    pub dnd: SlotSet,
    pub preferred: Channel,
    pub route: Option<Channel>,
    pub email_hash: Option<String>,
}

impl Spec {
    pub fn new(customer: &str) -> Spec {
        Spec {
            customer: customer.to_owned(),
            shard: 0,
            send_day: 10,
            dnd: SlotSet::EMPTY,
            preferred: Channel::Email,
            route: None,
            email_hash: None,
        }
    }
}

/// The `READY` delivery of `spec` in `cycle`, due from its send date.
pub(super) fn delivery(cycle: Cycle, spec: &Spec) -> Delivery {
    let mut d = Delivery::ready(
        cycle,
        spec.shard,
        CustomerId::new(&spec.customer).unwrap(),
        SendDay::new(spec.send_day).unwrap(),
        spec.dnd,
        spec.preferred,
        domain::Krw(55_000),
        domain::delivery::DeliveryContent {
            email_range: None,
            template_version: "v1".into(),
            content_hash: format!("{:064x}", spec.customer.len()),
            email_key: format!("invoices/{cycle}/{}.html", spec.customer),
            subject: "invoice".into(),
            sms_text: "invoice [[INVOICE_LINK]]".into(),
            sms_range: None,
        },
        chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .to_utc(),
    );
    d.route = spec.route;
    d.email_hash = spec.email_hash.clone();
    d
}

/// Writes the deliveries of `specs` (a few at a time) and answers them in order.
pub(super) async fn write(month: &Month, cycle: Cycle, specs: &[Spec]) -> Vec<Delivery> {
    let ds: Vec<Delivery> = specs.iter().map(|s| delivery(cycle, s)).collect();
    let created: Vec<adapters::PutOutcome> = stream::iter(&ds)
        .map(|d| async move { month.deliveries.create(d).await.unwrap() })
        .buffered(8)
        .collect()
        .await;
    assert!(
        created.iter().all(|c| *c == adapters::PutOutcome::Created),
        "{created:?}"
    );
    ds
}

/// A keyed look-up hash of an email address, as render writes it.
pub(super) fn email_hash(address: &str) -> String {
    domain::pii::Keyring::dev().lookup_hash(domain::pii::Field::Email, address)
}
