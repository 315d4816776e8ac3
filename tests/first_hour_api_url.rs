//! A wrong `API_URL` is loud: a claim's 404 reads as "no task", so the
//! worker asks `GET {API_URL}/health`; a 404 or an answer that is not JSON
//! logs one ERROR naming the URL and turns `/ready` 503 with the reason,
//! until `/health` answers.
#![cfg(feature = "server")]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::fake::{nothing, FakeApi};
use support::worker::{builtin_handlers, WorkerProcess, WorkerSpec};
use support::{start_server, wait_answer, wait_until, Api};
use taskworker::ServerConfig;

const LIMIT: Duration = Duration::from_secs(20);

/// Starts a worker on `url` with a health server; returns it and a client
/// of its health server.
fn start(name: &str, url: &str) -> (WorkerProcess, Api) {
    let worker = WorkerSpec::new(name, url, builtin_handlers())
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    let health = Api::new(worker.health_url());
    (worker, health)
}

/// Waits until `/ready` answers 503; returns its reason.
fn not_ready(health: &Api) -> String {
    let ready = wait_answer(health, "/ready", 503, LIMIT);
    ready["reason"].as_str().unwrap_or_default().to_string()
}

fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("ERROR")).collect()
}

#[test]
fn a_wrong_path_in_api_url_logs_one_error_and_is_not_ready() {
    let server = start_server(ServerConfig::default());
    let wrong = format!("{}/v1", server.url());

    // The reference server's answer to the claim cannot pass for "no task".
    let (status, body) = Api::new(wrong.as_str()).claim("probe", json!({}));
    assert_eq!(status, 404);
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("no route for POST /v1/tasks/claim"),
        "{body}"
    );
    assert!(!error.contains("no task available"), "{body}");
    assert_eq!(body["no_route"], "/v1/tasks/claim", "{body}");

    let (worker, health) = start("wrong-url", &wrong);
    let reason = not_ready(&health);
    assert!(reason.contains(&format!("{wrong}/health")), "{reason}");
    assert!(reason.contains("404"), "{reason}");
    assert_eq!(health.get("/health").1["api"], "wrong_url");

    assert!(worker.wait_log("ERROR", LIMIT), "{}", worker.log());
    let log = worker.log();
    let errors = error_lines(&log);
    assert_eq!(errors.len(), 1, "{log}");
    assert!(errors[0].contains(&format!("API_URL {wrong} ")), "{log}");
    assert!(errors[0].contains("/v1"), "{log}");

    // Pointed right, the same server makes a worker ready and quiet.
    let (worker, health) = start("right-url", &server.url());
    wait_answer(&health, "/ready", 200, LIMIT);
    assert!(error_lines(&worker.log()).is_empty(), "{}", worker.log());
}

#[test]
fn ready_clears_once_health_answers_and_the_error_is_not_repeated() {
    let answers = Arc::new(AtomicBool::new(false));
    let flag = answers.clone();
    let api = FakeApi::start(move |path, _| match path {
        "/health" if flag.load(Ordering::SeqCst) => (200, r#"{"status": "healthy"}"#.into()),
        "/health" => (200, "<html>it works</html>".into()),
        _ => nothing(),
    });
    let (worker, health) = start("health-later", &api.url());
    let reason = not_ready(&health);
    assert!(reason.contains("not JSON"), "{reason}");

    // Asked again while wrong, without a second ERROR.
    assert!(
        wait_until(LIMIT, || api.seen("/health").len() >= 2),
        "{}",
        worker.log()
    );
    assert_eq!(error_lines(&worker.log()).len(), 1, "{}", worker.log());
    // Claims went on meanwhile.
    assert!(!api.seen("/tasks/claim").is_empty());

    answers.store(true, Ordering::SeqCst);
    wait_answer(&health, "/ready", 200, LIMIT);
    assert_eq!(health.get("/health").1["api"], "up");
    assert!(
        worker.log().contains("the task API is found"),
        "{}",
        worker.log()
    );
    assert_eq!(error_lines(&worker.log()).len(), 1, "{}", worker.log());
}
