//! Dispatch's transitions of a delivery: enqueue it ([`queue_change`]), put
//! it back when SQS refused its message ([`revert_change`]), park an index
//! entry that does not decode ([`DeliveryStore::park`]), and end `DEAD` a
//! delivery no slot can ever carry ([`dead_change`]).
//!
//! Every change is named by the run's **write token** (unique per
//! invocation: two invocations of one run id never share one) and a step,
//! so that a write whose answer was lost is recognised as this run's own
//! ([`super::write`]), and — when even the SDK's retries got no answer — a
//! consistent read settles it ([`DeliveryStore::write`]): a write
//! found applied counts as this run's, one not found stays unknown and is
//! never counted as taken.

use chrono::{DateTime, Utc};
use domain::{Channel, DeliveryState};

use super::claims::{MAX_ERROR_CODE, RESTORE_DND};
use super::write::{Change, Written};
use super::{BadEntry, DeliveryStore, DueEntry};

/// The error code a delivery ends with when its customer's DND leaves no
/// slot outside the quiet window.
pub const NO_ALLOWED_SLOT: &str = "no-allowed-slot";

/// `READY` → `QUEUED` on `channel` by `run_id`, if the delivery is still the
/// one the caller read (same `available_at` and `recheck_at`): of two runs,
/// one wins. It keeps its place in the `Due` index (its sort key does not
/// move: the write updates the index entry in place) with `recheck_at`: if
/// no sender has claimed it by then (a crash between this write and the
/// message, a message lost), a later run finds it and enqueues it again. The
/// same goes for a `QUEUED` delivery whose re-check time came, and for a
/// `SENDING` one whose sender's lease ended with no message left to bring it
/// back (the next claim takes it over). The index holds no state, so one
/// condition covers the three: the item's own state decides.
pub fn queue_change(
    e: &DueEntry,
    channel: Channel,
    run_id: &str,
    token: &str,
    now: DateTime<Utc>,
    recheck_at: DateTime<Utc>,
) -> Change {
    let change = Change::new(format!("{token}/queue"), now)
        .set("#st = :queued")
        .set("channel = :ch")
        .set("run_id = :run")
        .set("queued_at = :now")
        .set("recheck_at = :recheck")
        .remove("lease_until")
        .remove("claim_id")
        .text(":queued", DeliveryState::Queued.as_str())
        .text(":ready", DeliveryState::Ready.as_str())
        .text(":sending", DeliveryState::Sending.as_str())
        .text(":ch", channel.as_str())
        .text(":run", run_id)
        .time(":recheck", &recheck_at)
        .time(":seen", &e.available_at);
    let (change, seen_recheck) = match &e.recheck_at {
        Some(t) => (change.time(":seen_recheck", t), "recheck_at = :seen_recheck"),
        None => (change, "attribute_not_exists(recheck_at)"),
    };
    change.condition(format!(
        "available_at = :seen AND {seen_recheck} AND (#st IN (:ready, :queued) OR (#st = :sending AND lease_until < :now))"
    ))
}

/// Undoes this run's [`queue_change`] when the message could not be sent:
/// back to `READY` at `available_at`, only if nothing has changed the
/// delivery since (its last write is still this run's enqueue — another
/// invocation of the same run id can never undo it). Like every write to
/// `READY`, it removes `recheck_at` ([`Change`]).
pub fn revert_change(token: &str, available_at: DateTime<Utc>, now: DateTime<Utc>) -> Change {
    Change::new(format!("{token}/revert"), now)
        .set("#st = :ready")
        .set("available_at = :at")
        .remove("run_id")
        .remove("queued_at")
        .condition("#st = :queued AND last_write = :mine")
        .text(":ready", DeliveryState::Ready.as_str())
        .text(":queued", DeliveryState::Queued.as_str())
        .text(":mine", format!("{token}/queue"))
        .time(":at", &available_at)
}

/// Takes an entry that does not decode out of the `Due` index
/// (`parked_reason`, `parked_at`), if it is still in the partition it was
/// found in; the rest of the item is left as it is for an operator.
pub fn park_change(bad: &BadEntry, reason: &str, token: &str, now: DateTime<Utc>) -> Change {
    Change::new(format!("{token}/park"), now)
        .set("parked_reason = :why")
        .set("parked_at = :now")
        .remove("due_pk")
        .condition("due_pk = :seen")
        .text(":seen", &bad.due_pk)
        .text(":why", domain::text::reason(reason))
}

/// Ends `e` `DEAD` with `error_code`, out of the `Due` index, if it is still
/// as the dispatch run read it: `READY` or `QUEUED` with the same
/// `available_at`. A delivery a sender held (`SENDING`) is left to the
/// sender that takes it over, whose own slot check ends it.
pub fn dead_change(e: &DueEntry, error_code: &str, run_id: &str, token: &str, now: DateTime<Utc>) -> Change {
    Change::new(format!("{token}/dead"), now)
        .set("#st = :dead")
        .set("last_error = :err")
        .set("run_id = :run")
        .set(RESTORE_DND)
        .remove("due_pk")
        .remove("dnd_before_force")
        .condition("#st IN (:ready, :queued) AND available_at = :seen")
        .text(":dead", DeliveryState::Dead.as_str())
        .text(":ready", DeliveryState::Ready.as_str())
        .text(":queued", DeliveryState::Queued.as_str())
        .text(":err", domain::text::bounded(error_code, MAX_ERROR_CODE))
        .text(":run", run_id)
        .time(":seen", &e.available_at)
}

