//! What a handler gets besides its task: the deadline, the attempt, and a
//! cancel token that the supervisor trips on timeout, lease loss or shutdown.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Why a running task was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// Its deadline passed.
    Timeout,
    /// The server took the task back (heartbeat answered 404/409/410).
    LeaseLost,
    /// The worker is shutting down and the grace period is over.
    Shutdown,
}

/// A one-shot, shareable cancel flag that sleepers can wait on.
///
/// A condition variable rather than an `AtomicBool`, so that a handler
/// waiting on it wakes at once instead of polling.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    state: Arc<(Mutex<Option<CancelReason>>, Condvar)>,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels with `reason`; the first reason wins. Wakes every waiter.
    pub fn cancel(&self, reason: CancelReason) {
        let (lock, cvar) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_none() {
            *state = Some(reason);
        }
        cvar.notify_all();
    }

    /// The reason, once cancelled.
    pub fn reason(&self) -> Option<CancelReason> {
        *self.state.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` for a cancel; returns its reason, or `None` when
    /// the time ran out first.
    pub fn wait(&self, timeout: Duration) -> Option<CancelReason> {
        let (lock, cvar) = &*self.state;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cvar
            .wait_timeout_while(guard, timeout, |reason| reason.is_none())
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

/// The run-time context of one task execution.
#[derive(Debug, Clone)]
pub struct Context {
    /// When the task must be done (`TIMEOUT` or the task's `timeout_seconds`).
    pub deadline: Instant,
    /// The server's delivery count (1 when the server does not say); the
    /// same for every local try of one delivery.
    pub attempt: u32,
    /// The try within this delivery: 1, then 2.. for local retries.
    pub local_try: u32,
    /// This worker's id, as sent to the server.
    pub worker_id: Arc<str>,
    /// Tripped on timeout, lease loss or shutdown.
    pub cancel: CancelToken,
}

impl Context {
    /// A context with a deadline `timeout` from now.
    pub fn new(timeout: Duration, attempt: u32, worker_id: Arc<str>) -> Context {
        Context {
            deadline: crate::bounded::instant_after(Instant::now(), timeout),
            attempt,
            local_try: 1,
            worker_id,
            cancel: CancelToken::new(),
        }
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Whether the task was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.reason().is_some()
    }

    /// Sleeps for `d` unless cancelled first (then returns the reason) or the
    /// deadline passes first (then `Timeout`).
    pub fn sleep(&self, d: Duration) -> Result<(), CancelReason> {
        let left = self.remaining();
        match self.cancel.wait(d.min(left)) {
            Some(reason) => Err(reason),
            None if d > left => Err(CancelReason::Timeout),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_wakes_a_sleeper_at_once() {
        let ctx = Context::new(Duration::from_secs(60), 1, "w".into());
        let token = ctx.cancel.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            token.cancel(CancelReason::LeaseLost);
        });
        let start = Instant::now();
        assert_eq!(
            ctx.sleep(Duration::from_secs(30)),
            Err(CancelReason::LeaseLost)
        );
        assert!(start.elapsed() < Duration::from_secs(10));
        t.join().unwrap();
    }

    #[test]
    fn first_reason_wins_and_deadline_ends_sleep() {
        let token = CancelToken::new();
        token.cancel(CancelReason::Timeout);
        token.cancel(CancelReason::Shutdown);
        assert_eq!(token.reason(), Some(CancelReason::Timeout));
        let ctx = Context::new(Duration::from_millis(5), 1, "w".into());
        assert_eq!(
            ctx.sleep(Duration::from_secs(5)),
            Err(CancelReason::Timeout)
        );
        let ctx = Context::new(Duration::from_secs(5), 1, "w".into());
        assert_eq!(ctx.sleep(Duration::from_millis(1)), Ok(()));
    }
}
