//! The scheduler thread: sleeps until the next firing of a schedule or the
//! stop, enqueues the firing as the task `<name>@<slot time>` (so a fleet
//! with the same configuration enqueues it once), retries a failed enqueue
//! with backoff until the next slot and then counts a miss. Against a
//! server without `POST /tasks` it runs the firing here, through the same
//! handler. It remembers the last fired slot of each schedule in
//! `STATE_DIR`, for `catch_up: last`, and keeps the board that `/status`
//! and `/metrics` read. A reload hands it new schedules: an unchanged one
//! keeps its next firing, a new or changed one fires next after both now
//! and its last fired slot, so no slot fires twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{
    after, bounded, never, select, unbounded, Receiver, RecvTimeoutError, Sender,
};
use serde_json::{json, Value};

use crate::backoff::Backoff;
use crate::client::Enqueued;
use crate::context::{CancelReason, CancelToken, Context};
use crate::error::Error;
use crate::prometheus::{family, labels, Kind};
use crate::schedule::{parse_slot, slot_time, CatchUp, Schedule};
use crate::task::Task;
use crate::worker::processor::run_with_retries;
use crate::worker::WorkerState;

/// The file in `STATE_DIR` that remembers each schedule's last fired slot.
pub const STATE_FILE: &str = "schedules.json";
/// The longest single wait: a wall clock that jumps is noticed this soon.
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// First and longest wait between tries of a failed enqueue.
const RETRY_BASE: Duration = Duration::from_millis(500);
const RETRY_CAP: Duration = Duration::from_secs(60);
/// How long the server is taken to lack `POST /tasks` before it is asked again.
const LOCAL_FOR: Duration = Duration::from_secs(3600);

/// What the scheduler shows: per schedule, its next firing and its counts.
#[derive(Debug, Default)]
pub struct Board {
    entries: Mutex<BTreeMap<String, Entry>>,
}

#[derive(Debug, Default, Clone)]
struct Entry {
    task_type: String,
    when: String,
    next: Option<i64>,
    next_local: Option<String>,
    last: Option<i64>,
    local: bool,
    /// By result: `enqueued`, `existing`, `ran_here`.
    firings: BTreeMap<&'static str, u64>,
    misses: u64,
    /// Firings run here, by result: `ok`, `failed`.
    outcomes: BTreeMap<&'static str, u64>,
}

impl Board {
    /// Keeps only the schedules whose name `keep` accepts.
    fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|name, _| keep(name));
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut Entry)) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        f(entries.entry(name.to_string()).or_default());
    }

    /// Each schedule's next firing, for `/status` (an empty list without schedules).
    pub fn status(&self) -> Value {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .map(|(name, e)| {
                json!({
                    "name": name,
                    "type": e.task_type,
                    "when": e.when,
                    "next": e.next.map(slot_time),
                    "next_local": e.next_local,
                    "last": e.last.map(slot_time),
                    "runs": if e.local { "here" } else { "enqueued" },
                    "misses": e.misses,
                })
            })
            .collect()
    }

    /// The schedules' families of `/metrics` (none without schedules).
    pub fn render(&self, out: &mut String) {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.is_empty() {
            return;
        }
        let mut firings = Vec::new();
        let mut misses = Vec::new();
        let mut outcomes = Vec::new();
        let mut next = Vec::new();
        for (name, e) in entries.iter() {
            for (result, n) in &e.firings {
                firings.push((labels(&[("schedule", name), ("result", result)]), *n));
            }
            misses.push((labels(&[("schedule", name)]), e.misses));
            for (result, n) in &e.outcomes {
                outcomes.push((labels(&[("schedule", name), ("result", result)]), *n));
            }
            if let Some(t) = e.next.and_then(|t| u64::try_from(t).ok()) {
                next.push((labels(&[("schedule", name)]), t));
            }
        }
        family(
            out,
            "taskworker_schedule_firings_total",
            Kind::Counter,
            "Schedule firings by result (enqueued, existing: another worker enqueued it, ran_here).",
            &firings,
        );
        family(
            out,
            "taskworker_schedule_misses_total",
            Kind::Counter,
            "Schedule slots not fired: the enqueue failed until the next slot, or the slot was past its expires_after.",
            &misses,
        );
        family(
            out,
            "taskworker_schedule_runs_here_total",
            Kind::Counter,
            "Firings run by this worker (server without POST /tasks), by result (ok, failed).",
            &outcomes,
        );
        family(
            out,
            "taskworker_schedule_next_firing_timestamp_seconds",
            Kind::Gauge,
            "Unix time of each schedule's next slot.",
            &next,
        );
    }
}

