//! One customer's usage lines from its own stream `(seed, customer index)`.
//!
//! Quantities are scaled by the customer's days of service in the cycle, so
//! customers who joined or left during it use less. Metered allowances come
//! from the customer's plan in the catalog; about one customer in ten with a
//! limited allowance goes over it, so the bills carry overage lines.

use domain::Customer;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::generator::Generator;
use crate::parts::UsageLine;
use crate::rng::{Stream, chance, stream_rng};

/// A total drawn against a prorated allowance: usually below it, sometimes
/// (`over_per_10k`) up to `max_over_pct` % above it.
fn against_allowance(r: &mut ChaCha8Rng, allowance: i64, over_per_10k: u32, max_over_pct: i64, floor: i64) -> i64 {
    let allowance = allowance.max(1);
    if chance(r, over_per_10k) {
        allowance + (allowance * r.random_range(1..=max_over_pct) / 100).max(1)
    } else {
        let hi = (allowance * 95 / 100).max(1);
        r.random_range(floor.clamp(1, hi)..=hi)
    }
}

impl Generator {
    /// Appends the usage lines of one billable customer.
    pub(crate) fn usage_for(&self, index: u32, c: &Customer, plan_ix: usize, out: &mut Vec<UsageLine>) {
        let r = &mut stream_rng(&self.key, Stream::Usage, u64::from(index));
        let cycle = self.cfg.cycle;
        let days = i64::from(cycle.days());
        let active = i64::from(c.active_days(cycle));
        if active == 0 || chance(r, 500) {
            return; // ~5 % use nothing at all
        }
        let Some(plan) = self.catalog.doc().plans.get(plan_ix) else {
            return;
        };
        let scale = |x: i64| (x * active / days).max(1);
        let p = self.products;
        let mut push = |product: Option<u16>, quantity: i64, amount: i64| {
            if let Some(product) = product {
                out.push(UsageLine {
                    customer: index,
                    product,
                    quantity,
                    amount,
                });
            }
        };

        // Data: 92 %, 1–4 lines (sessions), 10 % above a limited allowance.
        if chance(r, 9_200) {
            let total = match plan.data_mb {
                Some(a) => against_allowance(r, scale(a), 1_000, 20, 50),
                None => scale(r.random_range(500..=150_000)),
            };
            for q in split(r, total, 4) {
                push(p.data, q, 0);
            }
        }
        // Voice: 85 %, 1–3 lines.
        if chance(r, 8_500) {
            let total = match plan.voice_sec {
                Some(a) => against_allowance(r, scale(a), 1_000, 30, 60),
                None => scale(r.random_range(60..=36_000)),
            };
            for q in split(r, total, 3) {
                push(p.voice, q, 0);
            }
        }
        // SMS: 35 %, 1–2 lines.
        if chance(r, 3_500) {
            let total = match plan.sms {
                Some(a) => against_allowance(r, scale(a), 800, 50, 1),
                None => r.random_range(1..=200),
            };
            for q in split(r, total, 2) {
                push(p.sms, q, 0);
            }
        }
        // Roaming: 3 %, data and/or voice.
        if chance(r, 300) {
            let data = chance(r, 7_000);
            if data {
                push(p.roam_data, r.random_range(20..=3_000), 0);
            }
            if !data || chance(r, 5_000) {
                push(p.roam_voice, r.random_range(30..=3_600), 0);
            }
        }
        // Micropayments: 15 %, 1–3 charges of 1,000–50,000 won.
        if chance(r, 1_500) {
            for _ in 0..r.random_range(1..=3) {
                push(p.micropay, 1, r.random_range(10..=500) * 100);
            }
        }
        // Device instalment: 35 %, one line of 20,000–60,000 won.
        if chance(r, 3_500) {
            push(p.device, 1, r.random_range(2_000..=6_000) * 10);
        }
    }
}

/// Splits `total` into 1–`max_parts` positive quantities summing to it.
fn split(r: &mut ChaCha8Rng, total: i64, max_parts: i64) -> Vec<i64> {
    let parts = r.random_range(1..=max_parts.max(1)).min(total.max(1));
    if parts == 1 {
        return vec![total];
    }
    let weights: Vec<i64> = (0..parts).map(|_| r.random_range(1..=100)).collect();
    let sum: i64 = weights.iter().sum();
    let mut out: Vec<i64> = weights.iter().map(|w| (total * w / sum).max(1)).collect();
    let assigned: i64 = out.iter().sum();
    // Give the rounding difference to the largest part (never below 1).
    if let Some(max) = out.iter_mut().max() {
        *max += total - assigned;
    }
    out.retain(|&q| q > 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::key_from_seed;

    #[test]
    fn split_preserves_the_total() {
        let mut r = stream_rng(&key_from_seed(3), Stream::Usage, 0);
        let totals: Vec<i64> = (0..50).chain((0..200).map(|_| r.random_range(0..100_000))).collect();
        for total in totals {
            for parts in 1..=6 {
                let s = split(&mut r, total, parts);
                assert_eq!(s.iter().sum::<i64>(), total, "{total} in {parts}");
                assert!(s.len() <= parts as usize);
                assert!(total == 0 || s.iter().all(|&q| q >= 1), "{s:?}");
            }
        }
    }
}
