//! Helpers shared by the integration tests: a reference server on
//! `127.0.0.1:0`, a small JSON client, waits with deadlines, the binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskworker::server::{Server, ServerConfig};

/// Starts an in-process server; `listen` is forced to `127.0.0.1:0`.
pub fn start_server(config: ServerConfig) -> Server {
    Server::start(ServerConfig {
        listen: "127.0.0.1:0".into(),
        ..config
    })
    .expect("server starts")
}

/// The built `taskworker` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_taskworker"))
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskworker-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
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
        let (status, body) = self.post_json(
            "/tasks",
            &json!({"type": task_type, "parameters": parameters}),
        );
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

    /// `GET /tasks/{id}`'s task.
    pub fn task(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!(
            "/tasks/{}",
            taskworker::task::encode_path_segment(id)
        ));
        assert_eq!(status, 200, "get {id}: {body}");
        body["task"].clone()
    }
}

/// A `taskworker serve` child process, killed when dropped.
pub struct ServeProcess {
    /// The child.
    pub child: std::process::Child,
    /// Its base URL, read from its `listening on` line.
    pub url: String,
}

impl ServeProcess {
    /// Starts `taskworker serve --listen 127.0.0.1:0` with `args`; waits for its address.
    pub fn start(args: &[&str]) -> ServeProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
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
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

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

pub mod worker;
