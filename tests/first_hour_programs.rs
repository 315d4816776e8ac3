//! Handler programs are checked before any task: `check-config` and `run`
//! refuse a missing or non-executable `exec` program with 78 naming the
//! handler; a relative command resolves against the config file's
//! directory; a program that disappears later fails its task retryably and
//! turns `/ready` 503 until it is back.
#![cfg(feature = "server")]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::fake::{one_task_api, task, wait_for};
use support::worker::{wait_for_status, WorkerSpec};
use support::{bin, start_server, temp_dir, wait_exit, wait_until, write_file_mode, Api};
use taskworker::ServerConfig;

const LIMIT: Duration = Duration::from_secs(20);

/// Writes a shell script with permission `mode`.
fn script(path: &Path, body: &str, mode: u32) {
    write_file_mode(path, &format!("#!/bin/sh\n{body}\n"), mode);
}

/// `taskworker <command> --config <config>` in `cwd`, with only `PATH`,
/// `API_URL` and `extra` in its environment.
fn taskworker(command: &str, config: &Path, cwd: &Path, extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args([command, "--config"])
        .arg(config)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HEALTH_ADDR", "")
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// Runs `taskworker <command>` as [`taskworker`] builds it, bounded;
/// returns its exit code and stderr.
fn exit_of(command: &str, config: &Path, cwd: &Path) -> (Option<i32>, String) {
    let err = cwd.join(format!("{command}.stderr"));
    let mut child = taskworker(command, config, cwd, &[("API_URL", "http://127.0.0.1:9")])
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("taskworker starts");
    let code = wait_exit(&mut child, LIMIT);
    let _ = child.kill();
    let _ = child.wait();
    (code, std::fs::read_to_string(&err).unwrap_or_default())
}

fn write_config(dir: &Path, handlers: Value) -> std::path::PathBuf {
    let path = dir.join("config.json");
    std::fs::write(&path, json!({ "handlers": handlers }).to_string()).unwrap();
    path
}

#[test]
fn a_missing_or_non_executable_program_is_refused_with_78_naming_the_handler() {
    let dir = temp_dir("programs-refused");
    let not_executable = dir.join("send-email");
    script(&not_executable, "", 0o644);
    for (handler, command, problem) in [
        (
            "send.email",
            json!(["/nonexistent/taskworker/send-email"]),
            "not found",
        ),
        ("send.email", json!([not_executable]), "not executable"),
        (
            "process.image",
            json!(["taskworker-no-such-program", "-"]),
            "PATH",
        ),
    ] {
        let config = write_config(
            &dir,
            json!({ "echo": {"builtin": "echo"}, handler: {"exec": {"command": command}} }),
        );
        for command in ["check-config", "run"] {
            let (code, stderr) = exit_of(command, &config, &dir);
            assert_eq!(code, Some(78), "{command}: {stderr}");
            let key = format!("handlers.{handler}.exec.command");
            assert!(stderr.contains(&key), "{command}: {stderr}");
            assert!(stderr.contains(problem), "{command}: {stderr}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_relative_command_resolves_against_the_config_files_directory() {
    let etc = temp_dir("programs-etc");
    let elsewhere = temp_dir("programs-cwd");
    script(
        &etc.join("handlers/hello"),
        r#"printf '{"hello": "%s"}' "$TASK_ID""#,
        0o755,
    );
    let config = write_config(
        &etc,
        json!({ "hello": {"exec": {"command": ["handlers/hello"]}} }),
    );

    let (code, stderr) = exit_of("check-config", &config, &elsewhere);
    assert_eq!(code, Some(0), "{stderr}");

    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = api.enqueue("hello", json!({}));
    let url = server.url();
    let mut worker = taskworker(
        "run",
        &config,
        &elsewhere,
        &[("API_URL", &url), ("POLLING_INTERVAL", "100ms")],
    )
    .stderr(Stdio::null())
    .spawn()
    .expect("worker starts");
    let done = wait_for_status(&api, "completed", 1, LIMIT);
    support::send_signal(&worker, "TERM");
    let code = wait_exit(&mut worker, LIMIT);
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(done, "task: {}", api.task(&id));
    assert_eq!(api.task(&id)["result"], json!({"hello": id}));
    assert_eq!(code, Some(0));
    let _ = std::fs::remove_dir_all(etc);
    let _ = std::fs::remove_dir_all(elsewhere);
}

#[test]
fn a_program_removed_after_the_start_fails_retryably_and_is_not_ready() {
    // No task until the program is gone.
    let release = Arc::new(AtomicBool::new(false));
    let api = one_task_api(task("t-1", "mail", json!({}), None), release.clone());
    let url = api.url();
    let program_dir = temp_dir("program-removed-bin");
    let program = program_dir.join("send-mail");
    script(&program, "echo '{}'", 0o755);
    let worker = WorkerSpec::new(
        "program-removed",
        &url,
        json!({"handlers": {"mail": {"exec": {"command": [program]}}}}),
    )
    .env("HEALTH_ADDR", "127.0.0.1:0")
    .env("MAX_RETRIES", "0")
    .start();
    let health = Api::new(worker.health_url());
    assert!(
        wait_until(LIMIT, || health.get("/ready").0 == 200),
        "{}",
        worker.log()
    );
    std::fs::remove_file(&program).unwrap();
    release.store(true, Ordering::SeqCst);

    wait_for(&worker, || !api.seen("/tasks/t-1/fail").is_empty());
    let fail = &api.seen("/tasks/t-1/fail")[0].body;
    assert_eq!(fail["error_type"], "HANDLER", "{fail}");
    assert_eq!(fail["retryable"], true, "{fail}");
    assert!(
        fail["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not found"),
        "{fail}"
    );
    let (status, ready) = health.get("/ready");
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("handlers.mail.exec"),
        "{ready}"
    );

    script(&program, "echo '{}'", 0o755);
    assert!(
        wait_until(LIMIT, || health.get("/ready").0 == 200),
        "{}",
        worker.log()
    );
    let _ = std::fs::remove_dir_all(program_dir);
}
