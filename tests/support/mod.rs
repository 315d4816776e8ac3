//! Helpers shared by the integration tests: a reference server on
//! `127.0.0.1:0`, a small JSON client, waits with deadlines, the binary,
//! handlers built from config, and checks on processes and memory from /proc.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskworker::EnqueueRequest;
use taskworker::{Context, HandlerEnv};
use taskworker::{Handler, Registry, Task, TaskError};
#[cfg(feature = "server")]
use taskworker::{Server, ServerConfig};

#[cfg(feature = "server")]
pub mod redis;

/// Says in one line that a test cannot run here because `what` is missing,
/// so that it returns without checking anything. libtest cannot count a test
/// as skipped once it runs, so under CI (`CI` set), where `.ci/run` installs
/// everything, a missing tool fails the test instead of passing it unseen.
pub fn skip(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what}: .ci/run installs it, so under CI this is a failure, not a skip"
    );
    eprintln!("skipped: {what}");
}

/// Starts an in-process server on the store of this test's run (memory
/// unless [`per_store!`] says otherwise); `listen` is forced to `127.0.0.1:0`.
#[cfg(feature = "server")]
pub fn start_server(config: ServerConfig) -> Server {
    Server::start(redis::configure(ServerConfig {
        listen: "127.0.0.1:0".into(),
        ..config
    }))
    .expect("server starts")
}

/// The built `taskworker` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_taskworker"))
}

