//! The overview: tasks by status, by priority and by type (with pause and
//! resume per type), completed and failed per minute over the last hour,
//! how long the oldest waiting task has waited, and the workers seen.

use super::chart::throughput_svg;
use super::html::{csrf_field, status_href, status_label, url_part, Html};
use super::tasks::{list_href, Filter};
use super::{Page, PageError, View};
use crate::server::admin::{priority_index, StatusCounts, PRIORITIES};
use crate::server::record::Status;
use crate::server::store::Store;

/// Types shown in the table: the most a page stays readable with.
const MAX_TYPES: usize = 200;

/// The overview page.
pub(crate) fn render(store: &dyn Store, view: &View<'_>) -> Result<Page, PageError> {
    let stats = store.stats()?;
    let types = store.types()?;
    let workers = store.workers()?;
    let mut h = Html::new();

    h.raw("<section class=\"cards\" aria-label=\"Tasks by status\">");
    for status in Status::ALL {
        h.raw("<a class=\"card\" id=\"count-")
            .raw(status.as_str())
            .raw("\" href=\"")
            .raw(&status_href(status.as_str()))
            .raw("\"><span class=\"n\">")
            .num(stats.counts.by_status[status.index()])
            .raw("</span><span class=\"l\">")
            .raw(status_label(status.as_str()))
            .raw("</span></a>");
    }
    h.raw("<a class=\"card\" id=\"count-workers\" href=\"/ui/workers\"><span class=\"n\">")
        .num(workers.len())
        .raw("</span><span class=\"l\">Workers seen</span></a></section>");

    h.raw("<p id=\"oldest\">Oldest waiting task: ");
    match stats.oldest_queued_ms {
        Some(ms) => h.raw("<strong>").raw(&age(ms)).raw("</strong>"),
        None => h.raw("none waits"),
    };
    h.raw("</p>");

    let (done, failed) = stats.throughput.iter().fold((0u64, 0u64), |(c, f), m| {
        (c.saturating_add(m.completed), f.saturating_add(m.failed))
    });
    h.raw("<h2>Last hour: ")
        .num(done)
        .raw(" completed, ")
        .num(failed)
        .raw(" failed</h2>")
        .raw(&throughput_svg(&stats.throughput));

    h.raw("<h2>By priority</h2><table class=\"counts\"><thead><tr><th>Priority</th>");
    counts_header(&mut h);
    h.raw("</tr></thead><tbody>");
    for p in PRIORITIES {
        h.raw("<tr><th>").raw(p.as_str()).raw("</th>");
        let filter = Filter {
            priority: Some(p),
            ..Filter::default()
        };
        counts_row(&mut h, &stats.counts.by_priority[priority_index(p)], filter);
        h.raw("</tr>");
    }
    h.raw("</tbody></table>");

    h.raw("<h2>By type</h2>");
    if types.is_empty() {
        h.raw("<p class=\"muted\">No tasks yet.</p>");
    } else {
        h.raw("<table class=\"counts\"><thead><tr><th>Type</th>");
        counts_header(&mut h);
        h.raw("<th></th></tr></thead><tbody>");
        for t in types.iter().take(MAX_TYPES) {
            let filter = Filter {
                task_type: Some(&t.task_type),
                ..Filter::default()
            };
            h.raw("<tr><th class=\"wrap\"><a href=\"")
                .raw(&list_href(&filter, None))
                .raw("\">")
                .text(&t.task_type)
                .raw("</a>");
            if t.paused {
                h.raw(" <span class=\"status paused\">paused</span>");
            }
            h.raw("</th>");
            counts_row(&mut h, &t.counts, filter);
            let (action, label) = if t.paused {
                ("resume", "Resume")
            } else {
                ("pause", "Pause")
            };
            h.raw("<td><form method=\"post\" class=\"inline\" action=\"/ui/types/")
                .raw(&url_part(&t.task_type))
                .raw("/")
                .raw(action)
                .raw("\">");
            csrf_field(&mut h, &view.live.csrf);
            h.raw("<button type=\"submit\">")
                .raw(label)
                .raw("</button></form></td></tr>");
        }
        h.raw("</tbody></table>");
        if types.len() > MAX_TYPES {
            h.raw("<p class=\"muted\">")
                .num(types.len() - MAX_TYPES)
                .raw(" more types not shown.</p>");
        }
    }
    Ok(Page {
        title: "Overview".into(),
        current: "/ui".into(),
        refresh: true,
        body: h.into_string(),
    })
}

fn counts_header(h: &mut Html) {
    for status in Status::ALL {
        h.raw("<th class=\"num\">")
            .raw(status_label(status.as_str()))
            .raw("</th>");
    }
}

/// One cell per status, each count linking to its list under `filter`.
fn counts_row(h: &mut Html, counts: &StatusCounts, filter: Filter<'_>) {
    for status in Status::ALL {
        let n = counts[status.index()];
        h.raw("<td class=\"num\">");
        if n == 0 {
            h.raw("<span class=\"muted\">0</span>");
        } else {
            let filter = Filter {
                status: Some(status),
                ..filter
            };
            h.raw("<a href=\"")
                .raw(&list_href(&filter, None))
                .raw("\">")
                .num(n)
                .raw("</a>");
        }
        h.raw("</td>");
    }
}

/// A wait as people say it: `45 s`, `12 min 5 s`, `3 h 20 min`, `2 d 4 h`.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(age(999), "0 s");
        assert_eq!(age(45_000), "45 s");
        assert_eq!(age(725_000), "12 min 5 s");
        assert_eq!(age(12_000_000), "3 h 20 min");
        assert_eq!(
            age(u64::MAX),
            format!(
                "{} d {} h",
                u64::MAX / 1000 / 86_400,
                u64::MAX / 1000 % 86_400 / 3600
            )
        );
    }
}
