//! The dashboard in a real browser (headless Chromium through chromedriver):
//! log in with the key, read the overview, filter a list by type, open a
//! failed task and retry it, cancel a task a real worker runs and see the
//! worker stop it; and a task whose every field holds markup and script, on
//! every page, with nothing of it live. Screenshots of the overview and a
//! task page go to the test's directory, and to packaging/screenshots/ with
//! `UPDATE_DOCS=1`.

#![cfg(feature = "server")]

#[macro_use]
mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use support::browser::Browser;
use support::dashboard::{seed_hostile, PAYLOAD};
use support::worker::WorkerSpec;
use support::{start_server, temp_dir, wait_until, Api};
use taskworker::{encode_path_segment, ServerConfig};

const KEY: &str = "browser-test-key-52ab";

/// Keeps `name` from `dir` as the README's picture when `UPDATE_DOCS=1`.
fn keep_for_docs(dir: &Path, name: &str) {
    if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/screenshots");
        std::fs::create_dir_all(&docs).expect("screenshots folder");
        std::fs::copy(dir.join(name), docs.join(name)).expect("screenshot copied");
    }
}

/// Waits (bounded) until the page's `h1` reads `heading`.
fn wait_heading(browser: &Browser, heading: &str) {
    wait_text(browser, "h1", heading);
}

/// Waits (bounded) until the first element matching `selector` reads `want`.
fn wait_text(browser: &Browser, selector: &str, want: &str) {
    let script = format!(
        "var e = document.querySelector({}); return e ? e.textContent : '';",
        json!(selector)
    );
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(30), || {
        // While a navigation is under way the page may not run a script.
        last = browser
            .try_execute(&script)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        last == want
    });
    assert!(
        ok,
        "wanted {selector} to read {want:?}, last {last:?} at {}",
        browser.url()
    );
}

/// A small realistic queue: a few types and priorities, two completed, one
/// failed with a traceback, one running.
fn realistic_queue(api: &Api) -> String {
    for (task_type, params, priority) in [
        (
            "send.email",
            json!({"to": "ada@example.com", "subject": "Welcome"}),
            "high",
        ),
        (
            "send.email",
            json!({"to": "grace@example.com", "subject": "Invoice 1042"}),
            "medium",
        ),
        (
            "process.image",
            json!({"url": "https://example.com/cat.jpg", "width": 256}),
            "low",
        ),
        (
            "generate.report",
            json!({"title": "Units", "rows": 12}),
            "medium",
        ),
        (
            "generate.report",
            json!({"title": "Revenue", "rows": 40}),
            "low",
        ),
    ] {
        let (status, body) = api.post_json(
            "/tasks",
            &json!({"type": task_type, "parameters": params, "priority": priority}),
        );
        assert_eq!(status, 201, "{body}");
    }
    let claim = |types: &[&str]| -> String {
        let (status, body) = api.claim("worker-eu-1", json!({"types": types}));
        assert_eq!(status, 200, "{body}");
        body["task"]["id"].as_str().unwrap().to_string()
    };
    let done = claim(&["send.email"]);
    api.post_json(
        &format!("/tasks/{done}/complete"),
        &json!({"worker_id": "worker-eu-1", "result": {"message_id": "<1@example.com>"}}),
    );
    let failed = claim(&["process.image"]);
    let (status, body) = api.post_json(
        &format!("/tasks/{failed}/fail"),
        &json!({"worker_id": "worker-eu-1", "error": "convert: no decode delegate for this image format",
                "error_type": "VALIDATION", "retryable": false,
                "traceback": "convert: no decode delegate for this image format `JPEG'\nexit status 1"}),
    );
    assert_eq!(status, 200, "{body}");
    claim(&["generate.report"]);
    failed
}