/// The running scheduler thread.
pub struct SchedulerThread {
    thread: JoinHandle<()>,
    /// Disconnects when the thread ends.
    done: Receiver<()>,
    /// The cancel token of a firing running here, if one is.
    running: Arc<Mutex<Option<CancelToken>>>,
    /// The schedules of a reload.
    reload: Sender<Vec<Schedule>>,
}

impl SchedulerThread {
    /// Hands the thread the schedules of a reload; it plans anew at once
    /// (or after a firing it runs here).
    pub fn reload(&self, schedules: Vec<Schedule>) {
        let _ = self.reload.send(schedules);
    }

    /// Starts `taskworker-scheduler` for `schedules`; `None` when there are none.
    pub fn spawn(
        shared: &Arc<WorkerState>,
        schedules: Vec<Schedule>,
    ) -> Result<Option<SchedulerThread>, Error> {
        if schedules.is_empty() {
            return Ok(None);
        }
        let (done_tx, done) = bounded::<()>(0);
        let (reload, reloads) = unbounded();
        let running = Arc::new(Mutex::new(None));
        let mut scheduler = Scheduler {
            reloads,
            shared: shared.clone(),
            state_file: shared.config.state_dir.as_ref().map(|d| d.join(STATE_FILE)),
            last: BTreeMap::new(),
            local_until: None,
            running: running.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("taskworker-scheduler".into())
            .spawn(move || {
                let _done = done_tx;
                scheduler.run(schedules)
            })
            .map_err(|e| Error::io("starting taskworker-scheduler", e))?;
        Ok(Some(SchedulerThread {
            thread,
            done,
            running,
            reload,
        }))
    }

    /// Waits until `deadline` for the thread (which stops with the worker)
    /// and a firing it runs here; then cancels that firing and gives it
    /// `extra` more before leaving it.
    pub fn finish(self, deadline: Instant, extra: Duration) {
        if self.done.recv_deadline(deadline) != Err(crossbeam_channel::RecvTimeoutError::Timeout) {
            let _ = self.thread.join();
            return;
        }
        if let Some(token) = &*self.running.lock().unwrap_or_else(|e| e.into_inner()) {
            token.cancel(CancelReason::Shutdown);
        }
        if self.done.recv_timeout(extra) != Err(RecvTimeoutError::Timeout) {
            let _ = self.thread.join();
        } else {
            log::warn!("the scheduler did not stop in time; leaving it");
        }
    }
}

/// One schedule's next firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    slot: i64,
    /// When to try, in Unix milliseconds.
    at_ms: i64,
}

/// What to do after a failed enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterFailure {
    /// Try again at this time (Unix ms).
    Retry(i64),
    /// The next slot comes first: count a miss.
    Miss,
}

/// A failed enqueue is tried again after `delay` unless the next slot's
/// firing (`next_at_ms`) comes first.
fn after_failure(now_ms: i64, delay: Duration, next_at_ms: Option<i64>) -> AfterFailure {
    let retry = now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
    match next_at_ms {
        Some(next) if retry >= next => AfterFailure::Miss,
        _ => AfterFailure::Retry(retry),
    }
}

/// The first firing of `s` on a start at `now` (Unix seconds), given the
/// slot it last fired (`last`): the latest missed slot at once with
/// `catch_up: last`, else the next slot.
fn first_firing(s: &Schedule, last: Option<i64>, now: i64, now_ms: i64) -> Option<Pending> {
    if s.catch_up == CatchUp::Last {
        if let Some(slot) = last.and_then(|l| s.last_between(l, now)) {
            return Some(Pending {
                slot,
                at_ms: now_ms,
            });
        }
    }
    s.next_after(now).map(|slot| firing(s, slot))
}

/// The firing of `slot`: at the slot plus its jitter.
fn firing(s: &Schedule, slot: i64) -> Pending {
    Pending {
        slot,
        at_ms: s.fires_ms(slot),
    }
}

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The plan of one schedule: its next firing and its enqueue backoff.
type Planned = (Schedule, Option<Pending>, Backoff);

