//! One task's page: its fields, parameters and result as formatted JSON,
//! its error and traceback, every attempt, and the buttons its status
//! allows (retry, cancel, delete), each a POST with the CSRF token.

use serde_json::Value;

use super::html::{csrf_field, field, status_badge, url_part, Html};
use super::tasks::{list_href, worker_link, Filter};
use super::{error_page, redirect, Page, PageError, View};
use crate::listener::Response;
use crate::server::queue::ReportError;
use crate::server::record::Status;
use crate::server::store::{Store, StoreError};

/// What a button on a task's page does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Queue a failed or cancelled task again.
    Retry,
    /// Stop a task that waits or runs.
    Cancel,
    /// Remove a task that does not run.
    Delete,
}

impl Action {
    const ALL: [Action; 3] = [Action::Retry, Action::Cancel, Action::Delete];

    /// The action a path's last segment names.
    pub(crate) fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The path segment and button text.
    fn name(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::Delete => "delete",
        }
    }

    /// Whether a task in `status` (its wire name) can take this action.
    fn allowed(self, status: &str) -> bool {
        match self {
            Action::Retry => matches!(status, "failed" | "cancelled" | "expired"),
            Action::Cancel => matches!(status, "scheduled" | "queued" | "claimed"),
            Action::Delete => status != "claimed",
        }
    }
}

/// The page of task `id`.
pub(crate) fn render(store: &dyn Store, view: &View<'_>, id: &str) -> Result<Page, PageError> {
    let task = store.get(id)?.ok_or(PageError::NotFound)?;
    let status = field(&task, "status");
    let mut h = Html::new();
    h.raw("<p>");
    status_badge(&mut h, status);
    h.raw("</p>");
    actions(&mut h, view, id, status);
    fields(&mut h, &task);
    json_block(&mut h, "Parameters", task.get("parameters"));
    if status == "completed" || task.get("result").is_some_and(|r| !r.is_null()) {
        json_block(&mut h, "Result", task.get("result"));
    }
    error(&mut h, &task);
    history(&mut h, &task);
    Ok(Page {
        title: format!("Task {id}"),
        current: Status::parse(status)
            .map_or_else(String::new, |s| super::html::status_href(s.as_str())),
        refresh: false,
        body: h.into_string(),
    })
}

fn actions(h: &mut Html, view: &View<'_>, id: &str, status: &str) {
    let allowed: Vec<Action> = Action::ALL
        .into_iter()
        .filter(|a| a.allowed(status))
        .collect();
    if allowed.is_empty() {
        return;
    }
    h.raw("<div class=\"actions\">");
    for action in allowed {
        h.raw("<form method=\"post\" class=\"inline\" action=\"/ui/tasks/")
            .raw(&url_part(id))
            .raw("/")
            .raw(action.name())
            .raw("\">");
        csrf_field(h, &view.live.csrf);
        let class = if action == Action::Retry {
            ""
        } else {
            " class=\"danger\""
        };
        h.raw("<button type=\"submit\" name=\"do\" value=\"")
            .raw(action.name())
            .raw("\"")
            .raw(class)
            .raw(">")
            .raw(match action {
                Action::Retry => "Retry",
                Action::Cancel => "Cancel",
                Action::Delete => "Delete",
            })
            .raw("</button></form>");
    }
    h.raw("</div>");
}

fn fields(h: &mut Html, task: &Value) {
    h.raw("<dl class=\"fields\">");
    let task_type = field(task, "type");
    h.raw("<dt>ID</dt><dd>")
        .text(field(task, "id"))
        .raw("</dd>");
    h.raw("<dt>Type</dt><dd><a href=\"")
        .raw(&list_href(
            &Filter {
                task_type: Some(task_type),
                ..Filter::default()
            },
            None,
        ))
        .raw("\">")
        .text(task_type)
        .raw("</a></dd>");
    for (label, name) in [
        ("Priority", "priority"),
        ("Created", "created_at"),
        ("Runs at", "run_at"),
        ("Ready at", "ready_at"),
        ("Expires at", "expires_at"),
        ("Claimed at", "claimed_at"),
        ("Lease expires", "lease_expires_at"),
        ("Finished", "finished_at"),
    ] {
        let value = field(task, name);
        if !value.is_empty() {
            h.raw("<dt>")
                .raw(label)
                .raw("</dt><dd>")
                .text(value)
                .raw("</dd>");
        }
    }
    let worker = field(task, "claimed_by");
    if !worker.is_empty() {
        h.raw("<dt>Worker</dt><dd>");
        worker_link(h, worker);
        h.raw("</dd>");
    }
    let number = |name: &str| task.get(name).and_then(Value::as_u64);
    if let Some(attempt) = number("attempt") {
        h.raw("<dt>Attempt</dt><dd>").num(attempt);
        if let Some(max) = number("max_attempts") {
            h.raw(" of ").num(max);
        }
        h.raw("</dd>");
    }
    if let Some(t) = task.get("timeout_seconds").and_then(Value::as_f64) {
        h.raw("<dt>Timeout</dt><dd>").num(t).raw(" s</dd>");
    }
    h.raw("</dl>");
}

