//! The worker: builds the state its threads share, starts each role from it
//! (the poller, the processors, the reporters, the supervisor and the
//! heartbeat thread), waits for a stop (applying reloads meanwhile), drains,
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

pub(crate) mod connectivity;
mod fault;
pub(crate) mod health;
pub(crate) mod heartbeat;
pub(crate) mod inflight;
pub(crate) mod limits;
pub(crate) mod liveness;
pub(crate) mod metrics;
pub(crate) mod notify;
pub(crate) mod outbox;
pub(crate) mod outcome;
pub(crate) mod poller;
pub(crate) mod processor;
mod reaper;
pub(crate) mod reload;
pub(crate) mod reporter;
pub(crate) mod scheduler;
pub(crate) mod shutdown;
pub(crate) mod spool;
pub(crate) mod supervisor;

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender};

use self::connectivity::Connectivity;
use self::health::HealthServer;
use self::heartbeat::Heartbeats;
use self::inflight::InFlight;
use self::limits::{Limit, Limiter};
use self::liveness::{Liveness, Role};
use self::metrics::Stats;
use self::notify::Notifier;
use self::outbox::{Backlog, Outbox};
use self::outcome::Outcome;
use self::poller::{Poller, PollerThread};
use self::processor::{PanicSite, Processors};
use self::reload::{Live, Loader, Reloads, Settings};
use self::reporter::Reporters;
use self::scheduler::{Board, SchedulerThread};
use self::shutdown::{Shutdown, StopReason};
use self::spool::Spool;
use self::supervisor::{cancel_for_shutdown, give_back_waiting, Supervisor};
use crate::bounded::instant_after;
use crate::client::{build_agent, ApiClient};
use crate::config::Config;
use crate::error::Error;
use crate::handlers::program::MissingPrograms;
use crate::handlers::{Handler, HandlerEnv, Registry};
use crate::schedule::Schedule;
use crate::state_lock::{LockError, StateLock, FILE_NAME as LOCK_FILE};

/// How long undelivered reports are still tried after the drain.
pub const REPORT_GRACE: Duration = Duration::from_secs(5);
/// How often a `STATUS=` line goes to systemd.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// A worker: configuration plus handlers.
pub struct Worker {
    config: Config,
    extra: Registry,
    reap_orphans: bool,
    /// How a reload reads the configuration again; without one, a reload
    /// is refused.
    loader: Option<Loader>,
}

/// What the threads of a running worker share. Each role's `spawn` takes it
/// and keeps only its own channels besides; the health server reads it; the
/// owner of a worker gets it once every thread is up.
pub struct WorkerState {
    /// This worker's id.
    pub worker_id: Arc<str>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// API reachability.
    pub connectivity: Connectivity,
    /// The tasks in flight.
    pub inflight: InFlight,
    /// The per-type limits, and the claimed tasks that wait for them.
    pub limiter: Limiter,
    /// Stop and quiet.
    pub shutdown: Shutdown,
    /// Outcomes the reporters hold, and whether their sends fail.
    pub reports: Backlog,
    /// Where every outcome goes.
    pub(crate) outbox: Outbox,
    /// Outcomes kept until delivered, when a state directory is set.
    pub(crate) spool: Option<Spool>,
    /// The settings a reload changes: handlers, timeouts, polling...; the
    /// roles read them per task and per claim.
    pub(crate) live: Live,
    /// The reloads so far and the last one's outcome.
    pub(crate) reloads: Reloads,
    /// The schedules' next firings and counts.
    pub(crate) schedules: Board,
    /// The handlers' programs that could not be started lately, for `/ready`.
    pub(crate) missing_programs: MissingPrograms,
    /// The API for claims, heartbeats and the drain (each reporter has its own).
    pub(crate) client: ApiClient,
    /// Which threads live.
    pub(crate) liveness: Arc<Liveness>,
    /// The configuration as the worker started: the keys that need a
    /// restart are read here; the live ones through [`WorkerState::live`].
    pub(crate) config: Config,
    /// Held while the worker runs: a second worker on this state directory exits at once.
    _state_lock: Option<StateLock>,
}

