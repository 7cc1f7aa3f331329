//! The system clock in unix seconds, and arithmetic on it that cannot
//! overflow.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the unix epoch (0 for a clock set before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `now + within` in unix seconds, saturating instead of overflowing for a
/// caller's huge `within`.
pub fn unix_after(now: i64, within: Duration) -> i64 {
    now.saturating_add(i64::try_from(within.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_saturates() {
        assert_eq!(unix_after(10, Duration::from_secs(5)), 15);
        assert_eq!(unix_after(10, Duration::from_secs(u64::MAX)), i64::MAX);
        assert_eq!(unix_after(i64::MAX - 1, Duration::from_secs(5)), i64::MAX);
    }

    #[test]
    fn now_is_after_2020() {
        assert!(unix_now() > 1_577_836_800);
    }
}
