//! The worker: wires the poller, the processors, the reporter, the
//! supervisor and the heartbeat thread together, waits for a stop, drains,
//! and picks the exit code. This is also the library's entry point.
//!
//! ```no_run
//! use serde_json::json;
//! use taskworker::{Config, Context, Task, TaskError, Worker};
//!
//! let config = Config { api_url: "http://127.0.0.1:8000/v1".into(), concurrent_tasks: 4, ..Config::default() };
//! let code = Worker::new(config)
//!     .handler("resize", |task: &Task, _ctx: &Context| {
//!         let width = task.parameters["width"].as_u64().ok_or_else(|| TaskError::permanent("width?", "VALIDATION"))?;
//!         Ok(json!({ "width": width }))
//!     })
//!     .run()
//!     .unwrap();
//! std::process::exit(code);
//! ```

pub mod connectivity;
pub mod health;
pub mod heartbeat;
pub mod inflight;
pub mod liveness;
pub mod metrics;
pub mod notify;
pub mod outcome;
pub mod poller;
pub mod processor;
pub mod reporter;
pub mod shutdown;
pub mod spool;
pub mod supervisor;

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};

use self::connectivity::Connectivity;
use self::health::{HealthServer, HealthView};
use self::heartbeat::Heartbeats;
use self::inflight::InFlight;
use self::liveness::{Liveness, Thread};
use self::metrics::Stats;
use self::notify::Notifier;
use self::outcome::Outcome;
use self::poller::{ClaimInFlight, Poller};
use self::processor::Processors;
use self::reporter::{Backlog, Outbox, Reporter};
use self::shutdown::{Shutdown, StopReason};
use self::spool::Spool;
use self::supervisor::{cancel_for_shutdown, Supervisor};
use crate::client::{build_agent, ApiClient, Delivery};
use crate::config::Config;
use crate::error::Error;
use crate::handlers::{Handler, HandlerEnv, Registry};

/// How long undelivered reports are still tried after the drain.
pub const REPORT_GRACE: Duration = Duration::from_secs(5);
/// How often a `STATUS=` line goes to systemd.
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// How long the drain waits for the poller's last claim to return.
const POLLER_JOIN_LIMIT: Duration = Duration::from_secs(5);

/// A worker: configuration plus handlers.
pub struct Worker {
    config: Config,
    extra: Registry,
}

/// What a running worker exposes to the health server and to its owner.
#[derive(Clone)]
pub struct WorkerState {
    /// Counters.
    pub stats: Arc<Stats>,
    /// API reachability.
    pub connectivity: Arc<Connectivity>,
    /// The running executions.
    pub inflight: Arc<InFlight>,
    /// Stop and quiet.
    pub shutdown: Shutdown,
    /// This worker's id.
    pub worker_id: Arc<str>,
    /// Outcomes the reporters hold, and whether their sends fail.
    pub reports: Arc<Backlog>,
}

impl Worker {
    /// A worker with the handlers of `config.handlers`.
    pub fn new(config: Config) -> Worker {
        Worker {
            config,
            extra: Registry::new(),
        }
    }

    /// Adds a native handler for `task_type` (it wins over a configured one).
    pub fn handler(mut self, task_type: impl Into<String>, handler: impl Handler) -> Worker {
        self.extra.insert(task_type, handler);
        self
    }

    /// Installs the signal handlers, runs until SIGTERM/SIGINT and the drain,
    /// and returns the exit code (0, or 75 after the memory limit).
    pub fn run(self) -> Result<i32, Error> {
        let shutdown = shutdown::install_signals()?;
        log_panics();
        self.run_until(shutdown, |_| {})
    }

