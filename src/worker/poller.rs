//! The poller thread: claims as many tasks as there are idle processors
//! (batch, long poll, `types`, `claim_id`), hands them to the processors,
//! and backs off on errors. Every wait ends at once on shutdown. Each claim
//! reads the settings in effect (types, long poll, polling interval), so a
//! reload changes the next claim; the poller also retires the processors a
//! lowered `CONCURRENT_TASKS` leaves surplus, as they become idle.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{after, at, bounded, never, select, Receiver, RecvTimeoutError, Sender};

use crate::backoff::Backoff;
use crate::bounded::instant_after;
use crate::client::{ApiClient, ApiError, Claimed};
use crate::error::{error_type, Error, TaskError};
use crate::task::{out_of_bounds, ClaimRequest, MalformedTask, Task};
use crate::worker::limits::Limits;
use crate::worker::liveness::Role;
use crate::worker::outbox::reports_backed_up;
use crate::worker::outcome::Outcome;
use crate::worker::processor::{lease_length, Processors};
use crate::worker::{fault, spawn_role, WorkerState};

/// How often a paused poller looks at the report backlog again (a change
/// of quiet mode wakes it at once).
const PAUSE_RECHECK: Duration = Duration::from_millis(100);

/// How long a long poll may last while a type is left out of the claim for
/// want of a free slot: the slot may free at any moment, and the next claim
/// should ask for the type soon after.
const REOPEN_POLL: Duration = Duration::from_secs(1);

/// The longest the poller waits for the processors running the last
/// claim's tasks before it claims again (see [`Gather`]).
const GATHER_LIMIT: Duration = Duration::from_millis(20);

/// The processors still running the last claim's tasks, and until when the
/// poller waits for them so that one claim asks for them all: with quick
/// tasks and a backlog, processors free one by one, and claiming for each as
/// it frees sends a claim for one or two tasks where one for all would do.
/// The wait lasts no longer than the claim's own round trip (the extra claim
/// it saves would take as long), nor [`GATHER_LIMIT`], however long the
/// tasks run; it ends as soon as they have all freed. A claim that brought
/// fewer tasks than it asked for found no backlog: the next claim would
/// wait for tasks anyway, so nothing is gathered for it.
#[derive(Debug, Default)]
struct Gather {
    /// Tasks of the last claim whose processors have not freed yet.
    outstanding: usize,
    until: Option<Instant>,
}

impl Gather {
    /// A claim for `asked` tasks that took `took` brought `brought`, of
    /// which `handed` were handed on at `now`.
    fn claimed(&mut self, asked: u32, brought: usize, handed: usize, took: Duration, now: Instant) {
        let backlog = u32::try_from(brought).is_ok_and(|brought| brought >= asked);
        self.outstanding = if backlog { handed } else { 0 };
        self.until = Some(instant_after(now, took.min(GATHER_LIMIT)));
    }

    /// A processor freed.
    fn freed(&mut self) {
        self.outstanding = self.outstanding.saturating_sub(1);
    }

    /// Until when to wait before claiming, while some are still running.
    fn until(&self) -> Option<Instant> {
        self.until.filter(|_| self.outstanding > 0)
    }
}

/// What the poller knows when it decides.
#[derive(Debug, Clone, Copy)]
struct Situation<'a> {
    stopping: bool,
    quiet: bool,
    reports_backed_up: bool,
    /// Idle processors.
    idle: usize,
    /// Claimed tasks waiting locally for their type.
    waiting: usize,
    /// When the next claim is due (after an empty answer or an error).
    claim_due: Instant,
    /// The types of the last claim, when it answered "nothing": a claim
    /// for a type it left out is due at once, its polling interval is not.
    last_empty: Option<&'a [String]>,
    /// Until when to wait for the processors still running the last
    /// claim's tasks ([`Gather`]).
    gather_until: Option<Instant>,
    now: Instant,
}

/// What the poller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// A stop is asked: return.
    Stop,
    /// Quiet, or reports back up: claim nothing, look again soon.
    Pause,
    /// Claim nothing now: wait for an idle processor, a freed slot, or
    /// until this instant.
    Wait(Option<Instant>),
    /// Claim.
    Claim(Plan),
}

/// A claim: which types, how many tasks, and the longest long poll.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    types: Vec<String>,
    max_tasks: u32,
    /// The long poll's limit: none while the claim asks for every type.
    long_poll: Option<Duration>,
}

