//! The exec handler's environment: secrets scrubbed, task variables added.
//! Alone in its file because it sets the test process's own environment.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{ctx, handler_env, handler_with, run, task};

#[test]
fn secrets_never_reach_the_program_but_task_variables_do() {
    for (name, value) in [
        ("API_KEY", "sk-secret-1"),
        ("API_KEY_FILE", "/run/secret/key"),
        ("CREDENTIALS_DIRECTORY", "/run/credentials/x"),
        ("DB_PASSWORD", "hunter2"),
        ("TASKWORKER_TEST_KEPT", "kept"),
    ] {
        std::env::set_var(name, value);
    }
    let h = handler_with(
        json!({"exec": {"command": ["env"], "env": {"EXTRA": "from-config"}}}),
        &handler_env(&["DB_PASSWORD"]),
    );
    let mut c = ctx();
    c.attempt = 3;
    let out = run(&h, &task("task-42", json!({})), &c, Duration::from_secs(30)).unwrap();
    let text = out["output"].as_str().unwrap().to_string();
    let vars: Vec<&str> = text.lines().collect();
    for gone in [
        "API_KEY=",
        "API_KEY_FILE=",
        "CREDENTIALS_DIRECTORY=",
        "DB_PASSWORD=",
    ] {
        assert!(
            !vars.iter().any(|l| l.starts_with(gone)),
            "{gone} leaked:\n{text}"
        );
    }
    for secret in ["sk-secret-1", "hunter2"] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
    for kept in [
        "TASK_ID=task-42",
        "TASK_TYPE=t",
        "TASK_ATTEMPT=3",
        "WORKER_ID=test-worker",
        "EXTRA=from-config",
        "TASKWORKER_TEST_KEPT=kept",
    ] {
        assert!(vars.contains(&kept), "{kept} missing:\n{text}");
    }
}
