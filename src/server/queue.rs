//! The task queue as a pure state machine: priorities, schedules, leases,
//! retries, expiry, claim ids, paused types, the operator's actions and
//! retention of finished tasks. Time comes in as clock milliseconds;
//! nothing here blocks or does I/O. It says what changed, for the journal,
//! and keeps what each changed task was before, so that a change the journal
//! could not write can be undone.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde_json::Value;

use super::admin::{
    fill_page, type_views, Counts, ListQuery, Page, Stats, TypeView, WorkerView, PRIORITIES,
};
use super::admin_throughput::Throughput;
use super::admin_workers::{Did, WorkerTable};
use super::record::{Attempt, Failure, Lease, Status, TaskRecord, MAX_HISTORY};
use super::waiters::Waiters;
use crate::task::{ClaimRequest, EnqueueRequest, FailBody, Priority, Task};

/// The `error_type` of a task whose last lease ran out.
pub const LEASE_EXPIRED: &str = "LEASE_EXPIRED";
/// The `error_type` of a task not handed out before its `expires_at`.
pub const EXPIRED: &str = "EXPIRED";

/// The most tasks one claim hands out, whatever it asks.
pub const MAX_BATCH: usize = 1000;
/// The most types paused at once: each is kept, in the journal too.
pub const MAX_PAUSED: usize = 1000;

/// How long a cancelled claim id is remembered, so a late repeat of the
/// cancelled claim gets nothing instead of new tasks.
const CANCELLED_CLAIM_MEMORY_MS: u64 = 10 * 60 * 1000;
/// The longest `delay_seconds` an enqueue may ask for: longer is kept at this.
const MAX_DELAY: std::time::Duration = crate::bounded::FOREVER;

/// The rules the queue keeps.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// How long a claim's lease lasts (ms).
    pub lease_ms: u64,
    /// Deliveries allowed when a task does not say.
    pub max_attempts: u32,
    /// Wait before the first retry of a retryable failure (ms); doubles each time.
    pub backoff_base_ms: u64,
    /// The longest wait before a retry (ms).
    pub backoff_max_ms: u64,
    /// Whether claims use the extensions (batches, types, claim ids, lease fields).
    pub extensions: bool,
    /// Generated task ids are this prefix and a sequence number.
    pub id_prefix: String,
    /// How long a completed or failed task is kept before it is dropped (ms).
    pub retain_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            lease_ms: 30_000,
            max_attempts: 3,
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
            extensions: true,
            id_prefix: "task_".into(),
            retain_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// Why a report, heartbeat or action was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportError {
    /// No task has this id (404).
    NotFound(String),
    /// The task is not leased to this worker, or not in a status the
    /// action applies to (409).
    Conflict(String),
    /// The task was cancelled: its worker must stop it and not report (410).
    Gone(String),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::NotFound(id) => write!(f, "task {id:?} not found"),
            ReportError::Conflict(why) => f.write_str(why),
            ReportError::Gone(id) => write!(f, "task {id:?} was cancelled: stop it"),
        }
    }
}

/// Event counters for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Tasks created.
    pub enqueued: u64,
    /// Deliveries (a task handed to a worker).
    pub delivered: u64,
    /// Claims answered with at least one task.
    pub claims_served: u64,
    /// Claims answered with none.
    pub claims_empty: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Tasks failed for good.
    pub failed: u64,
    /// Failures put back for a retry.
    pub retried: u64,
    /// Leases that ran out.
    pub lease_expired: u64,
    /// Tasks put back by a claim cancel.
    pub released: u64,
    /// Heartbeats accepted.
    pub heartbeats: u64,
}

/// What a claim got.
#[derive(Debug, Default)]
pub struct Claimed {
    /// The tasks handed out (or handed out before, for a repeated claim id).
    pub tasks: Vec<Task>,
    /// Whether the claim may wait for a task (false for a cancelled claim id).
    pub may_wait: bool,
}

#[derive(Debug, Default)]
struct ClaimEntry {
    tasks: Vec<String>,
    cancelled_at: Option<u64>,
}

/// Claim order: priority, then when the task became claimable, then enqueue order.
type ReadyKey = (Reverse<Priority>, u64, u64);

/// A task in the listing indexes: its status, then its enqueue order.
type ListKey = (Status, u64);

/// What changed since the last [`Queue::take_changes`], for the journal.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Tasks changed as a whole, or dropped (those that are gone now).
    pub tasks: Vec<String>,
    /// Tasks of which only the end of the lease moved (heartbeats).
    pub renewed: Vec<String>,
    /// Types paused or resumed.
    pub paused: Vec<String>,
}

/// What changed tasks were before a batch of changes: `None` for a task
/// that did not exist. [`Queue::undo`] puts them back.
pub type Before = HashMap<String, Option<TaskRecord>>;

/// The queue: every task, the indexes that make claims and listings fast,
/// the counts, the workers seen, and the parked claims.
pub struct Queue {
    cfg: QueueConfig,
    tasks: HashMap<String, TaskRecord>,
    by_seq: BTreeMap<u64, String>,
    ready: BTreeSet<ReadyKey>,
    ready_by_type: HashMap<String, BTreeSet<ReadyKey>>,
    delayed: BTreeSet<(u64, u64)>,
    expiring: BTreeSet<(u64, u64)>,
    leases: BTreeSet<(u64, u64)>,
    finished: BTreeSet<(u64, u64)>,
    listing: BTreeSet<ListKey>,
    listing_by_type: HashMap<String, BTreeSet<ListKey>>,
    paused: BTreeSet<String>,
    claims: HashMap<String, ClaimEntry>,
    next_seq: u64,
    next_prune: u64,
    counts: Counts,
    totals: Totals,
    workers: WorkerTable,
    throughput: Throughput,
    changed: Vec<String>,
    renewed: Vec<String>,
    paused_changed: Vec<String>,
    before: Option<Before>,
    timer_wake: u64,
    timer_kick: bool,
    /// The claims waiting for a task.
    pub waiters: Waiters,
}

impl Queue {
    /// An empty queue.
    pub fn new(cfg: QueueConfig) -> Queue {
        Queue {
            cfg,
            tasks: HashMap::new(),
            by_seq: BTreeMap::new(),
            ready: BTreeSet::new(),
            ready_by_type: HashMap::new(),
            delayed: BTreeSet::new(),
            expiring: BTreeSet::new(),
            leases: BTreeSet::new(),
            finished: BTreeSet::new(),
            listing: BTreeSet::new(),
            listing_by_type: HashMap::new(),
            paused: BTreeSet::new(),
            claims: HashMap::new(),
            next_seq: 1,
            next_prune: 0,
            counts: Counts::default(),
            totals: Totals::default(),
            workers: WorkerTable::default(),
            throughput: Throughput::default(),
            changed: Vec::new(),
            renewed: Vec::new(),
            paused_changed: Vec::new(),
            before: None,
            timer_wake: u64::MAX,
            timer_kick: false,
            waiters: Waiters::default(),
        }
    }

    /// Loads records kept by the journal (in any order; one per id) and
    /// the types paused.
    pub fn restore(&mut self, records: Vec<TaskRecord>, paused: Vec<String>, now: u64) {
        self.paused.extend(paused);
        for rec in records {
            let id = rec.id.clone();
            self.next_seq = self.next_seq.max(rec.seq + 1);
            self.tasks.insert(id.clone(), rec);
            self.index(&id, now);
        }
    }

