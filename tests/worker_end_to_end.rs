//! The worker binary processes tasks end to end against the reference
//! server, and against a server that has only the core protocol.

#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use serde_json::json;
use support::worker::{builtin_handlers, tasks_with_status, wait_for_status, WorkerSpec};
use support::{start_server, Api};
use taskworker::ServerConfig;

fn processes_every_task(core_only: bool, name: &str) {
    let server = start_server(ServerConfig {
        core_only,
        ..ServerConfig::default()
    });
    let api = Api::new(server.url());
    let ids: Vec<String> = (0..40)
        .map(|i| api.enqueue("echo", json!({"n": i})))
        .collect();
    let mut worker = WorkerSpec::new(name, &server.url(), builtin_handlers())
        .env("CONCURRENT_TASKS", "4")
        .env("WAIT_SECONDS", "1")
        .start();
    assert!(
        wait_for_status(&api, "completed", ids.len(), Duration::from_secs(60)),
        "log:\n{}",
        worker.log()
    );
    for (i, id) in ids.iter().enumerate() {
        let task = api.task(id);
        assert_eq!(task["status"], "completed");
        assert_eq!(task["result"], json!({"n": i}), "the echo result is stored");
    }
    worker.stop(Duration::from_secs(30));
    assert!(
        !worker.log().contains("ERROR"),
        "no error lines:\n{}",
        worker.log()
    );
}

#[test]
fn completes_tasks_and_stores_results() {
    processes_every_task(false, "e2e");
}

#[test]
fn completes_tasks_against_a_core_only_server() {
    processes_every_task(true, "e2e-core");
}

#[test]
fn reports_an_unknown_type_as_unknown_type_not_retryable() {
    // A core server ignores `types`, so it hands out a type we have no handler for.
    let server = start_server(ServerConfig {
        core_only: true,
        ..ServerConfig::default()
    });
    let api = Api::new(server.url());
    let id = api.enqueue("mystery.type", json!({}));
    let worker = WorkerSpec::new("unknown", &server.url(), builtin_handlers()).start();
    assert!(
        wait_for_status(&api, "failed", 1, Duration::from_secs(30)),
        "log:\n{}",
        worker.log()
    );
    let task = api.task(&id);
    assert_eq!(task["error_type"], "UNKNOWN_TYPE", "{task}");
    assert_eq!(task["attempt"], 1, "not retried: {task}");
}

#[test]
fn reports_a_permanent_error_exactly_once() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = api.enqueue("fail", json!({"message": "bad input", "retryable": false}));
    let worker = WorkerSpec::new("permanent", &server.url(), builtin_handlers()).start();
    assert!(
        wait_for_status(&api, "failed", 1, Duration::from_secs(30)),
        "log:\n{}",
        worker.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    let task = api.task(&id);
    assert_eq!(task["error_type"], "HANDLER", "{task}");
    assert_eq!(
        task["history"].as_array().map(Vec::len),
        Some(1),
        "one attempt: {task}"
    );
    assert!(tasks_with_status(&api, "queued").is_empty());
}

#[test]
fn delivers_results_larger_than_the_write_buffer() {
    // A 300 KiB result: the report body is written in several pieces.
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let blob = "x".repeat(300 * 1024);
    let id = api.enqueue("echo", json!({"blob": blob}));
    let mut worker = WorkerSpec::new("large", &server.url(), builtin_handlers()).start();
    assert!(
        wait_for_status(&api, "completed", 1, Duration::from_secs(30)),
        "log:\n{}",
        worker.log()
    );
    assert_eq!(
        api.task(&id)["result"]["blob"].as_str().map(str::len),
        Some(300 * 1024)
    );
    worker.stop(Duration::from_secs(10));
}
