//! `expires_at`: a claimed task whose instant has passed, or passes while it
//! waits locally for a slot of its type, is reported failed `EXPIRED`, not
//! retryable, without running; one that does not parse counts as absent.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use support::fake::{claimed, nothing, ok, task, wait_for, FakeApi};
use support::worker::{builtin_handlers, WorkerSpec};

/// Every report a fake received: (path, body).
type Reports = Arc<Mutex<Vec<(String, Value)>>>;

/// A fake that hands out `batches` one claim at a time, then nothing, and
/// records every report.
fn serving(batches: Vec<Vec<Value>>) -> (FakeApi, Reports) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let seen = reports.clone();
    let next = AtomicUsize::new(0);
    let fake = FakeApi::start(move |path, body| match path {
        "/health" => (200, r#"{"status": "healthy"}"#.into()),
        "/tasks/claim" => match batches.get(next.fetch_add(1, Ordering::SeqCst)) {
            Some(tasks) => claimed(tasks.clone()),
            None => nothing(),
        },
        "/tasks/report" => (404, "{}".into()),
        _ => {
            seen.lock().unwrap().push((path.to_string(), body.clone()));
            ok()
        }
    });
    (fake, reports)
}

fn at(offset_ms: i64) -> String {
    let now = SystemTime::now();
    let d = Duration::from_millis(offset_ms.unsigned_abs());
    taskworker::format_timestamp(if offset_ms < 0 { now - d } else { now + d })
}

fn with(mut t: Value, key: &str, value: Value) -> Value {
    t[key] = value;
    t
}

/// The report of `id`, waiting (bounded) for it.
fn report_of(
    worker: &support::worker::WorkerProcess,
    reports: &Mutex<Vec<(String, Value)>>,
    id: &str,
) -> (String, Value) {
    let prefix = format!("/tasks/{id}/");
    wait_for(worker, || {
        reports
            .lock()
            .unwrap()
            .iter()
            .any(|(p, _)| p.starts_with(&prefix))
    });
    let reports = reports.lock().unwrap();
    let (path, body) = reports
        .iter()
        .find(|(p, _)| p.starts_with(&prefix))
        .expect("found");
    (path.trim_start_matches(&prefix).to_string(), body.clone())
}

#[test]
fn a_task_past_its_expires_at_is_failed_expired_without_running() {
    let late = with(
        task("late", "echo", json!({}), None),
        "expires_at",
        json!(at(-1000)),
    );
    let fresh = with(
        task("fresh", "echo", json!({}), None),
        "expires_at",
        json!(at(600_000)),
    );
    let garbled = with(
        task("garbled", "echo", json!({}), None),
        "expires_at",
        json!("soon"),
    );
    let (fake, reports) = serving(vec![vec![late], vec![fresh], vec![garbled]]);
    let mut worker = WorkerSpec::new("expired", &fake.url(), builtin_handlers()).start();
    let (kind, body) = report_of(&worker, &reports, "late");
    assert_eq!(kind, "fail", "{body}");
    assert_eq!(body["error_type"], "EXPIRED", "{body}");
    assert_eq!(body["retryable"], false, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("expired at"),
        "{body}"
    );
    assert_eq!(report_of(&worker, &reports, "fresh").0, "complete");
    assert_eq!(report_of(&worker, &reports, "garbled").0, "complete");
    worker.stop(Duration::from_secs(30));
    let log = worker.log();
    assert_eq!(
        log.matches("task late (echo): expired at").count(),
        1,
        "logged once: {log}"
    );
    assert!(
        log.contains("task garbled (echo): expires_at \"soon\" is not an RFC 3339 time"),
        "{log}"
    );
}

#[test]
fn a_task_that_expires_while_it_waits_for_a_slot_of_its_type_is_not_run() {
    // A server that ignores `types` hands out two `sleep` tasks at once to
    // a worker that runs one at a time: the second waits here, and its
    // `expires_at` passes meanwhile.
    let first = task("first", "sleep", json!({"ms": 1500}), None);
    let second = with(
        task("second", "sleep", json!({"ms": 1}), None),
        "expires_at",
        json!(at(300)),
    );
    let (fake, reports) = serving(vec![vec![first, second]]);
    let config = json!({"handlers": {"sleep": {"builtin": "sleep", "concurrency": 1}}});
    let mut worker = WorkerSpec::new("expired-waiting", &fake.url(), config)
        .env("CONCURRENT_TASKS", "2")
        .start();
    let (kind, body) = report_of(&worker, &reports, "second");
    assert_eq!(kind, "fail", "{body}");
    assert_eq!(body["error_type"], "EXPIRED", "{body}");
    assert_eq!(report_of(&worker, &reports, "first").0, "complete");
    worker.stop(Duration::from_secs(30));
}
