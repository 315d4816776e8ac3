//! taskworker: a small, fast, dependable background worker for HTTP task queues.
//!
//! # Anatomy of the crate
//!
//! The worker's threads, one file each, in the order a task meets them:
//! - [`poller`]: claims as many tasks as there are idle processors.
//! - [`processor`]: runs handlers on a fixed pool of threads, retrying locally.
//! - [`reporter`]: delivers outcomes, retrying until they land; [`spool`] keeps them on disk.
//! - [`supervisor`]: deadlines, stuck threads, the memory limit; [`heartbeat`]: leases.
//! - [`shutdown`]: signals, the stop channel and quiet mode.
//! - [`worker`]: wires the threads together, drains, picks the exit code.
//!
//! What they share:
//! - [`task`]: the protocol types of the task API, shared by worker and server.
//! - [`client`]: the task API client over one keep-alive agent; [`resolver`] keeps it
//!   thread-free, [`transport`] sends each request in one write.

//! - [`running`]: the executions in flight; [`outcome`]: what they produced.
//! - [`metrics`], [`connectivity`]: counters and API reachability.
//! - [`handlers`]: the handler trait, the registry, and one file per kind.
//! - [`context`]: what a handler gets besides its task: deadline, attempt, cancel.
//! - [`error`]: `TaskError` (a task's failure, reported to the server) and
//!   `Error` (the worker's own fatal errors, each with its exit code).
//! - [`config`], [`dotenv`], [`units`], [`timestamp`]: configuration as users write it.
//! - [`health`]: `/health`, `/ready`, `/status`, `/metrics`; [`liveness`]: which threads live.
//! - [`notify`]: systemd readiness, status and watchdog over `NOTIFY_SOCKET`.
//! - [`logging`], [`backoff`].
//! - [`server`]: the reference task-queue server (`taskworker serve`).
//! - [`enqueue`]: `taskworker enqueue`, a client of the server's `POST /tasks`.
//! - [`demo`]: `taskworker demo`, the server and the worker together on sample tasks.
//! - [`cli`]: the command line; `main.rs` only calls it.

#![forbid(unsafe_code)]

pub mod backoff;
pub mod cli;
pub mod client;
pub mod config;
pub mod context;
pub mod error;
pub mod handlers;
pub mod logging;
mod prometheus;
#[cfg(feature = "server")]
pub mod server;
pub mod task;
pub mod timestamp;
pub mod worker;

pub use config::Config;
pub use context::{CancelReason, Context};
pub use error::{Error, TaskError};
pub use handlers::{Handler, Registry};
pub use task::Task;
pub use worker::Worker;
