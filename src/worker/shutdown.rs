//! Shutdown and quiet mode: the signal thread, the stop channel whose
//! disconnection wakes every waiting thread, the quiet switch, and the exit
//! that does not wait.
//!
//! First SIGTERM/SIGINT: drain. Second: exit without waiting, with 143/130:
//! every handler's process group is killed, each task abandoned is logged
//! and, within [`ABANDON_BOUND`], handed back failed `SHUTDOWN` (retryable)
//! or kept in the spool for the next start. A third signal exits at once
//! inside the signal handler, so that works even if every thread is stuck.
//! SIGTSTP: quiet (stop claiming, keep running). SIGCONT: claim again.
//! SIGHUP: reload the configuration (ignored once a drain began); a burst
//! of them is one pending reload, so none is lost and none piles up.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use signal_hook::consts::{SIGCONT, SIGHUP, SIGINT, SIGTERM, SIGTSTP};

use crate::bounded::instant_after;
use crate::client::{Delivery, ReportKind};
use crate::context::CancelReason;
use crate::error::{error_type, Error, TaskError};
use crate::handlers::process_group;
use crate::worker::outcome::Outcome;
use crate::worker::WorkerState;

/// How long an exit that does not wait tries to hand abandoned tasks back.
pub const ABANDON_BOUND: Duration = Duration::from_secs(1);
/// What the spool may take beyond that before the process exits anyway.
const EXIT_SLACK: Duration = Duration::from_millis(500);

/// Why the worker is stopping; it picks the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A signal or the owner of the worker asked: exit 0 after the drain.
    Requested,
    /// RSS went over `MEMORY_LIMIT`: exit 75 so that systemd restarts us.
    MemoryLimit,
    /// A thread that cannot be replaced died: exit 1, an unexpected fatal
    /// error, so that systemd restarts us.
    ThreadDied,
}

impl StopReason {
    /// The exit code of a worker stopped for this reason, after its drain.
    pub fn exit_code(self) -> i32 {
        match self {
            StopReason::Requested => 0,
            StopReason::MemoryLimit => 75,
            StopReason::ThreadDied => 1,
        }
    }
}

#[derive(Debug)]
struct State {
    stop_tx: Mutex<Option<Sender<()>>>,
    reason: AtomicU8,
    quiet: AtomicBool,
    wake_tx: Sender<()>,
    /// Holds one message while a reload is asked and not yet begun: a
    /// request during a reload is kept for one more after it.
    reload_tx: Sender<()>,
    /// The running worker, for an exit that does not wait; weak, since the
    /// worker's state holds this one.
    worker: Mutex<Weak<WorkerState>>,
    /// The exit code of an exit without waiting once one began, else 0.
    exit_code: AtomicI32,
    /// Dropped when the exit without waiting has done its work: the
    /// disconnection wakes the owner of the worker, who exits with its code.
    exit_done_tx: Mutex<Option<Sender<()>>>,
    exit_done_rx: Receiver<()>,
}

