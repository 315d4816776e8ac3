//! HTML by hand: escaping for text and attributes, percent-encoding for
//! URLs, and the layout every dashboard page shares. Everything a task
//! carries (type, id, parameters, result, error, worker id) reaches a page
//! only through [`Html::text`] or [`url_part`], never as markup.

use std::fmt::Write as _;

use crate::server::record::Status;
use crate::task::encode_path_segment;

/// A page under construction: markup written by the dashboard, text escaped.
#[derive(Debug, Default)]
pub(crate) struct Html {
    out: String,
}

impl Html {
    /// An empty page body with room for a typical page.
    pub(crate) fn new() -> Html {
        Html {
            out: String::with_capacity(8 * 1024),
        }
    }

    /// Appends markup written by the dashboard itself (never data).
    pub(crate) fn raw(&mut self, markup: &str) -> &mut Html {
        self.out.push_str(markup);
        self
    }

    /// Appends text, escaped for an element's content or a quoted attribute.
    pub(crate) fn text(&mut self, text: &str) -> &mut Html {
        escape_into(&mut self.out, text);
        self
    }

    /// Appends a number or other `Display` value that holds no markup.
    pub(crate) fn num(&mut self, value: impl std::fmt::Display) -> &mut Html {
        let _ = write!(self.out, "{value}");
        self
    }

    /// The markup so far.
    pub(crate) fn into_string(self) -> String {
        self.out
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'`: safe in element content and in
/// attribute values quoted either way.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// One path segment or query value percent-encoded: only letters, digits
/// and `-_.~` stay, so no value can end a path, start a query or become a
/// `javascript:` scheme.
pub(crate) fn url_part(value: &str) -> String {
    encode_path_segment(value)
}

/// A string field of a task's JSON view; empty when absent or not a string.
pub(crate) fn field<'a>(task: &'a serde_json::Value, name: &str) -> &'a str {
    task.get(name)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

/// A link to one task's page, its id as the text.
pub(crate) fn task_link(h: &mut Html, id: &str) {
    h.raw("<a href=\"/ui/tasks/")
        .raw(&url_part(id))
        .raw("\">")
        .text(id)
        .raw("</a>");
}

/// A status as a coloured label; the class is one of ours, never data.
pub(crate) fn status_badge(h: &mut Html, status: &str) {
    let class = Status::parse(status).map_or("other", Status::as_str);
    h.raw("<span class=\"status ")
        .raw(class)
        .raw("\">")
        .text(status_label(status))
        .raw("</span>");
}

/// The menu's name for a status: "claimed" is what a user calls running.
pub(crate) fn status_label(status: &str) -> &str {
    match status {
        "scheduled" => "Scheduled",
        "queued" => "Queued",
        "claimed" => "Running",
        "completed" => "Completed",
        "failed" => "Failed",
        "cancelled" => "Cancelled",
        "expired" => "Expired",
        other => other,
    }
}

/// The list page of one status.
pub(crate) fn status_href(status: &str) -> String {
    format!("/ui/tasks?status={}", url_part(status))
}

/// What the layout needs besides the page's own body.
pub(crate) struct Layout<'a> {
    /// The page's title, shown in the tab and as its heading.
    pub(crate) title: &'a str,
    /// The menu entry to mark as current (its href).
    pub(crate) current: &'a str,
    /// Reload the page every few seconds (script only; the page works without).
    pub(crate) refresh: bool,
    /// The session's CSRF token, for the log-out button; `None` hides it.
    pub(crate) logout_csrf: Option<&'a str>,
}

/// A whole document: head, menu, `body`. The stylesheet and script are the
/// dashboard's own files, so the page loads nothing from elsewhere.
pub(crate) fn document(layout: &Layout<'_>, body: &str) -> String {
    let mut h = Html::new();
    h.raw("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        .raw("<title>")
        .text(layout.title)
        .raw(" · taskworker</title>")
        .raw("<link rel=\"stylesheet\" href=\"/ui/style.css\">");
    if layout.refresh {
        h.raw("<script src=\"/ui/refresh.js\" defer></script>");
    }
    h.raw("</head><body><header><nav><span class=\"brand\">taskworker</span>");
    let statuses = Status::ALL
        .iter()
        .map(|s| (status_href(s.as_str()), status_label(s.as_str())));
    let menu = std::iter::once(("/ui".to_string(), "Overview"))
        .chain(statuses)
        .chain(std::iter::once(("/ui/workers".to_string(), "Workers")));
    for (href, name) in menu {
        let current = if href == layout.current {
            " aria-current=\"page\""
        } else {
            ""
        };
        h.raw("<a href=\"")
            .raw(&href)
            .raw("\"")
            .raw(current)
            .raw(">")
            .raw(name)
            .raw("</a>");
    }
    if let Some(csrf) = layout.logout_csrf {
        h.raw("<form method=\"post\" action=\"/ui/logout\" class=\"logout\">");
        csrf_field(&mut h, csrf);
        h.raw("<button type=\"submit\">Log out</button></form>");
    }
    h.raw("</nav></header><main><h1>")
        .text(layout.title)
        .raw("</h1>")
        .raw(body)
        .raw("</main></body></html>\n");
    h.into_string()
}

/// The hidden field that carries the CSRF token in every form that acts.
pub(crate) fn csrf_field(h: &mut Html, token: &str) {
    h.raw("<input type=\"hidden\" name=\"csrf\" value=\"")
        .text(token)
        .raw("\">");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_no_markup_and_no_way_out_of_an_attribute() {
        let hostile = r#"<script>x</script><img src=x onerror="a('b')">&amp;"#;
        let mut out = String::new();
        escape_into(&mut out, hostile);
        assert_eq!(
            out,
            "&lt;script&gt;x&lt;/script&gt;&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;amp;"
        );
        assert!(!out.contains(['<', '>', '"', '\'']));
    }

    #[test]
    fn url_parts_cannot_leave_their_segment() {
        assert_eq!(url_part("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(url_part("javascript:alert(1)"), "javascript%3Aalert%281%29");
        assert_eq!(url_part(".."), "%2E%2E");
    }

    #[test]
    fn the_document_escapes_its_title_and_marks_the_current_page() {
        let layout = Layout {
            title: "<b>",
            current: "/ui/workers",
            refresh: false,
            logout_csrf: None,
        };
        let doc = document(&layout, "<p>body</p>");
        assert!(
            doc.contains("<title>&lt;b&gt; · taskworker</title>"),
            "{doc}"
        );
        assert!(doc.contains("<a href=\"/ui/workers\" aria-current=\"page\">Workers</a>"));
        assert!(!doc.contains("refresh.js") && !doc.contains("logout"));
    }
}