    /// Keeps what each changed task was before, from now on, for [`Queue::take_before`].
    pub fn keep_before(&mut self) {
        self.before.get_or_insert_with(Before::new);
    }

    /// Puts back what tasks were before changes that cannot be kept. `befores`
    /// come oldest batch first; the oldest state of a task wins.
    pub fn undo(&mut self, befores: Vec<Before>, now: u64) {
        for before in befores.into_iter().rev() {
            for (id, rec) in before {
                match rec {
                    Some(rec) => self.tasks.insert(id, rec),
                    None => self.tasks.remove(&id),
                };
            }
        }
        self.reindex(now);
    }

    /// Adds a task; `Ok((record, true))` when new, `(existing, false)` when
    /// the id was already there. `run_at` and `expires_at` are clock ms,
    /// already checked.
    pub fn enqueue(&mut self, req: &EnqueueRequest, now: u64) -> (&TaskRecord, bool) {
        self.advance(now);
        let seq = self.next_seq;
        let id = match &req.id {
            Some(id) => id.clone(),
            None => {
                let mut n = seq;
                while self
                    .tasks
                    .contains_key(&format!("{}{n}", self.cfg.id_prefix))
                {
                    n += 1;
                }
                format!("{}{n}", self.cfg.id_prefix)
            }
        };
        if self.tasks.contains_key(&id) {
            return (&self.tasks[&id], false);
        }
        self.next_seq += 1;
        let ready_at = ready_at(req, now);
        let status = if ready_at > now {
            Status::Scheduled
        } else {
            Status::Queued
        };
        let rec = TaskRecord {
            id: id.clone(),
            task_type: req.task_type.clone(),
            parameters: req
                .parameters
                .clone()
                .unwrap_or_else(|| Value::Object(Default::default())),
            priority: req.priority.unwrap_or_default(),
            max_attempts: req.max_attempts.unwrap_or(self.cfg.max_attempts).max(1),
            timeout_seconds: req.timeout_seconds,
            created_at: now,
            seq,
            status,
            attempt: 0,
            ready_at,
            expires_at: req.expires_at.as_deref().and_then(super::clock::parse_ms),
            lease: None,
            result: None,
            error: None,
            history: Vec::new(),
            finished_at: None,
        };
        let (prio, ty, expires_at) = (rec.priority, rec.task_type.clone(), rec.expires_at);
        self.totals.enqueued += 1;
        self.by_seq.insert(seq, id.clone());
        self.changed.push(id.clone());
        self.touch(&id);
        self.tasks.insert(id.clone(), rec);
        self.place(&ty, prio, status, seq, true);
        if expires_at.is_some_and(|at| at <= now) {
            self.expire_waiting(&id, now);
        } else {
            self.index_waiting(&id, now);
        }
        (&self.tasks[&id], true)
    }

    /// Hands out ready tasks to `req.worker_id`: the highest priority first,
    /// then the one claimable longest. A repeated claim id gets the tasks it
    /// got before. Paused types are skipped; expired tasks are marked so.
    pub fn claim(&mut self, req: &ClaimRequest, now: u64) -> Claimed {
        self.advance(now);
        let ext = self.cfg.extensions;
        let claim_id = if ext { req.claim_id.as_deref() } else { None };
        if let Some(cid) = claim_id {
            if let Some(entry) = self.claims.get(cid) {
                if entry.cancelled_at.is_some() {
                    self.totals.claims_empty += 1;
                    return Claimed::default();
                }
                if !entry.tasks.is_empty() {
                    let tasks = entry
                        .tasks
                        .iter()
                        .filter_map(|id| self.tasks.get(id))
                        .map(|rec| rec.to_task(ext))
                        .collect();
                    return Claimed {
                        tasks,
                        may_wait: false,
                    };
                }
            }
        }
        let max = match req.max_tasks {
            Some(n) if ext => usize::try_from(n).map_or(MAX_BATCH, |n| n.clamp(1, MAX_BATCH)),
            _ => 1,
        };
        let types = if ext { req.types.as_deref() } else { None };
        let mut tasks = Vec::new();
        while tasks.len() < max {
            let Some(key) = self.pick(types) else { break };
            self.unindex_ready(key);
            let Some(id) = self.by_seq.get(&key.2).cloned() else {
                continue;
            };
            if self.tasks[&id].expires_at.is_some_and(|at| at <= now) {
                self.expire_waiting(&id, now);
                continue;
            }
            if let Some(task) = self.lease(&id, &req.worker_id, claim_id, now) {
                tasks.push(task);
            }
        }
        self.workers
            .seen(&req.worker_id, now, Did::Took(tasks.len() as u64));
        if tasks.is_empty() {
            self.totals.claims_empty += 1;
        } else {
            self.totals.claims_served += 1;
        }
        Claimed {
            tasks,
            may_wait: true,
        }
    }

    /// Records a result from the lease holder.
    pub fn complete(
        &mut self,
        id: &str,
        worker_id: Option<&str>,
        result: Value,
        duration_ms: Option<u64>,
        now: u64,
    ) -> Result<(), ReportError> {
        self.advance(now);
        let holder = self.check_holder(id, worker_id)?;
        self.workers.seen(&holder, now, Did::Completed);
        self.end_lease(id, now, "completed", None, duration_ms);
        self.finish(id, Status::Completed, now);
        if let Some(rec) = self.tasks.get_mut(id) {
            rec.result = Some(result);
            rec.error = None;
        }
        self.totals.completed += 1;
        Ok(())
    }

    /// Records a failure from the lease holder: a retryable one with attempts
    /// left goes back after a backoff, anything else fails the task.
    pub fn fail(&mut self, id: &str, body: &FailBody, now: u64) -> Result<(), ReportError> {
        self.advance(now);
        let holder = self.check_holder(id, body.worker_id.as_deref())?;
        self.workers.seen(&holder, now, Did::Failed);
        let failure = Failure {
            error: body.error.clone(),
            error_type: body.error_type.clone(),
            retryable: body.retryable,
            traceback: body.traceback.clone(),
        };
        let Some(rec) = self.tasks.get(id) else {
            return Err(ReportError::NotFound(id.into()));
        };
        let retry = body.retryable == Some(true) && rec.attempt < rec.max_attempts;
        let outcome = if retry { "retry" } else { "failed" };
        self.end_lease(id, now, outcome, Some(failure), body.duration_ms);
        if retry {
            let wait = self.backoff(self.tasks.get(id).map_or(1, |r| r.attempt));
            self.requeue(id, Some(now.saturating_add(wait)), now);
            self.totals.retried += 1;
        } else {
            self.finish(id, Status::Failed, now);
            self.totals.failed += 1;
        }
        Ok(())
    }

    /// Extends the lease of `id` held by `worker_id`; returns its new end.
    pub fn heartbeat(&mut self, id: &str, worker_id: &str, now: u64) -> Result<u64, ReportError> {
        self.advance(now);
        self.check_holder(id, Some(worker_id))?;
        self.workers.seen(worker_id, now, Did::Took(0));
        let expires = now.saturating_add(self.cfg.lease_ms);
        self.touch(id);
        let Some(rec) = self.tasks.get_mut(id) else {
            return Err(ReportError::NotFound(id.into()));
        };
        let seq = rec.seq;
        if let Some(lease) = &mut rec.lease {
            self.leases.remove(&(lease.expires_at, seq));
            lease.expires_at = expires;
            self.leases.insert((expires, seq));
        }
        self.renewed.push(id.to_string());
        self.totals.heartbeats += 1;
        Ok(expires)
    }