/// The plan after a reload to `schedules` at `now` (Unix ms): a schedule
/// the reload left as it was keeps its plan; a new or changed one fires
/// next at its first slot after both now and the slot it `last` fired: no
/// slot fires twice, and a slot that passed before the reload is not caught up.
fn replan(
    old: Vec<Planned>,
    schedules: Vec<Schedule>,
    last: &BTreeMap<String, i64>,
    now: i64,
) -> Vec<Planned> {
    let mut old: BTreeMap<String, Planned> =
        old.into_iter().map(|p| (p.0.name.clone(), p)).collect();
    schedules
        .into_iter()
        .map(|s| match old.remove(&s.name) {
            Some(kept) if kept.0 == s => kept,
            _ => {
                let after = last
                    .get(&s.name)
                    .map_or(now / 1000, |l| (*l).max(now / 1000));
                let next = s.next_after(after).map(|slot| firing(&s, slot));
                (s, next, Backoff::new(RETRY_BASE, RETRY_CAP))
            }
        })
        .collect()
}

/// What ended a scheduler's wait.
enum Woken {
    /// The wait ran out.
    Time,
    /// A reload brought these schedules.
    Reload(Vec<Schedule>),
    /// The stop.
    Stop,
}

struct Scheduler {
    /// The schedules of each reload.
    reloads: Receiver<Vec<Schedule>>,
    shared: Arc<WorkerState>,
    state_file: Option<PathBuf>,
    /// The last fired slot of each schedule.
    last: BTreeMap<String, i64>,
    /// Until when the server is taken to lack `POST /tasks` (Unix ms).
    local_until: Option<i64>,
    running: Arc<Mutex<Option<CancelToken>>>,
}

impl Scheduler {
    fn run(&mut self, schedules: Vec<Schedule>) {
        if let Some(path) = &self.state_file {
            self.last = load_state(path);
        }
        let now = now_ms();
        let mut plan: Vec<Planned> = schedules
            .into_iter()
            .map(|s| {
                let first = first_firing(&s, self.last.get(&s.name).copied(), now / 1000, now);
                (s, first, Backoff::new(RETRY_BASE, RETRY_CAP))
            })
            .collect();
        for (s, p, _) in &plan {
            self.show(s, p.as_ref());
        }
        let stop = self.shared.shutdown.stopped().clone();
        loop {
            let due = plan
                .iter()
                .enumerate()
                .filter_map(|(i, (_, pending, _))| pending.map(|p| (i, p)))
                .min_by_key(|(_, p)| p.at_ms);
            let now = now_ms();
            // With no firing ahead (no schedule left, or a far cron year)
            // the wait lasts until the stop or a reload.
            let wait = due.map(|(_, p)| {
                let ms = u64::try_from(p.at_ms.saturating_sub(now)).unwrap_or(0);
                Duration::from_millis(ms).min(LONGEST_WAIT)
            });
            if !matches!(due, Some((_, p)) if p.at_ms <= now) {
                match self.wait(&stop, wait) {
                    Woken::Time => continue,
                    Woken::Stop => return,
                    Woken::Reload(schedules) => {
                        plan = self.reload(plan, schedules);
                        continue;
                    }
                }
            }
            let Some((i, p)) = due else { continue };
            let (s, pending, backoff) = &mut plan[i];
            let next = s
                .next_after(p.slot.max(now / 1000))
                .map(|slot| firing(s, slot));
            match self.fire(s, p.slot) {
                Ok(()) => {
                    backoff.reset();
                    *pending = next;
                }
                Err(why) => match after_failure(now, backoff.next_delay(), next.map(|n| n.at_ms)) {
                    AfterFailure::Retry(at_ms) => {
                        log::debug!("schedule {}: {why}; trying again", s.name);
                        *pending = Some(Pending { at_ms, ..p });
                    }
                    AfterFailure::Miss => {
                        log::warn!(
                            "schedule {}: slot {} missed: {why}",
                            s.name,
                            slot_time(p.slot)
                        );
                        self.shared.schedules.update(&s.name, |e| e.misses += 1);
                        backoff.reset();
                        *pending = next;
                    }
                },
            }
            let (s, pending, _) = &plan[i];
            self.show(s, pending.as_ref());
            if self.shared.shutdown.is_stopping() {
                return;
            }
        }
    }

    /// Waits up to `limit` (for ever when `None`) for the stop or a reload.
    fn wait(&self, stop: &Receiver<()>, limit: Option<Duration>) -> Woken {
        let timer = limit.map_or_else(never, after);
        select! {
            recv(stop) -> _ => Woken::Stop,
            recv(self.reloads) -> schedules => match schedules {
                Ok(schedules) => Woken::Reload(schedules),
                Err(_) => Woken::Stop,
            },
            recv(timer) -> _ => Woken::Time,
        }
    }

