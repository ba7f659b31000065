//! Pacing the senders to the provider's maximum send rate, shared by every
//! sender instance through one DynamoDB table (`PACING_TABLE`).
//!
//! # The design
//!
//! Fixed one-second windows of the wall clock (UTC epoch seconds). Window `s`
//! of a channel is the item `pk = "<channel>#<s>"`, holding `taken`, the
//! tokens handed out in that second, and `expires_at` (TTL, an hour later).
//! A take is one conditional `UpdateItem`:
//!
//! ```text
//! ADD taken :k SET expires_at = :ttl
//! CONDITION attribute_not_exists(taken) OR taken <= :max - :k
//! RETURN UPDATED_NEW
//! ```
//!
//! so the sum over every instance never passes `N` (the rate, whole messages
//! per second) in one window, whatever the number of instances: DynamoDB
//! applies writes to one item one at a time. The answer (`taken` after the
//! write) says which tokens are ours: indices `taken - k .. taken`.
//!
//! * **Grants.** A request takes `k = ceil(N / 8)` tokens at once (at most the
//!   caller's limit, its send concurrency), kept by the instance for the rest
//!   of the window: about 8 successful requests per window whatever `N`. When
//!   fewer than `k` are left it asks for one; when that is refused the window
//!   is full and every task of the instance sleeps to the next second (one
//!   refused request per instance per full window, not one per task: the
//!   instance's tasks take turns on one lock, so at most one request of an
//!   instance is in flight).
//! * **Spread.** Token `i` of window `s` is not used before
//!   `s + i × 0.8 / N`: the `N` sends of a second are spread over its first
//!   800 ms instead of leaving in a burst at its start. Every window holds the
//!   same pattern, so any one-second interval of the timeline (sliding, not
//!   only whole seconds) holds at most `N` slot times, and a send delayed by up
//!   to 200 ms on its way (network, the provider's own clock) still counts in
//!   the same second on the provider's side.
//! * **Waiting.** A refused take waits for the next window (sleeps to the
//!   boundary), but never past the caller's `until` (the time the invocation
//!   needs left to send and record): then [`Take::TimeUp`], and the sender
//!   releases its claim without counting an attempt.
//!
//! # What is measured, and the numbers behind it
//!
//! * **The guarantee.** At most `N` tokens per calendar second of the
//!   pacer's (wall) clock. Fixed windows measured over *sliding* one-second
//!   intervals could reach `2N` (`N` at the end of one second, `N` at the
//!   start of the next); the spread removes that for tokens used at their slot
//!   time. A token used after its slot (demand that starts late in a second)
//!   is used at once, so over sliding intervals a burst above `N` remains
//!   possible at the onset of demand, never for longer than one second. SES
//!   states its limit per second and accepts short bursts above it
//!   ("you can exceed this limit for short bursts, but not for a sustained
//!   period"); a send it throttles anyway is not an attempt (the sender
//!   releases it and tries again after a short delay).
//! * **Why not concurrency derived from the rate.** `concurrency = N ×
//!   latency / instances` needs the number of instances (Lambda scales them,
//!   up to the event source's maximum concurrency) and a steady latency: at
//!   4 instances × `SEND_CONCURRENCY` 10 with a 100 ms SES call, 400 sends/s
//!   are possible, 28 times the default production rate of 14/s. Nothing shared
//!   means nothing enforced.
//! * **Why not a token bucket item.** A bucket item (`tokens`, `refilled_at`)
//!   needs a read-modify-write (the refill depends on the time since the last
//!   write): a `GetItem` then a conditional `PutItem`, retried on contention,
//!   ~2 requests per grant and more under load. A window item needs one
//!   `UpdateItem`; its refill is the next second's new item.
//! * **Requests per send.** With `k = ceil(N / 8)`: at SES's sandbox 1/s,
//!   1 request per send; at the default 14/s (k = 2), 7 grants plus at most
//!   one refusal per instance per second: with 4 instances ≈ 11 requests per
//!   14 sends (0.8 per send); at 100/s (k = 13, 10 with concurrency 10) ≈ 10
//!   grants + 4 refusals for 100 sends (0.14 per send); at 500/s (k = 10)
//!   ≈ 54 requests per 500 sends (0.11).
//! * **Cost.** One `UpdateItem` of a small item is 1 write request unit, also
//!   when its condition fails. On demand at $0.625 per million write units:
//!   about $0.50 per million sends at 14/s, $0.09 at 100/s; TTL deletes are
//!   free. Storage: one ~60-byte item per second of sending, an hour at most.
//! * **The hot key.** Every instance writes the same item within a second; one
//!   partition takes at most 1,000 write units per second. The grants keep the
//!   requests near `N / k + instances` ≈ 8 + instances per second (14/s, 4
//!   instances: ~11; even 1,000/s with k = 10: ~104), far below it. At k = 1
//!   it would be `N` + refusals, which is why grants exist.
//! * **Latency.** A conditional `UpdateItem` takes ~5-10 ms in a region; a
//!   grant of `k` serves `k` sends, so the pacer adds ~1-5 ms per send when
//!   the window has room, and up to a second when it is full (the wait is the
//!   point: the rate is the limit, not the pacer).
//! * **4 instances × `SEND_CONCURRENCY` 10 at 14/s.** 40 sends want to start;
//!   14 per second get tokens (7 grants of 2), spread 57 ms apart; the other
//!   tasks sleep to the next second (4 refused requests, one per instance).
//!   Throughput is the rate, 14/s, and SES sees no throttling.
//!
//! Unpaced (no pacer, or no rate): the sender sends as fast as its concurrency
//! allows.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use tokio::sync::Mutex;

