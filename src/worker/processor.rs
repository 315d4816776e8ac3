//! The processor threads: each takes a task from the channel, runs its
//! handler with panics isolated and retryable errors retried locally within
//! the deadline, hands the outcome to the reporter, and says it is idle again.
//! A panic outside the handler ends the thread; the task it held is reported
//! `WORKER_ERROR` (retryable) and a replacement takes its place.
//! A reload resizes the pool: it grows at once, and shrinks as processors
//! become idle (one told to retire exits instead of taking a task), never
//! by stopping a running task. Each task runs under the settings (handler,
//! timeout, retries) in effect when it started.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{select, unbounded, Receiver, Sender};
use serde_json::Value;

use crate::backoff::RetryPolicy;
use crate::context::Context;
use crate::error::{error_type, Error, TaskError};
use crate::handlers::Handler;
use crate::task::Task;
use crate::worker::inflight::InFlightTask;
use crate::worker::liveness::Role;
use crate::worker::outcome::Outcome;
use crate::worker::{fault, spawn_role, WorkerState};

/// The processor threads: the shared state, plus the channels only they hold.
/// The supervisor keeps it too, to start a replacement for a stuck thread.
pub(crate) struct Processors {
    shared: Arc<WorkerState>,
    /// Tasks from the poller.
    tasks: Receiver<Task>,
    /// One message per processor that became idle, to the poller.
    idle: Sender<()>,
    /// The number of the next thread, so that a replacement has a name of its own.
    next_index: AtomicUsize,
    /// One message per idle processor that is to exit, the pool being
    /// larger than `CONCURRENT_TASKS`; the sender is kept here too, so that
    /// the channel never disconnects.
    retire: (Sender<()>, Receiver<()>),
    /// Held while the pool's size (`stats.processors`) is changed, so that
    /// a reload growing it and the poller shrinking it see one target.
    resizing: Mutex<()>,
}

/// What a processor thread holds, kept where its panic can find it: the
/// panic hook names the task, and the dying thread settles it.
enum Holding {
    /// Waiting for a task.
    Nothing,
    /// A task taken from the channel, not yet in the in-flight table (it
    /// still counts as reserved there).
    Received {
        /// The task's id.
        id: String,
        /// The task's type.
        task_type: String,
    },
    /// A task in the in-flight table.
    Running(Arc<InFlightTask>),
}

thread_local! {
    static HOLDING: RefCell<Holding> = const { RefCell::new(Holding::Nothing) };
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
}

/// Records what this thread holds, returning what it held before.
fn hold(holding: Holding) -> Holding {
    HOLDING.with(|h| h.replace(holding))
}

/// Where a panic on this thread happened, for the panic hook.
pub(crate) enum PanicSite {
    /// In a handler: caught, reported `PANIC` and logged by its processor.
    Handler,
    /// Anywhere else; on a processor thread that holds a task, its id.
    Worker(Option<String>),
}

/// Where a panic on the current thread happens.
pub(crate) fn panic_site() -> PanicSite {
    if IN_HANDLER.with(Cell::get) {
        return PanicSite::Handler;
    }
    let task = HOLDING.with(|h| match &*h.try_borrow().ok()? {
        Holding::Nothing => None,
        Holding::Received { id, .. } => Some(id.clone()),
        Holding::Running(entry) => Some(entry.task.id.clone()),
    });
    PanicSite::Worker(task)
}

impl Processors {
    /// The processors of `shared`, taking tasks from `tasks` and saying on
    /// `idle` when they are ready for one; none runs before [`Processors::spawn`].
    pub(crate) fn new(
        shared: &Arc<WorkerState>,
        tasks: Receiver<Task>,
        idle: Sender<()>,
    ) -> Arc<Processors> {
        Arc::new(Processors {
            shared: shared.clone(),
            tasks,
            idle,
            next_index: AtomicUsize::new(0),
            retire: unbounded(),
            resizing: Mutex::new(()),
        })
    }