    /// Ends the claim `claim_id`: answers its parked poll and puts back the
    /// tasks it handed out that are not reported, without counting an attempt.
    pub fn cancel_claim(&mut self, claim_id: &str, now: u64) -> usize {
        self.advance(now);
        self.waiters.cancel(claim_id);
        let entry = self.claims.entry(claim_id.to_string()).or_default();
        entry.cancelled_at = Some(now);
        let ids = std::mem::take(&mut entry.tasks);
        let mut released = 0;
        for id in ids {
            let held = self.tasks.get(&id).is_some_and(|r| {
                r.status == Status::Claimed
                    && r.lease.as_ref().and_then(|l| l.claim_id.as_deref()) == Some(claim_id)
            });
            if held {
                self.end_lease(&id, now, "released", None, None);
                if let Some(rec) = self.tasks.get_mut(&id) {
                    rec.attempt = rec.attempt.saturating_sub(1);
                }
                self.requeue(&id, None, now);
                released += 1;
            }
        }
        self.totals.released += crate::bounded::count(released);
        released
    }

    /// Puts back the tasks a claim of `worker_id` handed out (each id with
    /// the attempt it was handed out as) that its client never got, the
    /// connection having closed before the answer was written; as a claim
    /// cancel does, without counting an attempt. Only tasks that worker
    /// still holds as that attempt: one since reported, expired or handed
    /// out again is left alone. Returns how many were put back.
    pub fn release(&mut self, worker_id: &str, handed: &[(String, u32)], now: u64) -> usize {
        self.advance(now);
        let mut released = 0;
        for (id, attempt) in handed {
            let held = self.tasks.get(id).is_some_and(|r| {
                r.status == Status::Claimed
                    && r.attempt == *attempt
                    && r.lease.as_ref().is_some_and(|l| l.worker_id == worker_id)
            });
            if held {
                self.end_lease(id, now, "released", None, None);
                if let Some(rec) = self.tasks.get_mut(id) {
                    rec.attempt = rec.attempt.saturating_sub(1);
                }
                self.requeue(id, None, now);
                released += 1;
            }
        }
        self.totals.released += crate::bounded::count(released);
        released
    }

    /// `POST /tasks/{id}/cancel`: a scheduled, queued or claimed task
    /// becomes `cancelled`; its worker's next heartbeat or report gets 410.
    pub fn cancel(&mut self, id: &str, now: u64) -> Result<(), ReportError> {
        self.advance(now);
        let rec = self
            .tasks
            .get(id)
            .ok_or_else(|| ReportError::NotFound(id.into()))?;
        match rec.status {
            Status::Scheduled | Status::Queued => self.unindex_waiting(id),
            Status::Claimed => self.end_lease(id, now, "cancelled", None, None),
            other => {
                return Err(not_in(
                    id,
                    other,
                    "cancelled",
                    "scheduled, queued or claimed",
                ))
            }
        }
        self.finish(id, Status::Cancelled, now);
        Ok(())
    }

    /// `POST /tasks/{id}/retry`: a failed, cancelled or expired task is
    /// queued again now, with a fresh attempt count (its history stays).
    pub fn retry(&mut self, id: &str, now: u64) -> Result<(), ReportError> {
        self.advance(now);
        let rec = self
            .tasks
            .get(id)
            .ok_or_else(|| ReportError::NotFound(id.into()))?;
        if !matches!(
            rec.status,
            Status::Failed | Status::Cancelled | Status::Expired
        ) {
            return Err(not_in(
                id,
                rec.status,
                "retried",
                "failed, cancelled or expired",
            ));
        }
        let (seq, finished_at) = (rec.seq, rec.finished_at);
        if let Some(at) = finished_at {
            self.finished.remove(&(at, seq));
        }
        self.set_status(id, Status::Queued);
        if let Some(rec) = self.tasks.get_mut(id) {
            rec.attempt = 0;
            rec.ready_at = now;
            rec.finished_at = None;
            rec.result = None;
            rec.error = None;
            // What expired would expire again at once: the operator wants it run.
            rec.expires_at = rec.expires_at.filter(|at| *at > now);
        }
        self.index_waiting(id, now);
        Ok(())
    }

    /// `DELETE /tasks/{id}`: removes a task that no worker holds.
    pub fn delete(&mut self, id: &str, now: u64) -> Result<(), ReportError> {
        self.advance(now);
        let rec = self
            .tasks
            .get(id)
            .ok_or_else(|| ReportError::NotFound(id.into()))?;
        if rec.status == Status::Claimed {
            return Err(ReportError::Conflict(format!(
                "task {id:?} is claimed: cancel it first"
            )));
        }
        if rec.status.is_waiting() {
            self.unindex_waiting(id);
        }
        self.remove(id);
        Ok(())
    }

    /// `POST /types/{type}/pause` (`paused`) and `/resume`: claims skip a
    /// paused type; its tasks keep their place. Resuming wakes parked claims.
    pub fn set_paused(&mut self, task_type: &str, paused: bool) -> Result<(), ReportError> {
        if paused == self.paused.contains(task_type) {
            return Ok(());
        }
        let keys: Vec<ReadyKey> = self
            .ready_by_type
            .get(task_type)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        if paused {
            if self.paused.len() >= MAX_PAUSED {
                return Err(ReportError::Conflict(format!(
                    "{MAX_PAUSED} types are paused already: resume one first"
                )));
            }
            self.paused.insert(task_type.to_string());
            for key in &keys {
                self.ready.remove(key);
            }
        } else {
            self.paused.remove(task_type);
            self.ready.extend(keys.iter().copied());
            // One wake per task, as enqueues would send, while claims wait.
            for _ in &keys {
                if !self.waiters.wake_one(task_type) {
                    break;
                }
            }
        }
        self.paused_changed.push(task_type.to_string());
        Ok(())
    }

    /// Whether claims skip `task_type`.
    pub fn is_paused(&self, task_type: &str) -> bool {
        self.paused.contains(task_type)
    }

    /// The paused types.
    pub fn paused(&self) -> Vec<String> {
        self.paused.iter().cloned().collect()
    }

    /// Applies what time has done: scheduled tasks become queued, delayed
    /// ones claimable, waiting ones expire, leases run out. Returns when
    /// something will next be due.
    pub fn advance(&mut self, now: u64) -> u64 {
        while let Some(&(at, seq)) = self.delayed.first() {
            if at > now {
                break;
            }
            self.delayed.pop_first();
            let Some(id) = self.by_seq.get(&seq).cloned() else {
                continue;
            };
            let rec = &self.tasks[&id];
            if rec.status.is_waiting() && rec.ready_at == at {
                if rec.status == Status::Scheduled {
                    self.set_status(&id, Status::Queued);
                }
                self.index_waiting(&id, now);
            }
        }
        while let Some(&(at, seq)) = self.expiring.first() {
            if at > now {
                break;
            }
            self.expiring.pop_first();
            let Some(id) = self.by_seq.get(&seq).cloned() else {
                continue;
            };
            let rec = &self.tasks[&id];
            if rec.status.is_waiting() && rec.expires_at == Some(at) {
                self.unindex_waiting(&id);
                self.expire_waiting(&id, now);
            }
        }
        while let Some(&(at, seq)) = self.leases.first() {
            if at > now {
                break;
            }
            self.leases.pop_first();
            if let Some(id) = self.by_seq.get(&seq).cloned() {
                self.expire(&id, now);
            }
        }
        if now >= self.next_prune {
            self.claims.retain(|_, e| match e.cancelled_at {
                Some(at) => now.saturating_sub(at) < CANCELLED_CLAIM_MEMORY_MS,
                None => !e.tasks.is_empty(),
            });
            self.next_prune = now.saturating_add(CANCELLED_CLAIM_MEMORY_MS / 10);
        }
        self.sweep(now);
        let first = |set: &BTreeSet<(u64, u64)>| set.first().map_or(u64::MAX, |d| d.0);
        let next_drop = self
            .finished
            .first()
            .map_or(u64::MAX, |f| f.0.saturating_add(self.cfg.retain_ms));
        first(&self.delayed)
            .min(first(&self.expiring))
            .min(first(&self.leases))
            .min(next_drop)
            .min(self.next_prune)
    }

