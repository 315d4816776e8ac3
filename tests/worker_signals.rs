//! Signals on the real binary: drain on SIGTERM, SHUTDOWN after the grace,
//! exit 143 on a second SIGTERM, a fast idle exit, and quiet mode.

#![cfg(feature = "server")]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::worker::{builtin_handlers, tasks_with_status, wait_for_status, WorkerSpec};
use support::{start_server, wait_until, Api};
use taskworker::ServerConfig;

fn wait_running(api: &Api, id: &str) -> bool {
    wait_until(Duration::from_secs(30), || {
        api.task(id)["status"] == "claimed"
    })
}

#[test]
fn drains_in_flight_task_on_sigterm() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = api.enqueue("sleep", json!({"ms": 1500}));
    let mut worker = WorkerSpec::new("drain", &server.url(), builtin_handlers()).start();
    assert!(wait_running(&api, &id));
    worker.stop(Duration::from_secs(30));
    let task = api.task(&id);
    assert_eq!(
        task["status"], "completed",
        "finished and reported before exit: {task}"
    );
    assert_eq!(task["result"], json!({"slept_ms": 1500}));
}

#[test]
fn reports_shutdown_for_a_task_longer_than_the_grace() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = api.enqueue("sleep", json!({"ms": 60_000}));
    let mut worker = WorkerSpec::new("grace", &server.url(), builtin_handlers())
        .env("SHUTDOWN_TIMEOUT", "500ms")
        .env("TIMEOUT", "120")
        .start();
    assert!(wait_running(&api, &id));
    let sent = Instant::now();
    worker.stop(Duration::from_secs(30));
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "did not wait for the task"
    );
    let task = api.task(&id);
    let last = task["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["error_type"], "SHUTDOWN", "{task}");
    // Retryable: the server puts it back for another worker.
    assert_ne!(task["status"], "failed", "{task}");
}

fn second_signal_exits_at_once(signal: &str, code: i32) {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = api.enqueue("sleep", json!({"ms": 60_000}));
    let name = format!("double-{signal}");
    let mut worker = WorkerSpec::new(&name, &server.url(), builtin_handlers())
        .env("TIMEOUT", "120")
        .start();
    assert!(wait_running(&api, &id));
    worker.signal(signal);
    assert!(
        worker.wait_log("draining", Duration::from_secs(10)),
        "log:\n{}",
        worker.log()
    );
    worker.signal(signal);
    assert_eq!(
        worker.wait_exit(Duration::from_secs(10)),
        Some(code),
        "log:\n{}",
        worker.log()
    );
}

#[test]
fn second_sigterm_exits_at_once_with_143() {
    second_signal_exits_at_once("TERM", 143);
}

#[test]
fn second_sigint_exits_with_130() {
    second_signal_exits_at_once("INT", 130);
}

#[test]
fn idle_worker_exits_fast_on_sigterm_even_in_a_long_poll() {
    let server = start_server(ServerConfig::default());
    let mut worker = WorkerSpec::new("idle", &server.url(), builtin_handlers())
        .env("WAIT_SECONDS", "30")
        .start();
    assert!(worker.wait_log("started", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(300)); // the long poll is open now
    let sent = Instant::now();
    worker.stop(Duration::from_secs(10));
    // Generous: the benchmark measures the real figure.
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
}

#[test]
fn quiet_mode_stops_claims_until_sigcont() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let mut worker = WorkerSpec::new("quiet", &server.url(), builtin_handlers())
        .env("WAIT_SECONDS", "1")
        .start();
    assert!(worker.wait_log("started", Duration::from_secs(10)));
    worker.signal("TSTP");
    assert!(worker.wait_log("quiet", Duration::from_secs(10)));
    // Let a long poll that was already open end, then enqueue.
    assert!(wait_until(Duration::from_secs(30), || {
        let (_, metrics) = api.get_text("/metrics");
        metrics
            .lines()
            .any(|l| l == "taskworker_server_waiting_claims 0")
    }));
    let id = api.enqueue("echo", json!({"q": 1}));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(api.task(&id)["status"], "queued", "no claims while quiet");
    worker.signal("CONT");
    assert!(
        wait_for_status(&api, "completed", 1, Duration::from_secs(30)),
        "log:\n{}",
        worker.log()
    );
    worker.stop(Duration::from_secs(10));
    assert!(tasks_with_status(&api, "queued").is_empty());
}
