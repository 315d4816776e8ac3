//! Live reload (SIGHUP, `systemctl reload`): the settings the roles read
//! per task and per claim, swapped whole; and the record of the last
//! reload that `/status` and `/metrics` show.
//!
//! A reload reads every layer again through the start-up loader, builds
//! and checks the handlers and schedules as the start does, and only then
//! applies the result; an invalid one changes nothing. Which keys change
//! at once and which wait for a restart is the `live` column of the key
//! table (`config/keys.rs`), and nothing else.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::config::{Config, Key};
use crate::error::Error;
use crate::handlers::{HandlerEnv, Registry};
use crate::prometheus::{family, labels, Kind};
use crate::schedule::Schedule;
use crate::worker::processor::Processors;
use crate::worker::scheduler::SchedulerThread;
use crate::worker::WorkerState;

/// How a reload reads the configuration again: the start-up loader with
/// the start's command line and environment.
pub type Loader = Box<dyn Fn() -> Result<Config, Error> + Send>;

/// What a reload needs besides the worker's state: the loader, and the
/// native handlers and limits the owner of the worker gave, which stay.
pub(crate) struct Reloader {
    pub(crate) loader: Option<Loader>,
    pub(crate) extra: Registry,
}

/// The threads a reload acts on.
pub(crate) struct Roles<'a> {
    /// The pool, which it grows.
    pub(crate) processors: &'a Arc<Processors>,
    /// The scheduler, which it hands the schedules (or starts).
    pub(crate) scheduler: &'a mut Option<SchedulerThread>,
}

/// A reload read and checked, ready to apply.
struct Checked {
    config: Config,
    registry: Registry,
    schedules: Vec<Schedule>,
    /// Changed keys that need a restart, left as they were.
    kept: Vec<Key>,
}

impl Reloader {
    /// Reads the configuration again and applies it, or, when anything in
    /// it is wrong, changes nothing and records the error.
    pub(crate) fn reload(&self, shared: &Arc<WorkerState>, threads: Roles<'_>) {
        match self.check(shared) {
            Ok(checked) => apply(shared, checked, threads),
            Err(e) => {
                log::error!("reload refused, nothing changed: {e}");
                shared.reloads.failed(e.to_string());
            }
        }
    }

    /// Everything the start checks, on the configuration read anew.
    fn check(&self, shared: &WorkerState) -> Result<Checked, Error> {
        let Some(loader) = &self.loader else {
            return Err(Error::config(
                "reload",
                "this worker was started without a way to read its configuration again",
            ));
        };
        let (config, kept) = shared.live.get().config.adopt_live(loader()?);
        let env = HandlerEnv {
            // One record of missing programs for `/ready`, across reloads.
            missing: shared.missing_programs.clone(),
            ..HandlerEnv::for_config(&config, shared.client.agent().clone())
        };
        let (registry, schedules) = super::handlers_and_schedules(&config, &env, &self.extra)?;
        Ok(Checked {
            config,
            registry,
            schedules,
            kept,
        })
    }
}

/// Puts a checked reload in effect: log level, API key, limits, then the
/// settings the roles read; grows the pool (the poller shrinks it), wakes
/// the poller to claim with the new types, and hands the scheduler its
/// schedules (starting it when it had none). A long poll already on the
/// wire is left to end: cancelling it could give back tasks it has just
/// brought, and run them twice.
fn apply(shared: &Arc<WorkerState>, checked: Checked, threads: Roles<'_>) {
    let Checked {
        config,
        registry,
        schedules,
        kept,
    } = checked;
    if let Err(e) = crate::logging::reload(&config) {
        log::warn!("reload: the log level stays as it was: {e}");
    }
    if let Some(warning) = restart_warning(&kept) {
        log::warn!("{warning}");
    }
    shared
        .client
        .set_api_key(config.api_key.as_ref().map(|k| k.expose()));
    shared.limiter.reconfigure(registry.limits());
    let before = shared.live.get();
    let settings = Settings::after(&before, config, registry);
    let (processors_wanted, types) = (settings.config.concurrent_tasks, settings.types.clone());
    // Before the new handlers take a task: a new type's first outcome has its own label.
    shared.stats.add_types(&types);
    shared.live.set(settings);
    if let Err(e) = threads.processors.grow() {
        log::error!("reload: cannot start more processors: {e}");
    }
    shared.shutdown.wake();
    match threads.scheduler {
        Some(thread) => thread.reload(schedules),
        None => match SchedulerThread::spawn(shared, schedules) {
            Ok(started) => *threads.scheduler = started,
            Err(e) => log::error!("reload: cannot start the scheduler: {e}"),
        },
    }
    shared.reloads.applied(kept);
    log::info!("configuration reloaded: {processors_wanted} processor(s), handlers for {types:?}");
}