impl State {
    fn is_stopping(&self) -> bool {
        self.stop_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}

/// The waiting side: threads `select!` on [`Shutdown::stopped`] and [`Shutdown::woken`].
#[derive(Debug, Clone)]
pub struct Shutdown {
    state: Arc<State>,
    stop_rx: Receiver<()>,
    wake_rx: Receiver<()>,
    reload_rx: Receiver<()>,
}

/// The asking side: stops the worker or switches quiet mode.
#[derive(Debug, Clone)]
pub struct StopHandle {
    state: Arc<State>,
}

/// A new shutdown pair with no signal attached (library use, demo, tests).
pub fn manual() -> (Shutdown, StopHandle) {
    let (stop_tx, stop_rx) = bounded(0);
    let (wake_tx, wake_rx) = bounded(1);
    let (reload_tx, reload_rx) = bounded(1);
    let (exit_done_tx, exit_done_rx) = bounded(0);
    let state = Arc::new(State {
        stop_tx: Mutex::new(Some(stop_tx)),
        reason: AtomicU8::new(0),
        quiet: AtomicBool::new(false),
        wake_tx,
        reload_tx,
        worker: Mutex::new(Weak::new()),
        exit_code: AtomicI32::new(0),
        exit_done_tx: Mutex::new(Some(exit_done_tx)),
        exit_done_rx,
    });
    (
        Shutdown {
            state: state.clone(),
            stop_rx,
            wake_rx,
            reload_rx,
        },
        StopHandle { state },
    )
}

/// Installs the signal handlers and the signal thread. Call before any other
/// thread starts, so that no thread inherits a default disposition window.
pub fn install_signals() -> Result<Shutdown, Error> {
    let (shutdown, handle) = manual();
    // Set by the signal thread on the second signal, so that a third one
    // exits inside the handler even if the exit without waiting hangs.
    let armed = Arc::new(AtomicBool::new(false));
    let register =
        |sig, code| signal_hook::flag::register_conditional_shutdown(sig, code, armed.clone());
    register(SIGTERM, 143)
        .and_then(|_| register(SIGINT, 130))
        .map_err(|e| Error::io("installing signal handlers", e))?;
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGTSTP, SIGCONT, SIGHUP])
            .map_err(|e| Error::io("installing signal handlers", e))?;
    std::thread::Builder::new()
        .name("taskworker-signals".into())
        .spawn(move || {
            let mut draining = false;
            for sig in signals.forever() {
                match sig {
                    SIGTERM | SIGINT if draining => {
                        armed.store(true, Ordering::SeqCst);
                        exit_without_waiting(&handle.state, sig);
                    }
                    SIGTERM | SIGINT => {
                        draining = true;
                        log::info!(
                            "signal {}: draining (a second one exits at once)",
                            signal_name(sig)
                        );
                        handle.stop(StopReason::Requested);
                    }
                    SIGTSTP => {
                        log::info!("SIGTSTP: quiet, no new claims until SIGCONT");
                        handle.set_quiet(true);
                    }
                    SIGCONT => {
                        if handle.is_quiet() {
                            log::info!("SIGCONT: claiming again");
                        }
                        handle.set_quiet(false);
                    }
                    SIGHUP if draining || handle.state.is_stopping() => {
                        log::info!("SIGHUP: ignored, the worker is draining");
                    }
                    SIGHUP => {
                        log::info!("SIGHUP: reloading the configuration");
                        handle.reload();
                    }
                    _ => {}
                }
            }
        })
        .map_err(|e| Error::io("starting the signal thread", e))?;
    Ok(shutdown)
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "signal",
    }
}

/// The second signal: kills every handler's process group, hands the tasks
/// in flight back within [`ABANDON_BOUND`] (see [`abandon`]), and exits
/// with 128 + `sig`, whatever is still under way by then.
fn exit_without_waiting(state: &State, sig: i32) -> ! {
    let code = 128 + sig;
    // First, so that a drain that ends meanwhile does not exit 0 under us.
    state.exit_code.store(code, Ordering::SeqCst);
    let deadline = instant_after(Instant::now(), ABANDON_BOUND);
    log::warn!(
        "second {}: exiting now ({code}) without waiting for running tasks",
        signal_name(sig)
    );
    let worker = state
        .worker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .upgrade();
    // On its own thread, so that a lock held by a stuck thread cannot keep
    // the process from exiting.
    let (done_tx, done_rx) = bounded::<()>(1);
    let abandoning = std::thread::Builder::new()
        .name("taskworker-abandon".into())
        .spawn(move || {
            match worker {
                Some(worker) => abandon(&worker, deadline),
                None => {
                    process_group::kill_all();
                }
            }
            let _ = done_tx.send(());
        });
    if abandoning.is_ok() {
        let _ = done_rx.recv_deadline(instant_after(deadline, EXIT_SLACK));
    }
    state
        .exit_done_tx
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    log::logger().flush();
    std::process::exit(code)
}