/// Decides the poller's next step. A stop wins over everything; a quiet
/// worker, or one whose reports back up, claims nothing. Otherwise it claims
/// for the idle processors that no waiting task will take, and only types
/// with headroom (free slots and tokens); never more tasks than the type
/// with the least headroom has, since any of them may be of that type, so
/// that no claimed task waits while its lease runs. Shortly after a claim,
/// it waits for the processors still running that claim's tasks, so that
/// the next claim asks for them too.
fn next_step(s: &Situation, limits: &Limits, handled: &[String]) -> Step {
    if s.stopping {
        return Step::Stop;
    }
    if s.quiet || s.reports_backed_up {
        return Step::Pause;
    }
    let capacity = s.idle.saturating_sub(s.waiting);
    if capacity == 0 {
        return Step::Wait(None);
    }
    let open: Vec<(&String, u32)> = handled
        .iter()
        .map(|t| (t, limits.headroom(t, s.now)))
        .filter(|(_, room)| *room > 0)
        .collect();
    // A type out of the claim for want of tokens comes back at a known time.
    let reopens = handled
        .iter()
        .filter_map(|t| limits.reopens_at(t, s.now))
        .min();
    if open.is_empty() {
        return Step::Wait(reopens);
    }
    let types: Vec<String> = open.iter().map(|(t, _)| (*t).clone()).collect();
    let newly_open = s
        .last_empty
        .is_some_and(|last| types.iter().any(|t| !last.contains(t)));
    if s.now < s.claim_due && !newly_open {
        let until = match s.last_empty {
            Some(_) => reopens.map_or(s.claim_due, |r| r.min(s.claim_due)),
            None => s.claim_due,
        };
        return Step::Wait(Some(until));
    }
    if let Some(until) = s.gather_until.filter(|until| s.now < *until) {
        return Step::Wait(Some(until));
    }
    let least_room = open.iter().map(|(_, room)| *room).min().unwrap_or(0);
    let max_tasks = u32::try_from(capacity).unwrap_or(u32::MAX).min(least_room);
    let long_poll = if s.waiting > 0 {
        // A waiting task starts when its type has headroom, not after a long poll.
        Some(Duration::ZERO)
    } else if types.len() == handled.len() {
        None
    } else {
        let full = handled
            .iter()
            .any(|t| limits.headroom(t, s.now) == 0 && limits.reopens_at(t, s.now).is_none());
        let by_tokens = reopens.map(|r| r.saturating_duration_since(s.now));
        Some(match by_tokens {
            Some(d) if !full => d.max(REOPEN_POLL),
            _ => REOPEN_POLL,
        })
    };
    Step::Claim(Plan {
        types,
        max_tasks,
        long_poll,
    })
}

/// The long poll asked of the server: `wait_seconds`, shortened to the
/// plan's limit (whole seconds, rounded up).
fn long_poll_seconds(wait_seconds: u64, limit: Option<Duration>) -> u64 {
    match limit {
        None => wait_seconds,
        Some(d) => {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            wait_seconds.min(secs)
        }
    }
}

/// The claim for up to `max_tasks` tasks of `types`, long polling for
/// `wait_seconds` when that is not 0.
fn claim_request(
    worker_id: &str,
    types: &[String],
    max_tasks: u32,
    wait_seconds: u64,
    claim_id: String,
) -> ClaimRequest {
    ClaimRequest {
        worker_id: worker_id.to_string(),
        types: Some(types.to_vec()),
        max_tasks: Some(max_tasks),
        wait_seconds: (wait_seconds > 0).then_some(wait_seconds as f64),
        claim_id: Some(claim_id),
    }
}

/// What a claim's answer means for the next claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NextClaim {
    /// How long to wait first.
    wait: Duration,
    /// Whether a change of quiet mode ends the wait early (not after an
    /// error: then the backoff holds).
    wake_on_change: bool,
    /// Whether to ask again with the same claim id: the answer may have been
    /// lost on the wire, and the same id gets the same tasks back.
    same_claim_id: bool,
}

/// Decides when to claim again after an `answer` that `took` this long.
/// Tasks: at once, past errors forgotten. Nothing: after the rest of the
/// polling interval (a long poll has already waited). An error: after the
/// backoff (its longest for refused credentials), and never before the
/// server's `Retry-After`.
fn after_claim(
    answer: &Result<Claimed, ApiError>,
    took: Duration,
    polling_interval: Duration,
    backoff: &mut Backoff,
) -> NextClaim {
    let wait = match answer {
        Ok(Claimed::Tasks(_)) => Duration::ZERO,
        Ok(Claimed::Nothing) => polling_interval.saturating_sub(took),
        Err(err) => {
            let delay = if err.is_auth() {
                backoff.max_delay()
            } else {
                backoff.next_delay()
            };
            return NextClaim {
                wait: delay.max(err.retry_after().unwrap_or_default()),
                wake_on_change: false,
                same_claim_id: matches!(err, ApiError::Transport(_)),
            };
        }
    };
    backoff.reset();
    NextClaim {
        wait,
        wake_on_change: true,
        same_claim_id: false,
    }
}

