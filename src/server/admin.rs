//! What the admin endpoints and the dashboard read: counts kept as tasks
//! move (by status, by type and status, by priority and status), the
//! listing query with its cursor, and the views of `GET /types`,
//! `GET /workers` and `GET /stats`, the same for every store.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::clock::rfc3339;
use super::record::{Status, TaskRecord};
use crate::task::Priority;

/// The most tasks one `GET /tasks` page holds, whatever `limit` asks.
pub const MAX_PAGE: usize = 1000;
/// The most tasks one page looks at to fill itself when a filter has no
/// index of its own (`priority`): a page cut short there still carries a
/// `next` cursor, so nothing is skipped and no request runs long.
pub const MAX_SCAN: usize = 10_000;

/// Tasks per status, in [`Status::ALL`] order.
pub type StatusCounts = [u64; Status::COUNT];

/// The counts the queue keeps up to date with every change, so that no
/// read counts tasks one by one.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// By status.
    pub by_status: StatusCounts,
    /// By priority (high, medium, low) and status.
    pub by_priority: [StatusCounts; 3],
    /// By type and status; a type with no task left is forgotten.
    pub by_type: HashMap<String, StatusCounts>,
}

impl Counts {
    /// Counts a task of `task_type` and `priority` in `status` (`add`) or
    /// stops counting it.
    pub fn count(&mut self, task_type: &str, priority: Priority, status: Status, add: bool) {
        let i = status.index();
        let bump = |n: &mut u64| *n = if add { *n + 1 } else { n.saturating_sub(1) };
        bump(&mut self.by_status[i]);
        bump(&mut self.by_priority[priority_index(priority)][i]);
        match self.by_type.get_mut(task_type) {
            Some(counts) => {
                bump(&mut counts[i]);
                if counts.iter().all(|n| *n == 0) {
                    self.by_type.remove(task_type);
                }
            }
            None if add => {
                let mut counts = [0; Status::COUNT];
                counts[i] = 1;
                self.by_type.insert(task_type.to_string(), counts);
            }
            None => {}
        }
    }
}

/// 0 for high, 1 for medium, 2 for low: the order claims take them in.
pub fn priority_index(p: Priority) -> usize {
    match p {
        Priority::High => 0,
        Priority::Medium => 1,
        Priority::Low => 2,
    }
}

/// The priorities in [`priority_index`] order.
pub const PRIORITIES: [Priority; 3] = [Priority::High, Priority::Medium, Priority::Low];

/// `GET /tasks`: which tasks, how many, and from where.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// Only tasks in this status.
    pub status: Option<Status>,
    /// Only tasks of this type.
    pub task_type: Option<String>,
    /// Only tasks of this priority.
    pub priority: Option<Priority>,
    /// At most this many (1 to [`MAX_PAGE`]).
    pub limit: usize,
    /// Only tasks enqueued before the one this cursor names (the `next` of
    /// the page before): paging by enqueue order, which no change of status
    /// moves, shows no task twice and skips none that stays in the filter.
    pub before: Option<u64>,
}

/// One page of `GET /tasks`, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The tasks.
    pub tasks: Vec<TaskRecord>,
    /// The cursor of the next page, when there may be one.
    pub next: Option<u64>,
}

/// A cursor as the wire shows it: opaque to clients.
pub fn cursor_text(seq: u64) -> String {
    format!("c{seq}")
}

/// Reads a cursor from [`cursor_text`].
pub fn parse_cursor(text: &str) -> Option<u64> {
    text.strip_prefix('c')?.parse().ok()
}

/// Fills a page from candidate tasks, newest first: keeps those that pass
/// `keep` until `limit`, looks at no more than [`MAX_SCAN`], and, when
/// candidates are left, sets the cursor where it stopped.
pub fn fill_page<'a>(
    candidates: impl Iterator<Item = (u64, &'a TaskRecord)>,
    limit: usize,
    keep: impl Fn(&TaskRecord) -> bool,
) -> Page {
    let mut page = Page::default();
    let mut last = None;
    for (scanned, (seq, rec)) in candidates.enumerate() {
        if page.tasks.len() >= limit || scanned >= MAX_SCAN {
            page.next = last;
            return page;
        }
        last = Some(seq);
        if keep(rec) {
            page.tasks.push(rec.clone());
        }
    }
    page
}

/// One type as `GET /types` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeView {
    /// The task type.
    pub task_type: String,
    /// Its tasks by status.
    pub counts: StatusCounts,
    /// Whether claims skip it.
    pub paused: bool,
}