/// Abandons every task in flight for an exit that does not wait: settles
/// each (so no processor reports the kill as its own outcome), kills every
/// handler's process group, logs each task, and tries to hand each back
/// failed `SHUTDOWN`, retryable, until `deadline`. What could not be
/// delivered by then is kept in the spool, when there is one, for the next
/// start; without one the task goes back when its lease runs out.
///
/// The spool is written after the sends, not before as for other outcomes:
/// a "sent" mark could not be made durable in time, and every outcome sent
/// here would be sent again by the next start.
pub(crate) fn abandon(shared: &WorkerState, deadline: Instant) {
    let err = TaskError::retryable(
        "worker stopped without waiting (second signal)",
        error_type::SHUTDOWN,
    );
    let mut outcomes = Vec::new();
    for entry in shared.inflight.unsettled() {
        if shared.inflight.settle_with(&entry, || {}) {
            entry.ctx.cancel.cancel(CancelReason::Shutdown);
            let task = &entry.task;
            log::warn!(
                "task {} ({}): abandoned by the exit, its process group killed",
                task.id,
                task.task_type
            );
            outcomes.push(Outcome::failed(
                &task.id,
                &task.task_type,
                &err,
                &shared.worker_id,
                1,
                entry.started.elapsed(),
            ));
        }
    }
    process_group::kill_all();
    let (sent_tx, sent_rx) = unbounded();
    let mut waiting = 0;
    for (i, outcome) in outcomes.iter().enumerate() {
        let (client, sent_tx) = (shared.client.clone(), sent_tx.clone());
        let (id, body) = (outcome.task_id.clone(), outcome.body.clone());
        let timeout = deadline.saturating_duration_since(Instant::now());
        let sending = std::thread::Builder::new()
            .name("taskworker-hand-back".into())
            .spawn(move || {
                let answer = client.report_within(&id, ReportKind::Fail, &body, timeout);
                let _ = sent_tx.send((i, answer));
            });
        waiting += usize::from(sending.is_ok());
    }
    let mut delivered = vec![false; outcomes.len()];
    while waiting > 0 {
        let Ok((i, answer)) = sent_rx.recv_deadline(deadline) else {
            break;
        };
        waiting -= 1;
        let task_id = &outcomes[i].task_id;
        match answer {
            Ok(Delivery::Delivered) => {
                delivered[i] = true;
                log::info!("task {task_id}: handed back, failed SHUTDOWN (retryable)");
            }
            Ok(Delivery::Gone(status)) => {
                delivered[i] = true;
                log::info!("task {task_id}: no longer ours (the server answered {status})");
            }
            Err(e) => log::warn!("task {task_id}: could not be handed back: {e}"),
        }
    }
    let left: Vec<&Outcome> = outcomes
        .iter()
        .zip(&delivered)
        .filter_map(|(o, &done)| (!done).then_some(o))
        .collect();
    match &shared.spool {
        Some(spool) if !left.is_empty() => {
            for outcome in &left {
                spool.append(outcome);
                log::warn!(
                    "task {}: kept in the spool; the next start reports it",
                    outcome.task_id
                );
            }
            spool.sync();
        }
        _ => {
            for outcome in left {
                log::warn!(
                    "task {}: not handed back and no STATE_DIR to keep it; the server gives it out again when its lease runs out",
                    outcome.task_id
                );
            }
        }
    }
}

impl Shutdown {
    /// Points an exit that does not wait (the second signal) at the running
    /// worker, whose tasks it abandons.
    pub(crate) fn set_worker(&self, worker: &Arc<WorkerState>) {
        *self.state.worker.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(worker);
    }

    /// The exit code of an exit without waiting (the second signal), once
    /// one began; waits (bounded) until it has done its work, so that the
    /// owner of the worker exits with that code and not before.
    pub fn exit_without_waiting_code(&self) -> Option<i32> {
        let code = self.state.exit_code.load(Ordering::SeqCst);
        if code == 0 {
            return None;
        }
        let _ = self
            .state
            .exit_done_rx
            .recv_timeout(ABANDON_BOUND.saturating_add(EXIT_SLACK));
        Some(code)
    }

