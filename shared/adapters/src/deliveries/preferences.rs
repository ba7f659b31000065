//! A customer's new preferences (send day, do-not-disturb slots, preferred channel) carried to
//! their deliveries that are not yet sent: [`plan`] says what a change does to one delivery as
//! read, and gives the [`Change`] to write, named by the command's id and conditioned on the
//! delivery as read (its state, `updated_at` and last write), so that a sender's claim or any
//! other write in between refuses it. The admin API writes every change with the customer's
//! update and the command's record in one transaction.
//!
//! | the delivery is | what the change does |
//! |---|---|
//! | `READY` (waiting, or deferred by a sender) | **moved**: send date from the new send day in its cycle's send month (clamped), the new slots, `available_at` at the first allowed slot on or after the new send date (or after now, when that date has passed), back in the `Due` index; the preferred channel if no channel was started |
//! | `READY`, force-sent by an administrator | **updated**: its time and its set-aside slots stay as forced; the new slots are the ones put back once it is sent |
//! | `HELD` | **updated**: send date, slots, channel; its time is the one an operator gives when releasing it |
//! | `QUEUED`, never claimed | **moved** back to `READY`, as above: the message on the queue is dropped as stale by the sender that receives it (a claim needs `QUEUED`) |
//! | `QUEUED` after a claim (a retry or a fallback under way) | **slots updated**: the send keeps its date and channel; the sender checks the new slots when it takes the message and defers it to an allowed slot |
//! | `SENDING` | **not changed**: already claimed by a sender, the send goes ahead as claimed |
//! | `SENT_*`, `DEAD`, `UNCONFIRMED` | **not changed**: sent, or ended |
//!
//! A delivery whose send date, slots and channel the change leaves as they are is
//! **unchanged** (nothing is written). Contact data is not on a delivery: a sender reads it
//! from the customer when it sends. A new email address changes only the keyed hash a
//! delivery holds (`email_hash`, for dispatch's suppression check), on every delivery above
//! that is not claimed, sent or ended; with nothing else changed, that delivery is
//! **updated** and keeps its time.

use chrono::{DateTime, NaiveDate, Utc};
use domain::delivery::{send_date, start_of_day};
use domain::{Channel, ContactWindow, CustomerId, Cycle, DeliveryId, DeliveryState, SendDay, SlotSet};
use futures::{StreamExt, TryStreamExt, stream};

use super::commands::{Seen, Unreadable};
use super::write::Change;
use super::{DeliveryStore, due_key};
use crate::StoreError;
use crate::dynamo::{Item, attr_s};

/// A customer's preferences as deliveries take them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPreferences {
    pub send_day: SendDay,
    pub dnd: SlotSet,
    pub preferred_channel: Channel,
    /// The slots the new do-not-disturb set and the stack's quiet window leave.
    pub window: ContactWindow,
    /// The keyed look-up hash of the customer's new email address, when it changes: what a
    /// waiting delivery's `email_hash` becomes (dispatch checks it against the suppression
    /// list).
    pub email_hash: Option<String>,
}

/// What a preference change does to one delivery.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A new send date and time, in the `Due` index.
    Moved,
    /// New values, its time kept (held, or force-sent).
    Updated,
    /// Only the do-not-disturb slots: a send is under way.
    SlotsUpdated,
    /// Nothing it uses changed.
    Unchanged,
    /// Claimed, sent or ended: never changed.
    NotChanged,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Moved => "moved",
            Effect::Updated => "updated",
            Effect::SlotsUpdated => "slots-updated",
            Effect::Unchanged => "unchanged",
            Effect::NotChanged => "not-changed",
        }
    }
}