impl WorkerState {
    /// The state of a worker about to start, whose outbox feeds `outcomes`.
    /// With a state directory it opens the spool, and returns what an
    /// earlier run left there.
    fn new(
        config: Config,
        (registry, missing_programs): (Registry, MissingPrograms),
        client: ApiClient,
        shutdown: Shutdown,
        outcomes: Sender<Outcome>,
    ) -> Result<(WorkerState, Vec<Outcome>), Error> {
        let (state_lock, spool, left) = match &config.state_dir {
            Some(dir) => {
                let lock = lock_state_dir(dir)?;
                let (spool, left) = Spool::open(dir)?;
                (Some(lock), Some(spool), left)
            }
            None => (None, None, Vec::new()),
        };
        let stats = Arc::new(Stats::for_types(registry.types()));
        let liveness = Arc::new(Liveness::new(shutdown.handle()));
        let state = WorkerState {
            worker_id: config.worker_id.as_str().into(),
            outbox: Outbox::new(outcomes, spool.clone(), stats.clone()),
            stats,
            connectivity: Connectivity::default(),
            inflight: InFlight::default(),
            limiter: Limiter::new(registry.limits(), Instant::now()),
            shutdown,
            reports: Backlog::default(),
            spool,
            live: Live::new(Settings::new(config.clone(), registry)),
            reloads: Reloads::default(),
            schedules: Board::default(),
            missing_programs,
            client,
            liveness,
            config,
            _state_lock: state_lock,
        };
        Ok((state, left))
    }
}

impl Worker {
    /// A worker with the handlers of `config.handlers`.
    pub fn new(config: Config) -> Worker {
        Worker {
            config,
            extra: Registry::new(),
            reap_orphans: false,
            loader: None,
        }
    }

    /// Lets a reload (SIGHUP, [`StopHandle::reload`]) read the configuration
    /// again with `loader`; the native handlers and limits given here stay.
    /// Without it a reload is refused with an error.
    ///
    /// [`StopHandle::reload`]: crate::StopHandle::reload
    pub fn reload_with(
        mut self,
        loader: impl Fn() -> Result<Config, Error> + Send + 'static,
    ) -> Worker {
        self.loader = Some(Box::new(loader));
        self
    }

    /// Makes the process the reaper of the orphans its handlers' programs
    /// leave behind (it is one already as PID 1, a container's init), and
    /// reaps them as they exit. For a process whose only children are the
    /// worker's handlers, as the `taskworker` binary's: a reaped orphan's
    /// exit status is gone, so a native handler that waits for a process it
    /// spawned itself must not run beside it.
    pub fn reap_orphans(mut self) -> Worker {
        self.reap_orphans = true;
        self
    }

    /// Adds a native handler for `task_type` (it wins over a configured one).
    pub fn handler(mut self, task_type: impl Into<String>, handler: impl Handler) -> Worker {
        self.extra.insert(task_type, handler);
        self
    }

