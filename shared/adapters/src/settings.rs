//! Runtime settings the operators change through the admin API, without a deployment.
//!
//! Each is one item of `AdminTable`, `pk` = `SETTING#{name}`, written by the admin API in the
//! same transaction as the command that changed it (see `admin_api::command_log`):
//!
//! | name | value | read by | when absent |
//! |---|---|---|---|
//! | `channel-policy` | `email,sms`, `email`, `sms` or `none` | DispatchSlot (every run), the senders (every batch, cached a minute) | the function's `CHANNEL_POLICY` |
//! | `template-version` | an invoice template version this build carries | BeginCycle (a cycle's first run, unless its input names a version) | the function's `TEMPLATE_VERSION` |
//!
//! Every write counts the item's `revision` up and keeps who, when and which command; a
//! write names the revision it replaces, so two operators changing a setting at once do not
//! overwrite each other unseen. A stored value that does not parse is an error for its
//! readers (a run that stops and says why), never a silent fall back to the default.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::StoreError;
use crate::dynamo::{Item, attr_s, get_item};

/// The operators' channel policy (`domain::dispatch::ChannelPolicy`).
pub const CHANNEL_POLICY: &str = "channel-policy";
/// The invoice template version new cycles pin.
pub const TEMPLATE_VERSION: &str = "template-version";
/// Every setting, in the order the admin API lists them.
pub const NAMES: [&str; 2] = [CHANNEL_POLICY, TEMPLATE_VERSION];

/// How long a sender trusts the setting it read.
pub const SENDER_CACHE_TTL: Duration = Duration::from_secs(60);

pub fn key(name: &str) -> String {
    format!("SETTING#{name}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// One stored setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub name: String,
    pub value: String,
    /// 1 for the first write, counted up by every later one.
    pub revision: u64,
    pub updated_at: String,
    /// The caller's IAM ARN.
    pub updated_by: String,
    /// The admin command that wrote it.
    pub command_id: String,
}

impl Setting {
    fn decode(table: &str, name: &str, item: &Item) -> Result<Self, StoreError> {
        let field = |f: &str| {
            attr_s(item, f).map(str::to_owned).ok_or_else(|| StoreError::Decode {
                resource: table.to_owned(),
                what: format!("setting {name}"),
                message: format!("no {f}"),
            })
        };
        let revision = item
            .get("revision")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Decode {
                resource: table.to_owned(),
                what: format!("setting {name}"),
                message: "no numeric revision".into(),
            })?;
        Ok(Setting {
            name: name.to_owned(),
            value: field("value")?,
            revision,
            updated_at: field("updated_at")?,
            updated_by: field("updated_by")?,
            command_id: field("command_id")?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct SettingsStore {
    client: Client,
    table: String,
}

impl SettingsStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        SettingsStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The stored setting (a strongly consistent read), `None` when never set.
    pub async fn get(&self, name: &str) -> Result<Option<Setting>, StoreError> {
        let got = get_item(&self.client, &self.table, [("pk", s(key(name)))], true).await?;
        got.map(|item| Setting::decode(&self.table, name, &item)).transpose()
    }

    /// A stored value parsed, `None` when never set; a value that does not parse is a
    /// decode error naming the setting.
    pub async fn parsed<T>(&self, name: &str) -> Result<Option<T>, StoreError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let Some(setting) = self.get(name).await? else {
            return Ok(None);
        };
        setting.value.parse().map(Some).map_err(|e: T::Err| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("setting {name} (revision {})", setting.revision),
            message: e.to_string(),
        })
    }

    /// The write of revision `previous + 1` (`previous` 0: the first), for a transaction:
    /// refused (`ConditionalCheckFailed`) when the stored revision is not `previous`.
    pub fn put(
        &self,
        name: &str,
        value: &str,
        previous: u64,
        command_id: &str,
        who: &str,
        at: DateTime<Utc>,
    ) -> Result<Put, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(key(name)))
            .item("value", s(value))
            .item("revision", AttributeValue::N((previous + 1).to_string()))
            .item("updated_at", s(at.to_rfc3339_opts(SecondsFormat::Millis, true)))
            .item("updated_by", s(who))
            .item("command_id", s(command_id));
        put = if previous == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("revision = :seen")
                .expression_attribute_values(":seen", AttributeValue::N(previous.to_string()))
        };
        put.build().map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("setting {name}"),
            message: format!("the write cannot be built: {e}"),
        })
    }
}

/// A setting read at most once per `ttl` (the senders': a batch every few hundred
/// milliseconds must not cost a read each). A failed read with a value in hand keeps using
/// it until a read succeeds; with none, it is the caller's error.
#[derive(Debug)]
pub struct CachedSetting<T> {
    store: SettingsStore,
    name: &'static str,
    ttl: Duration,
    cell: Mutex<Option<(Instant, Option<T>)>>,
}

impl<T> CachedSetting<T>
where
    T: std::str::FromStr + Clone,
    T::Err: std::fmt::Display,
{
    pub fn new(store: SettingsStore, name: &'static str, ttl: Duration) -> Self {
        CachedSetting {
            store,
            name,
            ttl,
            cell: Mutex::new(None),
        }
    }

    /// The stored value, `None` when never set.
    pub async fn get(&self) -> Result<Option<T>, StoreError> {
        let cached = self.cell.lock().map(|c| c.clone()).unwrap_or_default();
        if let Some((read_at, value)) = &cached
            && read_at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        match self.store.parsed::<T>(self.name).await {
            Ok(value) => {
                if let Ok(mut c) = self.cell.lock() {
                    *c = Some((Instant::now(), value.clone()));
                }
                Ok(value)
            }
            Err(e) => match cached {
                Some((_, value)) => {
                    tracing::warn!(setting = self.name, error = %e, "setting not read; the last value read still applies");
                    Ok(value)
                }
                None => Err(e),
            },
        }
    }
}
