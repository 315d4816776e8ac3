//! Files that may hold task data are private to their owner (mode 0600),
//! whatever the umask: the worker's spool and log file, the server's journal
//! and the files that replace them at compaction.

#![cfg(feature = "server")]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use support::worker::WorkerSpec;
use support::{start_server, temp_dir, wait_until, Api, ServeProcess};
use taskworker::{ServerConfig, SPOOL_FILE_NAME};

fn mode(path: &Path) -> u32 {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.permissions().mode() & 0o777
}

#[test]
fn spool_and_log_file_are_private() {
    let server = start_server(ServerConfig::default());
    let url = server.url();
    let dir = temp_dir("modes-worker");
    let state = dir.join("state");
    let log_file = dir.join("worker-file.log");
    let mut worker = WorkerSpec::new(
        "modes",
        &url,
        json!({"handlers": {"echo": {"builtin": "echo"}}}),
    )
    .env("STATE_DIR", state.to_string_lossy())
    .env("LOG_FILE", log_file.to_string_lossy())
    .start();
    let spool = state.join(SPOOL_FILE_NAME);
    assert!(
        wait_until(Duration::from_secs(20), || spool.exists()
            && log_file.exists()),
        "spool and log file appear; log:\n{}",
        worker.log()
    );
    worker.stop(Duration::from_secs(20));
    assert_eq!(mode(&spool), 0o600, "spool");
    assert_eq!(mode(&log_file), 0o600, "log file");
}

#[test]
fn journal_is_private_and_stays_so_across_restarts() {
    let data = temp_dir("modes-serve").join("tasks.jsonl");
    let data_arg = data.to_str().expect("utf-8 path");
    let mut server = ServeProcess::start(&["--data", data_arg]);
    Api::new(&server.url).enqueue("t", json!({"secret": "s"}));
    server.stop(Duration::from_secs(10));
    assert_eq!(mode(&data), 0o600, "journal");
    // A restart compacts into a new file: it is private too.
    let mut again = ServeProcess::start(&["--data", data_arg]);
    again.stop(Duration::from_secs(10));
    assert_eq!(mode(&data), 0o600, "compacted journal");
}
