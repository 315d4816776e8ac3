//! A password in `API_URL` (`https://user:pass@host`) is shown as `***`
//! everywhere: `check-config`, its warnings, config errors, the log and
//! `/status`. The `http` handler's errors name its URL without the query
//! string, where tokens live.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::fake::{self, FakeApi};
use support::worker::{builtin_handlers, WorkerSpec};
use support::{bin, ctx, handler, run, task, temp_dir, Api};
use taskworker::TaskError;

const PASSWORD: &str = "hunter2-in-the-url";

fn check_config(api_url: &str) -> (Option<i32>, String) {
    let dir = temp_dir("secrets-check-config");
    std::fs::write(
        dir.join("c.json"),
        r#"{"handlers": {"echo": {"builtin": "echo"}}}"#,
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--config", "c.json"])
        .current_dir(&dir)
        .env_clear()
        .env("API_URL", api_url)
        .env("API_KEY", "k")
        .output()
        .expect("binary runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn userinfo_in_api_url_is_masked_by_check_config_and_its_errors() {
    let (code, text) = check_config(&format!("http://bob:{PASSWORD}@api.example.com/v1"));
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("API_URL=http://***@api.example.com/v1"),
        "{text}"
    );
    // The clear-text warning names the URL too.
    assert!(text.contains("clear text"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");

    let (code, text) = check_config(&format!("ftp://bob:{PASSWORD}@api.example.com"));
    assert_eq!(code, Some(78), "{text}");
    assert!(text.contains("API_URL"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[test]
fn userinfo_in_api_url_never_reaches_the_log_or_status() {
    let fake = FakeApi::start(|path, _| match path {
        "/tasks/claim" => fake::nothing(),
        _ => fake::ok(),
    });
    let url = fake
        .url()
        .replace("http://", &format!("http://bob:{PASSWORD}@"));
    let mut worker = WorkerSpec::new("secret-url", &url, builtin_handlers())
        .env("LOG_LEVEL", "trace")
        .env("RUST_LOG", "trace")
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    fake::wait_for(&worker, || fake.seen("/tasks/claim").len() >= 2);
    let (status, body) = Api::new(worker.health_url()).get_text("/status");
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(PASSWORD), "{body}");
    worker.stop(Duration::from_secs(10));
    let log = worker.log();
    assert!(log.contains("***@127.0.0.1"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
}

/// The failure of an `http` handler posting to `url`.
fn failure(url: &str) -> TaskError {
    let h = handler(json!({"http": {"url": url, "timeout": "5s"}}));
    run(&h, &task("t-1", json!({})), &ctx(), Duration::from_secs(30)).unwrap_err()
}

#[test]
fn the_http_handler_names_its_url_without_the_query_string() {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", server.server_addr());
    let answer = std::thread::spawn(move || {
        let req = server
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("a request within 10 s");
        let _ = req.respond(tiny_http::Response::from_string("boom").with_status_code(500));
    });
    let token = "token=s3cret-query-value";
    let err = failure(&format!("{base}/hook?{token}"));
    answer.join().unwrap();
    assert_eq!(err.message, format!("{base}/hook: status 500: boom"));

    // Nothing listens on a port just closed: the connection error names the URL too.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://bob:{PASSWORD}@127.0.0.1:{port}/hook?{token}");
    let err = failure(&url);
    assert!(
        err.message.starts_with("http://***@127.0.0.1:"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("s3cret"), "{}", err.message);
    assert!(!err.message.contains(PASSWORD), "{}", err.message);
}
