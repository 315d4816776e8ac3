//! Cancelling a task a worker runs, against the real server on every
//! store: the worker's next heartbeat gets 410, it kills the handler's
//! process group and reports nothing; the task stays `cancelled`.

#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use serde_json::json;
use support::worker::WorkerSpec;
use support::{group_members, read_pid, start_server, temp_dir, wait_until, Api};
use taskworker::ServerConfig;

fn a_cancelled_running_task_is_killed_and_not_reported() {
    let server = start_server(ServerConfig {
        lease: Duration::from_secs(3),
        ..ServerConfig::default()
    });
    let api = Api::new(server.url());
    let dir = temp_dir("cancel-running");
    let pid_file = dir.join("pid");
    let script = format!(
        "cat >/dev/null; echo $$ > {}; sleep 60; echo done",
        pid_file.display()
    );
    let config = json!({"handlers": {"long": {"exec": {"command": ["sh", "-c", script]}}}});
    let id = api.enqueue("long", json!({}));
    let url = server.url();
    let mut worker = WorkerSpec::new("cancel-running", &url, config)
        .env("TIMEOUT", "120")
        .start();
    let pgid = read_pid(&pid_file);
    assert!(!group_members(pgid).is_empty());
    let (status, body) = api.post_json(&format!("/tasks/{id}/cancel"), &json!({}));
    assert_eq!(
        (status, body["task"]["status"].as_str()),
        (200, Some("cancelled"))
    );
    assert!(
        wait_until(Duration::from_secs(30), || group_members(pgid).is_empty()),
        "the handler outlived the cancel: {:?}\nlog:\n{}",
        group_members(pgid),
        worker.log()
    );
    assert!(
        worker.wait_log("lease lost", Duration::from_secs(10)),
        "log:\n{}",
        worker.log()
    );
    let task = api.task(&id);
    assert_eq!(task["status"], "cancelled", "{task}");
    assert_eq!(task["history"][0]["outcome"], "cancelled", "{task}");
    let workers = api.get("/workers").1;
    assert_eq!(workers["workers"][0]["running"], 0, "{workers}");
    worker.stop(Duration::from_secs(10));
}

per_store!(a_cancelled_running_task_is_killed_and_not_reported);