use crate::StoreError;
use crate::dynamo::conditional;

/// The share of a second a window's tokens are spread over (the rest absorbs
/// delays on the way to the provider).
pub const SPREAD: f64 = 0.8;

/// Successful grants per window a pacer aims at: a grant is `ceil(N / 8)`
/// tokens.
pub const GRANTS_PER_WINDOW: u32 = 8;

/// A token is not used in the last this-much of its second (it could reach
/// the provider in the next one): the window's tokens left then are given up.
pub const LATE: Duration = Duration::from_millis(100);

/// How long a window item is kept (TTL) after its second.
pub const WINDOW_TTL_SECS: i64 = 3600;

/// The most windows one take waits through (a bound on its loop; the caller's
/// `until` bounds it sooner).
const MAX_WINDOWS: u32 = 900;

/// What a [`Pacer::take`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// A token: send now. `waited` is how long the take took (requests and
    /// sleeps).
    Granted { waited: Duration },
    /// No token before `until`: the send does not happen in this invocation.
    TimeUp,
}

/// The tokens this instance holds in one window.
#[derive(Debug, Default)]
struct Held {
    /// The window (epoch second) the tokens and `full` are of.
    window: i64,
    /// The rate the tokens were taken at.
    rate: u32,
    /// Token indices in the window, in order.
    tokens: VecDeque<u32>,
    /// The window is known to be full (a take of one was refused).
    full: bool,
}

/// A rate limiter shared by every instance through `table` (hash key `pk`,
/// a string). One pacer per channel (`name`: `email`, `sms`); clone-free: an
/// instance holds one and its tasks share it.
#[derive(Debug)]
pub struct Pacer {
    client: Client,
    table: String,
    name: String,
    max_grant: u32,
    held: Mutex<Held>,
}

