//! A server that is down at start: the worker keeps trying, logs the outage
//! once, and processes the tasks once the server is up.

#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use serde_json::json;
use support::worker::{builtin_handlers, wait_for_status, WorkerSpec};
use support::Api;
use taskworker::{Server, ServerConfig};

#[test]
fn keeps_trying_until_the_server_is_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut worker = WorkerSpec::new("outage", &url, builtin_handlers()).start();
    assert!(
        worker.wait_log("unreachable", Duration::from_secs(10)),
        "log:\n{}",
        worker.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let server = Server::start(ServerConfig {
        listen: format!("127.0.0.1:{port}"),
        ..ServerConfig::default()
    })
    .unwrap();
    let api = Api::new(server.url());
    api.enqueue("echo", json!({"after": "outage"}));
    assert!(
        wait_for_status(&api, "completed", 1, Duration::from_secs(60)),
        "log:\n{}",
        worker.log()
    );
    let log = worker.log();
    assert_eq!(
        log.matches("unreachable").count(),
        1,
        "the outage is logged once:\n{log}"
    );
    assert!(log.contains("reachable again"), "{log}");
    worker.stop(Duration::from_secs(10));
}
