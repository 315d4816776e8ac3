//! Each finished task is one log line naming its id, type, outcome and
//! duration: info when it completed (so `LOG_LEVEL=warn` keeps it out),
//! warn when it failed; JSON lines carry `task_id`, `type` and `worker_id`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use serde_json::{json, Value};
use support::fake::{self, FakeApi};
use support::worker::{builtin_handlers, WorkerProcess, WorkerSpec};

/// A fake API handing out one completing and one failing task, then nothing.
fn two_tasks() -> FakeApi {
    let claims = AtomicUsize::new(0);
    FakeApi::start(move |path, _| match path {
        "/tasks/claim" if claims.fetch_add(1, SeqCst) == 0 => fake::claimed(vec![
            fake::task("done-1", "echo", json!({"a": 1}), None),
            fake::task("bad-1", "fail", json!({"message": "nope"}), None),
        ]),
        "/tasks/claim" => fake::nothing(),
        _ => fake::ok(),
    })
}

/// Runs a worker on the two tasks with `env` until both are reported; its log.
fn run(name: &str, env: &[(&'static str, &str)]) -> String {
    let fake = two_tasks();
    let url = fake.url();
    let mut worker: WorkerProcess = env
        .iter()
        .fold(
            WorkerSpec::new(name, &url, builtin_handlers())
                .env("WORKER_ID", "w-log")
                .env("CONCURRENT_TASKS", "2"),
            |spec, (k, v)| spec.env(k, *v),
        )
        .start();
    fake::wait_for(&worker, || {
        !fake.seen("/tasks/done-1/complete").is_empty()
            && !fake.seen("/tasks/bad-1/fail").is_empty()
    });
    // The line follows the hand-off to the reporter: a clean stop flushes it.
    worker.stop(std::time::Duration::from_secs(10));
    worker.log()
}

#[test]
fn each_finished_task_is_one_line_and_warn_keeps_only_failures() {
    let log = run("lines-info", &[]);
    // The one line about `id` finishing, which holds each of `parts`.
    let finished = |id: &str, parts: &[&str]| {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("task {id} (")) && l.contains("): finished in "))
            .collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert!(
            parts.iter().all(|p| lines[0].contains(p)),
            "{parts:?}\n{log}"
        );
    };
    finished(
        "done-1",
        &[
            " INFO ",
            "task done-1 (echo): finished in ",
            " ms: completed",
        ],
    );
    finished(
        "bad-1",
        &[
            " WARN ",
            "task bad-1 (fail): finished in ",
            "failed after 1 tries: nope",
        ],
    );

    let quiet = run("lines-warn", &[("LOG_LEVEL", "warn")]);
    assert!(
        !quiet.contains("done-1"),
        "warn silences completions:\n{quiet}"
    );
    assert!(quiet.contains("task bad-1 (fail): finished in "), "{quiet}");
}

#[test]
fn json_lines_carry_task_id_type_and_worker_id() {
    let log = run(
        "lines-json",
        &[("LOG_FORMAT", "json"), ("LOG_LEVEL", "debug")],
    );
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["worker_id"] == "w-log"), "{log}");
    let about = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| {
                l["msg"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("task {id} ("))
            })
            .collect()
    };
    let started_and_finished: Vec<&Value> = about("done-1")
        .into_iter()
        .chain(about("bad-1"))
        .filter(|l| {
            let msg = l["msg"].as_str().unwrap_or("");
            msg.contains("started") || msg.contains("finished in")
        })
        .collect();
    assert_eq!(started_and_finished.len(), 4, "{log}");
    for line in started_and_finished {
        let msg = line["msg"].as_str().unwrap();
        let (id, task_type) = if msg.contains("done-1") {
            ("done-1", "echo")
        } else {
            ("bad-1", "fail")
        };
        assert_eq!(
            (&line["task_id"], &line["type"]),
            (&json!(id), &json!(task_type)),
            "{line}"
        );
    }
    // Lines about no task carry no task fields.
    let start = lines
        .iter()
        .find(|l| {
            l["msg"]
                .as_str()
                .unwrap_or("")
                .starts_with("worker w-log started")
        })
        .expect("a start line");
    assert!(
        start.get("task_id").is_none() && start.get("type").is_none(),
        "{start}"
    );
}
