//! The workers seen lately, from their claims, heartbeats and reports: a
//! table of bounded size, since any client can send any worker id. Past
//! [`MAX_WORKERS`] the worker seen longest ago is forgotten.

use std::collections::{BTreeSet, HashMap};

use super::admin::WorkerView;

/// The most workers remembered.
pub const MAX_WORKERS: usize = 10_000;
/// A worker not seen for this long is not shown (ms).
pub const SEEN_WITHIN_MS: u64 = 3600 * 1000;

#[derive(Debug, Clone, Default)]
struct Seen {
    last_seen: u64,
    running: u64,
    completed: u64,
    failed: u64,
}

/// What a worker did, for [`WorkerTable::seen`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Did {
    /// Claimed `n` tasks (0 for an empty claim), or heartbeat (0).
    Took(u64),
    /// Completed a task.
    Completed,
    /// Reported a failure.
    Failed,
}

/// The table: by id, and by when each was last seen, to find the oldest.
#[derive(Debug, Default)]
pub struct WorkerTable {
    by_id: HashMap<String, Seen>,
    by_time: BTreeSet<(u64, String)>,
}

impl WorkerTable {
    /// Notes that `worker` was seen at `now` doing `did`.
    pub fn seen(&mut self, worker: &str, now: u64, did: Did) {
        let entry = match self.by_id.get_mut(worker) {
            Some(e) => {
                self.by_time.remove(&(e.last_seen, worker.to_string()));
                e
            }
            None => self.by_id.entry(worker.to_string()).or_default(),
        };
        entry.last_seen = entry.last_seen.max(now);
        match did {
            Did::Took(n) => entry.running += n,
            Did::Completed => entry.completed += 1,
            Did::Failed => entry.failed += 1,
        }
        let key = (entry.last_seen, worker.to_string());
        self.by_time.insert(key);
        while self.by_id.len() > MAX_WORKERS {
            let Some((_, oldest)) = self.by_time.pop_first() else {
                break;
            };
            self.by_id.remove(&oldest);
        }
    }

    /// A task of `worker` is no longer running (reported, expired, cancelled, released).
    pub fn ended(&mut self, worker: &str) {
        if let Some(e) = self.by_id.get_mut(worker) {
            e.running = e.running.saturating_sub(1);
        }
    }

    /// Forgets every running count (before they are counted again from the tasks).
    pub fn reset_running(&mut self) {
        for e in self.by_id.values_mut() {
            e.running = 0;
        }
    }

    /// The workers seen within the last hour before `now`, most recent first.
    pub fn list(&self, now: u64) -> Vec<WorkerView> {
        let since = now.saturating_sub(SEEN_WITHIN_MS);
        self.by_time
            .iter()
            .rev()
            .take_while(|(at, _)| *at >= since)
            .filter_map(|(_, id)| {
                let e = self.by_id.get(id)?;
                Some(WorkerView {
                    worker_id: id.clone(),
                    last_seen: e.last_seen,
                    running: e.running,
                    completed: e.completed,
                    failed: e.failed,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_each_worker_did() {
        let mut t = WorkerTable::default();
        t.seen("a", 10, Did::Took(2));
        t.seen("b", 20, Did::Took(0));
        t.seen("a", 30, Did::Completed);
        t.ended("a");
        t.seen("a", 40, Did::Failed);
        t.ended("a");
        let list = t.list(50);
        assert_eq!(list[0].worker_id, "a", "the most recent first");
        assert_eq!(
            (list[0].running, list[0].completed, list[0].failed),
            (0, 1, 1)
        );
        assert_eq!(t.list(50 + SEEN_WITHIN_MS + 25).len(), 0, "an hour later");
    }

    #[test]
    fn a_flood_of_ids_keeps_the_table_bounded() {
        let mut t = WorkerTable::default();
        t.seen("first", 0, Did::Took(1));
        for i in 0..(MAX_WORKERS as u64 + 500) {
            t.seen(&format!("w{i}"), 1 + i, Did::Took(0));
        }
        assert_eq!(t.by_id.len(), MAX_WORKERS);
        assert_eq!(t.by_time.len(), MAX_WORKERS);
        assert!(!t.by_id.contains_key("first"), "the oldest went first");
    }
}
