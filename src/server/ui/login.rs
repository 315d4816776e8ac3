//! The login page: one field for the server's API key. The key never comes
//! back in the page, not even after a wrong try.

use super::html::{document, Html, Layout};

/// The login form, with `problem` above it after a wrong key.
pub(crate) fn render(problem: Option<&str>) -> String {
    let mut h = Html::new();
    if let Some(problem) = problem {
        h.raw("<p class=\"notice bad\" role=\"alert\">")
            .text(problem)
            .raw("</p>");
    }
    h.raw(
        "<form method=\"post\" action=\"/ui/login\" class=\"login\">\
         <label for=\"key\">API key of this server</label>\
         <input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"current-password\" \
         required autofocus>\
         <button type=\"submit\">Log in</button></form>\
         <p class=\"hint\">The key given to <code>taskworker serve --api-key</code>. \
         The browser keeps a session cookie, not the key.</p>",
    );
    let layout = Layout {
        title: "Log in",
        current: "",
        refresh: false,
        logout_csrf: None,
    };
    document(&layout, &h.into_string())
}
