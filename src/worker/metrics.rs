//! The worker's counters, shared by every thread and read by the health
//! server: plain atomics on the hot path, rendered as Prometheus text on demand.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::prometheus::{histogram, histogram_series, histogram_start, single};
// The health server adds its own families with these.
pub(crate) use crate::prometheus::{family, labels, Kind};

/// Upper bounds, in seconds, of the latency and duration histograms.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

/// Upper bounds, in seconds, of the pickup delay histogram: a task may wait
/// in the queue from milliseconds to hours.
const PICKUP_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The `type` label of a task whose type has no handler configured: types
/// come from the server, and each label value is a series a scraper keeps.
const OTHER_TYPE: &str = "other";

/// A fixed-bucket histogram of durations.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::with_bounds(&BUCKETS)
    }
}

impl Histogram {
    /// An empty histogram with these bucket bounds (seconds, rising).
    pub fn with_bounds(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(crate::bounded::micros(d), Relaxed);
    }

    /// How many observations.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Each bucket's bound and the observations in it alone.
    fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .zip(self.counts.iter())
            .map(|(bound, n)| (*bound, n.load(Relaxed)))
            .collect()
    }

    fn sum_seconds(&self) -> f64 {
        self.sum_micros.load(Relaxed) as f64 / 1e6
    }

    /// Writes this histogram's samples, labelled with `pairs`.
    fn render_series(&self, out: &mut String, name: &str, pairs: &[(&str, &str)]) {
        let (buckets, sum) = (self.buckets(), self.sum_seconds());
        histogram_series(out, name, pairs, &buckets, self.count(), sum);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let (buckets, sum) = (self.buckets(), self.sum_seconds());
        histogram(out, name, help, &buckets, self.count(), sum);
    }
}

/// Every counter of the worker.
#[derive(Debug)]
pub struct Stats {
    /// When the worker started.
    pub started: Instant,
    /// Claims that brought tasks.
    pub claims_tasks: AtomicU64,
    /// Claims that brought nothing.
    pub claims_empty: AtomicU64,
    /// Claims that failed.
    pub claims_error: AtomicU64,
    /// Claim round-trip time.
    pub claim_latency: Histogram,
    /// Tasks completed.
    pub tasks_completed: AtomicU64,
    /// Tasks failed (reported fail).
    pub tasks_failed: AtomicU64,
    /// Claimed objects without a usable id.
    pub tasks_malformed: AtomicU64,
    /// Local retries of retryable errors.
    pub task_retries: AtomicU64,
    /// The counters by task type, under one lock, taken once per finished task.
    by_type: Mutex<ByType>,
    /// Claim time minus the time the task became due (`run_at`, else `created_at`).
    pub pickup_delay: Histogram,
    /// Processor threads configured.
    pub processors: AtomicUsize,
    /// Tasks in flight now.
    pub inflight: AtomicUsize,
    /// Heartbeats sent.
    pub heartbeats: AtomicU64,
    /// Leases the server took back.
    pub leases_lost: AtomicU64,
    /// Report sends that failed and were tried again.
    pub report_retries: AtomicU64,
    /// Reports dropped because the task was no longer ours (404/409/410).
    pub reports_gone: AtomicU64,
    /// Batch reports (`POST /tasks/report`) sent and answered.
    pub report_batches: AtomicU64,
    /// Outcomes carried by those batches.
    pub report_batch_outcomes: AtomicU64,
    /// Reports waiting for delivery.
    pub reports_pending: AtomicUsize,
    /// Processor threads given up on because their handler ignored a cancel.
    pub stuck_threads: AtomicUsize,
    /// Unix time in ms of the last finished task (0: none yet).
    pub last_task_at_ms: AtomicU64,
}

