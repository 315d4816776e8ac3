//! Shutdown and quiet mode: the signal thread, the stop channel whose
//! disconnection wakes every waiting thread, and the quiet switch.
//!
//! First SIGTERM/SIGINT: drain. Second: exit at once with 143/130 (done inside
//! the signal handler, so it works even if every thread is stuck).
//! SIGTSTP: quiet (stop claiming, keep running). SIGCONT: claim again.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{bounded, Receiver, Sender};
use signal_hook::consts::{SIGCONT, SIGINT, SIGTERM, SIGTSTP};

use crate::error::Error;

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
}

/// The waiting side: threads `select!` on [`Shutdown::stopped`] and [`Shutdown::woken`].
#[derive(Debug, Clone)]
pub struct Shutdown {
    state: Arc<State>,
    stop_rx: Receiver<()>,
    wake_rx: Receiver<()>,
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
    let state = Arc::new(State {
        stop_tx: Mutex::new(Some(stop_tx)),
        reason: AtomicU8::new(0),
        quiet: AtomicBool::new(false),
        wake_tx,
    });
    (
        Shutdown {
            state: state.clone(),
            stop_rx,
            wake_rx,
        },
        StopHandle { state },
    )
}

/// Installs the signal handlers and the signal thread. Call before any other
/// thread starts, so that no thread inherits a default disposition window.
pub fn install_signals() -> Result<Shutdown, Error> {
    let (shutdown, handle) = manual();
    let armed = Arc::new(AtomicBool::new(false));
    let register = |sig, code| -> std::io::Result<()> {
        // The exit must be registered before the flag: on the first signal the
        // flag is still false when the exit action runs, on the second it is set.
        signal_hook::flag::register_conditional_shutdown(sig, code, armed.clone())?;
        signal_hook::flag::register(sig, armed.clone())?;
        Ok(())
    };
    register(SIGTERM, 143)
        .and_then(|()| register(SIGINT, 130))
        .map_err(|e| Error::io("installing signal handlers", e))?;
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGTSTP, SIGCONT])
        .map_err(|e| Error::io("installing signal handlers", e))?;
    std::thread::Builder::new()
        .name("taskworker-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                match sig {
                    SIGTERM | SIGINT => {
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

impl Shutdown {
    /// Disconnects (so `recv` returns `Err` at once) when the stop is asked.
    pub fn stopped(&self) -> &Receiver<()> {
        &self.stop_rx
    }

    /// Receives a message when quiet mode changes.
    pub fn woken(&self) -> &Receiver<()> {
        &self.wake_rx
    }

    /// Whether a stop was asked.
    pub fn is_stopping(&self) -> bool {
        self.state
            .stop_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
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
    fn quiet_toggles_and_wakes() {
        let (shutdown, handle) = manual();
        handle.set_quiet(true);
        assert!(shutdown.is_quiet());
        assert!(shutdown.woken().try_recv().is_ok());
        handle.set_quiet(false);
        assert!(!shutdown.is_quiet());
    }
}
