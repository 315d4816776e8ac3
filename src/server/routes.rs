//! HTTP routing: checks the key, decodes each request, calls the store and
//! turns its answer or refusal into a status and a JSON body.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::admin_routes::{self, Action};
use super::clock::rfc3339;
use super::decode::{self, Fields};
use super::metrics;
use super::queue::ReportError;
use super::store::{Claim, Report, Store, StoreError};
use super::ui::Ui;
use super::waiters::{Waiter, Wake};
use crate::listener::{Answer, Head, Request, Responder, Response};
use crate::task::{decode_path_segment, ClaimRequest, Task};

/// The longest long poll granted, whatever is asked.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// The routes of one server.
pub struct Routes {
    store: Arc<dyn Store>,
    api_key: Option<String>,
    extensions: bool,
    /// The dashboard under `/ui`, which has its own login.
    ui: Ui,
}

impl Routes {
    /// Routes onto `store`; `extensions` false makes the server core-only.
    pub fn new(store: Arc<dyn Store>, api_key: Option<String>, extensions: bool) -> Routes {
        Routes {
            ui: Ui::new(Arc::clone(&store), api_key.clone()),
            store,
            api_key,
            extensions,
        }
    }

    /// Compares the bearer token in constant time.
    fn authorized(&self, head: &Head) -> bool {
        let Some(key) = &self.api_key else {
            return true;
        };
        let given = head
            .header("Authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.trim().as_bytes(), key.as_bytes())
    }

    /// Answers one request whose key was checked.
    fn handle(&self, req: Request) -> Response {
        if Ui::owns(req.head.path()) {
            return self.ui.respond(&req);
        }
        let path = req.head.path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = match req.head.method.as_str() {
            "HEAD" => "GET",
            m => m,
        };
        let ext = self.extensions;
        match (segments.as_slice(), method) {
            (["health"], "GET") => {
                let failure = self.store.failure();
                let snapshot = match failure {
                    None => self.store.snapshot(),
                    Some(why) => Err(StoreError::NotDurable(why)),
                };
                match snapshot {
                    Ok(snapshot) => Response::json(200, &metrics::health(&snapshot)),
                    Err(e) => {
                        let why = match e {
                            StoreError::NotDurable(why) | StoreError::Unavailable { why, .. } => {
                                why
                            }
                            other => other.to_string(),
                        };
                        Response::json(503, &json!({"status": "unhealthy", "reason": why}))
                    }
                }
            }
            (["metrics"], "GET") => match self.store.snapshot() {
                Ok(snapshot) => Response {
                    status: 200,
                    content_type: "text/plain; version=0.0.4",
                    headers: Vec::new(),
                    body: metrics::prometheus(&snapshot).into_bytes(),
                },
                Err(e) => refusal(e),
            },
            (["tasks"], "GET") => admin_routes::list(self.store.as_ref(), req.head.query()),
            (["tasks"], "POST") => self.with_body(&req, |f| self.enqueue(f)),
            (["tasks", "claim"], "POST") => self.with_body(&req, |f| self.claim(f)),
            (["tasks", "claim", "cancel"], "POST") if ext => {
                self.with_body(&req, |f| self.cancel(f))
            }
            (["tasks", "report"], "POST") if ext => {
                self.with_body(&req, |f| super::report::report(&*self.store, f, refusal))
            }
            (["tasks", id], "GET") if *id != "claim" => self.with_id(id, |id| self.get(id)),
            (["tasks", id, "complete"], "POST") => {
                self.with_id(id, |id| self.with_body(&req, |f| self.complete(id, f)))
            }
            (["tasks", id, "fail"], "POST") => {
                self.with_id(id, |id| self.with_body(&req, |f| self.fail(id, f)))
            }
            (["tasks", id, "heartbeat"], "POST") if ext => {
                self.with_id(id, |id| self.with_body(&req, |f| self.heartbeat(id, f)))
            }
            (["tasks", id, "cancel"], "POST") if *id != "claim" => {
                self.with_id(id, |id| self.act(id, Action::Cancel))
            }
            (["tasks", id, "retry"], "POST") => self.with_id(id, |id| self.act(id, Action::Retry)),
            (["tasks", id], "DELETE") => self.with_id(id, |id| self.act(id, Action::Delete)),
            (["types"], "GET") => admin_routes::types(self.store.as_ref()),
            (["types", task_type, "pause"], "POST") => {
                admin_routes::pause(self.store.as_ref(), task_type, true)
            }
            (["types", task_type, "resume"], "POST") => {
                admin_routes::pause(self.store.as_ref(), task_type, false)
            }
            (["workers"], "GET") => admin_routes::workers(self.store.as_ref()),
            (["stats"], "GET") => admin_routes::stats(self.store.as_ref()),
            (route, _) => match allowed(route, ext) {
                Some(allow) => {
                    Response::error(405, format!("method {} not allowed", req.head.method))
                        .with_header("Allow", allow)
                }
                None => no_route(&req.head.method, &path),
            },
        }
    }

    fn with_body(
        &self,
        req: &Request,
        f: impl FnOnce(&Fields) -> Result<Response, String>,
    ) -> Response {
        match Fields::parse(&req.body).and_then(|fields| f(&fields)) {
            Ok(resp) => resp,
            Err(msg) => Response::error(400, msg),
        }
    }

    fn with_id(&self, raw: &str, f: impl FnOnce(&str) -> Response) -> Response {
        match decode_path_segment(raw) {
            Some(id) if !id.is_empty() => f(&id),
            _ => Response::error(400, "malformed task id in path"),
        }
    }

    fn enqueue(&self, f: &Fields) -> Result<Response, String> {
        let req = decode::enqueue(f)?;
        Ok(match self.store.enqueue(&req) {
            Ok((rec, created)) => Response::json(
                if created { 201 } else { 200 },
                &json!({ "task": rec.to_detail() }),
            ),
            Err(e) => refusal(e),
        })
    }

    /// A claim as this server grants it: the request, whether it is a
    /// batch, and how long it may wait.
    fn claim_request(&self, f: &Fields) -> Result<(ClaimRequest, bool, Duration), String> {
        let mut req = decode::claim(f)?;
        let batch = self.extensions && req.max_tasks.is_some();
        let wait = match req.wait_seconds {
            Some(s) if self.extensions => crate::bounded::seconds_clamped(s, MAX_WAIT),
            _ => Duration::ZERO,
        };
        if !self.extensions {
            req.types = None;
            req.max_tasks = None;
            req.claim_id = None;
        }
        Ok((req, batch, wait))
    }

    /// A claim answered at once; one that may wait goes through
    /// [`Routes::long_poll`] instead.
    fn claim(&self, f: &Fields) -> Result<Response, String> {
        let (req, batch, _) = self.claim_request(f)?;
        Ok(match self.store.claim(&req, None) {
            Ok(Claim::Tasks(tasks)) => claimed(tasks, batch),
            Ok(Claim::Parked) => claimed(Vec::new(), batch),
            Err(e) => refusal(e),
        })
    }

    /// The long poll `request` asks for, when it is a valid claim that may wait.
    fn long_poll(&self, request: &Request) -> Option<Arc<LongPoll>> {
        let route = request.head.path().trim_start_matches('/');
        if request.head.method != "POST" || route != "tasks/claim" {
            return None;
        }
        let fields = Fields::parse(&request.body).ok()?;
        let (req, batch, wait) = self.claim_request(&fields).ok()?;
        (!wait.is_zero()).then(|| {
            Arc::new(LongPoll {
                store: Arc::clone(&self.store),
                req,
                batch,
                deadline: crate::bounded::instant_after(Instant::now(), wait),
                handed: Mutex::default(),
            })
        })
    }

    fn cancel(&self, f: &Fields) -> Result<Response, String> {
        let req = decode::cancel(f)?;
        Ok(match self.store.cancel_claim(&req.claim_id) {
            Ok(n) => Response::json(200, &json!({ "released": n })),
            Err(e) => refusal(e),
        })
    }

    fn complete(&self, id: &str, f: &Fields) -> Result<Response, String> {
        let body = decode::complete(f)?;
        Ok(self.answer_report(id, Report::Complete(id.to_string(), body)))
    }

    fn fail(&self, id: &str, f: &Fields) -> Result<Response, String> {
        let body = decode::fail(f)?;
        Ok(self.answer_report(id, Report::Fail(id.to_string(), body)))
    }

    /// The answer to a single complete or fail: the task's status after it.
    fn answer_report(&self, id: &str, report: Report) -> Response {
        match self.store.report(report) {
            Ok(status) => Response::json(200, &json!({ "id": id, "status": status.as_str() })),
            Err(e) => refusal(e),
        }
    }

    fn heartbeat(&self, id: &str, f: &Fields) -> Result<Response, String> {
        let worker_id = f.str("worker_id")?;
        Ok(match self.store.heartbeat(id, &worker_id) {
            Ok(until) => Response::json(200, &json!({ "lease_expires_at": rfc3339(until) })),
            Err(e) => refusal(e),
        })
    }

    fn get(&self, id: &str) -> Response {
        match self.store.get(id) {
            Ok(Some(task)) => Response::json(200, &json!({ "task": task })),
            Ok(None) => Response::error(404, format!("task {id:?} not found")),
            Err(e) => refusal(e),
        }
    }

    fn act(&self, id: &str, action: Action) -> Response {
        admin_routes::act(self.store.as_ref(), id, action)
    }
}

impl Responder for Routes {
    /// Every route but `/health` needs the key, checked before the body is
    /// read; the dashboard checks its session cookie itself (and the API
    /// never looks at a cookie).
    fn check_head(&self, head: &Head) -> Option<Response> {
        let open = head.path().trim_start_matches('/') == "health" || Ui::owns(head.path());
        (!open && !self.authorized(head)).then(|| {
            Response::error(401, "missing or wrong API key")
                .with_header("WWW-Authenticate", "Bearer")
        })
    }

