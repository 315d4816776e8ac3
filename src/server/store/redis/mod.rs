//! The Redis store: the queue in Redis or Valkey, shared by any number of
//! servers. Every change is one Lua script (one round trip, atomic for all
//! servers); parked long polls (no thread each) are woken through pub/sub on
//! one dedicated connection per server; the timer of every server sweeps due
//! leases and delayed tasks, which is safe since each sweep is a script, and
//! ends its own parked claims' waits.
//!
//! Keys, all under the hash tag `{prefix}` (one slot on Redis Cluster):
//! `{p}:t:<id>` the task (hash), `{p}:h:<id>` its newest attempts (list of
//! JSON), `{p}:ready` and `{p}:ready:<type>` claimable tasks (sorted by
//! priority, then `{p}:rank`, the order they became claimable; a paused
//! type's are not in `{p}:ready`), `{p}:paused` (set of types),
//! `{p}:delayed`, `{p}:expiring`, `{p}:leases`, `{p}:finished` (sorted by
//! when), `{p}:all` and `{p}:s:<status>[:<type>]` (by enqueue order, for
//! listings), `{p}:counts`, `{p}:pcounts` (`<priority>:<status>`) and
//! `{p}:tcounts` (`<status>:<type>`), `{p}:workers` (by last seen) with
//! `{p}:w:<worker>` (its counts), `{p}:tp:<minute>` (completed and failed;
//! they expire), `{p}:c:<claim id>` and `{p}:cc:<claim id>` (a claim's tasks,
//! a cancelled claim; both expire), `{p}:totals`, `{p}:seq`; channels
//! `{p}:wake` (a task of a type became ready) and `{p}:cancel` (a claim id
//! was cancelled).

mod link;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver, Sender};
use redis::{Script, Value as RedisValue};
use serde_json::Value;

use self::link::Link;
use super::{Claim, Report, Snapshot, Store, StoreError};
use crate::error::Error;
use crate::server::admin::{
    Counts, ListQuery, Minute, Page, Stats, StatusCounts, TypeView, WorkerView,
};
use crate::server::clock::parse_ms;
use crate::server::queue::{QueueConfig, ReportError, Totals};
use crate::server::record::{Attempt, Failure, Lease, Status, TaskRecord};
use crate::server::waiters::{Waiter, Waiters, Wake};
use crate::task::{ClaimRequest, CompleteBody, EnqueueRequest, FailBody, Priority, Task};

/// The timer sweeps at least this often: a lease or delayed task due on
/// another server's account is seen within it.
const TICK_MAX: Duration = Duration::from_millis(250);
/// How often the subscriber looks up from its socket to see whether the
/// server stops; costs Redis nothing.
const SUBSCRIBER_POLL: Duration = Duration::from_millis(200);
/// The longest `delay_seconds` honoured, as for the memory store.
const MAX_DELAY: Duration = crate::bounded::FOREVER;

struct Scripts {
    enqueue: Script,
    claim: Script,
    report: Script,
    heartbeat: Script,
    cancel: Script,
    release: Script,
    tick: Script,
    read: Script,
    admin: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let with = |body: &str| Script::new(&format!("{}\n{body}", include_str!("prelude.lua")));
        Scripts {
            enqueue: with(include_str!("enqueue.lua")),
            claim: with(include_str!("claim.lua")),
            report: with(include_str!("report.lua")),
            heartbeat: with(include_str!("heartbeat.lua")),
            cancel: with(include_str!("cancel.lua")),
            release: with(include_str!("release.lua")),
            tick: with(include_str!("tick.lua")),
            read: with(include_str!("read.lua")),
            admin: with(include_str!("admin.lua")),
        }
    }
}

/// The queue in Redis.
pub struct Redis {
    shared: Arc<Shared>,
    stop_tx: Mutex<Option<Sender<()>>>,
    stop_rx: Receiver<()>,
    /// Wakes the timer when a parked claim's deadline is nearer than its sleep.
    timer_kicked: Receiver<()>,
    subscriber: Mutex<Option<JoinHandle<()>>>,
    started: Instant,
}

struct Shared {
    link: Link,
    scripts: Scripts,
    base: String,
    cfg: QueueConfig,
    waiters: Mutex<Waiters>,
    timer_kick: Sender<()>,
    stopping: AtomicBool,
}

