//! The dashboard at `/ui` over HTTP, as a browser without JavaScript uses
//! it: the login and its cookie, CSRF on every action, a cookie that never
//! opens the JSON API, every field from a task escaped, methods and 404s.

#![cfg(feature = "server")]

#[macro_use]
mod support;

use serde_json::json;
use support::dashboard::{assert_inert, seed_hostile, Visitor};
use support::{start_server, Api};
use taskworker::{encode_path_segment, ServerConfig};

const KEY: &str = "dashboard-test-key-7c1e";

fn keyed() -> (taskworker::Server, Api) {
    let server = start_server(ServerConfig {
        api_key: Some(KEY.into()),
        ..ServerConfig::default()
    });
    let api = Api::new(server.url()).with_key(KEY);
    (server, api)
}

fn task_path(id: &str) -> String {
    format!("/ui/tasks/{}", encode_path_segment(id))
}

#[test]
fn with_a_key_the_dashboard_asks_for_it_once_and_keeps_a_strict_cookie() {
    let (server, _api) = keyed();
    let mut visitor = Visitor::new(&server.url());
    let first = visitor.get("/ui");
    assert_eq!(first.status, 303);
    assert_eq!(first.header("location"), Some("/ui/login"));
    assert!(visitor.cookie.is_none(), "no session before the key");

    let form = visitor.get("/ui/login");
    assert_eq!(form.status, 200);
    assert!(form.body.contains("type=\"password\""), "{}", form.body);

    let wrong = visitor.post("/ui/login", &[("key", "guess-that-is-wrong")]);
    assert_eq!(wrong.status, 401);
    assert!(
        !wrong.body.contains("guess-that-is-wrong"),
        "the typed key is not echoed"
    );
    assert!(visitor.cookie.is_none());

    let right = visitor.post("/ui/login", &[("key", KEY)]);
    assert_eq!(right.status, 303);
    assert_eq!(right.header("location"), Some("/ui"));
    let cookie = right.header("set-cookie").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age="] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(KEY), "the cookie is not the key: {cookie}");
    let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert!(token.len() >= 64, "a long random token: {cookie}");

    let overview = visitor.get("/ui");
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains("Overview"));
    assert!(!overview.body.contains(KEY), "the key is never in a page");
    assert_eq!(visitor.get("/ui/login").status, 303, "logged in already");

    // Behind a TLS proxy the cookie travels over TLS only.
    let mut behind_tls = Visitor::new(&server.url());
    behind_tls
        .headers
        .push(("X-Forwarded-Proto".into(), "https".into()));
    let answer = behind_tls.post("/ui/login", &[("key", KEY)]);
    assert!(answer.header("set-cookie").unwrap().ends_with("; Secure"));

    // A made-up or ended session is no session.
    let mut forger = Visitor::new(&server.url());
    forger.cookie = Some(format!("taskworker_session={}", "ab".repeat(32)));
    assert_eq!(forger.get("/ui").status, 303);
    let csrf = overview.csrf();
    let out = visitor.post("/ui/logout", &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    visitor.cookie = Some(format!("taskworker_session={token}"));
    assert_eq!(
        visitor.get("/ui").status,
        303,
        "the session ended with the log-out"
    );
}

#[test]
fn a_dashboard_cookie_never_authorizes_the_json_api() {
    let (server, api) = keyed();
    let id = api.enqueue("echo", json!({}));
    let mut visitor = Visitor::new(&server.url());
    visitor.login(KEY);
    assert_eq!(visitor.get("/ui").status, 200);
    for (method, path) in [
        ("GET", "/tasks".to_string()),
        ("GET", format!("/tasks/{id}")),
        ("GET", "/metrics".to_string()),
        ("POST", "/tasks".to_string()),
        ("POST", "/tasks/claim".to_string()),
    ] {
        let answer = visitor.send(method, &path, &[]);
        assert_eq!(
            answer.status, 401,
            "{method} {path} with only a cookie: {}",
            answer.body
        );
    }
    // And the Bearer key does not open the dashboard: it has its own login.
    let mut bearer = Visitor::new(&server.url());
    bearer
        .headers
        .push(("Authorization".into(), format!("Bearer {KEY}")));
    assert_eq!(bearer.get("/ui").status, 303);
}

