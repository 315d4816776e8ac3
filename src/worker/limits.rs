//! Per-type limits: how many tasks of a type may run at once (`concurrency`)
//! and how fast they may start (`rate`, a token bucket with a `burst`).
//! [`Limits`] is the pure state, with time passed in; [`Limiter`] shares it
//! between the poller (which takes a slot and a token for each task it hands
//! on, and asks which types have headroom) and the processors (which free
//! the slot when their handler returns), and holds the claimed tasks that
//! wait for their type, which only a server that ignores `types` hands out.
//! A reload changes the limits in place: slots taken stay taken.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::bounded::instant_after;
use crate::task::Task;

/// The limits of one task type. The default limits nothing.
///
/// ```
/// use taskworker::{Limit, Rate};
/// // At most 2 at once, and 100 starts an hour (bursts of 1).
/// let limit = Limit { concurrency: Some(2), rate: Some(Rate::per_hour(100)) };
/// # let _ = limit;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    /// How many tasks of the type may run at once (within `CONCURRENT_TASKS`).
    pub concurrency: Option<u32>,
    /// How fast tasks of the type may start.
    pub rate: Option<Rate>,
}

impl Limit {
    /// Whether it limits anything.
    pub fn is_limited(&self) -> bool {
        self.concurrency.is_some() || self.rate.is_some()
    }
}

/// A rate of starts: `starts` per `per`, as a token bucket that holds up to
/// `burst` starts; one token comes back every `per / starts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    starts: u32,
    per: Duration,
    burst: u32,
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

impl Rate {
    /// `n` starts a second (at least 1), in bursts of up to `n`.
    pub fn per_second(n: u32) -> Rate {
        Rate::new(n, SECOND)
    }

    /// `n` starts a minute (at least 1), in bursts of up to `n`.
    pub fn per_minute(n: u32) -> Rate {
        Rate::new(n, MINUTE)
    }

    /// `n` starts an hour (at least 1), in bursts of up to `n / 60` (at
    /// least 1): an hour's worth at once would defeat an hourly limit.
    pub fn per_hour(n: u32) -> Rate {
        Rate::new(n, HOUR)
    }

    fn new(n: u32, per: Duration) -> Rate {
        let starts = n.max(1);
        let burst = if per >= HOUR {
            (starts / 60).max(1)
        } else {
            starts
        };
        Rate { starts, per, burst }
    }

    /// The same rate with bursts of up to `burst` starts (at least 1).
    pub fn with_burst(self, burst: u32) -> Rate {
        Rate {
            burst: burst.max(1),
            ..self
        }
    }

    /// The most starts at once after a quiet spell.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Reads `N/s`, `N/min` or `N/hour`, N a whole number above 0.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let usage = || format!("{text:?} is not a rate: use N/s, N/min or N/hour, N above 0");
        let (n, unit) = text.split_once('/').ok_or_else(usage)?;
        let n: u32 = n.trim().parse().map_err(|_| usage())?;
        if n == 0 {
            return Err(usage());
        }
        match unit.trim() {
            "s" => Ok(Rate::per_second(n)),
            "min" => Ok(Rate::per_minute(n)),
            "hour" => Ok(Rate::per_hour(n)),
            _ => Err(usage()),
        }
    }

    /// The time one token takes to come back, rounded up to the nanosecond
    /// so that rounding never lets more than `starts` through per `per`.
    fn interval(&self) -> Duration {
        let nanos = self.per.as_nanos().div_ceil(u128::from(self.starts));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per {
            SECOND => "s",
            MINUTE => "min",
            _ => "hour",
        };
        write!(f, "{}/{unit} (burst {})", self.starts, self.burst)
    }
}

/// One limited type's state.
#[derive(Debug)]
struct TypeState {
    limit: Limit,
    /// Slots taken: tasks handed on and not yet returned.
    running: u32,
    /// The token bucket as a "theoretical arrival time" (GCRA), since the
    /// epoch: the bucket is full when it is not after now, and each start
    /// pushes it one interval later.
    tat: Duration,
}

