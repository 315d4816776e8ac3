//! Applies each request to the queue under one short lock, journals what
//! changed, and returns only once the change is durable; parks long polls;
//! runs the timer that expires leases and releases delayed tasks.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::clock::Clock;
use super::journal::Journal;
use super::queue::{Queue, ReportError, Totals};
use super::record::{Status, TaskRecord};
use super::waiters::Wake;
use crate::task::{ClaimRequest, CompleteBody, EnqueueRequest, FailBody, Task};

/// The timer wakes at least this often, whatever is due.
const TIMER_MAX_SLEEP: Duration = Duration::from_secs(60);

/// Why a request could not be applied.
#[derive(Debug)]
pub enum ServiceError {
    /// The queue refused it (404 or 409).
    Report(ReportError),
    /// The change could not be made durable (503).
    NotDurable(String),
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Report(e) => e.fmt(f),
            ServiceError::NotDurable(why) => write!(f, "not durable: {why}"),
        }
    }
}

impl From<ReportError> for ServiceError {
    fn from(e: ReportError) -> ServiceError {
        ServiceError::Report(e)
    }
}

/// What `/health` and `/metrics` show.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Tasks per status, in [`Status::ALL`] order.
    pub counts: [u64; 4],
    /// Event counters.
    pub totals: Totals,
    /// Claims parked in a long poll.
    pub waiting: usize,
    /// Seconds since start.
    pub uptime_seconds: f64,
}

/// The queue with its lock, journal, clock and timer.
pub struct Service {
    queue: Mutex<Queue>,
    timer: Condvar,
    journal: Option<Journal>,
    clock: Clock,
    started: Instant,
    stopping: AtomicBool,
}

