//! The heartbeat thread: extends the lease of every running task that came
//! with `lease_expires_at`, and of every claimed task that waits for its
//! type, every third of the lease. When the server says the
//! lease is lost (404/409/410), the task is cancelled and its outcome dropped.
//! Off the poller's path, it also asks `GET /health` whether `API_URL` is a
//! task API's base URL (see [`HealthChecks`] for when).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{after, never, select, Receiver};

use crate::bounded::instant_after;
use crate::client::{Beat, Health};
use crate::context::CancelReason;
use crate::error::Error;
use crate::task::Task;
use crate::worker::connectivity::HealthChecks;
use crate::worker::liveness::Role;
use crate::worker::{fault, spawn_role, WorkerState};

/// The longest a `/health` check may hold up the heartbeats.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// What holds a lease here: an execution, or a task waiting for its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Leased {
    Running(u64),
    Waiting(u64),
}

/// One round's plan: when each lease's next beat is due, and when the
/// thread wakes next.
struct Plan<'a> {
    next_beat: &'a mut HashMap<Leased, Instant>,
    wake: &'a mut Option<Instant>,
    now: Instant,
}

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

    /// The heartbeat loop; returns when `done` disconnects. It sleeps until
    /// the next beat or `/health` check is due, and wakes early only when a
    /// leased task starts whose first beat is due sooner, a leased task
    /// begins to wait, or an outage ends: an idle worker's heartbeat thread
    /// does not wake at all, and a busy one not once per task.
    fn run(self) {
        let shared = &*self.shared;
        let mut next_beat: HashMap<Leased, Instant> = HashMap::new();
        let mut health_checks = HealthChecks::new(Instant::now());
        loop {
            let now = Instant::now();
            let mut wake: Option<Instant> = None;
            if !shared.shutdown.is_stopping() {
                self.check_health(&mut health_checks, now);
                wake = health_checks.next();
            }
            // Before the look: a leased task that starts after it wakes us.
            shared.inflight.planning_beats();
            let running: Vec<_> = shared
                .inflight
                .unsettled()
                .into_iter()
                .filter(|r| r.lease.is_some())
                .collect();
            let waiting = shared.limiter.leased_waiting();
            next_beat.retain(|key, _| match key {
                Leased::Running(id) => running.iter().any(|r| r.id == *id),
                Leased::Waiting(id) => waiting.iter().any(|w| w.id == *id),
            });
            if !running.is_empty() || !waiting.is_empty() {
                fault::panic_if_asked("heartbeat");
            }
            let mut plan = Plan {
                next_beat: &mut next_beat,
                wake: &mut wake,
                now,
            };
            for entry in running {
                let key = Leased::Running(entry.id);
                let Some(status) =
                    self.beat(&mut plan, key, &entry.task, entry.lease, entry.started)
                else {
                    continue;
                };
                // Settled before the cancel, so that the outcome is dropped:
                // the task is no longer ours to report. Cancelled first, the
                // handler could return and its processor settle (and report
                // LEASE_LOST) in between.
                let settled = shared.inflight.settle_with(&entry, || {});
                entry.ctx.cancel.cancel(CancelReason::LeaseLost);
                if settled {
                    shared.stats.leases_lost.fetch_add(1, Relaxed);
                    log::warn!(
                        "task {} ({}): lease lost (heartbeat answered {status}); cancelled, its outcome will not be reported",
                        entry.task.id,
                        entry.task.task_type
                    );
                }
            }
            for w in waiting {
                let key = Leased::Waiting(w.id);
                let Some(status) = self.beat(&mut plan, key, &w.task, w.lease, w.since) else {
                    continue;
                };
                // Unless it has started meanwhile: then its own beat finds out.
                if shared.limiter.remove_waiting(w.id).is_some() {
                    shared.stats.leases_lost.fetch_add(1, Relaxed);
                    log::warn!(
                        "task {} ({}): lease lost while it waited for its type (heartbeat answered {status}); it will not run here",
                        w.task.id,
                        w.task.task_type
                    );
                }
            }
            // A leased task that starts from now on wakes us only if its
            // first beat is due before this.
            shared.inflight.plan_beats(wake);
            let timer = wake.map_or_else(never, |at| {
                after(
                    at.saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1)),
                )
            });
            select! {
                recv(self.done) -> _ => return,
                recv(shared.inflight.leased_started()) -> _ => {}
                recv(shared.limiter.queued()) -> _ => {}
                recv(shared.connectivity.came_back()) -> _ => {}
                recv(timer) -> _ => {}
            }
        }
    }

    /// Extends the lease of `task` (leased for `lease`, held here `since`)
    /// when its beat is due, and plans the next; returns the status with
    /// which the server said the lease is lost.
    fn beat(
        &self,
        plan: &mut Plan,
        key: Leased,
        task: &Task,
        lease: Option<Duration>,
        since: Instant,
    ) -> Option<u16> {
        let shared = &*self.shared;
        let interval = lease.unwrap_or(Duration::from_secs(1)) / 3;
        let due = *plan
            .next_beat
            .entry(key)
            .or_insert_with(|| instant_after(since, interval));
        if plan.now < due {
            *plan.wake = Some(plan.wake.map_or(due, |w| w.min(due)));
            return None;
        }
        shared.stats.heartbeats.fetch_add(1, Relaxed);
        let (next, lost) = match shared.client.heartbeat(&task.id) {
            Ok(Beat::Extended(_)) => {
                shared.connectivity.success();
                (instant_after(Instant::now(), interval), None)
            }
            Ok(Beat::Lost(status)) => {
                shared.connectivity.success();
                return Some(status);
            }
            Err(err) => {
                shared.connectivity.failure(
                    &format!("heartbeat for task {} ({})", task.id, task.task_type),
                    &err,
                );
                // Try again soon, but well within the lease.
                let retry = (interval / 3).max(Duration::from_millis(100));
                (instant_after(Instant::now(), retry), None)
            }
        };
        plan.next_beat.insert(key, next);
        *plan.wake = Some(plan.wake.map_or(next, |w| w.min(next)));
        lost
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
