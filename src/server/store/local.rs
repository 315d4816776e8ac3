//! The memory and journal stores: the queue of this process. Applies each
//! request to the queue under one short lock, journals what changed (with
//! `--data`), and returns only once the change is durable; undoes what the
//! journal could not write and refuses every change after that; parks long
//! polls; runs the timer that expires leases, releases delayed tasks,
//! drops finished ones after their retention and ends parked claims' waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::journal::Journal;
use super::{Claim, Report, Snapshot, Store, StoreError};
use crate::server::admin::{ListQuery, Page, Stats, TypeView, WorkerView};
use crate::server::clock::Clock;
use crate::server::queue::{Before, Queue, ReportError};
use crate::server::record::{Status, TaskRecord};
use crate::server::waiters::Waiter;
use crate::task::{ClaimRequest, EnqueueRequest};

/// The timer wakes at least this often, whatever is due.
const TIMER_MAX_SLEEP: Duration = Duration::from_secs(60);

/// The queue with its lock, journal, clock and timer: the memory store,
/// or the journal store when it has a journal.
pub struct Local {
    queue: Mutex<Queue>,
    timer: Condvar,
    journal: Option<Journal>,
    /// What tasks were before the changes not yet on disk, with the ticket
    /// of each batch, oldest first. Locked only under the queue's lock.
    unsynced: Mutex<VecDeque<(u64, Before)>>,
    clock: Clock,
    started: Instant,
    stopping: AtomicBool,
}

impl Local {
    /// A service over `queue`, journaling to `journal` when there is one.
    pub fn new(mut queue: Queue, journal: Option<Journal>, clock: Clock) -> Local {
        if journal.is_some() {
            queue.keep_before();
        }
        Local {
            queue: Mutex::new(queue),
            timer: Condvar::new(),
            journal,
            unsynced: Mutex::new(VecDeque::new()),
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
    /// of changes), compacts the journal when it has grown too big, and
    /// wakes the timer when it must sleep less. Returns the ticket to wait
    /// for before acknowledging.
    fn commit(&self, q: &mut Queue) -> u64 {
        if q.take_timer_kick() {
            self.timer.notify_one();
        }
        if !q.has_changes() {
            return 0;
        }
        let changes = q.take_changes();
        let before = q.take_before();
        let Some(journal) = &self.journal else {
            return 0;
        };
        // The lines of this change are synced together (and a compaction
        // after them does not hold back the sync of earlier changes).
        let hold = journal.hold();
        let mut ticket = 0;
        for id in &changes.tasks {
            ticket = match q.get(id) {
                Some(rec) => journal.append(rec),
                None => journal.append_drop(id),
            };
        }
        for id in &changes.renewed {
            if let Some(lease) = q.get(id).and_then(|r| r.lease.as_ref()) {
                ticket = journal.append_renew(id, lease.expires_at);
            }
        }
        for task_type in &changes.paused {
            ticket = journal.append_pause(task_type, q.is_paused(task_type));
        }
        drop(hold);
        if journal.needs_compaction() {
            journal.compact(&q.records(), &q.paused());
        }
        let synced = journal.synced();
        let mut unsynced = self.unsynced();
        while unsynced.front().is_some_and(|(t, _)| *t <= synced) {
            unsynced.pop_front();
        }
        if ticket > 0 {
            unsynced.push_back((ticket, before));
        }
        ticket
    }

    fn unsynced(&self) -> MutexGuard<'_, VecDeque<(u64, Before)>> {
        self.unsynced.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why the journal failed, if it has: then `/health` is unhealthy and
    /// every change is refused until a restart.
    pub fn journal_failure(&self) -> Option<String> {
        self.journal.as_ref().and_then(Journal::failure)
    }

    /// Refuses a change once the journal has failed, after undoing what it
    /// did not write: memory holds only what the journal holds.
    fn refuse_if_failed(&self, q: &mut Queue) -> Result<(), StoreError> {
        let (Some(journal), Some(why)) = (&self.journal, self.journal_failure()) else {
            return Ok(());
        };
        let synced = journal.synced();
        let befores: Vec<Before> = self
            .unsynced()
            .drain(..)
            .filter(|(ticket, _)| *ticket > synced)
            .map(|(_, before)| before)
            .collect();
        if !befores.is_empty() {
            q.undo(befores, self.clock.now());
            // Undoing is not a change to journal.
            q.take_changes();
            q.take_before();
        }
        Err(StoreError::NotDurable(format!(
            "{why}; changes are refused until a restart"
        )))
    }

    /// Applies what time has done, unless the journal has failed; returns
    /// when something is next due.
    fn advance(&self, q: &mut Queue) -> u64 {
        if self.refuse_if_failed(q).is_err() {
            return u64::MAX;
        }
        let next = q.advance(self.clock.now());
        self.commit(q);
        next
    }

    /// Applies one change to the queue and returns once it is durable.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut Queue, u64) -> Result<T, ReportError>,
    ) -> Result<T, StoreError> {
        let mut q = self.lock();
        self.refuse_if_failed(&mut q)?;
        let res = f(&mut q, self.clock.now());
        let ticket = self.commit(&mut q);
        drop(q);
        let value = res?;
        self.durable(ticket)?;
        Ok(value)
    }

    /// Reads the queue after applying what time has done.
    fn read<T>(&self, f: impl FnOnce(&Queue, u64) -> T) -> Result<T, StoreError> {
        let mut q = self.lock();
        self.advance(&mut q);
        Ok(f(&q, self.clock.now()))
    }

    fn durable(&self, ticket: u64) -> Result<(), StoreError> {
        let Some(journal) = self.journal.as_ref().filter(|_| ticket > 0) else {
            return Ok(());
        };
        journal.wait(ticket).map_err(|e| {
            // A failed write undoes the changes it held; a slow one keeps them.
            match self.refuse_if_failed(&mut self.lock()) {
                Err(refused) => refused,
                Ok(()) => StoreError::NotDurable(e.to_string()),
            }
        })
    }
}

impl Store for Local {
    fn enqueue(&self, req: &EnqueueRequest) -> Result<(TaskRecord, bool), StoreError> {
        self.change(|q, now| {
            let (rec, created) = q.enqueue(req, now);
            Ok((rec.clone(), created))
        })
    }