/// The counters by task type. The values of the `type` label are each type
/// a handler took since the start (a reload adds its new types; a type it
/// takes away keeps its series, since counters never go back), and `other`
/// for any else.
#[derive(Debug)]
struct ByType {
    /// The types, sorted, each with the index of its series in `durations`
    /// and in the outcome counts; `other`'s is 0.
    types: Vec<(Box<str>, usize)>,
    /// Handler running time by index.
    durations: Vec<Histogram>,
    /// Outcomes by `error_type` (`ok` for completions), then by index (a
    /// list shorter than an index counts 0 for it).
    outcomes: BTreeMap<String, Vec<u64>>,
}

impl ByType {
    /// Where `task_type` is in `types`, or would be.
    fn find(&self, task_type: &str) -> Result<usize, usize> {
        self.types.binary_search_by(|(t, _)| (**t).cmp(task_type))
    }

    /// The index of `task_type`'s series: `other` (0) for a type no handler
    /// took. No allocation: a binary search.
    fn index_of(&self, task_type: &str) -> usize {
        self.find(task_type).map_or(0, |at| self.types[at].1)
    }

    /// Every series as (label, index): the types in order, `other` last.
    fn labels(&self) -> Vec<(&str, usize)> {
        let mut labels: Vec<(&str, usize)> = self.types.iter().map(|(t, i)| (&**t, *i)).collect();
        labels.push((OTHER_TYPE, 0));
        labels
    }
}

impl Default for Stats {
    /// Counters for a worker without configured types: every task is `other`.
    fn default() -> Stats {
        Stats::for_types(Vec::new())
    }
}

impl Stats {
    /// Counters for a worker whose handlers take `types`: these are the
    /// values of the `type` label, with `other` for any else.
    pub fn for_types(types: Vec<String>) -> Stats {
        let stats = Stats {
            by_type: Mutex::new(ByType {
                types: Vec::new(),
                durations: vec![Histogram::default()],
                outcomes: BTreeMap::new(),
            }),
            pickup_delay: Histogram::with_bounds(&PICKUP_BUCKETS),
            started: Instant::now(),
            claims_tasks: AtomicU64::new(0),
            claims_empty: AtomicU64::new(0),
            claims_error: AtomicU64::new(0),
            claim_latency: Histogram::default(),
            tasks_completed: AtomicU64::new(0),
            tasks_failed: AtomicU64::new(0),
            tasks_malformed: AtomicU64::new(0),
            task_retries: AtomicU64::new(0),
            processors: AtomicUsize::new(0),
            inflight: AtomicUsize::new(0),
            heartbeats: AtomicU64::new(0),
            leases_lost: AtomicU64::new(0),
            report_retries: AtomicU64::new(0),
            reports_gone: AtomicU64::new(0),
            report_batches: AtomicU64::new(0),
            report_batch_outcomes: AtomicU64::new(0),
            reports_pending: AtomicUsize::new(0),
            stuck_threads: AtomicUsize::new(0),
            last_task_at_ms: AtomicU64::new(0),
        };
        stats.add_types(&types);
        stats
    }

    /// Gives each of `types` that has none its own value of the `type`
    /// label (a reload that added handlers).
    pub fn add_types(&self, types: &[String]) {
        let mut by_type = self.by_type();
        for task_type in types {
            if let Err(at) = by_type.find(task_type) {
                let next = by_type.durations.len();
                by_type.durations.push(Histogram::default());
                by_type.types.insert(at, (task_type.as_str().into(), next));
            }
        }
    }