/// The binary with `args`, run in `dir` with nothing in its environment
/// but `PATH` and `env`, so that no variable of the test's own leaks in.
pub fn clean_command(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A fresh, empty directory for one test: `taskworker-tests/PID/NAME-N`
/// in the temp directory. The first call in a test process removes what
/// test processes that have exited left there, so that runs do not pile up.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let root = std::env::temp_dir().join("taskworker-tests");
    SWEPT.call_once(|| remove_exited(&root));
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = root
        .join(std::process::id().to_string())
        .join(format!("{name}-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Removes the directories under `root` whose test process has exited.
fn remove_exited(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let pid = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok());
        let running = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !running {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes `text` to `path` (its directory made first) with permission `mode`.
pub fn write_file_mode(path: &std::path::Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("directory made");
    }
    std::fs::write(path, text).expect("file written");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("mode set");
}

/// Waits (bounded) until `path` answers `status`; returns the last body.
pub fn wait_answer(api: &Api, path: &str, status: u16, within: Duration) -> Value {
    let mut last = (0, Value::Null);
    let ok = wait_until(within, || {
        last = api.get(path);
        last.0 == status
    });
    assert!(ok, "{path}: wanted {status}, last {last:?}");
    last.1
}

/// Asserts that no live process is left in group `pgid` within 10 s.
pub fn assert_group_gone(pgid: i32) {
    assert!(
        wait_until(Duration::from_secs(10), || group_members(pgid).is_empty()),
        "processes of group {pgid} remain: {:?}",
        group_members(pgid)
    );
}

/// Polls `cond` until it holds or `within` has passed; returns whether it held.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A small client of the task API on one keep-alive connection pool; reads
/// every status itself.
#[derive(Clone)]
pub struct Api {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

impl Api {
    /// A client of `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: impl Into<String>) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Api {
            base: base.into(),
            key: None,
            agent,
        }
    }

    /// The same client sending `Authorization: Bearer key`.
    pub fn with_key(mut self, key: &str) -> Api {
        self.key = Some(key.into());
        self
    }

    /// POSTs raw bytes; returns the status and the body parsed as JSON (or `Null`).
    pub fn post_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if let Some(k) = &self.key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let resp = req.send(body).expect("request sent");
        read(resp)
    }

    /// POSTs a JSON body; `None` when no answer came (connection refused or reset).
    pub fn try_post_json(&self, path: &str, body: &Value) -> Option<(u16, Value)> {
        let mut req = self.agent.post(format!("{}{path}", self.base));
        if let Some(k) = &self.key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        req.send_json(body).ok().map(read)
    }

    /// POSTs a JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string().as_bytes())
    }

    /// DELETEs a path; the body parsed as JSON (or `Null`).
    pub fn delete_path(&self, path: &str) -> (u16, Value) {
        let mut req = self.agent.delete(format!("{}{path}", self.base));
        if let Some(k) = &self.key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let mut resp = req.call().expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GETs a path; the body parsed as JSON (or `Null`).
    pub fn get(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get_text(path);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GETs a path; the body as text.
    pub fn get_text(&self, path: &str) -> (u16, String) {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(k) = &self.key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let mut resp = req.call().expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    }

    /// Enqueues a task; returns its id.
    pub fn enqueue(&self, task_type: &str, parameters: Value) -> String {
        let task = EnqueueRequest {
            task_type: task_type.into(),
            parameters: Some(parameters),
            ..EnqueueRequest::default()
        };
        let body = serde_json::to_value(&task).expect("a task serializes");
        let (status, body) = self.post_json("/tasks", &body);
        assert_eq!(status, 201, "enqueue: {body}");
        body["task"]["id"].as_str().expect("task id").to_string()
    }

    /// Claims for `worker` with extra claim fields merged in; returns status and body.
    pub fn claim(&self, worker: &str, extra: Value) -> (u16, Value) {
        let mut body = json!({"worker_id": worker});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        self.post_json("/tasks/claim", &body)
    }

    /// Completed tasks as the server's `/health` counts them; 0 while it
    /// cannot answer (its store down, say).
    pub fn completed(&self) -> u64 {
        self.get("/health").1["counts"]["completed"]
            .as_u64()
            .unwrap_or(0)
    }

    /// `GET /tasks/{id}`'s task.
    pub fn task(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/tasks/{}", taskworker::encode_path_segment(id)));
        assert_eq!(status, 200, "get {id}: {body}");
        body["task"].clone()
    }
}

/// A `taskworker serve` child process, killed when dropped.
#[cfg(feature = "server")]
pub struct ServeProcess {
    /// The child.
    pub child: std::process::Child,
    /// Its base URL, read from its `listening on` line.
    pub url: String,
}

#[cfg(feature = "server")]
impl ServeProcess {
    /// Starts `taskworker serve --listen 127.0.0.1:0` with `args`; waits for its address.
    pub fn start(args: &[&str]) -> ServeProcess {
        let mut cmd = std::process::Command::new(bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        ServeProcess::from_command(cmd)
    }

    /// Starts `cmd`, which runs `taskworker serve`; waits for its address.
    pub fn from_command(mut cmd: std::process::Command) -> ServeProcess {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve prints its address");
        ServeProcess { child, url }
    }

    /// Sends `signal` (`TERM`, `KILL`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        send_signal(&self.child, signal);
    }

    /// Waits (bounded) for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        wait_exit(&mut self.child, within)
    }

    /// Sends SIGTERM and asserts a clean exit (0) within `within`.
    pub fn stop(&mut self, within: Duration) {
        self.signal("TERM");
        assert_eq!(self.wait_exit(within), Some(0), "serve exits cleanly");
    }
}

/// Sends `signal` (`TERM`, `INT`, `TSTP`, `KILL`, ...) to `child` with kill(1).
pub fn send_signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits (bounded) for `child` to exit; returns its exit code.
pub fn wait_exit(child: &mut std::process::Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[cfg(feature = "server")]
impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(mut resp: ureq::http::Response<ureq::Body>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The environment handlers get in tests: a fresh agent that reads statuses itself.
pub fn handler_env(secret_vars: &[&str]) -> HandlerEnv {
    HandlerEnv {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
        secret_vars: secret_vars.iter().map(|s| s.to_string()).collect(),
        base_dir: None,
        missing: Default::default(),
    }
}

/// The handler built from one config entry (`{"exec": {...}}`), as the worker builds it.
pub fn handler(spec: Value) -> Arc<dyn Handler> {
    handler_with(spec, &handler_env(&[]))
}

/// As [`handler`], with a given environment.
pub fn handler_with(spec: Value, env: &HandlerEnv) -> Arc<dyn Handler> {
    let handlers = json!({ "t": spec });
    let registry = Registry::from_config(handlers.as_object().expect("object"), env)
        .unwrap_or_else(|e| panic!("config rejected: {e}"));
    Arc::clone(registry.get("t").expect("registered"))
}

/// An exec handler for `sh -c SCRIPT`.
pub fn sh(script: &str) -> Arc<dyn Handler> {
    handler(json!({"exec": {"command": ["sh", "-c", script]}}))
}

/// A context with a generous deadline.
pub fn ctx() -> Context {
    Context::new(Duration::from_secs(60), 1, "test-worker".into())
}

/// A task of type `t`.
pub fn task(id: &str, parameters: Value) -> Task {
    Task::new(id, "t", parameters)
}

/// Runs a handler on its own thread and fails the test if it takes longer than `limit`.
pub fn run(
    h: &Arc<dyn Handler>,
    task: &Task,
    ctx: &Context,
    limit: Duration,
) -> Result<Value, TaskError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (h, task, ctx) = (Arc::clone(h), task.clone(), ctx.clone());
    std::thread::spawn(move || {
        let _ = tx.send(h.handle(&task, &ctx));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("handler did not return within {limit:?}"))
}

/// Reads a pid a script wrote to `path`, waiting for it up to 10 s.
pub fn read_pid(path: &std::path::Path) -> i32 {
    let mut pid = None;
    wait_until(Duration::from_secs(10), || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap_or_else(|| panic!("no pid in {}", path.display()))
}

/// Live (not zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2].parse() == Ok(pgid) {
            found.push(pid);
        }
    }
    found
}

/// Sends raw bytes on a fresh connection, then closes its sending side;
/// returns what came back (at most 64 KiB, waiting at most 5 s for each read).
pub fn send_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.take(64 * 1024).read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A `kB` line of /proc/self/status (`VmRSS`, `VmHWM`), in bytes.
pub fn self_status_kb(field: &str) -> u64 {
    status_kb("self", field)
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`) of process `pid`
/// (or `self`), in bytes.
pub fn status_kb(pid: &str, field: &str) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no {field} in {path}"))
}

pub mod browser;
#[cfg(feature = "server")]
pub mod dashboard;
pub mod fake;
pub mod faulty;
pub mod hostile;
pub mod worker;
