//! A hostile task API on the scripted fake: claims are answered from a queue
//! of canned answers (any status, headers and bytes), then with the normal
//! tasks the test hands out, then with "no task"; reports get 200 unless a
//! canned report answer is queued; every request is recorded. Plus the
//! check that must hold after every hostile answer: the worker is healthy,
//! completes a normal task, and reported or spooled every task it accepted.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::fake::{FakeApi, Reply, Seen};
use super::worker::{spooled, WorkerProcess, WorkerSpec};
use super::{temp_dir, wait_until, Api};

/// Where a redirect sends the worker; nothing may ever ask for it.
pub const ELSEWHERE: &str = "/elsewhere";

/// One canned answer.
pub type Canned = Reply;

/// A JSON answer with `status`.
pub fn answer(status: u16, body: Value) -> Canned {
    (status, body.to_string()).into()
}

/// An answer of raw bytes with `status` and no headers.
pub fn raw(status: u16, body: impl Into<Vec<u8>>) -> Canned {
    Reply {
        status,
        headers: Vec::new(),
        body: body.into(),
    }
}

/// `canned` with one more header.
pub fn with_header(mut canned: Canned, name: &str, value: &str) -> Canned {
    canned.headers.push((name.into(), value.into()));
    canned
}

/// A redirect to [`ELSEWHERE`] on the same API.
pub fn redirect(status: u16) -> Canned {
    with_header(raw(status, Vec::new()), "Location", ELSEWHERE)
}

/// The ids a claim answer hands out that a worker must accept: a 200 whose
/// body is a JSON object with `tasks` absent, null or an array; each object
/// in `task` or `tasks` with a non-empty string `id`. Each id once.
pub fn handed_out(canned: &Canned) -> Vec<String> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&canned.body) else {
        return Vec::new();
    };
    let mut objects = match body.get("tasks") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tasks)) => tasks.clone(),
        Some(_) => return Vec::new(),
    };
    objects.extend(body.get("task").cloned());
    let mut ids: Vec<String> = Vec::new();
    for id in objects.iter().filter_map(|t| t["id"].as_str()) {
        if canned.status == 200 && !id.is_empty() && !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }
    ids
}

/// A report the API received.
#[derive(Debug, Clone)]
pub struct Report {
    /// The path segment as sent.
    pub segment: String,
    /// The segment decoded (`None` for a bad escape or non-UTF-8).
    pub id: Option<String>,
    /// `complete` or `fail`.
    pub kind: String,
    /// The request body.
    pub body: Value,
    /// Whether it was a `POST` answered 2xx: delivered.
    pub delivered: bool,
}

impl Report {
    fn from_seen(seen: &Seen) -> Option<Report> {
        let rest = seen.path.strip_prefix("/tasks/")?;
        let (segment, kind) = rest.rsplit_once('/')?;
        if !matches!(kind, "complete" | "fail") {
            return None;
        }
        Some(Report {
            segment: segment.to_string(),
            id: percent_decode(segment),
            kind: kind.to_string(),
            body: seen.body.clone(),
            delivered: seen.method == "POST" && (200..300).contains(&seen.status),
        })
    }
}

/// Decodes `%XX` escapes; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let mut parts = segment.split('%');
    let mut bytes = parts.next()?.as_bytes().to_vec();
    for part in parts {
        let hex = part.get(..2)?;
        bytes.push(u8::from_str_radix(hex, 16).ok()?);
        bytes.extend_from_slice(&part.as_bytes()[2..]);
    }
    String::from_utf8(bytes).ok()
}

#[derive(Default)]
struct Script {
    claims: VecDeque<Canned>,
    normal: VecDeque<Value>,
    reports: VecDeque<Canned>,
}

/// The hostile API; stops when dropped.
pub struct HostileApi {
    fake: FakeApi,
    script: Arc<Mutex<Script>>,
}

impl HostileApi {
    /// Starts it on `127.0.0.1:0` with nothing queued.
    pub fn start() -> HostileApi {
        let script = Arc::new(Mutex::new(Script::default()));
        let s = script.clone();
        let fake = FakeApi::start_raw(move |_, path, _| {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            if path == "/tasks/claim" {
                if let Some(canned) = s.claims.pop_front() {
                    return canned;
                }
                return match s.normal.pop_front() {
                    Some(task) => answer(200, json!({ "tasks": [task] })),
                    None => raw(204, Vec::new()),
                };
            }
            if path.ends_with("/complete") || path.ends_with("/fail") {
                if let Some(canned) = s.reports.pop_front() {
                    return canned;
                }
            }
            answer(200, json!({}))
        });
        HostileApi { fake, script }
    }

