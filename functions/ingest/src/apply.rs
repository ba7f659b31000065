//! The second step: one chunk of a customers file applied.

use adapters::StoreError;
use adapters::dynamo::{Item, attr_s, batch_put, decode_item};
use adapters::retry::Backoff;
use chrono::{DateTime, Utc};
use domain::Customer;
use domain::pii::Keyring;

use crate::event::{Chunk, ChunkResult};
use crate::lines::split_all;
use crate::records::{UploadCustomer, check_customer_line};
use crate::store::{self, Read};
use crate::{Deps, IngestError};

/// The attribute the admin API's preferences route sets (RFC 3339, UTC) beside the ones of
/// [`Customer`].
pub const PREFERENCES_UPDATED_AT: &str = "preferences_updated_at";

/// The attributes of a stored customer that an upload sets. Any other attribute of a stored
/// item (such as [`PREFERENCES_UPDATED_AT`]) is carried over.
pub const CUSTOMER_FIELDS: [&str; 13] = [
    "customer_id",
    "shard",
    "plan",
    "addons",
    "family",
    "contract",
    "birthday",
    "joined_on",
    "cancelled_on",
    "send_day",
    "dnd",
    "preferred_channel",
    "contact",
];

/// What to do with one uploaded customer given the stored item.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Write { item: Item, preferences_kept: bool },
    Unchanged { preferences_kept: bool },
}

/// The item to store for `up` (sealed as `sealed`) over `stored`: preferences set through the
/// API after `uploaded_at` are kept; contact data that holds the same clear values keeps its
/// stored ciphertext (`open` opens it); attributes an upload does not set are carried over;
/// an item that would not change is not written.
pub fn decide(
    up: &UploadCustomer,
    sealed: Customer,
    stored: Option<&Item>,
    uploaded_at: DateTime<Utc>,
    open: &dyn Fn(&Customer) -> Option<domain::customer::OpenContact>,
) -> Result<Decision, StoreError> {
    let Some(stored) = stored else {
        return Ok(Decision::Write {
            item: to_item(&sealed)?,
            preferences_kept: false,
        });
    };
    let mut new = sealed;
    let mut preferences_kept = false;
    let old: Option<Customer> = decode_item(stored.clone()).ok();
    if let Some(old) = &old {
        let set_later = attr_s(stored, PREFERENCES_UPDATED_AT)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t.with_timezone(&Utc) > uploaded_at);
        if set_later {
            new.dnd = old.dnd;
            new.send_day = old.send_day;
            new.preferred_channel = old.preferred_channel;
            new.contact = old.contact.clone();
            preferences_kept = true;
        } else if old.contact != new.contact && open(old).is_some_and(|o| up.same_contact(&o)) {
            // The same values sealed under another key: the stored ciphertext stays.
            new.contact = old.contact.clone();
        }
    }
    let mut item = to_item(&new)?;
    for (name, value) in stored {
        if !CUSTOMER_FIELDS.contains(&name.as_str()) {
            item.entry(name.clone()).or_insert_with(|| value.clone());
        }
    }
    if &item == stored {
        Ok(Decision::Unchanged { preferences_kept })
    } else {
        Ok(Decision::Write { item, preferences_kept })
    }
}

/// A customer as its item, exactly as the customer store writes it.
pub fn to_item(c: &Customer) -> Result<Item, StoreError> {
    serde_dynamo::to_item(c).map_err(|e| StoreError::Decode {
        resource: "customers".into(),
        what: format!("customer {}", c.customer_id),
        message: e.to_string(),
    })
}

/// The chunk's lines to apply, decoded and checked again (the plan checked them: one that
/// fails now means the object is not the one planned).
pub fn chunk_records(
    bytes: &[u8],
    chunk: &Chunk,
    quiet: domain::QuietWindow,
) -> Result<Vec<UploadCustomer>, IngestError> {
    let (lines, _) = split_all(bytes, chunk.start, chunk.first_line);
    let mut out = Vec::with_capacity(lines.len());
    for (number, _, _, line) in lines {
        if line.trim_ascii().is_empty() || chunk.skip.binary_search(&number).is_ok() {
            continue;
        }
        let c = check_customer_line(&line, quiet).map_err(|p| {
            IngestError::ChunkInvalid(format!(
                "line {number} ({}) no longer passes its check: the object is not the one planned",
                p.field
            ))
        })?;
        out.push(c);
    }
    Ok(out)
}

pub(crate) async fn apply(deps: &Deps, chunk: Chunk) -> Result<ChunkResult, IngestError> {
    let f = &chunk.file;
    let resource = format!("s3://{}/{}", f.bucket, f.key);
    let Read::Body(body) =
        store::read_version(&deps.s3, &f.bucket, &f.key, &f.etag, Some((chunk.start, chunk.end))).await?
    else {
        return Err(IngestError::ObjectChanged(format!(
            "chunk {}: the object was replaced or deleted after it was planned; the newer upload is ingested on its own",
            chunk.index
        )));
    };
    let bytes = body
        .collect()
        .await
        .map_err(|e| store::body_error(&resource, e))?
        .into_bytes();
    if bytes.len() as u64 != chunk.end - chunk.start {
        return Err(IngestError::ObjectChanged(format!(
            "chunk {}: read {} bytes of {}",
            chunk.index,
            bytes.len(),
            chunk.end - chunk.start
        )));
    }
    let records = chunk_records(&bytes, &chunk, deps.config.quiet)?;
    let keys = deps.keys.current().await;
    let result = apply_records(deps, &records, &keys, f.uploaded_at, chunk.index).await?;
    tracing::info!(
        chunk = chunk.index,
        records = result.records,
        applied = result.applied,
        unchanged = result.unchanged,
        preferences_kept = result.preferences_kept,
        requests = result.requests,
        "chunk applied"
    );
    Ok(result)
}

