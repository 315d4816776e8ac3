//! The poller thread: claims as many tasks as there are idle processors
//! (batch, long poll, `types`, `claim_id`), hands them to the processors,
//! and backs off on errors. Every wait ends at once on shutdown.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{after, bounded, never, select, Receiver, RecvTimeoutError, Sender};

use crate::backoff::Backoff;
use crate::client::{ApiClient, ApiError, Claimed};
use crate::error::{error_type, Error, TaskError};
use crate::task::{out_of_bounds, ClaimRequest, MalformedTask, Task};
use crate::worker::liveness::Role;
use crate::worker::outbox::reports_backed_up;
use crate::worker::outcome::Outcome;
use crate::worker::{fault, spawn_role, WorkerState};

/// How often a paused poller looks at the report backlog again (a change
/// of quiet mode wakes it at once).
const PAUSE_RECHECK: Duration = Duration::from_millis(100);

/// What the poller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A stop is asked: return.
    Stop,
    /// Quiet, or reports back up: claim nothing, look again soon.
    Pause,
    /// No processor is idle: wait for one.
    WaitForIdle,
    /// Claim up to this many tasks.
    Claim(u32),
}

/// Decides the poller's next step. A stop wins over everything; a quiet
/// worker, or one whose reports back up, claims nothing; otherwise it claims
/// one task per idle processor and never more, so that no claimed task waits
/// in a queue while its lease runs.
fn next_step(stopping: bool, quiet: bool, reports_backed_up: bool, idle: usize) -> Step {
    if stopping {
        Step::Stop
    } else if quiet || reports_backed_up {
        Step::Pause
    } else if idle == 0 {
        Step::WaitForIdle
    } else {
        Step::Claim(u32::try_from(idle).unwrap_or(u32::MAX))
    }
}

/// The claim for up to `max_tasks` tasks of the handled `types`, long
/// polling for `wait_seconds` when that is not 0.
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

/// The claim in flight, so that shutdown can cancel a long poll from another thread.
#[derive(Debug, Default)]
struct ClaimInFlight(Mutex<Option<String>>);

impl ClaimInFlight {
    /// The claim id of the request on the wire, if any.
    fn current(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, id: Option<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = id;
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
    /// The types with handlers (`types` in the claim).
    types: Vec<String>,
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
            if let Some(claim_id) = self.claim.current() {
                if let Err(e) = client.cancel_claim(&claim_id, Duration::from_secs(2)) {
                    log::debug!("claim cancel failed: {e}");
                }
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
    ) -> Result<PollerThread, Error> {
        let claim = Arc::new(ClaimInFlight::default());
        let poller = Poller {
            shared: shared.clone(),
            idle,
            tasks,
            claim: claim.clone(),
            types: shared.registry.types(),
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
        loop {
            while self.idle.try_recv().is_ok() {
                idle += 1;
            }
            let step = next_step(
                shared.shutdown.is_stopping(),
                shared.shutdown.is_quiet(),
                reports_backed_up(&shared.reports, shared.outbox.len()),
                idle,
            );
            let max_tasks = match step {
                Step::Stop => return,
                Step::Pause => {
                    if !self.wait(PAUSE_RECHECK, true) {
                        return;
                    }
                    continue;
                }
                Step::WaitForIdle => {
                    select! {
                        recv(self.idle) -> msg => if msg.is_ok() { idle += 1 },
                        recv(shared.shutdown.stopped()) -> _ => return,
                        recv(shared.shutdown.woken()) -> _ => {},
                    }
                    continue;
                }
                Step::Claim(max_tasks) => max_tasks,
            };
            let claim_id = retry_claim_id.take().unwrap_or_else(|| {
                claim_seq += 1;
                format!("{}-{run:x}-{claim_seq:012}", shared.client.worker_id())
            });
            let request = claim_request(
                shared.client.worker_id(),
                &self.types,
                max_tasks,
                shared.config.wait_seconds,
                claim_id.clone(),
            );
            self.claim.set(Some(claim_id.clone()));
            let began = Instant::now();
            let answer = shared.client.claim(&request);
            self.claim.set(None);
            let took = began.elapsed();
            shared.stats.claim_latency.observe(took);
            let next = after_claim(&answer, took, shared.config.polling_interval, &mut backoff);
            match answer {
                Ok(Claimed::Tasks(objects)) => {
                    shared.connectivity.success();
                    shared.stats.claims_tasks.fetch_add(1, Relaxed);
                    for object in objects {
                        if let Some(task) = self.accept(object) {
                            idle = idle.saturating_sub(1);
                            shared.inflight.reserve();
                            // Sent even when stopping: a claimed task is ours to run.
                            let _ = self.tasks.send(task);
                            fault::panic_if_asked("poller");
                        }
                    }
                }
                Ok(Claimed::Nothing) => {
                    shared.connectivity.success();
                    shared.stats.claims_empty.fetch_add(1, Relaxed);
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
            if !next.wait.is_zero() && !self.wait(next.wait, next.wake_on_change) {
                return;
            }
        }
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

    /// Waits `d`, or less when a stop is asked (returns false) or, with
    /// `wake_on_change`, when quiet mode changes.
    fn wait(&self, d: Duration, wake_on_change: bool) -> bool {
        let shared = &self.shared;
        let woken = if wake_on_change {
            shared.shutdown.woken().clone()
        } else {
            never()
        };
        select! {
            recv(shared.shutdown.stopped()) -> _ => false,
            recv(woken) -> _ => true,
            recv(after(d)) -> _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn a_stop_wins_over_everything() {
        assert_eq!(next_step(true, true, true, 4), Step::Stop);
        assert_eq!(next_step(true, false, false, 0), Step::Stop);
    }

    #[test]
    fn quiet_or_a_report_backlog_claims_nothing_even_with_idle_processors() {
        assert_eq!(next_step(false, true, false, 4), Step::Pause);
        assert_eq!(next_step(false, false, true, 4), Step::Pause);
    }

    #[test]
    fn claims_one_task_per_idle_processor_and_waits_without_one() {
        assert_eq!(next_step(false, false, false, 0), Step::WaitForIdle);
        assert_eq!(next_step(false, false, false, 1), Step::Claim(1));
        assert_eq!(next_step(false, false, false, 4), Step::Claim(4));
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
