//! The tasks in flight: one entry per execution, shared by the processor
//! that runs it, the supervisor that watches its deadline, the heartbeat
//! thread that keeps its lease, and the health server. Exactly one party settles each entry (hands its outcome to
//! the reporter, or drops it when the lease is lost).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

const RUNNING: u8 = 0;
const SETTLING: u8 = 1;
const SETTLED: u8 = 2;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::context::Context;
use crate::task::Task;

/// One task in flight: its execution, from start until its processor thread returns.
#[derive(Debug)]
pub struct InFlightTask {
    /// Unique within this process.
    pub id: u64,
    /// The task being run.
    pub task: Task,
    /// Its context: deadline and cancel token.
    pub ctx: Context,
    /// When it started.
    pub started: Instant,
    /// Which processor runs it.
    pub processor: usize,
    /// The lease length, when the server leases (heartbeats every third of it).
    pub lease: Option<Duration>,
    /// `RUNNING`, then `SETTLING` while the winner hands off, then `SETTLED`.
    state: AtomicU8,
    abandoned: AtomicBool,
}

impl InFlightTask {
    /// Whether someone has taken the right to settle it (its outcome is
    /// being handed off, or already was).
    pub fn is_settled(&self) -> bool {
        self.state.load(Ordering::Acquire) != RUNNING
    }

    fn is_handed_off(&self) -> bool {
        self.state.load(Ordering::Acquire) == SETTLED
    }

    /// Marks the processor thread as given up on (a replacement takes its
    /// place); true for the first caller only.
    pub fn abandon(&self) -> bool {
        self.abandoned
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether the processor thread was given up on.
    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }
}

#[derive(Debug, Default)]
struct Table {
    entries: BTreeMap<u64, Arc<InFlightTask>>,
    /// The ids of tasks handed to the processors but not yet started: kept,
    /// not just counted, so that a copy delivered again before its
    /// processor thread starts it is known as a duplicate too.
    reserved: Vec<String>,
    /// Threads in [`InFlight::wait_settled`]: only for them is a change
    /// notified (a notify is a system call even when nobody waits).
    waiters: usize,
}

impl Table {
    fn all_settled(&self) -> bool {
        self.reserved.is_empty() && self.entries.values().all(|r| r.is_handed_off())
    }

    fn take_reservation(&mut self, task_id: &str) {
        if let Some(i) = self.reserved.iter().position(|r| r == task_id) {
            self.reserved.swap_remove(i);
        }
    }
}

/// The registry of running executions. An entry stays until its processor
/// thread returns, so a settled entry whose thread still runs is a stuck thread.
#[derive(Debug)]
pub struct InFlight {
    map: Mutex<Table>,
    changed: Condvar,
    next_id: AtomicU64,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
    /// A task with a lease started: the heartbeat thread plans its beats.
    leased_tx: Sender<()>,
    leased_rx: Receiver<()>,
    /// When the heartbeat thread means to wake next, in ms since `epoch`
    /// (`u64::MAX`: it is planning, or has nothing planned; any leased
    /// start wakes it): a leased task whose first beat comes earlier wakes
    /// it, others do not (no wake per task).
    planned_beat_ms: AtomicU64,
    /// When the supervisor means to wake next, in ms since `epoch`: a task
    /// with an earlier deadline wakes it, others do not (no wake per task).
    planned_wake_ms: AtomicU64,
    epoch: Instant,
}

impl Default for InFlight {
    fn default() -> InFlight {
        let (wake_tx, wake_rx) = bounded(1);
        let (leased_tx, leased_rx) = bounded(1);
        InFlight {
            map: Mutex::new(Table::default()),
            changed: Condvar::new(),
            next_id: AtomicU64::new(1),
            wake_tx,
            wake_rx,
            leased_tx,
            leased_rx,
            planned_wake_ms: AtomicU64::new(0),
            planned_beat_ms: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        }
    }
}

impl InFlight {
    /// Notes a task handed to the processors, so that a drain waits for it.
    pub fn reserve(&self, task_id: &str) {
        self.lock().reserved.push(task_id.to_string());
    }

