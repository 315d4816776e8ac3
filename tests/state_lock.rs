//! One owner per state: a second worker on a `STATE_DIR` and a second
//! `serve` on a journal exit 78 at once, naming what is in use and its holder.

#![cfg(feature = "server")]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::worker::WorkerSpec;
use support::{bin, start_server, temp_dir, wait_exit, ServeProcess};
use taskworker::ServerConfig;

#[test]
fn a_second_worker_on_one_state_dir_exits_78_naming_the_holder() {
    let server = start_server(ServerConfig::default());
    let url = server.url();
    let state = temp_dir("lock-worker").join("state");
    let state_arg = state.to_string_lossy().to_string();
    let config = json!({"handlers": {"echo": {"builtin": "echo"}}});
    let mut first = WorkerSpec::new("lock-first", &url, config.clone())
        .env("STATE_DIR", state_arg.clone())
        .start();
    assert!(
        first.wait_log("started", Duration::from_secs(20)),
        "first worker starts; log:\n{}",
        first.log()
    );
    let mut second = WorkerSpec::new("lock-second", &url, config.clone())
        .env("STATE_DIR", state_arg.clone())
        .start();
    let log = second.expect_exit(78, Duration::from_secs(10));
    assert!(log.contains(&state_arg), "names the directory: {log}");
    assert!(
        log.contains(&format!("pid {}", first.child.id())),
        "names the holder's pid: {log}"
    );
    first.stop(Duration::from_secs(20));

    // The lock died with its holder: the next worker starts.
    let mut third = WorkerSpec::new("lock-third", &url, config)
        .env("STATE_DIR", state_arg)
        .start();
    assert!(
        third.wait_log("started", Duration::from_secs(20)),
        "log:\n{}",
        third.log()
    );
    third.stop(Duration::from_secs(20));
}

#[test]
fn a_second_server_on_one_journal_exits_78_naming_the_holder() {
    let data = temp_dir("lock-serve").join("tasks.jsonl");
    let data_arg = data.to_str().expect("utf-8 path");
    let mut first = ServeProcess::start(&["--data", data_arg]);
    let mut second = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data", data_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    assert_eq!(wait_exit(&mut second, Duration::from_secs(10)), Some(78));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut err)
        .expect("stderr read");
    assert!(err.contains(data_arg), "names the journal: {err}");
    assert!(
        err.contains(&format!("pid {}", first.child.id())),
        "names the holder's pid: {err}"
    );
    first.stop(Duration::from_secs(10));
    let mut again = ServeProcess::start(&["--data", data_arg]);
    again.stop(Duration::from_secs(10));
}