#[test]
fn every_action_needs_the_csrf_token_of_its_session() {
    let (server, api) = keyed();
    let id = api.enqueue("echo", json!({}));
    let cancel = format!("{}/cancel", task_path(&id));
    let mut visitor = Visitor::new(&server.url());
    visitor.login(KEY);
    let page = visitor.get(&task_path(&id));
    assert_eq!(page.status, 200);
    let csrf = page.csrf();

    let mut other = Visitor::new(&server.url());
    other.login(KEY);
    let other_csrf = other.get("/ui").csrf();
    assert_ne!(csrf, other_csrf, "each session has its own token");

    for (what, form) in [
        ("no token", vec![]),
        ("a wrong token", vec![("csrf", "0".repeat(64))]),
        (
            "another session's token",
            vec![("csrf", other_csrf.clone())],
        ),
    ] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = visitor.post(&cancel, &form);
        assert_eq!(answer.status, 403, "{what}: {}", answer.body);
        assert_eq!(api.task(&id)["status"], "queued", "{what} changed nothing");
    }
    // The right token without the session's cookie is refused too.
    let mut stranger = Visitor::new(&server.url());
    let answer = stranger.post(&cancel, &[("csrf", &csrf)]);
    assert_eq!(answer.status, 403);
    // Logging out is an action too.
    assert_eq!(visitor.post("/ui/logout", &[]).status, 403);
    assert_eq!(visitor.get("/ui").status, 200, "still logged in");
}

#[test]
fn without_a_key_the_dashboard_is_open_but_actions_still_need_the_token() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = api.enqueue("echo", json!({}));
    let mut visitor = Visitor::new(&server.url());
    let page = visitor.get(&task_path(&id));
    assert_eq!(page.status, 200);
    assert!(visitor.cookie.is_some(), "a session for the CSRF token");
    assert!(!page.body.contains("/ui/logout"), "nothing to log out of");
    assert_eq!(visitor.get("/ui/login").status, 303);
    let cancel = format!("{}/cancel", task_path(&id));
    assert_eq!(visitor.post(&cancel, &[]).status, 403);
    let mut stranger = Visitor::new(&server.url());
    assert_eq!(
        stranger.post(&cancel, &[("csrf", &page.csrf())]).status,
        403
    );
    assert_eq!(api.task(&id)["status"], "queued");
}

fn every_field_from_a_task_is_escaped() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let hostile = seed_hostile(&api);
    let mut visitor = Visitor::new(&server.url());
    let type_filter = format!("/ui/tasks?type={}", encode_path_segment(&hostile.task_type));
    let mut pages = vec![
        "/ui".to_string(),
        "/ui/tasks".to_string(),
        "/ui/workers".to_string(),
        type_filter,
    ];
    for status in ["queued", "claimed", "completed", "failed"] {
        pages.push(format!("/ui/tasks?status={status}"));
    }
    for id in [
        &hostile.failed,
        &hostile.completed,
        &hostile.claimed,
        &hostile.queued,
    ] {
        pages.push(task_path(id));
    }
    for path in &pages {
        let answer = visitor.get(path);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert_inert(path, &answer.body);
    }
    // Each field shows, escaped, where it belongs.
    let failed = visitor.get(&task_path(&hostile.failed)).body;
    for shown in [
        "e&lt;script&gt;",
        "E&lt;script&gt;",
        "tb&lt;script&gt;",
        "w&lt;script&gt;",
        "t&lt;script&gt;",
    ] {
        assert!(
            failed.contains(shown),
            "{shown} not on the failed task's page:\n{failed}"
        );
    }
    assert!(
        failed.contains("javascript:window.__pwned=4//f&lt;script&gt;"),
        "{failed}"
    );
    assert!(!failed.contains("href=\"javascript:"), "{failed}");
    let completed = visitor.get(&task_path(&hostile.completed)).body;
    assert!(
        completed.contains("&quot;out&quot;: &quot;&lt;script&gt;"),
        "{completed}"
    );
    let running = visitor.get("/ui/tasks?status=claimed").body;
    assert!(running.contains("w&lt;script&gt;"), "{running}");
    // The filtered list holds exactly the four hostile tasks.
    let filtered = visitor.get(&format!(
        "/ui/tasks?type={}",
        encode_path_segment(&hostile.task_type)
    ));
    assert_eq!(
        filtered.body.matches("<tr><td class=\"id\">").count(),
        4,
        "{}",
        filtered.body
    );
}

