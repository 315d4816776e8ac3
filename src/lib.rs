//! taskworker: a small, fast, dependable background worker for HTTP task queues.
//!
//! # Anatomy of the crate
//!
//! The public API is what this file re-exports: [`Worker`] with its
//! [`Config`], the [`Handler`] trait with its [`Registry`] and [`Context`],
//! the [`Task`] and its [`TaskError`], the worker's fatal [`Error`], the
//! [`Shutdown`] that stops a worker, and (with the default feature `server`)
//! the reference [`Server`] with its [`ServerConfig`]. Every module is private.
//!
//! - `worker/`: the daemon. `mod.rs` wires the roles from one shared state
//!   and drains; one file per role, in the order a task meets them:
//!   `poller` (claims as many tasks as processors are idle, of the types
//!   under their `limits`), `processor`
//!   (runs handlers on a fixed pool of threads, retrying locally), `outbox`
//!   (the one path of an outcome: spool, then reporters) and `spool`,
//!   `reporter` (delivers outcomes until they land); beside them
//!   `supervisor` (deadlines, stuck threads, the memory limit), `heartbeat`
//!   (leases), `scheduler` (fires the schedules), `reaper` (orphans of handler programs), `shutdown` (signals,
//!   the stop channel, quiet mode), `reload` (SIGHUP: the settings swapped
//!   whole); and what they share: `inflight`,
//!   `outcome`, `metrics`, `connectivity`, `liveness`, `health` (`/health`,
//!   `/ready`, `/status`, `/metrics`), `notify` (systemd), and `fault`
//!   (test-only faults in debug builds).
//! - `handlers/`: the handler trait and registry, one file per kind (`exec`,
//!   `http`, `builtin`) and their helpers (`process_group`, `capture`, `options`).
//! - `server/`: the reference task-queue server (`taskworker serve`): a pure
//!   `queue` state machine, its `journal`, `routes`, `report` (batch
//!   reports), `service`, `waiters`, `admin*` (counts, listings, operator
//!   actions, workers, throughput) and `ui`, the dashboard at `/ui`.
//! - `client/`: the task API client, with its `transport` (one write per
//!   request) and `resolver` (no thread per lookup).
//! - `config/`: every key defined once (`keys`), `.env` files (`dotenv`),
//!   durations and sizes (`units`), URLs shown without their secrets (`url`),
//!   "did you mean" (`suggest`).
//! - `schedule/`: the `schedules` section read into schedules, their
//!   `cron` expressions and time `zone`s (zoneinfo read by hand).
//! - `cli/`: the command line (`main.rs` only calls it), with `enqueue`,
//!   `demo` and `schedules`.
//! - `listener/`: the hardened HTTP/1.1 listener under the server and `/health`:
//!   one event loop for every connection, a fixed pool of handler threads.
//!
//! At the top, only what worker and server share: `task` (the protocol
//! types), `error`, `timestamp`, `backoff`, `bounded` (bounds for numbers
//! from outside, time arithmetic that cannot panic), `context`, `logging`,
//! `prometheus` (the metrics text format) and `state_lock` (one owner per
//! state directory or journal).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backoff;
mod bounded;
mod cli;
mod client;
mod config;
mod context;
mod error;
mod handlers;
mod listener;
mod logging;
mod prometheus;
mod schedule;
#[cfg(feature = "server")]
mod server;
mod state_lock;
mod task;
mod timestamp;
mod worker;

pub use config::{Config, LogFormat, Secret};
pub use context::{CancelReason, Context};
pub use error::{Error, TaskError};
pub use handlers::{Handler, Registry};
#[cfg(feature = "server")]
pub use server::{Server, ServerConfig};
pub use task::{Priority, Task};
pub use worker::limits::{Limit, Rate};
pub use worker::shutdown::{
    install_signals, manual as manual_shutdown, Shutdown, StopHandle, StopReason,
};
pub use worker::{Worker, WorkerState};

/// Runs the `taskworker` command line; the binary's `main` only calls this.
#[doc(hidden)]
pub use cli::main as run_command_line;

// Narrow doors for the project's own tests and benchmarks: hidden, and not
// part of the API, so that moving an internal does not break a user.
#[doc(hidden)]
pub use client::{
    build_agent, resolver::CachingResolver, ApiClient, Claimed, Delivery, ReportKind,
};
#[doc(hidden)]
pub use config::markdown_table as config_key_table;
#[doc(hidden)]
pub use handlers::{exec::ExecHandler, HandlerEnv};
#[doc(hidden)]
pub use listener::{
    raise_open_file_limit, Answer as HttpAnswer, Head as HttpHead, Limits as ListenerLimits,
    Listener, Request as HttpRequest, Responder, Response as HttpResponse,
};
#[doc(hidden)]
pub use task::{encode_path_segment, ClaimRequest, EnqueueRequest};
#[doc(hidden)]
pub use timestamp::{format as format_timestamp, now as now_timestamp, parse as parse_timestamp};
#[doc(hidden)]
pub use worker::outbox::REPORT_BACKLOG_LIMIT;
#[doc(hidden)]
pub use worker::spool::FILE_NAME as SPOOL_FILE_NAME;

/// Where a unit test keeps its files: `taskworker-tests/PID/unit-NAME` in
/// the temp directory (its parent made), beside the integration tests'
/// directories, whose first test removes those of exited test processes.
#[cfg(test)]
pub(crate) fn test_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir()
        .join("taskworker-tests")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).expect("test directory made");
    dir.join(format!("unit-{name}"))
}
