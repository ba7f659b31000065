//! What a sender decides, apart from any I/O: whether a message may be sent
//! now or waits for a later slot, and what follows a failed send.
//!
//! * **The slot, again at send time** (DESIGN §4): queues can back up across
//!   a slot boundary, so a message that arrives while the customer's DND or
//!   the quiet window forbids sending is deferred to the start of the next
//!   allowed slot — never sent then, never dropped.
//! * **After a failure**: a retryable failure is tried again on the same
//!   channel after an exponential backoff with full jitter, until the
//!   channel's attempts are used up; then email falls back to SMS (if the
//!   policy enables it) and SMS ends `DEAD`. A permanent failure (an address
//!   the provider refuses) skips the remaining attempts of its channel.
//!   The jitter is drawn from the delivery id and attempt number, so a
//!   replay decides the same.

use chrono::{DateTime, Utc};

use crate::customer::Channel;
use crate::slots::{ContactWindow, QuietWindow, SlotError, SlotSet};

/// Send now, or not before `until`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SlotCheck {
    Send,
    Defer { until: DateTime<Utc> },
}

/// The send-time slot check for a customer with DND slots `dnd`.
pub fn slot_check(now: DateTime<Utc>, dnd: SlotSet, quiet: QuietWindow) -> Result<SlotCheck, SlotError> {
    let window = ContactWindow::new(dnd, quiet)?;
    Ok(if window.allows(now) {
        SlotCheck::Send
    } else {
        SlotCheck::Defer {
            until: window.next_allowed_slot_start(now),
        }
    })
}

/// How hard each channel is tried.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Email attempts before falling back to SMS (3–5 is sensible).
    pub email_attempts: u32,
    /// SMS attempts before the delivery is dead.
    pub sms_attempts: u32,
    /// The first retry waits up to this long (seconds)…
    pub base_delay_secs: u32,
    /// … doubling per attempt, never more than this (SQS allows 12 h of
    /// visibility; a retry within the slot is what the customer expects).
    pub max_delay_secs: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            email_attempts: 3,
            sms_attempts: 3,
            base_delay_secs: 30,
            max_delay_secs: 900,
        }
    }
}

/// What follows a failed send.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Same channel again, the message visible again after this many seconds.
    Retry { delay_secs: u32 },
    /// Email is used up: on to SMS.
    FallBackToSms,
    /// Every enabled channel is used up.
    Dead,
}

impl RetryPolicy {
    /// After a failed send on `channel`, the `attempts` of that channel
    /// counted so far (this one included). `sms_enabled`: whether the
    /// channel policy lets email fall back to SMS.
    pub fn after_failure(
        &self,
        delivery_id: &str,
        channel: Channel,
        attempts: u32,
        permanent: bool,
        sms_enabled: bool,
    ) -> AfterFailure {
        let limit = match channel {
            Channel::Email => self.email_attempts,
            Channel::Sms => self.sms_attempts,
        };
        if !permanent && attempts < limit {
            return AfterFailure::Retry {
                delay_secs: self.delay_secs(delivery_id, channel, attempts),
            };
        }
        match channel {
            Channel::Email if sms_enabled => AfterFailure::FallBackToSms,
            _ => AfterFailure::Dead,
        }
    }

    /// Full jitter: uniform in `[1, min(max, base · 2^(attempt-1))]`,
    /// drawn from the delivery id, channel and attempt.
    pub fn delay_secs(&self, delivery_id: &str, channel: Channel, attempt: u32) -> u32 {
        let exp = attempt.saturating_sub(1).min(20);
        let ceiling = self
            .base_delay_secs
            .max(1)
            .saturating_mul(1 << exp)
            .min(self.max_delay_secs.max(1));
        let draw = fnv1a(format!("{delivery_id}#{}#{attempt}", channel.as_str()).as_bytes());
        1 + (draw % u64::from(ceiling)) as u32
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::Slot;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn quiet() -> QuietWindow {
        QuietWindow::default_korea()
    }

    #[test]
    fn a_message_in_a_forbidden_slot_waits_for_the_next_allowed_one() {
        // 10:30 Seoul, slot 5 (10:00-12:00).
        let t = Utc.with_ymd_and_hms(2026, 12, 15, 1, 30, 0).unwrap();
        assert_eq!(slot_check(t, SlotSet::EMPTY, quiet()).unwrap(), SlotCheck::Send);
        let dnd = SlotSet::EMPTY.with(Slot::new(5).unwrap());
        assert_eq!(
            slot_check(t, dnd, quiet()).unwrap(),
            SlotCheck::Defer {
                until: Utc.with_ymd_and_hms(2026, 12, 15, 3, 0, 0).unwrap()
            }
        );
        // 21:30 Seoul, the quiet window: the next morning at 08:00.
        let night = Utc.with_ymd_and_hms(2026, 12, 31, 12, 30, 0).unwrap();
        assert_eq!(
            slot_check(night, SlotSet::EMPTY, quiet()).unwrap(),
            SlotCheck::Defer {
                until: Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap()
            }
        );
        assert!(slot_check(t, SlotSet::ALL, quiet()).is_err(), "no allowed slot at all");
    }

    #[test]
    fn email_is_tried_then_falls_back_then_sms_ends_dead() {
        let p = RetryPolicy::default();
        let id = "2026-11#00000#C0000001";
        assert!(matches!(
            p.after_failure(id, Channel::Email, 1, false, true),
            AfterFailure::Retry { .. }
        ));
        assert!(matches!(
            p.after_failure(id, Channel::Email, 2, false, true),
            AfterFailure::Retry { .. }
        ));
        assert_eq!(
            p.after_failure(id, Channel::Email, 3, false, true),
            AfterFailure::FallBackToSms
        );
        assert_eq!(p.after_failure(id, Channel::Email, 3, false, false), AfterFailure::Dead);
        assert_eq!(
            p.after_failure(id, Channel::Email, 1, true, true),
            AfterFailure::FallBackToSms
        );
        assert!(matches!(
            p.after_failure(id, Channel::Sms, 2, false, true),
            AfterFailure::Retry { .. }
        ));
        assert_eq!(p.after_failure(id, Channel::Sms, 3, false, true), AfterFailure::Dead);
        assert_eq!(p.after_failure(id, Channel::Sms, 1, true, true), AfterFailure::Dead);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn backoff_is_bounded_growing_and_reproducible(id in "[A-Z0-9#-]{5,30}", attempt in 1u32..40) {
            let p = RetryPolicy::default();
            let d = p.delay_secs(&id, Channel::Email, attempt);
            let ceiling = (30u64 << (attempt - 1).min(20)).min(900) as u32;
            prop_assert!(d >= 1 && d <= ceiling, "{d} > {ceiling}");
            prop_assert_eq!(d, p.delay_secs(&id, Channel::Email, attempt));
        }

        #[test]
        fn the_slot_check_never_says_send_in_a_forbidden_slot(
            bits in 0u16..4096, minutes in 0i64..(31 * 24 * 60),
        ) {
            let dnd = SlotSet::from_bits(bits).unwrap();
            let t = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(minutes);
            if let Ok(window) = ContactWindow::new(dnd, quiet()) {
                match slot_check(t, dnd, quiet()).unwrap() {
                    SlotCheck::Send => prop_assert!(window.allows(t)),
                    SlotCheck::Defer { until } => {
                        prop_assert!(!window.allows(t));
                        prop_assert!(until > t && window.allows(until));
                    }
                }
            }
        }
    }
}
