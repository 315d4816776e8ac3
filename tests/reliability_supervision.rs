//! Every thread is supervised: the debug binary's test-only fault
//! (`TASKWORKER_TEST_PANIC=<site>`) kills one role at a time. A dead
//! processor is replaced and its task reported `WORKER_ERROR`, retryable;
//! the death of any other role turns `/health` and `/ready` 503, and the
//! worker drains (the running task finishes and is reported) and exits 1.

#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::worker::{builtin_handlers, wait_for_status, WorkerProcess, WorkerSpec};
use support::{start_server, wait_until, Api};
use taskworker::ServerConfig;

/// A worker with two processors, its health server on a free port, and the
/// fault at `site`.
fn worker(site: &str, url: &str) -> WorkerProcess {
    WorkerSpec::new(site, url, builtin_handlers())
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .env("CONCURRENT_TASKS", "2")
        .env("WORKER_ID", format!("supervised-{site}"))
        .env("TASKWORKER_TEST_PANIC", site)
        .start()
}

/// Waits (bounded) until `path` answers `status`; returns the last body.
fn wait_answer(health: &Api, path: &str, status: u16, log: impl Fn() -> String) -> Value {
    let mut last = (0, Value::Null);
    let ok = wait_until(Duration::from_secs(20), || {
        last = health.get(path);
        last.0 == status
    });
    assert!(
        ok,
        "{path}: wanted {status}, last {last:?}\nlog:\n{}",
        log()
    );
    last.1
}

/// How long the task that holds a drain open runs: long enough to look at
/// `/health` and `/ready` while the worker drains.
const SLEEP_MS: u64 = 4000;

/// Enqueues a task that sleeps [`SLEEP_MS`] and waits (bounded) until
/// `/status` shows it running.
fn start_sleeper(api: &Api, health: &Api) -> String {
    let id = api.enqueue("sleep", json!({ "ms": SLEEP_MS }));
    let running = wait_until(Duration::from_secs(20), || {
        health.get("/status").1["running"]
            .as_array()
            .is_some_and(|r| r.iter().any(|t| t["task_id"] == json!(id)))
    });
    assert!(running, "the sleeping task never ran");
    id
}

/// The death of the role at `site`, which `kill` brings about while a
/// sleeping task runs: `/health` and `/ready` turn 503 naming it, the panic is
/// logged at ERROR with the thread's name, and once the task finishes (and
/// is reported) the worker exits 1. Tasks that `kill` enqueued (it returns
/// their ids) are reported too: nothing the dead role held is forgotten.
fn role_death_drains_and_exits_1(
    site: &str,
    thread: &str,
    reason: &str,
    kill: impl Fn(&Api, &Api) -> Vec<String>,
) {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let mut worker = worker(site, &server.url());
    let health = Api::new(worker.health_url());
    let id = start_sleeper(&api, &health);
    let held = kill(&api, &health);

    let body = wait_answer(&health, "/health", 503, || worker.log());
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert_eq!(body["threads"]["died"][site], 1, "{body}");
    let body = wait_answer(&health, "/ready", 503, || worker.log());
    assert_eq!(body["reason"], reason, "{body}");
    let log = worker.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains(&format!("panic in thread {thread}"))),
        "no ERROR line names {thread}:\n{log}"
    );
    assert!(
        worker.wait_log("exiting 1", Duration::from_secs(5)),
        "{log}"
    );

    assert_eq!(
        worker.wait_exit(Duration::from_secs(30)),
        Some(1),
        "log:\n{}",
        worker.log()
    );
    assert_eq!(
        api.task(&id)["status"],
        "completed",
        "the running task finished in the drain and was reported:\n{}",
        worker.log()
    );
    for id in held {
        assert_eq!(
            api.task(&id)["status"],
            "completed",
            "what the dead role held was reported:\n{}",
            worker.log()
        );
    }
}

#[test]
fn a_dead_poller_turns_health_503_and_exits_1_after_the_drain() {
    // The poller dies right after it hands out the sleeping task.
    role_death_drains_and_exits_1(
        "poller",
        "taskworker-poller",
        "the poller thread died",
        |_, _| Vec::new(),
    );
}

