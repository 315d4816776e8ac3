//! A scripted task API on `tiny_http` for answers the reference server never
//! gives (heartbeats refused, reports refused, oversized claims, redirects,
//! absurd `Retry-After`s, any status, header or bytes): the test decides
//! each answer, and every request is recorded with its time and method.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::wait_until;
use super::worker::WorkerProcess;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// The method, such as `POST`.
    pub method: String,
    /// The path, such as `/tasks/claim`.
    pub path: String,
    /// The body parsed as JSON (`Null` when it is not).
    pub body: Value,
    /// The status answered.
    pub status: u16,
}

/// An answer with any status, headers and bytes.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// Header lines, sent as given.
    pub headers: Vec<(String, String)>,
    /// The body, sent as given.
    pub body: Vec<u8>,
}

impl From<(u16, String)> for Reply {
    /// A JSON answer.
    fn from((status, body): (u16, String)) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into_bytes(),
        }
    }
}

/// The answer function: method, path and body in, the reply out.
pub type Answer = dyn Fn(&str, &str, &Value) -> Reply + Send + Sync;

/// A fake task API on `127.0.0.1:0`; stops when dropped.
pub struct FakeApi {
    server: Arc<tiny_http::Server>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// Serves every request with `answer`, each on its own thread.
    pub fn start(
        answer: impl Fn(&str, &Value) -> (u16, String) + Send + Sync + 'static,
    ) -> FakeApi {
        FakeApi::start_raw(move |_, path, body| answer(path, body).into())
    }

    /// As [`FakeApi::start`], with `answer` giving extra headers too
    /// (`Retry-After`, `Location`).
    pub fn start_with_headers(
        answer: impl Fn(&str, &Value) -> (u16, String, Vec<(&'static str, String)>)
            + Send
            + Sync
            + 'static,
    ) -> FakeApi {
        FakeApi::start_raw(move |_, path, body| {
            let (status, body, headers) = answer(path, body);
            let mut reply = Reply::from((status, body));
            reply
                .headers
                .extend(headers.into_iter().map(|(k, v)| (k.to_string(), v)));
            reply
        })
    }

    /// As [`FakeApi::start`], with the method in and any reply out.
    pub fn start_raw(
        answer: impl Fn(&str, &str, &Value) -> Reply + Send + Sync + 'static,
    ) -> FakeApi {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("fake binds"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let (srv, log) = (server.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while let Ok(mut req) = srv.recv() {
                let (answer, log) = (answer.clone(), log.clone());
                std::thread::spawn(move || {
                    let at = Instant::now();
                    let mut text = String::new();
                    let _ = req.as_reader().read_to_string(&mut text);
                    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let path = req.url().to_string();
                    let method = req.method().to_string();
                    let reply = answer(&method, &path, &body);
                    log.lock().unwrap().push(Seen {
                        at,
                        method,
                        path,
                        body,
                        status: reply.status,
                    });
                    let mut response =
                        tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
                    for (name, value) in &reply.headers {
                        if let Ok(h) =
                            tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                        {
                            response.add_header(h);
                        }
                    }
                    let _ = req.respond(response);
                });
            }
        });
        FakeApi {
            server,
            seen,
            thread: Some(thread),
        }
    }

    /// The base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.server_addr())
    }

    /// Every request so far whose path ends with `suffix`.
    pub fn seen(&self, suffix: &str) -> Vec<Seen> {
        let mut seen: Vec<Seen> = self
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path.ends_with(suffix))
            .cloned()
            .collect();
        seen.sort_by_key(|s| s.at);
        seen
    }

    /// How many requests are recorded so far: a mark for [`FakeApi::recorded_since`].
    pub fn recorded(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The requests recorded after `mark`, in the order they were recorded.
    /// Not sorted by arrival as [`FakeApi::seen`] is: each request is
    /// recorded by its own thread, so one that arrived before a mark can be
    /// recorded after it, and the arrival-sorted list split at the mark then
    /// holds the last request from before the mark instead.
    pub fn recorded_since(&self, mark: usize) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        seen.get(mark..).unwrap_or_default().to_vec()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A fake whose `/health` answers JSON, which hands out `task` at the
/// first claim once `release` is true and "no task" to every other claim,
/// and answers 200 `{}` to anything else.
pub fn one_task_api(task: Value, release: Arc<AtomicBool>) -> FakeApi {
    let given = AtomicBool::new(false);
    FakeApi::start(move |path, _| match path {
        "/health" => (200, r#"{"status": "healthy"}"#.into()),
        "/tasks/claim" if release.load(Ordering::SeqCst) && !given.swap(true, Ordering::SeqCst) => {
            claimed(vec![task.clone()])
        }
        "/tasks/claim" => nothing(),
        _ => ok(),
    })
}

/// A claimed task object of `task_type`; with `lease`, it carries
/// `claimed_at` and `lease_expires_at` that far apart.
pub fn task(id: &str, task_type: &str, parameters: Value, lease: Option<Duration>) -> Value {
    let now = std::time::SystemTime::now();
    let mut t = json!({"id": id, "type": task_type, "parameters": parameters});
    if let Some(lease) = lease {
        t["claimed_at"] = json!(taskworker::format_timestamp(now));
        t["lease_expires_at"] = json!(taskworker::format_timestamp(now + lease));
    }
    t
}

/// A claim answer with `tasks` (the batch form).
pub fn claimed(tasks: Vec<Value>) -> (u16, String) {
    (200, json!({ "tasks": tasks }).to_string())
}

/// "No task now".
pub fn nothing() -> (u16, String) {
    (204, String::new())
}

/// 200 `{}`.
pub fn ok() -> (u16, String) {
    (200, "{}".into())
}

/// Waits up to 30 s for `done`, as `worker` runs against a fake; fails the
/// test with the worker's log when it does not come.
pub fn wait_for(worker: &WorkerProcess, done: impl FnMut() -> bool) {
    assert!(
        wait_until(Duration::from_secs(30), done),
        "log:\n{}",
        worker.log()
    );
}
