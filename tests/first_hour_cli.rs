//! What a new user meets on the command line: `run --help` with every key's
//! default, `check-config` saying where each value came from, a missing
//! config file in one line, "did you mean" for a misspelt key, the default
//! `WORKER_ID` that `run` really uses, and `serve` logging as the worker does.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use support::{clean_command, send_signal, temp_dir, wait_exit, wait_until};

fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    clean_command(dir, args, env).output().expect("binary runs")
}

/// A fresh directory named after `name` with `c.json` holding `config`.
fn dir_with_config(name: &str, config: &str) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::write(dir.join("c.json"), config).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The key table as the docs render it: (env, file, flag, default) a row.
fn key_rows() -> Vec<[String; 4]> {
    taskworker::config_key_table()
        .lines()
        .skip(2)
        .map(|row| {
            let cells: Vec<String> = row
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().replace('`', ""))
                .collect();
            [
                cells[0].clone(),
                cells[1].clone(),
                cells[2].clone(),
                cells[3].clone(),
            ]
        })
        .collect()
}

#[test]
fn run_help_names_every_key_with_its_default() {
    let dir = temp_dir("help-keys");
    let rows = key_rows();
    assert!(rows.len() >= 15, "{rows:?}");
    for command in ["run", "check-config"] {
        let out = run_in(&dir, &[command, "--help"], &[]);
        assert_eq!(out.status.code(), Some(0));
        let help = text(&out.stdout);
        for [env, file, flag, default] in &rows {
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{flag} ")))
                .unwrap_or_else(|| panic!("{command} --help has no line for {flag}:\n{help}"));
            assert!(line.contains(env) && line.contains(file), "{line}");
            assert!(
                help.contains(&format!("[default: {default}]")),
                "{command} --help lacks {env}'s default {default:?}:\n{help}"
            );
        }
    }
}

#[test]
fn check_config_says_where_each_value_came_from() {
    let dir = dir_with_config(
        "origins",
        r#"{"api": {"url": "http://127.0.0.1:9"}, "worker": {"timeout": 7},
            "handlers": {"echo": {"builtin": "echo"}}}"#,
    );
    std::fs::write(dir.join(".env"), "MAX_RETRIES=2\n").unwrap();
    let out = run_in(
        &dir,
        &[
            "check-config",
            "--config",
            "c.json",
            "--polling-interval",
            "2s",
        ],
        &[("CONCURRENT_TASKS", "3")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let origin = |key: &str| {
        let line = printed
            .lines()
            .find(|l| l.starts_with(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} line:\n{printed}"));
        line.split_once("  # ")
            .map(|(_, o)| o.to_string())
            .unwrap_or_else(|| panic!("no origin on {line:?}"))
    };
    assert_eq!(origin("API_URL"), "config file c.json (api.url)");
    assert_eq!(origin("TIMEOUT"), "config file c.json (worker.timeout)");
    assert_eq!(origin("MAX_RETRIES"), ".env file .env");
    assert_eq!(origin("CONCURRENT_TASKS"), "environment");
    assert_eq!(origin("POLLING_INTERVAL"), "flag --polling-interval");
    assert_eq!(origin("WAIT_SECONDS"), "default");
    assert!(printed.contains("TIMEOUT=7000ms"), "{printed}");
}

#[test]
fn a_missing_config_file_exits_78_in_one_line() {
    let dir = temp_dir("missing-config");
    for command in ["run", "check-config"] {
        let out = run_in(&dir, &[command, "--config", "nope.json"], &[]);
        assert_eq!(out.status.code(), Some(78), "{command}");
        let err = text(&out.stderr);
        assert_eq!(
            err, "taskworker: config: --config: cannot read nope.json: no such file\n",
            "{command}"
        );
    }
    let out = run_in(&dir, &["run"], &[("CONFIG_FILE", "gone.json")]);
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("CONFIG_FILE"));
}

#[test]
fn an_unknown_key_suggests_the_nearest_one() {
    let dir = dir_with_config(
        "did-you-mean",
        r#"{"worker": {"polling_intervall": 5}, "handlers": {"echo": {"builtin": "echo"}}}"#,
    );
    let out = run_in(&dir, &["check-config", "--config", "c.json"], &[]);
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "worker.polling_intervall: unknown key (did you mean worker.polling_interval?)"
        ),
        "{err}"
    );

    let out = run_in(&dir, &["run", "--concurency", "2"], &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("did you mean --concurrency?"),
        "{}",
        text(&out.stderr)
    );
    let out = run_in(&dir, &["chek-config"], &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("did you mean check-config?"));
}

