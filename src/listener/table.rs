//! The open connections of a listener: a cap, which of them sit idle, and
//! which one to close when a new one comes at the cap. Time is passed in,
//! so the decisions are tested without sockets.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Open connections, each with a handle `C` that can close it.
#[derive(Debug)]
pub struct Table<C> {
    cap: usize,
    next_id: u64,
    open: HashMap<u64, Entry<C>>,
}

#[derive(Debug)]
struct Entry<C> {
    handle: C,
    /// Since when it waits for a request; `None` while one is served.
    idle_since: Option<Instant>,
}

/// A connection let in.
#[derive(Debug)]
pub struct Admitted<C> {
    /// Its id in the table.
    pub id: u64,
    /// The idle connection taken out to make room (its id and handle), for
    /// the caller to close.
    pub evicted: Option<(u64, C)>,
}

impl<C> Table<C> {
    /// An empty table that holds at most `cap` connections (at least one).
    pub fn new(cap: usize) -> Table<C> {
        Table {
            cap: cap.max(1),
            next_id: 1,
            open: HashMap::new(),
        }
    }

    /// How many connections are open.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Lets in a new connection, idle until its first request. At the cap
    /// the connection idle the longest makes room, as nginx reuses idle
    /// keep-alive connections; with none idle the handle comes back.
    pub fn admit(&mut self, handle: C, now: Instant) -> Result<Admitted<C>, C> {
        let mut evicted = None;
        if self.open.len() >= self.cap {
            let oldest = self
                .open
                .iter()
                .filter_map(|(id, e)| Some((e.idle_since?, *id)))
                .min();
            let Some((_, id)) = oldest else {
                return Err(handle);
            };
            evicted = self.open.remove(&id).map(|e| (id, e.handle));
        }
        let id = self.next_id;
        self.next_id += 1;
        let idle_since = Some(now);
        self.open.insert(id, Entry { handle, idle_since });
        Ok(Admitted { id, evicted })
    }

    /// Marks `id` as serving a request; false when it was evicted meanwhile,
    /// and its request must be dropped.
    pub fn busy(&mut self, id: u64) -> bool {
        match self.open.get_mut(&id) {
            Some(e) => {
                e.idle_since = None;
                true
            }
            None => false,
        }
    }

    /// Marks `id` as waiting for its next request since `now`.
    pub fn idle(&mut self, id: u64, now: Instant) {
        if let Some(e) = self.open.get_mut(&id) {
            e.idle_since = Some(now);
        }
    }

    /// Takes out `id`, whose connection ends.
    pub fn remove(&mut self, id: u64) -> Option<C> {
        self.open.remove(&id).map(|e| e.handle)
    }

    /// The handle of `id`.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut C> {
        self.open.get_mut(&id).map(|e| &mut e.handle)
    }
}

/// Says when to log a repeated event: at once, then at most once a period,
/// with the count of those not logged.
#[derive(Debug)]
pub struct RateLimit {
    period: Duration,
    last: Option<Instant>,
    quiet: u64,
}

impl RateLimit {
    /// Logs at most once every `period`.
    pub fn new(period: Duration) -> RateLimit {
        RateLimit {
            period,
            last: None,
            quiet: 0,
        }
    }

    /// The event happened at `now`: `Some(n)` when it is to be logged, `n`
    /// being how many happened since the last line without one.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|t| now < t + self.period) {
            self.quiet += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.quiet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let t = Instant::now();
        let s = Duration::from_secs(1);
        let mut table = Table::new(3);
        let a = table.admit("a", t).unwrap().id;
        let b = table.admit("b", t + s).unwrap().id;
        let c = table.admit("c", t + 2 * s).unwrap().id;
        assert!(table.busy(a));
        table.idle(a, t + 3 * s);
        let d = table.admit("d", t + 4 * s).unwrap();
        assert_eq!(d.evicted, Some((b, "b")), "b idled longest");
        assert!(!table.busy(b), "an evicted connection drops its request");
        assert!(table.busy(c) && table.busy(d.id));
        assert_eq!(table.admit("e", t + 5 * s).unwrap().evicted, Some((a, "a")));
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn at_the_cap_with_none_idle_the_newcomer_is_refused() {
        let t = Instant::now();
        let mut table = Table::new(2);
        for h in ["a", "b"] {
            let id = table.admit(h, t).unwrap().id;
            assert!(table.busy(id));
        }
        assert_eq!(table.admit("c", t).unwrap_err(), "c");
        assert_eq!(table.len(), 2);
        assert_eq!(table.get_mut(1).copied(), Some("a"));
        assert_eq!(table.remove(1), Some("a"));
        assert!(table.admit("c", t).is_ok());
    }

    #[test]
    fn a_rate_limit_counts_what_it_kept_quiet() {
        let t = Instant::now();
        let mut limit = RateLimit::new(Duration::from_secs(60));
        assert_eq!(limit.hit(t), Some(0));
        assert_eq!(limit.hit(t + Duration::from_secs(1)), None);
        assert_eq!(limit.hit(t + Duration::from_secs(2)), None);
        assert_eq!(limit.hit(t + Duration::from_secs(61)), Some(2));
    }
}