    /// Answers at once; a claim does not wait here.
    fn respond(&self, request: Request) -> Response {
        self.handle(request)
    }

    /// A long poll parks without holding this thread; everything else is
    /// answered at once.
    fn serve(&self, request: Request, answer: Answer) {
        match self.long_poll(&request) {
            Some(poll) => {
                // A client that hangs up while parked leaves no waiter
                // behind, nor a task leased to nobody.
                let gone = Arc::clone(&poll);
                answer.watch_hang_up(move || gone.client_gone());
                poll.attempt(&answer, false);
            }
            None => answer.send(self.handle(request)),
        }
    }
}

/// A claim that may wait: tried at once, then again on a handler thread
/// each time its parked waiter is woken, until it gets tasks, its wait is
/// over, or it is cancelled.
struct LongPoll {
    store: Arc<dyn Store>,
    req: ClaimRequest,
    batch: bool,
    deadline: Instant,
    /// The tasks (id, attempt) in the answer on its way, until the client
    /// has it or they are put back.
    handed: Mutex<Vec<(String, u32)>>,
}

impl LongPoll {
    /// Claims, and answers now or parks to answer when woken; `last` makes
    /// it the final try (its wait is over).
    fn attempt(self: Arc<Self>, answer: &Answer, last: bool) {
        let waiter = (!last && Instant::now() < self.deadline).then(|| {
            let (poll, answer) = (Arc::clone(&self), answer.clone());
            let (claim_id, types) = (self.req.claim_id.clone(), self.req.types.clone());
            let client = answer.clone();
            Waiter::new(claim_id, types, self.deadline, move |wake| {
                answer.resume(move |answer| poll.woken(wake, &answer));
            })
            .until_gone(move || client.client_gone())
        });
        match self.store.claim(&self.req, waiter) {
            Ok(Claim::Parked) => {}
            Ok(Claim::Tasks(tasks)) => self.hand_out(tasks, answer),
            Err(e) => answer.send(refusal(e)),
        }
    }