per_store!(every_field_from_a_task_is_escaped);

#[test]
fn pages_answer_get_and_head_work_without_script_and_refuse_other_methods() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = api.enqueue("echo", json!({"n": 1}));
    let mut visitor = Visitor::new(&server.url());
    for path in [
        "/ui",
        "/ui/tasks",
        "/ui/tasks?status=queued",
        "/ui/workers",
        &task_path(&id),
    ] {
        let page = visitor.get(path);
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let csp = page.header("content-security-policy").expect("a CSP");
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        // No inline script or handler: the only script is the optional reload.
        let scripts: Vec<_> = page
            .body
            .match_indices("<script")
            .map(|(i, _)| &page.body[i..i + 40])
            .collect();
        assert!(
            scripts
                .iter()
                .all(|s| s.starts_with("<script src=\"/ui/refresh.js\"")),
            "{scripts:?}"
        );
        assert!(!page.body.contains(" onclick=") && !page.body.contains("style=\""));
        let head = visitor.send("HEAD", path, &[]);
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.body.is_empty());
        for method in ["POST", "PUT", "DELETE"] {
            let answer = visitor.send(method, path, &[]);
            assert_eq!(answer.status, 405, "{method} {path}");
            assert_eq!(answer.header("allow"), Some("GET, HEAD"));
        }
    }
    // The task's page names it and shows its parameters as formatted JSON.
    let page = visitor.get(&task_path(&id)).body;
    assert!(page.contains("&quot;n&quot;: 1"), "{page}");
    // Every form on a page is a POST carrying the token, or the GET filter.
    let list = visitor.get("/ui/tasks?status=queued").body;
    assert!(list.contains("<form method=\"get\" action=\"/ui/tasks\""));
    assert_eq!(
        visitor.get("/ui/style.css").header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(
        visitor
            .send("GET", &format!("{}/cancel", task_path(&id)), &[])
            .header("allow"),
        Some("POST")
    );
}

#[test]
fn unknown_pages_tasks_and_statuses_are_404() {
    let server = start_server(ServerConfig::default());
    let mut visitor = Visitor::new(&server.url());
    for path in [
        "/ui/nope",
        "/ui/tasks/no-such-task",
        "/ui/tasks?status=bogus",
        "/ui/tasks/x/explode",
        "/ui/tasks/%ZZ",
    ] {
        let answer = visitor.get(path);
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert!(answer
            .header("content-type")
            .unwrap()
            .starts_with("text/html"));
    }
    // A path that only starts with the letters is the API's, not the dashboard's.
    let answer = visitor.get("/uix");
    assert_eq!(answer.status, 404);
    assert!(answer.body.contains("no route"), "{}", answer.body);
}

#[test]
fn lists_filter_by_type_and_priority_and_page_fifty_at_a_time() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    for _ in 0..60 {
        api.enqueue("bulk", json!({}));
    }
    let mut odd = Vec::new();
    for _ in 0..3 {
        let (status, body) =
            api.post_json("/tasks", &json!({"type": "odd one", "priority": "high"}));
        assert_eq!(status, 201, "{body}");
        odd.push(body["task"]["id"].as_str().unwrap().to_string());
    }
    let mut visitor = Visitor::new(&server.url());
    let rows = |body: &str| body.matches("<tr><td class=\"id\">").count();
    let first = visitor.get("/ui/tasks?status=queued");
    assert_eq!(rows(&first.body), 50);
    let marker = "rel=\"next\" href=\"";
    let start = first.body.find(marker).expect("a link to the next page") + marker.len();
    let next = first.body[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(
        next.starts_with("/ui/tasks?status=queued&before="),
        "{next}"
    );
    let second = visitor.get(&next);
    assert_eq!(rows(&second.body), 13, "{}", second.body);
    assert!(!second.body.contains("rel=\"next\""));
    let by_type = visitor.get("/ui/tasks?status=queued&type=odd+one");
    let by_priority = visitor.get("/ui/tasks?status=queued&priority=high");
    for filtered in [&by_type, &by_priority] {
        assert_eq!(rows(&filtered.body), 3);
        for id in &odd {
            assert!(
                filtered
                    .body
                    .contains(&format!("href=\"{}\"", task_path(id))),
                "{}",
                filtered.body
            );
        }
    }
    assert!(
        by_type.body.contains("value=\"odd one\""),
        "the filter keeps its value"
    );
    assert!(by_priority.body.contains("<option selected>high</option>"));
    // A cursor that is not one starts from the newest; a priority that is not one is no page.
    assert_eq!(
        rows(&visitor.get("/ui/tasks?status=queued&before=zz").body),
        50
    );
    assert_eq!(visitor.get("/ui/tasks?priority=urgent").status, 404);
}

