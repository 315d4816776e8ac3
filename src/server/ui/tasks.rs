//! The task lists: one status (or all), newest first, filtered by type and
//! priority, a page at a time from the store's cursor, with the columns
//! that status has (the worker and lease of running tasks, the error of
//! failed ones, the start of scheduled ones).

use super::html::{status_badge, status_href, status_label, task_link, url_part, Html};
use super::{Page, PageError, View};
use crate::server::admin::{cursor_text, parse_cursor, ListQuery};
use crate::server::clock::rfc3339;
use crate::server::record::{Status, TaskRecord};
use crate::server::store::Store;
use crate::task::Priority;

/// Tasks on one page.
pub(crate) const PER_PAGE: usize = 50;

/// The filters of a list, as its URL carries them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Filter<'a> {
    /// Only this status.
    pub(crate) status: Option<Status>,
    /// Only this type.
    pub(crate) task_type: Option<&'a str>,
    /// Only this priority.
    pub(crate) priority: Option<Priority>,
}

/// The list page for the view's `status`, `type`, `priority` and cursor
/// (`before`, the store's: a page never shows a task twice or skips one).
pub(crate) fn render(store: &dyn Store, view: &View<'_>) -> Result<Page, PageError> {
    let q = &view.query;
    let parse = |name: &str, parse: fn(&str) -> Option<_>| match q.get(name) {
        None => Ok(None),
        Some(text) => parse(text).map(Some).ok_or(PageError::NotFound),
    };
    let filter = Filter {
        status: parse("status", Status::parse)?,
        task_type: q.get("type"),
        priority: q
            .get("priority")
            .map(|p| Priority::parse(p).ok_or(PageError::NotFound))
            .transpose()?,
    };
    let before = q.get("before").and_then(parse_cursor);
    let page = store.page(&ListQuery {
        status: filter.status,
        task_type: filter.task_type.map(str::to_string),
        priority: filter.priority,
        limit: PER_PAGE,
        before,
    })?;

    let name = filter
        .status
        .map_or("All tasks", |s| status_label(s.as_str()));
    let mut h = Html::new();
    filter_form(&mut h, &filter);
    if page.tasks.is_empty() {
        h.raw("<p class=\"muted\">No tasks here.</p>");
    } else {
        table(&mut h, &filter, &page.tasks);
    }
    h.raw("<nav class=\"pager\">");
    if before.is_some() {
        h.raw("<a href=\"")
            .raw(&list_href(&filter, None))
            .raw("\">&larr; newest</a>");
    }
    if let Some(next) = page.next {
        h.raw("<a rel=\"next\" href=\"")
            .raw(&list_href(&filter, Some(next)))
            .raw("\">older &rarr;</a>");
    }
    h.raw("</nav>");
    let mut title = name.to_string();
    for part in [filter.task_type, filter.priority.map(Priority::as_str)]
        .into_iter()
        .flatten()
    {
        title.push_str(": ");
        title.push_str(part);
    }
    Ok(Page {
        title,
        current: filter
            .status
            .map_or_else(String::new, |s| status_href(s.as_str())),
        refresh: true,
        body: h.into_string(),
    })
}

fn filter_form(h: &mut Html, filter: &Filter<'_>) {
    h.raw("<form method=\"get\" action=\"/ui/tasks\" class=\"filter\">");
    if let Some(s) = filter.status {
        h.raw("<input type=\"hidden\" name=\"status\" value=\"")
            .raw(s.as_str())
            .raw("\">");
    }
    h.raw("<label for=\"type\">Type</label><input id=\"type\" name=\"type\" value=\"")
        .text(filter.task_type.unwrap_or(""))
        .raw(
            "\" placeholder=\"any\"><label for=\"priority\">Priority</label>\
              <select id=\"priority\" name=\"priority\"><option value=\"\">any</option>",
        );
    for p in [Priority::High, Priority::Medium, Priority::Low] {
        let selected = if filter.priority == Some(p) {
            " selected"
        } else {
            ""
        };
        h.raw("<option")
            .raw(selected)
            .raw(">")
            .raw(p.as_str())
            .raw("</option>");
    }
    h.raw("</select><button type=\"submit\">Filter</button>");
    if filter.task_type.is_some() || filter.priority.is_some() {
        let all = Filter {
            status: filter.status,
            ..Filter::default()
        };
        h.raw("<a href=\"")
            .raw(&list_href(&all, None))
            .raw("\">clear</a>");
    }
    h.raw("</form>");
}