impl TypeState {
    fn free_slots(&self) -> u32 {
        self.limit
            .concurrency
            .map_or(u32::MAX, |c| c.saturating_sub(self.running))
    }

    /// Tokens in the bucket at `now` (since the epoch).
    fn tokens(&self, now: Duration) -> u32 {
        let Some(rate) = self.limit.rate else {
            return u32::MAX;
        };
        let interval = rate.interval();
        let allowance = now
            .saturating_add(interval.saturating_mul(rate.burst))
            .saturating_sub(self.tat.max(now));
        let n = allowance.as_nanos() / interval.as_nanos().max(1);
        u32::try_from(n).unwrap_or(u32::MAX).min(rate.burst)
    }

    /// When the next token comes back, since the epoch: `now` when one is there.
    fn next_token(&self, now: Duration) -> Duration {
        match self.limit.rate {
            Some(rate) if self.tokens(now) == 0 => {
                let interval = rate.interval();
                self.tat
                    .saturating_sub(interval.saturating_mul(rate.burst - 1))
            }
            _ => now,
        }
    }
}

/// The per-type slots and token buckets; time is passed in. A type without
/// limits always has headroom.
#[derive(Debug)]
pub struct Limits {
    types: HashMap<String, TypeState>,
    epoch: Instant,
}

impl Limits {
    /// The state of `limits` at `now`: no slot taken, every bucket full.
    pub fn new(limits: &BTreeMap<String, Limit>, now: Instant) -> Limits {
        let types = limits
            .iter()
            .filter(|(_, l)| l.is_limited())
            .map(|(t, l)| {
                let state = TypeState {
                    limit: *l,
                    running: 0,
                    tat: Duration::ZERO,
                };
                (t.clone(), state)
            })
            .collect();
        Limits { types, epoch: now }
    }

    fn since(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.epoch)
    }

    /// How many tasks of `task_type` may start at `now`: the lesser of its
    /// free slots and its tokens; `u32::MAX` for a type without limits.
    pub fn headroom(&self, task_type: &str, now: Instant) -> u32 {
        self.types
            .get(task_type)
            .map_or(u32::MAX, |s| s.free_slots().min(s.tokens(self.since(now))))
    }

    /// Takes a slot and a token of `task_type` for a task that starts at
    /// `now`, if it has headroom; false (and nothing taken) if not.
    pub fn take(&mut self, task_type: &str, now: Instant) -> bool {
        let now = self.since(now);
        // An unlimited type's running tasks are counted too, so that a
        // reload that limits it knows how many hold a slot already.
        let state = self
            .types
            .entry(task_type.to_string())
            .or_insert_with(|| TypeState {
                limit: Limit::default(),
                running: 0,
                tat: Duration::ZERO,
            });
        if state.free_slots() == 0 || state.tokens(now) == 0 {
            return false;
        }
        state.running += 1;
        if let Some(rate) = state.limit.rate {
            state.tat = state.tat.max(now).saturating_add(rate.interval());
        }
        true
    }

    /// Frees the slot of a task of `task_type` that has returned; true
    /// when its type is limited (the slot may let a task of it start).
    pub fn free(&mut self, task_type: &str) -> bool {
        let Some(state) = self.types.get_mut(task_type) else {
            return false;
        };
        state.running = state.running.saturating_sub(1);
        let limited = state.limit.is_limited();
        // Kept only while it limits or counts something: a server that
        // hands out any type cannot grow the table.
        if state.running == 0 && !limited {
            self.types.remove(task_type);
        }
        limited
    }

    /// Applies `limits` (a reload): each type keeps the slots its running
    /// tasks hold; a type whose rate changed starts with a full bucket of
    /// the new rate, one whose rate is the same keeps its bucket.
    pub fn reconfigure(&mut self, limits: &BTreeMap<String, Limit>) {
        for (task_type, limit) in limits.iter().filter(|(_, l)| l.is_limited()) {
            self.types
                .entry(task_type.clone())
                .or_insert_with(|| TypeState {
                    limit: *limit,
                    running: 0,
                    tat: Duration::ZERO,
                });
        }
        self.types.retain(|task_type, state| {
            let limit = limits.get(task_type).copied().unwrap_or_default();
            if limit.rate != state.limit.rate {
                state.tat = Duration::ZERO;
            }
            state.limit = limit;
            limit.is_limited() || state.running > 0
        });
    }

    /// Tasks of `task_type` holding a slot.
    pub fn running(&self, task_type: &str) -> u32 {
        self.types.get(task_type).map_or(0, |s| s.running)
    }

    /// When `task_type`, which has no headroom at `now`, gets some by time
    /// alone (its next token, while a slot is free); `None` when only a
    /// returning task can give it some, or it has headroom already.
    pub fn reopens_at(&self, task_type: &str, now: Instant) -> Option<Instant> {
        let state = self.types.get(task_type)?;
        let since = self.since(now);
        if state.free_slots() == 0 || state.tokens(since) > 0 {
            return None;
        }
        Some(instant_after(self.epoch, state.next_token(since)))
    }

    /// The limited types.
    pub fn limited(&self) -> impl Iterator<Item = &str> {
        self.types
            .iter()
            .filter(|(_, s)| s.limit.is_limited())
            .map(|(t, _)| t.as_str())
    }
}