    /// Starts processors until the pool has `CONCURRENT_TASKS` of them (a
    /// reload that raised it); each says it is idle as it starts.
    pub(crate) fn grow(self: &Arc<Self>) -> Result<(), Error> {
        let _resizing = self.resizing.lock().unwrap_or_else(|e| e.into_inner());
        let target = self.shared.live.get().config.concurrent_tasks;
        let size = &self.shared.stats.processors;
        while size.load(Relaxed) < target {
            self.spawn()?;
            size.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// While the pool is larger than `CONCURRENT_TASKS` (a reload lowered
    /// it) and some of the `idle` processors the poller counts are idle,
    /// tells one of them to exit, and counts it neither idle nor in the pool.
    pub(crate) fn retire_surplus(&self, idle: &mut usize) {
        let _resizing = self.resizing.lock().unwrap_or_else(|e| e.into_inner());
        let target = self.shared.live.get().config.concurrent_tasks;
        let size = &self.shared.stats.processors;
        while *idle > 0 && size.load(Relaxed) > target {
            // An idle processor waits on both channels: it takes this
            // message or a task, and any task sent has an idle one besides.
            let _ = self.retire.0.send(());
            size.fetch_sub(1, Relaxed);
            *idle -= 1;
        }
    }

    /// Starts a processor thread (`taskworker-proc-N`, numbered in order).
    pub(crate) fn spawn(self: &Arc<Self>) -> Result<JoinHandle<()>, Error> {
        let index = self.next_index.fetch_add(1, Relaxed);
        let processors = self.clone();
        let name = format!("taskworker-proc-{index}");
        spawn_role(&self.shared, Role::Processor, &name, move || {
            processors.serve(index)
        })
    }

    /// Runs the thread; when it panics outside a handler, settles what it
    /// held and starts a replacement.
    fn serve(self: Arc<Self>, index: usize) {
        let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.run(index))) else {
            return;
        };
        self.shared.liveness.died(Role::Processor);
        let why = format!(
            "processor {index} panicked: {}",
            panic_message(payload.as_ref())
        );
        if !self.settle_held(hold(Holding::Nothing), &why) {
            return;
        }
        match self.spawn() {
            Ok(_) => log::error!("{why}; a new processor takes its place"),
            Err(e) => log::error!("{why}; cannot start a new processor: {e}"),
        }
    }

    /// Reports the task a dead thread held failed `WORKER_ERROR`, retryable,
    /// through the one path for an outcome; returns whether the thread
    /// still needs a replacement (false when the supervisor gave up on it
    /// and replaced it already).
    fn settle_held(&self, held: Holding, why: &str) -> bool {
        let shared = &*self.shared;
        let err = TaskError::retryable(
            format!("the worker failed while it held the task: {why}"),
            error_type::WORKER_ERROR,
        );
        let failed = |id: &str, task_type: &str, duration| {
            Outcome::failed(id, task_type, &err, &shared.worker_id, 1, duration)
        };
        let reported = |id: &str, task_type: &str| {
            log::error!(
                "task {id} ({task_type}): reported {}, retryable: {why}",
                error_type::WORKER_ERROR
            );
        };
        match held {
            Holding::Nothing => true,
            Holding::Received { id, task_type } => {
                let outcome = failed(&id, &task_type, Duration::ZERO);
                shared.outbox.finish(outcome, Duration::ZERO);
                reported(&id, &task_type);
                // After the hand-off, so that a drain never finds every
                // task settled while this outcome is still on its way.
                shared.inflight.unreserve(&id);
                shared.limiter.free(&task_type);
                true
            }
            Holding::Running(entry) => {
                let (task, duration) = (&entry.task, entry.started.elapsed());
                let outcome = failed(&task.id, &task.task_type, duration);
                if shared
                    .outbox
                    .settle(&shared.inflight, &entry, outcome, duration)
                {
                    reported(&task.id, &task.task_type);
                }
                shared.inflight.finish(entry.id);
                shared.stats.inflight.fetch_sub(1, Relaxed);
                shared.limiter.free(&task.task_type);
                // The supervisor may have given up on this thread already
                // and started its replacement.
                let replaced = !entry.abandon();
                if replaced {
                    shared.stats.stuck_threads.fetch_sub(1, Relaxed);
                }
                !replaced
            }
        }
    }

