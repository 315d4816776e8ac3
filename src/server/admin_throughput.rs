//! Throughput over the last hour: tasks completed and failed per minute,
//! in 60 buckets counted as tasks finish, so that reading it costs nothing.

use super::admin::Minute;

/// Minutes kept.
pub const MINUTES: usize = 60;
const MINUTE_MS: u64 = 60_000;

/// A ring of [`MINUTES`] buckets, each labelled with its minute so that a
/// stale one reads as empty.
#[derive(Debug, Clone)]
pub struct Throughput {
    buckets: [Minute; MINUTES],
}

impl Default for Throughput {
    fn default() -> Throughput {
        Throughput {
            buckets: [Minute::default(); MINUTES],
        }
    }
}

impl Throughput {
    /// Counts a task that completed (`completed`) or failed for good at `at`.
    pub fn add(&mut self, at: u64, completed: bool) {
        let start = at - at % MINUTE_MS;
        let slot = &mut self.buckets[slot(start)];
        if slot.start != start {
            if slot.start > start {
                return; // older than the hour this bucket holds now
            }
            *slot = Minute {
                start,
                ..Minute::default()
            };
        }
        if completed {
            slot.completed += 1;
        } else {
            slot.failed += 1;
        }
    }

    /// The 60 minutes up to `now`'s, oldest first; empty minutes show zero.
    pub fn last_hour(&self, now: u64) -> Vec<Minute> {
        let current = now - now % MINUTE_MS;
        (0..MINUTES as u64)
            .rev()
            .map(|back| {
                let start = current.saturating_sub(back * MINUTE_MS);
                let b = self.buckets[slot(start)];
                if b.start == start {
                    b
                } else {
                    Minute {
                        start,
                        ..Minute::default()
                    }
                }
            })
            .collect()
    }
}

fn slot(start: u64) -> usize {
    ((start / MINUTE_MS) % MINUTES as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_minute_and_forgets_after_an_hour() {
        let mut t = Throughput::default();
        let t0 = 1_000 * MINUTE_MS;
        t.add(t0 + 5, true);
        t.add(t0 + 59_999, false);
        t.add(t0 + MINUTE_MS, true);
        let hour = t.last_hour(t0 + MINUTE_MS + 1);
        assert_eq!(hour.len(), MINUTES);
        assert_eq!((hour[58].completed, hour[58].failed), (1, 1));
        assert_eq!(hour[59].completed, 1);
        let later = t.last_hour(t0 + 60 * MINUTE_MS);
        assert_eq!(later.iter().map(|m| m.completed).sum::<u64>(), 1);
        t.add(t0 + 60 * MINUTE_MS, true);
        assert_eq!(t.last_hour(t0 + 60 * MINUTE_MS)[59].completed, 1);
    }
}
