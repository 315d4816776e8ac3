//! The worker's counters, shared by every thread and read by the health
//! server: plain atomics on the hot path, rendered as Prometheus text on demand.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::prometheus::{histogram, single};
// The health server adds its own families with these.
pub(crate) use crate::prometheus::{family, labels, Kind};

/// Upper bounds, in seconds, of the latency and duration histograms.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(crate::bounded::micros(d), Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .zip(&self.counts)
            .map(|(bound, n)| (*bound, n.load(Relaxed)))
            .collect();
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        histogram(out, name, help, &buckets, self.count.load(Relaxed), sum);
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
    /// Outcomes by `error_type` (`ok` for completions).
    outcomes: Mutex<BTreeMap<String, u64>>,
    /// Handler running time.
    pub task_duration: Histogram,
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
    /// Reports waiting for delivery.
    pub reports_pending: AtomicUsize,
    /// Processor threads given up on because their handler ignored a cancel.
    pub stuck_threads: AtomicUsize,
    /// Unix time in ms of the last finished task (0: none yet).
    pub last_task_at_ms: AtomicU64,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            started: Instant::now(),
            claims_tasks: AtomicU64::new(0),
            claims_empty: AtomicU64::new(0),
            claims_error: AtomicU64::new(0),
            claim_latency: Histogram::default(),
            tasks_completed: AtomicU64::new(0),
            tasks_failed: AtomicU64::new(0),
            tasks_malformed: AtomicU64::new(0),
            task_retries: AtomicU64::new(0),
            outcomes: Mutex::new(BTreeMap::new()),
            task_duration: Histogram::default(),
            processors: AtomicUsize::new(0),
            inflight: AtomicUsize::new(0),
            heartbeats: AtomicU64::new(0),
            leases_lost: AtomicU64::new(0),
            report_retries: AtomicU64::new(0),
            reports_gone: AtomicU64::new(0),
            reports_pending: AtomicUsize::new(0),
            stuck_threads: AtomicUsize::new(0),
            last_task_at_ms: AtomicU64::new(0),
        }
    }
}

/// How many distinct `error_type` labels the outcome counter takes; past
/// that, a new handler word counts as `OTHER`. Handlers choose their own
/// words, and each label is a time series a scraper keeps.
const MAX_OUTCOME_LABELS: usize = 32;

/// The `error_type` label of an outcome: `ok`, a word of the protocol, or a
/// handler's own upper-case word (up to 32 of `A-Z`, `0-9`, `_`) while there
/// is room; anything else is `OTHER`.
fn outcome_label<'a>(error_type: &'a str, seen: &BTreeMap<String, u64>) -> &'a str {
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
    /// Records a finished task: `None` for a completion, else its `error_type`.
    pub fn record_outcome(&self, error_type: Option<&str>, duration: Duration) {
        match error_type {
            None => self.tasks_completed.fetch_add(1, Relaxed),
            Some(_) => self.tasks_failed.fetch_add(1, Relaxed),
        };
        self.task_duration.observe(duration);
        let now = crate::bounded::millis(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        );
        self.last_task_at_ms.store(now, Relaxed);
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        let key = outcome_label(error_type.unwrap_or("ok"), &outcomes);
        // A key is allocated once, on its first outcome, not on every task.
        match outcomes.get_mut(key) {
            Some(count) => *count += 1,
            None => {
                outcomes.insert(key.to_string(), 1);
            }
        }
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
        let outcomes: Vec<(String, u64)> = self
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (labels(&[("error_type", k)]), *v))
            .collect();
        family(
            &mut out,
            "taskworker_outcomes_total",
            Kind::Counter,
            "Finished tasks by error_type (ok: completed).",
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
        ];
        for (name, help, n) in counters {
            single(&mut out, name, Kind::Counter, help, n.load(Relaxed));
        }
        self.claim_latency.render(
            &mut out,
            "taskworker_claim_latency_seconds",
            "Claim round-trip time, long-poll wait included.",
        );
        self.task_duration.render(
            &mut out,
            "taskworker_task_duration_seconds",
            "Handler running time, local retries included.",
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
        out
    }
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
        s.record_outcome(None, Duration::from_millis(3));
        s.record_outcome(Some("TIMEOUT"), Duration::from_secs(2));
        s.claim_latency.observe(Duration::from_micros(700));
        let text = s.render();
        assert!(text.contains("taskworker_claims_total{result=\"tasks\"} 2"));
        assert!(text.contains("taskworker_outcomes_total{error_type=\"TIMEOUT\"} 1"));
        assert!(text.contains("taskworker_outcomes_total{error_type=\"ok\"} 1"));
        assert!(text.contains("taskworker_task_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("taskworker_task_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("taskworker_claim_latency_seconds_count 1"));
        assert_eq!(s.tasks_processed(), 2);
        assert!(rss_bytes().unwrap() > 0);
    }

    #[test]
    fn the_error_type_label_takes_a_bounded_set_of_values() {
        let s = Stats::default();
        s.record_outcome(Some("TIMEOUT"), Duration::ZERO);
        s.record_outcome(Some("bad\nlabel"), Duration::ZERO);
        for i in 0..100 {
            s.record_outcome(Some(&format!("WORD_{i}")), Duration::ZERO);
        }
        s.record_outcome(Some("PANIC"), Duration::ZERO);
        let text = s.render();
        let labels = text
            .lines()
            .filter(|l| l.starts_with("taskworker_outcomes_total{"))
            .count();
        assert!(labels <= MAX_OUTCOME_LABELS + 1, "{labels} labels");
        assert!(text.contains("taskworker_outcomes_total{error_type=\"PANIC\"} 1"));
        assert!(text.contains("taskworker_outcomes_total{error_type=\"WORD_0\"} 1"));
        assert!(!text.contains("bad"), "{text}");
        assert!(text.contains("taskworker_outcomes_total{error_type=\"OTHER\"}"));
    }
}