    /// Drops the reservation of a task that will never start here (its
    /// processor died first, and its outcome is already handed off).
    pub fn unreserve(&self, task_id: &str) {
        let mut table = self.lock();
        table.take_reservation(task_id);
        self.notify(table);
    }

    /// Registers a new execution (turning a reservation into an entry); wakes
    /// the supervisor if its deadline comes before the supervisor's next
    /// check, and the heartbeat thread if it has a lease whose first beat
    /// comes before the heartbeat thread's next wake.
    pub fn start(
        &self,
        task: Task,
        ctx: Context,
        processor: usize,
        lease: Option<Duration>,
    ) -> Arc<InFlightTask> {
        let entry = Arc::new(InFlightTask {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            task,
            ctx,
            started: Instant::now(),
            processor,
            lease,
            state: AtomicU8::new(RUNNING),
            abandoned: AtomicBool::new(false),
        });
        let mut table = self.lock();
        table.take_reservation(&entry.task.id);
        table.entries.insert(entry.id, entry.clone());
        drop(table);
        if self.ms_since_epoch(entry.ctx.deadline) < self.planned_wake_ms.load(Ordering::Relaxed) {
            let _ = self.wake_tx.try_send(());
        }
        if let Some(lease) = entry.lease {
            let first_beat = crate::bounded::instant_after(entry.started, lease / 3);
            if self.ms_since_epoch(first_beat) < self.planned_beat_ms.load(Ordering::Relaxed) {
                let _ = self.leased_tx.try_send(());
            }
        }
        entry
    }

    /// The heartbeat thread is about to look at the entries: until it says
    /// when it wakes next ([`InFlight::plan_beats`]), every leased start
    /// wakes it, so that none started after its look is missed.
    pub fn planning_beats(&self) {
        self.planned_beat_ms.store(u64::MAX, Ordering::Relaxed);
    }