impl Service {
    /// A service over `queue`, journaling to `journal` when there is one.
    pub fn new(queue: Queue, journal: Option<Journal>, clock: Clock) -> Service {
        Service {
            queue: Mutex::new(queue),
            timer: Condvar::new(),
            journal,
            clock,
            started: Instant::now(),
            stopping: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue's invariants hold between its methods, and no method
        // panics on input; a poisoned lock still guards consistent data.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Journals what changed (under the queue lock, so lines keep the order
    /// of changes) and wakes the timer when it must sleep less. Returns the
    /// ticket to wait for before acknowledging.
    fn commit(&self, q: &mut Queue) -> u64 {
        if q.take_timer_kick() {
            self.timer.notify_one();
        }
        if !q.has_changes() {
            return 0;
        }
        let changes = q.take_changes();
        let Some(journal) = &self.journal else {
            return 0;
        };
        let mut ticket = 0;
        for id in changes {
            if let Some(rec) = q.get(&id) {
                ticket = journal.append(rec);
            }
        }
        ticket
    }

    fn durable(&self, ticket: u64) -> Result<(), ServiceError> {
        match &self.journal {
            Some(j) if ticket > 0 => j
                .wait(ticket)
                .map_err(|e| ServiceError::NotDurable(e.to_string())),
            _ => Ok(()),
        }
    }

    /// Adds a task; returns it and whether it is new.
    pub fn enqueue(&self, req: &EnqueueRequest) -> Result<(TaskRecord, bool), ServiceError> {
        let mut q = self.lock();
        let now = self.clock.now();
        let (rec, created) = q.enqueue(req, now);
        let rec = rec.clone();
        let ticket = self.commit(&mut q);
        drop(q);
        self.durable(ticket)?;
        Ok((rec, created))
    }

    /// Claims tasks, waiting up to `wait` for one to become ready.
    pub fn claim(&self, req: &ClaimRequest, wait: Duration) -> Result<Vec<Task>, ServiceError> {
        let deadline = crate::bounded::instant_after(Instant::now(), wait);
        let mut last_try = wait.is_zero();
        loop {
            let mut q = self.lock();
            let claimed = q.claim(req, self.clock.now());
            let done = !claimed.tasks.is_empty()
                || !claimed.may_wait
                || last_try
                || self.stopping.load(Ordering::SeqCst);
            if !claimed.may_wait {
                // This claim may have been woken for a task it will not take.
                q.nudge();
            }
            let ticket = self.commit(&mut q);
            if done {
                drop(q);
                self.durable(ticket)?;
                return Ok(claimed.tasks);
            }
            let types = if q.config().extensions {
                req.types.clone()
            } else {
                None
            };
            let (ticket, wake) = q.waiters.park(req.claim_id.clone(), types);
            drop(q);
            match wake.recv_deadline(deadline) {
                Ok(Wake::Check) => {}
                Ok(Wake::Cancelled | Wake::Stopped) => return Ok(Vec::new()),
                Err(_) => {
                    self.lock().waiters.unpark(ticket);
                    last_try = true;
                }
            }
        }
    }

    /// Records a result.
    pub fn complete(&self, id: &str, body: CompleteBody) -> Result<(), ServiceError> {
        let mut q = self.lock();
        let now = self.clock.now();
        let res = q.complete(
            id,
            body.worker_id.as_deref(),
            body.result,
            body.duration_ms,
            now,
        );
        let ticket = self.commit(&mut q);
        drop(q);
        res?;
        self.durable(ticket)
    }

    /// Records a failure; returns the task's status after it.
    pub fn fail(&self, id: &str, body: &FailBody) -> Result<Status, ServiceError> {
        let mut q = self.lock();
        let now = self.clock.now();
        let res = q.fail(id, body, now);
        let status = q.get(id).map_or(Status::Failed, |r| r.status);
        let ticket = self.commit(&mut q);
        drop(q);
        res?;
        self.durable(ticket)?;
        Ok(status)
    }

    /// Extends a lease; returns its new end (clock ms).
    pub fn heartbeat(&self, id: &str, worker_id: &str) -> Result<u64, ServiceError> {
        let mut q = self.lock();
        let now = self.clock.now();
        let res = q.heartbeat(id, worker_id, now);
        let ticket = self.commit(&mut q);
        drop(q);
        let expires = res?;
        self.durable(ticket)?;
        Ok(expires)
    }

    /// Ends a claim; returns how many tasks it put back.
    pub fn cancel_claim(&self, claim_id: &str) -> Result<usize, ServiceError> {
        let mut q = self.lock();
        let released = q.cancel_claim(claim_id, self.clock.now());
        let ticket = self.commit(&mut q);
        drop(q);
        self.durable(ticket)?;
        Ok(released)
    }

    /// `GET /tasks/{id}`.
    pub fn get(&self, id: &str) -> Option<Value> {
        let mut q = self.lock();
        q.advance(self.clock.now());
        self.commit(&mut q);
        q.get(id).map(TaskRecord::to_detail)
    }

    /// `GET /tasks`.
    pub fn list(
        &self,
        status: Option<Status>,
        task_type: Option<&str>,
        limit: usize,
    ) -> Vec<Value> {
        let mut q = self.lock();
        q.advance(self.clock.now());
        self.commit(&mut q);
        q.list(status, task_type, limit)
            .into_iter()
            .map(TaskRecord::to_detail)
            .collect()
    }

    /// Counts and counters.
    pub fn snapshot(&self) -> Snapshot {
        let mut q = self.lock();
        q.advance(self.clock.now());
        self.commit(&mut q);
        Snapshot {
            counts: q.counts(),
            totals: q.totals().clone(),
            waiting: q.waiters.len(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        }
    }

    /// Expires leases and releases delayed tasks on time, until [`Service::stop`].
    pub fn run_timer(&self) {
        let mut q = self.lock();
        while !self.stopping.load(Ordering::SeqCst) {
            let now = self.clock.now();
            let next = q.advance(now);
            self.commit(&mut q);
            q.set_timer_wake(next);
            let sleep = Duration::from_millis(next.saturating_sub(now)).min(TIMER_MAX_SLEEP);
            q = self
                .timer
                .wait_timeout(q, sleep)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Answers every parked claim and stops the timer.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let mut q = self.lock();
        q.waiters.stop_all();
        self.commit(&mut q);
        drop(q);
        self.timer.notify_all();
    }
}