    /// Drops the tasks finished at least the retention period before `now`;
    /// returns how many.
    pub fn sweep(&mut self, now: u64) -> usize {
        let mut dropped = 0;
        while let Some(&(at, seq)) = self.finished.first() {
            if at.saturating_add(self.cfg.retain_ms) > now {
                break;
            }
            self.finished.pop_first();
            let Some(id) = self.by_seq.get(&seq).cloned() else {
                continue;
            };
            self.remove(&id);
            dropped += 1;
        }
        dropped
    }

    /// One task.
    pub fn get(&self, id: &str) -> Option<&TaskRecord> {
        self.tasks.get(id)
    }

    /// One page of tasks, newest first, from the index that fits the query.
    pub fn page(&self, q: &ListQuery) -> Page {
        let before = q.before.unwrap_or(u64::MAX);
        let limit = q.limit.clamp(1, super::admin::MAX_PAGE);
        let keep = |r: &TaskRecord| {
            q.priority.map_or(true, |p| r.priority == p)
                && q.task_type.as_deref().map_or(true, |t| r.task_type == t)
        };
        let get = |seq: u64| {
            let id = self.by_seq.get(&seq)?;
            Some((seq, self.tasks.get(id)?))
        };
        let listing = match &q.task_type {
            Some(t) => self.listing_by_type.get(t),
            None => Some(&self.listing),
        };
        match (q.status, listing) {
            (_, None) => Page::default(),
            (Some(s), Some(set)) => {
                let seqs = set.range((s, 0)..(s, before)).rev().map(|k| k.1);
                fill_page(seqs.filter_map(get), limit, keep)
            }
            (None, Some(_)) if q.task_type.is_none() => {
                let seqs = self.by_seq.range(..before).rev().map(|(s, _)| *s);
                fill_page(seqs.filter_map(get), limit, keep)
            }
            (None, Some(set)) => {
                // A type in any status: the newest of each status, merged;
                // as many of each as the page may look at.
                let scan = match q.priority {
                    Some(_) => super::admin::MAX_SCAN + 1,
                    None => limit + 1,
                };
                let mut seqs: Vec<u64> = Status::ALL
                    .iter()
                    .flat_map(|s| {
                        let newest = set.range((*s, 0)..(*s, before)).rev();
                        newest.map(|k| k.1).take(scan)
                    })
                    .collect();
                seqs.sort_unstable_by(|a, b| b.cmp(a));
                fill_page(seqs.into_iter().filter_map(get), limit, keep)
            }
        }
    }

    /// How many tasks are in each status, in [`Status::ALL`] order.
    pub fn counts(&self) -> [u64; Status::COUNT] {
        self.counts.by_status
    }

    /// Each type with tasks or paused, its counts and whether it is paused.
    pub fn types(&self) -> Vec<TypeView> {
        type_views(&self.counts.by_type, self.paused.iter().cloned())
    }

    /// The workers seen within the last hour.
    pub fn workers(&self, now: u64) -> Vec<WorkerView> {
        self.workers.list(now)
    }

    /// Counts, the age of the oldest claimable task and the last hour's throughput.
    pub fn stats(&self, now: u64) -> Stats {
        let paused = self.paused.iter().filter_map(|t| self.ready_by_type.get(t));
        let oldest = std::iter::once(&self.ready)
            .chain(paused)
            .filter_map(oldest_ready)
            .min();
        Stats {
            counts: Counts {
                by_status: self.counts.by_status,
                by_priority: self.counts.by_priority,
                // Not shown in the stats: `GET /types` has them.
                by_type: HashMap::new(),
            },
            oldest_queued_ms: oldest.map(|at| now.saturating_sub(at)),
            throughput: self.throughput.last_hour(now),
        }
    }

    /// The event counters.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// What changed since the last call, for the journal.
    pub fn take_changes(&mut self) -> Changes {
        let mut tasks = std::mem::take(&mut self.changed);
        tasks.sort_unstable();
        tasks.dedup();
        let mut renewed = std::mem::take(&mut self.renewed);
        renewed.sort_unstable();
        renewed.dedup();
        // A task written whole carries its lease too.
        renewed.retain(|id| tasks.binary_search(id).is_err());
        let mut paused = std::mem::take(&mut self.paused_changed);
        paused.sort_unstable();
        paused.dedup();
        Changes {
            tasks,
            renewed,
            paused,
        }
    }

