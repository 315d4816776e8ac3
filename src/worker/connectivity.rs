//! Whether the task API answers, shared by the poller, the reporters and
//! the heartbeat thread: logs an outage once when it starts and once when it
//! ends, never on every try, and tells `/ready` when the API last answered.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::client::ApiError;

/// What the worker last learned of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiState {
    /// No answer yet.
    Unknown,
    /// It answered.
    Up,
    /// It could not be reached or failed on its side.
    Down,
    /// It refused our credentials (401/403).
    Unauthorized,
}

#[derive(Debug)]
struct Inner {
    state: ApiState,
    last_ok: Option<Instant>,
}

/// Shared API reachability.
#[derive(Debug)]
pub struct Connectivity {
    inner: Mutex<Inner>,
}

impl Default for Connectivity {
    fn default() -> Connectivity {
        Connectivity {
            inner: Mutex::new(Inner {
                state: ApiState::Unknown,
                last_ok: None,
            }),
        }
    }
}

impl Connectivity {
    /// Records an answer that was understood.
    pub fn success(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(inner.state, ApiState::Down | ApiState::Unauthorized) {
            log::info!("task API reachable again");
        }
        inner.state = ApiState::Up;
        inner.last_ok = Some(Instant::now());
    }

    /// Records a failed call; `what` names it (`claim`, `complete task_1`).
    /// Outages and refused credentials are logged only when they begin.
    pub fn failure(&self, what: &str, err: &ApiError) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let next = if err.is_auth() {
            ApiState::Unauthorized
        } else if err.is_outage() {
            ApiState::Down
        } else {
            // Other 4xx, malformed or oversized answers: the server is up but
            // this call went wrong. Worth a line each (callers back off).
            log::warn!("{what}: {err}");
            return;
        };
        if inner.state != next {
            match next {
                ApiState::Unauthorized => {
                    log::error!("{what}: task API refused the credentials ({err}); check API_KEY")
                }
                _ => log::warn!("task API unreachable ({what}: {err}); retrying with backoff"),
            }
        }
        inner.state = next;
    }

    /// The current state.
    pub fn state(&self) -> ApiState {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).state
    }

    /// How long ago the API last answered; `None` if it never did.
    pub fn since_last_ok(&self) -> Option<Duration> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_ok
            .map(|t| t.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_state_changes() {
        let c = Connectivity::default();
        assert_eq!(c.state(), ApiState::Unknown);
        c.failure("claim", &ApiError::Transport("refused".into()));
        assert_eq!(c.state(), ApiState::Down);
        c.failure(
            "claim",
            &ApiError::Status {
                status: 401,
                retry_after: None,
                body: String::new(),
            },
        );
        assert_eq!(c.state(), ApiState::Unauthorized);
        c.success();
        assert_eq!(c.state(), ApiState::Up);
        assert!(c.since_last_ok().unwrap() < Duration::from_secs(5));
        c.failure(
            "claim",
            &ApiError::Status {
                status: 400,
                retry_after: None,
                body: String::new(),
            },
        );
        assert_eq!(
            c.state(),
            ApiState::Up,
            "a bad request does not mean the API is down"
        );
    }
}
