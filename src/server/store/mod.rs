//! The store boundary: every route, the long poll, `/health` and `/metrics`
//! reach the queue through [`Store`] only. A claim never waits inside a
//! store: one that must wait leaves a [`Waiter`] parked there instead.
//!
//! - [`local`]: the queue of this process ([`crate::server::queue`] under one
//!   lock): the memory store, and the journal store with `--data`.
//! - [`journal`]: the journal store's file.
//! - [`redis`]: the queue in Redis or Valkey, shared by any number of servers.

pub(crate) mod journal;
pub(crate) mod local;
pub(crate) mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use self::journal::{Journal, JournalError};
use self::local::Local;
use super::admin::{ListQuery, Page, Stats, TypeView, WorkerView};
use super::clock::{millis, Clock};
use super::queue::{Queue, QueueConfig, ReportError, Totals};
use super::record::{Status, TaskRecord};
use super::waiters::Waiter;
use super::ServerConfig;
use crate::error::Error;
use crate::task::{ClaimRequest, CompleteBody, EnqueueRequest, FailBody, Task};

/// Why a request could not be applied.
#[derive(Debug)]
pub enum StoreError {
    /// The queue refused it (404 or 409).
    Report(ReportError),
    /// The change could not be made durable (503).
    NotDurable(String),
    /// The store cannot be reached now (503 with `Retry-After`).
    Unavailable {
        /// What is down, and why.
        why: String,
        /// When to ask again.
        retry_after: Duration,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Report(e) => e.fmt(f),
            StoreError::NotDurable(why) => write!(f, "not durable: {why}"),
            StoreError::Unavailable { why, .. } => write!(f, "store unavailable: {why}"),
        }
    }
}

impl From<ReportError> for StoreError {
    fn from(e: ReportError) -> StoreError {
        StoreError::Report(e)
    }
}

/// What a claim came to.
#[derive(Debug)]
pub enum Claim {
    /// The tasks claimed; none when none was ready, or the claim id was cancelled.
    Tasks(Vec<Task>),
    /// None was ready and the claim's [`Waiter`] is parked: it is woken later.
    Parked,
}

/// One outcome from a lease holder, checked: the body of
/// `POST /tasks/{id}/complete` or `/fail`, alone or as an item of a batch
/// report.
#[derive(Debug)]
pub enum Report {
    /// `POST /tasks/{id}/complete`.
    Complete(String, CompleteBody),
    /// `POST /tasks/{id}/fail`.
    Fail(String, FailBody),
}

/// What `/health` and `/metrics` show.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Tasks per status, in [`Status::ALL`] order.
    pub counts: [u64; Status::COUNT],
    /// Event counters.
    pub totals: Totals,
    /// Claims parked in a long poll on this server.
    pub waiting: usize,
    /// Syncs of the journal to disk, with `--data`.
    pub journal_syncs: Option<u64>,
    /// Seconds since start.
    pub uptime_seconds: f64,
}