    /// Runs until `shutdown` is asked to stop. `started` is called once every
    /// thread is up, with the worker's shared state.
    pub fn run_until(
        self,
        shutdown: Shutdown,
        started: impl FnOnce(&WorkerState),
    ) -> Result<i32, Error> {
        let config = self.config;
        let (registry, client) = prepare(&config, self.extra)?;
        let stats = Arc::new(Stats::default());
        stats.processors.store(config.concurrent_tasks, Relaxed);
        let connectivity = Arc::new(Connectivity::default());
        let inflight = Arc::new(InFlight::default());
        let worker_id: Arc<str> = config.worker_id.as_str().into();
        let liveness = Arc::new(Liveness::default());
        let notifier = Notifier::from_env();
        if notifier
            .watchdog_interval()
            .is_some_and(|i| i < supervisor::TICK)
        {
            log::warn!(
                "WATCHDOG_USEC is below {} ms: the watchdog is pinged only every {} ms; set WatchdogSec= to 1s or more",
                2 * supervisor::TICK.as_millis(),
                supervisor::TICK.as_millis()
            );
        }
        let reports = Arc::new(Backlog::default());
        let state = WorkerState {
            stats: stats.clone(),
            connectivity: connectivity.clone(),
            inflight: inflight.clone(),
            shutdown: shutdown.clone(),
            worker_id: worker_id.clone(),
            reports: reports.clone(),
        };
        // Bound before any work starts, so that a port in use fails the start.
        let health = match &config.health_addr {
            Some(addr) => Some(HealthServer::start(
                addr,
                HealthView {
                    state: state.clone(),
                    liveness: liveness.clone(),
                    wait_seconds: config.wait_seconds,
                    processors: config.concurrent_tasks,
                },
            )?),
            None => None,
        };

        // Held until the worker returns: a second worker on this state exits at once.
        let _state_lock = match &config.state_dir {
            Some(dir) => Some(lock_state_dir(dir)?),
            None => None,
        };
        let (spool, left) = open_spool(&config, &client, &stats)?;

        let (task_tx, task_rx) = bounded(config.concurrent_tasks);
        let (idle_tx, idle_rx) = unbounded();
        let (outcome_tx, outcome_rx) = unbounded();
        let outbox = Outbox::new(outcome_tx, spool.clone(), stats.clone());
        let reporters = crate::worker::reporter::threads_for(config.concurrent_tasks);
        let (finish_tx, finish_rx) = bounded(reporters);
        let (done_tx, done_rx) = bounded::<()>(0);
        let (poller_done_tx, poller_done_rx) = bounded::<()>(0);
        let claim_in_flight = Arc::new(ClaimInFlight::default());

        let processors = Arc::new(Processors {
            registry: registry.clone(),
            inflight: inflight.clone(),
            stats: stats.clone(),
            tasks: task_rx,
            outcomes: outbox.clone(),
            idle: idle_tx,
            worker_id: worker_id.clone(),
            timeout: config.timeout,
            max_retries: config.max_retries,
        });
        for index in 0..config.concurrent_tasks {
            processors.spawn(index)?;
        }
        let mut reporter_threads = Vec::with_capacity(reporters);
        let mut left = Some(VecDeque::from(left));
        for index in 0..reporters {
            // Each reporter has its own agent, so that they do not contend
            // for one connection pool's lock on every report.
            let own = ApiClient::for_config(build_agent(&config)?, &config);
            let reporter = Reporter {
                client: own,
                outcomes: outcome_rx.clone(),
                finish: finish_rx.clone(),
                spool: spool.clone(),
                stats: stats.clone(),
                connectivity: connectivity.clone(),
                backlog: reports.clone(),
            };
            // The first one also delivers what an earlier run left.
            let pending = left.take().unwrap_or_default();
            let alive = liveness.clone();
            reporter_threads.push(spawn(&format!("taskworker-reporter-{index}"), move || {
                let _alive = alive.alive(Thread::Reporter);
                reporter.run(pending)
            })?);
        }
        let supervisor = Supervisor {
            inflight: inflight.clone(),
            processors: processors.clone(),
            outcomes: outbox.clone(),
            stats: stats.clone(),
            stop: shutdown.handle(),
            memory_limit: config.memory_limit,
            done: done_rx.clone(),
            worker_id: worker_id.clone(),
            on_tick: Box::new(ticker(
                liveness.clone(),
                notifier.clone(),
                stats.clone(),
                shutdown.clone(),
            )),
        };
        let supervisor_thread = spawn("taskworker-supervisor", move || supervisor.run())?;
        let heartbeats = Heartbeats {
            client: client.clone(),
            inflight: inflight.clone(),
            stats: stats.clone(),
            connectivity: connectivity.clone(),
            done: done_rx,
        };
        let heartbeat_thread = spawn("taskworker-heartbeat", move || heartbeats.run())?;
        let poller = Poller {
            client: client.clone(),
            shutdown: shutdown.clone(),
            idle: idle_rx,
            tasks: task_tx,
            outcomes: outbox.clone(),
            types: registry.types(),
            wait_seconds: config.wait_seconds,
            polling_interval: config.polling_interval,
            stats: stats.clone(),
            connectivity: connectivity.clone(),
            reports,
            claim_in_flight: claim_in_flight.clone(),
            inflight: inflight.clone(),
            spool,
        };
        let alive = liveness.clone();
        let poller_thread = spawn("taskworker-poller", move || {
            let _alive = alive.alive(Thread::Poller);
            poller.run();
            drop(poller_done_tx);
        })?;
        drop(processors);

        log::info!(
            "worker {} started: {} processor(s), handlers for {:?}, API {}",
            config.worker_id,
            config.concurrent_tasks,
            registry.types(),
            config.api_url
        );
        notifier.ready();
        notifier.status(&status_line(&stats, "ready"));
        started(&state);

        // Wait for the stop; then drain.
        let _ = shutdown.stopped().recv();
        let drain_started = Instant::now();
        notifier.stopping();
        notifier.status(&status_line(&stats, "draining"));
        log::info!(
            "draining: no new claims; waiting up to {} ms for running tasks",
            config.shutdown_timeout.as_millis()
        );
        let threads = Threads {
            poller: poller_thread,
            poller_done: poller_done_rx,
            claim_in_flight,
            reporters: reporter_threads,
            finish: finish_tx,
            watchers: vec![supervisor_thread, heartbeat_thread],
            done: done_tx,
        };
        let grace = config
            .shutdown_timeout
            .saturating_sub(drain_started.elapsed());
        threads.drain(&client, &inflight, &outbox, &stats, &worker_id, grace);
        drop(health);
        let code = match shutdown.reason() {
            Some(StopReason::MemoryLimit) => 75,
            _ => 0,
        };
        log::info!(
            "stopped after draining in {} ms: {} completed, {} failed",
            drain_started.elapsed().as_millis(),
            stats.tasks_completed.load(Relaxed),
            stats.tasks_failed.load(Relaxed)
        );
        Ok(code)
    }
}

