//! What comes from a server is bounded before use: an absurd `Retry-After`
//! or `timeout_seconds` panics no thread, a task twice in one claim answer
//! runs once, `.` and `..` ids are percent-encoded in paths, and a newline in
//! an id cannot forge a log line.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use serde_json::{json, Value};
use support::fake::{self, FakeApi};
use support::wait_until;
use support::worker::{builtin_handlers, WorkerProcess, WorkerSpec};

/// Claim answers: `first` once, then nothing.
fn once(first: Vec<Value>) -> impl Fn() -> (u16, String) + Send + Sync {
    let claims = AtomicUsize::new(0);
    move || match claims.fetch_add(1, SeqCst) {
        0 => fake::claimed(first.clone()),
        _ => fake::nothing(),
    }
}

/// A fake API whose first claim answer hands out `tasks`, then nothing;
/// every report is taken.
fn handing_out(tasks: Vec<Value>) -> FakeApi {
    let claim = once(tasks);
    FakeApi::start(move |path, _| match path {
        "/tasks/claim" => claim(),
        _ => fake::ok(),
    })
}

/// A worker named `name` on `fake` with the builtin handlers and `env`.
fn worker_on(fake: &FakeApi, name: &str, env: &[(&'static str, &str)]) -> WorkerProcess {
    let url = fake.url();
    env.iter()
        .fold(
            WorkerSpec::new(name, &url, builtin_handlers()),
            |spec, (key, value)| spec.env(key, *value),
        )
        .start()
}

#[test]
fn a_huge_retry_after_on_a_report_panics_no_thread() {
    let claim = once(vec![fake::task("t1", "echo", json!({}), None)]);
    let fake = FakeApi::start_with_headers(move |path, _| match path {
        "/tasks/claim" => {
            let (status, body) = claim();
            (status, body, Vec::new())
        }
        "/tasks/t1/complete" => (
            503,
            "{}".into(),
            vec![("Retry-After", u64::MAX.to_string())],
        ),
        _ => (200, "{}".into(), Vec::new()),
    });
    let url = fake.url();
    let mut worker = WorkerSpec::new("huge-retry-after", &url, builtin_handlers())
        .env("SHUTDOWN_TIMEOUT", "2s")
        .start();
    fake::wait_for(&worker, || !fake.seen("/tasks/t1/complete").is_empty());
    // Claims go on meanwhile: the reporter's wait holds no other thread.
    let claims = fake.seen("/tasks/claim").len();
    assert!(
        wait_until(Duration::from_secs(10), || fake.seen("/tasks/claim").len()
            > claims + 2),
        "log:\n{}",
        worker.log()
    );
    worker.stop(Duration::from_secs(20));
    let log = worker.log();
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(fake.seen("/tasks/t1/complete").len(), 1, "{log}");
}

#[test]
fn a_timeout_seconds_out_of_bounds_fails_the_task_as_validation_naming_field_and_value() {
    let mut huge = fake::task("huge", "echo", json!({}), None);
    huge["timeout_seconds"] = json!(1e300);
    let mut negative = fake::task("negative", "echo", json!({}), None);
    negative["timeout_seconds"] = json!(-1);
    let mut text = fake::task("text", "echo", json!({}), None);
    text["timeout_seconds"] = json!("30");
    let mut fine = fake::task("fine", "echo", json!({"n": 1}), None);
    fine["timeout_seconds"] = json!(604_800);
    let fake = handing_out(vec![huge, negative, text, fine]);
    let mut worker = worker_on(&fake, "timeout-bounds", &[("CONCURRENT_TASKS", "4")]);
    let reported = |id: &str, kind: &str| fake.seen(&format!("/tasks/{id}/{kind}"));
    fake::wait_for(&worker, || {
        ["huge", "negative", "text"]
            .iter()
            .all(|id| !reported(id, "fail").is_empty())
            && !reported("fine", "complete").is_empty()
    });
    for (id, value) in [("huge", "1e+300"), ("negative", "-1"), ("text", "\"30\"")] {
        let body = &reported(id, "fail")[0].body;
        assert_eq!(body["error_type"], "VALIDATION", "{body}");
        assert_eq!(body["retryable"], false, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("timeout_seconds"), "{error}");
        assert!(error.contains(value), "{error}");
    }
    worker.stop(Duration::from_secs(10));
    assert!(!worker.log().contains("panicked"), "{}", worker.log());
}

#[test]
fn a_task_twice_in_one_claim_answer_runs_once() {
    let task = fake::task("twin", "sleep", json!({"ms": 300}), None);
    let fake = handing_out(vec![task.clone(), task]);
    let mut worker = worker_on(&fake, "twin", &[("CONCURRENT_TASKS", "4")]);
    fake::wait_for(&worker, || !fake.seen("/tasks/twin/complete").is_empty());
    // Time for a second run to report, had there been one.
    std::thread::sleep(Duration::from_secs(1));
    worker.stop(Duration::from_secs(10));
    let log = worker.log();
    assert_eq!(fake.seen("/tasks/twin/complete").len(), 1, "{log}");
    assert!(fake.seen("/tasks/twin/fail").is_empty(), "{log}");
    assert!(log.contains("twin appears more than once"), "{log}");
}

#[test]
fn dot_ids_are_percent_encoded_in_paths() {
    let fake = handing_out(vec![
        fake::task(".", "echo", json!({}), None),
        fake::task("..", "echo", json!({}), None),
    ]);
    let mut worker = worker_on(&fake, "dot-ids", &[("CONCURRENT_TASKS", "2")]);
    let reports = || fake.seen("/complete").len() + fake.seen("/fail").len();
    fake::wait_for(&worker, || reports() >= 2);
    worker.stop(Duration::from_secs(10));
    let mut paths: Vec<String> = fake.seen("/complete").into_iter().map(|s| s.path).collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/tasks/%2E%2E/complete", "/tasks/%2E/complete"],
        "log:\n{}",
        worker.log()
    );
}

#[test]
fn a_newline_in_a_task_id_cannot_forge_a_log_line() {
    let forged = "evil\n<0>FORGED emergency";
    let fake = handing_out(vec![fake::task(
        forged,
        "no-such-type\r\n<1>ALSO",
        json!({}),
        None,
    )]);
    // Under journald each line's `<N>` prefix is its priority.
    let env = [("JOURNAL_STREAM", "8:1234"), ("LOG_LEVEL", "debug")];
    let mut worker = worker_on(&fake, "forged-log", &env);
    fake::wait_for(&worker, || !fake.seen("/fail").is_empty());
    worker.stop(Duration::from_secs(10));
    let log = worker.log();
    assert!(log.contains("evil\\n<0>FORGED"), "{log}");
    for line in log.lines() {
        assert!(
            !line.starts_with("<0>") && !line.starts_with("<1>"),
            "forged line {line:?} in:\n{log}"
        );
    }
}
