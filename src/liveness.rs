//! Whether the worker's essential threads live: the poller and reporter say
//! so while they run (a guard clears the flag when they end, panics too), and
//! the supervisor ticks. `/health` and the systemd watchdog read this.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the supervisor may go without a tick before the worker is hung.
pub const TICK_LIMIT: Duration = Duration::from_secs(10);

/// The liveness flags.
#[derive(Debug)]
pub struct Liveness {
    started: Instant,
    poller: AtomicBool,
    reporter: AtomicBool,
    supervisor_tick_ms: AtomicU64,
}

impl Default for Liveness {
    fn default() -> Liveness {
        Liveness {
            started: Instant::now(),
            poller: AtomicBool::new(false),
            reporter: AtomicBool::new(false),
            supervisor_tick_ms: AtomicU64::new(0),
        }
    }
}

/// Clears its flag when dropped, whether the thread returned or panicked.
#[derive(Debug)]
pub struct AliveGuard {
    liveness: Arc<Liveness>,
    which: Thread,
}

/// The threads whose life is tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thread {
    /// `taskworker-poller`.
    Poller,
    /// `taskworker-reporter`.
    Reporter,
}

impl Liveness {
    fn flag(&self, which: Thread) -> &AtomicBool {
        match which {
            Thread::Poller => &self.poller,
            Thread::Reporter => &self.reporter,
        }
    }

    /// Marks `which` alive until the guard drops.
    pub fn alive(self: &Arc<Self>, which: Thread) -> AliveGuard {
        self.flag(which).store(true, Ordering::SeqCst);
        AliveGuard {
            liveness: self.clone(),
            which,
        }
    }

    /// Records a supervisor tick.
    pub fn tick(&self) {
        self.supervisor_tick_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::SeqCst);
    }

    /// Whether the poller and reporter run.
    pub fn workers_alive(&self) -> bool {
        self.poller.load(Ordering::SeqCst) && self.reporter.load(Ordering::SeqCst)
    }

    /// Whether the supervisor ticked lately.
    pub fn supervisor_alive(&self) -> bool {
        let last = Duration::from_millis(self.supervisor_tick_ms.load(Ordering::SeqCst));
        self.started.elapsed().saturating_sub(last) < TICK_LIMIT
    }
}

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.liveness
            .flag(self.which)
            .store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_clear_flags_even_on_panic() {
        let l = Arc::new(Liveness::default());
        let g1 = l.alive(Thread::Poller);
        let l2 = l.clone();
        let _ = std::thread::spawn(move || {
            let _g = l2.alive(Thread::Reporter);
            assert!(l2.workers_alive());
            panic!("reporter dies");
        })
        .join();
        assert!(!l.workers_alive());
        drop(g1);
        l.tick();
        assert!(l.supervisor_alive());
    }
}
