//! Timeout and cancel stop the command's whole process group, grandchildren
//! included, and leave nothing running.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    assert_group_gone, ctx, group_members, handler, handler_env, read_pid, run, task, temp_dir,
    wait_until,
};
use taskworker::ExecHandler;
use taskworker::Handler;
use taskworker::{CancelReason, Context};

const LIMIT: Duration = Duration::from_secs(30);

/// A script that records its pid (its group's id) and leaves a grandchild sleeping.
fn forking_script(pid_file: &std::path::Path) -> String {
    format!(
        "echo $$ > {}; sleep 1000 & sleep 1000; wait",
        pid_file.display()
    )
}

#[test]
fn handler_timeout_kills_the_group_with_its_grandchild() {
    let dir = temp_dir("timeout");
    let pid_file = dir.join("pid");
    let h = handler(json!({"exec": {
        "command": ["sh", "-c", forking_script(&pid_file)],
        "timeout": "1s",
    }}));
    let err = run(&h, &task("1", json!({})), &ctx(), LIMIT).unwrap_err();
    assert_eq!(err.error_type, "TIMEOUT");
    assert!(err.retryable);
    assert!(err.message.contains("timed out"), "{}", err.message);
    assert_group_gone(read_pid(&pid_file));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_task_deadline_applies_too() {
    let dir = temp_dir("deadline");
    let pid_file = dir.join("pid");
    let h = handler(
        json!({"exec": {"command": ["sh", "-c", forking_script(&pid_file)], "timeout": 600}}),
    );
    let short = Context::new(Duration::from_secs(1), 1, "w".into());
    let err = run(&h, &task("1", json!({})), &short, LIMIT).unwrap_err();
    assert_eq!(err.error_type, "TIMEOUT");
    assert_group_gone(read_pid(&pid_file));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cancel_kills_the_group_promptly_with_the_reason_as_error_type() {
    for (reason, kind) in [
        (CancelReason::Shutdown, "SHUTDOWN"),
        (CancelReason::LeaseLost, "LEASE_LOST"),
        (CancelReason::Timeout, "TIMEOUT"),
    ] {
        let dir = temp_dir("cancel");
        let pid_file = dir.join("pid");
        let h = handler(json!({"exec": {"command": ["sh", "-c", forking_script(&pid_file)]}}));
        let c = ctx();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (h2, c2) = (Arc::clone(&h), c.clone());
        std::thread::spawn(move || {
            let _ = tx.send(h2.handle(&task("1", json!({})), &c2));
        });
        let pgid = read_pid(&pid_file);
        assert!(wait_until(LIMIT, || group_members(pgid).len() >= 2));
        let start = Instant::now();
        c.cancel.cancel(reason);
        let err = rx
            .recv_timeout(LIMIT)
            .expect("handler returns")
            .unwrap_err();
        let returned = start.elapsed();
        assert_group_gone(pgid);
        eprintln!(
            "{kind}: handler returned {returned:?} after cancel, group gone after {:?}",
            start.elapsed()
        );
        assert_eq!(err.error_type, kind);
        assert!(err.retryable);
        // sleep dies of SIGTERM at once: nowhere near the 5 s SIGKILL grace.
        assert!(returned < Duration::from_secs(4), "{returned:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_group_that_ignores_sigterm_gets_sigkill_after_the_grace() {
    let dir = temp_dir("ignore-term");
    let pid_file = dir.join("pid");
    let script = format!("trap '' TERM; {}", forking_script(&pid_file));
    let h = ExecHandler::from_config(
        &json!({"command": ["sh", "-c", script], "timeout": "1s"}),
        "handlers.t.exec",
        &handler_env(&[]),
    )
    .unwrap()
    .with_kill_grace(Duration::from_millis(300));
    let h: Arc<dyn Handler> = Arc::new(h);
    let start = Instant::now();
    let err = run(&h, &task("1", json!({})), &ctx(), LIMIT).unwrap_err();
    assert_eq!(err.error_type, "TIMEOUT");
    assert!(start.elapsed() >= Duration::from_millis(1300));
    assert_group_gone(read_pid(&pid_file));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn background_processes_left_by_a_finished_program_are_killed() {
    let dir = temp_dir("leftover");
    let pid_file = dir.join("pid");
    // The grandchild keeps stdout open: the readers must not wait for it.
    let script = format!("echo $$ > {}; sleep 1000 & echo done", pid_file.display());
    let h = handler(json!({"exec": {"command": ["sh", "-c", script]}}));
    let result = run(&h, &task("1", json!({})), &ctx(), LIMIT);
    assert_eq!(result, Ok(json!({"output": "done\n"})));
    assert_group_gone(read_pid(&pid_file));
    let _ = std::fs::remove_dir_all(dir);
}
