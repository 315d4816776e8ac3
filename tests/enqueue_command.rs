//! `taskworker enqueue` prints the ids it created; bad `--params` exits 64.

#![cfg(feature = "server")]

mod support;

use std::process::Command;

use support::{bin, start_server, Api};
use taskworker::ServerConfig;

#[test]
fn enqueue_prints_one_id_per_task() {
    let s = start_server(ServerConfig::default());
    let out = Command::new(bin())
        .args([
            "enqueue",
            "--api-url",
            &s.url(),
            "--type",
            "echo",
            "--params",
            r#"{"n": 1}"#,
        ])
        .args(["--priority", "high", "--count", "3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let ids: Vec<&str> = stdout.lines().collect();
    assert_eq!(ids.len(), 3);
    let api = Api::new(s.url());
    for id in ids {
        let t = api.task(id);
        assert_eq!(
            (t["type"].as_str(), t["priority"].as_str()),
            (Some("echo"), Some("high"))
        );
        assert_eq!(t["parameters"]["n"], 1);
    }
}

#[test]
fn enqueue_with_a_key_and_bad_params() {
    let s = start_server(ServerConfig {
        api_key: Some("k".into()),
        ..ServerConfig::default()
    });
    let ok = Command::new(bin())
        .args(["enqueue", "--api-url", &s.url(), "--type", "t"])
        .env("API_KEY", "k")
        .output()
        .unwrap();
    assert!(ok.status.success());
    let refused = Command::new(bin())
        .args([
            "enqueue",
            "--api-url",
            &s.url(),
            "--type",
            "t",
            "--api-key",
            "wrong",
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
    let bad = Command::new(bin())
        .args([
            "enqueue",
            "--api-url",
            &s.url(),
            "--type",
            "t",
            "--params",
            "{nope",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--params"));
}
