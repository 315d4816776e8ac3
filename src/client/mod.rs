//! The task API client: claim, complete, fail, batch report, heartbeat,
//! claim cancel, the enqueue of a schedule's firing and the `/health` check of the base URL over one keep-alive `ureq` agent. Statuses are read here, deliberately, and
//! every answer body is read with a size cap.

pub(crate) mod resolver;
pub(crate) mod transport;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use ureq::Agent;

use crate::bounded;
use crate::config::{url, Config};
use crate::error::Error;
use crate::task::{
    drop_duplicate_ids, encode_path_segment, CancelClaimRequest, ClaimRequest, ClaimResponse,
    EnqueueRequest, HeartbeatBody,
};

/// The largest claim answer read: a full batch of large tasks fits; an
/// endless or hostile answer does not.
pub const MAX_CLAIM_BODY: u64 = 4 << 20;
/// The largest answer read for a report, heartbeat or cancel.
pub const MAX_SMALL_BODY: u64 = 64 << 10;
/// Time allowed for a report, heartbeat or cancel round trip.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// What a claim may take beyond the long-poll time it asked for.
pub const CLAIM_MARGIN: Duration = Duration::from_secs(10);
/// The longest long poll a claim asks for (`WAIT_SECONDS` allows no more).
const MAX_CLAIM_WAIT: Duration = Duration::from_secs(300);

/// Why an API call did not get a usable answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The server answered with a status the call has no use for.
    Status {
        /// The HTTP status.
        status: u16,
        /// `Retry-After`, in seconds, when given.
        retry_after: Option<Duration>,
        /// The first 200 bytes of the answer, for the log.
        body: String,
    },
    /// No answer: connection refused or reset, timeout, TLS failure.
    Transport(String),
    /// The answer was larger than the cap.
    TooLarge {
        /// The cap in bytes.
        limit: u64,
    },
    /// The answer was not the JSON the protocol describes.
    Malformed(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Status { status, body, .. } if body.is_empty() => {
                write!(f, "status {status}")
            }
            ApiError::Status { status, body, .. } => write!(f, "status {status}: {body}"),
            ApiError::Transport(e) => write!(f, "no answer: {e}"),
            ApiError::TooLarge { limit } => write!(f, "answer larger than {limit} bytes, refused"),
            ApiError::Malformed(e) => write!(f, "malformed answer: {e}"),
        }
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Whether the server could not be reached or failed on its side: the
    /// kind of error that says "the API is down", logged once per outage.
    /// A redirect is one: the worker follows none, so only the server's
    /// own fix ends it.
    pub fn is_outage(&self) -> bool {
        match self {
            ApiError::Transport(_) => true,
            ApiError::Status { status, .. } => is_redirect(*status) || *status >= 500,
            _ => false,
        }
    }

    /// Whether the credentials were refused.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            ApiError::Status {
                status: 401 | 403,
                ..
            }
        )
    }

    /// The server's own `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What a claim brought.
#[derive(Debug, Clone, PartialEq)]
pub enum Claimed {
    /// Claimed objects, raw: each is checked by `Task::from_claimed`.
    Tasks(Vec<Value>),
    /// Nothing to do now.
    Nothing,
}

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// 2xx: the server has it.
    Delivered,
    /// 404, 409, 410: the task is no longer ours; the report is dropped.
    Gone(u16),
}

/// The most outcomes one batch report carries (the protocol's limit).
pub const MAX_BATCH: usize = 100;
/// The largest answer read for a batch report: 100 entries with long ids.
pub const MAX_BATCH_ANSWER: u64 = 1 << 20;

/// One outcome of a batch report, as its single call would send it.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The task it reports on.
    pub task_id: &'a str,
    /// Complete or fail.
    pub kind: ReportKind,
    /// The single call's JSON body.
    pub body: &'a [u8],
}

/// What a batch report (`POST /tasks/report`) brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchAnswer {
    /// Per item, in the order sent, the status the server gave it; `None`
    /// where the answer has no usable entry for that id (missing, or
    /// given more than once): that outcome is not known delivered.
    Statuses(Vec<Option<u16>>),
    /// 404 or 405: the server has no batch reports.
    Unsupported(u16),
}