/// The threads of a running worker, and what it takes to stop them in order.
struct Threads {
    poller: JoinHandle<()>,
    /// Disconnects when the poller returns.
    poller_done: Receiver<()>,
    claim_in_flight: Arc<ClaimInFlight>,
    reporters: Vec<JoinHandle<()>>,
    /// One final deadline per reporter thread.
    finish: Sender<Instant>,
    /// The supervisor and the heartbeat thread.
    watchers: Vec<JoinHandle<()>>,
    /// Dropped to stop the watchers, which serve until the very end.
    done: Sender<()>,
}

impl Threads {
    /// The drain: no new claims (a long poll is cancelled), running tasks get
    /// `grace` to finish and the rest are reported `SHUTDOWN`, then the
    /// reporters deliver what is pending until [`REPORT_GRACE`] runs out.
    fn drain(
        self,
        client: &ApiClient,
        inflight: &InFlight,
        outbox: &Outbox,
        stats: &Stats,
        worker_id: &str,
        grace: Duration,
    ) {
        end_long_poll(client, &self.claim_in_flight, &self.poller_done);
        if still_running(&self.poller_done, POLLER_JOIN_LIMIT) {
            log::warn!("the last claim did not return in time; exiting without it");
        } else {
            let _ = self.poller.join();
        }
        if !inflight.wait_settled(grace) {
            cancel_for_shutdown(inflight, outbox, stats, worker_id);
        }
        let report_deadline = Instant::now() + REPORT_GRACE;
        for _ in 0..self.reporters.len() {
            let _ = self.finish.send(report_deadline);
        }
        for thread in self.reporters {
            let _ = thread.join();
        }
        drop(self.done);
        for thread in self.watchers {
            let _ = thread.join();
        }
    }
}

/// Sends panic messages to the log instead of bare stderr lines. A handler's
/// panic is reported as `PANIC` and logged by its processor, so here it is
/// only a debug line; a panic anywhere else is a bug and logged as an error.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        if name.starts_with("taskworker-proc-") {
            log::debug!("panic in {name}: {info}");
        } else {
            log::error!("panic in thread {name}: {info}");
        }
    }));
}

/// Ends a long poll in flight by cancelling its claim, so the poller returns
/// at once and no claimed task is left on the wire.
fn end_long_poll(client: &ApiClient, claim: &ClaimInFlight, poller_done: &Receiver<()>) {
    if still_running(poller_done, Duration::from_millis(2)) {
        if let Some(claim_id) = claim.current() {
            if let Err(e) = client.cancel_claim(&claim_id, Duration::from_secs(2)) {
                log::debug!("claim cancel failed: {e}");
            }
        }
    }
}

/// Waits up to `limit` for a thread's done channel to disconnect; true if it did not.
fn still_running(done: &Receiver<()>, limit: Duration) -> bool {
    matches!(done.recv_timeout(limit), Err(RecvTimeoutError::Timeout))
}

/// Checks what `run` needs, builds the handlers and the API client.
fn prepare(config: &Config, extra: Registry) -> Result<(Registry, ApiClient), Error> {
    if config.api_url.is_empty() {
        return Err(Error::config(
            "API_URL",
            "is required: the base URL of the task API",
        ));
    }
    let agent = build_agent(config)?;
    // Children must not see secrets, nor talk to systemd in our name.
    let mut secret_vars = config.secret_vars();
    secret_vars.extend(
        crate::worker::notify::ENV_VARS
            .iter()
            .map(|v| v.to_string()),
    );
    let env = HandlerEnv {
        agent: agent.clone(),
        secret_vars,
    };
    let mut registry = Registry::from_config(&config.handlers, &env)?;
    registry.extend(extra);
    if registry.is_empty() {
        return Err(Error::config(
            "handlers",
            "no handler is configured, so there is nothing to claim",
        ));
    }
    for warning in config.warnings() {
        log::warn!("{warning}");
    }
    let client = ApiClient::for_config(agent, config);
    Ok((registry, client))
}