impl DeliveryStore {
    /// [`queue_change`], written; `token` names this run's writes (unique
    /// per invocation).
    pub async fn mark_queued(
        &self,
        e: &DueEntry,
        channel: Channel,
        run_id: &str,
        token: &str,
        now: DateTime<Utc>,
        recheck_at: DateTime<Utc>,
    ) -> Written {
        let change = queue_change(e, channel, run_id, token, now, recheck_at);
        self.write(&e.delivery_id(), &change).await
    }

    /// [`revert_change`], written: undone only if this run's enqueue
    /// (`token`) is still the delivery's last write.
    pub async fn revert_queued(
        &self,
        e: &DueEntry,
        token: &str,
        available_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Written {
        let change = revert_change(token, available_at, now);
        self.write(&e.delivery_id(), &change).await
    }

    /// [`park_change`], written to the item's key as stored (the entry's key
    /// may not parse as a delivery id). `Refused` when it had already left
    /// (parked by another run, or repaired).
    pub async fn park(&self, bad: &BadEntry, reason: &str, token: &str, now: DateTime<Utc>) -> Written {
        self.write_at(&bad.pk, &bad.customer_id, &park_change(bad, reason, token, now))
            .await
    }

    /// [`dead_change`], written. Whoever calls it records the failure
    /// first, so that no delivery is ever `DEAD` without its record.
    pub async fn end_at_dispatch(
        &self,
        e: &DueEntry,
        error_code: &str,
        run_id: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Written {
        let change = dead_change(e, error_code, run_id, token, now);
        self.write(&e.delivery_id(), &change).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{CustomerId, Cycle, SlotSet};

    fn entry(at: DateTime<Utc>) -> DueEntry {
        DueEntry {
            cycle: Cycle::new(2026, 11).unwrap(),
            shard: 3,
            customer_id: CustomerId::new("C0000001").unwrap(),
            available_at: at,
            dnd: SlotSet::ALL,
            preferred_channel: Channel::Email,
            queued_at: None,
            recheck_at: None,
            route: None,
            email_hash: None,
        }
    }

    #[test]
    fn every_step_is_named_by_the_runs_token() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let e = entry(now);
        let t = "dispatch-x/00ff";
        assert_eq!(
            queue_change(&e, Channel::Sms, "dispatch-x", t, now, now).token(),
            "dispatch-x/00ff/queue"
        );
        assert_eq!(revert_change(t, now, now).token(), "dispatch-x/00ff/revert");
        let dead = dead_change(&e, NO_ALLOWED_SLOT, "dispatch-x", t, now);
        assert_eq!(dead.token(), "dispatch-x/00ff/dead");
        let expr = dead.expression();
        assert!(expr.contains("#st = :dead") && expr.contains("REMOVE due_pk"), "{expr}");
        assert!(expr.contains(RESTORE_DND), "{expr}");
    }

    #[test]
    fn the_enqueue_reads_the_items_state_and_the_entry_it_saw() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let waiting = entry(now);
        let c = queue_change(&waiting, Channel::Email, "run", "run/1", now, now);
        let cond = c.condition_expression().unwrap().to_owned();
        assert!(cond.contains("attribute_not_exists(recheck_at)"), "{cond}");
        assert!(
            cond.contains("#st IN (:ready, :queued)") && cond.contains("#st = :sending AND lease_until < :now"),
            "{cond}"
        );
        let on_its_way = DueEntry {
            recheck_at: Some(now),
            ..entry(now)
        };
        let c = queue_change(&on_its_way, Channel::Email, "run", "run/2", now, now);
        let cond = c.condition_expression().unwrap();
        assert!(
            cond.contains("recheck_at = :seen_recheck") && cond.contains("available_at = :seen"),
            "{cond}"
        );
    }
}

#[cfg(test)]
mod due_entry_tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use domain::{Channel, Cycle};

    use crate::dynamo::Item;

    fn index_entry(extra: &[(&str, &str)]) -> Item {
        let mut item: Item = [
            ("pk", "2026-11#00003"),
            ("customer_id", "C0000001"),
            ("available_at", "2026-12-10T00:00:00Z"),
            ("preferred_channel", "email"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())))
        .collect();
        item.insert("due_pk".into(), AttributeValue::S("2026-11#07".into()));
        item
    }

    #[test]
    fn the_route_and_the_email_hash_are_read_from_the_index_entry() {
        let cycle = Cycle::new(2026, 11).unwrap();
        let plain = super::super::due_entry(cycle, &index_entry(&[])).unwrap();
        assert!(!plain.in_flight());
        assert_eq!((plain.route, plain.email_hash), (None, None));
        let queued = super::super::due_entry(cycle, &index_entry(&[("recheck_at", "2026-12-10T02:00:00Z")])).unwrap();
        assert!(queued.in_flight());
        let hash = "k1:0123456789abcdef0123456789abcdef";
        let routed = super::super::due_entry(cycle, &index_entry(&[("route", "sms"), ("email_hash", hash)])).unwrap();
        assert_eq!(routed.route, Some(Channel::Sms));
        assert_eq!(routed.email_hash.as_deref(), Some(hash));
        let bad = super::super::due_entry(cycle, &index_entry(&[("route", "pigeon")])).unwrap_err();
        assert!(bad.contains("route"), "{bad}");
        let mut not_text = index_entry(&[]);
        not_text.insert("email_hash".into(), AttributeValue::N("1".into()));
        let bad = super::super::due_entry(cycle, &not_text).unwrap_err();
        assert!(bad.contains("email_hash"), "{bad}");
    }
}