    /// Disconnects (so `recv` returns `Err` at once) when the stop is asked.
    pub fn stopped(&self) -> &Receiver<()> {
        &self.stop_rx
    }

    /// Receives a message when quiet mode changes, or a reload changed
    /// what the poller claims.
    pub fn woken(&self) -> &Receiver<()> {
        &self.wake_rx
    }

    /// Receives a message when a reload is asked (SIGHUP).
    pub fn reloads(&self) -> &Receiver<()> {
        &self.reload_rx
    }

    /// Wakes the threads that wait on [`Shutdown::woken`], as a change of
    /// quiet mode does: a reload changed what they act on.
    pub(crate) fn wake(&self) {
        let _ = self.state.wake_tx.try_send(());
    }

    /// Whether a stop was asked.
    pub fn is_stopping(&self) -> bool {
        self.state.is_stopping()
    }

    /// Whether claiming is paused (SIGTSTP).
    pub fn is_quiet(&self) -> bool {
        self.state.quiet.load(Ordering::SeqCst)
    }

    /// Why the stop was asked, once it was.
    pub fn reason(&self) -> Option<StopReason> {
        match self.state.reason.load(Ordering::SeqCst) {
            1 => Some(StopReason::Requested),
            2 => Some(StopReason::MemoryLimit),
            3 => Some(StopReason::ThreadDied),
            _ => None,
        }
    }

    /// A handle to ask for the stop from inside the worker (memory limit).
    pub fn handle(&self) -> StopHandle {
        StopHandle {
            state: self.state.clone(),
        }
    }
}

impl StopHandle {
    /// Asks every thread to stop; the first reason wins.
    pub fn stop(&self, reason: StopReason) {
        let code = match reason {
            StopReason::Requested => 1,
            StopReason::MemoryLimit => 2,
            StopReason::ThreadDied => 3,
        };
        let _ = self
            .state
            .reason
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
        // Dropping the only sender disconnects the channel and wakes every select!.
        self.state
            .stop_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Pauses or resumes claiming.
    pub fn set_quiet(&self, quiet: bool) {
        self.state.quiet.store(quiet, Ordering::SeqCst);
        let _ = self.state.wake_tx.try_send(());
    }

    /// Whether claiming is paused.
    pub fn is_quiet(&self) -> bool {
        self.state.quiet.load(Ordering::SeqCst)
    }

    /// Asks the worker to read its configuration again (as SIGHUP does).
    /// Requests made while one is pending are one request; one made while
    /// a reload runs is kept for another after it. A draining worker
    /// ignores it.
    pub fn reload(&self) {
        let _ = self.state.reload_tx.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stop_wakes_waiters_and_keeps_first_reason() {
        let (shutdown, handle) = manual();
        let waiter = shutdown.clone();
        let t = std::thread::spawn(move || waiter.stopped().recv_timeout(Duration::from_secs(10)));
        assert!(!shutdown.is_stopping());
        handle.stop(StopReason::MemoryLimit);
        handle.stop(StopReason::Requested);
        assert!(t.join().unwrap().is_err(), "disconnected, not timed out");
        assert!(shutdown.is_stopping());
        assert_eq!(shutdown.reason(), Some(StopReason::MemoryLimit));
    }

    #[test]
    fn a_burst_of_reload_requests_is_one_pending_reload() {
        let (shutdown, handle) = manual();
        for _ in 0..5 {
            handle.reload();
        }
        assert!(shutdown.reloads().try_recv().is_ok());
        assert!(shutdown.reloads().try_recv().is_err(), "one, not five");
        // One asked while a reload runs is kept for the next.
        handle.reload();
        assert!(shutdown.reloads().try_recv().is_ok());
    }

    #[test]
    fn quiet_toggles_and_wakes() {
        let (shutdown, handle) = manual();
        handle.set_quiet(true);
        assert!(shutdown.is_quiet());
        assert!(shutdown.woken().try_recv().is_ok());
        handle.set_quiet(false);
        assert!(!shutdown.is_quiet());
    }
}