/// A worker as `GET /workers` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerView {
    /// Its id.
    pub worker_id: String,
    /// When it last claimed, heartbeat or reported (clock ms).
    pub last_seen: u64,
    /// Tasks it holds now.
    pub running: u64,
    /// Tasks it completed while in the table.
    pub completed: u64,
    /// Failures it reported while in the table.
    pub failed: u64,
}

/// One minute of throughput.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Minute {
    /// Its start (clock ms, a whole minute).
    pub start: u64,
    /// Tasks completed in it.
    pub completed: u64,
    /// Tasks failed for good in it.
    pub failed: u64,
}

/// What the dashboard's overview shows: `GET /stats`.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Counts by status, by priority and status.
    pub counts: Counts,
    /// How long the oldest claimable task has waited (ms), when one does.
    pub oldest_queued_ms: Option<u64>,
    /// The last 60 minutes, oldest first, the current minute last.
    pub throughput: Vec<Minute>,
}

/// Counts by status as a JSON object.
pub fn counts_json(counts: &StatusCounts) -> Value {
    let map: Map<String, Value> = Status::ALL
        .iter()
        .map(|st| (st.as_str().to_string(), json!(counts[st.index()])))
        .collect();
    Value::Object(map)
}

/// `GET /types`.
pub fn types_json(types: &[TypeView]) -> Value {
    let list: Vec<Value> = types
        .iter()
        .map(|t| json!({"type": t.task_type, "paused": t.paused, "counts": counts_json(&t.counts)}))
        .collect();
    json!({ "types": list })
}

/// `GET /workers`.
pub fn workers_json(workers: &[WorkerView]) -> Value {
    let list: Vec<Value> = workers
        .iter()
        .map(|w| {
            json!({"worker_id": w.worker_id, "last_seen": rfc3339(w.last_seen),
                   "running": w.running, "completed": w.completed, "failed": w.failed})
        })
        .collect();
    json!({ "workers": list })
}

/// `GET /stats`.
pub fn stats_json(s: &Stats) -> Value {
    let by_priority: Map<String, Value> = PRIORITIES
        .iter()
        .map(|p| {
            let name = serde_json::to_value(p)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (name, counts_json(&s.counts.by_priority[priority_index(*p)]))
        })
        .collect();
    let minutes: Vec<Value> = s
        .throughput
        .iter()
        .map(|m| json!({"minute": rfc3339(m.start), "completed": m.completed, "failed": m.failed}))
        .collect();
    json!({
        "counts": counts_json(&s.counts.by_status),
        "by_priority": by_priority,
        "oldest_queued_seconds": s.oldest_queued_ms.map(|ms| ms as f64 / 1000.0),
        "throughput": minutes,
    })
}

/// The types of `counts` with the `paused` ones (those without a task too),
/// sorted by name.
pub fn type_views(
    by_type: &HashMap<String, StatusCounts>,
    paused: impl IntoIterator<Item = String>,
) -> Vec<TypeView> {
    let mut views: HashMap<String, TypeView> = by_type
        .iter()
        .map(|(t, c)| {
            let view = TypeView {
                task_type: t.clone(),
                counts: *c,
                paused: false,
            };
            (t.clone(), view)
        })
        .collect();
    for t in paused {
        views
            .entry(t.clone())
            .or_insert_with(|| TypeView {
                task_type: t,
                counts: [0; Status::COUNT],
                paused: false,
            })
            .paused = true;
    }
    let mut views: Vec<TypeView> = views.into_values().collect();
    views.sort_by(|a, b| a.task_type.cmp(&b.task_type));
    views
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_tasks_and_forget_empty_types() {
        let mut c = Counts::default();
        c.count("a", Priority::High, Status::Queued, true);
        c.count("a", Priority::High, Status::Queued, false);
        c.count("a", Priority::High, Status::Claimed, true);
        assert_eq!(c.by_status[Status::Claimed.index()], 1);
        assert_eq!(c.by_priority[0][Status::Claimed.index()], 1);
        c.count("a", Priority::High, Status::Claimed, false);
        assert!(c.by_type.is_empty());
        c.count("b", Priority::Low, Status::Queued, false);
        assert_eq!(c.by_status, [0; Status::COUNT], "never below zero");
    }

    #[test]
    fn a_cursor_reads_back_and_nothing_else_does() {
        assert_eq!(parse_cursor(&cursor_text(42)), Some(42));
        assert_eq!(parse_cursor("42"), None);
        assert_eq!(parse_cursor("c-1"), None);
    }
}