    /// Limits the tasks of `task_type`: how many run at once, how fast they
    /// start (it wins over the limits a configured handler has).
    pub fn limit(mut self, task_type: impl Into<String>, limit: Limit) -> Worker {
        self.extra.limit(task_type, limit);
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
        started: impl FnOnce(&Arc<WorkerState>),
    ) -> Result<i32, Error> {
        let Prepared {
            handlers,
            schedules,
            client,
        } = prepare(&self.config, &self.extra)?;
        let notifier = Notifier::from_env();
        warn_if_watchdog_too_short(&notifier);
        let (outcome_tx, outcome_rx) = unbounded();
        let (state, left) = WorkerState::new(self.config, handlers, client, shutdown, outcome_tx)?;
        let shared = Arc::new(state);
        shared.shutdown.set_worker(&shared);
        // Bound before any work starts, so that a port in use fails the start.
        let health = match &shared.config.health_addr {
            Some(addr) => Some(HealthServer::start(addr, shared.clone())?),
            None => None,
        };
        let mut threads = Threads::start(
            &shared,
            outcome_rx,
            left,
            schedules,
            &notifier,
            self.reap_orphans,
        )?;
        log::info!(
            "worker {} started: {} processor(s), handlers for {:?}, API {}",
            shared.worker_id,
            shared.config.concurrent_tasks,
            shared.live.get().types,
            crate::config::url::masked(&shared.config.api_url)
        );
        notifier.ready();
        notifier.status(&status_line(&shared.stats, "ready"));
        started(&shared);

        let reloader = reload::Reloader {
            loader: self.loader,
            extra: self.extra,
        };
        loop {
            select! {
                recv(shared.shutdown.stopped()) -> _ => break,
                recv(shared.shutdown.reloads()) -> _ => {
                    // A stop asked meanwhile wins: a draining worker does not reload.
                    if shared.shutdown.is_stopping() {
                        log::info!("reload ignored: the worker is draining");
                        break;
                    }
                    notifier.reloading();
                    let roles = reload::Roles {
                        processors: &threads.processors,
                        scheduler: &mut threads.scheduler,
                    };
                    reloader.reload(&shared, roles);
                    notifier.ready();
                    notifier.status(&status_line(&shared.stats, "reloaded"));
                }
            }
        }
        let drain_started = Instant::now();
        notifier.stopping();
        notifier.status(&status_line(&shared.stats, "draining"));
        let grace = shared.live.get().config.shutdown_timeout;
        log::info!(
            "draining: no new claims; waiting up to {} ms for running tasks",
            grace.as_millis()
        );
        threads.drain(&shared, grace.saturating_sub(drain_started.elapsed()));
        drop(health);
        if let Some(code) = shared.shutdown.exit_without_waiting_code() {
            return Ok(code);
        }
        log::info!(
            "stopped after draining in {} ms: {} completed, {} failed",
            drain_started.elapsed().as_millis(),
            shared.stats.tasks_completed.load(Relaxed),
            shared.stats.tasks_failed.load(Relaxed)
        );
        Ok(shared.shutdown.reason().map_or(0, StopReason::exit_code))
    }
}

/// The threads of a running worker, and what it takes to stop them in order.
struct Threads {
    /// The processor pool, which a reload resizes.
    processors: Arc<Processors>,
    poller: PollerThread,
    reporters: Reporters,
    /// The supervisor and the heartbeat thread.
    watchers: Vec<JoinHandle<()>>,
    /// The reaper, when asked for.
    reaper: Option<reaper::Reaper>,
    /// Dropped to stop the watchers, which serve until the very end.
    done: Sender<()>,
    /// The scheduler, when there are schedules; it stops with the stop.
    scheduler: Option<SchedulerThread>,
}

impl Threads {
    /// Starts every role from `shared`, the poller last: the processors wait
    /// for tasks, the reporters for `outcomes` (the first one delivers what
    /// an earlier run `left` before it starts, so before any claim), the
    /// supervisor and the heartbeat thread watch what runs, the reaper
    /// (when asked for) reaps orphans, and the scheduler (when there are
    /// `schedules`) enqueues their firings.
    fn start(
        shared: &Arc<WorkerState>,
        outcomes: Receiver<Outcome>,
        left: Vec<Outcome>,
        schedules: Vec<Schedule>,
        notifier: &Notifier,
        reap_orphans: bool,
    ) -> Result<Threads, Error> {
        let (task_tx, task_rx) = bounded(shared.config.concurrent_tasks);
        let (idle_tx, idle_rx) = unbounded();
        let (done_tx, done_rx) = bounded::<()>(0);
        let processors = Processors::new(shared, task_rx, idle_tx);
        processors.grow()?;
        let reporters = Reporters::spawn(shared, outcomes, left)?;
        let on_tick = ticker(shared.clone(), notifier.clone());
        let watchers = vec![
            Supervisor::spawn(shared, processors.clone(), done_rx.clone(), on_tick)?,
            Heartbeats::spawn(shared, done_rx.clone())?,
        ];
        let reaper = if reap_orphans {
            let reaper =
                reaper::spawn(done_rx).map_err(|e| Error::io("starting the reaper thread", e))?;
            Some(reaper)
        } else {
            None
        };
        let poller = Poller::spawn(shared, idle_rx, task_tx, processors.clone())?;
        let scheduler = SchedulerThread::spawn(shared, schedules)?;
        Ok(Threads {
            processors,
            poller,
            reporters,
            watchers,
            reaper,
            done: done_tx,
            scheduler,
        })
    }

