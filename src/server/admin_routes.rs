//! The operator's routes: `GET /tasks` with its filters and cursor, the
//! actions on one task (cancel, retry, delete), pausing and resuming a
//! type, and `GET /types`, `/workers` and `/stats`. Each reads its request,
//! calls the store and shapes the answer; refusals are the store's.

use serde_json::{json, Value};

use super::admin::{self, ListQuery};
use super::record::Status;
use super::routes::refusal;
use super::store::Store;
use crate::listener::Response;
use crate::task::{decode_path_segment, Priority};

/// `GET /tasks` lists this many when no `limit` is given.
const DEFAULT_LIMIT: usize = 100;
/// The longest task type accepted in a path, as in a body.
const MAX_TYPE: usize = 1024;

/// What an action on one task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /tasks/{id}/cancel`.
    Cancel,
    /// `POST /tasks/{id}/retry`.
    Retry,
    /// `DELETE /tasks/{id}`.
    Delete,
}

/// Reads the query of `GET /tasks`; the error names the parameter.
pub fn list_query(query: &str) -> Result<ListQuery, String> {
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        ..ListQuery::default()
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode_path_segment(&raw.replace('+', " "))
            .ok_or_else(|| format!("query `{key}`: malformed percent-encoding"))?;
        if value.is_empty() {
            continue;
        }
        match key {
            "status" => {
                q.status = Some(Status::parse(&value).ok_or_else(|| {
                    let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                    format!("query `status`: expected one of {}", names.join(", "))
                })?);
            }
            "type" => q.task_type = Some(value),
            "priority" => {
                q.priority = Some(
                    Priority::parse(&value)
                        .ok_or("query `priority`: expected high, medium or low")?,
                );
            }
            "limit" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| "query `limit`: expected a whole number")?;
                if n == 0 {
                    return Err("query `limit`: must be at least 1".into());
                }
                // Larger asks get the largest page: a client paging with
                // `next` still sees every task.
                q.limit = n.min(admin::MAX_PAGE);
            }
            "before" => {
                q.before = Some(
                    admin::parse_cursor(&value)
                        .ok_or("query `before`: not a `next` cursor of this server")?,
                );
            }
            _ => {}
        }
    }
    Ok(q)
}

/// `GET /tasks`: `{"tasks": [...], "next": cursor or null}`.
pub fn list(store: &dyn Store, query: &str) -> Response {
    let q = match list_query(query) {
        Ok(q) => q,
        Err(why) => return Response::error(400, why),
    };
    match store.page(&q) {
        Ok(page) => {
            let tasks: Vec<Value> = page.tasks.iter().map(|r| r.to_detail()).collect();
            let next = page.next.map(admin::cursor_text);
            Response::json(200, &json!({ "tasks": tasks, "next": next }))
        }
        Err(e) => refusal(e),
    }
}

/// Cancels, retries or deletes task `id`; answers with the task after it
/// (`{"deleted": id}` for a delete).
pub fn act(store: &dyn Store, id: &str, action: Action) -> Response {
    let done = match action {
        Action::Cancel => store.cancel(id),
        Action::Retry => store.retry(id),
        Action::Delete => store.delete(id),
    };
    if let Err(e) = done {
        return refusal(e);
    }
    if action == Action::Delete {
        return Response::json(200, &json!({ "deleted": id }));
    }
    match store.get(id) {
        Ok(Some(task)) => Response::json(200, &json!({ "task": task })),
        // Deleted by someone else meanwhile: the action was done all the same.
        Ok(None) => Response::json(200, &json!({ "task": null })),
        Err(e) => refusal(e),
    }
}

/// Pauses (`paused`) or resumes the type named by the path segment `raw`.
pub fn pause(store: &dyn Store, raw: &str, paused: bool) -> Response {
    let task_type = match decode_path_segment(raw) {
        Some(t) if !t.is_empty() && t.len() <= MAX_TYPE => t,
        _ => return Response::error(400, "malformed task type in path"),
    };
    match store.set_paused(&task_type, paused) {
        Ok(()) => Response::json(200, &json!({ "type": task_type, "paused": paused })),
        Err(e) => refusal(e),
    }
}

/// `GET /types`.
pub fn types(store: &dyn Store) -> Response {
    match store.types() {
        Ok(types) => Response::json(200, &admin::types_json(&types)),
        Err(e) => refusal(e),
    }
}

/// `GET /workers`.
pub fn workers(store: &dyn Store) -> Response {
    match store.workers() {
        Ok(workers) => Response::json(200, &admin::workers_json(&workers)),
        Err(e) => refusal(e),
    }
}

/// `GET /stats`.
pub fn stats(store: &dyn Store) -> Response {
    match store.stats() {
        Ok(stats) => Response::json(200, &admin::stats_json(&stats)),
        Err(e) => refusal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_reads_filters_and_names_bad_ones() {
        let q =
            list_query("status=queued&type=send%2Eemail&priority=high&limit=50&before=c9").unwrap();
        assert_eq!(q.status, Some(Status::Queued));
        assert_eq!(q.task_type.as_deref(), Some("send.email"));
        assert_eq!(
            (q.priority, q.limit, q.before),
            (Some(Priority::High), 50, Some(9))
        );
        assert_eq!(list_query("limit=100000").unwrap().limit, admin::MAX_PAGE);
        for (query, named) in [
            ("status=bogus", "`status`"),
            ("limit=0", "`limit`"),
            ("priority=urgent", "`priority`"),
            ("before=12", "`before`"),
        ] {
            let err = list_query(query).unwrap_err();
            assert!(err.contains(named), "{query}: {err}");
        }
    }
}
