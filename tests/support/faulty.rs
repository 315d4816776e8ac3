//! A faulty HTTP proxy between the worker and the reference server: plain
//! TCP, a minimal HTTP/1.1 parser (Content-Length bodies), keep-alive towards
//! the worker and one upstream connection per request, and a fault plan that
//! tests change while it runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;

/// How long a connection may sit idle, and how long the upstream may take.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest head or body the proxy reads from either side.
const MAX_MESSAGE: usize = 16 << 20;

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /tasks/claim`.
    Claim,
    /// `POST /tasks/{id}/complete` or `/fail`, or a batch of them
    /// (`POST /tasks/report`).
    Report,
    /// `POST /tasks/{id}/heartbeat`.
    Heartbeat,
    /// `POST /tasks` (an enqueue).
    Enqueue,
    /// Every request.
    Any,
}

impl Route {
    fn matches(self, path: &str) -> bool {
        match self {
            Route::Claim => path == "/tasks/claim",
            Route::Report => {
                path.ends_with("/complete") || path.ends_with("/fail") || path == "/tasks/report"
            }
            Route::Heartbeat => path.ends_with("/heartbeat"),
            Route::Enqueue => path == "/tasks",
            Route::Any => true,
        }
    }
}

/// What happens to one matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status with a small JSON body; forwarded first when
    /// `forward` (the server acted, but its answer is lost).
    Status {
        /// The status sent back.
        status: u16,
        /// Whether the request reaches the server first.
        forward: bool,
    },
    /// Forward, then write half of the answer and close the connection.
    CutAnswer,
    /// Forward, then hold the answer this long before sending it.
    Delay(Duration),
    /// Answer 200 with this body, without forwarding.
    Replace(Vec<u8>),
    /// Forward, then pass the JSON answer through this function.
    Rewrite(fn(&mut Value)),
    /// Answer with the last claim answer that carried a task, without
    /// forwarding: the same tasks are delivered a second time.
    ReplayClaim,
}

#[derive(Debug)]
struct Rule {
    route: Route,
    fault: Fault,
    left: usize,
}

/// The fault plan: rules tried in order; each fires on its next `left` matching requests.
#[derive(Debug, Default)]
pub struct Plan {
    rules: Vec<Rule>,
    /// Faults that fired, as `path: fault` lines.
    pub fired: Vec<String>,
    /// Requests seen, as paths.
    pub seen: Vec<String>,
    last_claim: Option<Vec<u8>>,
}

impl Plan {
    fn take(&mut self, path: &str) -> Option<Fault> {
        self.seen.push(path.to_string());
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.left > 0 && r.route.matches(path))?;
        rule.left -= 1;
        let fault = rule.fault.clone();
        self.rules.retain(|r| r.left > 0);
        self.fired.push(format!("{path}: {}", short(&fault)));
        Some(fault)
    }
}

fn short(fault: &Fault) -> String {
    match fault {
        Fault::Replace(body) => format!("Replace({} bytes)", body.len()),
        other => format!("{other:?}"),
    }
}

/// A running proxy; dropping it stops accepting (open connections end with their peers).
pub struct FaultyProxy {
    addr: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl FaultyProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        listener.set_nonblocking(true).expect("nonblocking accept");
        let addr = listener.local_addr().expect("proxy address");
        let plan = Arc::new(Mutex::new(Plan::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&plan), Arc::clone(&stop));
        let accept = thread::Builder::new()
            .name("faulty-proxy".into())
            .spawn(move || accept_loop(listener, upstream, p, s))
            .expect("proxy thread");
        FaultyProxy {
            addr,
            plan,
            stop,
            accept: Some(accept),
        }
    }

    /// The base URL the worker is given.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Applies `fault` to the next `times` requests on `route`.
    pub fn inject(&self, route: Route, fault: Fault, times: usize) {
        self.lock().rules.push(Rule {
            route,
            fault,
            left: times,
        });
    }

    /// How many injected faults have not fired yet.
    pub fn pending(&self) -> usize {
        self.lock().rules.iter().map(|r| r.left).sum()
    }

    /// Faults that fired so far.
    pub fn fired(&self) -> Vec<String> {
        self.lock().fired.clone()
    }

    /// How many requests on `route` the proxy has seen.
    pub fn seen(&self, route: Route) -> usize {
        self.lock().seen.iter().filter(|p| route.matches(p)).count()
    }

    /// Whether a claim answer with a task has passed through (for [`Fault::ReplayClaim`]).
    pub fn has_claim_to_replay(&self) -> bool {
        self.lock().last_claim.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let plan = Arc::clone(&plan);
                let _ = thread::Builder::new()
                    .name("faulty-proxy-conn".into())
                    .spawn(move || serve(stream, upstream, &plan));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// One HTTP/1.1 message: the start line, the header lines, the body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (name, value) in &self.headers {
            if !name.eq_ignore_ascii_case("content-length") {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn read_message(reader: &mut BufReader<TcpStream>) -> Option<Message> {
    let mut start = String::new();
    if reader.read_line(&mut start).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    let mut head_size = start.len();
    loop {
        let mut line = String::new();
        head_size += reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if head_size > MAX_MESSAGE {
            return None;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    if length > MAX_MESSAGE {
        return None;
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Message {
        start: start.trim_end().to_string(),
        headers,
        body,
    })
}

fn answer(status: u16, body: Vec<u8>) -> Message {
    Message {
        start: format!("HTTP/1.1 {status} Injected"),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body,
    }
}

/// Sends `request` to the server on a fresh connection and reads its answer.
fn forward(upstream: SocketAddr, request: &Message) -> Option<Message> {
    let stream = TcpStream::connect_timeout(&upstream, IO_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    (&stream).write_all(&request.to_bytes()).ok()?;
    read_message(&mut BufReader::new(stream))
}

/// Serves one worker connection until it closes or a fault closes it.
fn serve(client: TcpStream, upstream: SocketAddr, plan: &Mutex<Plan>) {
    let _ = client.set_read_timeout(Some(IO_TIMEOUT));
    let _ = client.set_nodelay(true);
    let Ok(reader) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let mut out = client;
    while let Some(request) = read_message(&mut reader) {
        let path = request
            .start
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .to_string();
        let fault = plan.lock().unwrap_or_else(|e| e.into_inner()).take(&path);
        let forwarded = || -> Option<Message> {
            let resp = forward(upstream, &request)?;
            if Route::Claim.matches(&path) && claim_has_task(&resp.body) {
                plan.lock().unwrap_or_else(|e| e.into_inner()).last_claim = Some(resp.body.clone());
            }
            Some(resp)
        };
        let response = match fault {
            None => forwarded(),
            Some(Fault::Status { status, forward }) => {
                if forward {
                    let _ = forwarded();
                }
                Some(answer(status, br#"{"error": "injected"}"#.to_vec()))
            }
            Some(Fault::CutAnswer) => {
                if let Some(resp) = forwarded() {
                    let bytes = resp.to_bytes();
                    let _ = out.write_all(&bytes[..bytes.len() / 2]);
                }
                return;
            }
            Some(Fault::Delay(d)) => {
                let resp = forwarded();
                thread::sleep(d);
                resp
            }
            Some(Fault::Replace(body)) => Some(answer(200, body)),
            Some(Fault::Rewrite(f)) => forwarded().map(|mut resp| {
                if let Ok(mut v) = serde_json::from_slice::<Value>(&resp.body) {
                    f(&mut v);
                    resp.body = v.to_string().into_bytes();
                }
                resp
            }),
            Some(Fault::ReplayClaim) => {
                let last = plan
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .last_claim
                    .clone();
                match last {
                    Some(body) => Some(answer(200, body)),
                    None => forwarded(),
                }
            }
        };
        let Some(response) = response else {
            return;
        };
        if out.write_all(&response.to_bytes()).is_err() {
            return;
        }
    }
}

fn claim_has_task(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| {
        v["task"].is_object() || v["tasks"].as_array().is_some_and(|t| !t.is_empty())
    })
}
