//! The task lists: one status (or all), newest first, filtered by type, a
//! page at a time, with the columns that status has (the worker and lease
//! of running tasks, the error of failed ones, the start of scheduled ones).

use serde_json::Value;

use super::html::{field, status_badge, status_href, status_label, task_link, url_part, Html};
use super::{Page, PageError, View};
use crate::server::record::Status;
use crate::server::store::Store;

/// Tasks on one page.
pub(crate) const PER_PAGE: usize = 50;
/// The last page that can be asked for: 100,000 tasks deep.
const MAX_PAGE: usize = 2000;

/// The list page for the view's `status`, `type` and `page`.
pub(crate) fn render(store: &dyn Store, view: &View<'_>) -> Result<Page, PageError> {
    let status = match view.query.get("status") {
        None => None,
        Some(name) => Some(Status::parse(name).ok_or(PageError::NotFound)?),
    };
    let task_type = view.query.get("type");
    let page = view.query.page("page", MAX_PAGE);
    let skip = (page - 1) * PER_PAGE;
    let mut tasks = store.list(status, task_type, skip + PER_PAGE + 1)?;
    let more = tasks.len() > skip + PER_PAGE;
    let shown: Vec<Value> = tasks.drain(..).skip(skip).take(PER_PAGE).collect();

    let name = status.map_or("All tasks", |s| status_label(s.as_str()));
    let mut h = Html::new();
    filter_form(&mut h, status, task_type);
    if shown.is_empty() {
        h.raw("<p class=\"muted\">No tasks here.</p>");
    } else {
        table(&mut h, status, &shown);
    }
    pager(&mut h, status, task_type, page, more);
    let title = match task_type {
        Some(t) => format!("{name}: {t}"),
        None => name.to_string(),
    };
    Ok(Page {
        title,
        current: status.map_or_else(String::new, |s| status_href(s.as_str())),
        refresh: true,
        body: h.into_string(),
    })
}

fn filter_form(h: &mut Html, status: Option<Status>, task_type: Option<&str>) {
    h.raw("<form method=\"get\" action=\"/ui/tasks\" class=\"filter\">");
    if let Some(s) = status {
        h.raw("<input type=\"hidden\" name=\"status\" value=\"")
            .raw(s.as_str())
            .raw("\">");
    }
    h.raw("<label for=\"type\">Type</label><input id=\"type\" name=\"type\" value=\"")
        .text(task_type.unwrap_or(""))
        .raw("\" placeholder=\"any\"><button type=\"submit\">Filter</button>");
    if task_type.is_some() {
        h.raw("<a href=\"")
            .raw(&list_href(status, None, 1))
            .raw("\">all types</a>");
    }
    h.raw("</form>");
}

fn table(h: &mut Html, status: Option<Status>, tasks: &[Value]) {
    let extra: &[&str] = match status {
        None => &["Status"],
        Some(Status::Claimed) => &["Worker", "Claimed at", "Lease expires"],
        Some(Status::Failed) => &["Error type", "Error"],
        Some(Status::Queued) => &["Ready at"],
        Some(_) => &[],
    };
    h.raw(
        "<table><thead><tr><th>ID</th><th>Type</th><th>Priority</th><th>Created</th>\
           <th class=\"num\">Attempt</th>",
    );
    for name in extra {
        h.raw("<th>").raw(name).raw("</th>");
    }
    h.raw("</tr></thead><tbody>");
    for task in tasks {
        h.raw("<tr><td class=\"id\">");
        task_link(h, field(task, "id"));
        h.raw("</td><td class=\"wrap\">");
        type_link(h, status, field(task, "type"));
        h.raw("</td><td>")
            .text(field(task, "priority"))
            .raw("</td><td>")
            .text(field(task, "created_at"))
            .raw("</td><td class=\"num\">")
            .num(task.get("attempt").and_then(Value::as_u64).unwrap_or(0))
            .raw("</td>");
        match status {
            None => {
                h.raw("<td>");
                status_badge(h, field(task, "status"));
                h.raw("</td>");
            }
            Some(Status::Claimed) => {
                h.raw("<td class=\"wrap\">");
                worker_link(h, field(task, "claimed_by"));
                h.raw("</td><td>")
                    .text(field(task, "claimed_at"))
                    .raw("</td><td>")
                    .text(field(task, "lease_expires_at"))
                    .raw("</td>");
            }
            Some(Status::Failed) => {
                h.raw("<td>")
                    .text(field(task, "error_type"))
                    .raw("</td><td class=\"wrap\">")
                    .text(&first_line(field(task, "error"), 160))
                    .raw("</td>");
            }
            Some(Status::Queued) => {
                let ready = field(task, "ready_at");
                h.raw("<td>")
                    .text(if ready.is_empty() { "now" } else { ready })
                    .raw("</td>");
            }
            Some(_) => {}
        }
        h.raw("</tr>");
    }
    h.raw("</tbody></table>");
}

/// A task type, linked to the same list filtered by it.
fn type_link(h: &mut Html, status: Option<Status>, task_type: &str) {
    h.raw("<a href=\"")
        .raw(&list_href(status, Some(task_type), 1))
        .raw("\">")
        .text(task_type)
        .raw("</a>");
}

/// A worker id, linked to its line on the workers page.
pub(crate) fn worker_link(h: &mut Html, worker: &str) {
    h.raw("<a href=\"/ui/workers#w-")
        .raw(&url_part(worker))
        .raw("\">")
        .text(worker)
        .raw("</a>");
}

fn pager(h: &mut Html, status: Option<Status>, task_type: Option<&str>, page: usize, more: bool) {
    h.raw("<nav class=\"pager\">");
    if page > 1 {
        h.raw("<a rel=\"prev\" href=\"")
            .raw(&list_href(status, task_type, page - 1))
            .raw("\">&larr; newer</a>");
    }
    h.raw("<span class=\"muted\">page ")
        .num(page)
        .raw("</span>");
    if more && page < MAX_PAGE {
        h.raw("<a rel=\"next\" href=\"")
            .raw(&list_href(status, task_type, page + 1))
            .raw("\">older &rarr;</a>");
    }
    h.raw("</nav>");
}

/// The list's URL with these filters; every value percent-encoded, so the
/// result is safe in an attribute as it is.
pub(crate) fn list_href(status: Option<Status>, task_type: Option<&str>, page: usize) -> String {
    let mut query = Vec::new();
    if let Some(s) = status {
        query.push(format!("status={}", s.as_str()));
    }
    if let Some(t) = task_type {
        query.push(format!("type={}", url_part(t)));
    }
    if page > 1 {
        query.push(format!("page={page}"));
    }
    if query.is_empty() {
        "/ui/tasks".into()
    } else {
        format!("/ui/tasks?{}", query.join("&amp;"))
    }
}

/// The first line of `text`, cut to `max` characters.
fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_hrefs_encode_the_type_and_escape_the_ampersand() {
        assert_eq!(list_href(None, None, 1), "/ui/tasks");
        assert_eq!(
            list_href(Some(Status::Failed), Some("a&b <c>"), 3),
            "/ui/tasks?status=failed&amp;type=a%26b%20%3Cc%3E&amp;page=3"
        );
    }

    #[test]
    fn first_line_cuts_long_errors() {
        assert_eq!(first_line("one\ntwo", 10), "one");
        assert_eq!(first_line("abcdef", 3), "abc…");
        assert_eq!(first_line("", 3), "");
    }
}