fn table(h: &mut Html, filter: &Filter<'_>, tasks: &[TaskRecord]) {
    let status = filter.status;
    let extra: &[&str] = match status {
        None => &["Status"],
        Some(Status::Claimed) => &["Worker", "Claimed at", "Lease expires"],
        Some(Status::Failed) => &["Error type", "Error"],
        Some(Status::Scheduled) => &["Runs at"],
        Some(Status::Queued) => &["Ready at"],
        Some(_) => &["Finished"],
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
        task_link(h, &task.id);
        h.raw("</td><td class=\"wrap\">");
        let by_type = Filter {
            task_type: Some(&task.task_type),
            ..*filter
        };
        h.raw("<a href=\"")
            .raw(&list_href(&by_type, None))
            .raw("\">")
            .text(&task.task_type)
            .raw("</a></td><td>")
            .raw(task.priority.as_str())
            .raw("</td><td>")
            .raw(&rfc3339(task.created_at))
            .raw("</td><td class=\"num\">")
            .num(task.attempt)
            .raw("</td>");
        match status {
            None => {
                h.raw("<td>");
                status_badge(h, task.status.as_str());
                h.raw("</td>");
            }
            Some(Status::Claimed) => {
                let lease = task.lease.as_ref();
                h.raw("<td class=\"wrap\">");
                worker_link(h, lease.map_or("", |l| l.worker_id.as_str()));
                h.raw("</td><td>")
                    .raw(&lease.map_or_else(String::new, |l| rfc3339(l.claimed_at)))
                    .raw("</td><td>")
                    .raw(&lease.map_or_else(String::new, |l| rfc3339(l.expires_at)))
                    .raw("</td>");
            }
            Some(Status::Failed) => {
                let error = task.error.as_ref();
                h.raw("<td>")
                    .text(error.and_then(|e| e.error_type.as_deref()).unwrap_or(""))
                    .raw("</td><td class=\"wrap\">")
                    .text(&first_line(error.map_or("", |e| e.error.as_str()), 160))
                    .raw("</td>");
            }
            Some(Status::Scheduled) => {
                h.raw("<td>").raw(&rfc3339(task.ready_at)).raw("</td>");
            }
            Some(Status::Queued) if task.ready_at > task.created_at => {
                h.raw("<td>").raw(&rfc3339(task.ready_at)).raw("</td>");
            }
            Some(Status::Queued) => {
                h.raw("<td>now</td>");
            }
            Some(_) => {
                h.raw("<td>")
                    .raw(&task.finished_at.map_or_else(String::new, rfc3339))
                    .raw("</td>");
            }
        }
        h.raw("</tr>");
    }
    h.raw("</tbody></table>");
}

/// A worker id, linked to its line on the workers page.
pub(crate) fn worker_link(h: &mut Html, worker: &str) {
    h.raw("<a href=\"/ui/workers#w-")
        .raw(&url_part(worker))
        .raw("\">")
        .text(worker)
        .raw("</a>");
}

/// The list's URL with these filters, from the cursor `before` (the
/// newest page without); every value percent-encoded, so the result is
/// safe in an attribute as it is.
pub(crate) fn list_href(filter: &Filter<'_>, before: Option<u64>) -> String {
    let mut query = Vec::new();
    if let Some(s) = filter.status {
        query.push(format!("status={}", s.as_str()));
    }
    if let Some(t) = filter.task_type {
        query.push(format!("type={}", url_part(t)));
    }
    if let Some(p) = filter.priority {
        query.push(format!("priority={}", p.as_str()));
    }
    if let Some(cursor) = before {
        query.push(format!("before={}", cursor_text(cursor)));
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
        assert_eq!(list_href(&Filter::default(), None), "/ui/tasks");
        let filter = Filter {
            status: Some(Status::Failed),
            task_type: Some("a&b <c>"),
            priority: Some(Priority::Low),
        };
        assert_eq!(
            list_href(&filter, Some(7)),
            "/ui/tasks?status=failed&amp;type=a%26b%20%3Cc%3E&amp;priority=low&amp;before=c7"
        );
    }

    #[test]
    fn first_line_cuts_long_errors() {
        assert_eq!(first_line("one\ntwo", 10), "one");
        assert_eq!(first_line("abcdef", 3), "abc…");
        assert_eq!(first_line("", 3), "");
    }
}
