//! The dashboard at `/ui`: server-rendered pages over the same [`Store`] as
//! the JSON API, with their own login (a session cookie) instead of the
//! API's Bearer key.
//!
//! - [`session`]: the login cookie and each session's CSRF token.
//! - [`html`]: escaping, URL parts and the layout; [`form`]: query strings
//!   and form bodies; [`chart`]: the throughput chart as inline SVG.
//! - One file per page: [`overview`], [`tasks`] (a status's list),
//!   [`task`] (one task and its actions), [`workers`], [`login`].
//!
//! Every page answers `GET` and `HEAD` and works without JavaScript (a
//! small script only reloads the lists); every action is a `POST` whose
//! form carries the session's CSRF token.

pub(crate) mod chart;
pub(crate) mod form;
pub(crate) mod html;
pub(crate) mod login;
pub(crate) mod overview;
pub(crate) mod session;
pub(crate) mod task;
pub(crate) mod tasks;
pub(crate) mod workers;

use std::sync::Arc;
use std::time::Instant;

use self::form::Form;
use self::html::{document, Layout};
use self::session::{Live, Sessions};
use super::store::{Store, StoreError};
use crate::listener::{Head, Request, Response};
use crate::task::decode_path_segment;

/// The stylesheet, carried inside the binary.
const STYLE: &str = include_str!("style.css");
/// Reloads a list page every few seconds while it is visible.
const REFRESH: &str = include_str!("refresh.js");

/// What the browser may load and do on a dashboard page: only the
/// dashboard's own stylesheet and script, no inline script or style, no
/// frames, forms only to the dashboard. A second wall behind escaping.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard of one server.
pub(crate) struct Ui {
    store: Arc<dyn Store>,
    key: Option<String>,
    sessions: Sessions,
}

/// A page's content before the layout wraps it.
pub(crate) struct Page {
    /// Title and heading.
    pub(crate) title: String,
    /// The menu entry it belongs to (an href of the menu).
    pub(crate) current: String,
    /// Whether the script may reload it.
    pub(crate) refresh: bool,
    /// The markup inside `<main>`, after the heading.
    pub(crate) body: String,
}

/// What a page may use of the request: its query and its session.
pub(crate) struct View<'a> {
    /// The query string's pairs.
    pub(crate) query: Form,
    /// The session, whose CSRF token goes into every form.
    pub(crate) live: &'a Live,
}

/// Whether a request may see a page, and how.
enum Gate {
    /// A live session; `Some(cookie)` when it was made just now.
    Open(Live, Option<String>),
    /// Refused: the answer to give instead (the login page, an error).
    Refused(Response),
}

impl Ui {
    /// The dashboard over `store`; with `key`, a browser must give it once.
    pub(crate) fn new(store: Arc<dyn Store>, key: Option<String>) -> Ui {
        Ui {
            store,
            key,
            sessions: Sessions::default(),
        }
    }

    /// Whether `path` is the dashboard's.
    pub(crate) fn owns(path: &str) -> bool {
        path == "/ui" || path.starts_with("/ui/")
    }