/// A JSON value, indented, as escaped text.
fn json_block(h: &mut Html, title: &str, value: Option<&Value>) {
    let text = serde_json::to_string_pretty(value.unwrap_or(&Value::Null)).unwrap_or_default();
    h.raw("<h2>")
        .raw(title)
        .raw("</h2><pre class=\"json\">")
        .text(&text)
        .raw("</pre>");
}

fn error(h: &mut Html, task: &Value) {
    let error = field(task, "error");
    if error.is_empty() {
        return;
    }
    h.raw("<h2>Error</h2><dl class=\"fields\"><dt>Error</dt><dd class=\"error\">")
        .text(error)
        .raw("</dd>");
    let error_type = field(task, "error_type");
    if !error_type.is_empty() {
        h.raw("<dt>Error type</dt><dd>")
            .text(error_type)
            .raw("</dd>");
    }
    h.raw("</dl>");
    let traceback = field(task, "traceback");
    if !traceback.is_empty() {
        h.raw("<h2>Traceback</h2><pre class=\"traceback\">")
            .text(traceback)
            .raw("</pre>");
    }
}

fn history(h: &mut Html, task: &Value) {
    let Some(attempts) = task.get("history").and_then(Value::as_array) else {
        return;
    };
    h.raw("<h2>Attempts</h2>");
    if attempts.is_empty() {
        h.raw("<p class=\"muted\">Not delivered yet.</p>");
        return;
    }
    h.raw(
        "<table><thead><tr><th class=\"num\">#</th><th>Worker</th><th>Started</th>\
           <th>Ended</th><th>Outcome</th><th>Error</th></tr></thead><tbody>",
    );
    for a in attempts {
        h.raw("<tr><td class=\"num\">")
            .num(a.get("attempt").and_then(Value::as_u64).unwrap_or(0))
            .raw("</td><td class=\"wrap\">");
        worker_link(h, field(a, "worker_id"));
        let outcome = field(a, "outcome");
        h.raw("</td><td>")
            .text(field(a, "claimed_at"))
            .raw("</td><td>")
            .text(field(a, "ended_at"))
            .raw("</td><td>")
            .text(if outcome.is_empty() {
                "running"
            } else {
                outcome
            })
            .raw("</td><td class=\"wrap\">");
        let error_type = field(a, "error_type");
        if !error_type.is_empty() {
            h.raw("<code>").text(error_type).raw("</code> ");
        }
        h.text(field(a, "error")).raw("</td></tr>");
    }
    h.raw("</tbody></table>");
}

/// Applies `action` to task `id`, then shows the task (or, once deleted,
/// the list of all tasks); a refusal (a status that does not allow it, a
/// task gone meanwhile) is a page that says so.
pub(crate) fn apply(store: &dyn Store, action: Action, id: &str) -> Response {
    let done = match action {
        Action::Retry => store.retry(id),
        Action::Cancel => store.cancel(id),
        Action::Delete => store.delete(id),
    };
    match done {
        Ok(()) if action == Action::Delete => redirect("/ui/tasks"),
        Ok(()) => redirect(&format!("/ui/tasks/{}", url_part(id))),
        Err(StoreError::Report(ReportError::NotFound(_))) => {
            error_page(404, "Not found", "There is no such task (any more).")
        }
        Err(StoreError::Report(e)) => error_page(
            409,
            "Not done",
            &format!("The task could not take \"{}\": {e}", action.name()),
        ),
        Err(e) => error_page(503, "The store cannot answer", &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_follow_the_status() {
        let names = |status: &str| -> Vec<&str> {
            Action::ALL
                .into_iter()
                .filter(|a| a.allowed(status))
                .map(Action::name)
                .collect()
        };
        assert_eq!(names("failed"), ["retry", "delete"]);
        assert_eq!(names("claimed"), ["cancel"]);
        assert_eq!(names("queued"), ["cancel", "delete"]);
        assert_eq!(names("completed"), ["delete"]);
        assert_eq!(Action::parse("retry"), Some(Action::Retry));
        assert_eq!(Action::parse("Retry"), None);
    }
}