/// A task queue as the protocol sees it. Each call is atomic: what it changes,
/// it changes whole, for every server that shares the store.
pub trait Store: Send + Sync {
    /// Adds a task; returns it and whether it is new (an existing `id` is not).
    fn enqueue(&self, req: &EnqueueRequest) -> Result<(TaskRecord, bool), StoreError>;
    /// Claims ready tasks, without waiting. With a `waiter`, a claim that
    /// finds none ready (and may wait) parks it, atomically with the claim,
    /// so that no task that becomes ready after the claim is missed.
    fn claim(&self, req: &ClaimRequest, waiter: Option<Waiter>) -> Result<Claim, StoreError>;
    /// Drops the parked claims whose client has hung up, so that no wake
    /// goes to them and they are not counted.
    fn forget_gone(&self);
    /// Passes on a wake that reached a claim whose client had gone, to
    /// claims that may take what it was for (one of `types`, any with `None`).
    fn pass_on(&self, types: Option<&[String]>);
    /// Puts back tasks a claim of `worker_id` handed out (id and attempt)
    /// whose answer never reached its client, without counting an attempt;
    /// returns how many it put back.
    fn release(&self, worker_id: &str, handed: &[(String, u32)]) -> Result<usize, StoreError>;
    /// Records outcomes from their lease holders (a complete or a fail
    /// each), in one step: one journal sync, one Redis script. Returns for
    /// each, in order, its task's status after it, or why the queue refused
    /// it (one refused leaves the others applied); an error when the store
    /// could take none.
    fn report_many(
        &self,
        reports: Vec<Report>,
    ) -> Result<Vec<Result<Status, ReportError>>, StoreError>;
    /// [`Store::report_many`] for one outcome (`POST /tasks/{id}/complete`
    /// and `/fail`).
    fn report(&self, report: Report) -> Result<Status, StoreError> {
        match self.report_many(vec![report])?.pop() {
            Some(result) => Ok(result?),
            None => Err(StoreError::NotDurable("the store gave no answer".into())),
        }
    }
    /// Extends a lease; returns its new end (clock ms).
    fn heartbeat(&self, id: &str, worker_id: &str) -> Result<u64, StoreError>;
    /// Ends a claim; returns how many tasks it put back.
    fn cancel_claim(&self, claim_id: &str) -> Result<usize, StoreError>;
    /// One task with its history of attempts.
    fn task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError>;
    /// `GET /tasks/{id}`: [`Store::task`] as the wire shows it.
    fn get(&self, id: &str) -> Result<Option<Value>, StoreError> {
        Ok(self.task(id)?.map(|r| r.to_detail()))
    }
    /// `GET /tasks`: one page, newest first, from an index (no scan of every task).
    fn page(&self, query: &ListQuery) -> Result<Page, StoreError>;
    /// `POST /tasks/{id}/cancel`: a scheduled, queued or claimed task is
    /// cancelled; its worker's next heartbeat or report gets 410.
    fn cancel(&self, id: &str) -> Result<(), StoreError>;
    /// `POST /tasks/{id}/retry`: a failed, cancelled or expired task is
    /// queued now with a fresh attempt count.
    fn retry(&self, id: &str) -> Result<(), StoreError>;
    /// `DELETE /tasks/{id}`: removes a task that is not claimed.
    fn delete(&self, id: &str) -> Result<(), StoreError>;
    /// `POST /types/{type}/pause` (`true`) and `/resume` (`false`).
    fn set_paused(&self, task_type: &str, paused: bool) -> Result<(), StoreError>;
    /// `GET /types`: each type with tasks or paused, sorted by name.
    fn types(&self) -> Result<Vec<TypeView>, StoreError>;
    /// `GET /workers`: the workers seen within the last hour, most recent first.
    fn workers(&self) -> Result<Vec<WorkerView>, StoreError>;
    /// `GET /stats`: counts, the oldest claimable task's age, throughput.
    fn stats(&self) -> Result<Stats, StoreError>;
    /// Counts and counters.
    fn snapshot(&self) -> Result<Snapshot, StoreError>;
    /// Why the store cannot serve now, naming it; `None` when it can.
    fn failure(&self) -> Option<String>;
    /// Expires leases, releases delayed tasks and ends the wait of parked
    /// claims on time, until [`Store::stop`].
    fn run_timer(&self);
    /// Answers every parked claim and stops the timer.
    fn stop(&self);
    /// Releases what the store holds (the journal's lock); call once nothing
    /// else will be asked of it.
    fn close(&self);
}

/// The store `config` asks for: Redis with `store`, the journal with `data`,
/// memory otherwise.
pub fn open(config: &ServerConfig) -> Result<Arc<dyn Store>, Error> {
    let clock = Clock::new();
    let queue_config = QueueConfig {
        lease_ms: millis(config.lease).max(1),
        max_attempts: config.max_attempts.max(1),
        backoff_base_ms: millis(config.retry_backoff),
        backoff_max_ms: millis(config.retry_backoff_max),
        extensions: !config.core_only,
        // Ids differ between runs of an in-memory server, so a worker's
        // spool never mistakes a new task for an old one.
        id_prefix: format!("task_{:x}_", clock.now()),
        retain_ms: millis(config.retain),
    };
    if let Some(url) = &config.store {
        if config.data.is_some() {
            return Err(Error::config(
                "--data",
                "--data and --store both name where tasks are kept: give one",
            ));
        }
        let store = redis::Redis::open(
            url,
            config.store_password.as_deref(),
            &config.store_prefix,
            queue_config,
        )?;
        return Ok(Arc::new(store));
    }
    let mut queue = Queue::new(queue_config);
    let journal = match &config.data {
        None => None,
        Some(path) => {
            let (journal, replayed) = Journal::open(path).map_err(journal_error)?;
            log::info!("journal {}: {} tasks", path.display(), replayed.tasks.len());
            queue.restore(replayed.tasks, replayed.paused, clock.now());
            Some(journal)
        }
    };
    Ok(Arc::new(Local::new(queue, journal, clock)))
}

fn journal_error(e: JournalError) -> Error {
    match e {
        JournalError::Io { context, source } => Error::io(context, source),
        JournalError::Locked(_) => Error::config("--data", e.to_string()),
        other => Error::io(
            "opening the journal",
            std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        ),
    }
}