/// What a report's status means: delivered (2xx), no longer ours (404,
/// 409, 410), or `None`: to be tried again.
fn delivery(status: u16) -> Option<Delivery> {
    match status {
        200..=299 => Some(Delivery::Delivered),
        404 | 409 | 410 => Some(Delivery::Gone(status)),
        _ => None,
    }
}

/// What the status of one outcome in a batch means, as for its single call.
pub fn item_delivery(status: u16) -> Result<Delivery, ApiError> {
    delivery(status).ok_or_else(|| ApiError::Status {
        status,
        retry_after: None,
        body: "(its entry in a batch report)".into(),
    })
}

/// What a heartbeat learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// The lease was extended (to the time given, if any).
    Extended(Option<String>),
    /// 404, 409, 410: the lease is lost.
    Lost(u16),
}

/// What `GET /health` says of the base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// A JSON answer: a task API lives at this base URL.
    Found,
    /// A 404, or an answer that is not JSON: no task API lives at this base
    /// URL, and a claim's 404 would be read as "no task" for ever. Says
    /// what was answered.
    Missing(String),
}

/// What became of an enqueue (`POST /tasks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// 201: a new task.
    Created,
    /// Another 2xx: a task with this id was there already.
    Existing,
    /// 404, 405 or 501: the server has no `POST /tasks`.
    Unsupported(u16),
}

/// Complete or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// `POST /tasks/{id}/complete`.
    Complete,
    /// `POST /tasks/{id}/fail`.
    Fail,
}

impl ReportKind {
    fn path(self) -> &'static str {
        match self {
            ReportKind::Complete => "complete",
            ReportKind::Fail => "fail",
        }
    }
}

/// A client of one task API.
#[derive(Clone)]
pub struct ApiClient {
    agent: Agent,
    base: Arc<str>,
    /// `base` as logs and errors show it (userinfo as `***`).
    shown_base: Arc<str>,
    /// The `Authorization` value, shared by every clone and read per
    /// request, so that a reload rotates the key for all of them at once (a
    /// request already sent completes with the key it was sent with).
    auth: Arc<RwLock<Option<Arc<str>>>>,
    worker_id: Arc<str>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.shown_base)
            .field("worker_id", &self.worker_id)
            .finish()
    }
}

/// The `Authorization` header's value for `api_key`.
fn bearer(api_key: Option<&str>) -> Option<Arc<str>> {
    api_key.map(|k| format!("Bearer {k}").into())
}