    /// The drain: no new claims (a long poll is cancelled), running tasks get
    /// `grace` to finish and the rest are reported `SHUTDOWN`, then the
    /// reporters deliver what is pending until [`REPORT_GRACE`] runs out.
    fn drain(self, shared: &WorkerState, grace: Duration) {
        let grace_ends = crate::bounded::instant_after(Instant::now(), grace);
        self.poller.stop(&shared.client);
        give_back_waiting(shared);
        if !shared.inflight.wait_settled(grace) {
            cancel_for_shutdown(shared);
        }
        if let Some(scheduler) = self.scheduler {
            scheduler.finish(grace_ends, REPORT_GRACE);
        }
        self.reporters
            .finish(crate::bounded::instant_after(Instant::now(), REPORT_GRACE));
        drop(self.done);
        for thread in self.watchers {
            let _ = thread.join();
        }
        if let Some(reaper) = self.reaper {
            reaper.stop();
        }
    }
}

/// Sends panic messages to the log instead of bare stderr lines, naming the
/// thread (so the role) and, on a processor, the task it holds. A handler's
/// panic is reported as `PANIC` and logged by its processor, so here it is
/// only a debug line; a panic anywhere else is a bug and logged as an error.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        // One line, so that a journal or a JSON log keeps it whole.
        let message = processor::panic_message(info.payload());
        let place = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        match processor::panic_site() {
            PanicSite::Handler => log::debug!("panic in a handler on {name}{place}: {message}"),
            PanicSite::Worker(Some(task)) => {
                log::error!("panic in thread {name}, holding task {task}{place}: {message}")
            }
            PanicSite::Worker(None) => log::error!("panic in thread {name}{place}: {message}"),
        }
    }));
}

/// What a worker needs before any thread starts, each part checked.
struct Prepared {
    /// The handlers, and the programs of those found missing since.
    handlers: (Registry, MissingPrograms),
    schedules: Vec<Schedule>,
    client: ApiClient,
}

/// Checks what `run` needs, and builds the handlers (with the record of
/// their programs that go missing), the schedules and the API client.
fn prepare(config: &Config, extra: &Registry) -> Result<Prepared, Error> {
    let agent = build_agent(config)?;
    let env = HandlerEnv::for_config(config, agent.clone());
    let (registry, schedules) = handlers_and_schedules(config, &env, extra)?;
    let client = ApiClient::for_config(agent, config);
    Ok(Prepared {
        handlers: (registry, env.missing),
        schedules,
        client,
    })
}

/// The handlers of `config` (built in `env`) plus the native ones in
/// `extra`, and the schedules, each checked as a run needs them; logs what
/// is unwise. The start and every reload build them here.
fn handlers_and_schedules(
    config: &Config,
    env: &HandlerEnv,
    extra: &Registry,
) -> Result<(Registry, Vec<Schedule>), Error> {
    let mut registry = Registry::from_config(&config.handlers, env)?;
    registry.extend(extra.clone());
    config.check_runnable(&registry)?;
    let schedules = crate::schedule::runnable(&config.schedules, &registry)?;
    for warning in config.warnings() {
        log::warn!("{warning}");
    }
    Ok((registry, schedules))
}

/// Locks `dir` for this worker, before its spool is opened.
fn lock_state_dir(dir: &Path) -> Result<StateLock, Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::config("STATE_DIR", format!("cannot create {}: {e}", dir.display())))?;
    StateLock::acquire(&dir.join(LOCK_FILE)).map_err(|e| {
        let problem = match e {
            LockError::Held { .. } => format!("{} is in use by another worker: {e}", dir.display()),
            LockError::Io { .. } => e.to_string(),
        };
        Error::config("STATE_DIR", problem)
    })
}

