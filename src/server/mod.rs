//! The reference task-queue server of the protocol in packaging/PROTOCOL.md: [`Server`] and its [`ServerConfig`].
//!
//! - [`queue`]: the state machine (priorities, leases, retries, claim ids).
//! - [`record`]: one task as kept, and its wire views.
//! - [`waiters`]: parked long polls, held without a thread.
//! - [`store`]: the boundary every route goes through, and its stores:
//!   memory, journal (`--data`) and Redis (`--store`).
//! - [`routes`], [`decode`], [`report`] (batch reports), [`metrics`]: the HTTP API, served by the crate's
//!   listener, which checks the key from the head before reading a body.
//! - [`ui`]: the dashboard at `/ui`, with its own login.
//! - [`admin`], [`admin_routes`], [`admin_workers`], [`admin_throughput`]:
//!   what operators and the dashboard read and do: counts, listings with a
//!   cursor, actions on tasks and types, the workers seen, throughput.
//! - [`clock`]: time for leases and timestamps.
//! - [`command`]: `taskworker serve`.

pub(crate) mod admin;
pub(crate) mod admin_routes;
pub(crate) mod admin_throughput;
pub(crate) mod admin_workers;
pub(crate) mod clock;
pub(crate) mod command;
pub(crate) mod decode;
pub(crate) mod metrics;
pub(crate) mod queue;
pub(crate) mod record;
pub(crate) mod report;
pub(crate) mod routes;
pub(crate) mod store;
pub(crate) mod ui;
pub(crate) mod waiters;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use self::routes::Routes;
use self::store::Store;
use crate::error::Error;
use crate::listener::limits::{self, Limits};
use crate::listener::Listener;

/// How a server runs; build with `ServerConfig { ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: String,
    /// Journal file for durability; in memory when `None`.
    pub data: Option<PathBuf>,
    /// `redis://[user:pass@]host:port/db` or `rediss://...` (TLS) of a Redis
    /// or Valkey that holds the queue, shared by every server given the same
    /// URL and prefix.
    pub store: Option<String>,
    /// The password for `store` when its URL has none (`REDIS_PASSWORD`).
    pub store_password: Option<String>,
    /// The name of the queue in that store, so several share one Redis.
    pub store_prefix: String,
    /// Bearer token every request but `/health` must carry.
    pub api_key: Option<String>,
    /// How long a claim's lease lasts.
    pub lease: Duration,
    /// Serve only the core protocol (no batches, long polls, heartbeats, ...).
    pub core_only: bool,
    /// Deliveries allowed for a task that does not say.
    pub max_attempts: u32,
    /// Wait before the first server-side retry; doubles with each attempt.
    pub retry_backoff: Duration,
    /// The longest wait before a retry.
    pub retry_backoff_max: Duration,
    /// How long a completed or failed task is kept (shown, and in the
    /// journal) before it is dropped.
    pub retain: Duration,
    /// Connections served at once; a parked long poll holds one, and no thread.
    pub max_connections: usize,
    /// Threads that answer requests (parked long polls take none).
    pub handler_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:0".into(),
            data: None,
            store: None,
            store_password: None,
            store_prefix: "taskworker".into(),
            api_key: None,
            // The worker heartbeats every third of the lease: 30 s survives
            // two lost heartbeats, and a crashed worker's task is back in 30 s.
            lease: Duration::from_secs(30),
            core_only: false,
            max_attempts: 3,
            retry_backoff: Duration::from_secs(1),
            retry_backoff_max: Duration::from_secs(60),
            // A week: long enough to look into last weekend's failures, short
            // enough that a busy queue does not grow without end.
            retain: Duration::from_secs(7 * 24 * 3600),
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            handler_threads: limits::default_handler_threads(),
        }
    }
}

/// A running server. It owns its threads; dropping it stops them, answers
/// every parked claim and closes every connection.
pub struct Server {
    http: Listener,
    store: Arc<dyn Store>,
    timer: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `config.listen`, replays the journal when there is one, and starts serving.
    pub fn start(config: ServerConfig) -> Result<Server, Error> {
        if config
            .api_key
            .as_deref()
            .is_some_and(|k| k.trim().is_empty())
        {
            // Every request would match an empty key: authentication off without a word.
            return Err(Error::config("api_key", "the API key is empty"));
        }
        let listener = TcpListener::bind(&config.listen)
            .map_err(|e| Error::io(format!("listening on {}", config.listen), e))?;
        let service = store::open(&config)?;
        let timer_service = Arc::clone(&service);
        let timer = thread::Builder::new()
            .name("taskworker-serve-timer".into())
            .spawn(move || timer_service.run_timer())
            .map_err(|e| Error::io("starting the timer thread", e))?;
        let routes = Routes::new(
            Arc::clone(&service),
            config.api_key.clone(),
            !config.core_only,
        );
        let limits = Limits {
            max_connections: config.max_connections,
            handler_threads: config.handler_threads,
            ..Limits::server()
        };
        let http = Listener::start(listener, "taskworker-serve", limits, Arc::new(routes))
            .map_err(|e| Error::io("starting the listener's threads", e))?;
        Ok(Server {
            http,
            store: service,
            timer: Some(timer),
        })
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// The base URL, `http://127.0.0.1:PORT` (a wildcard address shows as loopback).
    pub fn url(&self) -> String {
        let mut addr = self.addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{addr}")
    }

    /// Takes over SIGTERM and SIGINT for [`Server::wait`]. Called before the
    /// server says it listens, so that a stop sent as soon as it does is not
    /// met by the default action (death without a synced journal).
    pub fn stop_signals() -> std::io::Result<signal_hook::iterator::Signals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
    }

    /// Blocks until one of `signals` (from [`Server::stop_signals`]) comes,
    /// then stops the server (journal synced).
    pub fn wait(self, mut signals: signal_hook::iterator::Signals) {
        if let Some(sig) = signals.forever().next() {
            log::info!("signal {sig}: stopping");
        }
        drop(self);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.store.stop();
        self.http.stop();
        if let Some(timer) = self.timer.take() {
            let _ = timer.join();
        }
        // Not left to the last handler thread's drop: the next server
        // may open the journal as soon as this one is gone.
        self.store.close();
    }
}
