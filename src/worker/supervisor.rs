//! The supervisor thread: enforces deadlines (the task is reported `TIMEOUT`
//! on time even if its handler ignores the cancel), replaces processor
//! threads stuck in such handlers, and checks `MEMORY_LIMIT`.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{after, select, Receiver};

use crate::bounded::instant_after;
use crate::context::CancelReason;
use crate::error::{error_type, Error, TaskError};
use crate::worker::inflight::InFlightTask;
use crate::worker::liveness::Role;
use crate::worker::metrics::rss_bytes;
use crate::worker::outcome::Outcome;
use crate::worker::processor::Processors;
use crate::worker::shutdown::StopReason;
use crate::worker::{fault, spawn_role, WorkerState};

/// How long a handler may run past a cancel before its thread is replaced.
pub const STUCK_GRACE: Duration = Duration::from_secs(2);
/// The longest the supervisor sleeps between checks while tasks run, and
/// the shortest between watchdog pings.
pub const TICK: Duration = Duration::from_millis(500);
/// The longest the supervisor sleeps while nothing runs: it ticks well
/// within [`TICK_LIMIT`](crate::worker::liveness::TICK_LIMIT), so that
/// `/health` sees it live, and an idle worker stays asleep otherwise.
pub const IDLE_TICK: Duration = Duration::from_secs(5);
/// How often RSS is read against `MEMORY_LIMIT` while nothing runs (a
/// failed report held in memory still grows it).
const MEMORY_CHECK: Duration = Duration::from_secs(1);

/// The supervisor: the shared state, plus what only it holds.
pub(crate) struct Supervisor {
    shared: Arc<WorkerState>,
    /// The processors, to start replacements.
    processors: Arc<Processors>,
    /// Disconnects when the worker is done (after the drain, not at its start).
    done: Receiver<()>,
    /// Called on every tick, so a watchdog can see that this thread lives;
    /// returns when it wants the next tick.
    on_tick: Box<dyn FnMut() -> Instant + Send>,
}

impl Supervisor {
    /// Starts the supervisor thread (`taskworker-supervisor`), which serves
    /// until `done` disconnects and calls `on_tick` on every tick, and again
    /// no later than the instant it returns.
    pub(crate) fn spawn(
        shared: &Arc<WorkerState>,
        processors: Arc<Processors>,
        done: Receiver<()>,
        on_tick: impl FnMut() -> Instant + Send + 'static,
    ) -> Result<JoinHandle<()>, Error> {
        let supervisor = Supervisor {
            shared: shared.clone(),
            processors,
            done,
            on_tick: Box::new(on_tick),
        };
        spawn_role(
            shared,
            Role::Supervisor,
            "taskworker-supervisor",
            move || supervisor.run(),
        )
    }

    /// The supervisor loop; returns when `done` disconnects.
    fn run(mut self) {
        let mut memory_warned = false;
        // When each settled entry whose thread is still busy was first seen so.
        let mut settled_since: HashMap<u64, Instant> = HashMap::new();
        loop {
            let now = Instant::now();
            let idle = self.shared.stats.inflight.load(Relaxed) == 0;
            let mut wake = instant_after(now, if idle { IDLE_TICK } else { TICK });
            if self.shared.live.get().config.memory_limit.is_some() {
                wake = wake.min(instant_after(now, MEMORY_CHECK));
            }
            // Planned before the snapshot: a task that starts after it and
            // is due before this wake-up sends a wake. While idle, any task
            // that starts does, so that the supervisor watches it from its start.
            let planned = if idle {
                instant_after(now, crate::bounded::FOREVER)
            } else {
                wake
            };
            self.shared.inflight.plan_wake(planned);
            let snapshot = self.shared.inflight.snapshot();
            if !snapshot.is_empty() {
                fault::panic_if_asked("supervisor");
            }

            settled_since.retain(|id, _| snapshot.iter().any(|r| r.id == *id));
            for entry in &snapshot {
                if !entry.is_settled() {
                    if now >= entry.ctx.deadline {
                        self.time_out(entry);
                        settled_since.insert(entry.id, now);
                    } else {
                        wake = wake.min(entry.ctx.deadline);
                    }
                } else if !entry.is_abandoned() {
                    let since = *settled_since.entry(entry.id).or_insert(now);
                    if now >= since + STUCK_GRACE {
                        self.replace(entry);
                    } else {
                        wake = wake.min(since + STUCK_GRACE);
                    }
                }
            }
            self.check_memory(&mut memory_warned);
            wake = wake.min((self.on_tick)());
            let wait = wake
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            select! {
                recv(self.done) -> _ => return,
                recv(self.shared.inflight.started()) -> _ => {}
                recv(after(wait)) -> _ => {}
            }
        }
    }

