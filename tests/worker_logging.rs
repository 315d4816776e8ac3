//! Log formats: JSON lines, journald priority prefixes, LOG_FILE, and every
//! line about a task naming its id and type.

#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::worker::{builtin_handlers, wait_for_status, WorkerSpec};
use support::{start_server, Api};
use taskworker::ServerConfig;

fn run_one_failing_task(name: &str, env: Vec<(&'static str, String)>) -> (String, String) {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = api.enqueue("fail", json!({"message": "nope"}));
    let url = server.url();
    let mut spec = WorkerSpec::new(name, &url, builtin_handlers());
    for (k, v) in env {
        spec = spec.env(k, v);
    }
    let mut worker = spec.start();
    assert!(
        wait_for_status(&api, "failed", 1, Duration::from_secs(30)),
        "log:\n{}",
        worker.log()
    );
    worker.stop(Duration::from_secs(10));
    (worker.log(), id)
}

#[test]
fn json_format_writes_one_object_a_line() {
    let (log, id) = run_one_failing_task("log-json", vec![("LOG_FORMAT", "json".into())]);
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        assert!(
            line["ts"].is_string() && line["level"].is_string() && line["msg"].is_string(),
            "{line}"
        );
    }
    let about_task: Vec<&Value> = lines
        .iter()
        .filter(|l| l["msg"].as_str().unwrap_or("").contains(&id))
        .collect();
    assert!(!about_task.is_empty(), "{log}");
    for line in about_task {
        assert!(
            line["msg"].as_str().unwrap_or("").contains("(fail)"),
            "names the type: {line}"
        );
    }
}

#[test]
fn journald_lines_carry_priorities_and_no_timestamp() {
    let (log, _) = run_one_failing_task("log-journal", vec![("JOURNAL_STREAM", "8:12345".into())]);
    for line in log.lines() {
        let prefix_ok = ["<3>", "<4>", "<6>", "<7>"]
            .iter()
            .any(|p| line.starts_with(p));
        assert!(prefix_ok, "{line}");
        assert!(!line[3..].starts_with("20"), "no timestamp: {line}");
    }
    assert!(log.contains("<4>task "), "the failure is a warning: {log}");
}

#[test]
fn log_file_receives_the_lines() {
    let path = std::env::temp_dir().join(format!("taskworker-logfile-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let (stderr, _) =
        run_one_failing_task("log-file", vec![("LOG_FILE", path.display().to_string())]);
    let file = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        file.contains("worker") && file.contains("started"),
        "{file}"
    );
    assert!(!stderr.contains("started"), "nothing on stderr: {stderr}");
}
