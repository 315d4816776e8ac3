//! The connections to Redis: a small pool, and whether Redis is reachable,
//! with a reconnect backoff and one log line per change of state.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisError, RedisResult};

use crate::server::store::StoreError;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may take: scripts are short, so this is an outage.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// The first wait before reconnecting after an outage; doubles each time.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between reconnects, and the longest `Retry-After`.
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Idle connections kept for reuse; more are opened when more requests run
/// at once, and closed after.
const POOL: usize = 16;

/// Reachable, or down since when and why.
#[derive(Debug, Default)]
struct State {
    down: Option<Down>,
}

#[derive(Debug)]
struct Down {
    why: String,
    next_try: Instant,
    wait: Duration,
}

/// Connections to one Redis, shared by every request of a server.
pub struct Link {
    client: Client,
    /// `redis://host:port/db`, never with the password: for logs and `/health`.
    pub name: String,
    idle: Mutex<Vec<Connection>>,
    state: Mutex<State>,
}

impl Link {
    /// A link to `client`; connects on first use.
    pub fn new(client: Client, name: String) -> Link {
        Link {
            client,
            name,
            idle: Mutex::new(Vec::new()),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection with the command timeouts set.
    pub fn connect(&self) -> RedisResult<Connection> {
        let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        con.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        Ok(con)
    }

    /// Why Redis is unreachable, when it is.
    pub fn failure(&self) -> Option<String> {
        self.state()
            .down
            .as_ref()
            .map(|d| format!("redis store {}: {}", self.name, d.why))
    }

    /// Runs `f` on a connection. While Redis is down, answers at once until
    /// the next reconnect is due; a call that fails for the connection marks
    /// it down. Never retried here: a script that timed out may have run.
    pub fn run<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        if let Some(refused) = self.refuse_while_down() {
            return Err(refused);
        }
        let pooled = self.idle().pop();
        let mut con = match pooled.map_or_else(|| self.connect(), Ok) {
            Ok(con) => con,
            Err(e) => return Err(self.went_down(&e)),
        };
        match f(&mut con) {
            Ok(v) => {
                self.came_up();
                let mut idle = self.idle();
                if idle.len() < POOL {
                    idle.push(con);
                }
                Ok(v)
            }
            Err(e) if is_outage(&e) => {
                // The other idle connections are most likely as dead as this one.
                self.idle().clear();
                Err(self.went_down(&e))
            }
            Err(e) => {
                self.idle().push(con);
                Err(StoreError::NotDurable(format!(
                    "redis store {}: {e}",
                    self.name
                )))
            }
        }
    }

    fn refuse_while_down(&self) -> Option<StoreError> {
        let state = self.state();
        let down = state.down.as_ref()?;
        let now = Instant::now();
        (now < down.next_try).then(|| StoreError::Unavailable {
            why: format!("redis store {}: {}", self.name, down.why),
            retry_after: down
                .next_try
                .saturating_duration_since(now)
                .max(Duration::from_secs(1)),
        })
    }

    fn went_down(&self, e: &RedisError) -> StoreError {
        let mut state = self.state();
        let why = e.to_string();
        let wait = match &state.down {
            None => {
                log::error!("redis store {}: unreachable: {why}", self.name);
                RECONNECT_FIRST
            }
            Some(d) => d.wait.saturating_mul(2).min(RECONNECT_MAX),
        };
        state.down = Some(Down {
            why: why.clone(),
            next_try: crate::bounded::instant_after(Instant::now(), wait),
            wait,
        });
        StoreError::Unavailable {
            why: format!("redis store {}: {why}", self.name),
            retry_after: wait.max(Duration::from_secs(1)),
        }
    }

    fn came_up(&self) {
        let mut state = self.state();
        if state.down.take().is_some() {
            log::info!("redis store {}: reachable again", self.name);
        }
    }
}

/// Whether an error means Redis (or the way to it) is down, rather than a
/// refusal of one command.
fn is_outage(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("LOADING" | "MASTERDOWN" | "READONLY" | "TRYAGAIN")
        )
}