    /// Plans the schedules of a reload and shows them; those gone leave the board.
    fn reload(&self, plan: Vec<Planned>, schedules: Vec<Schedule>) -> Vec<Planned> {
        let plan = replan(plan, schedules, &self.last, now_ms());
        self.shared
            .schedules
            .retain(|name| plan.iter().any(|(s, _, _)| s.name == name));
        for (s, p, _) in &plan {
            self.show(s, p.as_ref());
        }
        log::info!("schedules reloaded: {} in effect", plan.len());
        plan
    }

    /// Shows a schedule's next firing on the board.
    fn show(&self, s: &Schedule, next: Option<&Pending>) {
        let local = self.local_until.is_some();
        self.shared.schedules.update(&s.name, |e| {
            e.task_type.clone_from(&s.task_type);
            e.when = s.describe();
            e.next = next.map(|p| p.slot);
            e.next_local = next.map(|p| s.local_time(p.slot));
            e.local = local;
        });
    }

    /// Fires one slot: enqueues it, or runs it here when the server has no
    /// `POST /tasks`. A slot past its `expires_after` is a miss instead:
    /// neither enqueued nor run late. `Err` says why the enqueue failed.
    fn fire(&mut self, s: &Schedule, slot: i64) -> Result<(), String> {
        let id = s.task_id(slot);
        let now = now_ms();
        if self.local_until.is_some_and(|until| now >= until) {
            self.local_until = None;
        }
        if s.expires_ms(slot).is_some_and(|expires| now > expires) {
            log::warn!(
                "schedule {}: slot {} missed: it could not start within expires_after ({:?})",
                s.name,
                slot_time(slot),
                s.expires_after.unwrap_or_default()
            );
            self.shared.schedules.update(&s.name, |e| e.misses += 1);
            self.remember(s, slot);
            return Ok(());
        }
        let result = if self.local_until.is_some() {
            "ran_here"
        } else {
            match self.shared.client.enqueue(&s.request(slot, now)) {
                Ok(Enqueued::Created) => {
                    log::info!("schedule {}: enqueued {id}", s.name);
                    "enqueued"
                }
                Ok(Enqueued::Existing) => {
                    log::debug!("schedule {}: {id} was enqueued already", s.name);
                    "existing"
                }
                Ok(Enqueued::Unsupported(status)) => {
                    log::info!(
                        "schedule {}: the task API has no POST /tasks (status {status}); schedules run on this worker",
                        s.name
                    );
                    let until = i64::try_from(LOCAL_FOR.as_millis()).unwrap_or(i64::MAX);
                    self.local_until = Some(now_ms().saturating_add(until));
                    "ran_here"
                }
                Err(e) => return Err(format!("enqueue of {id} failed: {e}")),
            }
        };
        self.remember(s, slot);
        self.shared
            .schedules
            .update(&s.name, |e| *e.firings.entry(result).or_default() += 1);
        if result == "ran_here" {
            self.run_here(s, id);
        }
        Ok(())
    }

    /// Runs a firing on this thread, through the handler of its type.
    fn run_here(&self, s: &Schedule, id: String) {
        let shared = &*self.shared;
        let settings = shared.live.get();
        let Some(handler) = settings.registry.get(&s.task_type) else {
            log::error!("schedule {}: no handler for {:?}", s.name, s.task_type);
            return;
        };
        let mut task = Task::new(id, s.task_type.clone(), s.parameters.clone());
        task.priority = s.priority.unwrap_or_default();
        let ctx = Context::new(settings.config.timeout, 1, shared.worker_id.clone());
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(ctx.cancel.clone());
        let started = Instant::now();
        let policy = settings
            .registry
            .retry_options(&s.task_type)
            .policy(&settings.config);
        let (result, tries) = run_with_retries(handler.as_ref(), &task, &ctx, policy);
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let ms = started.elapsed().as_millis();
        let outcome = match result {
            Ok(_) => {
                log::info!("schedule {}: {} ran here in {ms} ms", s.name, task.id);
                "ok"
            }
            Err(e) => {
                log::warn!(
                    "schedule {}: {} ran here and failed after {tries} tries: {e}",
                    s.name,
                    task.id
                );
                "failed"
            }
        };
        shared
            .schedules
            .update(&s.name, |e| *e.outcomes.entry(outcome).or_default() += 1);
    }

    /// Remembers `slot` as the last fired of `s`, on disk when there is a state directory.
    fn remember(&mut self, s: &Schedule, slot: i64) {
        self.last.insert(s.name.clone(), slot);
        self.shared
            .schedules
            .update(&s.name, |e| e.last = Some(slot));
        if let Some(path) = &self.state_file {
            if let Err(e) = save_state(path, &self.last) {
                log::warn!("cannot write {}: {e}", path.display());
            }
        }
    }
}