#[test]
fn a_user_logs_in_reads_the_overview_filters_by_type_and_opens_a_failed_task() {
    let dir = temp_dir("dashboard-browser");
    let Some(browser) = Browser::start(&dir) else {
        return;
    };
    let server = start_server(ServerConfig {
        api_key: Some(KEY.into()),
        ..ServerConfig::default()
    });
    let api = Api::new(server.url()).with_key(KEY);
    let failed = realistic_queue(&api);
    let base = server.url();

    browser.goto(&format!("{base}/ui"));
    wait_heading(&browser, "Log in");
    assert!(browser.url().ends_with("/ui/login"), "{}", browser.url());
    browser.find("#key").send_keys(KEY);
    browser.find("form.login button[type=submit]").click();
    wait_heading(&browser, "Overview");
    assert_eq!(browser.find("#count-queued .n").text(), "2");
    assert_eq!(browser.find("#count-failed .n").text(), "1");
    assert!(
        !browser.source().contains(KEY),
        "the key is not in the page"
    );
    // The cookie is out of a script's reach.
    assert_eq!(browser.execute("return document.cookie;"), json!(""));
    browser.screenshot(&dir.join("overview.png"));
    keep_for_docs(&dir, "overview.png");

    // The menu's Queued list, filtered by type with the form.
    browser
        .find("nav a[href='/ui/tasks?status=queued']")
        .click();
    wait_heading(&browser, "Queued");
    browser.find("#type").send_keys("generate.report");
    browser.find("form.filter button[type=submit]").click();
    wait_heading(&browser, "Queued: generate.report");
    let rows = browser.find_all("tbody tr");
    assert_eq!(rows.len(), 1);
    assert!(rows[0].text().contains("generate.report"));

    // The failed list, then the task's page.
    browser
        .find("nav a[href='/ui/tasks?status=failed']")
        .click();
    wait_heading(&browser, "Failed");
    browser
        .find(&format!(
            "a[href='/ui/tasks/{}']",
            encode_path_segment(&failed)
        ))
        .click();
    wait_heading(&browser, &format!("Task {failed}"));
    assert!(browser
        .find("dd.error")
        .text()
        .contains("no decode delegate"));
    assert!(browser
        .find("pre.traceback")
        .text()
        .contains("exit status 1"));
    assert!(browser.find("pre.json").text().contains("\"width\": 256"));
    assert_eq!(
        browser.find_all(".actions button").len(),
        2,
        "retry and delete"
    );
    browser.screenshot(&dir.join("task.png"));
    keep_for_docs(&dir, "task.png");

    // Retry: the task is queued again, and the page says so.
    browser.find(".actions button[value=retry]").click();
    wait_heading(&browser, &format!("Task {failed}"));
    wait_text(&browser, "main > p .status", "Queued");
    assert_eq!(api.task(&failed)["status"], "queued");
    assert_eq!(
        browser.find_all(".actions button").len(),
        2,
        "cancel and delete"
    );
}

