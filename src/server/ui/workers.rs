//! The workers page: one line per worker seen in the last hour (when it was
//! last seen, what it completed and failed), with links to the tasks it
//! runs now (among the newest hundred claimed; the Running list has all).

use std::collections::HashMap;

use super::html::{task_link, url_part, Html};
use super::{Page, PageError, View};
use crate::server::admin::ListQuery;
use crate::server::clock::rfc3339;
use crate::server::record::{Status, TaskRecord};
use crate::server::store::Store;

/// Running tasks linked from the page, the newest claimed: reading each
/// costs a Redis round trip's share, and a page of thousands of links helps
/// no one; the Running list has the rest.
const RUNNING_SHOWN: usize = 100;

/// The workers page.
pub(crate) fn render(store: &dyn Store, _view: &View<'_>) -> Result<Page, PageError> {
    let workers = store.workers()?;
    let running = store.page(&ListQuery {
        status: Some(Status::Claimed),
        limit: RUNNING_SHOWN,
        ..ListQuery::default()
    })?;
    let mut by_worker: HashMap<&str, Vec<&TaskRecord>> = HashMap::new();
    for task in &running.tasks {
        if let Some(lease) = &task.lease {
            by_worker.entry(&lease.worker_id).or_default().push(task);
        }
    }
    let mut h = Html::new();
    if workers.is_empty() {
        h.raw("<p class=\"muted\">No worker was seen in the last hour.</p>");
    } else {
        h.raw(
            "<table><thead><tr><th>Worker</th><th>Last seen</th><th class=\"num\">Running</th>\
               <th class=\"num\">Completed</th><th class=\"num\">Failed</th><th>Running now</th>\
               </tr></thead><tbody>",
        );
        for w in &workers {
            h.raw("<tr id=\"w-")
                .raw(&url_part(&w.worker_id))
                .raw("\"><td class=\"wrap\">")
                .text(&w.worker_id)
                .raw("</td><td>")
                .raw(&rfc3339(w.last_seen))
                .raw("</td><td class=\"num\">")
                .num(w.running)
                .raw("</td><td class=\"num\">")
                .num(w.completed)
                .raw("</td><td class=\"num\">")
                .num(w.failed)
                .raw("</td><td class=\"wrap\">");
            let shown = by_worker.get(w.worker_id.as_str()).map_or(0, Vec::len);
            for (i, task) in by_worker
                .get(w.worker_id.as_str())
                .into_iter()
                .flatten()
                .enumerate()
            {
                if i > 0 {
                    h.raw(", ");
                }
                task_link(&mut h, &task.id);
                h.raw(" <span class=\"muted\">")
                    .text(&task.task_type)
                    .raw("</span>");
            }
            let more = w.running.saturating_sub(shown as u64);
            if more > 0 {
                h.raw(" <a href=\"/ui/tasks?status=claimed\">and ")
                    .num(more)
                    .raw(" more</a>");
            }
            h.raw("</td></tr>");
        }
        h.raw("</tbody></table>");
    }
    Ok(Page {
        title: "Workers".into(),
        current: "/ui/workers".into(),
        refresh: true,
        body: h.into_string(),
    })
}
