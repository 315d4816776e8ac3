//! The poller thread: claims as many tasks as there are idle processors
//! (batch, long poll, `types`, `claim_id`), hands them to the processors,
//! and backs off on errors. Every wait ends at once on shutdown.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{after, never, select, Receiver, Sender};

use crate::backoff::Backoff;
use crate::client::{ApiClient, ApiError, Claimed};
use crate::error::{error_type, TaskError};
use crate::task::{ClaimRequest, MalformedTask, Task};
use crate::worker::connectivity::Connectivity;
use crate::worker::inflight::InFlight;
use crate::worker::metrics::Stats;
use crate::worker::outbox::{reports_backed_up, Backlog, Outbox};
use crate::worker::outcome::Outcome;
use crate::worker::shutdown::Shutdown;
use crate::worker::spool::Spool;

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

/// The poller's inputs and outputs.
pub struct Poller {
    /// The API.
    pub client: ApiClient,
    /// Stop and quiet.
    pub shutdown: Shutdown,
    /// One message per idle processor.
    pub idle: Receiver<()>,
    /// Tasks to the processors.
    pub tasks: Sender<Task>,
    /// Failures found at claim time (a task without a usable type) go straight to the reporter.
    pub outcomes: Outbox,
    /// The types with handlers (`types` in the claim).
    pub types: Vec<String>,
    /// Long-poll seconds asked of the server (0: off).
    pub wait_seconds: u64,
    /// Wait after an empty claim.
    pub polling_interval: Duration,
    /// Counters.
    pub stats: Arc<Stats>,
    /// API reachability.
    pub connectivity: Arc<Connectivity>,
    /// Reports not yet delivered (backpressure).
    pub reports: Arc<Backlog>,
    /// The claim on the wire.
    pub claim_in_flight: Arc<ClaimInFlight>,
    /// The running executions (a dispatched task is reserved there).
    pub inflight: Arc<InFlight>,
    /// Outcomes kept from an earlier run: a redelivered task found there is not run again.
    pub spool: Option<Spool>,
}

impl Poller {
    /// The poller loop; returns when a stop is asked. Dropping `self` then
    /// closes the task channel, which lets the processors drain and exit.
    pub fn run(self) {
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
            if self.shutdown.is_stopping() {
                return;
            }
            if self.shutdown.is_quiet() || reports_backed_up(&self.reports, self.outcomes.len()) {
                // Quiet or backed up: wait for a change, re-checking the backlog now and then.
                if !self.wait(Duration::from_millis(100), true) {
                    return;
                }
                continue;
            }
            if idle_slots == 0 {
                select! {
                    recv(self.idle) -> msg => if msg.is_ok() { idle_slots += 1 },
                    recv(self.shutdown.stopped()) -> _ => return,
                    recv(self.shutdown.woken()) -> _ => continue,
                }
            }
            while self.idle.try_recv().is_ok() {
                idle_slots += 1;
            }
            let claim_id = retry_claim_id.take().unwrap_or_else(|| {
                claim_seq += 1;
                format!("{}-{run:x}-{claim_seq:012}", self.client.worker_id())
            });
            let request = ClaimRequest {
                worker_id: self.client.worker_id().to_string(),
                types: Some(self.types.clone()),
                max_tasks: Some(idle_slots as u32),
                wait_seconds: (self.wait_seconds > 0).then_some(self.wait_seconds as f64),
                claim_id: Some(claim_id.clone()),
            };
            self.claim_in_flight.set(Some(claim_id.clone()));
            let began = Instant::now();
            let result = self.client.claim(&request);
            self.claim_in_flight.set(None);
            let took = began.elapsed();
            self.stats.claim_latency.observe(took);
            match result {
                Ok(Claimed::Tasks(objects)) => {
                    self.connectivity.success();
                    self.stats.claims_tasks.fetch_add(1, Relaxed);
                    backoff.reset();
                    for object in objects {
                        if let Some(task) = self.accept(object) {
                            idle_slots = idle_slots.saturating_sub(1);
                            self.inflight.reserve();
                            // Sent even when stopping: a claimed task is ours to run.
                            let _ = self.tasks.send(task);
                        }
                    }
                }
                Ok(Claimed::Nothing) => {
                    self.connectivity.success();
                    self.stats.claims_empty.fetch_add(1, Relaxed);
                    backoff.reset();
                    // A long-polling server already made us wait; a core one answers at once.
                    if took < self.polling_interval
                        && !self.wait(self.polling_interval - took, true)
                    {
                        return;
                    }
                }
                Err(err) => {
                    self.stats.claims_error.fetch_add(1, Relaxed);
                    self.connectivity.failure("claim", &err);
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
        match Task::from_claimed(object) {
            Ok(task) if self.inflight.is_running(&task.id) => {
                log::warn!(
                    "task {} ({}): delivered again while it runs here; the duplicate is not run",
                    task.id,
                    task.task_type
                );
                None
            }
            Ok(task) => {
                let spooled = self
                    .spool
                    .as_ref()
                    .and_then(|s| s.reclaim(&task.id, self.client.worker_id()));
                let Some(outcome) = spooled else {
                    return Some(task);
                };
                log::info!(
                    "task {} ({}): redelivered, but its outcome waits in the spool; sending that instead of running it again",
                    task.id,
                    task.task_type
                );
                // The server holds the task for us now: the outcome goes in our name.
                self.outcomes.send(outcome);
                None
            }
            Err(MalformedTask::NoId) => {
                self.stats.tasks_malformed.fetch_add(1, Relaxed);
                log::warn!(
                    "claim: a claimed task has no string id; it cannot be reported and is skipped"
                );
                None
            }
            Err(MalformedTask::BadType { id }) => {
                log::warn!("task {id} (no type): missing or non-string type; reported failed as VALIDATION");
                let err =
                    TaskError::permanent("task has no usable \"type\"", error_type::VALIDATION);
                self.outcomes.finish(
                    Outcome::failed(&id, "", &err, self.client.worker_id(), 0, Duration::ZERO),
                    Duration::ZERO,
                );
                None
            }
        }
    }

    /// Waits `d`, or less when a stop is asked (returns false) or, with
    /// `wake_on_change`, when quiet mode changes.
    fn wait(&self, d: Duration, wake_on_change: bool) -> bool {
        let woken = if wake_on_change {
            self.shutdown.woken().clone()
        } else {
            never()
        };
        select! {
            recv(self.shutdown.stopped()) -> _ => false,
            recv(woken) -> _ => true,
            recv(after(d)) -> _ => true,
        }
    }
}