    /// Sends the tasks claimed, unless the client has gone: then they go
    /// back at once instead of waiting, leased to nobody, for their lease.
    fn hand_out(&self, tasks: Vec<Task>, answer: &Answer) {
        let handed = tasks
            .iter()
            .map(|t| (t.id.clone(), t.attempt.unwrap_or(0)))
            .collect();
        *self.handed() = handed;
        // After `handed` is set: a hang-up noticed from now on finds it.
        if answer.client_gone() {
            self.put_back();
            return;
        }
        answer.send(claimed(tasks, self.batch));
    }

    /// Its client hung up before its answer was written whole: the waiter
    /// goes, and so do the tasks the answer held.
    fn client_gone(&self) {
        self.store.forget_gone();
        self.put_back();
    }

    /// Puts back what was handed out, once (whoever comes first takes it).
    fn put_back(&self) {
        let handed = std::mem::take(&mut *self.handed());
        if handed.is_empty() {
            return;
        }
        match self.store.release(&self.req.worker_id, &handed) {
            Ok(n) => log::debug!(
                "{n} task(s) for {} put back: its client hung up",
                self.req.worker_id
            ),
            // Their lease puts them back in the end.
            Err(e) => log::warn!(
                "tasks for {} not put back after its client hung up: {e}",
                self.req.worker_id
            ),
        }
    }