impl Shared {
    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `script` with the queue's rules and `args`.
    fn call(&self, script: &Script, args: &[String]) -> Result<RedisValue, StoreError> {
        self.link.run(|con| {
            let mut inv = script.key(&self.base);
            inv.arg(self.cfg.lease_ms)
                .arg(self.cfg.backoff_base_ms)
                .arg(self.cfg.backoff_max_ms)
                .arg(self.cfg.retain_ms);
            for a in args {
                inv.arg(a);
            }
            inv.invoke::<RedisValue>(con)
        })
    }
}

impl Redis {
    /// Connects to `url` (`redis://` or `rediss://`), with `password` when
    /// the URL has none, and keeps the queue `prefix` there.
    pub fn open(
        url: &str,
        password: Option<&str>,
        prefix: &str,
        cfg: QueueConfig,
    ) -> Result<Redis, Error> {
        let mut info: redis::ConnectionInfo = url
            .parse()
            .map_err(|e| Error::config("--store", format!("{}: {e}", mask(url))))?;
        if info.redis.password.is_none() {
            info.redis.password = password.map(str::to_string);
        }
        let name = mask(url);
        let client = redis::Client::open(info)
            .map_err(|e| Error::config("--store", format!("{name}: {e}")))?;
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(Error::config(
                "--store-prefix",
                format!("{prefix:?}: expected a non-empty name without braces"),
            ));
        }
        let (timer_kick, timer_kicked) = bounded(1);
        let shared = Arc::new(Shared {
            link: Link::new(client, name),
            scripts: Scripts::new(),
            base: format!("{{{prefix}}}"),
            cfg,
            waiters: Mutex::new(Waiters::default()),
            timer_kick,
            stopping: AtomicBool::new(false),
        });
        // Not fatal: a server that starts while Redis restarts serves 503s
        // until it is back, as it would had Redis gone away a moment later.
        if let Err(e) = shared
            .link
            .run(|con| redis::cmd("PING").query::<String>(con))
        {
            log::warn!("{e}");
        }
        let sub = Arc::clone(&shared);
        let subscriber = thread::Builder::new()
            .name("taskworker-serve-redis-sub".into())
            .spawn(move || subscribe(&sub))
            .map_err(|e| Error::io("starting the Redis subscriber thread", e))?;
        let (stop_tx, stop_rx) = bounded(0);
        Ok(Redis {
            shared,
            stop_tx: Mutex::new(Some(stop_tx)),
            stop_rx,
            timer_kicked,
            subscriber: Mutex::new(Some(subscriber)),
            started: Instant::now(),
        })
    }

    /// Runs the read script with `args`.
    fn read(&self, args: &[&str]) -> Result<RedisValue, StoreError> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.shared.call(&self.shared.scripts.read, &args)
    }

    /// Runs the admin script's `what` on `arg` (a task id or a type).
    fn admin(&self, what: &str, arg: &str) -> Result<(), StoreError> {
        let args = [what.to_string(), arg.to_string()];
        let answer = self.shared.call(&self.shared.scripts.admin, &args)?;
        report(arg, &answer).map(|_| ())
    }

    fn claim_once(&self, req: &ClaimRequest) -> Result<(Vec<Task>, bool), StoreError> {
        let ext = self.shared.cfg.extensions;
        let max = match req.max_tasks {
            Some(n) if ext => n.clamp(1, crate::server::queue::MAX_BATCH as u32),
            _ => 1,
        };
        let mut args = vec![
            req.worker_id.clone(),
            req.claim_id.clone().filter(|_| ext).unwrap_or_default(),
            max.to_string(),
        ];
        if ext {
            args.extend(req.types.iter().flatten().cloned());
        }
        let answer = self.shared.call(&self.shared.scripts.claim, &args)?;
        let items = array(&answer);
        if text(items.first()) == "cancelled" {
            return Ok((Vec::new(), false));
        }
        let tasks: Vec<Task> = items
            .get(1)
            .map(array)
            .unwrap_or_default()
            .iter()
            .filter_map(record)
            .map(|r| r.to_task(ext))
            .collect();
        Ok((tasks, true))
    }
}

