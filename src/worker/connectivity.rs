//! Whether the task API answers, shared by the poller, the reporters and
//! the heartbeat thread: logs an outage once when it starts and once when it
//! ends, never on every try, and tells `/ready` when the API last answered.
//! It also keeps what `GET /health` said of `API_URL`: a claim's 404 means
//! "no task", so only `/health` can tell a wrong URL from an empty queue.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::bounded::instant_after;
use crate::client::{ApiError, Health};

/// How often `/health` is asked again while it says the URL is wrong, or
/// while it could not tell.
pub const HEALTH_RECHECK: Duration = Duration::from_secs(5);

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
    /// How many outages ended: each is a reason to ask `/health` again.
    comebacks: u64,
    /// Why `API_URL` is not a task API's base URL, while `/health` says so.
    misplaced: Option<String>,
}

/// Shared API reachability.
#[derive(Debug)]
pub struct Connectivity {
    inner: Mutex<Inner>,
    /// An outage ended: the heartbeat thread asks `/health` again.
    came_back: (Sender<()>, Receiver<()>),
}

impl Default for Connectivity {
    fn default() -> Connectivity {
        Connectivity {
            inner: Mutex::new(Inner {
                state: ApiState::Unknown,
                last_ok: None,
                comebacks: 0,
                misplaced: None,
            }),
            came_back: bounded(1),
        }
    }
}

impl Connectivity {
    /// Records an answer that was understood.
    pub fn success(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(inner.state, ApiState::Down | ApiState::Unauthorized) {
            log::info!("task API reachable again");
            inner.comebacks += 1;
            let _ = self.came_back.0.try_send(());
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

    /// Records what `GET {url}/health` said (`url` as logs show it): one
    /// ERROR when it starts saying that no task API is there, one INFO when
    /// it stops.
    pub fn health_checked(&self, url: &str, health: &Health) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match health {
            Health::Found => {
                if inner.misplaced.take().is_some() {
                    log::info!("API_URL {url}: /health answers now; the task API is found");
                }
            }
            Health::Missing(answer) => {
                if inner.misplaced.is_none() {
                    log::error!(
                        "API_URL {url} is not the base URL of a task API: GET {url}/health answered {answer}. \
                         Claims there answer 404, which reads as \"no task\", so no task will run. \
                         Check the path of API_URL: a missing or extra prefix (such as /v1) is the usual cause"
                    );
                }
                inner.misplaced = Some(format!(
                    "API_URL is not the base URL of a task API: GET {url}/health answered {answer}"
                ));
            }
        }
    }

    /// Why `API_URL` is not a task API's base URL, while `/health` says so.
    pub fn misplaced(&self) -> Option<String> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .misplaced
            .clone()
    }

    /// Receives a message when an outage ends.
    pub fn came_back(&self) -> &Receiver<()> {
        &self.came_back.1
    }

    /// How many outages have ended so far.
    pub fn comebacks(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .comebacks
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

/// When `/health` is asked: at the start, after each outage ends, and
/// every [`HEALTH_RECHECK`] while its last answer was not a task API's (or
/// told nothing), so that a fixed URL or a server that learns `/health`
/// clears `/ready` soon. Time is passed in, so this is tested without sockets.
#[derive(Debug, Clone)]
pub struct HealthChecks {
    next: Option<Instant>,
    comebacks: u64,
}

impl HealthChecks {
    /// Checks that begin with one due at `now`.
    pub fn new(now: Instant) -> HealthChecks {
        HealthChecks {
            next: Some(now),
            comebacks: 0,
        }
    }

    /// Whether a check is due at `now`, after `comebacks` outages ended.
    pub fn due(&mut self, now: Instant, comebacks: u64) -> bool {
        if comebacks != self.comebacks {
            self.comebacks = comebacks;
            return true;
        }
        self.next.is_some_and(|at| now >= at)
    }

    /// A check ended at `now`; `found` when it found the task API.
    pub fn checked(&mut self, now: Instant, found: bool) {
        self.next = (!found).then(|| instant_after(now, HEALTH_RECHECK));
    }

    /// When the next timed check is due, if one is.
    pub fn next(&self) -> Option<Instant> {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_asked_at_start_after_outages_and_again_while_missing() {
        let t0 = Instant::now();
        let mut checks = HealthChecks::new(t0);
        assert!(checks.due(t0, 0));
        checks.checked(t0, true);
        assert!(
            !checks.due(t0 + HEALTH_RECHECK * 10, 0),
            "found: no timed check"
        );
        assert!(checks.due(t0, 1), "an outage ended");
        assert!(!checks.due(t0, 1), "once per outage");
        checks.checked(t0, false);
        assert!(!checks.due(t0 + HEALTH_RECHECK / 2, 1));
        assert!(checks.due(t0 + HEALTH_RECHECK, 1));
        assert_eq!(checks.next(), Some(t0 + HEALTH_RECHECK));
    }

    #[test]
    fn a_missing_task_api_is_kept_until_health_finds_it() {
        let c = Connectivity::default();
        let url = "http://127.0.0.1:1/v1";
        c.health_checked(url, &Health::Missing("status 404".into()));
        c.health_checked(url, &Health::Missing("status 404".into()));
        let why = c.misplaced().unwrap();
        assert!(
            why.contains("http://127.0.0.1:1/v1/health answered status 404"),
            "{why}"
        );
        c.success();
        assert!(c.misplaced().is_some(), "a claim's 404 tells nothing");
        c.health_checked(url, &Health::Found);
        assert_eq!(c.misplaced(), None);
    }

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