/// Opens the spool when a state directory is set, and delivers what an
/// earlier run left before any claim; the first failure leaves the rest (in
/// order) to the reporter's retries.
fn open_spool(
    config: &Config,
    client: &ApiClient,
    stats: &Stats,
) -> Result<(Option<Spool>, Vec<Outcome>), Error> {
    let Some(dir) = &config.state_dir else {
        return Ok((None, Vec::new()));
    };
    let (spool, mut left) = Spool::open(dir)?;
    let delivered = left
        .iter()
        .take_while(|o| deliver_once(client, o, &spool))
        .count();
    left.drain(..delivered);
    stats.spool_depth.store(spool.depth(), Relaxed);
    Ok((Some(spool), left))
}

/// Locks `dir` for this worker, before its spool is opened.
fn lock_state_dir(dir: &std::path::Path) -> Result<crate::state_lock::StateLock, Error> {
    use crate::state_lock::{LockError, StateLock, FILE_NAME};
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::config("STATE_DIR", format!("cannot create {}: {e}", dir.display())))?;
    StateLock::acquire(&dir.join(FILE_NAME)).map_err(|e| {
        let problem = match e {
            LockError::Held { .. } => format!("{} is in use by another worker: {e}", dir.display()),
            LockError::Io { .. } => e.to_string(),
        };
        Error::config("STATE_DIR", problem)
    })
}

/// One try to deliver a spooled outcome at start; true when it is settled.
fn deliver_once(client: &ApiClient, outcome: &Outcome, spool: &Spool) -> bool {
    match client.report(&outcome.task_id, outcome.kind, &outcome.body) {
        Ok(delivery) => {
            if let Delivery::Gone(status) = delivery {
                log::warn!(
                    "task {} ({}): spooled report dropped: the server answered {status}, the task is no longer ours",
                    outcome.task_id,
                    outcome.task_type
                );
            }
            spool.mark_sent(outcome);
            true
        }
        Err(e) => {
            log::debug!(
                "task {} ({}): spooled report not delivered yet: {e}",
                outcome.task_id,
                outcome.task_type
            );
            false
        }
    }
}

/// The supervisor's tick: records liveness, pings the systemd watchdog while
/// the poller and reporter live, and refreshes the status line now and then.
///
/// The ping is due at half the watchdog timeout; it goes out on the last tick
/// before that, not the first after, since the next tick may be a whole
/// supervisor tick away.
fn ticker(
    liveness: Arc<Liveness>,
    notifier: Notifier,
    stats: Arc<Stats>,
    shutdown: Shutdown,
) -> impl FnMut() + Send {
    let mut last_ping = Instant::now();
    let mut last_status = Instant::now();
    move || {
        liveness.tick();
        let ping_due = notifier
            .watchdog_interval()
            .is_some_and(|i| watchdog_due(last_ping.elapsed(), i));
        if ping_due && (liveness.workers_alive() || shutdown.is_stopping()) {
            notifier.watchdog();
            last_ping = Instant::now();
        }
        if notifier.is_enabled() && last_status.elapsed() >= STATUS_EVERY {
            last_status = Instant::now();
            let phase = if shutdown.is_stopping() {
                "draining"
            } else if shutdown.is_quiet() {
                "quiet"
            } else {
                "working"
            };
            notifier.status(&status_line(&stats, phase));
        }
    }
}

/// Whether a watchdog ping due every `interval` must go out now, `since` the
/// last one: yes when the next supervisor tick would come too late for it.
fn watchdog_due(since: Duration, interval: Duration) -> bool {
    since + supervisor::TICK >= interval
}

/// The one line `systemctl status` shows: the phase and the counters.
fn status_line(stats: &Stats, phase: &str) -> String {
    format!(
        "{phase}: {} completed, {} failed, {} running, {} reports pending",
        stats.tasks_completed.load(Relaxed),
        stats.tasks_failed.load(Relaxed),
        stats.in_flight.load(Relaxed),
        stats.reports_pending.load(Relaxed)
    )
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| Error::io(format!("starting {name}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_ping_goes_out_on_the_last_tick_before_it_is_due() {
        let tick = supervisor::TICK;
        let interval = Duration::from_secs(15);
        assert!(!watchdog_due(Duration::from_secs(14), interval));
        assert!(watchdog_due(interval - tick, interval));
        assert!(watchdog_due(interval, interval));
        // A watchdog of 1 s (pings every 500 ms) is pinged on every tick.
        assert!(watchdog_due(tick, Duration::from_millis(500)));
        assert!(watchdog_due(Duration::ZERO, Duration::from_millis(500)));
    }
}