/// The claim in flight, so that shutdown can cancel a long poll from another
/// thread, and the poller learn whether that cancel gave the claim's tasks
/// back to the server.
#[derive(Debug, Default)]
struct ClaimInFlight {
    slot: Mutex<ClaimSlot>,
    /// Signalled when a cancel's answer comes.
    cancelled: Condvar,
}

#[derive(Debug, Default)]
struct ClaimSlot {
    /// The claim id of the request on the wire, if any.
    id: Option<String>,
    cancel: CancelState,
}

/// Where a cancel of the claim on the wire stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum CancelState {
    #[default]
    None,
    Sending,
    /// The server answered 2xx: it put back whatever the claim handed out.
    Released,
    /// A core server's 404, or no answer: what the claim brings is ours.
    NotReleased,
}

/// How long the poller waits for a cancel under way to be answered: the
/// cancel's own timeout, and a margin.
const CANCEL_ANSWER_WAIT: Duration = Duration::from_secs(5);

impl ClaimInFlight {
    fn lock(&self) -> MutexGuard<'_, ClaimSlot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A claim goes on the wire with `id`.
    fn begin(&self, id: String) {
        *self.lock() = ClaimSlot {
            id: Some(id),
            cancel: CancelState::None,
        };
    }

    /// The claim came back: true when a cancel gave its tasks back to the
    /// server, so that running them here could run them twice. Waits for a
    /// cancel under way to be answered (bounded).
    fn end(&self) -> bool {
        let mut slot = self.lock();
        let deadline = instant_after(Instant::now(), CANCEL_ANSWER_WAIT);
        while slot.cancel == CancelState::Sending {
            let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            slot = match self.cancelled.wait_timeout(slot, wait) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
        let released = slot.cancel == CancelState::Released;
        *slot = ClaimSlot::default();
        released
    }

    /// The id of the claim on the wire, now marked as being cancelled; `None`
    /// when no claim is on the wire (its answer is in: its tasks are ours).
    fn start_cancel(&self) -> Option<String> {
        let mut slot = self.lock();
        let id = slot
            .id
            .clone()
            .filter(|_| slot.cancel == CancelState::None)?;
        slot.cancel = CancelState::Sending;
        Some(id)
    }

    /// The cancel's answer: `released` when the server took the claim's tasks back.
    fn cancel_answered(&self, released: bool) {
        self.lock().cancel = if released {
            CancelState::Released
        } else {
            CancelState::NotReleased
        };
        self.cancelled.notify_all();
    }
}

/// How long the drain waits for the poller's last claim to return.
const JOIN_LIMIT: Duration = Duration::from_secs(5);

/// The poller: the shared state, plus the channels only it holds.
pub(crate) struct Poller {
    shared: Arc<WorkerState>,
    /// One message per idle processor.
    idle: Receiver<()>,
    /// Tasks to the processors; dropped when the poller returns, which lets
    /// the processors drain and exit.
    tasks: Sender<Task>,
    /// The claim on the wire.
    claim: Arc<ClaimInFlight>,
    /// The pool, to retire its surplus processors.
    processors: Arc<Processors>,
}

/// The running poller thread, and what it takes to stop it.
pub(crate) struct PollerThread {
    thread: JoinHandle<()>,
    /// Disconnects when the poller returns.
    done: Receiver<()>,
    claim: Arc<ClaimInFlight>,
}

impl PollerThread {
    /// Ends a long poll in flight by cancelling its claim, so the poller
    /// returns at once and no claimed task is left on the wire; then waits
    /// for the thread, but no longer than [`JOIN_LIMIT`].
    pub(crate) fn stop(self, client: &ApiClient) {
        if still_running(&self.done, Duration::from_millis(2)) {
            if let Some(claim_id) = self.claim.start_cancel() {
                let released = client
                    .cancel_claim(&claim_id, Duration::from_secs(2))
                    .unwrap_or_else(|e| {
                        log::debug!("claim cancel failed: {e}");
                        false
                    });
                self.claim.cancel_answered(released);
            }
        }
        if still_running(&self.done, JOIN_LIMIT) {
            log::warn!("the last claim did not return in time; exiting without it");
        } else {
            let _ = self.thread.join();
        }
    }
}

/// Waits up to `limit` for a thread's done channel to disconnect; true if it did not.
fn still_running(done: &Receiver<()>, limit: Duration) -> bool {
    matches!(done.recv_timeout(limit), Err(RecvTimeoutError::Timeout))
}

impl Poller {
    /// Starts the poller thread (`taskworker-poller`), which claims for
    /// each message on `idle` and sends what it claims on `tasks`.
    pub(crate) fn spawn(
        shared: &Arc<WorkerState>,
        idle: Receiver<()>,
        tasks: Sender<Task>,
        processors: Arc<Processors>,
    ) -> Result<PollerThread, Error> {
        let claim = Arc::new(ClaimInFlight::default());
        let poller = Poller {
            shared: shared.clone(),
            idle,
            tasks,
            claim: claim.clone(),
            processors,
        };
        let (done_tx, done) = bounded::<()>(0);
        let thread = spawn_role(shared, Role::Poller, "taskworker-poller", move || {
            poller.run();
            drop(done_tx);
        })?;
        Ok(PollerThread {
            thread,
            done,
            claim,
        })
    }

