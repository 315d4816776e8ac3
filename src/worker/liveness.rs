//! Whether the worker's essential threads live: the poller and reporter say
//! so while they run (a guard counts them out when they end, panics too), and
//! the supervisor ticks. `/health` and the systemd watchdog read this.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the supervisor may go without a tick before the worker is hung.
pub const TICK_LIMIT: Duration = Duration::from_secs(10);

/// The liveness counts: how many threads of each role run (there may be
/// more than one reporter).
#[derive(Debug)]
pub struct Liveness {
    started: Instant,
    poller: AtomicUsize,
    reporter: AtomicUsize,
    supervisor_tick_ms: AtomicU64,
}

impl Default for Liveness {
    fn default() -> Liveness {
        Liveness {
            started: Instant::now(),
            poller: AtomicUsize::new(0),
            reporter: AtomicUsize::new(0),
            supervisor_tick_ms: AtomicU64::new(0),
        }
    }
}

/// Counts its thread out when dropped, whether the thread returned or panicked.
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
    fn count(&self, which: Thread) -> &AtomicUsize {
        match which {
            Thread::Poller => &self.poller,
            Thread::Reporter => &self.reporter,
        }
    }

    /// Counts a thread of role `which` alive until the guard drops.
    pub fn alive(self: &Arc<Self>, which: Thread) -> AliveGuard {
        self.count(which).fetch_add(1, Ordering::SeqCst);
        AliveGuard {
            liveness: self.clone(),
            which,
        }
    }

    /// Records a supervisor tick.
    pub fn tick(&self) {
        self.supervisor_tick_ms.store(
            crate::bounded::millis(self.started.elapsed()),
            Ordering::SeqCst,
        );
    }

    /// Whether the poller and at least one reporter run.
    pub fn poller_and_reporter_alive(&self) -> bool {
        self.poller.load(Ordering::SeqCst) > 0 && self.reporter.load(Ordering::SeqCst) > 0
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
            .count(self.which)
            .fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_threads_out_even_on_panic() {
        let l = Arc::new(Liveness::default());
        let g1 = l.alive(Thread::Poller);
        let second_reporter = l.alive(Thread::Reporter);
        drop(l.alive(Thread::Reporter));
        assert!(l.poller_and_reporter_alive(), "one reporter of two ended");
        drop(second_reporter);
        let l2 = l.clone();
        let _ = std::thread::spawn(move || {
            let _g = l2.alive(Thread::Reporter);
            assert!(l2.poller_and_reporter_alive());
            panic!("reporter dies");
        })
        .join();
        assert!(!l.poller_and_reporter_alive());
        drop(g1);
        l.tick();
        assert!(l.supervisor_alive());
    }
}
