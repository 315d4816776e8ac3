//! The health server of the real binary: `/health` fields, `/status` of a
//! running task, `/ready` through a drain, an API outage and refused
//! credentials, and a health port already in use.

#![cfg(feature = "server")]

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::worker::{wait_for_status, WorkerProcess, WorkerSpec};
use support::{start_server, temp_dir, wait_answer, wait_until, Api};
use taskworker::{Server, ServerConfig};

/// Handlers: `echo`, and `gated`, which runs until the file its task names
/// exists (or a minute has passed, so that no test leaves it behind).
fn config() -> Value {
    json!({"handlers": {
        "echo": {"builtin": "echo"},
        "gated": {"exec": {"command": ["sh", "-c",
            "gate=$(sed -n 's/.*\"gate\":\"\\([^\"]*\\)\".*/\\1/p'); i=0; while [ ! -e \"$gate\" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"]}},
    }})
}

/// A worker with its health server on a free loopback port.
fn worker(name: &str, url: &str) -> WorkerProcess {
    WorkerSpec::new(name, url, config())
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .env("WORKER_ID", format!("health-{name}"))
        .start()
}

/// Waits (bounded) until `/status` lists a running task; returns that entry.
fn wait_running_task(health: &Api) -> Value {
    let mut entry = Value::Null;
    let found = wait_until(Duration::from_secs(20), || {
        entry = health.get("/status").1["running"][0].clone();
        entry.is_object()
    });
    assert!(found, "no running task in /status");
    entry
}

fn open_gate(gate: &Path) {
    std::fs::write(gate, "").expect("gate opened");
}

#[test]
fn health_and_status_describe_the_worker_and_its_running_task() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let mut worker = worker("fields", &server.url());
    let health = Api::new(worker.health_url());

    api.enqueue("echo", json!({}));
    assert!(wait_for_status(
        &api,
        "completed",
        1,
        Duration::from_secs(30)
    ));
    let gate = temp_dir("health-gate").join("open");
    let id = api.enqueue("gated", json!({"gate": gate}));
    let running = wait_running_task(&health);
    assert_eq!(running["task_id"], json!(id), "{running}");
    assert_eq!(running["type"], "gated");
    assert!(running["running_ms"].is_u64(), "{running}");

    let body = wait_answer(&health, "/health", 200, Duration::from_secs(10));
    assert_eq!(body["status"], "healthy", "{body}");
    assert!(body["uptime"].is_u64(), "{body}");
    assert_eq!(body["tasks_processed"], 1, "{body}");
    let last = body["last_task_at"].as_str().expect("last_task_at");
    assert!(
        last.len() >= 20 && last.as_bytes()[10] == b'T' && last.ends_with('Z'),
        "RFC 3339 UTC: {last}"
    );
    assert_eq!(body["tasks_failed"], 0, "{body}");
    assert_eq!(body["in_flight"], 1, "{body}");
    assert_eq!(body["worker_id"], "health-fields", "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"), "{body}");

    // A later look at the same task shows it running longer.
    let first = running["running_ms"].as_u64().unwrap_or(0);
    assert!(wait_until(Duration::from_secs(10), || {
        health.get("/status").1["running"][0]["running_ms"]
            .as_u64()
            .is_some_and(|ms| ms > first)
    }));
    open_gate(&gate);
    assert!(wait_for_status(
        &api,
        "completed",
        2,
        Duration::from_secs(30)
    ));
    worker.stop(Duration::from_secs(10));
}

#[test]
fn ready_turns_503_on_drain_while_health_stays_200() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let mut worker = worker("drain", &server.url());
    let health = Api::new(worker.health_url());
    wait_answer(&health, "/ready", 200, Duration::from_secs(20));

    let gate = temp_dir("drain-gate").join("open");
    api.enqueue("gated", json!({"gate": gate}));
    wait_running_task(&health);
    worker.signal("TERM");
    let body = wait_answer(&health, "/ready", 503, Duration::from_secs(10));
    assert_eq!(body["reason"], "draining", "{body}");
    let (status, body) = health.get("/health");
    assert_eq!(status, 200, "draining is healthy: {body}");
    assert_eq!(health.get("/status").1["draining"], true);

    open_gate(&gate);
    assert_eq!(worker.wait_exit(Duration::from_secs(30)), Some(0));
    assert!(
        wait_for_status(&api, "completed", 1, Duration::from_secs(10)),
        "{:?}\n{}",
        api.get("/tasks"),
        worker.log()
    );
}

#[test]
fn ready_follows_the_api_down_and_back_up() {
    let server = start_server(ServerConfig::default());
    let addr = server.addr();
    let url = server.url();
    let mut worker = WorkerSpec::new("outage", &url, config())
        .env("HEALTH_ADDR", "127.0.0.1:0")
        // Short long polls, so a claim open when the server goes ends soon.
        .env("WAIT_SECONDS", "1")
        .start();
    let health = Api::new(worker.health_url());
    wait_answer(&health, "/ready", 200, Duration::from_secs(20));

    drop(server);
    let body = wait_answer(&health, "/ready", 503, Duration::from_secs(30));
    assert_eq!(body["reason"], "task API unreachable", "{body}");
    assert_eq!(
        health.get("/health").0,
        200,
        "an outage is not a dead worker"
    );

    let server = Server::start(ServerConfig {
        listen: addr.to_string(),
        ..ServerConfig::default()
    })
    .expect("server restarts on its port");
    wait_answer(&health, "/ready", 200, Duration::from_secs(60));
    let api = Api::new(server.url());
    api.enqueue("echo", json!({"after": "outage"}));
    assert!(wait_for_status(
        &api,
        "completed",
        1,
        Duration::from_secs(30)
    ));
    worker.stop(Duration::from_secs(10));
}

#[test]
fn refused_credentials_make_the_worker_unready_and_unhealthy() {
    let server = start_server(ServerConfig {
        api_key: Some("the-right-key".into()),
        ..ServerConfig::default()
    });
    let mut worker = WorkerSpec::new("refused", &server.url(), config())
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .env("API_KEY", "a-wrong-key")
        .start();
    let health = Api::new(worker.health_url());
    let body = wait_answer(&health, "/ready", 503, Duration::from_secs(20));
    assert_eq!(body["reason"], "task API refused the credentials", "{body}");
    let body = wait_answer(&health, "/health", 503, Duration::from_secs(10));
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert_eq!(body["api"], "unauthorized", "{body}");
    worker.stop(Duration::from_secs(10));
}

#[test]
fn a_health_port_in_use_fails_the_start_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let mut worker = WorkerSpec::new("port-in-use", "http://127.0.0.1:9", config())
        .env("HEALTH_ADDR", addr.clone())
        .start();
    assert_eq!(worker.wait_exit(Duration::from_secs(10)), Some(1));
    let log = worker.log();
    assert!(
        log.contains(&format!("HEALTH_ADDR {addr}")) && log.contains("in use"),
        "{log}"
    );
}

#[test]
fn unknown_paths_and_methods_are_refused() {
    let server = start_server(ServerConfig::default());
    let mut worker = worker("routes", &server.url());
    let health = Api::new(worker.health_url());
    assert_eq!(health.get("/nothing").0, 404);
    assert_eq!(health.post_json("/health", &json!({})).0, 405);
    worker.stop(Duration::from_secs(10));
}
