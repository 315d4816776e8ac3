//! The API key never appears in the log, even at trace level, and refused
//! credentials are logged naming the status without stopping the worker.

#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use serde_json::json;
use support::worker::{builtin_handlers, wait_for_status, WorkerSpec};
use support::{start_server, Api};
use taskworker::ServerConfig;

const KEY: &str = "tw-very-secret-key-7c1f";

#[test]
fn the_api_key_never_appears_in_the_log_at_trace_level() {
    let server = start_server(ServerConfig {
        api_key: Some(KEY.into()),
        ..ServerConfig::default()
    });
    let api = Api::new(server.url()).with_key(KEY);
    for i in 0..5 {
        api.enqueue("echo", json!({"i": i}));
    }
    let mut worker = WorkerSpec::new("secret", &server.url(), builtin_handlers())
        .env("API_KEY", KEY)
        .env("LOG_LEVEL", "trace")
        .env("RUST_LOG", "trace")
        .start();
    assert!(
        wait_for_status(&api, "completed", 5, Duration::from_secs(30)),
        "log:\n{}",
        worker.log()
    );
    worker.stop(Duration::from_secs(10));
    let log = worker.log();
    assert!(
        log.contains("DEBUG") || log.contains("TRACE"),
        "trace logging was on:\n{log}"
    );
    assert!(!log.contains(KEY), "the key leaked:\n{log}");
}

#[test]
fn refused_credentials_are_logged_with_the_status_and_the_worker_stays_up() {
    let server = start_server(ServerConfig {
        api_key: Some(KEY.into()),
        ..ServerConfig::default()
    });
    let mut worker = WorkerSpec::new("badkey", &server.url(), builtin_handlers())
        .env("API_KEY", "wrong-key")
        .start();
    assert!(
        worker.wait_log("401", Duration::from_secs(10)),
        "log:\n{}",
        worker.log()
    );
    assert!(worker.log().contains("ERROR"), "{}", worker.log());
    assert!(!worker.log().contains("wrong-key"));
    assert_eq!(
        worker.wait_exit(Duration::from_millis(500)),
        None,
        "does not exit"
    );
    worker.stop(Duration::from_secs(10));
}

#[test]
fn dotenv_variables_reach_handlers_but_secrets_do_not() {
    let server = start_server(ServerConfig {
        api_key: Some(KEY.into()),
        ..ServerConfig::default()
    });
    let api = Api::new(server.url()).with_key(KEY);
    let id = api.enqueue("env", json!({}));
    let script = r#"printf '{"greeting":"%s","key":"%s","key_file":"%s","task":"%s"}' "$GREETING" "${API_KEY:-}" "${API_KEY_FILE:-}" "$TASK_ID""#;
    let config = json!({"handlers": {"env": {"exec": {"command": ["sh", "-c", script]}}}});
    let worker = WorkerSpec::new("dotenv", &server.url(), config)
        .file(
            ".env",
            format!("GREETING=hello-from-dotenv\nAPI_KEY={KEY}\n"),
        )
        .start();
    assert!(
        wait_for_status(&api, "completed", 1, Duration::from_secs(30)),
        "log:\n{}",
        worker.log()
    );
    let result = &api.task(&id)["result"];
    assert_eq!(result["greeting"], "hello-from-dotenv", "{result}");
    assert_eq!(
        result["key"], "",
        "the key from .env authenticated the worker but never reached the child: {result}"
    );
    assert_eq!(result["task"], id.as_str());
}