/// Warns when the systemd watchdog wants pings more often than the
/// supervisor ticks.
fn warn_if_watchdog_too_short(notifier: &Notifier) {
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
}

/// The supervisor's tick: records liveness, pings the systemd watchdog while
/// the poller and reporter live, and refreshes the status line now and then;
/// returns when it wants the next tick.
///
/// The ping is due at half the watchdog timeout; it goes out a supervisor
/// tick before that, since the supervisor may wake a little late.
fn ticker(
    shared: Arc<WorkerState>,
    notifier: Notifier,
) -> impl FnMut() -> Instant + Send + 'static {
    let mut last_ping = Instant::now();
    let mut last_status = Instant::now();
    move || {
        let (liveness, shutdown) = (&shared.liveness, &shared.shutdown);
        liveness.tick();
        let now = Instant::now();
        let mut next = instant_after(now, supervisor::IDLE_TICK);
        if let Some(interval) = notifier.watchdog_interval() {
            if watchdog_due(last_ping.elapsed(), interval)
                && (liveness.poller_and_reporter_alive() || shutdown.is_stopping())
            {
                notifier.watchdog();
                last_ping = now;
            }
            next = next.min(next_ping(last_ping, interval, now));
        }
        if notifier.is_enabled() {
            if last_status.elapsed() >= STATUS_EVERY {
                last_status = now;
                let phase = if shutdown.is_stopping() {
                    "draining"
                } else if shutdown.is_quiet() {
                    "quiet"
                } else {
                    "working"
                };
                notifier.status(&status_line(&shared.stats, phase));
            }
            next = next.min(instant_after(last_status, STATUS_EVERY));
        }
        next
    }
}

/// Whether a watchdog ping due every `interval` must go out now, `since` the
/// last one: yes within a supervisor tick of it.
fn watchdog_due(since: Duration, interval: Duration) -> bool {
    since + supervisor::TICK >= interval
}

/// When the supervisor ticks for the next ping after one at `last`: a tick
/// before it is due, and no sooner than a tick from `now` (a ping held back
/// while a role is dead is tried again then, not in a busy loop).
fn next_ping(last: Instant, interval: Duration, now: Instant) -> Instant {
    let due = instant_after(last, interval.saturating_sub(supervisor::TICK));
    due.max(instant_after(now, supervisor::TICK))
}

/// The one line `systemctl status` shows: the phase and the counters.
fn status_line(stats: &Stats, phase: &str) -> String {
    format!(
        "{phase}: {} completed, {} failed, {} running, {} reports pending",
        stats.tasks_completed.load(Relaxed),
        stats.tasks_failed.load(Relaxed),
        stats.inflight.load(Relaxed),
        stats.reports_pending.load(Relaxed)
    )
}

/// Starts a thread of `role` named `name`, counted alive from now until it
/// ends; if it panics, its death is recorded (see [`Liveness::died`]).
/// Failing to start it is an error that names it.
fn spawn_role(
    shared: &WorkerState,
    role: Role,
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, Error> {
    let alive = shared.liveness.alive(role);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _alive = alive;
            f()
        })
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

    #[test]
    fn the_supervisor_wakes_a_tick_before_the_next_ping_and_never_sooner_than_a_tick() {
        let t0 = Instant::now();
        let tick = supervisor::TICK;
        let after = |d: Duration| crate::bounded::instant_after(t0, d);
        let interval = Duration::from_secs(15);
        assert_eq!(next_ping(t0, interval, t0), after(interval - tick));
        // Pinged on every tick for a short watchdog, not in a busy loop.
        let short = Duration::from_millis(500);
        assert_eq!(next_ping(t0, short, t0), after(tick));
        // A ping held back (a role is dead) is tried a tick later.
        let late = after(Duration::from_secs(20));
        assert_eq!(
            next_ping(t0, interval, late),
            crate::bounded::instant_after(late, tick)
        );
    }
}