/// The last fired slots kept in `path`; none when it is missing or unreadable.
fn load_state(path: &Path) -> BTreeMap<String, i64> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text) else {
        log::warn!(
            "{} is not a JSON object; schedules start afresh",
            path.display()
        );
        return BTreeMap::new();
    };
    map.iter()
        .filter_map(|(name, v)| Some((name.clone(), parse_slot(v.as_str()?)?)))
        .collect()
}

/// Writes the last fired slots, whole or not at all (a new file renamed over the old).
fn save_state(path: &Path, last: &BTreeMap<String, i64>) -> std::io::Result<()> {
    let map: serde_json::Map<String, Value> = last
        .iter()
        .map(|(name, slot)| (name.clone(), Value::String(slot_time(*slot))))
        .collect();
    let tmp = path.with_extension("json.new");
    std::fs::write(&tmp, Value::Object(map).to_string())?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::cron::at;

    fn schedule(spec: Value) -> Schedule {
        Schedule::from_config("s", &spec).unwrap()
    }

    #[test]
    fn a_failed_enqueue_is_retried_until_the_next_slot_then_missed() {
        let d = Duration::from_secs(2);
        assert_eq!(
            after_failure(1000, d, Some(5000)),
            AfterFailure::Retry(3000)
        );
        assert_eq!(after_failure(1000, d, Some(3000)), AfterFailure::Miss);
        assert_eq!(after_failure(1000, d, None), AfterFailure::Retry(3000));
    }

    #[test]
    fn catch_up_last_fires_the_latest_missed_slot_at_once() {
        let last = at(2025, 11, 9, 3, 0);
        let now = at(2025, 11, 12, 9, 0);
        let s = schedule(json!({"cron": "0 3 * * *", "type": "t", "catch_up": "last"}));
        assert_eq!(
            first_firing(&s, Some(last), now, now * 1000),
            Some(Pending {
                slot: at(2025, 11, 12, 3, 0),
                at_ms: now * 1000
            })
        );
        // Nothing missed, nothing remembered, or `none`: the next slot.
        let next = Some(firing(&s, at(2025, 11, 13, 3, 0)));
        assert_eq!(
            first_firing(&s, Some(at(2025, 11, 12, 3, 0)), now, now * 1000),
            next
        );
        assert_eq!(first_firing(&s, None, now, now * 1000), next);
        let none = schedule(json!({"cron": "0 3 * * *", "type": "t"}));
        assert_eq!(first_firing(&none, Some(last), now, now * 1000), next);
    }

    #[test]
    fn a_reload_keeps_unchanged_plans_and_never_fires_a_fired_slot_again() {
        let hourly = schedule(json!({"cron": "0 * * * *", "type": "t"}));
        let now = at(2025, 11, 12, 9, 30);
        let planned = Pending {
            slot: at(2025, 11, 12, 10, 0),
            at_ms: 1,
        };
        let old = vec![(
            hourly.clone(),
            Some(planned),
            Backoff::new(RETRY_BASE, RETRY_CAP),
        )];
        // Unchanged: its plan stays as it was.
        let plan = replan(old, vec![hourly.clone()], &BTreeMap::new(), now * 1000);
        assert_eq!(plan[0].1, Some(planned));
        // Changed: the next slot after now, or after the last fired slot
        // when that is later (a clock set back must not fire it again).
        let every = Schedule::from_config("s", &json!({"every": "15m", "type": "t"})).unwrap();
        let plan = replan(plan, vec![every.clone()], &BTreeMap::new(), now * 1000);
        assert_eq!(plan[0].1.map(|p| p.slot), Some(at(2025, 11, 12, 9, 45)));
        let last = BTreeMap::from([("s".to_string(), at(2025, 11, 12, 10, 0))]);
        let changed = Schedule::from_config("s", &json!({"every": "30m", "type": "t"})).unwrap();
        let plan = replan(plan, vec![changed], &last, now * 1000);
        assert_eq!(plan[0].1.map(|p| p.slot), Some(at(2025, 11, 12, 10, 30)));
        // Removed: gone from the plan.
        assert!(replan(plan, Vec::new(), &last, now * 1000).is_empty());
    }

    #[test]
    fn the_last_fired_slots_survive_a_restart() {
        let dir = crate::test_path("sched");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(STATE_FILE);
        let last = BTreeMap::from([("a".to_string(), 1_762_700_400)]);
        save_state(&path, &last).unwrap();
        assert_eq!(load_state(&path), last);
        std::fs::write(&path, "garbage").unwrap();
        assert!(load_state(&path).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