#[test]
fn cancelling_a_running_task_stops_it_in_its_worker() {
    let dir = temp_dir("dashboard-cancel");
    let Some(browser) = Browser::start(&dir) else {
        return;
    };
    // A short lease, so that the worker's heartbeat (a third of it) comes soon.
    let server = start_server(ServerConfig {
        api_key: Some(KEY.into()),
        lease: Duration::from_secs(3),
        ..ServerConfig::default()
    });
    let api = Api::new(server.url()).with_key(KEY);
    let url = server.url();
    let mut worker = WorkerSpec::new(
        "dashboard-cancel",
        &url,
        json!({"handlers": {"sleep": {"builtin": "sleep"}}, "worker": {"timeout": 300, "id": "worker-cancel-1"}}),
    )
    .env("API_KEY", KEY)
    .env("HEALTH_ADDR", "127.0.0.1:0")
    .start();
    let id = api.enqueue("sleep", json!({"ms": 240_000}));
    assert!(
        wait_until(Duration::from_secs(30), || api.task(&id)["status"]
            == "claimed"),
        "the worker did not claim the task; log:\n{}",
        worker.log()
    );

    let status = Api::new(worker.health_url());
    let mut last = String::new();
    let running = wait_until(Duration::from_secs(10), || {
        last = status.get_text("/status").1;
        last.contains(&id)
    });
    assert!(
        running,
        "the worker's /status does not show the task: {last}"
    );

    browser.goto(&format!("{url}/ui/login"));
    browser.find("#key").send_keys(KEY);
    browser.find("form.login button[type=submit]").click();
    wait_heading(&browser, "Overview");
    browser
        .find("nav a[href='/ui/tasks?status=claimed']")
        .click();
    wait_heading(&browser, "Running");
    assert!(browser.find("tbody").text().contains("worker-cancel-1"));
    browser
        .find(&format!("a[href='/ui/tasks/{}']", encode_path_segment(&id)))
        .click();
    wait_heading(&browser, &format!("Task {id}"));
    assert_eq!(
        browser.find_all(".actions button").len(),
        1,
        "only cancel while it runs"
    );
    browser.find(".actions button[value=cancel]").click();
    wait_heading(&browser, &format!("Task {id}"));
    wait_text(&browser, "main > p .status", "Cancelled");

    // The worker learns it from the 410 of its next heartbeat, stops the
    // handler and keeps no outcome: a report that raced the heartbeat gets
    // 410 too and is dropped, so the task stays cancelled.
    assert!(
        worker.wait_log("answered 410", Duration::from_secs(30)),
        "the worker did not hear of the cancel; log:\n{}",
        worker.log()
    );
    let idle = wait_until(Duration::from_secs(10), || {
        last = status.get_text("/status").1;
        !last.is_empty() && !last.contains(&id)
    });
    assert!(idle, "the worker still runs it: {last}");
    assert_eq!(api.task(&id)["status"], "cancelled");
    worker.stop(Duration::from_secs(30));
    assert_eq!(
        api.task(&id)["status"],
        "cancelled",
        "nothing reported on the way out"
    );
}

#[test]
fn markup_and_script_in_every_field_of_a_task_stay_text_in_the_browser() {
    let dir = temp_dir("dashboard-xss");
    let Some(browser) = Browser::start(&dir) else {
        return;
    };
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let hostile = seed_hostile(&api);
    let base = server.url();
    let mut pages = vec![
        format!("{base}/ui"),
        format!("{base}/ui/tasks"),
        format!("{base}/ui/workers"),
        format!(
            "{base}/ui/tasks?type={}",
            encode_path_segment(&hostile.task_type)
        ),
    ];
    for status in ["queued", "claimed", "completed", "failed"] {
        pages.push(format!("{base}/ui/tasks?status={status}"));
    }
    for id in [
        &hostile.failed,
        &hostile.completed,
        &hostile.claimed,
        &hostile.queued,
    ] {
        pages.push(format!("{base}/ui/tasks/{}", encode_path_segment(id)));
    }
    for page in &pages {
        browser.goto(page);
        let state = browser.execute(
            "return {pwned: typeof window.__pwned, title: document.title, \
                     scripts: document.scripts.length, \
                     live: document.querySelectorAll('img, svg:not(.chart), [onerror], [onload]').length, \
                     js: Array.from(document.links).filter(a => a.protocol === 'javascript:').length};",
        );
        assert_eq!(state["pwned"], "undefined", "{page}: a script ran: {state}");
        assert_ne!(state["title"], "pwned", "{page}: the title was changed");
        assert!(
            state["scripts"].as_u64().unwrap_or(9) <= 1,
            "{page}: only the reload script: {state}"
        );
        assert_eq!(state["live"], 0, "{page}: markup became elements: {state}");
        assert_eq!(state["js"], 0, "{page}: a javascript: link: {state}");
    }
    // The payload shows as the text it is.
    browser.goto(&format!(
        "{base}/ui/tasks/{}",
        encode_path_segment(&hostile.failed)
    ));
    let heading = browser.find("h1").text();
    assert!(
        heading.contains(&format!("javascript:window.__pwned=4//f{}", &PAYLOAD[..20])),
        "{heading}"
    );
    assert!(browser
        .find("dd.error")
        .text()
        .starts_with("e<script>window.__pwned=1"));
    assert!(browser
        .find("pre.traceback")
        .text()
        .starts_with("tb<script>"));
    let worker = browser.find("table a[href^='/ui/workers']").text();
    assert_eq!(worker, hostile.worker);
}
