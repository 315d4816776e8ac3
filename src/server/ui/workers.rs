//! The workers page: one line per worker, with the tasks it runs now,
//! each linked to its page.

use std::collections::BTreeMap;

use serde_json::Value;

use super::html::{field, task_link, url_part, Html};
use super::{Page, PageError, View};
use crate::server::record::Status;
use crate::server::store::Store;

/// Running tasks read to find the workers: more than any fleet runs at once.
const MAX_RUNNING: usize = 10_000;

/// The workers page.
pub(crate) fn render(store: &dyn Store, _view: &View<'_>) -> Result<Page, PageError> {
    let running = store.list(Some(Status::Claimed), None, MAX_RUNNING)?;
    let mut by_worker: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for task in &running {
        by_worker
            .entry(field(task, "claimed_by"))
            .or_default()
            .push(task);
    }
    let mut h = Html::new();
    if by_worker.is_empty() {
        h.raw("<p class=\"muted\">No worker runs a task now.</p>");
    } else {
        h.raw(
            "<table><thead><tr><th>Worker</th><th class=\"num\">Running</th>\
               <th>Tasks</th></tr></thead><tbody>",
        );
        for (worker, tasks) in &by_worker {
            h.raw("<tr id=\"w-")
                .raw(&url_part(worker))
                .raw("\"><td class=\"wrap\">")
                .text(worker)
                .raw("</td><td class=\"num\">")
                .num(tasks.len())
                .raw("</td><td class=\"wrap\">");
            for (i, task) in tasks.iter().enumerate() {
                if i > 0 {
                    h.raw(", ");
                }
                task_link(&mut h, field(task, "id"));
                h.raw(" <span class=\"muted\">")
                    .text(field(task, "type"))
                    .raw("</span>");
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