/// What the change does to one delivery, and the write that does it.
#[derive(Clone, Debug)]
pub struct Planned {
    pub effect: Effect,
    /// Why, in the operator's words.
    pub note: &'static str,
    pub state_before: DeliveryState,
    pub state_after: DeliveryState,
    pub send_date_before: Option<String>,
    pub send_date: Option<NaiveDate>,
    pub available_at_before: Option<DateTime<Utc>>,
    pub available_at: Option<DateTime<Utc>>,
    /// The new preferred channel was applied.
    pub channel_applied: bool,
    /// The write (`None` when nothing is written).
    pub change: Option<Change>,
}

fn slots(item: &Item, name: &'static str) -> Result<SlotSet, Unreadable> {
    match item.get(name) {
        None => Ok(SlotSet::EMPTY),
        Some(v) => serde_dynamo::from_attribute_value(v.clone()).map_err(|_| Unreadable(name)),
    }
}

fn number(item: &Item, name: &'static str) -> Result<u64, Unreadable> {
    match item.get(name) {
        None => Ok(0),
        Some(v) => v.as_n().ok().and_then(|n| n.parse().ok()).ok_or(Unreadable(name)),
    }
}

/// The first allowed slot start on or after the start of `date` (Asia/Seoul), or after `now`
/// when that has passed: the instant the dispatch run that may take the delivery starts.
pub fn first_allowed_at(window: ContactWindow, date: NaiveDate, now: DateTime<Utc>) -> DateTime<Utc> {
    let now = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    window.next_allowed_slot_start(start_of_day(date).max(now))
}

/// What the preferences `new` do to the delivery `id`, stored as `item`, given by the command
/// `command_id` at `now` (see the module doc).
pub fn plan(
    command_id: &str,
    id: &DeliveryId,
    item: &Item,
    new: &NewPreferences,
    now: DateTime<Utc>,
) -> Result<Planned, Unreadable> {
    let seen = Seen::read(item)?;
    let forced = item.contains_key("dnd_before_force");
    // The customer's slots on the delivery: set aside by a force-send, or in force.
    let customer_dnd = slots(item, if forced { "dnd_before_force" } else { "dnd" })?;
    let started =
        number(item, "attempts_email")? > 0 || number(item, "attempts_sms")? > 0 || item.contains_key("provider_call");
    let claimed_before = item.contains_key("claims_email") || item.contains_key("claims_sms");
    let send_date_before = attr_s(item, "send_date").map(str::to_owned);
    let new_date = send_date(id.cycle, new.send_day);
    let date_changes = send_date_before.as_deref() != Some(new_date.to_string().as_str());
    let dnd_changes = customer_dnd != new.dnd;
    let channel_changes = !started && seen.preferred_channel != Some(new.preferred_channel);

    let mut out = Planned {
        effect: Effect::NotChanged,
        note: "",
        state_before: seen.state,
        state_after: seen.state,
        send_date_before,
        send_date: None,
        available_at_before: seen.available_at,
        available_at: None,
        channel_applied: false,
        change: None,
    };
    let not_changed = |mut out: Planned, note| {
        out.note = note;
        Ok(out)
    };
    match seen.state {
        DeliveryState::Sending => {
            return not_changed(out, "already claimed by a sender: the send goes ahead as claimed");
        }
        DeliveryState::SentEmail | DeliveryState::SentSms => return not_changed(out, "already sent"),
        DeliveryState::Dead => return not_changed(out, "ended DEAD; an operator's resend sends it again"),
        DeliveryState::Unconfirmed => {
            return not_changed(out, "may have been sent; an operator confirms or resends it");
        }
        _ => {}
    }
    let under_way = seen.state == DeliveryState::Queued && (claimed_before || started || forced);
    // A new email address: its hash, when the delivery holds another one.
    let email_hash = new
        .email_hash
        .as_deref()
        .filter(|h| attr_s(item, "email_hash") != Some(*h));
    if !(date_changes || dnd_changes || channel_changes) || (under_way && !dnd_changes) {
        if let Some(h) = email_hash {
            out.effect = Effect::Updated;
            out.note = "the new email address's look-up hash is recorded; its time is kept";
            out.change = Some(
                by_preferences(command_id, &seen, now)
                    .set("email_hash = :email_hash")
                    .text(":email_hash", h),
            );
            return Ok(out);
        }
        out.effect = Effect::Unchanged;
        out.note = "nothing it uses changed";
        return Ok(out);
    }

    let dnd_attr = if forced { "dnd_before_force" } else { "dnd" };
    let mut change = by_preferences(command_id, &seen, now)
        .set(format!("{dnd_attr} = :new_dnd"))
        .value(
            ":new_dnd",
            serde_dynamo::to_attribute_value(new.dnd).map_err(|_| Unreadable("dnd"))?,
        );
    if let Some(h) = email_hash {
        change = change.set("email_hash = :email_hash").text(":email_hash", h);
    }
    if under_way {
        out.effect = Effect::SlotsUpdated;
        out.note = "a send is under way: it keeps its date and channel; the sender checks the new slots when it takes the message";
        out.change = Some(change);
        return Ok(out);
    }
    change = change.set("send_date = :date").text(":date", new_date.to_string());
    out.send_date = Some(new_date);
    if channel_changes {
        change = change
            .set("preferred_channel = :channel")
            .text(":channel", new.preferred_channel.as_str());
        out.channel_applied = true;
    }
    let queued = seen.state == DeliveryState::Queued;
    if seen.state == DeliveryState::Held {
        out.effect = Effect::Updated;
        out.note = "held by an operator: it goes out when released, in an allowed slot";
    } else if forced {
        out.effect = Effect::Updated;
        out.note = "force-sent by an administrator: it keeps its time; the new slots are put back once it is sent";
    } else if date_changes || dnd_changes || queued {
        let at = first_allowed_at(new.window, new_date, now);
        change = change
            .set("#st = :ready")
            .set("available_at = :at")
            .set("due_pk = :due")
            .text(":ready", DeliveryState::Ready.as_str())
            .time(":at", &at)
            .text(":due", due_key(id.cycle, domain::delivery::due_bucket(&id.customer)));
        if queued {
            // Its message is stale now: the claim needs QUEUED on the channel it names.
            change = change.remove("channel").remove("run_id").remove("queued_at");
            out.note = "taken back from the queue (its message is dropped as stale) and due at its new time";
        } else {
            out.note = "due at its new time";
        }
        out.effect = Effect::Moved;
        out.state_after = DeliveryState::Ready;
        out.available_at = Some(at);
    } else {
        out.effect = Effect::Updated;
        out.note = "its time is kept";
    }
    out.change = Some(change);
    Ok(out)
}