async fn apply_records(
    deps: &Deps,
    records: &[UploadCustomer],
    keys: &Keyring,
    uploaded_at: DateTime<Utc>,
    index: u32,
) -> Result<ChunkResult, IngestError> {
    let mut result = ChunkResult {
        index,
        records: records.len() as u64,
        ..Default::default()
    };
    let wanted: Vec<(u32, String)> = records
        .iter()
        .map(|c| (c.shard, c.customer_id.as_str().to_owned()))
        .collect();
    let (stored, reads) = store::batch_get(&deps.ddb, &deps.customers_table, &wanted, Backoff::default()).await?;
    result.requests += reads;
    // Contact data stored under a key id this keyring lacks: fetch the keyring once for all.
    let stored_customers: Vec<Customer> = stored.values().filter_map(|i| decode_item(i.clone()).ok()).collect();
    let open_keys = deps
        .keys
        .for_contacts(stored_customers.iter().map(|c| &c.contact))
        .await?;
    let open = |c: &Customer| c.contact.open(&open_keys, &c.customer_id).ok();
    let mut writes = Vec::new();
    for up in records {
        let key = (up.shard, up.customer_id.as_str().to_owned());
        match decide(up, up.seal(keys), stored.get(&key), uploaded_at, &open)? {
            Decision::Write { item, preferences_kept } => {
                writes.push(item);
                result.applied += 1;
                result.preferences_kept += u64::from(preferences_kept);
            }
            Decision::Unchanged { preferences_kept } => {
                result.unchanged += 1;
                result.preferences_kept += u64::from(preferences_kept);
            }
        }
    }
    if !writes.is_empty() {
        let stats = batch_put(
            &deps.ddb,
            &deps.customers_table,
            writes,
            deps.config.write_concurrency,
            Backoff::default(),
        )
        .await?;
        result.requests += stats.requests as u64;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::tests::line;
    use aws_sdk_dynamodb::types::AttributeValue;
    use domain::QuietWindow;

    fn up(v: serde_json::Value) -> UploadCustomer {
        check_customer_line(v.to_string().as_bytes(), QuietWindow::default_korea()).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_same_customer_again_is_unchanged_and_a_change_is_written() {
        let keys = Keyring::dev();
        let open = |c: &Customer| c.contact.open(&keys, &c.customer_id).ok();
        let a = up(line("C1", 0));
        let Decision::Write { item, .. } = decide(&a, a.seal(&keys), None, t("2026-11-20T00:00:00Z"), &open).unwrap()
        else {
            panic!("a new customer is written")
        };
        let again = decide(&a, a.seal(&keys), Some(&item), t("2026-11-21T00:00:00Z"), &open).unwrap();
        assert_eq!(
            again,
            Decision::Unchanged {
                preferences_kept: false
            }
        );
        let mut v = line("C1", 0);
        v["plan"] = "5G_PREMIUM".into();
        let b = up(v);
        assert!(matches!(
            decide(&b, b.seal(&keys), Some(&item), t("2026-11-21T00:00:00Z"), &open).unwrap(),
            Decision::Write { .. }
        ));
    }

    #[test]
    fn preferences_set_after_the_upload_are_kept_and_other_fields_applied() {
        let keys = Keyring::dev();
        let open = |c: &Customer| c.contact.open(&keys, &c.customer_id).ok();
        let a = up(line("C1", 0));
        let mut stored = to_item(&a.seal(&keys)).unwrap();
        stored.insert("send_day".into(), AttributeValue::N("3".into()));
        stored.insert(
            PREFERENCES_UPDATED_AT.into(),
            AttributeValue::S("2026-11-20T10:00:00Z".into()),
        );
        let mut v = line("C1", 0);
        v["plan"] = "5G_PREMIUM".into();
        v["send_day"] = 20.into();
        let b = up(v);
        let Decision::Write { item, preferences_kept } =
            decide(&b, b.seal(&keys), Some(&stored), t("2026-11-20T09:00:00Z"), &open).unwrap()
        else {
            panic!("the plan changed")
        };
        assert!(preferences_kept);
        assert_eq!(item["send_day"], AttributeValue::N("3".into()));
        assert_eq!(item["plan"], AttributeValue::S("5G_PREMIUM".into()));
        assert_eq!(item[PREFERENCES_UPDATED_AT], stored[PREFERENCES_UPDATED_AT]);
        // An upload after the change wins.
        let Decision::Write { item, preferences_kept } =
            decide(&b, b.seal(&keys), Some(&stored), t("2026-11-20T11:00:00Z"), &open).unwrap()
        else {
            panic!("written")
        };
        assert!(!preferences_kept);
        assert_eq!(item["send_day"], AttributeValue::N("20".into()));
    }

    #[test]
    fn contact_sealed_under_an_older_key_with_the_same_values_is_unchanged() {
        let old_keys = Keyring::dev();
        let new_keys = Keyring::parse(&format!(
            "k2:{},{}",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            domain::pii::DEV_KEYRING
        ))
        .unwrap();
        let open = |c: &Customer| c.contact.open(&new_keys, &c.customer_id).ok();
        let a = up(line("C1", 0));
        let stored = to_item(&a.seal(&old_keys)).unwrap();
        let d = decide(&a, a.seal(&new_keys), Some(&stored), t("2026-11-21T00:00:00Z"), &open).unwrap();
        assert_eq!(
            d,
            Decision::Unchanged {
                preferences_kept: false
            }
        );
    }
}
