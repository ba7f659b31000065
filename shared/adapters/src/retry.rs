//! Exponential backoff with full jitter (the AWS Architecture Blog's
//! recommendation): attempt `n` sleeps a uniformly random time in
//! `[0, min(cap, base × 2ⁿ)]`.

use std::time::Duration;

#[derive(Copy, Clone, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(5),
            max_attempts: 8,
        }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (1 = the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(retry.min(30)).unwrap_or(u32::MAX));
        let ceiling = exp.min(self.cap);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_growing_ceiling_and_the_cap() {
        let b = Backoff::default();
        for retry in 1..40 {
            let ceiling = b
                .base
                .saturating_mul(1u32.checked_shl(retry.min(30)).unwrap_or(u32::MAX))
                .min(b.cap);
            for _ in 0..50 {
                assert!(b.delay(retry) <= ceiling);
            }
        }
        assert!(b.delay(100) <= b.cap);
    }
}