/// A claimed task that waits for its type to have headroom.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// Unique within this process (a key for its heartbeats).
    pub id: u64,
    /// The task.
    pub task: Task,
    /// When it began to wait.
    pub since: Instant,
    /// Its lease, when the server leases (heartbeats every third of it).
    pub lease: Option<Duration>,
}

struct State {
    limits: Limits,
    waiting: VecDeque<Waiting>,
    next_id: u64,
}

/// The limits as the worker's threads share them, with the tasks that wait.
pub struct Limiter {
    state: Mutex<State>,
    /// A slot came free: the poller looks again.
    freed_tx: Sender<()>,
    freed_rx: Receiver<()>,
    /// A task began to wait: the heartbeat thread plans its beats.
    queued_tx: Sender<()>,
    queued_rx: Receiver<()>,
}

impl Limiter {
    /// The limiter of `limits`, starting at `now`.
    pub fn new(limits: &BTreeMap<String, Limit>, now: Instant) -> Limiter {
        let (freed_tx, freed_rx) = bounded(1);
        let (queued_tx, queued_rx) = bounded(1);
        Limiter {
            state: Mutex::new(State {
                limits: Limits::new(limits, now),
                waiting: VecDeque::new(),
                next_id: 1,
            }),
            freed_tx,
            freed_rx,
            queued_tx,
            queued_rx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the limits and the number of waiting tasks under the lock.
    pub(crate) fn inspect<R>(&self, f: impl FnOnce(&Limits, usize) -> R) -> R {
        let state = self.lock();
        f(&state.limits, state.waiting.len())
    }

    /// Takes a slot and a token for `task`, which starts at once; or, when
    /// its type has no headroom, keeps it waiting (behind any other of its
    /// type) and gives it back as `None`.
    pub(crate) fn admit(&self, task: Task, lease: Option<Duration>, now: Instant) -> Option<Task> {
        let mut state = self.lock();
        let queued_before = state
            .waiting
            .iter()
            .any(|w| w.task.task_type == task.task_type);
        if !queued_before && state.limits.take(&task.task_type, now) {
            return Some(task);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.waiting.push_back(Waiting {
            id,
            task,
            since: now,
            lease,
        });
        drop(state);
        let _ = self.queued_tx.try_send(());
        None
    }

    /// Takes, oldest first, up to `max` waiting tasks whose type has
    /// headroom at `now`, with a slot and a token each.
    pub(crate) fn start_waiting(&self, max: usize, now: Instant) -> Vec<Task> {
        let mut state = self.lock();
        let state = &mut *state;
        let mut started = Vec::new();
        let mut i = 0;
        // A type that had no headroom for its oldest task has none for the
        // later ones either: they keep their order.
        let mut full: Vec<String> = Vec::new();
        while i < state.waiting.len() && started.len() < max {
            let task_type = &state.waiting[i].task.task_type;
            if !full.contains(task_type) && state.limits.take(task_type, now) {
                if let Some(w) = state.waiting.remove(i) {
                    started.push(w.task);
                }
            } else {
                full.push(task_type.clone());
                i += 1;
            }
        }
        started
    }

    /// Applies the limits of a reload; tells the poller, which claims anew.
    pub(crate) fn reconfigure(&self, limits: &BTreeMap<String, Limit>) {
        self.lock().limits.reconfigure(limits);
        let _ = self.freed_tx.try_send(());
    }

    /// Frees the slot of a task of `task_type` whose handler returned, and
    /// tells the poller when that may change what it does: the type is
    /// limited, or tasks wait. A slot of an unlimited type with none
    /// waiting changes nothing, and its processor's idle message wakes the
    /// poller anyway: no second wake-up per task.
    pub(crate) fn free(&self, task_type: &str) {
        let mut state = self.lock();
        let limited = state.limits.free(task_type);
        let waiting = !state.waiting.is_empty();
        drop(state);
        if limited || waiting {
            let _ = self.freed_tx.try_send(());
        }
    }

    /// Receives a message when a slot comes free.
    pub(crate) fn freed(&self) -> &Receiver<()> {
        &self.freed_rx
    }

    /// Receives a message when a task begins to wait.
    pub(crate) fn queued(&self) -> &Receiver<()> {
        &self.queued_rx
    }

    /// The earliest instant a waiting task's type gets a token, while it has
    /// a free slot (a freed slot sends on [`Limiter::freed`] instead).
    pub(crate) fn next_start(&self, now: Instant) -> Option<Instant> {
        let state = self.lock();
        state
            .waiting
            .iter()
            .filter_map(|w| state.limits.reopens_at(&w.task.task_type, now))
            .min()
    }

    /// The waiting tasks, oldest first.
    pub fn waiting(&self) -> Vec<Waiting> {
        self.lock().waiting.iter().cloned().collect()
    }

    /// The waiting tasks that hold a lease, oldest first.
    pub(crate) fn leased_waiting(&self) -> Vec<Waiting> {
        let state = self.lock();
        state
            .waiting
            .iter()
            .filter(|w| w.lease.is_some())
            .cloned()
            .collect()
    }

    /// How many tasks wait, by type; every limited type is listed, with 0
    /// when none of its tasks waits.
    pub fn waiting_by_type(&self) -> BTreeMap<String, usize> {
        let state = self.lock();
        let mut counts: BTreeMap<String, usize> =
            state.limits.limited().map(|t| (t.to_string(), 0)).collect();
        for w in &state.waiting {
            *counts.entry(w.task.task_type.clone()).or_default() += 1;
        }
        counts
    }

    /// Each limited type's limits and use, for `/status`.
    pub fn usage(&self) -> serde_json::Value {
        let state = self.lock();
        let mut out = serde_json::Map::new();
        for (task_type, s) in state
            .limits
            .types
            .iter()
            .filter(|(_, s)| s.limit.is_limited())
        {
            let waiting = state
                .waiting
                .iter()
                .filter(|w| &w.task.task_type == task_type)
                .count();
            out.insert(
                task_type.clone(),
                serde_json::json!({
                    "concurrency": s.limit.concurrency,
                    "rate": s.limit.rate.map(|r| r.to_string()),
                    "running": state.limits.running(task_type),
                    "waiting": waiting,
                }),
            );
        }
        serde_json::Value::Object(out)
    }

    /// Takes the waiting task `id` out (its lease was lost); `None` when it
    /// has started meanwhile.
    pub(crate) fn remove_waiting(&self, id: u64) -> Option<Waiting> {
        let mut state = self.lock();
        let at = state.waiting.iter().position(|w| w.id == id)?;
        state.waiting.remove(at)
    }

    /// Takes every waiting task out (the drain gives them back).
    pub(crate) fn take_waiting(&self) -> Vec<Waiting> {
        self.lock().waiting.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(entries: &[(&str, Limit)]) -> (Limits, Instant) {
        let map = entries.iter().map(|(t, l)| (t.to_string(), *l)).collect();
        let t0 = Instant::now();
        (Limits::new(&map, t0), t0)
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        instant_after(t0, Duration::from_millis(ms))
    }

    #[test]
    fn rates_are_read_with_their_default_bursts() {
        assert_eq!(Rate::parse("10/s").unwrap(), Rate::per_second(10));
        assert_eq!(Rate::parse("10/s").unwrap().burst(), 10);
        assert_eq!(Rate::parse(" 30 / min ").unwrap().burst(), 30);
        assert_eq!(
            Rate::parse("100/hour").unwrap().burst(),
            1,
            "100/60 rounds down"
        );
        assert_eq!(Rate::parse("600/hour").unwrap().burst(), 10);
        assert_eq!(Rate::parse("30/hour").unwrap().burst(), 1, "at least 1");
        assert_eq!(Rate::per_hour(100).with_burst(5).burst(), 5);
        for bad in [
            "", "10", "0/s", "-1/s", "1.5/s", "10/day", "10/", "/s", "ten/s", "10/sec",
        ] {
            let err = Rate::parse(bad).unwrap_err();
            assert!(err.contains("N/s, N/min or N/hour"), "{bad}: {err}");
        }
        assert_eq!(Rate::per_minute(5).to_string(), "5/min (burst 5)");
    }

    #[test]
    fn a_type_without_limits_always_has_headroom() {
        let (mut l, t0) = limits(&[("a", Limit::default())]);
        assert_eq!(l.headroom("a", t0), u32::MAX);
        assert_eq!(l.headroom("other", t0), u32::MAX);
        assert!(l.take("other", t0));
        assert_eq!(l.reopens_at("other", t0), None);
        assert_eq!(l.limited().count(), 0, "an empty limit is no limit");
    }

    #[test]
    fn concurrency_counts_slots_until_they_are_freed() {
        let conc = Limit {
            concurrency: Some(2),
            rate: None,
        };
        let (mut l, t0) = limits(&[("a", conc)]);
        assert_eq!(l.headroom("a", t0), 2);
        assert!(l.take("a", t0) && l.take("a", t0));
        assert_eq!(l.headroom("a", t0), 0);
        assert!(!l.take("a", t0), "a full type takes nothing");
        assert_eq!(l.running("a"), 2);
        assert_eq!(
            l.reopens_at("a", at(t0, 10_000)),
            None,
            "time alone frees no slot"
        );
        l.free("a");
        assert_eq!(l.headroom("a", t0), 1);
        l.free("a");
        l.free("a");
        assert_eq!(l.running("a"), 0, "never below 0");
    }

    #[test]
    fn a_bucket_starts_full_and_refills_one_token_an_interval() {
        let rate = Limit {
            concurrency: None,
            rate: Some(Rate::per_second(5).with_burst(2)),
        };
        let (mut l, t0) = limits(&[("a", rate)]);
        assert_eq!(l.headroom("a", t0), 2, "the burst");
        assert!(l.take("a", t0) && l.take("a", t0));
        assert!(!l.take("a", t0));
        assert_eq!(l.reopens_at("a", t0), Some(at(t0, 200)));
        assert_eq!(l.headroom("a", at(t0, 199)), 0);
        assert_eq!(l.headroom("a", at(t0, 200)), 1);
        assert_eq!(l.headroom("a", at(t0, 400)), 2);
        assert_eq!(
            l.headroom("a", at(t0, 60_000)),
            2,
            "never more than the burst"
        );
        // A start at 400 leaves one token; the next comes 200 ms later.
        assert!(l.take("a", at(t0, 400)));
        assert_eq!(l.headroom("a", at(t0, 400)), 1);
        assert!(l.take("a", at(t0, 400)));
        assert_eq!(l.reopens_at("a", at(t0, 400)), Some(at(t0, 600)));
    }

    #[test]
    fn starts_in_any_window_stay_within_rate_plus_burst() {
        let rate = Rate::per_second(10).with_burst(3);
        let (mut l, t0) = limits(&[(
            "a",
            Limit {
                concurrency: None,
                rate: Some(rate),
            },
        )]);
        // Greedy: start whenever a token is there, on a 1 ms clock, for 5 s.
        let mut starts = Vec::new();
        for ms in 0..5000 {
            while l.take("a", at(t0, ms)) {
                starts.push(ms);
            }
        }
        for (i, first) in starts.iter().enumerate() {
            let in_window = starts[i..]
                .iter()
                .take_while(|&&s| s < first + 1000)
                .count();
            assert!(in_window <= 13, "{in_window} starts from {first} ms");
        }
        assert!(starts.len() >= 50, "the rate is reached: {}", starts.len());
    }

    #[test]
    fn headroom_is_the_lesser_of_slots_and_tokens() {
        let both = Limit {
            concurrency: Some(1),
            rate: Some(Rate::per_minute(10)),
        };
        let (mut l, t0) = limits(&[("a", both)]);
        assert_eq!(l.headroom("a", t0), 1);
        assert!(l.take("a", t0));
        assert_eq!(l.headroom("a", t0), 0);
        assert_eq!(l.reopens_at("a", t0), None, "the slot is the limit");
        l.free("a");
        assert_eq!(l.headroom("a", t0), 1, "9 tokens left");
        let hourly = Limit {
            concurrency: None,
            rate: Some(Rate::per_hour(100)),
        };
        let (mut l, t0) = limits(&[("mail", hourly)]);
        assert!(l.take("mail", t0));
        assert_eq!(l.reopens_at("mail", t0), Some(at(t0, 36_000)));
    }

    fn task(id: &str, task_type: &str) -> Task {
        Task::new(id, task_type, json!({}))
    }

    /// A limiter where type `a` runs one task at a time and others are free.
    fn one_slot_for_a(t0: Instant) -> Limiter {
        let one = Limit {
            concurrency: Some(1),
            rate: None,
        };
        Limiter::new(&[("a".to_string(), one)].into_iter().collect(), t0)
    }

    #[test]
    fn only_a_slot_that_may_start_a_task_wakes_the_poller() {
        let t0 = Instant::now();
        let limiter = one_slot_for_a(t0);
        assert!(limiter.admit(task("1", "b"), None, t0).is_some());
        limiter.free("b");
        assert!(
            limiter.freed().try_recv().is_err(),
            "an unlimited type with nothing waiting: its idle processor says enough"
        );
        assert!(limiter.admit(task("2", "a"), None, t0).is_some());
        limiter.free("a");
        assert!(limiter.freed().try_recv().is_ok(), "a limited type's slot");
        assert!(limiter.admit(task("3", "a"), None, t0).is_some());
        assert!(limiter.admit(task("4", "a"), None, t0).is_none());
        assert!(limiter.admit(task("5", "b"), None, t0).is_some());
        limiter.free("b");
        assert!(
            limiter.freed().try_recv().is_ok(),
            "with tasks waiting, any slot may let one start"
        );
    }

    #[test]
    fn tasks_of_a_full_type_wait_in_order_and_start_when_it_has_headroom() {
        let t0 = Instant::now();
        let limiter = one_slot_for_a(t0);
        assert!(limiter.admit(task("1", "a"), None, t0).is_some());
        assert!(limiter.admit(task("2", "a"), None, t0).is_none());
        assert!(
            limiter.queued().try_recv().is_ok(),
            "the heartbeat thread hears of it"
        );
        assert!(
            limiter.admit(task("3", "b"), None, t0).is_some(),
            "other types pass"
        );
        assert!(limiter.admit(task("4", "a"), None, t0).is_none());
        assert_eq!(limiter.waiting_by_type().get("a"), Some(&2));
        assert!(limiter.start_waiting(8, t0).is_empty());
        limiter.free("a");
        assert!(limiter.freed().try_recv().is_ok(), "the poller hears of it");
        let started: Vec<String> = limiter
            .start_waiting(8, t0)
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(started, vec!["2"], "one slot, the oldest first");
        // A new task of the type goes behind the one still waiting.
        limiter.free("a");
        assert!(limiter.admit(task("5", "a"), None, t0).is_none());
        let ids: Vec<String> = limiter.waiting().into_iter().map(|w| w.task.id).collect();
        assert_eq!(ids, vec!["4", "5"]);
        let lost = limiter.waiting()[1].id;
        assert!(limiter.remove_waiting(lost).is_some());
        assert!(limiter.remove_waiting(lost).is_none());
        assert_eq!(limiter.take_waiting().len(), 1);
        assert_eq!(limiter.waiting_by_type().get("a"), Some(&0), "still listed");
    }

    #[test]
    fn a_waiting_task_of_a_rate_limited_type_knows_when_it_can_start() {
        let rate = Limit {
            concurrency: None,
            rate: Some(Rate::per_second(2).with_burst(1)),
        };
        let map = [("a".to_string(), rate)].into_iter().collect();
        let t0 = Instant::now();
        let limiter = Limiter::new(&map, t0);
        assert!(limiter.admit(task("1", "a"), None, t0).is_some());
        assert_eq!(limiter.next_start(t0), None, "nothing waits");
        assert!(limiter.admit(task("2", "a"), None, t0).is_none());
        assert_eq!(limiter.next_start(t0), Some(at(t0, 500)));
        assert!(limiter.start_waiting(1, at(t0, 499)).is_empty());
        assert_eq!(limiter.start_waiting(1, at(t0, 500)).len(), 1);
    }

    #[test]
    fn a_reload_keeps_the_slots_running_tasks_hold() {
        let (mut l, t0) = limits(&[]);
        // Two tasks of a type without limits run when a reload limits it to 2.
        assert!(l.take("a", t0) && l.take("a", t0));
        let two = Limit {
            concurrency: Some(2),
            rate: None,
        };
        let map: BTreeMap<String, Limit> = [("a".to_string(), two)].into_iter().collect();
        l.reconfigure(&map);
        assert_eq!(l.headroom("a", t0), 0, "both slots are held");
        assert_eq!(l.limited().collect::<Vec<_>>(), ["a"]);
        l.free("a");
        assert_eq!(l.headroom("a", t0), 1);
        // The limit goes: no headroom check, and the type leaves the table
        // once its last task returns.
        l.reconfigure(&BTreeMap::new());
        assert_eq!(l.headroom("a", t0), u32::MAX);
        assert_eq!(l.limited().count(), 0);
        l.free("a");
        assert!(l.types.is_empty());
        // A changed rate starts with a full bucket of the new rate.
        let slow = Limit {
            concurrency: None,
            rate: Some(Rate::per_hour(60)),
        };
        l.reconfigure(&[("a".to_string(), slow)].into_iter().collect());
        assert!(l.take("a", t0));
        assert_eq!(l.headroom("a", t0), 0);
        let fast = Limit {
            concurrency: None,
            rate: Some(Rate::per_second(5)),
        };
        l.reconfigure(&[("a".to_string(), fast)].into_iter().collect());
        assert_eq!(l.headroom("a", t0), 5);
    }
}