    /// Whether anything was changed since the last [`Queue::take_changes`].
    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty() || !self.renewed.is_empty() || !self.paused_changed.is_empty()
    }

    /// What the tasks changed since the last call were before; empty unless
    /// [`Queue::keep_before`] was called.
    pub fn take_before(&mut self) -> Before {
        self.before.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Every task, oldest first.
    pub fn records(&self) -> Vec<&TaskRecord> {
        self.by_seq
            .values()
            .filter_map(|id| self.tasks.get(id))
            .collect()
    }

    /// Tells the queue when its timer will next wake.
    pub fn set_timer_wake(&mut self, at: u64) {
        self.timer_wake = at;
        self.timer_kick = false;
    }

    /// Whether a deadline earlier than the timer's wake was added since the
    /// timer last slept: then it must be woken to sleep less.
    pub fn take_timer_kick(&mut self) -> bool {
        std::mem::take(&mut self.timer_kick)
    }

    /// Wakes a parked claim for each type that has a ready task: a claim
    /// that was woken and then took nothing passes its wake on.
    pub fn nudge(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        let ready: Vec<String> = self
            .ready_by_type
            .iter()
            .filter(|(t, set)| !set.is_empty() && !self.paused.contains(*t))
            .map(|(t, _)| t.clone())
            .collect();
        for t in ready {
            self.waiters.wake_one(&t);
        }
    }

    fn note_deadline(&mut self, at: u64) {
        if at < self.timer_wake {
            self.timer_kick = true;
        }
    }

    fn backoff(&self, attempt: u32) -> u64 {
        let doublings = attempt.saturating_sub(1).min(32);
        self.cfg
            .backoff_base_ms
            .saturating_mul(1u64 << doublings)
            .min(self.cfg.backoff_max_ms)
    }

    fn pick(&self, types: Option<&[String]>) -> Option<ReadyKey> {
        match types {
            None => self.ready.first().copied(),
            Some(types) => types
                .iter()
                .filter(|t| !self.paused.contains(*t))
                .filter_map(|t| self.ready_by_type.get(t).and_then(|s| s.first()))
                .min()
                .copied(),
        }
    }

    /// Counts a task in `status` and lists it there (`add`), or stops.
    fn place(&mut self, task_type: &str, prio: Priority, status: Status, seq: u64, add: bool) {
        self.counts.count(task_type, prio, status, add);
        let key = (status, seq);
        if add {
            self.listing.insert(key);
            match self.listing_by_type.get_mut(task_type) {
                Some(set) => {
                    set.insert(key);
                }
                None => {
                    let set = BTreeSet::from([key]);
                    self.listing_by_type.insert(task_type.to_string(), set);
                }
            }
        } else {
            self.listing.remove(&key);
            if let Some(set) = self.listing_by_type.get_mut(task_type) {
                set.remove(&key);
                if set.is_empty() {
                    self.listing_by_type.remove(task_type);
                }
            }
        }
    }

    /// Puts a scheduled or queued task where its times say: delayed until
    /// `ready_at`, else claimable (waking a parked claim unless its type is
    /// paused); and watched for its `expires_at`.
    fn index_waiting(&mut self, id: &str, now: u64) {
        let Some(rec) = self.tasks.get(id) else {
            return;
        };
        let (prio, seq, ready_at) = (rec.priority, rec.seq, rec.ready_at);
        let task_type = rec.task_type.clone();
        if let Some(at) = rec.expires_at {
            self.expiring.insert((at, seq));
            self.note_deadline(at);
        }
        if ready_at > now {
            self.delayed.insert((ready_at, seq));
            self.note_deadline(ready_at);
            return;
        }
        let key = (Reverse(prio), ready_at, seq);
        match self.ready_by_type.get_mut(&task_type) {
            Some(set) => {
                set.insert(key);
            }
            None => {
                let set = BTreeSet::from([key]);
                self.ready_by_type.insert(task_type.clone(), set);
            }
        }
        if !self.paused.contains(&task_type) {
            self.ready.insert(key);
            self.waiters.wake_one(&task_type);
        }
    }

    /// Takes a scheduled or queued task out of the claim indexes.
    fn unindex_waiting(&mut self, id: &str) {
        let Some(rec) = self.tasks.get(id) else {
            return;
        };
        let (seq, ready_at) = (rec.seq, rec.ready_at);
        self.delayed.remove(&(ready_at, seq));
        if let Some(at) = rec.expires_at {
            self.expiring.remove(&(at, seq));
        }
        self.unindex_ready((Reverse(rec.priority), ready_at, seq));
    }

    fn unindex_ready(&mut self, key: ReadyKey) {
        self.ready.remove(&key);
        if let Some(rec) = self.by_seq.get(&key.2).and_then(|id| self.tasks.get(id)) {
            if let Some(set) = self.ready_by_type.get_mut(&rec.task_type) {
                set.remove(&key);
                if set.is_empty() {
                    self.ready_by_type.remove(&rec.task_type);
                }
            }
        }
    }

    fn lease(&mut self, id: &str, worker: &str, claim_id: Option<&str>, now: u64) -> Option<Task> {
        let expires_at = now.saturating_add(self.cfg.lease_ms);
        let ext = self.cfg.extensions;
        self.touch(id);
        let rec = self.tasks.get_mut(id)?;
        rec.attempt = rec.attempt.saturating_add(1);
        rec.lease = Some(Lease {
            worker_id: worker.to_string(),
            claim_id: claim_id.map(str::to_string),
            claimed_at: now,
            expires_at,
        });
        rec.history.push(Attempt {
            attempt: rec.attempt,
            worker_id: worker.to_string(),
            claimed_at: now,
            ended_at: None,
            outcome: None,
            error: None,
            duration_ms: None,
        });
        if rec.history.len() > MAX_HISTORY {
            let extra = rec.history.len() - MAX_HISTORY;
            rec.history.drain(..extra);
        }
        let task = rec.to_task(ext);
        let seq = rec.seq;
        if let Some(at) = rec.expires_at {
            self.expiring.remove(&(at, seq));
        }
        self.leases.insert((expires_at, seq));
        self.note_deadline(expires_at);
        if let Some(cid) = claim_id {
            self.claims
                .entry(cid.to_string())
                .or_default()
                .tasks
                .push(id.to_string());
        }
        self.set_status(id, Status::Claimed);
        self.totals.delivered += 1;
        Some(task)
    }

    /// The worker holding `id`'s lease, when it is `worker_id` (or anyone
    /// for `None`); a refusal naming why otherwise.
    fn check_holder(&self, id: &str, worker_id: Option<&str>) -> Result<String, ReportError> {
        let rec = self
            .tasks
            .get(id)
            .ok_or_else(|| ReportError::NotFound(id.into()))?;
        if rec.status == Status::Cancelled {
            return Err(ReportError::Gone(id.into()));
        }
        let Some(lease) = rec.lease.as_ref().filter(|_| rec.status == Status::Claimed) else {
            return Err(ReportError::Conflict(format!(
                "task {id:?} is {}, not claimed",
                rec.status.as_str()
            )));
        };
        match worker_id {
            Some(w) if w != lease.worker_id => Err(ReportError::Conflict(format!(
                "task {id:?} is leased to another worker"
            ))),
            _ => Ok(lease.worker_id.clone()),
        }
    }

    /// Takes the lease off `id` and closes its history entry.
    fn end_lease(
        &mut self,
        id: &str,
        now: u64,
        outcome: &str,
        error: Option<Failure>,
        duration_ms: Option<u64>,
    ) {
        self.touch(id);
        let Some(rec) = self.tasks.get_mut(id) else {
            return;
        };
        let Some(lease) = rec.lease.take() else {
            return;
        };
        if let Some(entry) = rec.history.last_mut().filter(|a| a.ended_at.is_none()) {
            entry.ended_at = Some(now);
            entry.outcome = Some(outcome.to_string());
            entry.error = error.clone();
            entry.duration_ms = duration_ms;
        }
        if error.is_some() {
            rec.error = error;
        }
        self.leases.remove(&(lease.expires_at, rec.seq));
        self.workers.ended(&lease.worker_id);
        if let Some(cid) = &lease.claim_id {
            if let Some(entry) = self.claims.get_mut(cid) {
                entry.tasks.retain(|t| t != id);
                if entry.tasks.is_empty() && entry.cancelled_at.is_none() {
                    self.claims.remove(cid);
                }
            }
        }
        self.changed.push(id.to_string());
    }

    fn expire(&mut self, id: &str, now: u64) {
        let Some(rec) = self.tasks.get(id) else {
            return;
        };
        if rec.status != Status::Claimed {
            return;
        }
        let last = rec.attempt >= rec.max_attempts;
        let failure = Failure {
            error: format!(
                "lease expired on attempt {} of {}",
                rec.attempt, rec.max_attempts
            ),
            error_type: Some(LEASE_EXPIRED.into()),
            retryable: Some(!last),
            traceback: None,
        };
        self.end_lease(id, now, "lease_expired", Some(failure), None);
        self.totals.lease_expired += 1;
        if last {
            self.finish(id, Status::Failed, now);
            self.totals.failed += 1;
        } else {
            self.requeue(id, None, now);
        }
    }

    /// A waiting task (out of the claim indexes) whose `expires_at` has
    /// come: it is never handed out.
    fn expire_waiting(&mut self, id: &str, now: u64) {
        if let Some(rec) = self.tasks.get_mut(id) {
            rec.error = Some(Failure {
                error: "not handed out before its expires_at".into(),
                error_type: Some(EXPIRED.into()),
                retryable: Some(false),
                traceback: None,
            });
        }
        self.finish(id, Status::Expired, now);
    }

    /// Puts a task back in the queue: claimable from `ready_at`, or, for
    /// `None`, in the place it had (a lease that ran out, a released claim).
    fn requeue(&mut self, id: &str, ready_at: Option<u64>, now: u64) {
        self.set_status(id, Status::Queued);
        if let (Some(at), Some(rec)) = (ready_at, self.tasks.get_mut(id)) {
            rec.ready_at = at;
        }
        self.index_waiting(id, now);
        self.changed.push(id.to_string());
    }

    fn set_status(&mut self, id: &str, status: Status) {
        self.touch(id);
        let Some(rec) = self.tasks.get_mut(id) else {
            return;
        };
        let (old, ty, prio, seq) = (rec.status, rec.task_type.clone(), rec.priority, rec.seq);
        rec.status = status;
        self.place(&ty, prio, old, seq, false);
        self.place(&ty, prio, status, seq, true);
        self.changed.push(id.to_string());
    }

    /// Ends a task for good: it is kept for the retention period from `now`.
    fn finish(&mut self, id: &str, status: Status, now: u64) {
        self.set_status(id, status);
        if let Some(rec) = self.tasks.get_mut(id) {
            rec.finished_at = Some(now);
            self.finished.insert((now, rec.seq));
        }
        if matches!(status, Status::Completed | Status::Failed) {
            self.throughput.add(now, status == Status::Completed);
        }
    }

    /// Forgets a task that no lease holds, out of the claim indexes.
    fn remove(&mut self, id: &str) {
        self.touch(id);
        let Some(rec) = self.tasks.remove(id) else {
            return;
        };
        self.by_seq.remove(&rec.seq);
        if let Some(at) = rec.finished_at {
            self.finished.remove(&(at, rec.seq));
        }
        self.place(&rec.task_type, rec.priority, rec.status, rec.seq, false);
        self.changed.push(id.to_string());
    }

    /// Keeps what `id` is now, before its first change since the last
    /// [`Queue::take_before`].
    fn touch(&mut self, id: &str) {
        if let Some(before) = &mut self.before {
            if !before.contains_key(id) {
                before.insert(id.to_string(), self.tasks.get(id).cloned());
            }
        }
    }

    /// Rebuilds every index from the tasks.
    fn reindex(&mut self, now: u64) {
        self.by_seq.clear();
        self.ready.clear();
        self.ready_by_type.clear();
        self.delayed.clear();
        self.expiring.clear();
        self.leases.clear();
        self.finished.clear();
        self.listing.clear();
        self.listing_by_type.clear();
        self.counts = Counts::default();
        self.throughput = Throughput::default();
        self.workers.reset_running();
        // A cancelled claim is remembered; the tasks of the others come back from their leases.
        self.claims.retain(|_, e| {
            e.tasks.clear();
            e.cancelled_at.is_some()
        });
        let mut ids: Vec<(u64, String)> =
            self.tasks.values().map(|r| (r.seq, r.id.clone())).collect();
        ids.sort_unstable();
        for (_, id) in ids {
            self.index(&id, now);
        }
    }

    /// Adds the task `id` to the indexes and counts its state puts it in.
    fn index(&mut self, id: &str, now: u64) {
        let Some(rec) = self.tasks.get_mut(id) else {
            return;
        };
        if rec.status == Status::Claimed && rec.lease.is_none() {
            rec.status = Status::Queued;
        }
        if rec.status.is_final() && rec.finished_at.is_none() {
            // Journals from before retention: the end of the last attempt.
            let ended = rec.history.last().and_then(|a| a.ended_at);
            rec.finished_at = Some(ended.unwrap_or(rec.created_at));
        }
        let rec = &self.tasks[id];
        let (status, seq, prio) = (rec.status, rec.seq, rec.priority);
        let task_type = rec.task_type.clone();
        let lease = rec.lease.as_ref().map(|l| {
            (
                l.expires_at,
                l.claim_id.clone(),
                l.worker_id.clone(),
                l.claimed_at,
            )
        });
        let finished_at = rec.finished_at;
        self.by_seq.insert(seq, id.to_string());
        self.place(&task_type, prio, status, seq, true);
        match status {
            Status::Scheduled | Status::Queued => self.index_waiting(id, now),
            Status::Claimed => {
                if let Some((expires_at, claim_id, worker, claimed_at)) = lease {
                    self.leases.insert((expires_at, seq));
                    self.workers.seen(&worker, claimed_at, Did::Took(1));
                    if let Some(cid) = claim_id {
                        let entry = self.claims.entry(cid).or_default();
                        entry.tasks.push(id.to_string());
                    }
                }
            }
            Status::Completed | Status::Failed | Status::Cancelled | Status::Expired => {
                if let Some(at) = finished_at {
                    self.finished.insert((at, seq));
                    if matches!(status, Status::Completed | Status::Failed) {
                        self.throughput.add(at, status == Status::Completed);
                    }
                }
            }
        }
    }
}