    /// The heartbeat thread says when it wakes next (`None`: not before a
    /// leased task starts).
    pub fn plan_beats(&self, at: Option<Instant>) {
        let ms = at.map_or(u64::MAX, |at| self.ms_since_epoch(at));
        self.planned_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// The supervisor says when it will check next.
    pub fn plan_wake(&self, at: Instant) {
        self.planned_wake_ms
            .store(self.ms_since_epoch(at), Ordering::Relaxed);
    }

    fn ms_since_epoch(&self, t: Instant) -> u64 {
        crate::bounded::millis(t.saturating_duration_since(self.epoch))
    }

    /// Takes the right to settle `entry`: true for exactly one caller, who
    /// runs `hand_off` (makes the outcome durable and sends it to the
    /// reporter, or drops it). Until `hand_off` returns the entry does not
    /// count as settled, so a drain never tells the reporter to finish while
    /// an outcome is still on its way; and no lock is held meanwhile.
    pub fn settle_with(&self, entry: &InFlightTask, hand_off: impl FnOnce()) -> bool {
        let won = entry
            .state
            .compare_exchange(RUNNING, SETTLING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            hand_off();
            entry.state.store(SETTLED, Ordering::Release);
            // Under the lock, so a waiter between its check and its wait still wakes.
            self.notify(self.lock());
        }
        won
    }

    /// Removes an execution whose processor thread has returned.
    pub fn finish(&self, id: u64) {
        let mut table = self.lock();
        table.entries.remove(&id);
        self.notify(table);
    }

    /// Wakes the threads in [`InFlight::wait_settled`], if any: `table`,
    /// locked, is where they count themselves, so none is missed.
    fn notify(&self, table: std::sync::MutexGuard<'_, Table>) {
        if table.waiters > 0 {
            self.changed.notify_all();
        }
    }

    /// Every entry: running, or settled with its thread still busy.
    pub fn snapshot(&self) -> Vec<Arc<InFlightTask>> {
        self.lock().entries.values().cloned().collect()
    }

    /// Whether a task with this id runs here now, or is on its way to a
    /// processor thread (a duplicate delivery).
    pub fn is_running(&self, task_id: &str) -> bool {
        let table = self.lock();
        table.reserved.iter().any(|r| r == task_id)
            || table
                .entries
                .values()
                .any(|r| !r.is_settled() && r.task.id == task_id)
    }

    /// Entries not yet settled.
    pub fn unsettled(&self) -> Vec<Arc<InFlightTask>> {
        self.lock()
            .entries
            .values()
            .filter(|r| !r.is_settled())
            .cloned()
            .collect()
    }

    /// Waits until every task handed out is settled; false when `timeout` passed first.
    pub fn wait_settled(&self, timeout: Duration) -> bool {
        let mut table = self.lock();
        table.waiters += 1;
        let (mut table, _) = self
            .changed
            .wait_timeout_while(table, timeout, |t| !t.all_settled())
            .unwrap_or_else(|e| e.into_inner());
        table.waiters -= 1;
        table.all_settled()
    }

    /// Receives a message when an execution starts (the supervisor re-plans).
    pub fn started(&self) -> &Receiver<()> {
        &self.wake_rx
    }

    /// Receives a message when an execution with a lease starts (the
    /// heartbeat thread plans its beats).
    pub fn leased_started(&self) -> &Receiver<()> {
        &self.leased_rx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settles_once_and_reports_empty() {
        let inflight = Arc::new(InFlight::default());
        let ctx = Context::new(Duration::from_secs(5), 1, "w".into());
        inflight.reserve("t");
        assert!(
            !inflight.wait_settled(Duration::from_millis(10)),
            "a reserved task is waited for"
        );
        assert!(
            inflight.is_running("t"),
            "a task on its way to a processor is not run again"
        );
        inflight.plan_wake(Instant::now() + Duration::from_secs(3600));
        let r = inflight.start(Task::new("t", "echo", json!({})), ctx, 0, None);
        assert!(
            inflight.started().try_recv().is_ok(),
            "an earlier deadline wakes the supervisor"
        );

        assert_eq!(inflight.unsettled().len(), 1);
        assert!(!inflight.wait_settled(Duration::from_millis(10)));
        let other = inflight.clone();
        let r2 = r.clone();
        let t = std::thread::spawn(move || assert!(other.settle_with(&r2, || {})));
        assert!(inflight.wait_settled(Duration::from_secs(10)));
        t.join().unwrap();
        assert!(!inflight.settle_with(&r, || panic!("only the winner hands off")));
        assert_eq!(
            inflight.snapshot().len(),
            1,
            "kept until its thread returns"
        );
        inflight.finish(r.id);
        assert!(inflight.snapshot().is_empty());
        assert!(r.abandon() && !r.abandon());
    }

    #[test]
    fn a_leased_start_wakes_the_heartbeat_thread_only_before_its_planned_wake() {
        let inflight = InFlight::default();
        let ctx = || Context::new(Duration::from_secs(5), 1, "w".into());
        let lease = Some(Duration::from_secs(30));
        let start = |id: &str| {
            inflight.reserve(id);
            inflight.start(Task::new(id, "echo", json!({})), ctx(), 0, lease)
        };
        start("t1");
        assert!(
            inflight.leased_started().try_recv().is_ok(),
            "before any plan, a leased start wakes it"
        );
        inflight.plan_beats(Some(Instant::now() + Duration::from_secs(5)));
        start("t2");
        assert!(
            inflight.leased_started().try_recv().is_err(),
            "a first beat in 10 s waits for the wake in 5 s"
        );
        inflight.plan_beats(Some(Instant::now() + Duration::from_secs(60)));
        start("t3");
        assert!(
            inflight.leased_started().try_recv().is_ok(),
            "a first beat before the planned wake wakes it"
        );
        inflight.plan_beats(None);
        start("t4");
        assert!(
            inflight.leased_started().try_recv().is_ok(),
            "nothing planned"
        );
        inflight.plan_beats(Some(Instant::now() + Duration::from_secs(60)));
        inflight.planning_beats();
        start("t5");
        assert!(
            inflight.leased_started().try_recv().is_ok(),
            "while it plans, any leased start wakes it"
        );
        start("t6");
        inflight.start(Task::new("t7", "echo", json!({})), ctx(), 0, None);
        assert!(inflight.leased_started().try_recv().is_ok());
        assert!(
            inflight.leased_started().try_recv().is_err(),
            "an unleased start does not wake it"
        );
    }
}