    /// The poller loop; returns when a stop is asked.
    fn run(self) {
        let shared = &*self.shared;
        let mut idle = 0usize;
        let mut claim_seq = 0u64;
        // A claim id names one request for good: a worker restarted with the
        // same WORKER_ID must not repeat its predecessor's ids, or the server
        // would answer with the dead process's tasks as a replay.
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut retry_claim_id: Option<String> = None;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let mut claim_due = Instant::now();
        let mut wake_on_change = true;
        let mut last_empty: Option<Vec<String>> = None;
        let mut seen = shared.live.get();
        let mut gather = Gather::default();
        loop {
            while self.idle.try_recv().is_ok() {
                idle += 1;
                gather.freed();
            }
            self.processors.retire_surplus(&mut idle);
            let settings = shared.live.get();
            if !Arc::ptr_eq(&settings, &seen) {
                // A reload: claim at once with its types and its key, even
                // while backing off (the key may be what it fixed).
                seen = settings.clone();
                claim_due = Instant::now();
                wake_on_change = true;
                last_empty = None;
                backoff.reset();
            }
            // Claimed already: they go first.
            for task in shared.limiter.start_waiting(idle, Instant::now()) {
                idle -= 1;
                self.hand_on(task);
            }
            let step = shared.limiter.inspect(|limits, waiting| {
                let situation = Situation {
                    stopping: shared.shutdown.is_stopping(),
                    quiet: shared.shutdown.is_quiet(),
                    reports_backed_up: reports_backed_up(&shared.reports, shared.outbox.len()),
                    idle,
                    waiting,
                    claim_due,
                    last_empty: last_empty.as_deref(),
                    gather_until: gather.until(),
                    now: Instant::now(),
                };
                next_step(&situation, limits, &settings.types)
            });
            let plan = match step {
                Step::Stop => return,
                Step::Pause => {
                    if !self.pause() {
                        return;
                    }
                    if wake_on_change {
                        claim_due = Instant::now();
                    }
                    continue;
                }
                Step::Wait(until) => {
                    let until = [until, shared.limiter.next_start(Instant::now())]
                        .into_iter()
                        .flatten()
                        .min();
                    let timer = until.map_or_else(never, at);
                    // A reload wakes it too, also while it backs off.
                    select! {
                        recv(self.idle) -> msg => if msg.is_ok() {
                            idle += 1;
                            gather.freed();
                        },
                        recv(shared.shutdown.stopped()) -> _ => return,
                        recv(shared.shutdown.woken()) -> _ => if wake_on_change {
                            claim_due = Instant::now()
                        },
                        recv(shared.limiter.freed()) -> _ => {},
                        recv(timer) -> _ => {},
                    }
                    continue;
                }
                Step::Claim(plan) => plan,
            };
            let claim_id = retry_claim_id.take().unwrap_or_else(|| {
                claim_seq += 1;
                format!("{}-{run:x}-{claim_seq:012}", shared.client.worker_id())
            });
            let request = claim_request(
                shared.client.worker_id(),
                &plan.types,
                plan.max_tasks,
                long_poll_seconds(settings.config.wait_seconds, plan.long_poll),
                claim_id.clone(),
            );
            self.claim.begin(claim_id.clone());
            let began = Instant::now();
            let mut answer = shared.client.claim(&request);
            if self.claim.end() {
                // Shutting down, and the server put back what this claim
                // handed out: another worker runs it.
                if let Ok(Claimed::Tasks(objects)) = &answer {
                    log::info!(
                        "the claim cancelled at shutdown handed {} task(s) back to the server; not running them here",
                        objects.len()
                    );
                }
                answer = Ok(Claimed::Nothing);
            }
            let took = began.elapsed();
            shared.stats.claim_latency.observe(took);
            let next = after_claim(
                &answer,
                took,
                settings.config.polling_interval,
                &mut backoff,
            );
            last_empty = None;
            match answer {
                Ok(Claimed::Tasks(objects)) => {
                    shared.connectivity.success();
                    shared.stats.claims_tasks.fetch_add(1, Relaxed);
                    let (brought, mut handed) = (objects.len(), 0);
                    for object in objects {
                        let Some(task) = self.accept(object) else {
                            continue;
                        };
                        // Only from a server that ignores `types` (or hands
                        // out more than asked) is a task's type full here.
                        let lease = lease_length(&task);
                        if let Some(task) = shared.limiter.admit(task, lease, Instant::now()) {
                            idle = idle.saturating_sub(1);
                            self.hand_on(task);
                            handed += 1;
                        }
                    }
                    gather.claimed(plan.max_tasks, brought, handed, took, Instant::now());
                }
                Ok(Claimed::Nothing) => {
                    shared.connectivity.success();
                    shared.stats.claims_empty.fetch_add(1, Relaxed);
                    last_empty = Some(plan.types);
                }
                Err(err) => {
                    shared.stats.claims_error.fetch_add(1, Relaxed);
                    shared.connectivity.failure("claim", &err);
                    log::debug!(
                        "claim failed: {err}; next try in {} ms",
                        next.wait.as_millis()
                    );
                }
            }
            if next.same_claim_id {
                retry_claim_id = Some(claim_id);
            }
            claim_due = instant_after(Instant::now(), next.wait);
            wake_on_change = next.wake_on_change;
        }
    }

