//! Bounds for numbers from outside (the wire, a task, a config file, the
//! clock) and time arithmetic that cannot panic.
//!
//! `Duration::from_secs_f64` panics on a negative, non-finite or huge value,
//! `Instant + Duration` panics when the sum leaves the clock's range, and an
//! `as` cast silently truncates. Every such value goes through here instead;
//! clippy's `disallowed-methods` keeps the panicking methods out.

use std::time::{Duration, Instant, SystemTime};

/// The longest per-task timeout a task may ask for: a week.
pub const MAX_TASK_TIMEOUT: Duration = Duration::from_secs(604_800);

/// The longest `Retry-After` honoured: a server asking for more gets an hour,
/// so that no answer can stop the worker for an absurd time.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The farthest a deadline is ever put: a hundred years is "never" for a
/// worker, and stays far inside every platform's clock range.
pub const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `value` seconds when it is a finite number in `(0, max]`, else `None`.
pub fn seconds_within(value: f64, max: Duration) -> Option<Duration> {
    if value.is_finite() && value > 0.0 && value <= max.as_secs_f64() {
        Duration::try_from_secs_f64(value).ok().map(|d| d.min(max))
    } else {
        None
    }
}

/// `value` seconds clamped into `[0, max]`; a value that is not a number is 0.
pub fn seconds_clamped(value: f64, max: Duration) -> Duration {
    if value.is_nan() || value <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(value).map_or(max, |d| d.min(max))
    }
}

/// `now + d`, with `d` cut to [`FOREVER`]; `now` itself in the (unreachable)
/// case that even that leaves the clock's range.
pub fn instant_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(FOREVER)).unwrap_or(now)
}

/// `t + d` for wall-clock times, saturating as [`instant_after`] does.
pub fn time_after(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d.min(FOREVER)).unwrap_or(t)
}

/// A duration in whole milliseconds, saturating at `u64::MAX`.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration in whole microseconds, saturating at `u64::MAX`.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A count as `u64`, saturating (on every platform we build for, exact).
pub fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_within_takes_only_finite_positive_values_up_to_the_bound() {
        let week = MAX_TASK_TIMEOUT;
        assert_eq!(seconds_within(30.0, week), Some(Duration::from_secs(30)));
        assert_eq!(seconds_within(0.5, week), Some(Duration::from_millis(500)));
        assert_eq!(seconds_within(604_800.0, week), Some(week));
        for bad in [
            0.0,
            -0.0,
            -1.0,
            604_800.001,
            1e300,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ] {
            assert_eq!(seconds_within(bad, week), None, "{bad}");
        }
    }

    #[test]
    fn seconds_clamped_never_leaves_its_range() {
        let max = Duration::from_secs(300);
        assert_eq!(seconds_clamped(20.0, max), Duration::from_secs(20));
        assert_eq!(seconds_clamped(1e300, max), max);
        assert_eq!(seconds_clamped(f64::INFINITY, max), max);
        assert_eq!(seconds_clamped(f64::NAN, max), Duration::ZERO);
        assert_eq!(seconds_clamped(-5.0, max), Duration::ZERO);
    }

    #[test]
    fn time_arithmetic_saturates_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(
            Some(instant_after(now, Duration::from_secs(1))),
            now.checked_add(Duration::from_secs(1))
        );
        assert_eq!(
            instant_after(now, Duration::MAX),
            instant_after(now, FOREVER)
        );
        assert!(instant_after(now, Duration::MAX) > now);
        let t = SystemTime::UNIX_EPOCH;
        assert_eq!(time_after(t, Duration::MAX), time_after(t, FOREVER));
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
        assert_eq!(micros(Duration::MAX), u64::MAX);
        assert_eq!(count(7), 7);
    }
}