/// Builds the one agent the worker uses for everything: keep-alive, statuses
/// as values, bounded connect time, and the configured root certificates.
pub fn build_agent(config: &Config) -> Result<Agent, Error> {
    let mut builder = Agent::config_builder()
        .http_status_as_error(false)
        // A redirect is answered, not followed: a 302 to a report must not
        // turn into a `GET` whose 200 would count as delivered.
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(REQUEST_TIMEOUT))
        .max_idle_connections_per_host(config.concurrent_tasks + 4)
        .user_agent(format!("taskworker/{}", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &config.api_ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            Error::config(
                "API_CA_FILE",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(Error::config(
                "API_CA_FILE",
                format!("{} holds no PEM certificate", path.display()),
            ));
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
            .build();
        builder = builder.tls_config(tls);
    }
    Ok(Agent::with_parts(
        builder.build(),
        crate::client::transport::connector(),
        crate::client::resolver::CachingResolver::default(),
    ))
}

impl ApiClient {
    /// A client for `base_url` that authenticates with `api_key` when given.
    pub fn new(agent: Agent, base_url: &str, api_key: Option<&str>, worker_id: &str) -> ApiClient {
        let base = base_url.trim_end_matches('/');
        ApiClient {
            agent,
            base: base.into(),
            shown_base: url::masked(base).into(),
            auth: Arc::new(RwLock::new(bearer(api_key))),
            worker_id: worker_id.into(),
        }
    }

    /// The client of the configured API, key and worker id, over `agent`.
    pub fn for_config(agent: Agent, config: &Config) -> ApiClient {
        ApiClient::new(
            agent,
            &config.api_url,
            config.api_key.as_ref().map(|k| k.expose()),
            &config.worker_id,
        )
    }

    /// A client of the same API, key and worker id over `agent`, whose
    /// key changes with this one's.
    pub fn over(&self, agent: Agent) -> ApiClient {
        ApiClient {
            agent,
            ..self.clone()
        }
    }

    /// Sends `api_key` (or none) from the next request on, from this
    /// client and every one cloned from it or made [`ApiClient::over`] it.
    pub fn set_api_key(&self, api_key: Option<&str>) {
        *self.auth.write().unwrap_or_else(|e| e.into_inner()) = bearer(api_key);
    }

    /// The worker id sent with every call.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The shared agent.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The base URL as logs show it (userinfo as `***`).
    pub fn shown_base(&self) -> &str {
        &self.shown_base
    }

    /// `req` with this client's timeout and credentials.
    fn prepared<B>(
        &self,
        req: ureq::RequestBuilder<B>,
        timeout: Duration,
    ) -> ureq::RequestBuilder<B> {
        let req = req.config().timeout_global(Some(timeout)).build();
        let auth = self.auth.read().unwrap_or_else(|e| e.into_inner()).clone();
        match auth {
            Some(auth) => req.header("Authorization", &*auth),
            None => req,
        }
    }

    fn post(
        &self,
        path: &str,
        body: &[u8],
        timeout: Duration,
        limit: u64,
    ) -> Result<(u16, Vec<u8>, Option<Duration>), ApiError> {
        let req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        let resp = self
            .prepared(req, timeout)
            .send(body)
            .map_err(|e| self.transport(e))?;
        self.read_answer(resp, limit)
    }

    /// The status, at most `limit` bytes of body, and `Retry-After` of an answer.
    fn read_answer(
        &self,
        mut resp: ureq::http::Response<ureq::Body>,
        limit: u64,
    ) -> Result<(u16, Vec<u8>, Option<Duration>), ApiError> {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        if is_redirect(status) {
            // Its body is of no use, and its `Location` may carry anything.
            return Ok((status, Vec::new(), retry_after));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| self.transport(e))?;
        Ok((status, body, retry_after))
    }

    /// `GET /health`, within `timeout`: whether a task API lives at the
    /// base URL. An answer that tells nothing either way (a redirect, 401,
    /// 429, 5xx, no answer) is an error.
    pub fn health(&self, timeout: Duration) -> Result<Health, ApiError> {
        let req = self.agent.get(format!("{}/health", self.base));
        let resp = self
            .prepared(req, timeout)
            .call()
            .map_err(|e| self.transport(e))?;
        let (status, body, _) = self.read_answer(resp, MAX_SMALL_BODY)?;
        health_answer(status, &body)
    }

    /// A failed request as an [`ApiError`], without the URL's userinfo.
    fn transport(&self, e: ureq::Error) -> ApiError {
        match e {
            ureq::Error::BodyExceedsLimit(limit) => ApiError::TooLarge { limit },
            other => ApiError::Transport(url::redact(&other.to_string(), &self.base)),
        }
    }

    /// `POST /tasks/claim`. The HTTP timeout is the long-poll time plus a margin.
    pub fn claim(&self, req: &ClaimRequest) -> Result<Claimed, ApiError> {
        let wait = bounded::seconds_clamped(req.wait_seconds.unwrap_or(0.0), MAX_CLAIM_WAIT);
        let body = serde_json::to_vec(req).map_err(|e| ApiError::Malformed(e.to_string()))?;
        let (status, body, retry_after) = self.post(
            "/tasks/claim",
            &body,
            wait.saturating_add(CLAIM_MARGIN),
            MAX_CLAIM_BODY,
        )?;
        match status {
            200 if body.iter().all(u8::is_ascii_whitespace) => Ok(Claimed::Nothing),
            // serde reads a struct from an array too (fields in order): an
            // answer `[task]` must not pass for `{"task": ...}`.
            200 if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') => Err(
                ApiError::Malformed("claim answer is not a JSON object".into()),
            ),
            200 => {
                let answer: ClaimResponse = serde_json::from_slice(&body).map_err(|e| {
                    ApiError::Malformed(format!("claim answer is not a task object: {e}"))
                })?;
                let (tasks, copies) = drop_duplicate_ids(answer.into_claimed());
                for id in copies {
                    log::warn!(
                        "claim: task {id} appears more than once in one answer; the copy is dropped"
                    );
                }
                Ok(if tasks.is_empty() {
                    Claimed::Nothing
                } else {
                    Claimed::Tasks(tasks)
                })
            }
            204 | 404 => Ok(Claimed::Nothing),
            _ => Err(status_error(status, retry_after, &body)),
        }
    }

    /// `POST /tasks/{id}/complete` or `/fail` with a body already serialised.
    pub fn report(
        &self,
        task_id: &str,
        kind: ReportKind,
        body: &[u8],
    ) -> Result<Delivery, ApiError> {
        self.report_within(task_id, kind, body, REQUEST_TIMEOUT)
    }

    /// [`ApiClient::report`] within `timeout` (an exit that does not wait).
    pub fn report_within(
        &self,
        task_id: &str,
        kind: ReportKind,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Delivery, ApiError> {
        let path = format!("/tasks/{}/{}", encode_path_segment(task_id), kind.path());
        let (status, answer, retry_after) = self.post(&path, body, timeout, MAX_SMALL_BODY)?;
        delivery(status).ok_or_else(|| status_error(status, retry_after, &answer))
    }

    /// `POST /tasks/report` with `items` (at most [`MAX_BATCH`]). Each
    /// item's status is read by its id, whatever the order of the answer;
    /// a 2xx that is not `{"results": [...]}` is malformed. Any other
    /// status is an error, as for a single report.
    pub fn report_batch(&self, items: &[BatchItem<'_>]) -> Result<BatchAnswer, ApiError> {
        let body = batch_body(&self.worker_id, items);
        let (status, answer, retry_after) =
            self.post("/tasks/report", &body, REQUEST_TIMEOUT, MAX_BATCH_ANSWER)?;
        match status {
            200..=299 => batch_statuses(items, &answer).map(BatchAnswer::Statuses),
            404 | 405 => Ok(BatchAnswer::Unsupported(status)),
            _ => Err(status_error(status, retry_after, &answer)),
        }
    }

    /// `POST /tasks/{id}/heartbeat`.
    pub fn heartbeat(&self, task_id: &str) -> Result<Beat, ApiError> {
        let path = format!("/tasks/{}/heartbeat", encode_path_segment(task_id));
        let body = serde_json::to_vec(&HeartbeatBody {
            worker_id: self.worker_id.to_string(),
        })
        .map_err(|e| ApiError::Malformed(e.to_string()))?;
        let (status, answer, retry_after) =
            self.post(&path, &body, REQUEST_TIMEOUT, MAX_SMALL_BODY)?;
        match status {
            200..=299 => {
                let lease = serde_json::from_slice::<Value>(&answer).ok().and_then(|v| {
                    v.get("lease_expires_at")
                        .and_then(Value::as_str)
                        .map(String::from)
                });
                Ok(Beat::Extended(lease))
            }
            404 | 409 | 410 => Ok(Beat::Lost(status)),
            _ => Err(status_error(status, retry_after, &answer)),
        }
    }

    /// `POST /tasks`: adds a task (with its own id, so that a repeat finds
    /// the first).
    pub fn enqueue(&self, req: &EnqueueRequest) -> Result<Enqueued, ApiError> {
        let body = serde_json::to_vec(req).map_err(|e| ApiError::Malformed(e.to_string()))?;
        let (status, answer, retry_after) =
            self.post("/tasks", &body, REQUEST_TIMEOUT, MAX_SMALL_BODY)?;
        match status {
            201 => Ok(Enqueued::Created),
            200..=299 => Ok(Enqueued::Existing),
            404 | 405 | 501 => Ok(Enqueued::Unsupported(status)),
            _ => Err(status_error(status, retry_after, &answer)),
        }
    }

    /// `POST /tasks/claim/cancel`: ends our own long poll. `Ok(true)` when
    /// the server took back what the claim handed out (2xx); `Ok(false)` for
    /// a core server's 404 (it holds no claim open, so takes nothing back).
    pub fn cancel_claim(&self, claim_id: &str, timeout: Duration) -> Result<bool, ApiError> {
        let body = serde_json::to_vec(&CancelClaimRequest {
            worker_id: self.worker_id.to_string(),
            claim_id: claim_id.to_string(),
        })
        .map_err(|e| ApiError::Malformed(e.to_string()))?;
        let (status, answer, retry_after) =
            self.post("/tasks/claim/cancel", &body, timeout, MAX_SMALL_BODY)?;
        match status {
            200..=299 => Ok(true),
            404 | 405 | 501 => Ok(false),
            _ => Err(status_error(status, retry_after, &answer)),
        }
    }
}

/// The body of a batch report, written around the bodies already
/// serialised: `{"worker_id", "outcomes": [{"id", "complete" | "fail"}]}`.
fn batch_body(worker_id: &str, items: &[BatchItem<'_>]) -> Vec<u8> {
    let size: usize = items
        .iter()
        .map(|i| i.body.len() + i.task_id.len() + 24)
        .sum();
    let mut out = Vec::with_capacity(size + worker_id.len() + 32);
    let string = |out: &mut Vec<u8>, s: &str| {
        // A `&str` always serialises.
        let _ = serde_json::to_writer(&mut *out, s);
    };
    out.extend_from_slice(b"{\"worker_id\":");
    string(&mut out, worker_id);
    out.extend_from_slice(b",\"outcomes\":[");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        string(&mut out, item.task_id);
        out.extend_from_slice(match item.kind {
            ReportKind::Complete => b",\"complete\":",
            ReportKind::Fail => b",\"fail\":",
        });
        out.extend_from_slice(item.body);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// Each item's status from a batch answer, looked up by id: an entry whose
/// id is not one sent, a status that is not a number, or an id answered
/// twice gives that item no status, never another item's.
fn batch_statuses(items: &[BatchItem<'_>], answer: &[u8]) -> Result<Vec<Option<u16>>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        results: Vec<Value>,
    }
    if answer.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::Malformed(
            "batch report answer is not a JSON object".into(),
        ));
    }
    let answer: Answer = serde_json::from_slice(answer).map_err(|e| {
        ApiError::Malformed(format!("batch report answer has no results list: {e}"))
    })?;
    let mut by_id: std::collections::HashMap<&str, Option<u16>> =
        std::collections::HashMap::with_capacity(answer.results.len());
    for entry in &answer.results {
        let Some(id) = entry.get("id").and_then(Value::as_str) else {
            continue;
        };
        let status = entry
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (100..600).contains(s));
        by_id
            .entry(id)
            .and_modify(|twice| *twice = None)
            .or_insert(status);
    }
    Ok(items
        .iter()
        .map(|item| by_id.get(item.task_id).copied().flatten())
        .collect())
}

/// What a `/health` answer says: a 404 or a body that is not JSON means no
/// task API is there; 2xx with JSON means one is; the rest tell nothing.
fn health_answer(status: u16, body: &[u8]) -> Result<Health, ApiError> {
    let json = serde_json::from_slice::<Value>(body).is_ok();
    let inconclusive = is_redirect(status) || matches!(status, 401 | 403 | 429) || status >= 500;
    match status {
        404 => Ok(Health::Missing(
            status_error(status, None, body).to_string(),
        )),
        200..=299 if json => Ok(Health::Found),
        _ if inconclusive || json => Err(status_error(status, None, body)),
        _ => Ok(Health::Missing(format!(
            "{} (not JSON)",
            status_error(status, None, body)
        ))),
    }
}

/// Whether `status` is a redirect (3xx), which the client never follows.
fn is_redirect(status: u16) -> bool {
    (300..400).contains(&status)
}

/// A `Retry-After` in seconds, at most [`bounded::MAX_RETRY_AFTER`]; a
/// number too large for any integer is the maximum too. An HTTP date is
/// not read: the backoff applies instead.
fn retry_after(value: &str) -> Option<Duration> {
    let digits = value.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = digits.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(bounded::MAX_RETRY_AFTER))
}

