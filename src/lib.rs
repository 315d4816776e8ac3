//! taskworker: a small, fast, dependable background worker for HTTP task queues.
//!
//! # Anatomy of the crate
//!
//! - [`task`]: the protocol types of the task API, shared by worker and server.
//! - [`error`]: `TaskError` (a task's failure, reported to the server) and
//!   `Error` (the worker's own fatal errors, each with its exit code).
//! - [`context`]: what a handler gets besides its task: deadline, attempt, cancel.
//! - [`handlers`]: the handler trait, the registry, and one file per kind.
//! - [`units`], [`timestamp`]: durations, sizes and RFC 3339 times as users write them.
//! - [`server`]: the reference task-queue server (`taskworker serve`).
//! - [`enqueue`]: `taskworker enqueue`, a client of the server's `POST /tasks`.
//! - [`cli`]: the command line; `main.rs` only calls it.
#![forbid(unsafe_code)]

pub mod cli;
pub mod context;
pub mod enqueue;
pub mod error;
pub mod handlers;
pub mod server;
pub mod task;
pub mod timestamp;
pub mod units;

pub use context::{CancelReason, Context};
pub use error::{Error, TaskError};
pub use handlers::{Handler, Registry};
pub use task::Task;
