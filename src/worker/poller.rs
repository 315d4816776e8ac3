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
use crate::task::{ClaimRequest, MalformedTask, Task};
use crate::worker::liveness::Thread;
use crate::worker::outbox::reports_backed_up;
use crate::worker::outcome::Outcome;
use crate::worker::{spawn_thread, WorkerState};

/// The claim in flight, so that shutdown can cancel a long poll from another thread.
#[derive(Debug, Default)]
pub struct ClaimInFlight(Mutex<Option<String>>);

impl ClaimInFlight {
    /// The claim id of the request on the wire, if any.
    pub fn current(&self) -> Option<String> {
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
        let thread = spawn_thread("taskworker-poller", move || {
            let _alive = poller.shared.liveness.alive(Thread::Poller);
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
        let shared = self.shared.clone();
        let mut idle_slots = 0usize;
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
            if shared.shutdown.is_stopping() {
                return;
            }
            if shared.shutdown.is_quiet() || reports_backed_up(&shared.reports, shared.outbox.len())
            {
                // Quiet or backed up: wait for a change, re-checking the backlog now and then.
                if !self.wait(Duration::from_millis(100), true) {
                    return;
                }
                continue;
            }
            if idle_slots == 0 {
                select! {
                    recv(self.idle) -> msg => if msg.is_ok() { idle_slots += 1 },
                    recv(shared.shutdown.stopped()) -> _ => return,
                    recv(shared.shutdown.woken()) -> _ => continue,
                }
            }
            while self.idle.try_recv().is_ok() {
                idle_slots += 1;
            }
            let claim_id = retry_claim_id.take().unwrap_or_else(|| {
                claim_seq += 1;
                format!("{}-{run:x}-{claim_seq:012}", shared.client.worker_id())
            });
            let request = ClaimRequest {
                worker_id: shared.client.worker_id().to_string(),
                types: Some(self.types.clone()),
                max_tasks: Some(idle_slots as u32),
                wait_seconds: (shared.config.wait_seconds > 0)
                    .then_some(shared.config.wait_seconds as f64),
                claim_id: Some(claim_id.clone()),
            };
            self.claim.set(Some(claim_id.clone()));
            let began = Instant::now();
            let result = shared.client.claim(&request);
            self.claim.set(None);
            let took = began.elapsed();
            shared.stats.claim_latency.observe(took);
            match result {
                Ok(Claimed::Tasks(objects)) => {
                    shared.connectivity.success();
                    shared.stats.claims_tasks.fetch_add(1, Relaxed);
                    backoff.reset();
                    for object in objects {
                        if let Some(task) = self.accept(object) {
                            idle_slots = idle_slots.saturating_sub(1);
                            shared.inflight.reserve();
                            // Sent even when stopping: a claimed task is ours to run.
                            let _ = self.tasks.send(task);
                        }
                    }
                }
                Ok(Claimed::Nothing) => {
                    shared.connectivity.success();
                    shared.stats.claims_empty.fetch_add(1, Relaxed);
                    backoff.reset();
                    // A long-polling server already made us wait; a core one answers at once.
                    if took < shared.config.polling_interval
                        && !self.wait(shared.config.polling_interval - took, true)
                    {
                        return;
                    }
                }
                Err(err) => {
                    shared.stats.claims_error.fetch_add(1, Relaxed);
                    shared.connectivity.failure("claim", &err);
                    if matches!(err, ApiError::Transport(_)) {
                        // The answer may have been lost on the wire: ask again
                        // with the same claim id so the server hands back the same tasks.
                        retry_claim_id = Some(claim_id);
                    }
                    let delay = if err.is_auth() {
                        backoff.max_delay()
                    } else {
                        backoff.next_delay()
                    };
                    let delay = delay.max(err.retry_after().unwrap_or_default());
                    log::debug!("claim failed: {err}; next try in {} ms", delay.as_millis());
                    if !self.wait(delay, false) {
                        return;
                    }
                }
            }
        }
    }

    /// Checks a claimed object; a task without a usable type is failed at once.
    fn accept(&self, object: serde_json::Value) -> Option<Task> {
        let shared = &self.shared;
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
                let err =
                    TaskError::permanent("task has no usable \"type\"", error_type::VALIDATION);
                shared.outbox.finish(
                    Outcome::failed(&id, "", &err, shared.client.worker_id(), 0, Duration::ZERO),
                    Duration::ZERO,
                );
                None
            }
        }
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