    fn claim(&self, req: &ClaimRequest, waiter: Option<Waiter>) -> Result<Claim, StoreError> {
        let mut q = self.lock();
        self.refuse_if_failed(&mut q)?;
        let claimed = q.claim(req, self.clock.now());
        if !claimed.may_wait {
            // This claim may have been woken for a task it will not take.
            q.nudge();
        }
        let ticket = self.commit(&mut q);
        let parks =
            claimed.tasks.is_empty() && claimed.may_wait && !self.stopping.load(Ordering::SeqCst);
        if let Some(waiter) = waiter.filter(|_| parks) {
            // Under the lock that enqueues take: a task that becomes ready
            // from now on wakes this claim.
            if q.waiters.park(waiter) {
                // The nearest deadline now: the timer must wake sooner.
                self.timer.notify_one();
            }
            // Nothing was handed out, so nothing waits for the journal.
            return Ok(Claim::Parked);
        }
        drop(q);
        self.durable(ticket)?;
        Ok(Claim::Tasks(claimed.tasks))
    }

    fn forget_gone(&self) {
        self.lock().waiters.forget_gone();
    }

    fn pass_on(&self, _types: Option<&[String]>) {
        // The queue knows which types have a ready task: one wake each.
        self.lock().nudge();
    }

    fn release(&self, worker_id: &str, handed: &[(String, u32)]) -> Result<usize, StoreError> {
        self.change(|q, now| Ok(q.release(worker_id, handed, now)))
    }

    /// Every outcome under one lock, made durable by one journal sync.
    fn report_many(
        &self,
        reports: Vec<Report>,
    ) -> Result<Vec<Result<Status, ReportError>>, StoreError> {
        self.change(|q, now| {
            Ok(reports
                .into_iter()
                .map(|report| match report {
                    Report::Complete(id, body) => {
                        let worker = body.worker_id.as_deref();
                        q.complete(&id, worker, body.result, body.duration_ms, now)
                            .map(|()| Status::Completed)
                    }
                    Report::Fail(id, body) => q
                        .fail(&id, &body, now)
                        .map(|()| q.get(&id).map_or(Status::Failed, |r| r.status)),
                })
                .collect())
        })
    }

    fn heartbeat(&self, id: &str, worker_id: &str) -> Result<u64, StoreError> {
        self.change(|q, now| q.heartbeat(id, worker_id, now))
    }

    fn cancel_claim(&self, claim_id: &str) -> Result<usize, StoreError> {
        self.change(|q, now| Ok(q.cancel_claim(claim_id, now)))
    }

    fn task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        self.read(|q, _| q.get(id).cloned())
    }

    fn page(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.read(|q, _| q.page(query))
    }

    fn cancel(&self, id: &str) -> Result<(), StoreError> {
        self.change(|q, now| q.cancel(id, now))
    }

    fn retry(&self, id: &str) -> Result<(), StoreError> {
        self.change(|q, now| q.retry(id, now))
    }

    fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.change(|q, now| q.delete(id, now))
    }

    fn set_paused(&self, task_type: &str, paused: bool) -> Result<(), StoreError> {
        self.change(|q, _| q.set_paused(task_type, paused))
    }

    fn types(&self) -> Result<Vec<TypeView>, StoreError> {
        self.read(|q, _| q.types())
    }

    fn workers(&self) -> Result<Vec<WorkerView>, StoreError> {
        self.read(|q, now| q.workers(now))
    }

    fn stats(&self) -> Result<Stats, StoreError> {
        self.read(|q, now| q.stats(now))
    }

    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut q = self.lock();
        self.advance(&mut q);
        Ok(Snapshot {
            counts: q.counts(),
            totals: q.totals().clone(),
            waiting: q.waiters.len(),
            journal_syncs: self.journal.as_ref().map(Journal::syncs),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    fn failure(&self) -> Option<String> {
        self.journal_failure()
    }

    fn run_timer(&self) {
        let mut q = self.lock();
        while !self.stopping.load(Ordering::SeqCst) {
            let now = self.clock.now();
            let next = self.advance(&mut q);
            q.set_timer_wake(next);
            let mut sleep = Duration::from_millis(next.saturating_sub(now)).min(TIMER_MAX_SLEEP);
            let instant = Instant::now();
            q.waiters.expire(instant);
            if let Some(at) = q.waiters.next_deadline() {
                sleep = sleep.min(at.saturating_duration_since(instant));
            }
            q = self
                .timer
                .wait_timeout(q, sleep)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn close(&self) {
        if let Some(journal) = &self.journal {
            journal.close();
        }
    }

    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let mut q = self.lock();
        q.waiters.stop_all();
        self.commit(&mut q);
        drop(q);
        self.timer.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::queue::QueueConfig;

    fn service(name: &str) -> (Local, std::path::PathBuf) {
        let dir = crate::test_path("service");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let (mut journal, _) = Journal::open(&path).unwrap();
        journal.set_compact_floor(4096);
        let queue = Queue::new(QueueConfig::default());
        (Local::new(queue, Some(journal), Clock::new()), path)
    }

    fn enqueue(id: &str) -> EnqueueRequest {
        EnqueueRequest {
            id: Some(id.into()),
            task_type: "t".into(),
            ..EnqueueRequest::default()
        }
    }

    fn claim() -> ClaimRequest {
        ClaimRequest {
            worker_id: "w".into(),
            types: None,
            max_tasks: Some(10),
            wait_seconds: None,
            claim_id: None,
        }
    }

    #[test]
    fn a_change_the_journal_could_not_write_is_undone_and_later_ones_refused() {
        let (svc, path) = service("refused.jsonl");
        svc.enqueue(&enqueue("kept")).unwrap();
        svc.journal.as_ref().unwrap().fail_next_write();
        let err = svc.enqueue(&enqueue("refused")).unwrap_err();
        assert!(matches!(err, StoreError::NotDurable(_)), "{err}");
        assert!(
            svc.get("refused").unwrap().is_none(),
            "a refused enqueue does not exist"
        );
        assert!(svc.get("kept").unwrap().is_some());
        let why = svc.journal_failure().expect("failed");
        assert!(why.contains("refused.jsonl"), "{why}");
        // Every change is refused now, reads still answer.
        assert!(matches!(
            svc.claim(&claim(), None),
            Err(StoreError::NotDurable(_))
        ));
        assert!(svc.enqueue(&enqueue("later")).is_err());
        assert_eq!(svc.snapshot().unwrap().counts, [0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(svc.get("kept").unwrap().unwrap()["status"], "queued");
        drop(svc);
        let (_j, replayed) = Journal::open(&path).unwrap();
        let recs = replayed.tasks;
        let ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["kept"]);
    }

    #[test]
    fn a_failed_claim_puts_its_tasks_back() {
        let (svc, _) = service("claim.jsonl");
        svc.enqueue(&enqueue("a")).unwrap();
        svc.journal.as_ref().unwrap().fail_next_write();
        assert!(svc.claim(&claim(), None).is_err());
        let a = svc.get("a").unwrap().unwrap();
        assert_eq!(
            (a["status"].as_str(), a["attempt"].as_u64()),
            (Some("queued"), Some(0))
        );
    }

    #[test]
    fn heartbeats_grow_the_journal_only_until_it_is_compacted() {
        let (svc, path) = service("compact.jsonl");
        svc.enqueue(&enqueue("a")).unwrap();
        assert!(matches!(svc.claim(&claim(), None), Ok(Claim::Tasks(t)) if t.len() == 1));
        let mut largest = 0;
        for _ in 0..2000 {
            svc.heartbeat("a", "w").unwrap();
            largest = largest.max(std::fs::metadata(&path).unwrap().len());
        }
        assert!(
            largest < 2 * 4096,
            "compacted while running: {largest} bytes"
        );
        drop(svc);
        let (_j, replayed) = Journal::open(&path).unwrap();
        let recs = replayed.tasks;
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].status, Status::Claimed);
    }
}
