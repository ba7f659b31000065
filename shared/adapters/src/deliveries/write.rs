//! The one way a delivery item changes: a [`Change`] — the new values, a
//! condition on the item as the writer believes it stands, and a **write
//! token** that names this write — sent as a conditional `UpdateItem`, or
//! handed to a DynamoDB transaction (an operator's command and its audit
//! record). Every transition of the delivery state machine (dispatch's
//! enqueue, the senders' claim, complete, give back, release, defer, fall
//! back and dead, the operators' commands) is built in this module's siblings
//! and goes through here; nothing else writes a delivery.
//!
//! **Typed outcomes** ([`Written`]). A conditional write is applied, refused
//! (with the item as it stands: `ReturnValuesOnConditionCheckFailure =
//! ALL_OLD`), or unknown (no answer). A refusal is not always someone else's
//! doing: when DynamoDB applied a write but its answer was lost (a 500, a
//! dropped connection, a timeout), the SDK sends it again and the second
//! request fails its own condition. Every change stores its token in
//! `last_write`; a refused write that finds its own token there is
//! recognised as applied. Tokens are unique per logical write (a sender's
//! claim id and the step, a dispatch run's nonce, an operator's command id),
//! so another writer's change can never pass for ours. When the SDK's
//! retries got no answer at all, one consistent read of the item settles it
//! the same way.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, Update};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use chrono::{DateTime, Utc};
use domain::delivery::utc_seconds;
use domain::{DeliveryId, DeliveryState};

use super::{DeliveryStore, partition_key, s};
use crate::StoreError;
use crate::dynamo::{Item, attr_s};

/// The attribute that names the last write applied to a delivery.
pub const LAST_WRITE: &str = "last_write";

/// When dispatch looks again at a delivery on its way (set by the enqueue).
pub const RECHECK_AT: &str = "recheck_at";

/// The attribute names and values an expression uses.
type Placeholders = (Vec<(String, String)>, Vec<(String, AttributeValue)>);

/// What became of a conditional write.
#[derive(Debug)]
pub enum Written {
    /// Applied; the item as it stands after the write.
    Applied(Item),
    /// The condition refused it; the item as it stands (`None`: no item).
    Refused(Option<Item>),
    /// No answer: the write may or may not have been applied. Whoever acts
    /// on it must find out (read the item) or leave it to a later attempt.
    Unknown(StoreError),
}

impl Written {
    pub fn is_applied(&self) -> bool {
        matches!(self, Written::Applied(_))
    }

    /// `true` if this write applied the change, `false` if the delivery had moved on and
    /// refused it, the store's error if no answer came (the caller decides what an unknown
    /// write means for it).
    pub fn applied(self) -> Result<bool, StoreError> {
        match self {
            Written::Applied(_) => Ok(true),
            Written::Refused(_) => Ok(false),
            Written::Unknown(e) => Err(e),
        }
    }
}

/// One change to one delivery: `SET`, `ADD` and `REMOVE` clauses, the
/// condition it needs, and its token. `updated_at` and [`LAST_WRITE`] are
/// set by every change.
#[derive(Clone, Debug)]
pub struct Change {
    token: String,
    set: Vec<String>,
    add: Vec<String>,
    remove: Vec<String>,
    condition: Option<String>,
    names: Vec<(String, String)>,
    values: Vec<(String, AttributeValue)>,
}

impl Change {
    /// A change named by `token` (unique per logical write), made at `now`.
    pub fn new(token: impl Into<String>, now: DateTime<Utc>) -> Self {
        Change {
            token: token.into(),
            set: vec![format!("{LAST_WRITE} = :lw"), "updated_at = :now".into()],
            add: Vec::new(),
            remove: Vec::new(),
            condition: None,
            names: vec![("#st".into(), "state".into())],
            values: vec![(":now".into(), s(utc_seconds::format(&now)))],
        }
        .value(":lw", s(String::new()))
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The condition, as sent.
    pub fn condition_expression(&self) -> Option<&str> {
        self.condition.as_deref()
    }

    /// `SET clause` (e.g. `#st = :to`).
    pub fn set(mut self, clause: impl Into<String>) -> Self {
        self.set.push(clause.into());
        self
    }

    /// `ADD clause` (e.g. `deferrals :one`).
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, clause: impl Into<String>) -> Self {
        self.add.push(clause.into());
        self
    }

    /// `REMOVE attribute`.
    pub fn remove(mut self, attribute: impl Into<String>) -> Self {
        let a = attribute.into();
        if !self.remove.contains(&a) {
            self.remove.push(a);
        }
        self
    }