    /// Sends a task with its slot and token taken to the processors.
    fn hand_on(&self, task: Task) {
        self.shared.inflight.reserve(&task.id);
        // Sent even when stopping: a claimed task is ours to run.
        let _ = self.tasks.send(task);
        fault::panic_if_asked("poller");
    }

    /// Checks a claimed object; a task without a usable type is failed at once.
    fn accept(&self, object: serde_json::Value) -> Option<Task> {
        let shared = &self.shared;
        // `run_at` is no field of `Task`: read it before the object is consumed.
        let run_at = object
            .get("run_at")
            .and_then(|v| v.as_str())
            .map(String::from);
        match Task::from_claimed(object) {
            Ok(task) if shared.inflight.is_running(&task.id) => {
                log::warn!(
                    "task {} ({}): delivered again while it runs here; the duplicate is not run",
                    task.id,
                    task.task_type
                );
                None
            }
            Ok(task) => {
                let spooled = shared
                    .spool
                    .as_ref()
                    .and_then(|s| s.reclaim(&task.id, shared.client.worker_id()));
                let Some(outcome) = spooled else {
                    let waited = super::metrics::pickup_delay(
                        task.created_at.as_deref(),
                        run_at.as_deref(),
                        task.claimed_at.as_deref(),
                        SystemTime::now(),
                    );
                    if let Some(waited) = waited {
                        shared.stats.pickup_delay.observe(waited);
                    }
                    return Some(task);
                };
                log::info!(
                    "task {} ({}): redelivered, but its outcome waits in the spool; sending that instead of running it again",
                    task.id,
                    task.task_type
                );
                // The server holds the task for us now: the outcome goes in our name.
                shared.outbox.send(outcome);
                None
            }
            Err(MalformedTask::NoId) => {
                shared.stats.tasks_malformed.fetch_add(1, Relaxed);
                log::warn!(
                    "claim: a claimed task has no string id; it cannot be reported and is skipped"
                );
                None
            }
            Err(MalformedTask::BadType { id }) => {
                log::warn!("task {id} (no type): missing or non-string type; reported failed as VALIDATION");
                self.fail_unrunnable(&id, "", "task has no usable \"type\"".into());
                None
            }
            Err(MalformedTask::OutOfBounds {
                id,
                task_type,
                field,
                value,
            }) => {
                let problem = out_of_bounds(field, &value);
                log::warn!("task {id} ({task_type}): {problem}; reported failed as VALIDATION");
                self.fail_unrunnable(&id, &task_type, problem);
                None
            }
        }
    }

    /// Reports a task that cannot run as given failed, `VALIDATION`, not retryable.
    fn fail_unrunnable(&self, id: &str, task_type: &str, problem: String) {
        let shared = &self.shared;
        let err = TaskError::permanent(problem, error_type::VALIDATION);
        shared.outbox.finish(
            Outcome::failed(
                id,
                task_type,
                &err,
                shared.client.worker_id(),
                0,
                Duration::ZERO,
            ),
            Duration::ZERO,
        );
    }