impl Pacer {
    /// A pacer of the windows `"<name>#<second>"` in `table`, granting at most
    /// `max_grant` tokens per request (the sender's concurrency: an instance
    /// never needs more at once).
    pub fn new(client: Client, table: impl Into<String>, name: impl Into<String>, max_grant: u32) -> Self {
        Pacer {
            client,
            table: table.into(),
            name: name.into(),
            max_grant: max_grant.max(1),
            held: Mutex::new(Held::default()),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The item key of window `second`.
    pub fn window_key(&self, second: i64) -> String {
        format!("{}#{second}", self.name)
    }

    /// Tokens per window at `rate` messages per second: whole, at least 1.
    pub fn per_window(rate: f64) -> u32 {
        if rate.is_finite() && rate >= 1.0 {
            rate.floor().min(f64::from(u32::MAX)) as u32
        } else {
            1
        }
    }

    /// The grant size at `n` tokens per window.
    pub fn grant(&self, n: u32) -> u32 {
        n.div_ceil(GRANTS_PER_WINDOW).clamp(1, self.max_grant)
    }

    /// When token `index` of window `second` may be used, at `n` per window.
    pub fn slot(second: i64, index: u32, n: u32) -> SystemTime {
        let offset = f64::from(index) * SPREAD / f64::from(n.max(1));
        UNIX_EPOCH + Duration::from_secs(second.max(0) as u64) + Duration::from_secs_f64(offset.min(1.0))
    }

    /// Waits for a token at `rate` messages per second (all instances
    /// together), for at most until `until`. Errors are DynamoDB's (the caller
    /// decides: the sender keeps the message for later).
    pub async fn take(&self, rate: f64, until: Instant) -> Result<Take, StoreError> {
        let started = Instant::now();
        let n = Self::per_window(rate);
        for _ in 0..MAX_WINDOWS * 3 {
            let mut held = self.held.lock().await;
            // The clock is read with the lock held: a task that waited for another's request
            // does not act on a second that has passed meanwhile.
            let now = SystemTime::now();
            let second = epoch_second(now);
            if held.window != second || held.rate != n {
                *held = Held {
                    window: second,
                    rate: n,
                    ..Held::default()
                };
            }
            // Too late in its second for a token: the send could reach the provider in the
            // next one. The window's tokens are given up (never used late).
            let late = now >= second_start(second) + Duration::from_secs(1) - LATE;
            let wait_for = if late {
                held.tokens.clear();
                held.full = true;
                None
            } else if let Some(index) = held.tokens.pop_front() {
                Some(Self::slot(second, index, n))
            } else if held.full {
                None
            } else {
                // Ask while holding the lock: the instance's other tasks wait for this
                // answer rather than asking too.
                let k = self.grant(n);
                let mut got = self.ask(second, k, n).await?;
                if got.is_none() && k > 1 {
                    got = self.ask(second, 1, n).await?;
                }
                match got {
                    // Kept only while their second lasts (a slow answer may come after it).
                    Some((first, count)) => {
                        if epoch_second(SystemTime::now()) == second {
                            held.tokens.extend(first..first + count);
                        }
                        continue;
                    }
                    None => {
                        held.full = true;
                        None
                    }
                }
            };
            drop(held);
            match wait_for {
                Some(slot) => {
                    let wait = slot.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
                    if Instant::now() + wait > until {
                        return Ok(Take::TimeUp);
                    }
                    tokio::time::sleep(wait).await;
                    return Ok(Take::Granted {
                        waited: started.elapsed(),
                    });
                }
                None => {
                    // The window is full: the next one.
                    let next = second_start(second + 1);
                    let wait = next.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
                    if Instant::now() + wait > until {
                        return Ok(Take::TimeUp);
                    }
                    tokio::time::sleep(wait + Duration::from_millis(1)).await;
                }
            }
        }
        Ok(Take::TimeUp)
    }

    /// One conditional take of `k` tokens of window `second` at `n` per
    /// window: the first index and the count, or `None` when fewer than `k`
    /// are left.
    async fn ask(&self, second: i64, k: u32, n: u32) -> Result<Option<(u32, u32)>, StoreError> {
        let k = k.min(n);
        let answer = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.window_key(second)))
            .update_expression("ADD taken :k SET expires_at = :ttl")
            .condition_expression("attribute_not_exists(taken) OR taken <= :room")
            .expression_attribute_values(":k", AttributeValue::N(k.to_string()))
            .expression_attribute_values(":room", AttributeValue::N((n - k).to_string()))
            .expression_attribute_values(":ttl", AttributeValue::N((second + WINDOW_TTL_SECS).to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match conditional("UpdateItem", &self.table, answer)? {
            Some(out) => {
                let taken = out
                    .attributes()
                    .and_then(|a| a.get("taken"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<u32>().ok())
                    .ok_or_else(|| StoreError::Decode {
                        resource: self.table.clone(),
                        what: format!("window {}", self.window_key(second)),
                        message: "UpdateItem answered no numeric taken".into(),
                    })?;
                Ok(Some((taken.saturating_sub(k), k)))
            }
            None => Ok(None),
        }
    }
}

/// When epoch second `second` starts.
fn second_start(second: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(second.max(0) as u64)
}

/// The epoch second `t` falls in.
pub fn epoch_second(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_spread_over_the_first_part_of_their_second() {
        let n = 20;
        assert_eq!(Pacer::slot(100, 0, n), UNIX_EPOCH + Duration::from_secs(100));
        let last = Pacer::slot(100, n - 1, n).duration_since(UNIX_EPOCH).unwrap();
        assert!(last < Duration::from_millis(100_800), "{last:?}");
        // The same pattern every second: any one-second interval holds n slots.
        let slots: Vec<f64> = (100..104)
            .flat_map(|s| (0..n).map(move |i| Pacer::slot(s, i, n)))
            .map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64())
            .collect();
        for start in slots.iter().filter(|t| **t < 103.0) {
            let inside = slots.iter().filter(|t| **t >= *start && **t < start + 1.0).count();
            assert_eq!(inside, n as usize, "from {start}");
        }
    }

    #[test]
    fn rates_and_grants() {
        assert_eq!(Pacer::per_window(14.0), 14);
        assert_eq!(Pacer::per_window(14.9), 14);
        assert_eq!(Pacer::per_window(0.5), 1);
        assert_eq!(Pacer::per_window(f64::NAN), 1);
        let client = Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build(),
        );
        let p = Pacer::new(client, "t", "email", 10);
        assert_eq!(p.window_key(1_796_000_000), "email#1796000000");
        assert_eq!((p.grant(1), p.grant(14), p.grant(100), p.grant(500)), (1, 2, 10, 10));
    }
}
