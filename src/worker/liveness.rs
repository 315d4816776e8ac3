//! Whether every role's threads live. Each thread is counted while it runs
//! by a guard taken when it is spawned; a guard dropped by a panic records
//! the death, and the death of a role that cannot be replaced stops the
//! worker (it drains and exits 1, so that the service manager restarts it).
//! The supervisor also ticks, so that a hung one shows. `/health`, `/ready`
//! and the systemd watchdog read this.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::worker::shutdown::{StopHandle, StopReason};

/// How long the supervisor may go without a tick before the worker is hung.
pub const TICK_LIMIT: Duration = Duration::from_secs(10);

/// The worker's roles, each served by one or more threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `taskworker-poller`: claims tasks.
    Poller,
    /// `taskworker-reporter-N`: delivers outcomes.
    Reporter,
    /// `taskworker-supervisor`: deadlines, stuck threads, the memory limit.
    Supervisor,
    /// `taskworker-heartbeat`: extends leases.
    Heartbeat,
    /// The health server's answers.
    Health,
    /// `taskworker-proc-N`: runs handlers; the only role that is replaced.
    Processor,
}

impl Role {
    /// Every role, in the order `/health` lists them.
    pub const ALL: [Role; 6] = [
        Role::Poller,
        Role::Reporter,
        Role::Supervisor,
        Role::Heartbeat,
        Role::Health,
        Role::Processor,
    ];

    /// The role's name, as logs and `/health` say it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Poller => "poller",
            Role::Reporter => "reporter",
            Role::Supervisor => "supervisor",
            Role::Heartbeat => "heartbeat",
            Role::Health => "health",
            Role::Processor => "processor",
        }
    }

    /// Whether a thread of this role that dies is replaced. A processor's
    /// state is one task, which its replacement settles; the others hold
    /// state (claims, undelivered outcomes, timers) that a fresh thread
    /// would not know, so a restart of the whole worker is the safe repair.
    pub fn is_replaced(self) -> bool {
        self == Role::Processor
    }

    /// Why the worker is unfit once this role died, for `/ready`.
    pub fn death(self) -> &'static str {
        match self {
            Role::Poller => "the poller thread died",
            Role::Reporter => "a reporter thread died",
            Role::Supervisor => "the supervisor thread died",
            Role::Heartbeat => "the heartbeat thread died",
            Role::Health => "the health server's thread died",
            Role::Processor => "a processor thread died",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The liveness counts: how many threads of each role run, how many died,
/// and when the supervisor last ticked.
#[derive(Debug)]
pub struct Liveness {
    started: Instant,
    running: [AtomicUsize; Role::ALL.len()],
    deaths: [AtomicUsize; Role::ALL.len()],
    supervisor_tick_ms: AtomicU64,
    /// Stops the worker when a role that is not replaced dies.
    stop: StopHandle,
}

/// Counts its thread out when dropped, whether the thread returned or
/// panicked; on a panic it records the death.
#[derive(Debug)]
pub struct AliveGuard {
    liveness: Arc<Liveness>,
    role: Role,
}

impl Liveness {
    /// Counts that stop the worker through `stop` when a role dies.
    pub fn new(stop: StopHandle) -> Liveness {
        Liveness {
            started: Instant::now(),
            running: Default::default(),
            deaths: Default::default(),
            supervisor_tick_ms: AtomicU64::new(0),
            stop,
        }
    }

    /// Counts a thread of `role` alive until the guard drops. Taken by the
    /// spawning thread and moved into the new one, so that a replacement is
    /// counted before the thread it replaces is counted out.
    pub fn alive(self: &Arc<Self>, role: Role) -> AliveGuard {
        self.running[role.index()].fetch_add(1, Ordering::SeqCst);
        AliveGuard {
            liveness: self.clone(),
            role,
        }
    }

    /// How many threads of `role` run.
    pub fn running(&self, role: Role) -> usize {
        self.running[role.index()].load(Ordering::SeqCst)
    }

    /// How many threads of `role` died by a panic.
    pub fn deaths(&self, role: Role) -> usize {
        self.deaths[role.index()].load(Ordering::SeqCst)
    }

    /// Records that a thread of `role` died. Unless the role is replaced,
    /// the worker stops: it drains and exits 1.
    pub fn died(&self, role: Role) {
        self.deaths[role.index()].fetch_add(1, Ordering::SeqCst);
        if !role.is_replaced() {
            log::error!(
                "{}: draining and exiting 1, so that the service manager restarts the worker",
                role.death()
            );
            self.stop.stop(StopReason::ThreadDied);
        }
    }

    /// The first role that died and is not replaced: the worker is unfit
    /// until it restarts.
    pub fn fatal_death(&self) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|role| !role.is_replaced() && self.deaths(*role) > 0)
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
        self.running(Role::Poller) > 0 && self.running(Role::Reporter) > 0
    }

    /// Whether the supervisor ticked lately.
    pub fn supervisor_alive(&self) -> bool {
        let last = Duration::from_millis(self.supervisor_tick_ms.load(Ordering::SeqCst));
        self.started.elapsed().saturating_sub(last) < TICK_LIMIT
    }

    /// Why the worker's threads are not all at work, or `None` when they
    /// are: a role died, a role has no thread, the supervisor stopped
    /// ticking, or fewer than `wanted` processors take tasks (`working`
    /// leaves out the stuck ones). While the worker drains, threads end on
    /// purpose; only a death counts then.
    pub fn trouble(&self, working: usize, wanted: usize, draining: bool) -> Option<String> {
        if let Some(role) = self.fatal_death() {
            return Some(role.death().into());
        }
        if draining {
            return None;
        }
        for role in [Role::Poller, Role::Reporter, Role::Heartbeat] {
            if self.running(role) == 0 {
                return Some(format!("no {} thread runs", role.name()));
            }
        }
        if !self.supervisor_alive() {
            return Some(format!(
                "the supervisor has not ticked for {} s",
                TICK_LIMIT.as_secs()
            ));
        }
        (working < wanted).then(|| format!("{working} of {wanted} processors take tasks"))
    }
}