    fn by_type(&self) -> MutexGuard<'_, ByType> {
        self.by_type.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How many distinct `error_type` labels the outcome counter takes; past
/// that, a new handler word counts as `OTHER`. Handlers choose their own
/// words, and each label is a time series a scraper keeps.
const MAX_OUTCOME_LABELS: usize = 32;

/// The `error_type` label of an outcome: `ok`, a word of the protocol, or a
/// handler's own upper-case word (up to 32 of `A-Z`, `0-9`, `_`) while there
/// is room; anything else is `OTHER`.
fn outcome_label<'a, V>(error_type: &'a str, seen: &BTreeMap<String, V>) -> &'a str {
    use crate::error::error_type::*;
    const PROTOCOL: [&str; 9] = [
        "ok",
        VALIDATION,
        UNKNOWN_TYPE,
        HANDLER,
        TIMEOUT,
        RATE_LIMIT,
        SHUTDOWN,
        LEASE_LOST,
        PANIC,
    ];
    let word = (1..=32).contains(&error_type.len())
        && error_type
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if PROTOCOL.contains(&error_type)
        || seen.contains_key(error_type)
        || (word && seen.len() < MAX_OUTCOME_LABELS)
    {
        error_type
    } else {
        "OTHER"
    }
}

impl Stats {
    /// Records a finished task of `task_type`: `None` for a completion, else
    /// its `error_type`.
    pub fn record_outcome(&self, task_type: &str, error_type: Option<&str>, duration: Duration) {
        match error_type {
            None => self.tasks_completed.fetch_add(1, Relaxed),
            Some(_) => self.tasks_failed.fetch_add(1, Relaxed),
        };
        let now = crate::bounded::millis(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        );
        self.last_task_at_ms.store(now, Relaxed);
        let mut by_type = self.by_type();
        let index = by_type.index_of(task_type);
        by_type.durations[index].observe(duration);
        let outcomes = &mut by_type.outcomes;
        let key = outcome_label(error_type.unwrap_or("ok"), outcomes);
        // A key is allocated once, on its first outcome, not on every task.
        let counts = match outcomes.get_mut(key) {
            Some(counts) => counts,
            None => outcomes.entry(key.to_string()).or_default(),
        };
        if counts.len() <= index {
            counts.resize(index + 1, 0);
        }
        counts[index] += 1;
    }

