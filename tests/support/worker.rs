//! A `taskworker run` child process with its own config, environment and
//! log file, a library worker on a thread of the test, plus a few waits on
//! what the server says about tasks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use taskworker::{StopHandle, StopReason, Worker, WorkerState};

use super::{bin, temp_dir, wait_until, Api};

/// A worker child process, killed when dropped.
pub struct WorkerProcess {
    /// The child.
    pub child: Child,
    /// Where its stderr goes.
    pub log_path: PathBuf,
    /// Its working directory.
    pub dir: PathBuf,
}

/// How to start a worker.
pub struct WorkerSpec<'a> {
    /// A name for the temp dir.
    pub name: &'a str,
    /// `API_URL`.
    pub api_url: &'a str,
    /// The config file's JSON (handlers and any other keys).
    pub config: Value,
    /// Extra environment variables.
    pub env: Vec<(&'a str, String)>,
    /// Extra arguments after `run`.
    pub args: Vec<&'a str>,
    /// Files written into the working directory first (`.env`, scripts).
    pub files: Vec<(&'a str, String)>,
    /// A program (with its arguments) that runs the worker, such as `unshare`.
    pub wrapper: Vec<&'a str>,
    /// Variables of the defaults above left unset, so the config file sets them.
    pub unset: Vec<&'a str>,
}

impl<'a> WorkerSpec<'a> {
    /// A worker named `name` on `api_url` with `config`.
    pub fn new(name: &'a str, api_url: &'a str, config: Value) -> WorkerSpec<'a> {
        WorkerSpec {
            name,
            api_url,
            config,
            env: Vec::new(),
            args: Vec::new(),
            files: Vec::new(),
            wrapper: Vec::new(),
            unset: Vec::new(),
        }
    }

    /// Leaves one of the defaults (`POLLING_INTERVAL`, `HEALTH_ADDR`) unset,
    /// so that the config file's value counts.
    pub fn without_env(mut self, key: &'a str) -> WorkerSpec<'a> {
        self.unset.push(key);
        self
    }

    /// Runs the worker through `wrapper` (a program and its arguments).
    pub fn wrapped(mut self, wrapper: &[&'a str]) -> WorkerSpec<'a> {
        self.wrapper = wrapper.to_vec();
        self
    }

    /// Writes a file into the working directory before the start.
    pub fn file(mut self, name: &'a str, content: impl Into<String>) -> WorkerSpec<'a> {
        self.files.push((name, content.into()));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &'a str, value: impl Into<String>) -> WorkerSpec<'a> {
        self.env.push((key, value.into()));
        self
    }

    /// Starts it.
    pub fn start(self) -> WorkerProcess {
        let dir = temp_dir(&format!("worker-{}", self.name));
        let config_path = dir.join("config.json");
        std::fs::write(&config_path, self.config.to_string()).expect("config written");
        for (name, content) in &self.files {
            std::fs::write(dir.join(name), content).expect("file written");
        }

        let log_path = dir.join("worker.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(bin());
                cmd
            }
            None => Command::new(bin()),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(&self.args)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("API_URL", self.api_url)
            .env("HEALTH_ADDR", "")
            .env("POLLING_INTERVAL", "100ms")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for k in &self.unset {
            cmd.env_remove(k);
        }
        let child = cmd.spawn().expect("worker starts");
        WorkerProcess {
            child,
            log_path,
            dir,
        }
    }
}

impl WorkerProcess {
    /// Sends `signal` (`TERM`, `INT`, `TSTP`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        super::send_signal(&self.child, signal);
    }

    /// Waits (bounded) for the exit; returns the exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        super::wait_exit(&mut self.child, within)
    }

    /// Sends SIGTERM and asserts a clean exit (0) within `within`.
    pub fn stop(&mut self, within: Duration) {
        self.signal("TERM");
        let code = self.wait_exit(within);
        assert_eq!(code, Some(0), "log:\n{}", self.log());
    }

    /// Asserts that it exits with `code` within `within`; returns its log.
    pub fn expect_exit(&mut self, code: i32, within: Duration) -> String {
        let got = self.wait_exit(within);
        let log = self.log();
        assert_eq!(got, Some(code), "log:\n{log}");
        log
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits (bounded) until its log contains `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        wait_until(within, || self.log().contains(needle))
    }

    /// The health server's base URL (`http://127.0.0.1:PORT`), read from the
    /// log line it writes on start; waits up to 10 s. For `HEALTH_ADDR=127.0.0.1:0`.
    pub fn health_url(&self) -> String {
        const LINE: &str = "health server on ";
        assert!(
            self.wait_log(LINE, Duration::from_secs(10)),
            "no health server started; log:\n{}",
            self.log()
        );
        let log = self.log();
        let rest = &log[log.find(LINE).expect("line found") + LINE.len()..];
        rest.split_whitespace()
            .next()
            .expect("an address")
            .to_string()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tasks with `status` at the server.
pub fn tasks_with_status(api: &Api, status: &str) -> Vec<Value> {
    let (code, body) = api.get(&format!("/tasks?status={status}&limit=100000"));
    assert_eq!(code, 200, "list: {body}");
    body["tasks"].as_array().cloned().unwrap_or_default()
}

/// Waits (bounded) until `count` tasks have `status`.
pub fn wait_for_status(api: &Api, status: &str, count: usize, within: Duration) -> bool {
    wait_until(within, || tasks_with_status(api, status).len() >= count)
}

/// Handlers for the builtins under their own names.
pub fn builtin_handlers() -> Value {
    serde_json::json!({"handlers": {
        "echo": {"builtin": "echo"},
        "sleep": {"builtin": "sleep"},
        "fail": {"builtin": "fail"},
    }})
}

/// The task ids whose outcome waits in the spool of `state`: an `outcome`
/// record not followed by a `sent` one. Torn lines are skipped.
pub fn spooled(state: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(state.join(taskworker::SPOOL_FILE_NAME)).unwrap_or_default();
    let mut unsent = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let id = v["task_id"].as_str().unwrap_or("").to_string();
        match v["op"].as_str() {
            Some("outcome") => unsent.push(id),
            Some("sent") => unsent.retain(|u| *u != id),
            _ => {}
        }
    }
    unsent
}

/// A library worker running on a thread of the test.
pub struct LibraryWorker {
    /// Its shared state, once every thread is up.
    pub state: Arc<WorkerState>,
    stop: StopHandle,
    thread: JoinHandle<Result<i32, taskworker::Error>>,
}

impl LibraryWorker {
    /// Runs `worker` until [`LibraryWorker::stop`], waiting (bounded) until
    /// every thread is up.
    pub fn start(worker: Worker) -> LibraryWorker {
        let (shutdown, stop) = taskworker::manual_shutdown();
        let (state_tx, state_rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::spawn(move || {
            worker.run_until(shutdown, |state| {
                let _ = state_tx.send(state.clone());
            })
        });
        let state = state_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("worker starts");
        LibraryWorker {
            state,
            stop,
            thread,
        }
    }

    /// Stops it as SIGTERM would and asserts a clean exit (0).
    pub fn stop(self) {
        self.stop.stop(StopReason::Requested);
        let code = self.thread.join().expect("the worker thread returns");
        assert_eq!(code.expect("the worker runs"), 0);
    }
}
