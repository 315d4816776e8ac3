//! One task as the server keeps it: its state, its lease, its history, and how
//! it is shown on the wire. A record is also one line of the journal.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::clock::rfc3339;
use crate::task::{Priority, Task};

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for its `run_at` (or `delay_seconds`) to come.
    Scheduled,
    /// Waiting to be claimed (perhaps not before `ready_at`, after a retryable failure).
    Queued,
    /// Leased to a worker.
    Claimed,
    /// Finished with a result.
    Completed,
    /// Finished without one.
    Failed,
    /// Stopped by an operator before it finished.
    Cancelled,
    /// Not handed out before its `expires_at`.
    Expired,
}

impl Status {
    /// How many statuses there are.
    pub const COUNT: usize = 7;

    /// Every status, in the order of a task's life, as `/health` and `/metrics` show them.
    pub const ALL: [Status; Status::COUNT] = [
        Status::Scheduled,
        Status::Queued,
        Status::Claimed,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
        Status::Expired,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::Queued => "queued",
            Status::Claimed => "claimed",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The index of this status in [`Status::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the task is done with: kept for the retention period, then dropped.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::Cancelled | Status::Expired
        )
    }

    /// Whether the task waits to be handed out (and so may expire).
    pub fn is_waiting(self) -> bool {
        matches!(self, Status::Scheduled | Status::Queued)
    }
}

/// The most attempts a task's history keeps: the newest, so that a task
/// retried without end cannot grow without end.
pub const MAX_HISTORY: usize = 20;

/// Who holds a claimed task, and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The claiming worker.
    pub worker_id: String,
    /// The claim that handed the task out, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<String>,
    /// When it was handed out (clock ms).
    pub claimed_at: u64,
    /// When the server may take it back (clock ms).
    pub expires_at: u64,
}

/// Why a delivery did not succeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Human-readable message.
    pub error: String,
    /// `VALIDATION`, `LEASE_EXPIRED`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Whether the worker thought a later delivery may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// Detail from the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// One delivery of a task and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first delivery.
    pub attempt: u32,
    /// Who had it.
    pub worker_id: String,
    /// When it was handed out (clock ms).
    pub claimed_at: u64,
    /// When it ended (clock ms); `None` while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    /// `completed`, `failed`, `retry`, `lease_expired` or `released`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The failure, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// How long the worker says it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// A task and everything the server knows about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task id.
    pub id: String,
    /// The task type.
    #[serde(rename = "type")]
    pub task_type: String,
    /// The task's parameters.
    pub parameters: Value,
    /// Its priority.
    pub priority: Priority,
    /// How many deliveries are allowed.
    pub max_attempts: u32,
    /// Per-task deadline for the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// When it was enqueued (clock ms).
    pub created_at: u64,
    /// Enqueue order: FIFO within a priority, newest first in listings.
    pub seq: u64,
    /// Where it is in its life.
    pub status: Status,
    /// Deliveries so far.
    pub attempt: u32,
    /// Not claimable before this (clock ms); it became claimable then,
    /// which orders it among the tasks of its priority.
    #[serde(default)]
    pub ready_at: u64,
    /// Never handed out after this (clock ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The current holder, while claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// The result, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// The newest [`MAX_HISTORY`] deliveries, oldest first.
    #[serde(default)]
    pub history: Vec<Attempt>,
    /// When it was completed, failed for good, cancelled or expired (clock ms); its retention
    /// period counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
}

/// One line of the journal, as replay reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Entry {
    /// A heartbeat: the lease of task `renew` now ends at `until` (clock ms).
    /// Only the lease changed, so only the lease is written.
    Renew {
        /// The task id.
        renew: String,
        /// The new end of its lease.
        until: u64,
    },
    /// Tasks of type `pause` are handed out again (`paused` false) or not.
    Pause {
        /// The task type.
        pause: String,
        /// Whether it is paused now.
        paused: bool,
    },
    /// Task `dropped` is gone: its retention period ended, or it was deleted.
    Drop {
        /// The task id.
        dropped: String,
    },
    /// A task's whole state.
    Task(Box<TaskRecord>),
}

impl TaskRecord {
    /// The task as a claim hands it out; `extensions` adds `attempt`,
    /// `max_attempts`, `timeout_seconds` and `lease_expires_at`.
    pub fn to_task(&self, extensions: bool) -> Task {
        let mut task = Task::new(&self.id, &self.task_type, self.parameters.clone());
        task.priority = self.priority;
        task.created_at = Some(rfc3339(self.created_at));
        if let Some(lease) = &self.lease {
            task.claimed_by = Some(lease.worker_id.clone());
            task.claimed_at = Some(rfc3339(lease.claimed_at));
            if extensions {
                task.lease_expires_at = Some(rfc3339(lease.expires_at));
            }
        }
        if extensions {
            task.attempt = Some(self.attempt);
            task.max_attempts = Some(self.max_attempts);
            task.timeout_seconds = self.timeout_seconds;
        }
        task
    }

    /// The full view of `GET /tasks/{id}`: the task plus `status`, `result`,
    /// `error`, `attempt` and `history`.
    pub fn to_detail(&self) -> Value {
        let mut view = match serde_json::to_value(self.to_task(true)) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        view.insert("status".into(), json!(self.status.as_str()));
        view.insert("attempt".into(), json!(self.attempt));
        view.insert("result".into(), self.result.clone().unwrap_or(Value::Null));
        match &self.error {
            Some(f) => {
                view.insert("error".into(), json!(f.error));
                view.insert("error_type".into(), json!(f.error_type));
                if let Some(tb) = &f.traceback {
                    view.insert("traceback".into(), json!(tb));
                }
            }
            None => {
                view.insert("error".into(), Value::Null);
            }
        }
        if self.status == Status::Scheduled {
            view.insert("run_at".into(), json!(rfc3339(self.ready_at)));
        }
        if self.status == Status::Queued && self.ready_at > self.created_at {
            view.insert("ready_at".into(), json!(rfc3339(self.ready_at)));
        }
        if let Some(at) = self.expires_at {
            view.insert("expires_at".into(), json!(rfc3339(at)));
        }
        if let Some(at) = self.finished_at.filter(|_| self.status.is_final()) {
            view.insert("finished_at".into(), json!(rfc3339(at)));
        }
        let history: Vec<Value> = self.history.iter().map(attempt_view).collect();
        view.insert("history".into(), Value::Array(history));
        Value::Object(view)
    }
}

fn attempt_view(a: &Attempt) -> Value {
    let mut v = json!({
        "attempt": a.attempt,
        "worker_id": a.worker_id,
        "claimed_at": rfc3339(a.claimed_at),
        "ended_at": a.ended_at.map(rfc3339),
        "outcome": a.outcome,
    });
    if let (Value::Object(map), Some(f)) = (&mut v, &a.error) {
        map.insert("error".into(), json!(f.error));
        map.insert("error_type".into(), json!(f.error_type));
    }
    if let (Value::Object(map), Some(d)) = (&mut v, a.duration_ms) {
        map.insert("duration_ms".into(), json!(d));
    }
    v
}
