//! README's "first hour" commands run as written: the reference server on
//! its documented address, `enqueue`, `check-config` and `run` with the
//! example configuration. Only the server's address changes (to a free
//! port, in the commands and in the examples' copies), and the worker's
//! health server is off, so that tests running side by side do not collide.

#![cfg(feature = "server")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{bin, send_signal, temp_dir, wait_exit, wait_until, Api, ServeProcess};

/// The line before each code block of README.md that this test runs.
const MARKER: &str = "<!-- These commands run as written in tests/first_hour_readme.rs. -->";
/// The address the README's commands and the examples use.
const DOCUMENTED: &str = "127.0.0.1:8000";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lines of each marked `sh` block of README.md, in order.
fn marked_blocks() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md reads");
    readme
        .split(MARKER)
        .skip(1)
        .map(|after| {
            let body = after
                .trim_start()
                .strip_prefix("```sh\n")
                .expect("a marked block is a ```sh block right after the marker");
            let end = body.find("```").expect("the block ends");
            body[..end]
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

/// Copies `from` into `to` (a folder tree), with `DOCUMENTED` replaced by
/// `addr` in every file that names it.
fn copy_tree(from: &Path, to: &Path, addr: &str) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst, addr);
            continue;
        }
        // std::fs::copy keeps the mode, so the handler scripts stay executable.
        std::fs::copy(&src, &dst).unwrap();
        if let Ok(text) = std::fs::read_to_string(&src) {
            if text.contains(DOCUMENTED) {
                std::fs::write(&dst, text.replace(DOCUMENTED, addr)).unwrap();
            }
        }
    }
}

/// Runs the README's commands in a fresh copy of the parts of the
/// repository they use.
struct Session {
    root: PathBuf,
    cwd: PathBuf,
    path: String,
    server: Option<ServeProcess>,
    addr: String,
}

impl Session {
    fn new() -> Session {
        let root = temp_dir("readme");
        let bin_dir = bin().parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Session {
            cwd: root.clone(),
            root,
            path,
            server: None,
            addr: DOCUMENTED.into(),
        }
    }

    /// `sh -c line` in the session's directory and clean environment.
    fn command(&self, line: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(line)
            .current_dir(&self.cwd)
            .env_clear()
            .env("PATH", &self.path)
            .env("HEALTH_ADDR", "");
        cmd
    }

    fn api(&self) -> Api {
        Api::new(format!("http://{}", self.addr))
    }

    /// Runs one line; the block's last line, the worker, is started and
    /// returned instead of awaited. A long-running line is run through
    /// `exec env`, so that a signal reaches `taskworker` itself (`env` also
    /// takes the `API_URL=...` prefix that `exec` would not).
    fn line(&mut self, line: &str, last: bool) -> Option<std::process::Child> {
        let line = line.replace(DOCUMENTED, &self.addr);
        if let Some(dir) = line.strip_prefix("cd ") {
            self.cwd = self.cwd.join(dir.trim());
            assert!(self.cwd.is_dir(), "{line}: no such directory");
            return None;
        }
        if let Some(background) = line.strip_suffix('&') {
            assert!(background.contains("taskworker serve"), "{line}");
            assert!(self.server.is_none(), "one server");
            let on_any_port = background.replace(DOCUMENTED, "127.0.0.1:0");
            let server =
                ServeProcess::from_command(self.command(&format!("exec env {on_any_port}")));
            self.addr = server.url.trim_start_matches("http://").to_string();
            copy_tree(
                &repo().join("packaging/examples"),
                &self.root.join("packaging/examples"),
                &self.addr,
            );
            self.server = Some(server);
            return None;
        }
        if last {
            let log = std::fs::File::create(self.root.join("worker.log")).unwrap();
            let child = self
                .command(&format!("exec env {line}"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("the worker starts");
            return Some(child);
        }
        let out = self.command(&line).output().expect("sh runs");
        assert!(
            out.status.success(),
            "{line}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        None
    }

    /// Runs a block, waits until the server holds `completed` completed
    /// tasks and nothing queued, claimed or failed, then stops the worker
    /// with SIGTERM as Ctrl-C would.
    fn block(&mut self, lines: &[String], completed: u64) {
        let mut worker = None;
        for (i, line) in lines.iter().enumerate() {
            worker = self.line(line, i + 1 == lines.len());
        }
        let mut worker = worker.expect("a block ends with the worker");
        let api = self.api();
        let counts = || api.get("/health").1["counts"].clone();
        let done = wait_until(Duration::from_secs(30), || {
            let c = counts();
            c["completed"] == completed && c["queued"] == 0 && c["claimed"] == 0
        });
        let log = || std::fs::read_to_string(self.root.join("worker.log")).unwrap_or_default();
        assert!(done, "counts {}; worker log:\n{}", counts(), log());
        assert_eq!(counts()["failed"], 0, "{}", log());
        send_signal(&worker, "TERM");
        assert_eq!(
            wait_exit(&mut worker, Duration::from_secs(30)),
            Some(0),
            "{}",
            log()
        );
    }
}

#[test]
fn the_readme_first_hour_commands_work_as_written() {
    let blocks = marked_blocks();
    assert_eq!(blocks.len(), 2, "README.md has its two first-hour blocks");
    let mut session = Session::new();

    session.block(&blocks[0], 5);
    let (_, listed) = session.api().get("/tasks?status=completed&type=echo");
    let tasks = listed["tasks"].as_array().expect("a task list");
    assert_eq!(tasks.len(), 5);
    assert_eq!(tasks[0]["result"]["hello"], "world");

    session.block(&blocks[1], 7);
    let examples = session.root.join("packaging/examples");
    let files = |dir: &str| -> Vec<PathBuf> {
        std::fs::read_dir(examples.join(dir))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let report = files("reports");
    assert_eq!(report.len(), 1, "{report:?}");
    let text = std::fs::read_to_string(&report[0]).unwrap();
    assert!(text.contains("north") && text.contains("Units"), "{text}");
    let (_, listed) = session.api().get("/tasks?type=send.email");
    let mail: &Value = &listed["tasks"][0];
    assert_eq!(mail["status"], "completed", "{mail}");
    assert_eq!(
        mail["history"][0]["worker_id"], "example-worker-1",
        "WORKER_ID from .env"
    );
    // A machine with sendmail hands the message to it instead.
    if mail["result"]["delivered_via"] == "outbox" {
        assert!(
            files("outbox")
                .iter()
                .any(|p| p.extension().is_some_and(|e| e == "eml")),
            "the e-mail is in the outbox"
        );
    }
}