#[test]
fn a_dead_reporter_turns_health_503_and_exits_1_after_the_drain() {
    // A reporter dies when it takes the echo task's outcome; the other one
    // delivers the sleeping task's.
    role_death_drains_and_exits_1(
        "reporter",
        "taskworker-reporter-",
        "a reporter thread died",
        |api, _| vec![api.enqueue("echo", json!({}))],
    );
}

#[test]
fn a_dead_supervisor_turns_health_503_and_exits_1_after_the_drain() {
    // The supervisor dies on its first pass that finds a task running.
    role_death_drains_and_exits_1(
        "supervisor",
        "taskworker-supervisor",
        "the supervisor thread died",
        |_, _| Vec::new(),
    );
}

#[test]
fn a_dead_heartbeat_thread_turns_health_503_and_exits_1_after_the_drain() {
    // The heartbeat thread dies on its first pass that finds a leased task.
    role_death_drains_and_exits_1(
        "heartbeat",
        "taskworker-heartbeat",
        "the heartbeat thread died",
        |_, _| Vec::new(),
    );
}

#[test]
fn a_dead_health_server_thread_turns_health_503_and_exits_1_after_the_drain() {
    // The health server's thread dies answering /metrics.
    role_death_drains_and_exits_1(
        "health",
        "taskworker-health-handler",
        "the health server's thread died",
        |_, health| {
            let (status, _) = health.get_text("/metrics");
            assert_eq!(status, 500, "the listener answers a panic with 500");
            Vec::new()
        },
    );
}

/// A processor dies outside its handler at `site` while it holds the first
/// task: the task is reported failed `WORKER_ERROR`, retryable (so the
/// server runs it again, and it completes), the thread is replaced, later
/// tasks complete, `/health` counts both processors, and a drain does not
/// wait for the dead thread's task.
fn processor_death_is_reported_and_replaced(site: &str) {
    let server = start_server(ServerConfig {
        retry_backoff: Duration::from_millis(100),
        ..ServerConfig::default()
    });
    let api = Api::new(server.url());
    let mut worker = WorkerSpec::new(site, &server.url(), builtin_handlers())
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .env("CONCURRENT_TASKS", "2")
        .env("SHUTDOWN_TIMEOUT", "20")
        .env("TASKWORKER_TEST_PANIC", site)
        .start();
    let health = Api::new(worker.health_url());
    let first = api.enqueue("echo", json!({"n": 0}));
    assert!(
        wait_until(Duration::from_secs(30), || api.task(&first)["status"]
            == "completed"),
        "{}\nlog:\n{}",
        api.task(&first),
        worker.log()
    );
    let task = api.task(&first);
    let failed = &task["history"][0];
    assert_eq!(failed["outcome"], "retry", "failed, retryable: {task}");
    assert_eq!(failed["error_type"], "WORKER_ERROR", "{task}");
    assert_eq!(task["history"][1]["outcome"], "completed", "{task}");

    for n in 1..=6 {
        api.enqueue("echo", json!({ "n": n }));
    }
    assert!(
        wait_for_status(&api, "completed", 7, Duration::from_secs(30)),
        "later tasks complete:\n{}",
        worker.log()
    );
    let body = wait_answer(&health, "/health", 200, || worker.log());
    assert_eq!(body["threads"]["processor"], 2, "{body}");
    assert_eq!(body["threads"]["processors_working"], 2, "{body}");
    assert_eq!(body["threads"]["died"]["processor"], 1, "{body}");
    assert_eq!(health.get("/ready").0, 200);
    let log = worker.log();
    let holding = format!("holding task {first}");
    assert!(
        log.lines().any(|l| l.contains("ERROR")
            && l.contains("panic in thread taskworker-proc-")
            && l.contains(&holding)),
        "no ERROR line names the processor and its task:\n{log}"
    );
    assert!(log.contains("a new processor takes its place"), "{log}");

    worker.signal("TERM");
    assert_eq!(
        worker.wait_exit(Duration::from_secs(10)),
        Some(0),
        "the drain waits for nothing the dead thread held:\n{}",
        worker.log()
    );
}

#[test]
fn a_processor_dying_before_its_task_starts_reports_it_and_is_replaced() {
    // Where a deadline too far away for the clock once panicked.
    processor_death_is_reported_and_replaced("processor-outside-handler");
}

#[test]
fn a_processor_dying_after_its_handler_returned_reports_it_and_is_replaced() {
    processor_death_is_reported_and_replaced("processor-after-handler");
}
