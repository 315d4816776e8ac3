//! The server's clock: milliseconds on the wall-clock scale that only move forward.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, read from the wall clock once at start
/// and advanced by a monotonic clock afterwards, so a wall-clock jump cannot
/// shorten or stretch a lease while the server runs. The values are on the
/// wall-clock scale, so the journal can keep them across restarts.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    origin_ms: u64,
}

impl Clock {
    /// A clock that starts at the current wall time.
    pub fn new() -> Clock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            origin: Instant::now(),
            origin_ms: u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The current time in milliseconds.
    pub fn now(&self) -> u64 {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.origin_ms.saturating_add(elapsed)
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// A clock time as RFC 3339 UTC.
pub fn rfc3339(ms: u64) -> String {
    crate::timestamp::format(UNIX_EPOCH + Duration::from_millis(ms))
}

/// A duration in whole milliseconds, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An RFC 3339 time as clock milliseconds; `None` when it does not parse or
/// lies before 1970.
pub fn parse_ms(s: &str) -> Option<u64> {
    let t = crate::timestamp::parse(s)?;
    let since = t.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}