    /// Answers one request under `/ui`.
    pub(crate) fn respond(&self, req: &Request) -> Response {
        let path = req.head.path();
        let rest = path.strip_prefix("/ui").unwrap_or(path);
        let segments: Vec<&str> = rest.strip_prefix('/').unwrap_or(rest).split('/').collect();
        let method = match req.head.method.as_str() {
            "HEAD" => "GET",
            m => m,
        };
        match (segments.as_slice(), method) {
            (["style.css"], "GET") => asset("text/css; charset=utf-8", STYLE),
            (["refresh.js"], "GET") => asset("text/javascript; charset=utf-8", REFRESH),
            (["login"], "GET") => self.login_page(req),
            (["login"], "POST") => self.login(req),
            (["logout"], "POST") => self.act(req, |live| {
                self.sessions.end(&live.token);
                let secure = secure(&req.head);
                redirect("/ui/login").with_header("Set-Cookie", session::cleared_cookie(secure))
            }),
            ([""], "GET") => self.page(req, |view| overview::render(&*self.store, view)),
            (["tasks"], "GET") => self.page(req, |view| tasks::render(&*self.store, view)),
            (["workers"], "GET") => self.page(req, |view| workers::render(&*self.store, view)),
            (["tasks", id], "GET") if !id.is_empty() => match decode_path_segment(id) {
                Some(id) => self.page(req, |view| task::render(&*self.store, view, &id)),
                None => not_found(),
            },
            (["tasks", id, action], "POST") => {
                match (decode_path_segment(id), task::Action::parse(action)) {
                    (Some(id), Some(action)) => {
                        self.act(req, |_| task::apply(&*self.store, action, &id))
                    }
                    _ => not_found(),
                }
            }
            (["types", task_type, pause @ ("pause" | "resume")], "POST") => {
                match decode_path_segment(task_type) {
                    Some(t) if !t.is_empty() => {
                        self.act(req, |_| pause_type(&*self.store, &t, *pause == "pause"))
                    }
                    _ => not_found(),
                }
            }
            (route, _) => match allowed(route) {
                Some(allow) => error_page(
                    405,
                    "Method not allowed",
                    &format!("This address takes {allow}, not {}.", req.head.method),
                )
                .with_header("Allow", allow),
                None => not_found(),
            },
        }
    }

    /// The session of `req`, or what to answer instead. With no key a
    /// browser gets a session on its first visit, for its CSRF token.
    fn gate(&self, head: &Head, make: bool) -> Gate {
        let now = Instant::now();
        let found = head
            .header("Cookie")
            .and_then(session::token_in)
            .and_then(|token| self.sessions.find(token, now));
        match found {
            Some(live) => Gate::Open(live, None),
            None if self.key.is_some() || !make => Gate::Refused(match head.method.as_str() {
                "GET" | "HEAD" => redirect("/ui/login"),
                _ => error_page(
                    403,
                    "Not logged in",
                    "Your session has ended. Log in again and repeat the action.",
                ),
            }),
            None => match self.sessions.start(now) {
                Ok(live) => {
                    let cookie = session::cookie(&live.token, secure(head));
                    Gate::Open(live, Some(cookie))
                }
                Err(e) => Gate::Refused(error_page(503, "No session", &e.to_string())),
            },
        }
    }