    fn handed(&self) -> std::sync::MutexGuard<'_, Vec<(String, u32)>> {
        self.handed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn woken(self: Arc<Self>, wake: Wake, answer: &Answer) {
        if answer.client_gone() {
            // Hung up after the wake: a task it was for goes to another.
            if wake == Wake::Check {
                self.store.pass_on(self.req.types.as_deref());
            }
            return;
        }
        match wake {
            Wake::Check => self.attempt(answer, false),
            Wake::Expired => self.attempt(answer, true),
            Wake::Cancelled | Wake::Stopped => answer.send(claimed(Vec::new(), self.batch)),
        }
    }
}

/// The answer to a claim: "no task", a batch, or one task.
fn claimed(mut tasks: Vec<Task>, batch: bool) -> Response {
    if tasks.is_empty() {
        Response::error(404, "no task available")
    } else if batch {
        Response::json(200, &json!({ "tasks": tasks }))
    } else {
        Response::json(200, &json!({ "task": tasks.swap_remove(0) }))
    }
}

/// The answer to a route this server does not have. A claim's 404 means
/// "no task" to a worker, so the body says plainly that the path is wrong,
/// where the routes are, and, in `no_route`, which path was asked for.
fn no_route(method: &str, path: &str) -> Response {
    Response::json(
        404,
        &json!({
            "error": format!(
                "no route for {method} {path}: not a task API path (this is not \"no task\"); \
                 the routes of this server start at its root, such as POST /tasks/claim and GET /health"
            ),
            "no_route": path,
        }),
    )
}

/// The `Allow` header for a route that exists, `None` for one that does not.
fn allowed(route: &[&str], ext: bool) -> Option<&'static str> {
    match route {
        ["health"] | ["metrics"] | ["types"] | ["workers"] | ["stats"] => Some("GET, HEAD"),
        ["tasks"] => Some("GET, HEAD, POST"),
        ["types", t, "pause" | "resume"] if !t.is_empty() => Some("POST"),
        ["tasks", "claim"] => Some("POST"),
        ["tasks", "claim", "cancel"] if ext => Some("POST"),
        ["tasks", "report"] => ext.then_some("POST"),
        ["tasks", id] if !id.is_empty() => Some("GET, HEAD, DELETE"),
        ["tasks", id, "complete" | "fail"] if !id.is_empty() => Some("POST"),
        ["tasks", id, "cancel" | "retry"] if !id.is_empty() && *id != "claim" => Some("POST"),
        ["tasks", id, "heartbeat"] if ext && !id.is_empty() => Some("POST"),
        _ => None,
    }
}

/// A store's refusal as a status and a JSON body.
pub fn refusal(e: StoreError) -> Response {
    match e {
        StoreError::Report(ReportError::Gone(_)) => Response::error(410, e.to_string()),
        StoreError::Report(ReportError::NotFound(_)) => Response::error(404, e.to_string()),
        StoreError::Report(ReportError::Conflict(_)) => Response::error(409, e.to_string()),
        StoreError::NotDurable(_) => Response::error(503, e.to_string()),
        StoreError::Unavailable { retry_after, .. } => {
            let secs = retry_after.as_secs().max(1).to_string();
            Response::error(503, e.to_string()).with_header("Retry-After", secs)
        }
    }
}

/// Equal-length inputs take the same time whatever their contents; the
/// length itself is not secret.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn an_unknown_route_says_so_and_names_the_path() {
        let response = no_route("POST", "/v1/tasks/claim");
        assert_eq!(response.status, 404);
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["no_route"], "/v1/tasks/claim");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with("no route for POST /v1/tasks/claim:"),
            "{error}"
        );
        assert!(error.contains("GET /health"), "{error}");
    }

    #[test]
    fn allow_lists_only_real_routes() {
        assert_eq!(allowed(&["tasks", "claim"], true), Some("POST"));
        assert_eq!(allowed(&["tasks", "claim", "cancel"], false), None);
        assert_eq!(allowed(&["nope"], true), None);
    }
}