impl Store for Redis {
    fn enqueue(&self, req: &EnqueueRequest) -> Result<(TaskRecord, bool), StoreError> {
        let delay_ms = req
            .delay_seconds
            .filter(|d| d.is_finite() && *d > 0.0)
            .map(|d| crate::bounded::millis(crate::bounded::seconds_clamped(d, MAX_DELAY)))
            .unwrap_or(0);
        let params = req
            .parameters
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let args = vec![
            req.id.clone().unwrap_or_default(),
            req.task_type.clone(),
            params.to_string(),
            priority_rank(req.priority.unwrap_or_default()).to_string(),
            req.max_attempts
                .unwrap_or(self.shared.cfg.max_attempts)
                .max(1)
                .to_string(),
            req.timeout_seconds
                .map(|t| t.to_string())
                .unwrap_or_default(),
            delay_ms.to_string(),
            self.shared.cfg.id_prefix.clone(),
            ms_arg(req.run_at.as_deref()),
            ms_arg(req.expires_at.as_deref()),
        ];
        let answer = self.shared.call(&self.shared.scripts.enqueue, &args)?;
        let items = array(&answer);
        let created = matches!(items.first(), Some(RedisValue::Int(1)));
        let rec = items.get(1).and_then(record).ok_or_else(malformed)?;
        Ok((rec, created))
    }

    fn claim(&self, req: &ClaimRequest, waiter: Option<Waiter>) -> Result<Claim, StoreError> {
        // Reserved before the script runs: a wake published after it ran is
        // held for this claim, one published before finds its task claimed.
        let ticket = waiter
            .filter(|_| !self.shared.stopping.load(Ordering::SeqCst))
            .map(|waiter| self.shared.waiters().reserve(waiter));
        let claimed = self.claim_once(req);
        let Some(ticket) = ticket else {
            return claimed.map(|(tasks, _)| Claim::Tasks(tasks));
        };
        let mut waiters = self.shared.waiters();
        match claimed {
            Ok((tasks, true)) if tasks.is_empty() => {
                if waiters.arm(ticket) {
                    // The nearest deadline now: the timer must wake sooner.
                    let _ = self.shared.timer_kick.try_send(());
                }
                Ok(Claim::Parked)
            }
            claimed => {
                // A wake this claim no longer needs goes to the next.
                if waiters.withdraw(ticket) == Some(Wake::Check) {
                    waiters.wake_oldest();
                }
                claimed.map(|(tasks, _)| Claim::Tasks(tasks))
            }
        }
    }

    fn forget_gone(&self) {
        self.shared.waiters().forget_gone();
    }

    fn pass_on(&self, types: Option<&[String]>) {
        // Which types have a ready task is in Redis: over-wake instead.
        self.shared.waiters().pass_on(types);
    }

    fn release(&self, worker_id: &str, handed: &[(String, u32)]) -> Result<usize, StoreError> {
        let mut args = vec![worker_id.to_string()];
        for (id, attempt) in handed {
            args.push(id.clone());
            args.push(attempt.to_string());
        }
        let answer = self.shared.call(&self.shared.scripts.release, &args)?;
        Ok(usize::try_from(int(&answer)).unwrap_or(0))
    }