    fn run(&self, index: usize) {
        let stats = &self.shared.stats;
        let _ = self.idle.send(());
        loop {
            // Ends when the poller drops the task sender and the channel is
            // empty, or when this processor is told to retire.
            let task = select! {
                recv(self.tasks) -> task => match task {
                    Ok(task) => task,
                    Err(_) => return,
                },
                recv(self.retire.1) -> _ => {
                    log::debug!("processor {index}: retired, CONCURRENT_TASKS went down");
                    return;
                }
            };
            hold(Holding::Received {
                id: task.id.clone(),
                task_type: task.task_type.clone(),
            });
            if self.process(index, task) {
                // A replacement thread took this one's place while its handler hung.
                stats.stuck_threads.fetch_sub(1, Relaxed);
                return;
            }
            let _ = self.idle.send(());
        }
    }

    /// Runs one task to its outcome; returns whether this thread was abandoned meanwhile.
    fn process(&self, index: usize, task: Task) -> bool {
        let shared = &*self.shared;
        fault::panic_if_asked("processor-outside-handler");
        // This task's settings to its end, whatever a reload changes meanwhile.
        let settings = shared.live.get();
        let timeout = task
            .timeout_seconds
            .and_then(|s| crate::bounded::seconds_within(s, crate::bounded::MAX_TASK_TIMEOUT))
            .unwrap_or(settings.config.timeout);
        let ctx = Context::new(timeout, task.attempt.unwrap_or(1), shared.worker_id.clone());
        let lease = lease_length(&task);
        let entry = shared.inflight.start(task, ctx, index, lease);
        shared.stats.inflight.fetch_add(1, Relaxed);
        hold(Holding::Running(entry.clone()));
        let (task, ctx) = (&entry.task, &entry.ctx);
        let _log_fields = crate::logging::task_fields(&task.id, &task.task_type);
        log::debug!(
            "task {} ({}): started, attempt {}",
            task.id,
            task.task_type,
            ctx.attempt
        );
        let started = Instant::now();
        let expired = task.expires_at.is_some() && task.is_expired(SystemTime::now());
        let (result, tries) = match settings.registry.get(&task.task_type) {
            // It waited past its `expires_at` (for a slot of its type, or
            // on the wire): reported without running.
            _ if expired => {
                let msg = format!(
                    "expired at {} before it could start; not run",
                    task.expires_at.as_deref().unwrap_or("?")
                );
                (Err(TaskError::permanent(msg, error_type::EXPIRED)), 0)
            }
            Some(handler) => {
                let policy = settings
                    .registry
                    .retry_options(&task.task_type)
                    .policy(&settings.config);
                run_with_retries(handler.as_ref(), task, ctx, policy)
            }
            // Claimed as a reload took its handler away: another worker may
            // still handle it.
            None if settings.removed.contains(&task.task_type) => {
                let msg = format!(
                    "no handler for task type {:?}: a reload removed it",
                    task.task_type
                );
                (Err(TaskError::retryable(msg, error_type::UNKNOWN_TYPE)), 1)
            }
            None => {
                let msg = format!("no handler for task type {:?}", task.task_type);
                (Err(TaskError::permanent(msg, error_type::UNKNOWN_TYPE)), 1)
            }
        };
        let duration = started.elapsed();
        shared
            .stats
            .task_retries
            .fetch_add(u64::from(tries.saturating_sub(1)), Relaxed);
        fault::panic_if_asked("processor-after-handler");

        let (outcome, failure) = match result {
            Ok(value) => (
                Outcome::completed(
                    &task.id,
                    &task.task_type,
                    value,
                    &shared.worker_id,
                    duration,
                ),
                None,
            ),
            Err(err) => (
                Outcome::failed(
                    &task.id,
                    &task.task_type,
                    &err,
                    &shared.worker_id,
                    tries,
                    duration,
                ),
                Some(err),
            ),
        };
        if shared
            .outbox
            .settle(&shared.inflight, &entry, outcome, duration)
        {
            // One line per finished task: routine completions at info, so
            // that LOG_LEVEL=warn keeps only what needs a look.
            let ms = duration.as_millis();
            match failure {
                None => log::info!(
                    "task {} ({}): finished in {ms} ms: completed",
                    task.id,
                    task.task_type
                ),
                Some(err) if expired => log::warn!(
                    "task {} ({}): {}; reported failed {}, not retryable",
                    task.id,
                    task.task_type,
                    err.message,
                    error_type::EXPIRED
                ),
                Some(err) => log::warn!(
                    "task {} ({}): finished in {ms} ms: failed after {tries} tries: {err}",
                    task.id,
                    task.task_type
                ),
            }
        } else {
            log::info!(
                "task {} ({}): late result discarded; it was already reported or taken back",
                task.id,
                task.task_type
            );
        }
        hold(Holding::Nothing);
        shared.inflight.finish(entry.id);
        shared.stats.inflight.fetch_sub(1, Relaxed);
        // Only now that the handler has returned: a timed-out handler
        // that runs on still counts against its type's concurrency.
        shared.limiter.free(&task.task_type);
        entry.is_abandoned()
    }
}