    /// Tasks finished either way.
    pub fn tasks_processed(&self) -> u64 {
        self.tasks_completed.load(Relaxed) + self.tasks_failed.load(Relaxed)
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let claims = [
            ("tasks", &self.claims_tasks),
            ("empty", &self.claims_empty),
            ("error", &self.claims_error),
        ]
        .map(|(result, n)| (labels(&[("result", result)]), n.load(Relaxed)));
        family(
            &mut out,
            "taskworker_claims_total",
            Kind::Counter,
            "Claims by result (tasks, empty, error).",
            &claims,
        );
        let by_type = self.by_type();
        let type_labels = by_type.labels();
        let mut outcomes = Vec::new();
        for (error_type, counts) in &by_type.outcomes {
            for &(task_type, i) in &type_labels {
                let n = counts.get(i).copied().unwrap_or(0);
                if n > 0 {
                    let pairs = [("type", task_type), ("error_type", error_type.as_str())];
                    outcomes.push((labels(&pairs), n));
                }
            }
        }
        family(
            &mut out,
            "taskworker_outcomes_total",
            Kind::Counter,
            "Finished tasks by type and error_type (ok: completed).",
            &outcomes,
        );
        let counters = [
            (
                "taskworker_tasks_malformed_total",
                "Claimed objects without a usable id.",
                &self.tasks_malformed,
            ),
            (
                "taskworker_task_retries_total",
                "Local retries of retryable errors.",
                &self.task_retries,
            ),
            (
                "taskworker_heartbeats_total",
                "Heartbeats sent.",
                &self.heartbeats,
            ),
            (
                "taskworker_leases_lost_total",
                "Leases the server took back.",
                &self.leases_lost,
            ),
            (
                "taskworker_report_retries_total",
                "Report sends that failed and were tried again.",
                &self.report_retries,
            ),
            (
                "taskworker_reports_gone_total",
                "Reports dropped because the task was no longer ours.",
                &self.reports_gone,
            ),
            (
                "taskworker_report_batches_total",
                "Batch reports sent and answered (POST /tasks/report).",
                &self.report_batches,
            ),
            (
                "taskworker_report_batch_outcomes_total",
                "Outcomes carried by batch reports (divided by the batches: their mean size).",
                &self.report_batch_outcomes,
            ),
        ];
        for (name, help, n) in counters {
            single(&mut out, name, Kind::Counter, help, n.load(Relaxed));
        }
        self.claim_latency.render(
            &mut out,
            "taskworker_claim_latency_seconds",
            "Claim round-trip time, long-poll wait included.",
        );
        let name = "taskworker_task_duration_seconds";
        histogram_start(
            &mut out,
            name,
            "Handler running time by type, local retries included.",
        );
        for (task_type, i) in type_labels {
            // Every handled type, even before its first task; `other` once seen.
            let durations = &by_type.durations[i];
            if i > 0 || durations.count() > 0 {
                durations.render_series(&mut out, name, &[("type", task_type)]);
            }
        }
        drop(by_type);
        self.pickup_delay.render(
            &mut out,
            "taskworker_pickup_delay_seconds",
            "Claim time minus the time the task became due (run_at, else created_at).",
        );
        let busy = self.inflight.load(Relaxed);
        let idle = self.processors.load(Relaxed).saturating_sub(busy);
        family(
            &mut out,
            "taskworker_processors",
            Kind::Gauge,
            "Processor threads by state (busy, idle).",
            &[
                (labels(&[("state", "busy")]), crate::bounded::count(busy)),
                (labels(&[("state", "idle")]), crate::bounded::count(idle)),
            ],
        );
        let gauges = [
            (
                "taskworker_stuck_threads",
                "Processor threads given up on because their handler ignored a cancel.",
                &self.stuck_threads,
            ),
            (
                "taskworker_reports_pending",
                "Reports waiting for delivery.",
                &self.reports_pending,
            ),
        ];
        for (name, help, n) in gauges {
            single(&mut out, name, Kind::Gauge, help, n.load(Relaxed));
        }
        // No sample rather than a false 0 where /proc is missing (a bare chroot).
        let rss: Vec<(String, u64)> = rss_bytes()
            .map(|b| (String::new(), b))
            .into_iter()
            .collect();
        family(
            &mut out,
            "taskworker_resident_memory_bytes",
            Kind::Gauge,
            "Resident set size of the worker process.",
            &rss,
        );
        single(
            &mut out,
            "taskworker_uptime_seconds",
            Kind::Gauge,
            "Seconds since the worker started.",
            self.started.elapsed().as_secs(),
        );
        process_metrics(&mut out);
        out
    }
}

/// How long a claimed task waited to be picked up: its claim time (the
/// server's `claimed_at`, else `now`) minus the time it became due (the
/// later of `created_at` and `run_at`). Both ends come from the server's
/// clock when it sends `claimed_at`, so a skewed local clock does not count;
/// `None` when the task does not say when it became due. A redelivered task
/// counts its earlier attempts too.
pub fn pickup_delay(
    created_at: Option<&str>,
    run_at: Option<&str>,
    claimed_at: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    let parse = |t: Option<&str>| t.and_then(crate::timestamp::parse);
    let due = parse(created_at).max(parse(run_at))?;
    let claimed = parse(claimed_at).unwrap_or(now);
    Some(claimed.duration_since(due).unwrap_or(Duration::ZERO))
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times: `USER_HZ`, 100 on
/// every Linux architecture (the Prometheus client libraries assume it too).
const USER_HZ: f64 = 100.0;

/// The standard `process_*` families of the Prometheus client libraries,
/// read from `/proc/self`; a family whose source is missing (no /proc) is
/// left out rather than shown as a false 0.
fn process_metrics(out: &mut String) {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Numbered as in proc(5): utime is field 14, the third after `)` being field 3.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let cpu = field(14)
        .zip(field(15))
        .map(|(user, system)| (user.saturating_add(system)) as f64 / USER_HZ);
    let start = field(22)
        .zip(boot_time())
        .map(|(ticks, boot)| boot as f64 + ticks as f64 / USER_HZ);
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| crate::bounded::count(d.count()));
    let families: [(&str, Kind, &str, Option<f64>); 5] = [
        (
            "process_cpu_seconds_total",
            Kind::Counter,
            "Total user and system CPU time spent in seconds.",
            cpu,
        ),
        (
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory size in bytes.",
            rss_bytes().map(|b| b as f64),
        ),
        (
            "process_open_fds",
            Kind::Gauge,
            "Number of open file descriptors.",
            open_fds.map(|n| n as f64),
        ),
        (
            "process_max_fds",
            Kind::Gauge,
            "Maximum number of open file descriptors.",
            max_fds().map(|n| n as f64),
        ),
        (
            "process_start_time_seconds",
            Kind::Gauge,
            "Start time of the process since unix epoch in seconds.",
            start,
        ),
    ];
    for (name, kind, help, value) in families {
        let samples: Vec<(String, f64)> = value.map(|v| (String::new(), v)).into_iter().collect();
        family(out, name, kind, help, &samples);
    }
}