    /// The condition (`#st` names `state`).
    pub fn condition(mut self, expression: impl Into<String>) -> Self {
        self.condition = Some(expression.into());
        self
    }

    pub fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names.retain(|(p, _)| p != placeholder);
        self.names.push((placeholder.into(), attribute.into()));
        self
    }

    pub fn value(mut self, placeholder: &str, v: AttributeValue) -> Self {
        self.values.retain(|(p, _)| p != placeholder);
        self.values.push((placeholder.into(), v));
        self
    }

    pub fn text(self, placeholder: &str, v: impl Into<String>) -> Self {
        self.value(placeholder, s(v))
    }

    pub fn number(self, placeholder: &str, n: impl ToString) -> Self {
        self.value(placeholder, AttributeValue::N(n.to_string()))
    }

    pub fn time(self, placeholder: &str, t: &DateTime<Utc>) -> Self {
        self.value(placeholder, s(utc_seconds::format(t)))
    }

    /// The update expression.
    pub fn expression(&self) -> String {
        let mut e = format!("SET {}", self.set.join(", "));
        if !self.add.is_empty() {
            e.push_str(&format!(" ADD {}", self.add.join(", ")));
        }
        let mut remove: Vec<&str> = self.remove.iter().map(String::as_str).collect();
        if self.ends_the_way() && !remove.contains(&RECHECK_AT) {
            remove.push(RECHECK_AT);
        }
        if !remove.is_empty() {
            e.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        e
    }

    /// Whether the change moves the delivery to a state that is not on its way (`QUEUED`,
    /// `SENDING`): then it removes [`RECHECK_AT`], which the `Due` index reads as "on its
    /// way" (see [`super::DueEntry::in_flight`]). Every write, whoever builds it, keeps that.
    fn ends_the_way(&self) -> bool {
        let on_its_way = [DeliveryState::Queued.as_str(), DeliveryState::Sending.as_str()];
        let sets_recheck = self.set.iter().any(|c| c.trim_start().starts_with(RECHECK_AT));
        let to = self.set.iter().find_map(|c| {
            let placeholder = c
                .trim_start()
                .strip_prefix("#st")?
                .trim_start()
                .strip_prefix('=')?
                .trim();
            self.values
                .iter()
                .find(|(p, _)| p == placeholder)
                .and_then(|(_, v)| v.as_s().ok())
        });
        !sets_recheck && to.is_some_and(|state| !on_its_way.contains(&state.as_str()))
    }

    /// The placeholders the expressions use (DynamoDB refuses unused ones).
    fn used(&self) -> Placeholders {
        let text = format!("{} {}", self.expression(), self.condition.as_deref().unwrap_or(""));
        let uses = |p: &str| {
            text.match_indices(p).any(|(i, _)| {
                text[i + p.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
            })
        };
        let names = self.names.iter().filter(|(p, _)| uses(p)).cloned().collect();
        let values = self
            .values
            .iter()
            .map(|(p, v)| {
                if p == ":lw" {
                    (p.clone(), s(&self.token))
                } else {
                    (p.clone(), v.clone())
                }
            })
            .filter(|(p, _)| uses(p))
            .collect();
        (names, values)
    }

    /// Whether `item` carries this change's token: the change was applied.
    pub fn is_ours(&self, item: &Item) -> bool {
        attr_s(item, LAST_WRITE) == Some(self.token.as_str())
    }

    /// The change as a transaction item (an operator's command and its audit
    /// record are written together).
    pub fn into_update(self, store: &DeliveryStore, id: &DeliveryId) -> Result<Update, StoreError> {
        let (names, values) = self.used();
        let mut u = Update::builder()
            .table_name(store.table())
            .key("pk", s(partition_key(id.cycle, id.shard)))
            .key("customer_id", s(id.customer.as_str()))
            .update_expression(self.expression())
            .set_condition_expression(self.condition.clone())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (p, a) in names {
            u = u.expression_attribute_names(p, a);
        }
        for (p, v) in values {
            u = u.expression_attribute_values(p, v);
        }
        u.build().map_err(|e| StoreError::Decode {
            resource: store.table().to_owned(),
            what: "delivery update".into(),
            message: e.to_string(),
        })
    }
}

impl DeliveryStore {
    /// Applies `change` to the delivery `id` (see the module doc). When even
    /// the SDK's retries got no answer, one consistent read settles what it
    /// can: an item that carries the change's token was changed by it
    /// (`Applied`); otherwise, or if the read fails too, the outcome stays
    /// `Unknown`.
    pub async fn write(&self, id: &DeliveryId, change: &Change) -> Written {
        match self
            .write_at(&partition_key(id.cycle, id.shard), id.customer.as_str(), change)
            .await
        {
            Written::Unknown(e) => match self.raw(id.cycle, id.shard, &id.customer).await {
                Ok(Some(item)) if change.is_ours(&item) => {
                    tracing::info!(delivery_id = %id, token = change.token(), "a write with no answer was found applied");
                    Written::Applied(item)
                }
                _ => Written::Unknown(e),
            },
            other => other,
        }
    }

    /// Applies `change` to the item with this table key as stored (an index
    /// entry whose key does not parse as a delivery id can still be parked).
    pub async fn write_at(&self, pk: &str, customer_id: &str, change: &Change) -> Written {
        let (names, values) = change.used();
        let mut req = self
            .client
            .update_item()
            .table_name(self.table())
            .key("pk", s(pk))
            .key("customer_id", s(customer_id))
            .update_expression(change.expression())
            .set_condition_expression(change.condition.clone())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (p, a) in names {
            req = req.expression_attribute_names(p, a);
        }
        for (p, v) in values {
            req = req.expression_attribute_values(p, v);
        }
        match req.send().await {
            Ok(out) => Written::Applied(out.attributes.unwrap_or_default()),
            Err(e) => self.refused_or_unknown(change, e),
        }
    }

    fn refused_or_unknown(&self, change: &Change, e: SdkError<UpdateItemError, HttpResponse>) -> Written {
        if let Some(UpdateItemError::ConditionalCheckFailedException(failed)) = e.as_service_error() {
            let item = failed.item.clone().filter(|i| !i.is_empty());
            return match item {
                // Our own write, applied, whose answer was lost: the SDK's retry failed its condition.
                Some(item) if change.is_ours(&item) => {
                    tracing::info!(token = change.token(), "a retried write found itself applied");
                    Written::Applied(item)
                }
                other => Written::Refused(other),
            };
        }
        Written::Unknown(StoreError::aws("UpdateItem", self.table(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_that_ends_the_way_removes_the_recheck_time_and_only_then() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let to = |state: DeliveryState| {
            Change::new("t", now)
                .set("#st = :to")
                .text(":to", state.as_str())
                .expression()
        };
        for state in [
            DeliveryState::Ready,
            DeliveryState::Held,
            DeliveryState::SentEmail,
            DeliveryState::Dead,
        ] {
            assert!(to(state).ends_with("REMOVE recheck_at"), "{state:?}: {}", to(state));
        }
        for state in [DeliveryState::Queued, DeliveryState::Sending] {
            assert!(!to(state).contains("recheck_at"), "{state:?}");
        }
        // No state change, or one that sets the time itself: untouched; never named twice.
        assert!(!Change::new("t", now).set("x = :x").expression().contains("recheck_at"));
        let enqueue = Change::new("t", now)
            .set("#st = :ready")
            .set("recheck_at = :r")
            .text(":ready", "READY")
            .expression();
        assert!(!enqueue.contains("REMOVE"), "{enqueue}");
        let twice = Change::new("t", now)
            .set("#st = :ready")
            .remove("recheck_at")
            .text(":ready", "READY")
            .expression();
        assert_eq!(twice.matches("recheck_at").count(), 1, "{twice}");
    }

    #[test]
    fn the_expression_has_every_clause_and_only_the_placeholders_it_uses() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let c = Change::new("run-1/queue", now)
            .set("#st = :queued")
            .add("deferrals :one")
            .remove("due_pk")
            .remove("due_pk")
            .condition("#st = :ready")
            .text(":queued", "QUEUED")
            .text(":ready", "READY")
            .number(":one", 1)
            .text(":unused", "x")
            .text(":ready_at", "not used either");
        assert_eq!(
            c.expression(),
            "SET last_write = :lw, updated_at = :now, #st = :queued ADD deferrals :one REMOVE due_pk"
        );
        let (names, values) = c.used();
        assert_eq!(names, vec![("#st".to_owned(), "state".to_owned())]);
        let placeholders: Vec<&str> = values.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(placeholders, vec![":now", ":lw", ":queued", ":ready", ":one"]);
        let lw = values.iter().find(|(p, _)| p == ":lw").map(|(_, v)| v.clone());
        assert_eq!(lw, Some(s("run-1/queue")));
    }

    #[test]
    fn a_change_knows_its_own_token_and_no_other() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let c = Change::new("req-1/msg-1/complete", now);
        let mut item = Item::new();
        assert!(!c.is_ours(&item));
        item.insert(LAST_WRITE.into(), s("req-2/msg-1/complete"));
        assert!(!c.is_ours(&item));
        item.insert(LAST_WRITE.into(), s("req-1/msg-1/complete"));
        assert!(c.is_ours(&item));
    }
}