/// Runs the handler, retrying retryable errors up to `policy.max_retries`
/// times while the deadline allows; returns the last result and the number
/// of tries. Each try sees its number in `ctx.local_try`. The wait before a
/// retry is the handler's `retry_after` when it gives one, else the policy's
/// backoff; a wait that does not fit the deadline, or a `retry_after` above
/// the policy's cap, leaves the retry to the server.
pub(crate) fn run_with_retries(
    handler: &dyn Handler,
    task: &Task,
    ctx: &Context,
    policy: RetryPolicy,
) -> (Result<Value, TaskError>, u32) {
    let mut tries = 1;
    let mut retry_ctx;
    let mut try_ctx = ctx;
    loop {
        IN_HANDLER.with(|h| h.set(true));
        let result = catch_unwind(AssertUnwindSafe(|| handler.handle(task, try_ctx)));
        IN_HANDLER.with(|h| h.set(false));
        let result = result.unwrap_or_else(|payload| {
            let msg = panic_message(payload.as_ref());
            log::error!(
                "task {} ({}): handler panicked: {msg}",
                task.id,
                task.task_type
            );
            Err(
                TaskError::permanent(format!("handler panicked: {msg}"), error_type::PANIC)
                    .with_traceback(msg),
            )
        });
        let err = match result {
            Err(err) if err.retryable && tries <= policy.max_retries && !ctx.is_cancelled() => err,
            other => return (other, tries),
        };
        let delay = match err.retry_after {
            Some(wait) if wait > policy.cap => return (Err(err), tries),
            Some(wait) => wait,
            None => policy.delay(tries + 1),
        };
        if delay >= ctx.remaining() {
            return (Err(err), tries);
        }
        log::info!(
            "task {} ({}): try {tries} failed: {err}; retrying in {} ms",
            task.id,
            task.task_type,
            delay.as_millis()
        );
        if ctx.sleep(delay).is_err() {
            return (Err(err), tries);
        }
        tries += 1;
        retry_ctx = Context {
            local_try: tries,
            ..ctx.clone()
        };
        try_ctx = &retry_ctx;
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".into())
}

/// The lease length the server gave, measured on the server's own clock
/// when it says when it claimed the task.
pub fn lease_length(task: &Task) -> Option<Duration> {
    let expires = crate::timestamp::parse(task.lease_expires_at.as_deref()?)?;
    let from = task
        .claimed_at
        .as_deref()
        .and_then(crate::timestamp::parse)
        .unwrap_or_else(SystemTime::now);
    let lease = expires.duration_since(from).unwrap_or(Duration::ZERO);
    Some(lease.max(Duration::from_secs(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::AtomicU32;

    fn ctx(secs: u64) -> Context {
        Context::new(Duration::from_secs(secs), 1, "w".into())
    }

    /// Up to `max_retries` local retries, quickly.
    fn quick(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(10),
        }
    }

    #[test]
    fn retries_retryable_errors_then_succeeds() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let flaky = move |_: &Task, _: &Context| {
            if c.fetch_add(1, Relaxed) < 2 {
                Err(TaskError::retryable("busy", "RATE_LIMIT"))
            } else {
                Ok(json!("ok"))
            }
        };
        let (result, tries) =
            run_with_retries(&flaky, &Task::new("t", "x", json!({})), &ctx(30), quick(3));
        assert_eq!(result, Ok(json!("ok")));
        assert_eq!(tries, 3);
    }

    #[test]
    fn permanent_errors_and_panics_are_not_retried() {
        let perm = |_: &Task, _: &Context| -> Result<Value, TaskError> {
            Err(TaskError::permanent("bad", "VALIDATION"))
        };
        let (result, tries) =
            run_with_retries(&perm, &Task::new("t", "x", json!({})), &ctx(30), quick(3));
        assert_eq!(tries, 1);
        assert_eq!(result.unwrap_err().error_type, "VALIDATION");
        let boom = |_: &Task, _: &Context| -> Result<Value, TaskError> { panic!("kaboom") };
        let (result, tries) =
            run_with_retries(&boom, &Task::new("t", "x", json!({})), &ctx(30), quick(3));
        let err = result.unwrap_err();
        assert_eq!((err.error_type.as_str(), tries), ("PANIC", 1));
        assert!(err.message.contains("kaboom"));
    }

    #[test]
    fn retries_stop_at_the_limit_and_the_deadline() {
        let always = |_: &Task, _: &Context| -> Result<Value, TaskError> {
            Err(TaskError::retryable("no", "HANDLER"))
        };
        let (_, tries) =
            run_with_retries(&always, &Task::new("t", "x", json!({})), &ctx(30), quick(2));
        assert_eq!(tries, 3);
        let short = Context::new(Duration::from_millis(5), 1, "w".into());
        let (_, tries) =
            run_with_retries(&always, &Task::new("t", "x", json!({})), &short, quick(50));
        assert!(tries < 50);
    }

    #[test]
    fn each_try_knows_its_number_and_the_delivery_attempt_stays() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let flaky = move |_: &Task, ctx: &Context| -> Result<Value, TaskError> {
            s.lock().unwrap().push((ctx.attempt, ctx.local_try));
            Err(TaskError::retryable("busy", "HANDLER"))
        };
        let ctx = Context::new(Duration::from_secs(30), 4, "w".into());
        let (_, tries) = run_with_retries(&flaky, &Task::new("t", "x", json!({})), &ctx, quick(2));
        assert_eq!(tries, 3);
        assert_eq!(*seen.lock().unwrap(), [(4, 1), (4, 2), (4, 3)]);
    }

    #[test]
    fn a_handlers_retry_after_sets_the_wait_within_the_cap() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let later = move |_: &Task, _: &Context| -> Result<Value, TaskError> {
            c.fetch_add(1, Relaxed);
            Err(TaskError::retryable("busy", "RATE_LIMIT")
                .with_retry_after(Duration::from_millis(300)))
        };
        let task = Task::new("t", "x", json!({}));
        let began = Instant::now();
        let (_, tries) = run_with_retries(
            &later,
            &task,
            &ctx(30),
            RetryPolicy {
                cap: Duration::from_secs(1),
                ..quick(1)
            },
        );
        assert_eq!(tries, 2);
        assert!(
            began.elapsed() >= Duration::from_millis(300),
            "{:?}",
            began.elapsed()
        );
        // Above the cap, or past the deadline: the server retries, not we.
        let (_, tries) = run_with_retries(&later, &task, &ctx(30), quick(3));
        assert_eq!(tries, 1);
        let short = Context::new(Duration::from_millis(100), 1, "w".into());
        let (_, tries) = run_with_retries(
            &later,
            &task,
            &short,
            RetryPolicy {
                cap: Duration::from_secs(1),
                ..quick(3)
            },
        );
        assert_eq!(tries, 1);
    }

    #[test]
    fn lease_length_uses_the_server_clock() {
        let mut t = Task::new("t", "x", json!({}));
        assert_eq!(lease_length(&t), None);
        t.claimed_at = Some("2025-11-09T15:00:05Z".into());
        t.lease_expires_at = Some("2025-11-09T15:01:05Z".into());
        assert_eq!(lease_length(&t), Some(Duration::from_secs(60)));
    }
}