/// `<hostname>-<pid>`: check-config shows the pattern, and the worker that
/// runs fills in its own pid.
#[test]
fn check_config_shows_the_worker_id_that_run_uses() {
    let dir = dir_with_config(
        "worker-id",
        r#"{"handlers": {"echo": {"builtin": "echo"}}}"#,
    );
    let env = [("API_URL", "http://127.0.0.1:9"), ("HEALTH_ADDR", "")];
    let out = run_in(&dir, &["check-config", "--config", "c.json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let line = printed
        .lines()
        .find(|l| l.starts_with("WORKER_ID="))
        .expect("a WORKER_ID line");
    let shown = line["WORKER_ID=".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(shown.ends_with("-<pid>"), "{line}");

    let log = dir.join("worker.log");
    let mut worker = clean_command(&dir, &["run", "--config", "c.json"], &env)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the worker starts");
    let expected = shown.replace("<pid>", &worker.id().to_string());
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = wait_until(Duration::from_secs(20), || read().contains(" started: "));
    send_signal(&worker, "TERM");
    assert_eq!(wait_exit(&mut worker, Duration::from_secs(20)), Some(0));
    assert!(started, "{}", read());
    assert!(
        read().contains(&format!("worker {expected} started")),
        "check-config said {shown}; the worker:\n{}",
        read()
    );
    // The format `serve` is held to below.
    for line in read().lines() {
        assert!(is_worker_text_line(line), "{line:?}");
    }
}

/// A text log line as the worker writes it: `2025-11-09T15:00:05.123Z INFO  message`.
fn is_worker_text_line(line: &str) -> bool {
    let (ts, rest) = line.split_at(line.len().min(24));
    let ts_ok = ts.len() == 24
        && ts.ends_with('Z')
        && ts.as_bytes()[10] == b'T'
        && ts.chars().filter(char::is_ascii_digit).count() == 17;
    let level_ok = ["INFO  ", "WARN  ", "ERROR ", "DEBUG ", "TRACE "]
        .iter()
        .any(|l| rest.strip_prefix(' ').is_some_and(|r| r.starts_with(l)));
    ts_ok && level_ok
}

/// Runs `serve` with `env`, stops it with SIGTERM, returns its stderr.
#[cfg(feature = "server")]
fn serve_log(name: &str, env: &[(&str, &str)]) -> String {
    let dir = temp_dir(name);
    let log = dir.join("serve.log");
    let mut serve = clean_command(&dir, &["serve", "--listen", "127.0.0.1:0"], env)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("serve starts");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let up = wait_until(Duration::from_secs(20), || read().contains("serving"));
    send_signal(&serve, "TERM");
    assert_eq!(wait_exit(&mut serve, Duration::from_secs(20)), Some(0));
    assert!(up, "{}", read());
    read()
}

#[cfg(feature = "server")]
#[test]
fn serve_logs_in_the_worker_s_format() {
    let text_log = serve_log("serve-log-text", &[]);
    assert!(text_log.lines().count() >= 2, "{text_log}");
    for line in text_log.lines() {
        assert!(
            is_worker_text_line(line),
            "not the worker's format: {line:?}"
        );
    }

    let json_log = serve_log("serve-log-json", &[("LOG_FORMAT", "json")]);
    for line in json_log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert!(
            v["ts"].is_string() && v["level"] == "INFO" && v["msg"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn worker_text_lines_are_recognised() {
    assert!(is_worker_text_line(
        "2026-11-29T23:22:49.502Z INFO  worker vm-1 started"
    ));
    assert!(is_worker_text_line("2026-11-29T23:22:49.502Z ERROR boom"));
    assert!(!is_worker_text_line(
        "[2026-11-29T23:22:49Z INFO  taskworker::server] serving"
    ));
}