/// A change by the preference command `command_id`, conditioned on the delivery as `seen`.
fn by_preferences(command_id: &str, seen: &Seen, now: DateTime<Utc>) -> Change {
    let mut condition = vec!["#st = :seen"];
    condition.push(if seen.updated_at.is_some() {
        "updated_at = :seen_updated"
    } else {
        "attribute_not_exists(updated_at)"
    });
    condition.push(if seen.last_write.is_some() {
        "last_write = :seen_write"
    } else {
        "attribute_not_exists(last_write)"
    });
    Change::new(format!("{command_id}/preferences"), now)
        .set("last_command = :cmd")
        .condition(condition.join(" AND "))
        .text(":cmd", command_id)
        .text(":seen", seen.state.as_str())
        .text(":seen_updated", seen.updated_at.clone().unwrap_or_default())
        .text(":seen_write", seen.last_write.clone().unwrap_or_default())
}

/// How many reads [`DeliveryStore::of_customer`] has in flight.
const READS_IN_FLIGHT: usize = 8;

impl DeliveryStore {
    /// The customer's deliveries in `cycles` (those that exist), each read consistently, in
    /// the order of `cycles`.
    pub async fn of_customer(
        &self,
        cycles: &[Cycle],
        shard: u32,
        customer: &CustomerId,
    ) -> Result<Vec<(DeliveryId, Item)>, StoreError> {
        let found: Vec<Option<(DeliveryId, Item)>> = stream::iter(cycles.iter().copied())
            .map(|cycle| async move {
                let item = self.raw(cycle, shard, customer).await?;
                Ok::<_, StoreError>(item.map(|i| (DeliveryId::new(cycle, shard, customer.clone()), i)))
            })
            .buffered(READS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use domain::{QuietWindow, Slot};

    fn kst(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("{s}+09:00"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn item(state: &str) -> Item {
        let mut i = Item::new();
        let s = |v: &str| AttributeValue::S(v.into());
        i.insert("state".into(), s(state));
        i.insert("send_date".into(), s("2026-12-15"));
        i.insert("available_at".into(), s("2026-12-14T15:00:00Z"));
        i.insert("updated_at".into(), s("2026-12-01T00:00:00Z"));
        i.insert("preferred_channel".into(), s("email"));
        i.insert("dnd".into(), AttributeValue::L(Vec::new()));
        i
    }

    fn prefs(day: u32, dnd: &[u32], channel: Channel) -> NewPreferences {
        let dnd: SlotSet = dnd.iter().map(|i| Slot::new(*i).unwrap()).collect();
        NewPreferences {
            send_day: SendDay::new(day).unwrap(),
            dnd,
            preferred_channel: channel,
            window: ContactWindow::new(dnd, QuietWindow::default_korea()).unwrap(),
            email_hash: None,
        }
    }

    fn id() -> DeliveryId {
        DeliveryId::parse("2026-11#00000#C0000001").unwrap()
    }

    #[test]
    fn a_waiting_delivery_moves_to_the_first_allowed_slot_of_its_new_send_date() {
        let now = kst("2026-12-10T10:00:00");
        // Quiet 21:00-08:00 and no disturbing 08:00-12:00: the first allowed slot is 12:00.
        let p = plan("cmd-1", &id(), &item("READY"), &prefs(20, &[4, 5], Channel::Sms), now).unwrap();
        assert_eq!(p.effect, Effect::Moved);
        assert_eq!(p.send_date.unwrap().to_string(), "2026-12-20");
        assert_eq!(p.available_at, Some(kst("2026-12-20T12:00:00")));
        assert!(p.channel_applied);
        let change = p.change.unwrap();
        assert_eq!(change.token(), "cmd-1/preferences");
        let e = change.expression();
        assert!(
            e.contains("due_pk = :due") && e.contains("preferred_channel = :channel"),
            "{e}"
        );
        // A send day already past in the send month: due from now (this slot allows it), or
        // from the next allowed slot.
        let p = plan("cmd-2", &id(), &item("READY"), &prefs(3, &[], Channel::Email), now).unwrap();
        assert_eq!(p.available_at, Some(now));
        let later = kst("2026-12-10T10:30:00");
        let p = plan("cmd-2", &id(), &item("READY"), &prefs(3, &[6], Channel::Email), later).unwrap();
        assert_eq!(p.available_at, Some(kst("2026-12-10T14:00:00")));
        // 31 in a 30-day month is its last day.
        let p = plan("cmd-3", &id(), &item("READY"), &prefs(31, &[], Channel::Email), now).unwrap();
        assert_eq!(p.send_date.unwrap().to_string(), "2026-12-31");
    }

    #[test]
    fn claimed_sent_and_ended_deliveries_are_never_changed() {
        let now = kst("2026-12-10T10:00:00");
        for state in ["SENDING", "SENT_EMAIL", "SENT_SMS", "DEAD", "UNCONFIRMED"] {
            let p = plan("c", &id(), &item(state), &prefs(20, &[4], Channel::Sms), now).unwrap();
            assert_eq!((p.effect, p.change.is_none()), (Effect::NotChanged, true), "{state}");
        }
    }

    #[test]
    fn a_queued_delivery_goes_back_unless_a_send_is_under_way() {
        let now = kst("2026-12-10T10:00:00");
        let mut queued = item("QUEUED");
        queued.insert("channel".into(), AttributeValue::S("email".into()));
        let p = plan("c", &id(), &queued, &prefs(20, &[], Channel::Email), now).unwrap();
        assert_eq!((p.effect, p.state_after), (Effect::Moved, DeliveryState::Ready));
        assert!(p.change.unwrap().expression().contains("REMOVE channel"));
        queued.insert("claims_email".into(), AttributeValue::N("1".into()));
        queued.insert("attempts_email".into(), AttributeValue::N("1".into()));
        let p = plan("c", &id(), &queued, &prefs(20, &[6], Channel::Sms), now).unwrap();
        assert_eq!((p.effect, p.state_after), (Effect::SlotsUpdated, DeliveryState::Queued));
        let e = p.change.unwrap().expression();
        assert!(
            !e.contains("send_date") && !e.contains("preferred_channel") && !e.contains("#st ="),
            "{e}"
        );
        let p = plan("c", &id(), &queued, &prefs(20, &[], Channel::Sms), now).unwrap();
        assert_eq!((p.effect, p.change.is_none()), (Effect::Unchanged, true));
    }

    #[test]
    fn a_new_email_updates_the_hash_of_waiting_deliveries_only() {
        let now = kst("2026-12-10T10:00:00");
        let mut new = prefs(15, &[], Channel::Email);
        new.email_hash = Some("dev:0123456789abcdef0123456789abcdef".into());
        // Nothing else changes: only the hash, the time kept.
        let p = plan("c", &id(), &item("READY"), &new, now).unwrap();
        assert_eq!((p.effect, p.available_at), (Effect::Updated, None));
        let e = p.change.unwrap().expression();
        assert!(
            e.contains("email_hash = :email_hash") && !e.contains("available_at"),
            "{e}"
        );
        // With another change, in the same write.
        new.send_day = SendDay::new(20).unwrap();
        let p = plan("c", &id(), &item("HELD"), &new, now).unwrap();
        assert!(p.change.unwrap().expression().contains("email_hash = :email_hash"));
        // The hash it holds already, or a delivery claimed, sent or ended: nothing.
        let mut same = item("READY");
        same.insert("email_hash".into(), AttributeValue::S(new.email_hash.clone().unwrap()));
        new.send_day = SendDay::new(15).unwrap();
        let p = plan("c", &id(), &same, &new, now).unwrap();
        assert_eq!((p.effect, p.change.is_none()), (Effect::Unchanged, true));
        for state in ["SENDING", "SENT_EMAIL", "DEAD"] {
            let p = plan("c", &id(), &item(state), &new, now).unwrap();
            assert_eq!((p.effect, p.change.is_none()), (Effect::NotChanged, true), "{state}");
        }
    }

    #[test]
    fn held_and_force_sent_deliveries_keep_their_time() {
        let now = kst("2026-12-10T10:00:00");
        let p = plan("c", &id(), &item("HELD"), &prefs(20, &[6], Channel::Email), now).unwrap();
        assert_eq!((p.effect, p.available_at), (Effect::Updated, None));
        assert!(!p.change.unwrap().expression().contains("available_at"));
        let mut forced = item("READY");
        forced.insert("dnd_before_force".into(), AttributeValue::L(Vec::new()));
        let p = plan("c", &id(), &forced, &prefs(15, &[6], Channel::Email), now).unwrap();
        assert_eq!(p.effect, Effect::Updated);
        let e = p.change.unwrap().expression();
        assert!(
            e.contains("dnd_before_force = :new_dnd") && !e.contains("available_at"),
            "{e}"
        );
        let p = plan("c", &id(), &item("READY"), &prefs(15, &[], Channel::Email), now).unwrap();
        assert_eq!((p.effect, p.change.is_none()), (Effect::Unchanged, true));
    }
}
