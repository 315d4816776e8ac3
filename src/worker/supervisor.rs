//! The supervisor thread: enforces deadlines (the task is reported `TIMEOUT`
//! on time even if its handler ignores the cancel), replaces processor
//! threads stuck in such handlers, and checks `MEMORY_LIMIT`.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{after, select, Receiver};

use crate::context::CancelReason;
use crate::error::{error_type, TaskError};
use crate::worker::inflight::{InFlight, Running};
use crate::worker::metrics::{rss_bytes, Stats};
use crate::worker::outbox::Outbox;
use crate::worker::outcome::Outcome;
use crate::worker::processor::Processors;
use crate::worker::shutdown::{StopHandle, StopReason};

/// How long a handler may run past a cancel before its thread is replaced.
pub const STUCK_GRACE: Duration = Duration::from_secs(2);
/// The longest the supervisor sleeps between checks (and between watchdog pings).
pub const TICK: Duration = Duration::from_millis(500);

/// The supervisor's inputs.
pub struct Supervisor {
    /// The running executions.
    pub inflight: Arc<InFlight>,
    /// The processors, to start replacements.
    pub processors: Arc<Processors>,
    /// Outcomes to the reporter.
    pub outcomes: Outbox,
    /// Counters.
    pub stats: Arc<Stats>,
    /// To drain on the memory limit.
    pub stop: StopHandle,
    /// RSS in bytes above which the worker drains and exits 75.
    pub memory_limit: Option<u64>,
    /// Disconnects when the worker is done (after the drain, not at its start).
    pub done: Receiver<()>,
    /// This worker's id.
    pub worker_id: Arc<str>,
    /// Called on every tick, so a watchdog can see that this thread lives.
    pub on_tick: Box<dyn FnMut() + Send>,
}

impl Supervisor {
    /// The supervisor loop; returns when `done` disconnects.
    pub fn run(mut self) {
        let mut next_index = self.stats.processors.load(Relaxed);
        let mut memory_warned = false;
        // When each settled entry whose thread is still busy was first seen so.
        let mut settled_since: HashMap<u64, Instant> = HashMap::new();
        loop {
            let now = Instant::now();
            let mut wake = now + TICK;
            // Planned before the snapshot: a task that starts after it and
            // is due before this wake-up sends a wake.
            self.inflight.plan_wake(wake);
            let snapshot = self.inflight.snapshot();

            settled_since.retain(|id, _| snapshot.iter().any(|r| r.id == *id));
            for running in &snapshot {
                if !running.is_settled() {
                    if now >= running.ctx.deadline {
                        self.time_out(running);
                        settled_since.insert(running.id, now);
                    } else {
                        wake = wake.min(running.ctx.deadline);
                    }
                } else if !running.is_abandoned() {
                    let since = *settled_since.entry(running.id).or_insert(now);
                    if now >= since + STUCK_GRACE {
                        self.replace(running, &mut next_index);
                    } else {
                        wake = wake.min(since + STUCK_GRACE);
                    }
                }
            }
            self.check_memory(&mut memory_warned);
            (self.on_tick)();
            let wait = wake
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            select! {
                recv(self.done) -> _ => return,
                recv(self.inflight.started()) -> _ => {}
                recv(after(wait)) -> _ => {}
            }
        }
    }

    fn time_out(&self, running: &Running) {
        let limit = running
            .ctx
            .deadline
            .saturating_duration_since(running.started);
        let err = TaskError::retryable(
            format!("task ran past its {} ms deadline", limit.as_millis()),
            error_type::TIMEOUT,
        );
        let (task, worker_id) = (&running.task, &*self.worker_id);
        if fail_in_place(
            &self.inflight,
            running,
            CancelReason::Timeout,
            &err,
            &self.outcomes,
            worker_id,
        ) {
            log::warn!(
                "task {} ({}): timed out after {} ms; reported TIMEOUT",
                task.id,
                task.task_type,
                limit.as_millis()
            );
        }
    }

    /// Gives up on a thread whose handler ignores its cancel and starts
    /// another, so the pool keeps its configured size.
    fn replace(&self, running: &Running, next_index: &mut usize) {
        if !running.abandon() {
            return;
        }
        self.stats.stuck_threads.fetch_add(1, Relaxed);
        log::error!(
            "task {} ({}): handler ignores its cancel; processor {} is abandoned and replaced",
            running.task.id,
            running.task.task_type,
            running.processor
        );
        match self.processors.spawn(*next_index) {
            Ok(_) => *next_index += 1,
            Err(e) => log::error!("cannot replace a stuck processor: {e}"),
        }
    }

    fn check_memory(&self, warned: &mut bool) {
        let (Some(limit), Some(rss)) = (
            self.memory_limit,
            self.memory_limit.and_then(|_| rss_bytes()),
        ) else {
            return;
        };
        if rss > limit && !*warned {
            *warned = true;
            log::warn!("memory: RSS {rss} bytes is over MEMORY_LIMIT {limit}; draining and exiting 75 for a restart");
            self.stop.stop(StopReason::MemoryLimit);
        }
    }
}

/// Settles every task still running as `SHUTDOWN`, retryable: the drain's
/// grace is over. Their handlers are cancelled; late results are discarded.
pub fn cancel_for_shutdown(inflight: &InFlight, outcomes: &Outbox, worker_id: &str) {
    let err = TaskError::retryable(
        "worker shut down before the task finished",
        error_type::SHUTDOWN,
    );
    for running in inflight.unsettled() {
        if fail_in_place(
            inflight,
            &running,
            CancelReason::Shutdown,
            &err,
            outcomes,
            worker_id,
        ) {
            let task = &running.task;
            log::warn!(
                "task {} ({}): still running at the end of the drain; reported SHUTDOWN",
                task.id,
                task.task_type
            );
        }
    }
}

/// Cancels `running` and, unless its processor settled it first, reports it
/// failed with `err` in the processor's place; true when it did.
fn fail_in_place(
    inflight: &InFlight,
    running: &Running,
    reason: CancelReason,
    err: &TaskError,
    outcomes: &Outbox,
    worker_id: &str,
) -> bool {
    running.ctx.cancel.cancel(reason);
    let duration = running.started.elapsed();
    let task = &running.task;
    let outcome = Outcome::failed(&task.id, &task.task_type, err, worker_id, 1, duration);
    outcomes.settle(inflight, running, outcome, duration)
}
