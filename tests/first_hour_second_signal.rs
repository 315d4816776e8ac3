//! The second signal leaves nothing behind: before exiting 143 the worker
//! kills every handler's process group, logs each abandoned task, and hands
//! it back failed `SHUTDOWN` (retryable) within a short bound; what it
//! cannot send stays in the spool for the next start.
#![cfg(feature = "server")]

mod support;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake::{one_task_api, task};
use support::worker::{WorkerProcess, WorkerSpec};
use support::{
    assert_group_gone, group_members, read_pid, start_server, temp_dir, wait_until, Api,
};
use taskworker::ServerConfig;

const LIMIT: Duration = Duration::from_secs(20);

/// A handler that records its process group and starts a grandchild in it,
/// then runs far longer than any test.
fn long_handler(pid_file: &Path) -> Value {
    let script = format!("sleep 600 & echo $$ > {}; wait", pid_file.display());
    json!({"handlers": {"long": {"exec": {"command": ["sh", "-c", script]}}}})
}

/// Sends SIGTERM, waits for the drain, sends SIGTERM again; asserts exit
/// 143 within a few seconds and returns the log.
fn second_sigterm(worker: &mut WorkerProcess) -> String {
    worker.signal("TERM");
    assert!(worker.wait_log("draining", LIMIT), "log:\n{}", worker.log());
    let sent = Instant::now();
    worker.signal("TERM");
    let log = worker.expect_exit(143, LIMIT);
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "took {:?}:\n{log}",
        sent.elapsed()
    );
    log
}

#[test]
fn a_second_sigterm_kills_the_group_and_hands_the_task_back() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = api.enqueue("long", json!({}));
    let dir = temp_dir("second-signal");
    let pid_file = dir.join("pid");
    let mut worker = WorkerSpec::new("second-sigterm", &server.url(), long_handler(&pid_file))
        .env("TIMEOUT", "600")
        .env("SHUTDOWN_TIMEOUT", "600")
        .start();
    assert!(wait_until(LIMIT, || pid_file.exists()), "{}", worker.log());
    let pgid = read_pid(&pid_file);
    assert!(!group_members(pgid).is_empty());

    let log = second_sigterm(&mut worker);
    assert_group_gone(pgid);
    assert!(
        log.contains(&format!("task {id} (long): abandoned")),
        "{log}"
    );
    let task = api.task(&id);
    let errors: Vec<&Value> = task["history"]
        .as_array()
        .map(|attempts| attempts.iter().map(|a| &a["error_type"]).collect())
        .unwrap_or_default();
    assert_eq!(errors, [&json!("SHUTDOWN")], "{task}\n{log}");
    assert_ne!(task["status"], "failed", "retryable: {task}");
    assert_ne!(task["status"], "claimed", "handed back: {task}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_second_sigterm_keeps_what_it_cannot_send_in_the_spool() {
    let api = one_task_api(
        task("t-spooled", "long", json!({}), None),
        Arc::new(AtomicBool::new(true)),
    );
    let url = api.url();
    let dir = temp_dir("second-signal-spool");
    let pid_file = dir.join("pid");
    let state = dir.join("state");
    let mut worker = WorkerSpec::new("second-sigterm-spool", &url, long_handler(&pid_file))
        .env("TIMEOUT", "600")
        .env("SHUTDOWN_TIMEOUT", "600")
        .env("STATE_DIR", state.to_str().unwrap())
        .start();
    assert!(wait_until(LIMIT, || pid_file.exists()), "{}", worker.log());
    let pgid = read_pid(&pid_file);
    // The server goes away: nothing can be handed back.
    drop(api);

    let log = second_sigterm(&mut worker);
    assert_group_gone(pgid);
    assert!(log.contains("task t-spooled (long): abandoned"), "{log}");
    assert!(log.contains("task t-spooled: kept in the spool"), "{log}");
    let spool = std::fs::read_to_string(state.join("spool.jsonl")).unwrap_or_default();
    let record = spool
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["op"] == "outcome" && r["task_id"] == "t-spooled");
    let record = record.unwrap_or_else(|| panic!("spool:\n{spool}\nlog:\n{log}"));
    assert_eq!(record["kind"], "fail", "{record}");
    assert_eq!(record["body"]["error_type"], "SHUTDOWN", "{record}");
    assert_eq!(record["body"]["retryable"], true, "{record}");
    let _ = std::fs::remove_dir_all(dir);
}
