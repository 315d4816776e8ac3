//! The overview: how many tasks are in each status, the server's event
//! counters, and the links into each list.

use super::html::{status_href, status_label, Html};
use super::{Page, PageError, View};
use crate::server::record::Status;
use crate::server::store::Store;

/// The overview page.
pub(crate) fn render(store: &dyn Store, _view: &View<'_>) -> Result<Page, PageError> {
    let snapshot = store.snapshot()?;
    let mut h = Html::new();
    h.raw("<section class=\"cards\" aria-label=\"Tasks by status\">");
    for (status, count) in Status::ALL.iter().zip(snapshot.counts.iter()) {
        h.raw("<a class=\"card\" id=\"count-")
            .raw(status.as_str())
            .raw("\" href=\"")
            .raw(&status_href(status.as_str()))
            .raw("\"><span class=\"n\">")
            .num(count)
            .raw("</span><span class=\"l\">")
            .raw(status_label(status.as_str()))
            .raw("</span></a>");
    }
    h.raw("</section>");
    let t = &snapshot.totals;
    h.raw("<h2>Since the server started</h2><table class=\"totals\"><tbody>");
    for (label, n) in [
        ("Enqueued", t.enqueued),
        ("Delivered", t.delivered),
        ("Completed", t.completed),
        ("Failed", t.failed),
        ("Retried", t.retried),
        ("Leases expired", t.lease_expired),
    ] {
        h.raw("<tr><th>")
            .raw(label)
            .raw("</th><td class=\"num\">")
            .num(n)
            .raw("</td></tr>");
    }
    h.raw("<tr><th>Claims waiting now</th><td class=\"num\">")
        .num(snapshot.waiting)
        .raw("</td></tr></tbody></table>");
    Ok(Page {
        title: "Overview".into(),
        current: "/ui".into(),
        refresh: true,
        body: h.into_string(),
    })
}