/// What the roles read while the worker runs, as one snapshot: a task runs
/// to its end under the snapshot it started with.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The configuration in effect (its restart-only keys as at the start).
    pub(crate) config: Config,
    /// Task type → handler.
    pub(crate) registry: Registry,
    /// The types with handlers: the claim's `types`.
    pub(crate) types: Vec<String>,
    /// Types that reloads took away: a task of one, claimed as the reload
    /// came, goes back retryable, for a worker that still handles it.
    pub(crate) removed: BTreeSet<String>,
}

impl Settings {
    /// The settings of a start.
    pub(crate) fn new(config: Config, registry: Registry) -> Settings {
        Settings {
            types: registry.types(),
            config,
            registry,
            removed: BTreeSet::new(),
        }
    }

    /// The settings of a reload that follows `before`.
    fn after(before: &Settings, config: Config, registry: Registry) -> Settings {
        let mut settings = Settings::new(config, registry);
        settings.removed = before
            .removed
            .iter()
            .chain(&before.types)
            .filter(|t| settings.registry.get(t).is_none())
            .cloned()
            .collect();
        settings
    }
}

/// The settings in effect, swapped whole by a reload.
#[derive(Debug)]
pub(crate) struct Live(RwLock<Arc<Settings>>);

impl Live {
    pub(crate) fn new(settings: Settings) -> Live {
        Live(RwLock::new(Arc::new(settings)))
    }

    /// The settings in effect now; what a task starts with it keeps.
    pub(crate) fn get(&self) -> Arc<Settings> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `settings` in effect for every read from now on.
    pub(crate) fn set(&self, settings: Settings) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
    }
}

/// The outcome of the last reload.
#[derive(Debug, Clone)]
struct Last {
    at: SystemTime,
    /// The error that refused it, as start-up would have said it.
    error: Option<String>,
    /// The changed keys that keep their value until a restart.
    restart_needed: Vec<Key>,
}

/// Reloads so far and the last one's outcome, for `/status` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Reloads {
    applied: AtomicU64,
    failed: AtomicU64,
    last: Mutex<Option<Last>>,
}

impl Reloads {
    /// Records an applied reload; `restart_needed` are the changed keys it
    /// left as they were.
    pub(crate) fn applied(&self, restart_needed: Vec<Key>) {
        self.applied.fetch_add(1, Relaxed);
        self.set_last(None, restart_needed);
    }

    /// Records a reload refused for `error`.
    pub(crate) fn failed(&self, error: String) {
        self.failed.fetch_add(1, Relaxed);
        self.set_last(Some(error), Vec::new());
    }

    fn set_last(&self, error: Option<String>, restart_needed: Vec<Key>) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Last {
            at: SystemTime::now(),
            error,
            restart_needed,
        });
    }

    /// `/status`'s `reload`: counts and the last outcome (`null` before one).
    pub(crate) fn status(&self) -> Value {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        json!({
            "applied": self.applied.load(Relaxed),
            "failed": self.failed.load(Relaxed),
            "last": last.map(|l| json!({
                "ok": l.error.is_none(),
                "at": crate::timestamp::format(l.at),
                "error": l.error,
                "restart_needed": l.restart_needed.iter().map(|k| k.env()).collect::<Vec<_>>(),
            })),
        })
    }

    /// The reload counter of `/metrics`.
    pub(crate) fn render(&self, out: &mut String) {
        family(
            out,
            "taskworker_reloads_total",
            Kind::Counter,
            "Configuration reloads (SIGHUP) by result: applied, or failed and changed nothing.",
            &[
                (labels(&[("result", "applied")]), self.applied.load(Relaxed)),
                (labels(&[("result", "failed")]), self.failed.load(Relaxed)),
            ],
        );
    }
}