    /// Every outcome in one script (`report.lua`): one round trip, and one
    /// sync of Redis's append-only file for a batch, where single reports
    /// wait for one each.
    fn report_many(
        &self,
        reports: Vec<Report>,
    ) -> Result<Vec<Result<Status, ReportError>>, StoreError> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = Vec::with_capacity(reports.len() * 6);
        let ids: Vec<String> = reports
            .into_iter()
            .map(|report| {
                let (kind, item, id) = match report {
                    Report::Complete(id, body) => ("complete", complete_args(&id, &body), id),
                    Report::Fail(id, body) => ("fail", fail_args(&id, &body), id),
                };
                args.push(kind.to_string());
                args.extend(item);
                id
            })
            .collect();
        let answers = array(&self.shared.call(&self.shared.scripts.report, &args)?);
        let mut results = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            results.push(match report(id, answers.get(i).ok_or_else(malformed)?) {
                Ok(status) => Ok(Status::parse(&status).unwrap_or(Status::Failed)),
                Err(StoreError::Report(refused)) => Err(refused),
                Err(e) => return Err(e),
            });
        }
        Ok(results)
    }

    fn heartbeat(&self, id: &str, worker_id: &str) -> Result<u64, StoreError> {
        let args = vec![id.to_string(), worker_id.to_string()];
        let answer = self.shared.call(&self.shared.scripts.heartbeat, &args)?;
        let until = report(id, &answer)?;
        until.parse().map_err(|_| malformed())
    }

    fn cancel_claim(&self, claim_id: &str) -> Result<usize, StoreError> {
        // This server's parked claim ends at once; the others' on the message.
        self.shared.waiters().cancel(claim_id);
        let answer = self
            .shared
            .call(&self.shared.scripts.cancel, &[claim_id.to_string()])?;
        Ok(usize::try_from(int(&answer)).unwrap_or(0))
    }

    fn task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let answer = self.read(&["get", id])?;
        Ok(record(&answer))
    }

    fn page(&self, q: &ListQuery) -> Result<Page, StoreError> {
        let limit = q.limit.clamp(1, crate::server::admin::MAX_PAGE).to_string();
        let status = q.status.map(Status::as_str).unwrap_or_default();
        let prio = q.priority.map(|p| priority_rank(p).to_string());
        let before = q.before.map(|b| b.to_string());
        let answer = self.read(&[
            "page",
            status,
            q.task_type.as_deref().unwrap_or_default(),
            prio.as_deref().unwrap_or_default(),
            &limit,
            before.as_deref().unwrap_or_default(),
        ])?;
        let items = array(&answer);
        Ok(Page {
            tasks: items
                .get(1)
                .map(array)
                .unwrap_or_default()
                .iter()
                .filter_map(record)
                .collect(),
            next: text(items.first()).parse().ok(),
        })
    }

    fn cancel(&self, id: &str) -> Result<(), StoreError> {
        self.admin("cancel", id)
    }

    fn retry(&self, id: &str) -> Result<(), StoreError> {
        self.admin("retry", id)
    }

    fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.admin("delete", id)
    }

    fn set_paused(&self, task_type: &str, paused: bool) -> Result<(), StoreError> {
        self.admin(if paused { "pause" } else { "resume" }, task_type)
    }

    fn types(&self) -> Result<Vec<TypeView>, StoreError> {
        let answer = self.read(&["types"])?;
        let items = array(&answer);
        let mut by_type: HashMap<String, StatusCounts> = HashMap::new();
        for (field, n) in pairs(items.first()) {
            let Some((status, task_type)) = field.split_once(':') else {
                continue;
            };
            if let Some(st) = Status::parse(status) {
                by_type.entry(task_type.to_string()).or_default()[st.index()] = count(&n);
            }
        }
        let paused = items
            .get(1)
            .map(array)
            .unwrap_or_default()
            .iter()
            .map(|v| text(Some(v)))
            .collect::<Vec<_>>();
        Ok(crate::server::admin::type_views(&by_type, paused))
    }

    fn workers(&self) -> Result<Vec<WorkerView>, StoreError> {
        let answer = self.read(&["workers"])?;
        Ok(array(&answer)
            .iter()
            .map(|w| {
                let f = array(w);
                let n = |i: usize| count(&text(f.get(i)));
                WorkerView {
                    worker_id: text(f.first()),
                    last_seen: n(1),
                    running: n(2),
                    completed: n(3),
                    failed: n(4),
                }
            })
            .collect())
    }

    fn stats(&self) -> Result<Stats, StoreError> {
        let answer = self.read(&["stats"])?;
        let items = array(&answer);
        let mut counts = Counts::default();
        let by_status = pairs(items.first());
        counts.by_status = Status::ALL.map(|s| by_status.get(s.as_str()).map_or(0, |n| count(n)));
        for (field, n) in pairs(items.get(1)) {
            let Some((prio, status)) = field.split_once(':') else {
                continue;
            };
            let (Ok(p), Some(st)) = (prio.parse::<usize>(), Status::parse(status)) else {
                continue;
            };
            if let Some(row) = counts.by_priority.get_mut(p) {
                row[st.index()] = count(&n);
            }
        }
        let oldest = int(items.get(2).unwrap_or(&RedisValue::Nil));
        let now = u64::try_from(int(items.get(3).unwrap_or(&RedisValue::Nil))).unwrap_or(0);
        let throughput = items
            .get(4)
            .map(array)
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let f = array(m);
                let n = |i: usize| count(&text(f.get(i)));
                Minute {
                    start: n(0),
                    completed: n(1),
                    failed: n(2),
                }
            })
            .collect();
        Ok(Stats {
            counts,
            oldest_queued_ms: u64::try_from(oldest).ok().map(|at| now.saturating_sub(at)),
            throughput,
        })
    }

    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let answer = self.read(&["counts"])?;
        let items = array(&answer);
        let counts = pairs(items.first());
        let totals = pairs(items.get(1));
        let n = |map: &HashMap<String, String>, k: &str| {
            map.get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .map_or(0, |v| u64::try_from(v).unwrap_or(0))
        };
        Ok(Snapshot {
            counts: Status::ALL.map(|s| n(&counts, s.as_str())),
            totals: Totals {
                enqueued: n(&totals, "enqueued"),
                delivered: n(&totals, "delivered"),
                claims_served: n(&totals, "claims_served"),
                claims_empty: n(&totals, "claims_empty"),
                completed: n(&totals, "completed"),
                failed: n(&totals, "failed"),
                retried: n(&totals, "retried"),
                lease_expired: n(&totals, "lease_expired"),
                released: n(&totals, "released"),
                heartbeats: n(&totals, "heartbeats"),
            },
            waiting: self.shared.waiters().len(),
            journal_syncs: None,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    fn failure(&self) -> Option<String> {
        self.shared.link.failure()
    }

    fn run_timer(&self) {
        while !self.shared.stopping.load(Ordering::SeqCst) {
            let sleep = match self.shared.call(&self.shared.scripts.tick, &[]) {
                Ok(RedisValue::Int(ms)) if ms >= 0 => {
                    Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(TICK_MAX)
                }
                _ => TICK_MAX,
            };
            let now = Instant::now();
            let mut waiters = self.shared.waiters();
            waiters.expire(now);
            let sleep = waiters
                .next_deadline()
                .map_or(sleep, |at| sleep.min(at.saturating_duration_since(now)));
            drop(waiters);
            select! {
                recv(self.stop_rx) -> _ => break,
                recv(self.timer_kicked) -> _ => {}
                default(sleep) => {}
            }
        }
    }

    fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.waiters().stop_all();
        // Dropping the only sender wakes the timer.
        self.stop_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    fn close(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let handle = self
            .subscriber
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// The subscriber thread: wakes parked claims on `{p}:wake`, ends them on
/// `{p}:cancel`; reconnects with backoff, and after a reconnect has every
/// parked claim look again, since a wake may have been missed meanwhile.
fn subscribe(shared: &Shared) {
    let wake = format!("{}:wake", shared.base);
    let cancel = format!("{}:cancel", shared.base);
    let mut wait = Duration::from_millis(100);
    let mut was_down = false;
    while !shared.stopping.load(Ordering::SeqCst) {
        let connected = shared.link.connect().and_then(|mut con| {
            con.set_read_timeout(Some(SUBSCRIBER_POLL))?;
            let mut pubsub = con.as_pubsub();
            pubsub.subscribe(&wake)?;
            pubsub.subscribe(&cancel)?;
            if was_down {
                log::info!("redis store {}: wake-ups resumed", shared.link.name);
                was_down = false;
            }
            wait = Duration::from_millis(100);
            shared.waiters().wake_all();
            loop {
                if shared.stopping.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let msg = match pubsub.get_message() {
                    Ok(msg) => msg,
                    Err(e) if e.is_timeout() => continue,
                    Err(e) => return Err(e),
                };
                let payload: String = msg.get_payload().unwrap_or_default();
                if msg.get_channel_name() == wake {
                    shared.waiters().wake_one(&payload);
                } else {
                    shared.waiters().cancel(&payload);
                }
            }
        });
        if let Err(e) = connected {
            if !was_down {
                log::warn!("redis store {}: wake-ups lost: {e}", shared.link.name);
                was_down = true;
            }
            // Parked claims look again when they time out; a reconnect wakes them all.
            let deadline = crate::bounded::instant_after(Instant::now(), wait);
            while Instant::now() < deadline && !shared.stopping.load(Ordering::SeqCst) {
                thread::sleep(SUBSCRIBER_POLL.min(wait));
            }
            wait = wait.saturating_mul(2).min(Duration::from_secs(5));
        }
    }
}

/// The URL without its password, for logs and errors.
fn mask(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn priority_rank(p: Priority) -> u8 {
    match p {
        Priority::High => 0,
        Priority::Medium => 1,
        Priority::Low => 2,
    }
}

fn malformed() -> StoreError {
    StoreError::NotDurable("redis store: malformed answer from a script".into())
}

/// A time argument: clock ms of an RFC 3339 time already checked, `''` for none.
fn ms_arg(time: Option<&str>) -> String {
    time.and_then(parse_ms)
        .map(|ms| ms.to_string())
        .unwrap_or_default()
}

/// A count as a script answers it (never below zero).
fn count(n: &str) -> u64 {
    n.parse::<i64>()
        .map_or(0, |v| u64::try_from(v).unwrap_or(0))
}

/// The five arguments of `report.lua` for a complete of task `id` (as a
/// fail's, the fourth empty).
fn complete_args(id: &str, body: &CompleteBody) -> [String; 5] {
    [
        id.to_string(),
        body.worker_id.clone().unwrap_or_default(),
        body.result.to_string(),
        String::new(),
        body.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
    ]
}

/// The five arguments of `report.lua` for a fail of task `id`; the failure
/// as a task's history keeps it (a [`Failure`] in JSON).
fn fail_args(id: &str, body: &FailBody) -> [String; 5] {
    let failure = Failure {
        error: body.error.clone(),
        error_type: body.error_type.clone(),
        retryable: body.retryable,
        traceback: body.traceback.clone(),
    };
    // Strings and a bool: serializing them cannot fail.
    let failure = serde_json::to_value(&failure).unwrap_or_default();
    [
        id.to_string(),
        body.worker_id.clone().unwrap_or_default(),
        failure.to_string(),
        if body.retryable == Some(true) {
            "1"
        } else {
            ""
        }
        .to_string(),
        body.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
    ]
}

/// A report script's answer: `{'ok', value}`, `{'not_found'}`, `{'gone'}`
/// or `{'conflict', why}`.
fn report(id: &str, answer: &RedisValue) -> Result<String, StoreError> {
    let items = array(answer);
    match text(items.first()).as_str() {
        "ok" => Ok(match items.get(1) {
            Some(RedisValue::Int(n)) => n.to_string(),
            other => text(other),
        }),
        "not_found" => Err(ReportError::NotFound(id.to_string()).into()),
        "gone" => Err(ReportError::Gone(id.to_string()).into()),
        "conflict" => Err(ReportError::Conflict(text(items.get(1))).into()),
        _ => Err(malformed()),
    }
}

fn array(v: &RedisValue) -> Vec<RedisValue> {
    match v {
        RedisValue::Array(items) => items.clone(),
        _ => Vec::new(),
    }
}

fn text(v: Option<&RedisValue>) -> String {
    match v {
        Some(RedisValue::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(RedisValue::SimpleString(s)) => s.clone(),
        Some(RedisValue::Int(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn int(v: &RedisValue) -> i64 {
    match v {
        RedisValue::Int(n) => *n,
        other => text(Some(other)).parse().unwrap_or(0),
    }
}

/// A flat `HGETALL` answer as a map.
fn pairs(v: Option<&RedisValue>) -> HashMap<String, String> {
    let items = v.map(array).unwrap_or_default();
    items
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (text(c.first()), text(c.get(1))))
        .collect()
}

/// A task from a script's view `{HGETALL of the task, its attempts}`.
fn record(v: &RedisValue) -> Option<TaskRecord> {
    let items = array(v);
    let f = pairs(items.first());
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
    let json = |k: &str| f.get(k).and_then(|v| serde_json::from_str::<Value>(v).ok());
    let lease = f.get("worker").map(|w| Lease {
        worker_id: w.clone(),
        claim_id: f.get("cid").cloned(),
        claimed_at: num("claimed_at").unwrap_or(0),
        expires_at: num("expires").unwrap_or(0),
    });
    let history = items
        .get(1)
        .map(array)
        .unwrap_or_default()
        .iter()
        .filter_map(|a| serde_json::from_str::<Attempt>(&text(Some(a))).ok())
        .collect();
    Some(TaskRecord {
        id: f.get("id")?.clone(),
        task_type: f.get("type")?.clone(),
        parameters: json("params").unwrap_or_else(|| Value::Object(Default::default())),
        priority: match num("prio") {
            Some(0) => Priority::High,
            Some(2) => Priority::Low,
            _ => Priority::Medium,
        },
        max_attempts: num("max").and_then(|n| u32::try_from(n).ok()).unwrap_or(1),
        timeout_seconds: f.get("timeout").and_then(|t| t.parse().ok()),
        created_at: num("created").unwrap_or(0),
        seq: num("seq").unwrap_or(0),
        status: f.get("status").and_then(|s| Status::parse(s))?,
        attempt: num("attempt")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        ready_at: num("ready_at").unwrap_or(0),
        expires_at: num("exp_at"),
        lease,
        result: json("result"),
        error: f
            .get("error")
            .and_then(|e| serde_json::from_str::<Failure>(e).ok()),
        history,
        finished_at: num("finished"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_hides_the_password_only() {
        assert_eq!(mask("redis://u:secret@h:6379/2"), "redis://***@h:6379/2");
        assert_eq!(mask("redis://h:6379"), "redis://h:6379");
    }
}