    /// A page for a request with a session.
    fn page(
        &self,
        req: &Request,
        render: impl FnOnce(&View<'_>) -> Result<Page, PageError>,
    ) -> Response {
        let (live, cookie) = match self.gate(&req.head, true) {
            Gate::Open(live, cookie) => (live, cookie),
            Gate::Refused(answer) => return answer,
        };
        let view = View {
            query: Form::parse(req.head.query()),
            live: &live,
        };
        let logout = self.key.is_some().then_some(live.csrf.as_str());
        let response = match render(&view) {
            Ok(page) => {
                let layout = Layout {
                    title: &page.title,
                    current: &page.current,
                    refresh: page.refresh,
                    logout_csrf: logout,
                };
                html(200, document(&layout, &page.body))
            }
            Err(e) => e.page(),
        };
        match cookie {
            Some(cookie) => response.with_header("Set-Cookie", cookie),
            None => response,
        }
    }

    /// An action: a POST whose form carries the session's CSRF token.
    fn act(&self, req: &Request, apply: impl FnOnce(&Live) -> Response) -> Response {
        let live = match self.gate(&req.head, false) {
            Gate::Open(live, _) => live,
            Gate::Refused(answer) => return answer,
        };
        let form = Form::parse_body(&req.body);
        match form.get("csrf") {
            Some(token) if session::csrf_matches(&live, token) => apply(&live),
            _ => error_page(
                403,
                "Form refused",
                "The form did not carry this session's token (an old page, or a form from \
                 another site). Reload the page and try again.",
            ),
        }
    }

    fn login_page(&self, req: &Request) -> Response {
        if self.key.is_none() {
            return redirect("/ui");
        }
        if let Gate::Open(..) = self.gate(&req.head, false) {
            return redirect("/ui");
        }
        html(200, login::render(None))
    }

    /// Checks the key in constant time, as the API's Bearer check does; the
    /// key is never echoed, logged or put in the page.
    fn login(&self, req: &Request) -> Response {
        let Some(key) = &self.key else {
            return redirect("/ui");
        };
        let form = Form::parse_body(&req.body);
        let given = form.get("key").unwrap_or("");
        if !super::routes::constant_time_eq(given.trim().as_bytes(), key.as_bytes()) {
            return html(
                401,
                login::render(Some("That is not the server's API key.")),
            );
        }
        match self.sessions.start(Instant::now()) {
            Ok(live) => redirect("/ui").with_header(
                "Set-Cookie",
                session::cookie(&live.token, secure(&req.head)),
            ),
            Err(e) => error_page(503, "No session", &e.to_string()),
        }
    }
}

/// Why a page could not be shown.
#[derive(Debug)]
pub(crate) enum PageError {
    /// No such task (or other thing the path names).
    NotFound,
    /// The store could not answer.
    Store(StoreError),
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> PageError {
        PageError::Store(e)
    }
}

impl PageError {
    fn page(&self) -> Response {
        match self {
            PageError::NotFound => not_found(),
            PageError::Store(e) => error_page(503, "The store cannot answer", &e.to_string()),
        }
    }
}

/// Pauses or resumes a type, then shows the overview, where types are listed.
fn pause_type(store: &dyn Store, task_type: &str, paused: bool) -> Response {
    match store.set_paused(task_type, paused) {
        Ok(()) => redirect("/ui"),
        Err(e) => error_page(503, "The store cannot answer", &e.to_string()),
    }
}

/// Whether the request came over TLS, as the proxy in front says: then
/// the cookie is sent over TLS only.
fn secure(head: &Head) -> bool {
    head.header("X-Forwarded-Proto")
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// The `Allow` header of a dashboard path that exists, `None` for others.
fn allowed(route: &[&str]) -> Option<&'static str> {
    match route {
        [""] | ["style.css"] | ["refresh.js"] | ["tasks"] | ["workers"] => Some("GET, HEAD"),
        ["tasks", id] if !id.is_empty() => Some("GET, HEAD"),
        ["login"] => Some("GET, HEAD, POST"),
        ["logout"] => Some("POST"),
        ["tasks", _, action] if task::Action::parse(action).is_some() => Some("POST"),
        ["types", _, "pause" | "resume"] => Some("POST"),
        _ => None,
    }
}

/// An HTML answer with the headers every dashboard page carries.
pub(crate) fn html(status: u16, body: String) -> Response {
    Response::new(status, "text/html; charset=utf-8", body)
        .with_header("Content-Security-Policy", CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("X-Frame-Options", "DENY")
        .with_header("Referrer-Policy", "same-origin")
        .with_header("Cache-Control", "no-store")
}

/// See Other: after a login or an action, the browser GETs `location`.
pub(crate) fn redirect(location: &str) -> Response {
    html(303, String::new()).with_header("Location", location)
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    Response::new(200, content_type, text)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Cache-Control", "max-age=3600")
}

/// A small page that says what went wrong.
pub(crate) fn error_page(status: u16, title: &str, message: &str) -> Response {
    let mut body = html::Html::new();
    body.raw("<p class=\"notice\">")
        .text(message)
        .raw("</p><p><a href=\"/ui\">Overview</a></p>");
    let layout = Layout {
        title,
        current: "",
        refresh: false,
        logout_csrf: None,
    };
    html(status, document(&layout, &body.into_string()))
}

fn not_found() -> Response {
    error_page(404, "Not found", "There is no such page or task.")
}