/// The system's boot time in Unix seconds, from `btime` in `/proc/stat`.
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The soft limit on open files, from `/proc/self/limits` (`None` when
/// unlimited or unknown).
fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// This process's resident set size, from `VmRSS` in `/proc/self/status`
/// (in kB there whatever the page size, unlike `statm`); `None` without /proc.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let s = Stats::default();
        s.claims_tasks.fetch_add(2, Relaxed);
        s.record_outcome("echo", None, Duration::from_millis(3));
        s.record_outcome("echo", Some("TIMEOUT"), Duration::from_secs(2));
        s.claim_latency.observe(Duration::from_micros(700));
        s.pickup_delay.observe(Duration::from_secs(7));
        let text = s.render();
        assert!(text.contains("taskworker_claims_total{result=\"tasks\"} 2"));
        assert!(text.contains("taskworker_outcomes_total{type=\"other\",error_type=\"TIMEOUT\"} 1"));
        assert!(text.contains("taskworker_outcomes_total{type=\"other\",error_type=\"ok\"} 1"));
        assert!(
            text.contains("taskworker_task_duration_seconds_bucket{type=\"other\",le=\"0.005\"} 1")
        );
        assert!(
            text.contains("taskworker_task_duration_seconds_bucket{type=\"other\",le=\"+Inf\"} 2")
        );
        assert!(text.contains("taskworker_claim_latency_seconds_count 1"));
        assert!(text.contains("taskworker_pickup_delay_seconds_bucket{le=\"10\"} 1"));
        assert_eq!(s.tasks_processed(), 2);
        assert!(rss_bytes().unwrap() > 0);
    }

    #[test]
    fn the_type_label_takes_only_configured_types_and_other() {
        let s = Stats::for_types(vec!["mail".into(), "echo".into()]);
        s.record_outcome("mail", None, Duration::ZERO);
        s.record_outcome("mail", Some("RATE_LIMIT"), Duration::ZERO);
        s.record_outcome("surprise", None, Duration::ZERO);
        s.record_outcome("another\nsurprise", None, Duration::ZERO);
        let text = s.render();
        assert!(text.contains("taskworker_outcomes_total{type=\"mail\",error_type=\"ok\"} 1"));
        assert!(
            text.contains("taskworker_outcomes_total{type=\"mail\",error_type=\"RATE_LIMIT\"} 1")
        );
        assert!(text.contains("taskworker_outcomes_total{type=\"other\",error_type=\"ok\"} 2"));
        assert!(!text.contains("surprise"), "{text}");
        // A configured type's histogram shows before its first task.
        assert!(text.contains("taskworker_task_duration_seconds_count{type=\"echo\"} 0"));
        assert!(text.contains("taskworker_task_duration_seconds_count{type=\"mail\"} 2"));
        assert!(text.contains("taskworker_task_duration_seconds_count{type=\"other\"} 2"));
    }

    #[test]
    fn a_type_added_later_gets_its_own_label_and_earlier_counts_stay() {
        let s = Stats::for_types(vec!["mail".into()]);
        s.record_outcome("mail", None, Duration::ZERO);
        s.record_outcome("sms", None, Duration::ZERO);
        s.add_types(&["sms".into(), "mail".into(), "fax".into()]);
        s.record_outcome("sms", Some("TIMEOUT"), Duration::ZERO);
        s.record_outcome("mail", None, Duration::ZERO);
        let text = s.render();
        for line in [
            "taskworker_outcomes_total{type=\"mail\",error_type=\"ok\"} 2",
            // Its first task came before its handler: that one stays `other`.
            "taskworker_outcomes_total{type=\"other\",error_type=\"ok\"} 1",
            "taskworker_outcomes_total{type=\"sms\",error_type=\"TIMEOUT\"} 1",
            "taskworker_task_duration_seconds_count{type=\"fax\"} 0",
            "taskworker_task_duration_seconds_count{type=\"sms\"} 1",
            "taskworker_task_duration_seconds_count{type=\"other\"} 1",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
        assert!(!text.contains("type=\"sms\",error_type=\"ok\""), "{text}");
        // Types in order, `other` last, as before any reload.
        let order: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("taskworker_task_duration_seconds_count"))
            .collect();
        assert_eq!(order.len(), 4, "{order:?}");
        assert!(
            order[0].contains("fax") && order[3].contains("other"),
            "{order:?}"
        );
    }

    #[test]
    fn pickup_delay_runs_from_the_time_a_task_became_due_to_its_claim() {
        let now = UNIX_EPOCH + Duration::from_secs(1_762_700_000);
        let (created, run_at) = (Some("2025-11-09T15:00:00Z"), Some("2025-11-09T15:10:00Z"));
        let claimed = Some("2025-11-09T15:10:02Z");
        assert_eq!(
            pickup_delay(created, None, claimed, now),
            Some(Duration::from_secs(602))
        );
        assert_eq!(
            pickup_delay(created, run_at, claimed, now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            pickup_delay(
                created,
                None,
                None,
                crate::timestamp::parse("2025-11-09T15:00:01Z").unwrap()
            ),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            pickup_delay(created, None, Some("2025-11-09T14:00:00Z"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(pickup_delay(None, None, claimed, now), None);
        assert_eq!(pickup_delay(Some("yesterday"), None, claimed, now), None);
    }

    #[test]
    fn process_metrics_come_from_proc() {
        let text = Stats::default().render();
        let value = |name: &str| -> f64 {
            let prefix = format!("{name} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .parse()
                .unwrap()
        };
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_resident_memory_bytes") > 0.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
    }

    #[test]
    fn the_error_type_label_takes_a_bounded_set_of_values() {
        let s = Stats::default();
        s.record_outcome("t", Some("TIMEOUT"), Duration::ZERO);
        s.record_outcome("t", Some("bad\nlabel"), Duration::ZERO);
        for i in 0..100 {
            s.record_outcome("t", Some(&format!("WORD_{i}")), Duration::ZERO);
        }
        s.record_outcome("t", Some("PANIC"), Duration::ZERO);
        let text = s.render();
        let labels = text
            .lines()
            .filter(|l| l.starts_with("taskworker_outcomes_total{"))
            .count();
        assert!(labels <= MAX_OUTCOME_LABELS + 1, "{labels} labels");
        assert!(text.contains("error_type=\"PANIC\"} 1"));
        assert!(text.contains("error_type=\"WORD_0\"} 1"));
        assert!(!text.contains("bad"), "{text}");
        assert!(text.contains("error_type=\"OTHER\"}"));
    }
}