/// Sends an action's form from the task's page, as its button does.
fn press(visitor: &mut Visitor, id: &str, action: &str) -> support::dashboard::Answer {
    let page = visitor.get(&task_path(id));
    assert_eq!(page.status, 200, "{}", page.body);
    let action_path = format!("{}/{action}", task_path(id));
    assert!(
        page.body.contains(&format!("action=\"{action_path}\"")),
        "no {action} button:\n{}",
        page.body
    );
    let csrf = page.csrf();
    visitor.post(&action_path, &[("csrf", &csrf)])
}

#[test]
fn the_buttons_retry_cancel_and_delete_as_the_status_allows() {
    let (server, api) = keyed();
    let mut visitor = Visitor::new(&server.url());
    visitor.login(KEY);

    let failed = api.enqueue("resize", json!({}));
    api.claim("w1", json!({}));
    api.post_json(
        &format!("/tasks/{failed}/fail"),
        &json!({"worker_id": "w1", "error": "bad", "retryable": false}),
    );
    assert_eq!(api.task(&failed)["status"], "failed");
    let page = visitor.get(&task_path(&failed)).body;
    assert!(!page.contains("/cancel\""), "no cancel for a failed task");
    let answer = press(&mut visitor, &failed, "retry");
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.header("location"), Some(task_path(&failed).as_str()));
    assert_eq!(api.task(&failed)["status"], "queued");

    let answer = press(&mut visitor, &failed, "cancel");
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(api.task(&failed)["status"], "cancelled");

    let answer = press(&mut visitor, &failed, "delete");
    assert_eq!(answer.status, 303);
    assert_eq!(api.get(&format!("/tasks/{failed}")).0, 404);

    // A button from an old page: the status moved on, the server says why.
    let done = api.enqueue("resize", json!({}));
    let page = visitor.get(&task_path(&done));
    api.claim("w1", json!({}));
    api.post_json(
        &format!("/tasks/{done}/complete"),
        &json!({"worker_id": "w1", "result": {}}),
    );
    let stale = visitor.post(
        &format!("{}/cancel", task_path(&done)),
        &[("csrf", &page.csrf())],
    );
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert_eq!(api.task(&done)["status"], "completed");
    let gone = visitor.post(
        &format!("{}/retry", task_path("no-such-task")),
        &[("csrf", &page.csrf())],
    );
    assert_eq!(gone.status, 404);
}

#[test]
fn a_type_is_paused_and_resumed_from_the_overview() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    api.enqueue("resize", json!({}));
    let mut visitor = Visitor::new(&server.url());
    let overview = visitor.get("/ui");
    assert!(
        overview.body.contains("action=\"/ui/types/resize/pause\""),
        "{}",
        overview.body
    );
    let csrf = overview.csrf();
    assert_eq!(visitor.post("/ui/types/resize/pause", &[]).status, 403);
    assert_eq!(
        visitor
            .post("/ui/types/resize/pause", &[("csrf", &csrf)])
            .status,
        303
    );
    assert_eq!(
        api.claim("w1", json!({})).0,
        404,
        "a paused type is not handed out"
    );
    let overview = visitor.get("/ui");
    assert!(overview.body.contains("action=\"/ui/types/resize/resume\""));
    assert_eq!(
        visitor
            .post("/ui/types/resize/resume", &[("csrf", &csrf)])
            .status,
        303
    );
    assert_eq!(api.claim("w1", json!({})).0, 200);
}