/// The one warning for changed keys that need a restart, naming each.
pub(crate) fn restart_warning(keys: &[Key]) -> Option<String> {
    if keys.is_empty() {
        return None;
    }
    let names: Vec<&str> = keys.iter().map(|k| k.env()).collect();
    Some(format!(
        "reload: {} changed but take effect only after a restart; kept as they were",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_reload_takes_live_keys_and_keeps_the_others() {
        let old = Config {
            worker_id: "w1".into(),
            concurrent_tasks: 2,
            log_level: log::LevelFilter::Info,
            ..Config::default()
        };
        let new = Config {
            worker_id: "w2".into(),
            health_addr: None,
            concurrent_tasks: 5,
            timeout: Duration::from_secs(9),
            log_level: log::LevelFilter::Debug,
            ..Config::default()
        };
        let (merged, kept) = old.adopt_live(new);
        assert_eq!(merged.concurrent_tasks, 5);
        assert_eq!(merged.timeout, Duration::from_secs(9));
        assert_eq!(merged.log_level, log::LevelFilter::Debug);
        assert_eq!(merged.worker_id, "w1");
        assert_eq!(merged.health_addr, old.health_addr);
        assert_eq!(kept, [Key::WorkerId, Key::HealthAddr]);
        assert_eq!(
            restart_warning(&kept).unwrap(),
            "reload: WORKER_ID, HEALTH_ADDR changed but take effect only after a restart; kept as they were"
        );
        assert_eq!(restart_warning(&[]), None);
        // Every key that has no field of its own is live (API_KEY_FILE is
        // read into API_KEY): `adopt_live` would miss a restart-only one.
        for spec in crate::config::KEYS {
            let has_field = Config::default()
                .values()
                .iter()
                .any(|(k, _)| *k == spec.key);
            assert!(has_field || spec.live, "{}", spec.env);
        }
    }

    #[test]
    fn removed_types_are_remembered_until_a_reload_brings_them_back() {
        let registry = |types: &[&str]| {
            let mut r = Registry::new();
            for t in types {
                r.insert(*t, |_: &crate::Task, _: &crate::Context| Ok(Value::Null));
            }
            r
        };
        let start = Settings::new(Config::default(), registry(&["a", "b"]));
        let one = Settings::after(&start, Config::default(), registry(&["a"]));
        assert_eq!(one.removed, BTreeSet::from(["b".to_string()]));
        let two = Settings::after(&one, Config::default(), registry(&["c"]));
        assert_eq!(
            two.removed,
            BTreeSet::from(["a".to_string(), "b".to_string()])
        );
        let three = Settings::after(&two, Config::default(), registry(&["a", "b"]));
        assert_eq!(three.removed, BTreeSet::from(["c".to_string()]));
    }

    #[test]
    fn the_record_shows_the_last_outcome_and_counts() {
        let reloads = Reloads::default();
        assert_eq!(reloads.status()["last"], Value::Null);
        reloads.failed("config: worker.timeout: \"soon\" is not a duration".into());
        let status = reloads.status();
        assert_eq!(status["failed"], 1);
        assert_eq!(status["last"]["ok"], false);
        assert!(status["last"]["error"]
            .as_str()
            .unwrap()
            .contains("worker.timeout"));
        reloads.applied(vec![Key::StateDir]);
        let status = reloads.status();
        assert_eq!(status["applied"], 1);
        assert_eq!(status["last"]["ok"], true);
        assert_eq!(status["last"]["restart_needed"], json!(["STATE_DIR"]));
        let mut text = String::new();
        reloads.render(&mut text);
        assert!(
            text.contains("taskworker_reloads_total{result=\"applied\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("taskworker_reloads_total{result=\"failed\"} 1"),
            "{text}"
        );
    }
}
