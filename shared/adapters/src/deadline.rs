//! Lambda deadlines: when a long-running handler should pause and hand the
//! rest to its retry.

use std::time::{Duration, SystemTime};

/// When to pause: `margin` before the invocation's deadline. A deadline that
/// had already passed when the invocation began is not a real one (local
/// runtimes such as `cargo lambda watch` send a fixed small value), so it
/// imposes no pause; the function's own timeout still applies.
pub fn pause_point(deadline: SystemTime, started: SystemTime, margin: Duration) -> Option<SystemTime> {
    if deadline <= started {
        tracing::warn!("the invocation's deadline had passed before it began; ignoring it");
        return None;
    }
    Some(deadline.checked_sub(margin).unwrap_or(SystemTime::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_before_a_real_deadline_and_ignores_a_bogus_one() {
        let now = SystemTime::now();
        let margin = Duration::from_secs(10);
        let deadline = now + Duration::from_secs(300);
        assert_eq!(pause_point(deadline, now, margin), Some(deadline - margin));
        // A deadline closer than the margin: pause at once, after the first chunk.
        assert!(pause_point(now + Duration::from_secs(5), now, margin).is_some_and(|t| t <= now));
        // Already past when the invocation began: no pause.
        assert_eq!(
            pause_point(SystemTime::UNIX_EPOCH + Duration::from_secs(600), now, margin),
            None
        );
    }
}