/// When an enqueued task becomes claimable: its `run_at`, or `delay_seconds`
/// from now, or now.
fn ready_at(req: &EnqueueRequest, now: u64) -> u64 {
    if let Some(at) = req.run_at.as_deref().and_then(super::clock::parse_ms) {
        return at.max(now);
    }
    let delay_ms = req
        .delay_seconds
        .filter(|d| d.is_finite() && *d > 0.0)
        .map(|d| crate::bounded::millis(crate::bounded::seconds_clamped(d, MAX_DELAY)))
        .unwrap_or(0);
    now.saturating_add(delay_ms)
}

/// When the task claimable longest in `set` became so: the first of each priority.
fn oldest_ready(set: &BTreeSet<ReadyKey>) -> Option<u64> {
    PRIORITIES
        .iter()
        .filter_map(|p| {
            let first = set.range((Reverse(*p), 0, 0)..).next()?;
            (first.0 == Reverse(*p)).then_some(first.1)
        })
        .min()
}

/// The refusal of an action on a task in a status it does not apply to.
fn not_in(id: &str, status: Status, done: &str, allowed: &str) -> ReportError {
    ReportError::Conflict(format!(
        "task {id:?} is {}: only {allowed} tasks can be {done}",
        status.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: u64 = 1_000_000;

    fn queue() -> Queue {
        Queue::new(QueueConfig {
            lease_ms: 1_000,
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            ..QueueConfig::default()
        })
    }

    fn add(q: &mut Queue, id: &str, ty: &str, prio: Priority) {
        let req = EnqueueRequest {
            id: Some(id.into()),
            task_type: ty.into(),
            priority: Some(prio),
            ..EnqueueRequest::default()
        };
        assert!(q.enqueue(&req, T0).1);
    }

    fn claim(q: &mut Queue, worker: &str, max: Option<u32>, now: u64) -> Vec<String> {
        let req = ClaimRequest {
            worker_id: worker.into(),
            types: None,
            max_tasks: max,
            wait_seconds: None,
            claim_id: None,
        };
        q.claim(&req, now).tasks.into_iter().map(|t| t.id).collect()
    }

    fn fail_body(retryable: bool) -> FailBody {
        FailBody {
            error: "boom".into(),
            error_type: Some("HANDLER".into()),
            retryable: Some(retryable),
            traceback: None,
            worker_id: Some("w".into()),
            attempts: None,
            duration_ms: None,
        }
    }

    #[test]
    fn priority_order_then_fifo() {
        let mut q = queue();
        add(&mut q, "l1", "t", Priority::Low);
        add(&mut q, "m1", "t", Priority::Medium);
        add(&mut q, "h1", "t", Priority::High);
        add(&mut q, "m2", "t", Priority::Medium);
        add(&mut q, "h2", "t", Priority::High);
        assert_eq!(
            claim(&mut q, "w", Some(10), T0),
            ["h1", "h2", "m1", "m2", "l1"]
        );
        assert!(claim(&mut q, "w", None, T0).is_empty());
        assert_eq!(q.counts(), [0, 0, 5, 0, 0, 0, 0]);
    }

    #[test]
    fn types_filter_picks_best_among_listed_types() {
        let mut q = queue();
        add(&mut q, "a", "x", Priority::Low);
        add(&mut q, "b", "y", Priority::High);
        add(&mut q, "c", "x", Priority::High);
        let req = ClaimRequest {
            worker_id: "w".into(),
            types: Some(vec!["x".into(), "z".into()]),
            max_tasks: Some(5),
            wait_seconds: None,
            claim_id: None,
        };
        let got: Vec<String> = q.claim(&req, T0).tasks.into_iter().map(|t| t.id).collect();
        assert_eq!(got, ["c", "a"]);
    }

    #[test]
    fn enqueue_with_existing_id_returns_the_existing_task() {
        let mut q = queue();
        add(&mut q, "a", "x", Priority::Low);
        let again = EnqueueRequest {
            id: Some("a".into()),
            task_type: "other".into(),
            ..EnqueueRequest::default()
        };
        let (rec, created) = q.enqueue(&again, T0);
        assert!(!created);
        assert_eq!(rec.task_type, "x");
        let fresh = EnqueueRequest {
            task_type: "x".into(),
            ..EnqueueRequest::default()
        };
        assert!(q.enqueue(&fresh, T0).0.id.starts_with("task_"));
    }

    #[test]
    fn lease_expiry_redelivers_then_fails() {
        let mut q = queue();
        add(&mut q, "a", "x", Priority::Medium);
        let mut now = T0;
        for attempt in 1..=3 {
            let req = ClaimRequest {
                worker_id: "w".into(),
                types: None,
                max_tasks: None,
                wait_seconds: None,
                claim_id: None,
            };
            let got = q.claim(&req, now).tasks;
            assert_eq!(got.len(), 1, "attempt {attempt}");
            assert_eq!(got[0].attempt, Some(attempt));
            now += 1_001;
            q.advance(now);
        }
        let rec = q.get("a").unwrap();
        assert_eq!(rec.status, Status::Failed);
        assert_eq!(
            rec.error.as_ref().unwrap().error_type.as_deref(),
            Some(LEASE_EXPIRED)
        );
        assert_eq!(rec.history.len(), 3);
        assert_eq!(
            q.complete("a", Some("w"), json!(1), None, now),
            Err(ReportError::Conflict(
                "task \"a\" is failed, not claimed".into()
            ))
        );
    }

    #[test]
    fn retryable_fail_backs_off_then_fails_on_last_attempt() {
        let mut q = queue();
        add(&mut q, "a", "x", Priority::Medium);
        assert_eq!(claim(&mut q, "w", None, T0), ["a"]);
        q.fail("a", &fail_body(true), T0).unwrap();
        assert_eq!(q.get("a").unwrap().status, Status::Queued);
        assert!(
            claim(&mut q, "w", None, T0 + 50).is_empty(),
            "still backing off"
        );
        assert_eq!(claim(&mut q, "w", None, T0 + 100), ["a"]);
        q.fail("a", &fail_body(true), T0 + 100).unwrap();
        assert!(
            claim(&mut q, "w", None, T0 + 250).is_empty(),
            "backoff doubled"
        );
        assert_eq!(claim(&mut q, "w", None, T0 + 300), ["a"]);
        q.fail("a", &fail_body(true), T0 + 300).unwrap();
        assert_eq!(q.get("a").unwrap().status, Status::Failed, "last attempt");
        add(&mut q, "b", "x", Priority::Medium);
        assert_eq!(claim(&mut q, "w", None, T0 + 400), ["b"]);
        q.fail("b", &fail_body(false), T0 + 400).unwrap();
        assert_eq!(q.get("b").unwrap().status, Status::Failed, "not retryable");
    }

    #[test]
    fn reports_from_a_non_holder_conflict() {
        let mut q = queue();
        add(&mut q, "a", "x", Priority::Medium);
        assert!(matches!(
            q.heartbeat("a", "w", T0),
            Err(ReportError::Conflict(_))
        ));
        assert_eq!(claim(&mut q, "w", None, T0), ["a"]);
        assert!(matches!(
            q.complete("a", Some("other"), json!(1), None, T0),
            Err(ReportError::Conflict(_))
        ));
        assert!(matches!(
            q.heartbeat("a", "other", T0),
            Err(ReportError::Conflict(_))
        ));
        assert!(matches!(
            q.complete("zz", None, json!(1), None, T0),
            Err(ReportError::NotFound(_))
        ));
        assert_eq!(q.heartbeat("a", "w", T0 + 900), Ok(T0 + 1_900));
        q.advance(T0 + 1_500);
        assert_eq!(
            q.get("a").unwrap().status,
            Status::Claimed,
            "heartbeat extended the lease"
        );
        q.complete("a", None, json!({"ok": true}), Some(5), T0 + 1_500)
            .unwrap();
        assert_eq!(q.get("a").unwrap().result, Some(json!({"ok": true})));
        assert_eq!(q.counts(), [0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn claim_id_repeats_and_cancel_releases_without_an_attempt() {
        let mut q = queue();
        add(&mut q, "a", "x", Priority::Medium);
        add(&mut q, "b", "x", Priority::Medium);
        add(&mut q, "c", "x", Priority::Medium);
        let req = ClaimRequest {
            worker_id: "w".into(),
            types: None,
            max_tasks: Some(2),
            wait_seconds: None,
            claim_id: Some("c-1".into()),
        };
        let first: Vec<String> = q.claim(&req, T0).tasks.into_iter().map(|t| t.id).collect();
        let again: Vec<String> = q.claim(&req, T0).tasks.into_iter().map(|t| t.id).collect();
        assert_eq!(first, ["a", "b"]);
        assert_eq!(again, first);
        assert_eq!(q.cancel_claim("c-1", T0), 2);
        assert_eq!(q.get("a").unwrap().attempt, 0);
        let after = q.claim(&req, T0);
        assert!(
            after.tasks.is_empty() && !after.may_wait,
            "a cancelled claim gets nothing"
        );
        let next = claim(&mut q, "w2", Some(3), T0);
        assert_eq!(next, ["a", "b", "c"]);
        assert_eq!(q.get("a").unwrap().attempt, 1);
    }

    #[test]
    fn delayed_tasks_wait_and_restore_keeps_state() {
        let mut q = queue();
        let req = EnqueueRequest {
            id: Some("d".into()),
            task_type: "x".into(),
            delay_seconds: Some(0.5),
            ..EnqueueRequest::default()
        };
        q.enqueue(&req, T0);
        add(&mut q, "a", "x", Priority::Low);
        assert_eq!(q.advance(T0), T0 + 500);
        assert_eq!(claim(&mut q, "w", Some(5), T0), ["a"]);
        let records: Vec<TaskRecord> = q
            .take_changes()
            .tasks
            .iter()
            .filter_map(|id| q.get(id).cloned())
            .collect();
        let mut again = queue();
        again.restore(records, vec![], T0);
        assert_eq!(again.counts(), [1, 0, 1, 0, 0, 0, 0]);
        assert_eq!(claim(&mut again, "w", Some(5), T0 + 500), ["d"]);
        again
            .complete("a", Some("w"), json!(null), None, T0 + 500)
            .unwrap();
    }

    #[test]
    fn finished_tasks_are_dropped_after_their_retention() {
        let mut q = Queue::new(QueueConfig {
            retain_ms: 5_000,
            ..QueueConfig::default()
        });
        add(&mut q, "a", "x", Priority::Medium);
        add(&mut q, "b", "x", Priority::Medium);
        assert_eq!(claim(&mut q, "w", Some(2), T0), ["a", "b"]);
        q.complete("a", Some("w"), json!(1), None, T0 + 10).unwrap();
        q.take_changes();
        assert_eq!(q.advance(T0 + 10), T0 + 5_010, "the drop of a is due first");
        assert_eq!(q.sweep(T0 + 5_009), 0, "kept for the retention period");
        assert_eq!(q.sweep(T0 + 5_010), 1);
        assert!(q.get("a").is_none());
        assert_eq!(q.counts(), [0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(
            q.take_changes().tasks,
            ["a"],
            "the drop is a change to journal"
        );
        let all = q.page(&ListQuery {
            limit: 10,
            ..ListQuery::default()
        });
        assert!(all.tasks.iter().all(|r| r.id != "a"));
    }

    #[test]
    fn a_heartbeat_changes_only_the_lease() {
        let mut q = queue();
        add(&mut q, "a", "x", Priority::Medium);
        assert_eq!(claim(&mut q, "w", None, T0), ["a"]);
        q.take_changes();
        q.heartbeat("a", "w", T0 + 100).unwrap();
        assert_eq!(
            q.take_changes(),
            Changes {
                tasks: vec![],
                renewed: vec!["a".into()],
                paused: vec![],
            }
        );
        q.heartbeat("a", "w", T0 + 200).unwrap();
        q.complete("a", Some("w"), json!(1), None, T0 + 300)
            .unwrap();
        let changes = q.take_changes();
        assert_eq!(changes.tasks, ["a"]);
        assert!(
            changes.renewed.is_empty(),
            "the whole task carries its lease"
        );
    }

    #[test]
    fn undo_puts_back_what_a_batch_of_changes_did() {
        let mut q = queue();
        q.keep_before();
        add(&mut q, "a", "x", Priority::Medium);
        q.take_changes();
        let first = q.take_before();
        assert_eq!(first.get("a"), Some(&None), "a did not exist before");
        // This batch never reaches the disk.
        assert_eq!(claim(&mut q, "w", None, T0), ["a"]);
        add(&mut q, "b", "x", Priority::High);
        q.heartbeat("a", "w", T0 + 10).unwrap();
        let lost = q.take_before();
        q.undo(vec![lost], T0 + 20);
        assert!(q.get("b").is_none(), "an undone enqueue does not exist");
        let a = q.get("a").unwrap();
        assert_eq!(
            (a.status, a.attempt, a.history.len()),
            (Status::Queued, 0, 0)
        );
        assert_eq!(q.counts(), [0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(
            claim(&mut q, "w2", Some(5), T0 + 30),
            ["a"],
            "indexes rebuilt"
        );
    }

    #[test]
    fn a_task_past_its_expiry_is_expired_at_claim_time_not_handed_out() {
        let mut q = queue();
        let req = EnqueueRequest {
            id: Some("e".into()),
            task_type: "x".into(),
            expires_at: Some(crate::server::clock::rfc3339(T0 + 50)),
            ..EnqueueRequest::default()
        };
        q.enqueue(&req, T0);
        add(&mut q, "a", "x", Priority::Low);
        // The claim comes before any timer sweep: it expires the task itself.
        assert_eq!(claim(&mut q, "w", Some(5), T0 + 50), ["a"]);
        let e = q.get("e").unwrap();
        assert_eq!(e.status, Status::Expired);
        assert_eq!(
            e.error.as_ref().unwrap().error_type.as_deref(),
            Some(EXPIRED)
        );
        assert_eq!(q.counts()[Status::Expired.index()], 1);
    }

    #[test]
    fn a_paused_type_keeps_its_place_and_resumes_whole() {
        let mut q = queue();
        add(&mut q, "p1", "p", Priority::High);
        add(&mut q, "o1", "o", Priority::Low);
        add(&mut q, "p2", "p", Priority::High);
        q.set_paused("p", true).unwrap();
        assert_eq!(claim(&mut q, "w", Some(5), T0), ["o1"]);
        add(&mut q, "p3", "p", Priority::High);
        q.set_paused("p", false).unwrap();
        assert_eq!(claim(&mut q, "w", Some(5), T0), ["p1", "p2", "p3"]);
        assert_eq!(q.take_changes().paused, ["p"]);
    }

    #[test]
    fn counts_by_type_and_priority_follow_every_change() {
        let mut q = queue();
        add(&mut q, "a", "x", Priority::High);
        add(&mut q, "b", "x", Priority::Low);
        add(&mut q, "c", "y", Priority::Low);
        q.cancel("a", T0).unwrap();
        q.delete("c", T0).unwrap();
        assert_eq!(claim(&mut q, "w", None, T0), ["b"]);
        let types = q.types();
        assert_eq!(types.len(), 1, "y has no task left");
        let x = &types[0].counts;
        assert_eq!(
            (x[Status::Cancelled.index()], x[Status::Claimed.index()]),
            (1, 1)
        );
        let stats = q.stats(T0);
        assert_eq!(stats.counts.by_priority[0][Status::Cancelled.index()], 1);
        assert_eq!(stats.counts.by_priority[2][Status::Claimed.index()], 1);
        assert_eq!(
            q.retry("b", T0),
            Err(not_in(
                "b",
                Status::Claimed,
                "retried",
                "failed, cancelled or expired"
            ))
        );
    }

    #[test]
    fn history_keeps_the_newest_attempts_only() {
        let mut q = Queue::new(QueueConfig {
            lease_ms: 1,
            max_attempts: 100,
            ..QueueConfig::default()
        });
        add(&mut q, "a", "x", Priority::Medium);
        let mut now = T0;
        for _ in 0..(MAX_HISTORY + 5) {
            assert_eq!(claim(&mut q, "w", None, now), ["a"]);
            now += 2;
            q.advance(now);
        }
        let a = q.get("a").unwrap();
        assert_eq!(a.history.len(), MAX_HISTORY);
        assert_eq!(a.history.last().unwrap().attempt, a.attempt);
    }

    #[test]
    fn tasks_whose_client_hung_up_go_back_without_an_attempt() {
        let mut q = queue();
        add(&mut q, "a", "t", Priority::Medium);
        add(&mut q, "b", "t", Priority::Medium);
        assert_eq!(claim(&mut q, "w", Some(2), T0), ["a", "b"]);
        let released = q.release(
            "w",
            &[("a".into(), 1), ("b".into(), 2), ("x".into(), 1)],
            T0 + 1,
        );
        assert_eq!(released, 1, "only the one held as that attempt");
        assert!(q.release("other", &[("b".into(), 1)], T0 + 1) == 0);
        let a = q.get("a").unwrap();
        assert_eq!((a.status, a.attempt), (Status::Queued, 0));
        assert_eq!(q.get("b").unwrap().status, Status::Claimed);
        assert_eq!(q.totals().released, 1);
        assert_eq!(claim(&mut q, "w2", None, T0 + 2), ["a"], "in its old place");
        assert_eq!(q.get("a").unwrap().attempt, 1);
    }
}
