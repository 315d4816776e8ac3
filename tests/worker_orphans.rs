//! As PID 1 (a container's init), the worker reaps the orphans that its
//! handlers' programs leave behind, so that zombies never pile up.

#![cfg(feature = "server")]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::worker::{wait_for_status, WorkerSpec};
use support::{start_server, wait_until, Api};
use taskworker::ServerConfig;

/// The pids of `parent`'s children in `state` (`Z` for zombies), from `/proc`.
fn children_in_state(parent: i32, state: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            fields.next() == Some(state)
                && fields.next().and_then(|p| p.parse().ok()) == Some(parent)
        })
        .collect()
}

/// Whether this machine lets us start a process as PID 1 of a new pid namespace.
fn can_unshare_pid() -> bool {
    Command::new("unshare")
        .args(["--pid", "--kill-child", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn as_pid_1_reaps_the_orphans_of_handler_programs() {
    if !can_unshare_pid() {
        support::skip(
            "cannot start a process in a new pid namespace here (needs root and unshare)",
        );
        return;
    }
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    // The program exits at once and leaves a child behind: that child is
    // re-parented to PID 1, then killed with the program's group.
    let config = json!({"handlers": {
        "orphaning": {"exec": {"command": ["sh", "-c", "sleep 30 & echo '{}'"]}}
    }});
    let worker = WorkerSpec::new("orphans", &server.url(), config)
        .env("CONCURRENT_TASKS", "2")
        // --kill-child: when the test kills `unshare`, the worker dies too.
        .wrapped(&["unshare", "--pid", "--kill-child", "--mount-proc"])
        .start();
    for _ in 0..5 {
        api.enqueue("orphaning", json!({}));
    }
    assert!(
        wait_for_status(&api, "completed", 5, Duration::from_secs(60)),
        "log:\n{}",
        worker.log()
    );
    // `unshare` forks the worker, which is PID 1 of the new namespace.
    let unshare = worker.child.id() as i32;
    let mut workers = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        workers = children_in_state(unshare, "S");
        workers.extend(children_in_state(unshare, "R"));
        !workers.is_empty()
    }));
    let init = workers[0];
    assert!(
        wait_until(Duration::from_secs(10), || children_in_state(init, "Z")
            .is_empty()),
        "zombie children of the worker remain: {:?}; log:\n{}",
        children_in_state(init, "Z"),
        worker.log()
    );
}
