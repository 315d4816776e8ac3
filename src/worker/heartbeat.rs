//! The heartbeat thread: extends the lease of every running task that came
//! with `lease_expires_at`, every third of the lease. When the server says the
//! lease is lost (404/409/410), the task is cancelled and its outcome dropped.
//! Off the poller's path, it also asks `GET /health` whether `API_URL` is a
//! task API's base URL (see [`HealthChecks`] for when).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{after, select, Receiver};

use crate::bounded::instant_after;
use crate::client::{Beat, Health};
use crate::context::CancelReason;
use crate::error::Error;
use crate::worker::connectivity::HealthChecks;
use crate::worker::liveness::Role;
use crate::worker::{fault, spawn_role, WorkerState};

/// The longest wait between checks for new leased tasks.
const TICK: Duration = Duration::from_millis(250);
/// The longest a `/health` check may hold up the heartbeats.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The heartbeat thread: the shared state, and the channel that ends it.
pub(crate) struct Heartbeats {
    shared: Arc<WorkerState>,
    /// Disconnects when the worker is done.
    done: Receiver<()>,
}

impl Heartbeats {
    /// Starts the heartbeat thread (`taskworker-heartbeat`), which serves
    /// until `done` disconnects.
    pub(crate) fn spawn(
        shared: &Arc<WorkerState>,
        done: Receiver<()>,
    ) -> Result<JoinHandle<()>, Error> {
        let heartbeats = Heartbeats {
            shared: shared.clone(),
            done,
        };
        spawn_role(shared, Role::Heartbeat, "taskworker-heartbeat", move || {
            heartbeats.run()
        })
    }

    /// The heartbeat loop; returns when `done` disconnects.
    fn run(self) {
        let shared = &*self.shared;
        let mut next_beat: HashMap<u64, Instant> = HashMap::new();
        let mut health_checks = HealthChecks::new(Instant::now());
        loop {
            let now = Instant::now();
            let mut wake = instant_after(now, TICK);
            if !shared.shutdown.is_stopping() {
                self.check_health(&mut health_checks, now);
                wake = health_checks.next().map_or(wake, |at| wake.min(at));
            }
            let leased: Vec<_> = shared
                .inflight
                .unsettled()
                .into_iter()
                .filter(|r| r.lease.is_some())
                .collect();
            next_beat.retain(|id, _| leased.iter().any(|r| r.id == *id));
            if !leased.is_empty() {
                fault::panic_if_asked("heartbeat");
            }
            for entry in leased {
                let interval = entry.lease.unwrap_or(TICK) / 3;
                let due = *next_beat
                    .entry(entry.id)
                    .or_insert_with(|| instant_after(entry.started, interval));
                if now < due {
                    wake = wake.min(due);
                    continue;
                }
                let task = &entry.task;
                shared.stats.heartbeats.fetch_add(1, Relaxed);
                match shared.client.heartbeat(&task.id) {
                    Ok(Beat::Extended(_)) => {
                        shared.connectivity.success();
                        next_beat.insert(entry.id, instant_after(Instant::now(), interval));
                    }
                    Ok(Beat::Lost(status)) => {
                        shared.connectivity.success();
                        entry.ctx.cancel.cancel(CancelReason::LeaseLost);
                        // The outcome is dropped: the task is no longer ours to report.
                        if shared.inflight.settle_with(&entry, || {}) {
                            shared.stats.leases_lost.fetch_add(1, Relaxed);
                            log::warn!(
                                "task {} ({}): lease lost (heartbeat answered {status}); cancelled, its outcome will not be reported",
                                task.id,
                                task.task_type
                            );
                        }
                    }
                    Err(err) => {
                        shared.connectivity.failure(
                            &format!("heartbeat for task {} ({})", task.id, task.task_type),
                            &err,
                        );
                        // Try again soon, but well within the lease.
                        next_beat.insert(
                            entry.id,
                            instant_after(
                                Instant::now(),
                                (interval / 3).max(Duration::from_millis(100)),
                            ),
                        );
                    }
                }
            }
            let wait = wake
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            select! {
                recv(self.done) -> _ => return,
                recv(after(wait)) -> _ => {}
            }
        }
    }

    /// Asks `GET /health` when a check is due, and records the answer.
    fn check_health(&self, checks: &mut HealthChecks, now: Instant) {
        let shared = &*self.shared;
        if !checks.due(now, shared.connectivity.comebacks()) {
            return;
        }
        let url = shared.client.shown_base();
        let found = match shared.client.health(HEALTH_TIMEOUT) {
            Ok(health) => {
                shared.connectivity.health_checked(url, &health);
                health == Health::Found
            }
            Err(err) => {
                log::debug!("GET {url}/health: {err}; asked again later");
                false
            }
        };
        checks.checked(Instant::now(), found);
    }
}