impl Drop for AliveGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.liveness.died(self.role);
        }
        self.liveness.running[self.role.index()].fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::shutdown;

    fn liveness() -> (Arc<Liveness>, shutdown::Shutdown) {
        let (shutdown, handle) = shutdown::manual();
        (Arc::new(Liveness::new(handle)), shutdown)
    }

    /// Spawns a thread that panics while it holds a guard of `role`.
    fn die_as(l: &Arc<Liveness>, role: Role) {
        let guard = l.alive(role);
        let _ = std::thread::spawn(move || {
            let _alive = guard;
            panic!("{} dies", role.name());
        })
        .join();
    }

    #[test]
    fn guards_count_threads_out_even_on_panic() {
        let (l, _) = liveness();
        let g1 = l.alive(Role::Poller);
        let second_reporter = l.alive(Role::Reporter);
        drop(l.alive(Role::Reporter));
        assert!(l.poller_and_reporter_alive(), "one reporter of two ended");
        drop(second_reporter);
        assert!(!l.poller_and_reporter_alive());
        drop(g1);
        l.tick();
        assert!(l.supervisor_alive());
        assert_eq!(l.fatal_death(), None, "returning is no death");
    }

    #[test]
    fn the_death_of_a_role_that_is_not_replaced_stops_the_worker() {
        let (l, shutdown) = liveness();
        let _reporter = l.alive(Role::Reporter);
        die_as(&l, Role::Reporter);
        assert_eq!(l.running(Role::Reporter), 1);
        assert_eq!(l.fatal_death(), Some(Role::Reporter));
        assert!(shutdown.is_stopping());
        assert_eq!(shutdown.reason(), Some(StopReason::ThreadDied));
    }

    #[test]
    fn a_processor_death_is_counted_but_does_not_stop_the_worker() {
        let (l, shutdown) = liveness();
        l.died(Role::Processor);
        assert_eq!(l.deaths(Role::Processor), 1);
        assert_eq!(l.fatal_death(), None);
        assert!(!shutdown.is_stopping());
    }

    #[test]
    fn trouble_names_what_is_missing_and_excuses_a_drain_but_not_a_death() {
        let (l, _) = liveness();
        l.tick();
        let _guards: Vec<_> = [Role::Poller, Role::Reporter, Role::Heartbeat]
            .into_iter()
            .map(|r| l.alive(r))
            .collect();
        assert_eq!(l.trouble(2, 2, false), None);
        assert_eq!(
            l.trouble(1, 2, false).as_deref(),
            Some("1 of 2 processors take tasks")
        );
        assert_eq!(l.trouble(0, 2, true), None, "threads end in a drain");
        die_as(&l, Role::Heartbeat);
        assert_eq!(
            l.trouble(2, 2, false).as_deref(),
            Some("the heartbeat thread died")
        );
        assert_eq!(
            l.trouble(2, 2, true).as_deref(),
            Some("the heartbeat thread died")
        );
    }
}
