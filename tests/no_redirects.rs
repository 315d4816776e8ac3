//! No redirect is followed: a 3xx to a report is a server error, retried
//! until a 2xx to the `POST` itself; a 3xx to a claim is logged once and
//! backed off; the `http` handler fails on a 3xx instead of following it.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::fake::{self, FakeApi};
use support::worker::{builtin_handlers, WorkerSpec};
use support::{ctx, handler, run, task};

/// A 302 to `/elsewhere`, which answers 200 to anything.
fn redirect() -> (u16, String, Vec<(&'static str, String)>) {
    (302, String::new(), vec![("Location", "/elsewhere".into())])
}

#[test]
fn a_redirected_report_is_retried_until_the_post_itself_succeeds() {
    let claims = AtomicUsize::new(0);
    let reports = AtomicUsize::new(0);
    let fake = FakeApi::start_with_headers(move |path, _| match path {
        "/tasks/claim" => {
            let (status, body) = match claims.fetch_add(1, SeqCst) {
                0 => fake::claimed(vec![fake::task("r1", "echo", json!({"n": 1}), None)]),
                _ => fake::nothing(),
            };
            (status, body, Vec::new())
        }
        "/tasks/r1/complete" if reports.fetch_add(1, SeqCst) < 2 => redirect(),
        _ => (200, "{}".into(), Vec::new()),
    });
    let url = fake.url();
    let state = support::temp_dir("redirected-report-state");
    let mut worker = WorkerSpec::new("redirected-report", &url, builtin_handlers())
        .env("STATE_DIR", state.display().to_string())
        .start();
    fake::wait_for(&worker, || fake.seen("/tasks/r1/complete").len() >= 3);
    worker.stop(Duration::from_secs(10));
    let log = worker.log();
    assert!(fake.seen("/elsewhere").is_empty(), "followed:\n{log}");
    let sent = fake.seen("/tasks/r1/complete");
    assert!(sent.iter().all(|s| s.method == "POST"), "{sent:?}");
    assert_eq!(sent.last().map(|s| s.status), Some(200));
    assert!(log.contains("302"), "{log}");
}

#[test]
fn a_redirected_claim_is_backed_off_and_logged_once() {
    let fake = FakeApi::start_with_headers(|path, _| match path {
        "/tasks/claim" => redirect(),
        _ => (200, "{}".into(), Vec::new()),
    });
    let url = fake.url();
    let mut worker = WorkerSpec::new("redirected-claim", &url, builtin_handlers()).start();
    fake::wait_for(&worker, || fake.seen("/tasks/claim").len() >= 3);
    worker.stop(Duration::from_secs(10));
    let log = worker.log();
    assert!(fake.seen("/elsewhere").is_empty(), "followed:\n{log}");
    let lines = log.lines().filter(|l| l.contains("status 302")).count();
    assert_eq!(lines, 1, "logged once per outage:\n{log}");
}

#[test]
fn the_http_handler_follows_no_redirect() {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
    let base = format!("http://{}", server.server_addr());
    let followed = Arc::new(AtomicUsize::new(0));
    let (srv, seen) = (server.clone(), followed.clone());
    std::thread::spawn(move || {
        for req in srv.incoming_requests() {
            let response = if req.url() == "/hook" {
                let location = tiny_http::Header::from_bytes("Location", "/target").unwrap();
                tiny_http::Response::from_string("moved")
                    .with_status_code(302)
                    .with_header(location)
            } else {
                seen.fetch_add(1, SeqCst);
                tiny_http::Response::from_string("{}").with_status_code(200)
            };
            let _ = req.respond(response);
        }
    });
    let h = handler(json!({"http": {"url": format!("{base}/hook"), "timeout": "5s"}}));
    let err = run(&h, &task("t-1", json!({})), &ctx(), Duration::from_secs(30)).unwrap_err();
    server.unblock();
    assert_eq!(followed.load(SeqCst), 0, "the redirect was followed");
    assert!(!err.retryable, "{err:?}");
    assert_eq!(err.error_type, "HANDLER");
    assert!(err.message.contains("status 302"), "{}", err.message);
}
