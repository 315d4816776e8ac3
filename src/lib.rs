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
//! - [`logging`], [`backoff`]; [`bounded`]: bounds for numbers from outside, time
//!   arithmetic that cannot panic.
//! - [`listener`]: the HTTP/1.1 listener under the server and `/health`: caps,
//!   deadlines, bounded parsing, the key checked before a body is read.
//! - [`server`]: the reference task-queue server (`taskworker serve`).
//! - [`enqueue`]: `taskworker enqueue`, a client of the server's `POST /tasks`.
//! - [`demo`]: `taskworker demo`, the server and the worker together on sample tasks.
//! - [`cli`]: the command line; `main.rs` only calls it.

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
#[cfg(feature = "server")]
mod server;
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
    Head as HttpHead, Limits as ListenerLimits, Listener, Request as HttpRequest, Responder,
    Response as HttpResponse,
};
#[doc(hidden)]
pub use task::{encode_path_segment, ClaimRequest, EnqueueRequest};
#[doc(hidden)]
pub use timestamp::{format as format_timestamp, now as now_timestamp, parse as parse_timestamp};
#[doc(hidden)]
pub use worker::outbox::REPORT_BACKLOG_LIMIT;
#[doc(hidden)]
pub use worker::spool::FILE_NAME as SPOOL_FILE_NAME;
