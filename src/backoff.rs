//! Exponential backoff with full jitter, capped, plus the small random source it needs.
//!
//! Full jitter (a random wait between zero and the exponential bound) keeps a
//! fleet of workers from retrying in lockstep after an outage.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The exponential bound before jitter: `base * 2^attempt`, never above `cap`.
pub fn ceiling(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// A random duration in `[0, max]`.
pub fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(random_u64() % nanos.saturating_add(1))
}

/// How a handler's retryable failures are retried locally, within one
/// delivery: up to `max_retries` more tries, waiting between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Local retries after the first try (so `max_retries + 1` tries).
    pub max_retries: u32,
    /// The shortest wait before a retry, and the first one's scale.
    pub base: Duration,
    /// The longest wait before a retry, a handler's `retry_after` included.
    pub cap: Duration,
}

impl RetryPolicy {
    /// The wait before local try `next_try` (2 for the first retry): random
    /// in `[base, base * 2^(next_try - 1)]`, never above `cap` (nor below
    /// `base`, even when `cap` is smaller). Full jitter above a floor: the
    /// floor keeps a "disk busy" from being retried four times in a second,
    /// the jitter keeps a fleet from retrying in lockstep.
    pub fn delay(&self, next_try: u32) -> Duration {
        let bound = ceiling(self.base, self.cap, next_try.saturating_sub(1)).max(self.base);
        self.base.saturating_add(jitter(bound - self.base))
    }
}

/// Backoff state for one kind of failure.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff that starts near `base` and never waits longer than `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            failures: 0,
        }
    }

    /// Records one more failure and returns how long to wait.
    pub fn next_delay(&mut self) -> Duration {
        let bound = ceiling(self.base, self.cap, self.failures);
        self.failures = self.failures.saturating_add(1);
        // Never zero: a tight loop against a failing server helps nobody.
        jitter(bound).max(self.base / 2)
    }

    /// The wait after a failure that must wait its longest (bad credentials).
    pub fn max_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.cap
    }

    /// Forgets past failures after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// How many failures in a row.
    #[cfg(test)]
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// A xorshift64* generator per thread, seeded from the clock and the thread:
/// jitter needs spread, not cryptographic strength.
pub fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_and_caps() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(30));
        assert_eq!(ceiling(base, cap, 0), Duration::from_millis(100));
        assert_eq!(ceiling(base, cap, 3), Duration::from_millis(800));
        assert_eq!(ceiling(base, cap, 20), cap);
        assert_eq!(ceiling(base, cap, u32::MAX), cap);
    }

    #[test]
    fn local_retries_wait_at_least_the_base_and_at_most_the_cap() {
        let policy = RetryPolicy {
            max_retries: 3,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
        };
        for _ in 0..100 {
            let first = policy.delay(2);
            assert!(first >= Duration::from_secs(1), "{first:?}");
            assert!(first <= Duration::from_secs(2), "{first:?}");
            let third = policy.delay(4);
            assert!(third >= Duration::from_secs(1) && third <= Duration::from_secs(8));
            assert!(policy.delay(u32::MAX) <= Duration::from_secs(30));
        }
        let tight = RetryPolicy {
            cap: Duration::from_millis(10),
            ..policy
        };
        assert_eq!(
            tight.delay(5),
            Duration::from_secs(1),
            "the base wins over a smaller cap"
        );
    }

    #[test]
    fn jitter_takes_any_bound() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        assert!(jitter(Duration::MAX) <= Duration::MAX);
    }

    #[test]
    fn delays_stay_within_bounds_and_spread() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..50 {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(50), "{d:?}");
            assert!(
                d <= ceiling(Duration::from_millis(100), Duration::from_secs(2), i),
                "{d:?}"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 10, "jitter spreads the waits");
        assert_eq!(b.max_delay(), Duration::from_secs(2));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