fn status_error(status: u16, retry_after: Option<Duration>, body: &[u8]) -> ApiError {
    let text = if is_redirect(status) {
        "a redirect, not followed".to_string()
    } else {
        String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_string()
    };
    ApiError::Status {
        status,
        retry_after,
        body: text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errors() {
        let e = status_error(503, Some(Duration::from_secs(3)), b"busy");
        assert!(e.is_outage());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(e.to_string(), "status 503: busy");
        assert!(status_error(401, None, b"").is_auth());
        assert!(!status_error(400, None, b"").is_outage());
        assert!(ApiError::Transport("refused".into()).is_outage());
        let long = vec![b'x'; 1000];
        assert!(status_error(400, None, &long).to_string().len() < 220);
    }

    #[test]
    fn health_is_missing_on_404_or_an_answer_that_is_not_json() {
        assert_eq!(
            health_answer(200, b"{\"status\": \"healthy\"}"),
            Ok(Health::Found)
        );
        assert_eq!(
            health_answer(404, b"{\"error\": \"no route\"}"),
            Ok(Health::Missing(
                "status 404: {\"error\": \"no route\"}".into()
            ))
        );
        assert_eq!(
            health_answer(200, b"<html>welcome</html>"),
            Ok(Health::Missing(
                "status 200: <html>welcome</html> (not JSON)".into()
            ))
        );
        assert!(matches!(health_answer(400, b"bad"), Ok(Health::Missing(_))));
        for inconclusive in [301, 401, 403, 429, 500, 502, 503] {
            assert!(
                health_answer(inconclusive, b"<html/>").is_err(),
                "{inconclusive}"
            );
        }
        assert!(health_answer(400, b"{}").is_err());
    }

    #[test]
    fn a_batch_is_written_around_the_bodies_and_answers_are_read_by_id() {
        let items = [
            BatchItem {
                task_id: "a\"1",
                kind: ReportKind::Complete,
                body: br#"{"result":{"n":1}}"#,
            },
            BatchItem {
                task_id: "b",
                kind: ReportKind::Fail,
                body: br#"{"error":"x","retryable":false}"#,
            },
            BatchItem {
                task_id: "c",
                kind: ReportKind::Complete,
                body: br#"{"result":null}"#,
            },
        ];
        let body: Value = serde_json::from_slice(&batch_body("w", &items)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"worker_id": "w", "outcomes": [
                {"id": "a\"1", "complete": {"result": {"n": 1}}},
                {"id": "b", "fail": {"error": "x", "retryable": false}},
                {"id": "c", "complete": {"result": null}},
            ]})
        );
        let answer = br#"{"results": [{"id": "c", "status": 409}, {"id": "b", "status": 200},
            {"id": "b", "status": 200}, {"id": "zzz", "status": 200}, {"id": "a\"1", "status": "ok"}]}"#;
        assert_eq!(
            batch_statuses(&items, answer),
            Ok(vec![None, None, Some(409)]),
            "by id; an id twice or a status that is no number gives none"
        );
        for bad in [&b"[]"[..], b"<html>", b"{\"results\": 5}", b"{}"] {
            assert!(
                matches!(batch_statuses(&items, bad), Err(ApiError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(item_delivery(201), Ok(Delivery::Delivered));
        assert_eq!(item_delivery(410), Ok(Delivery::Gone(410)));
        assert!(item_delivery(503).unwrap_err().is_outage());
    }

    #[test]
    fn redirects_are_outages_and_say_so() {
        let e = status_error(302, None, b"<a href=\"/elsewhere?token=1\">moved</a>");
        assert!(e.is_outage());
        assert_eq!(e.to_string(), "status 302: a redirect, not followed");
        assert!(!status_error(404, None, b"").is_outage());
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped_at_an_hour() {
        assert_eq!(retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(retry_after("3601"), Some(Duration::from_secs(3600)));
        assert_eq!(
            retry_after("18446744073709551615"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            retry_after("99999999999999999999999999"),
            Some(Duration::from_secs(3600))
        );
        for ignored in ["", "-1", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT", "abc"] {
            assert_eq!(retry_after(ignored), None, "{ignored}");
        }
    }
}
