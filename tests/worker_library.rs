//! The crate as a library: native handlers registered in Rust run in the
//! same worker; retryable errors are retried, panics are isolated.

#![cfg(feature = "server")]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::worker::wait_for_status;
use support::{start_server, Api};
use taskworker::ServerConfig;
use taskworker::{Config, Context, Task, TaskError, Worker};

fn config(url: String) -> Config {
    Config {
        api_url: url,
        concurrent_tasks: 2,
        health_addr: None,
        wait_seconds: 1,
        polling_interval: Duration::from_millis(50),
        ..Config::default()
    }
}

#[test]
fn native_handlers_retry_and_survive_panics() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let flaky_id = api.enqueue("flaky", json!({}));
    let panic_id = api.enqueue("boom", json!({}));
    let after_ids: Vec<String> = (0..4)
        .map(|i| api.enqueue("double", json!({"n": i})))
        .collect();

    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let (shutdown, stop) = taskworker::manual_shutdown();
    let worker = Worker::new(config(server.url()))
        .handler("flaky", move |_: &Task, _: &Context| {
            if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(TaskError::new("try later", "RATE_LIMIT", true))
            } else {
                Ok(json!({"ok": true}))
            }
        })
        .handler(
            "boom",
            |_: &Task, _: &Context| -> Result<serde_json::Value, TaskError> {
                panic!("handler bug")
            },
        )
        .handler("double", |task: &Task, _: &Context| {
            Ok(json!(task.parameters["n"].as_u64().unwrap_or(0) * 2))
        });
    let thread = std::thread::spawn(move || worker.run_until(shutdown, |_| {}));

    assert!(wait_for_status(
        &api,
        "completed",
        5,
        Duration::from_secs(30)
    ));
    assert!(wait_for_status(&api, "failed", 1, Duration::from_secs(30)));
    let flaky = api.task(&flaky_id);
    assert_eq!(flaky["status"], "completed", "{flaky}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two local retries, then success"
    );
    assert_eq!(
        flaky["history"].as_array().map(Vec::len),
        Some(1),
        "retried locally, one delivery"
    );
    let boom = api.task(&panic_id);
    assert_eq!(boom["error_type"], "PANIC", "{boom}");
    assert!(
        boom["error"].as_str().unwrap_or("").contains("handler bug"),
        "{boom}"
    );
    for (i, id) in after_ids.iter().enumerate() {
        assert_eq!(
            api.task(id)["result"],
            json!(i * 2),
            "threads live on after the panic"
        );
    }
    stop.stop(taskworker::StopReason::Requested);
    assert_eq!(thread.join().unwrap().unwrap(), 0);
}
