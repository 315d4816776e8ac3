//! HTTP routing: checks the key, decodes each request, calls the store and
//! turns its answer or refusal into a status and a JSON body.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::clock::rfc3339;
use super::decode::{self, Fields};
use super::metrics;
use super::queue::ReportError;
use super::record::Status;
use super::store::{Store, StoreError};
use crate::listener::{Head, Request, Responder, Response};
use crate::task::decode_path_segment;

/// The longest long poll granted, whatever is asked.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// `GET /tasks` lists this many when no `limit` is given.
const DEFAULT_LIST_LIMIT: usize = 100;

/// The routes of one server.
pub struct Routes {
    store: Arc<dyn Store>,
    api_key: Option<String>,
    extensions: bool,
}

impl Routes {
    /// Routes onto `store`; `extensions` false makes the server core-only.
    pub fn new(store: Arc<dyn Store>, api_key: Option<String>, extensions: bool) -> Routes {
        Routes {
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
            (["tasks"], "GET") => self.list(&req),
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

    fn claim(&self, f: &Fields) -> Result<Response, String> {
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
        Ok(match self.store.claim(&req, wait) {
            Ok(tasks) if tasks.is_empty() => Response::error(404, "no task available"),
            Ok(tasks) if batch => Response::json(200, &json!({ "tasks": tasks })),
            Ok(mut tasks) => Response::json(200, &json!({ "task": tasks.swap_remove(0) })),
            Err(e) => refusal(e),
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
        Ok(match self.store.complete(id, body) {
            Ok(()) => Response::json(200, &json!({ "id": id, "status": "completed" })),
            Err(e) => refusal(e),
        })
    }

    fn fail(&self, id: &str, f: &Fields) -> Result<Response, String> {
        let body = decode::fail(f)?;
        Ok(match self.store.fail(id, &body) {
            Ok(status) => Response::json(200, &json!({ "id": id, "status": status.as_str() })),
            Err(e) => refusal(e),
        })
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

    fn list(&self, req: &Request) -> Response {
        let mut status = None;
        let mut task_type = None;
        let mut limit = DEFAULT_LIST_LIMIT;
        for pair in req.head.query().split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(value) = decode_path_segment(&raw.replace('+', " ")) else {
                return Response::error(400, format!("query `{key}`: malformed percent-encoding"));
            };
            match key {
                "status" if value.is_empty() => {}
                "status" => match Status::parse(&value) {
                    Some(s) => status = Some(s),
                    None => {
                        return Response::error(
                            400,
                            "query `status`: expected queued, claimed, completed or failed",
                        )
                    }
                },
                "type" if !value.is_empty() => task_type = Some(value),
                "limit" => match value.parse::<usize>() {
                    Ok(n) => limit = n,
                    Err(_) => {
                        return Response::error(400, "query `limit`: expected a whole number")
                    }
                },
                _ => {}
            }
        }
        match self.store.list(status, task_type.as_deref(), limit) {
            Ok(tasks) => Response::json(200, &json!({ "tasks": Value::Array(tasks) })),
            Err(e) => refusal(e),
        }
    }
}

impl Responder for Routes {
    /// Every route but `/health` needs the key, checked before the body is read.
    fn check_head(&self, head: &Head) -> Option<Response> {
        let open = head.path().trim_start_matches('/') == "health";
        (!open && !self.authorized(head)).then(|| {
            Response::error(401, "missing or wrong API key")
                .with_header("WWW-Authenticate", "Bearer")
        })
    }

    fn respond(&self, request: Request) -> Response {
        self.handle(request)
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
        ["health"] | ["metrics"] => Some("GET, HEAD"),
        ["tasks"] => Some("GET, HEAD, POST"),
        ["tasks", "claim"] => Some("POST"),
        ["tasks", "claim", "cancel"] if ext => Some("POST"),
        ["tasks", "report"] => ext.then_some("POST"),
        ["tasks", id] if !id.is_empty() => Some("GET, HEAD"),
        ["tasks", id, "complete" | "fail"] if !id.is_empty() => Some("POST"),
        ["tasks", id, "heartbeat"] if ext && !id.is_empty() => Some("POST"),
        _ => None,
    }
}

fn refusal(e: StoreError) -> Response {
    match e {
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
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
