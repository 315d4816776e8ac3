//! The exec handler's contract with real child processes: results, exit
//! codes, stdin, start-up failures and concurrent runs.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::{ctx, handler, run, sh, task, temp_dir, write_file_mode};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn json_stdout_is_the_result_and_task_arrives_on_stdin() {
    let h = sh(r#"read -r line; printf '{"got": %s, "id": "%s"}' "$line" "$TASK_ID""#);
    let t = task("task-1", json!({"x": [1, 2]}));
    let result = run(&h, &t, &ctx(), LIMIT).unwrap();
    assert_eq!(result["got"], serde_json::to_value(&t).unwrap());
    assert_eq!(result["id"], "task-1");
}

#[test]
fn text_stdout_becomes_output_and_blank_stdout_null() {
    let h = sh("echo hello world");
    assert_eq!(
        run(&h, &task("1", json!({})), &ctx(), LIMIT),
        Ok(json!({"output": "hello world\n"}))
    );
    assert_eq!(
        run(&sh("true"), &task("1", json!({})), &ctx(), LIMIT),
        Ok(Value::Null)
    );
}

#[test]
fn exit_75_is_a_retryable_failure_with_the_last_stderr_line() {
    let err = run(
        &sh("echo 'SMTP 451' >&2; echo 'try later' >&2; echo >&2; exit 75"),
        &task("1", json!({})),
        &ctx(),
        LIMIT,
    )
    .unwrap_err();
    assert_eq!(err.message, "try later");
    assert_eq!(err.error_type, "HANDLER");
    assert!(err.retryable);
    assert!(err.traceback.unwrap().contains("SMTP 451\ntry later"));
}

#[test]
fn other_exit_codes_are_permanent() {
    let err = run(&sh("exit 3"), &task("1", json!({})), &ctx(), LIMIT).unwrap_err();
    assert_eq!(err.message, "exited with status 3");
    assert_eq!(err.error_type, "HANDLER");
    assert!(!err.retryable);
    assert_eq!(err.traceback, None);
    let err = run(
        &sh("echo 'no \"to\" given' >&2; exit 1"),
        &task("1", json!({})),
        &ctx(),
        LIMIT,
    )
    .unwrap_err();
    assert_eq!(err.message, "no \"to\" given");
    assert!(!err.retryable);
}

#[test]
fn traceback_keeps_only_the_last_4_kib_of_stderr() {
    let h = sh("i=0; while [ $i -lt 2000 ]; do echo \"line $i\" >&2; i=$((i+1)); done; exit 1");
    let err = run(&h, &task("1", json!({})), &ctx(), LIMIT).unwrap_err();
    assert_eq!(err.message, "line 1999");
    let tb = err.traceback.unwrap();
    assert!(tb.len() <= 4096, "{}", tb.len());
    assert!(tb.ends_with("line 1999\n"));
}

#[test]
fn death_by_signal_is_retryable() {
    let err = run(&sh("kill -9 $$"), &task("1", json!({})), &ctx(), LIMIT).unwrap_err();
    assert_eq!(err.message, "killed by signal 9");
    assert_eq!(err.error_type, "HANDLER");
    assert!(err.retryable);
}

#[test]
fn a_program_that_never_reads_stdin_does_not_block() {
    // Far more than a pipe holds (64 KiB), so a blocking write would hang.
    let big = "x".repeat(4 << 20);
    let h = sh("sleep 0.2; echo '{\"ok\": true}'");
    let result = run(&h, &task("1", json!({ "blob": big })), &ctx(), LIMIT);
    assert_eq!(result, Ok(json!({"ok": true})));
    // And one that exits at once, so the write hits a closed pipe.
    let result = run(
        &sh("exit 0"),
        &task("1", json!({ "blob": big })),
        &ctx(),
        LIMIT,
    );
    assert_eq!(result, Ok(Value::Null));
}

#[test]
fn output_over_max_output_is_a_validation_failure() {
    let h =
        handler(json!({"exec": {"command": ["sh", "-c", "printf 12345678901"], "max_output": 10}}));
    let err = run(&h, &task("1", json!({})), &ctx(), LIMIT).unwrap_err();
    assert_eq!(err.error_type, "VALIDATION");
    assert!(!err.retryable);
    assert!(err.message.contains("max_output"), "{}", err.message);
    let h =
        handler(json!({"exec": {"command": ["sh", "-c", "printf 1234567890"], "max_output": 10}}));
    assert_eq!(
        run(&h, &task("1", json!({})), &ctx(), LIMIT),
        Ok(json!(1234567890))
    );
}

#[test]
fn a_program_gone_after_the_start_fails_retryably_naming_its_path() {
    let dir = temp_dir("gone");
    let script = dir.join("script");
    write_file_mode(&script, "#!/bin/sh\necho hi\n", 0o755);
    let h = handler(json!({"exec": {"command": [script]}}));

    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = run(&h, &task("1", json!({})), &ctx(), LIMIT).unwrap_err();
    assert!(
        err.message.contains(script.to_str().unwrap()),
        "{}",
        err.message
    );
    assert!(err.message.contains("not executable"), "{}", err.message);
    assert_eq!(err.error_type, "HANDLER");
    assert!(err.retryable);

    std::fs::remove_file(&script).unwrap();
    let err = run(&h, &task("1", json!({})), &ctx(), LIMIT).unwrap_err();
    assert!(err.message.contains("not found"), "{}", err.message);
    assert!(err.retryable);

    let h = handler(json!({"exec": {"command": ["true"], "cwd": dir.join("missing")}}));
    let err = run(&h, &task("1", json!({})), &ctx(), LIMIT).unwrap_err();
    assert!(err.message.contains("working directory"), "{}", err.message);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn env_and_cwd_options_reach_the_program() {
    let dir = temp_dir("cwd");
    let h = handler(json!({"exec": {
        "command": ["sh", "-c", "printf '{\"greeting\": \"%s\", \"dir\": \"%s\"}' \"$GREETING\" \"$(pwd -P)\""],
        "env": {"GREETING": "hello"},
        "cwd": dir,
    }}));
    let result = run(&h, &task("1", json!({})), &ctx(), LIMIT).unwrap();
    assert_eq!(result["greeting"], "hello");
    assert_eq!(result["dir"], dir.canonicalize().unwrap().to_str().unwrap());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn four_handlers_run_at_once() {
    let h = sh(
        r#"read -r line; sleep 0.5; printf '{"id": "%s", "attempt": %s}' "$TASK_ID" "$TASK_ATTEMPT""#,
    );
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let h = Arc::clone(&h);
            std::thread::spawn(move || run(&h, &task(&format!("t{i}"), json!({})), &ctx(), LIMIT))
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(
            t.join().unwrap(),
            Ok(json!({"id": format!("t{i}"), "attempt": 1}))
        );
    }
}
