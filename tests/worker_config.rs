//! Configuration errors exit 78 naming the key; check-config masks secrets;
//! --help and --version work.

mod support;

use support::{clean_command, temp_dir};

fn run_in(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    clean_command(dir, args, env).output().expect("binary runs")
}

#[test]
fn a_bad_value_exits_78_naming_the_key() {
    let dir = temp_dir("config-bad");
    std::fs::write(
        dir.join("c.json"),
        r#"{"handlers": {"echo": {"builtin": "echo"}}}"#,
    )
    .unwrap();
    let out = run_in(
        &dir,
        &["run", "--config", "c.json"],
        &[
            ("API_URL", "http://127.0.0.1:9"),
            ("CONCURRENT_TASKS", "many"),
        ],
    );
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CONCURRENT_TASKS") && err.contains("many"),
        "{err}"
    );

    let out = run_in(
        &dir,
        &["run", "--config", "c.json", "--timeout", "soon"],
        &[("API_URL", "http://127.0.0.1:9")],
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--timeout"));
}

#[test]
fn an_unknown_file_key_and_no_handlers_exit_78() {
    let dir = temp_dir("config-unknown");
    std::fs::write(
        dir.join("c.json"),
        r#"{"worker": {"polling_intervall": 5}}"#,
    )
    .unwrap();
    let out = run_in(
        &dir,
        &["run", "--config", "c.json"],
        &[("API_URL", "http://127.0.0.1:9")],
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("worker.polling_intervall"));

    std::fs::write(dir.join("empty.json"), "{}").unwrap();
    let out = run_in(
        &dir,
        &["run", "--config", "empty.json"],
        &[("API_URL", "http://127.0.0.1:9")],
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("handlers"));
}

#[test]
fn bad_usage_exits_64() {
    let dir = temp_dir("config-usage");
    assert_eq!(
        run_in(&dir, &["run", "--no-such-flag", "x"], &[])
            .status
            .code(),
        Some(64)
    );
    assert_eq!(run_in(&dir, &["frobnicate"], &[]).status.code(), Some(64));
}

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_masked() {
    let dir = temp_dir("config-check");
    std::fs::write(
        dir.join("c.json"),
        r#"{"api": {"url": "https://api.example.com/v1"}, "performance": {"concurrent_tasks": 2},
            "handlers": {"echo": {"builtin": "echo"}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join(".env"),
        "CONCURRENT_TASKS=3\nAPI_KEY=dotenv-secret-value\n",
    )
    .unwrap();
    let out = run_in(
        &dir,
        &["check-config", "--config", "c.json", "--timeout", "45s"],
        &[("MAX_RETRIES", "7")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("API_URL=https://api.example.com/v1"),
        "{text}"
    );
    assert!(
        text.contains("CONCURRENT_TASKS=3"),
        ".env over the file: {text}"
    );
    assert!(text.contains("MAX_RETRIES=7"), "{text}");
    assert!(text.contains("TIMEOUT=45000ms"), "{text}");
    assert!(text.contains("API_KEY=***"), "{text}");
    assert!(!text.contains("dotenv-secret-value"), "{text}");
}

#[test]
fn help_and_version() {
    let dir = temp_dir("config-help");
    let out = run_in(&dir, &["--version"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("taskworker "));
    let out = run_in(&dir, &["--help"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("check-config"));
    let out = run_in(&dir, &["run", "--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("CONCURRENT_TASKS"));
}

#[test]
fn check_config_warns_when_the_key_would_travel_in_clear_text() {
    let dir = temp_dir("config-cleartext");
    std::fs::write(
        dir.join("c.json"),
        r#"{"handlers": {"echo": {"builtin": "echo"}}}"#,
    )
    .unwrap();
    let args = ["check-config", "--config", "c.json"];
    let out = run_in(
        &dir,
        &args,
        &[
            ("API_URL", "http://api.example.com/v1"),
            ("API_KEY", "k-123"),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("clear text").count(), 1, "warned once: {err}");
    assert!(!err.contains("k-123"));
    for quiet in [
        ("API_URL", "https://api.example.com/v1"),
        ("API_URL", "http://127.0.0.1:8000"),
    ] {
        let out = run_in(&dir, &args, &[quiet, ("API_KEY", "k-123")]);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("clear text"),
            "{quiet:?}"
        );
    }
}