    fn time_out(&self, entry: &InFlightTask) {
        let limit = entry.ctx.deadline.saturating_duration_since(entry.started);
        let err = TaskError::retryable(
            format!("task ran past its {} ms deadline", limit.as_millis()),
            error_type::TIMEOUT,
        );
        let task = &entry.task;
        if fail_in_place(&self.shared, entry, CancelReason::Timeout, &err) {
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
    fn replace(&self, entry: &InFlightTask) {
        if !entry.abandon() {
            return;
        }
        self.shared.stats.stuck_threads.fetch_add(1, Relaxed);
        log::error!(
            "task {} ({}): handler ignores its cancel; processor {} is abandoned and replaced",
            entry.task.id,
            entry.task.task_type,
            entry.processor
        );
        if let Err(e) = self.processors.spawn() {
            log::error!("cannot replace a stuck processor: {e}");
        }
    }

    fn check_memory(&self, warned: &mut bool) {
        let limit = self.shared.live.get().config.memory_limit;
        let (Some(limit), Some(rss)) = (limit, limit.and_then(|_| rss_bytes())) else {
            return;
        };
        if rss > limit && !*warned {
            *warned = true;
            log::warn!("memory: RSS {rss} bytes is over MEMORY_LIMIT {limit}; draining and exiting 75 for a restart");
            self.shared.shutdown.handle().stop(StopReason::MemoryLimit);
        }
    }
}

/// Settles every task still running as `SHUTDOWN`, retryable: the drain's
/// grace is over. Their handlers are cancelled; late results are discarded.
pub(crate) fn cancel_for_shutdown(shared: &WorkerState) {
    let err = TaskError::retryable(
        "worker shut down before the task finished",
        error_type::SHUTDOWN,
    );
    for entry in shared.inflight.unsettled() {
        if fail_in_place(shared, &entry, CancelReason::Shutdown, &err) {
            let task = &entry.task;
            log::warn!(
                "task {} ({}): still running at the end of the drain; reported SHUTDOWN",
                task.id,
                task.task_type
            );
        }
    }
}

/// Reports every claimed task still waiting for its type failed
/// `SHUTDOWN`, retryable, at the start of the drain: none of them has
/// started, and the server can hand them to another worker at once.
pub(crate) fn give_back_waiting(shared: &WorkerState) {
    let err = TaskError::retryable(
        "worker shut down before the task could start (its type was at its limit)",
        error_type::SHUTDOWN,
    );
    for waiting in shared.limiter.take_waiting() {
        let task = &waiting.task;
        let outcome = Outcome::failed(
            &task.id,
            &task.task_type,
            &err,
            &shared.worker_id,
            0,
            Duration::ZERO,
        );
        shared.outbox.finish(outcome, Duration::ZERO);
        log::info!(
            "task {} ({}): waited for its type at the drain; reported SHUTDOWN",
            task.id,
            task.task_type
        );
    }
}

/// Cancels `entry` and, unless its processor settled it first, reports it
/// failed with `err` in the processor's place; true when it did.
fn fail_in_place(
    shared: &WorkerState,
    entry: &InFlightTask,
    reason: CancelReason,
    err: &TaskError,
) -> bool {
    entry.ctx.cancel.cancel(reason);
    let duration = entry.started.elapsed();
    let task = &entry.task;
    let outcome = Outcome::failed(
        &task.id,
        &task.task_type,
        err,
        &shared.worker_id,
        1,
        duration,
    );
    shared
        .outbox
        .settle(&shared.inflight, entry, outcome, duration)
}