    /// Waits [`PAUSE_RECHECK`], or less when a stop is asked (returns
    /// false), quiet mode changes or a slot comes free (a waiting task may
    /// start: claimed tasks run even while the worker is quiet).
    fn pause(&self) -> bool {
        let shared = &self.shared;
        select! {
            recv(shared.shutdown.stopped()) -> _ => false,
            recv(shared.shutdown.woken()) -> _ => true,
            recv(shared.limiter.freed()) -> _ => true,
            recv(after(PAUSE_RECHECK)) -> _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::limits::{Limit, Rate};
    use serde_json::json;

    fn status(status: u16, retry_after: Option<Duration>) -> ApiError {
        ApiError::Status {
            status,
            retry_after,
            body: String::new(),
        }
    }

    fn backoff() -> Backoff {
        Backoff::new(Duration::from_millis(200), Duration::from_secs(30))
    }

    fn types(names: &[&str]) -> Vec<String> {
        names.iter().map(|t| t.to_string()).collect()
    }

    /// A worker with `idle` idle processors, nothing waiting, a claim due.
    fn situation(idle: usize, now: Instant) -> Situation<'static> {
        Situation {
            stopping: false,
            quiet: false,
            reports_backed_up: false,
            idle,
            waiting: 0,
            claim_due: now,
            last_empty: None,
            gather_until: None,
            now,
        }
    }

    fn limits(entries: &[(&str, Limit)], now: Instant) -> Limits {
        let map = entries.iter().map(|(t, l)| (t.to_string(), *l)).collect();
        Limits::new(&map, now)
    }

    fn concurrency(n: u32) -> Limit {
        Limit {
            concurrency: Some(n),
            rate: None,
        }
    }

    fn claim(types: &[&str], max_tasks: u32, long_poll: Option<Duration>) -> Step {
        Step::Claim(Plan {
            types: self::types(types),
            max_tasks,
            long_poll,
        })
    }

    #[test]
    fn a_stop_wins_over_everything_and_quiet_or_a_report_backlog_claims_nothing() {
        let now = Instant::now();
        let (none, all) = (limits(&[], now), types(&["echo"]));
        // (stopping, quiet, reports backed up, idle processors)
        let cases = [
            ((true, true, true, 4), Step::Stop),
            ((true, false, false, 0), Step::Stop),
            ((false, true, false, 4), Step::Pause),
            ((false, false, true, 4), Step::Pause),
        ];
        for ((stopping, quiet, reports_backed_up, idle), want) in cases {
            let s = Situation {
                stopping,
                quiet,
                reports_backed_up,
                ..situation(idle, now)
            };
            assert_eq!(next_step(&s, &none, &all), want, "{s:?}");
        }
    }

    #[test]
    fn shortly_after_a_claim_it_waits_for_that_claims_processors_then_claims_for_all() {
        let now = Instant::now();
        let (none, all) = (limits(&[], now), types(&["echo"]));
        let mut gather = Gather::default();
        assert_eq!(gather.until(), None, "no claim yet: nothing to wait for");
        // A claim for 4 that took 300 µs handed 4 tasks on; one processor freed.
        gather.claimed(4, 4, 4, Duration::from_micros(300), now);
        gather.freed();
        let until = now + Duration::from_micros(300);
        assert_eq!(gather.until(), Some(until));
        let s = Situation {
            gather_until: gather.until(),
            ..situation(1, now)
        };
        assert_eq!(next_step(&s, &none, &all), Step::Wait(Some(until)));
        // The wait is over at its instant, with some still running...
        let later = Situation {
            gather_until: gather.until(),
            ..situation(2, until)
        };
        assert_eq!(next_step(&later, &none, &all), claim(&["echo"], 2, None));
        // ...or before it, once all of them have freed.
        gather.freed();
        gather.freed();
        gather.freed();
        assert_eq!(gather.until(), None);
        let s = Situation {
            gather_until: gather.until(),
            ..situation(4, now)
        };
        assert_eq!(next_step(&s, &none, &all), claim(&["echo"], 4, None));
        // A stop or no idle processor wins over the wait, as ever.
        gather.claimed(4, 4, 4, Duration::from_millis(1), now);
        let stopping = Situation {
            stopping: true,
            gather_until: gather.until(),
            ..situation(1, now)
        };
        assert_eq!(next_step(&stopping, &none, &all), Step::Stop);
    }

    #[test]
    fn the_wait_for_a_claims_processors_is_its_round_trip_at_most_and_only_with_a_backlog() {
        let now = Instant::now();
        let mut gather = Gather::default();
        gather.claimed(2, 2, 2, Duration::from_micros(250), now);
        assert_eq!(gather.until(), Some(now + Duration::from_micros(250)));
        // A long poll that waited 20 s for its tasks is no round trip.
        gather.claimed(2, 2, 2, Duration::from_secs(20), now);
        assert_eq!(gather.until(), Some(now + GATHER_LIMIT));
        // A claim whose tasks all waited locally (or were refused) handed none on.
        gather.claimed(2, 2, 0, Duration::from_millis(1), now);
        assert_eq!(gather.until(), None);
        // A claim that brought fewer than it asked for found no backlog.
        gather.claimed(4, 1, 1, Duration::from_micros(250), now);
        assert_eq!(gather.until(), None);
        // A server that hands out more than asked has a backlog all the same.
        gather.claimed(2, 3, 3, Duration::from_micros(250), now);
        assert!(gather.until().is_some());
    }

    #[test]
    fn claims_one_task_per_idle_processor_and_waits_without_one() {
        let now = Instant::now();
        let none = limits(&[], now);
        let all = types(&["echo", "resize"]);
        assert_eq!(next_step(&situation(0, now), &none, &all), Step::Wait(None));
        assert_eq!(
            next_step(&situation(1, now), &none, &all),
            claim(&["echo", "resize"], 1, None)
        );
        assert_eq!(
            next_step(&situation(4, now), &none, &all),
            claim(&["echo", "resize"], 4, None)
        );
    }

    #[test]
    fn a_full_type_is_left_out_and_no_claim_asks_for_more_than_the_least_headroom() {
        let now = Instant::now();
        let all = types(&["a", "b", "c"]);
        let mut l = limits(&[("a", concurrency(1)), ("b", concurrency(3))], now);
        // Any task of the batch may be an "a": one at a time while "a" is open.
        assert_eq!(
            next_step(&situation(8, now), &l, &all),
            claim(&["a", "b", "c"], 1, None)
        );
        assert!(l.take("a", now));
        // "a" is full: left out, and the long poll is short, since its slot
        // may free at any moment.
        assert_eq!(
            next_step(&situation(8, now), &l, &all),
            claim(&["b", "c"], 3, Some(REOPEN_POLL))
        );
        assert!(l.take("b", now) && l.take("b", now) && l.take("b", now));
        assert_eq!(
            next_step(&situation(8, now), &l, &all),
            claim(&["c"], 8, Some(REOPEN_POLL))
        );
        // Nothing open: wait for a slot; time alone opens nothing.
        let only_limited = types(&["a", "b"]);
        assert_eq!(
            next_step(&situation(8, now), &l, &only_limited),
            Step::Wait(None)
        );
    }

    #[test]
    fn a_type_out_of_tokens_comes_back_when_its_next_token_does() {
        let now = Instant::now();
        let at = |ms| instant_after(now, Duration::from_millis(ms));
        let mail = Limit {
            concurrency: None,
            rate: Some(Rate::per_hour(100)),
        };
        let mut l = limits(&[("mail", mail)], now);
        let all = types(&["mail", "echo"]);
        assert!(l.take("mail", now));
        // The next token is 36 s away: the long poll is not cut for it.
        assert_eq!(
            next_step(&situation(2, now), &l, &all),
            claim(&["echo"], 2, Some(Duration::from_secs(36)))
        );
        assert_eq!(long_poll_seconds(20, Some(Duration::from_secs(36))), 20);
        assert_eq!(long_poll_seconds(20, Some(Duration::from_millis(1500))), 2);
        assert_eq!(long_poll_seconds(20, None), 20);
        assert_eq!(
            next_step(&situation(2, now), &l, &types(&["mail"])),
            Step::Wait(Some(at(36_000)))
        );
        // After an empty answer that left "mail" out, its token makes the
        // next claim due at once, not after the polling interval.
        let last = types(&["echo"]);
        let waited = Situation {
            claim_due: at(40_000),
            last_empty: Some(&last),
            ..situation(2, now)
        };
        assert_eq!(next_step(&waited, &l, &all), Step::Wait(Some(at(36_000))));
        let later = Situation {
            now: at(36_000),
            ..waited
        };
        assert_eq!(
            next_step(&later, &l, &all),
            claim(&["mail", "echo"], 1, None)
        );
        assert!(l.take("mail", at(36_000)));
    }

    #[test]
    fn the_polling_interval_and_the_backoff_hold_for_the_same_types() {
        let now = Instant::now();
        let due = instant_after(now, Duration::from_secs(5));
        let none = limits(&[], now);
        let all = types(&["echo"]);
        let after_error = Situation {
            claim_due: due,
            ..situation(4, now)
        };
        assert_eq!(next_step(&after_error, &none, &all), Step::Wait(Some(due)));
        let after_nothing = Situation {
            last_empty: Some(&all),
            ..after_error
        };
        assert_eq!(
            next_step(&after_nothing, &none, &all),
            Step::Wait(Some(due))
        );
    }

    #[test]
    fn waiting_tasks_hold_their_processors_and_end_the_long_poll() {
        let now = Instant::now();
        let mut l = limits(&[("a", concurrency(1))], now);
        assert!(l.take("a", now));
        let all = types(&["a", "b"]);
        let full = Situation {
            waiting: 2,
            ..situation(2, now)
        };
        assert_eq!(next_step(&full, &l, &all), Step::Wait(None), "no hoarding");
        let room = Situation {
            waiting: 1,
            ..situation(3, now)
        };
        assert_eq!(
            next_step(&room, &l, &all),
            claim(&["b"], 2, Some(Duration::ZERO))
        );
    }

    #[test]
    fn the_claim_asks_for_the_handled_types_and_long_polls_only_when_set() {
        let types = vec!["echo".to_string(), "resize".to_string()];
        let req = claim_request("w1", &types, 3, 20, "w1-1".into());
        assert_eq!(req.worker_id, "w1");
        assert_eq!(req.types, Some(types.clone()));
        assert_eq!(req.max_tasks, Some(3));
        assert_eq!(req.wait_seconds, Some(20.0));
        assert_eq!(req.claim_id.as_deref(), Some("w1-1"));
        assert_eq!(
            claim_request("w1", &types, 1, 0, "w1-2".into()).wait_seconds,
            None
        );
    }

    #[test]
    fn tasks_are_claimed_again_at_once_and_past_errors_are_forgotten() {
        let mut b = backoff();
        for _ in 0..5 {
            b.next_delay();
        }
        let answer = Ok(Claimed::Tasks(vec![json!({"id": "t1", "type": "echo"})]));
        let next = after_claim(
            &answer,
            Duration::from_millis(5),
            Duration::from_secs(5),
            &mut b,
        );
        assert_eq!(next.wait, Duration::ZERO);
        assert!(!next.same_claim_id);
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn an_empty_answer_waits_the_rest_of_the_polling_interval() {
        let interval = Duration::from_secs(5);
        let quick = after_claim(
            &Ok(Claimed::Nothing),
            Duration::from_secs(1),
            interval,
            &mut backoff(),
        );
        assert_eq!(quick.wait, Duration::from_secs(4));
        assert!(quick.wake_on_change, "SIGCONT ends the wait");
        // A long poll has waited already.
        let long = after_claim(
            &Ok(Claimed::Nothing),
            Duration::from_secs(20),
            interval,
            &mut backoff(),
        );
        assert_eq!(long.wait, Duration::ZERO);
    }

    #[test]
    fn a_lost_answer_is_asked_for_again_with_the_same_claim_id_after_a_backoff() {
        let mut b = backoff();
        let lost = Err(ApiError::Transport("reset".into()));
        let next = after_claim(&lost, Duration::ZERO, Duration::from_secs(5), &mut b);
        assert!(next.same_claim_id);
        assert!(
            !next.wake_on_change,
            "quiet mode does not cut a backoff short"
        );
        assert!(next.wait >= Duration::from_millis(100) && next.wait <= Duration::from_millis(200));
        after_claim(&lost, Duration::ZERO, Duration::from_secs(5), &mut b);
        assert_eq!(b.failures(), 2, "each error backs off further");
        let refused = after_claim(
            &Err(status(400, None)),
            Duration::ZERO,
            Duration::ZERO,
            &mut b,
        );
        assert!(
            !refused.same_claim_id,
            "the server answered: nothing was lost"
        );
    }

    #[test]
    fn retry_after_is_honoured_and_refused_credentials_wait_longest() {
        let busy = Err(status(503, Some(Duration::from_secs(45))));
        let next = after_claim(
            &busy,
            Duration::ZERO,
            Duration::from_secs(5),
            &mut backoff(),
        );
        assert!(next.wait >= Duration::from_secs(45), "{:?}", next.wait);
        let auth = after_claim(
            &Err(status(401, None)),
            Duration::ZERO,
            Duration::from_secs(5),
            &mut backoff(),
        );
        assert_eq!(auth.wait, Duration::from_secs(30));
    }
}