    /// The base URL.
    pub fn url(&self) -> String {
        self.fake.url()
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers the next claims with `answers`, in order.
    pub fn queue_claims(&self, answers: &[Canned]) {
        self.script().claims.extend(answers.iter().cloned());
    }

    /// Answers the next reports with `answers`, in order (then 200).
    pub fn queue_reports(&self, answers: &[Canned]) {
        self.script().reports.extend(answers.iter().cloned());
    }

    /// Hands out an `echo` task `id` once the canned claim answers are used.
    pub fn hand_out_echo(&self, id: &str) {
        let task = json!({"id": id, "type": "echo", "parameters": {"normal": true}});
        self.script().normal.push_back(task);
    }

    /// Claim answers queued and not yet given.
    pub fn claims_left(&self) -> usize {
        let s = self.script();
        s.claims.len() + s.normal.len()
    }

    /// How many requests so far: a mark for [`HostileApi::reports_since`].
    pub fn mark(&self) -> usize {
        self.fake.recorded()
    }

    /// Every request recorded since `mark`. By the order of recording: a
    /// split of the list sorted by arrival would, whenever a request that
    /// arrived before the mark is recorded after it, count the newest request
    /// before the mark (a report of the previous case's task, say) as one
    /// since.
    pub fn seen_since(&self, mark: usize) -> Vec<Seen> {
        self.fake.recorded_since(mark)
    }

    /// Every report since `mark`.
    pub fn reports_since(&self, mark: usize) -> Vec<Report> {
        let seen = self.seen_since(mark);
        seen.iter().filter_map(Report::from_seen).collect()
    }

    /// The delivered reports for `id` since `mark`.
    pub fn delivered(&self, mark: usize, id: &str) -> Vec<Report> {
        let mut reports = self.reports_since(mark);
        reports.retain(|r| r.delivered && r.id.as_deref() == Some(id));
        reports
    }
}

/// A worker of `echo` tasks on `api`, with a health server and a state
/// directory, and the state directory's path.
pub fn hostile_worker(name: &str, api: &HostileApi) -> (WorkerProcess, PathBuf) {
    let state = temp_dir(&format!("hostile-state-{name}"));
    let url = api.url();
    let config = json!({"handlers": {"echo": {"builtin": "echo"}}});
    let worker = WorkerSpec::new(name, &url, config)
        .env("STATE_DIR", state.to_string_lossy())
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .env("CONCURRENT_TASKS", "2")
        .env("WORKER_ID", format!("hostile-{name}"))
        .env("LOG_LEVEL", "debug")
        .start();
    (worker, state)
}

/// How long one step of [`after_hostile_answer`] may take: past the longest
/// backoff a few errors in a row build up.
const STEP: Duration = Duration::from_secs(20);

/// How an error of [`after_hostile_answer`] begins when the worker no
/// longer claims or completes: later cases on it would only time out.
pub const STUCK: &str = "the worker is stuck";

/// What must hold after the claim answers `canned`, given since `mark`:
/// the worker took them all, completes a normal task `normal` afterwards,
/// answers `/health` with 200, and reported (once) or spooled every task it
/// accepted, each under its own id fully percent-encoded; no thread
/// panicked. The first broken promise, as an error.
pub fn after_hostile_answer(
    api: &HostileApi,
    worker: &WorkerProcess,
    state: &Path,
    canned: &[Canned],
    mark: usize,
    normal: &str,
) -> Result<(), String> {
    if !wait_until(STEP, || api.claims_left() == 0) {
        return Err(format!("{STUCK}: it stopped claiming"));
    }
    api.hand_out_echo(normal);
    if !wait_until(STEP, || !api.delivered(mark, normal).is_empty()) {
        return Err(format!(
            "{STUCK}: the normal task {normal} afterwards was not reported"
        ));
    }
    let health = Api::new(worker.health_url());
    let (status, body) = health.get("/health");
    if status != 200 {
        return Err(format!("/health answered {status}: {body}"));
    }
    let accepted: Vec<String> = canned.iter().flat_map(handed_out).collect();
    for id in &accepted {
        let landed = || !api.delivered(mark, id).is_empty() || spooled(state).contains(id);
        if !wait_until(STEP, landed) {
            return Err(format!("task {id:?} was neither reported nor spooled"));
        }
    }
    for id in accepted.iter().map(String::as_str).chain([normal]) {
        let delivered = api.delivered(mark, id).len();
        if delivered > 1 {
            return Err(format!("task {id:?} was reported {delivered} times"));
        }
    }
    for report in api.reports_since(mark) {
        let segment = &report.segment;
        // A dot may stand as it is, except as the whole segment (`.`, `..`),
        // which a proxy would resolve away.
        let encoded = segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_~%.".contains(&b));
        if !encoded {
            return Err(format!(
                "report path segment {segment:?} is not fully percent-encoded"
            ));
        }
        let id = report.id.as_deref().unwrap_or_default();
        if id != normal && !accepted.iter().any(|a| a == id) {
            return Err(format!(
                "a report for {segment:?}, an id no claim handed out"
            ));
        }
    }
    if let Some(to) = api
        .seen_since(mark)
        .iter()
        .find(|s| s.path.starts_with(ELSEWHERE))
    {
        return Err(format!(
            "the worker followed a redirect ({} {})",
            to.method, to.path
        ));
    }
    if let Some(line) = worker.log().lines().find(|l| l.contains("panicked")) {
        return Err(format!("a thread panicked: {line}"));
    }
    Ok(())
}

/// The last `n` warnings and errors in the worker's log.
pub fn log_tail(worker: &WorkerProcess, n: usize) -> String {
    let log = worker.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
