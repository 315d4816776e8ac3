//! The http handler against a loopback server: answers, statuses, timeouts
//! and oversized answers.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{ctx, handler, run, task};
use taskworker::Handler;

const LIMIT: Duration = Duration::from_secs(30);

/// A server on 127.0.0.1:0 that answers by path; returns its base URL.
/// `/status/N` answers N, `/echo` the request body, `/slow` after 10 s,
/// `/big` 2 MiB, `/empty` nothing, `/text` plain text.
fn server() -> String {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
    let port = server.server_addr().to_ip().expect("ip address").port();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            std::thread::spawn(move || {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let url = req.url().to_string();
                let (status, answer) = match url.as_str() {
                    "/echo" => {
                        let content_type = req
                            .headers()
                            .iter()
                            .find(|h| h.field.equiv("Content-Type"))
                            .map(|h| h.value.to_string())
                            .unwrap_or_default();
                        let got: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                        (
                            200,
                            json!({"received": got, "content_type": content_type}).to_string(),
                        )
                    }
                    "/slow" => {
                        std::thread::sleep(Duration::from_secs(10));
                        (200, "{}".to_string())
                    }
                    "/big" => (200, format!("\"{}\"", "x".repeat(2 << 20))),
                    "/empty" => (200, String::new()),
                    "/text" => (200, "all good".to_string()),
                    path => {
                        let status = path
                            .strip_prefix("/status/")
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(404);
                        (status, format!("answer {status}\nsecond line"))
                    }
                };
                let _ =
                    req.respond(tiny_http::Response::from_string(answer).with_status_code(status));
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn http(url: String) -> Arc<dyn Handler> {
    handler(json!({"http": {"url": url, "timeout": "5s"}}))
}

#[test]
fn a_2xx_json_answer_is_the_result() {
    let base = server();
    let t = task("t-1", json!({"n": 1}));
    let result = run(&http(format!("{base}/echo")), &t, &ctx(), LIMIT).unwrap();
    assert_eq!(result["received"], serde_json::to_value(&t).unwrap());
    assert!(result["content_type"]
        .as_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        run(&http(format!("{base}/empty")), &t, &ctx(), LIMIT),
        Ok(Value::Null)
    );
    assert_eq!(
        run(&http(format!("{base}/text")), &t, &ctx(), LIMIT),
        Ok(json!({"output": "all good"}))
    );
    assert_eq!(
        run(&http(format!("{base}/status/201")), &t, &ctx(), LIMIT),
        Ok(json!({"output": "answer 201\nsecond line"}))
    );
}

#[test]
fn statuses_map_to_retryable_and_permanent_failures() {
    let base = server();
    for (status, kind, retryable) in [
        (408, "TIMEOUT", true),
        (429, "RATE_LIMIT", true),
        (500, "HANDLER", true),
        (503, "HANDLER", true),
        (400, "HANDLER", false),
        (404, "HANDLER", false),
    ] {
        let url = format!("{base}/status/{status}");
        let err = run(&http(url.clone()), &task("1", json!({})), &ctx(), LIMIT).unwrap_err();
        assert_eq!(
            (err.error_type.as_str(), err.retryable),
            (kind, retryable),
            "{status}"
        );
        assert_eq!(
            err.message,
            format!("{url}: status {status}: answer {status}")
        );
        assert_eq!(
            err.traceback.as_deref(),
            Some(format!("answer {status}\nsecond line").as_str())
        );
    }
}

#[test]
fn a_slow_answer_times_out_and_is_retryable() {
    let base = server();
    let h = handler(json!({"http": {"url": format!("{base}/slow"), "timeout": "300ms"}}));
    let start = Instant::now();
    let err = run(&h, &task("1", json!({})), &ctx(), LIMIT).unwrap_err();
    assert_eq!(err.error_type, "TIMEOUT");
    assert!(err.retryable);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    // The task's deadline bounds the request as well.
    let short = taskworker::Context::new(Duration::from_millis(300), 1, "w".into());
    let err = run(
        &http(format!("{base}/slow")),
        &task("1", json!({})),
        &short,
        LIMIT,
    )
    .unwrap_err();
    assert_eq!(err.error_type, "TIMEOUT");
}

#[test]
fn an_oversized_answer_is_a_validation_failure() {
    let base = server();
    let err = run(
        &http(format!("{base}/big")),
        &task("1", json!({})),
        &ctx(),
        LIMIT,
    )
    .unwrap_err();
    assert_eq!(err.error_type, "VALIDATION");
    assert!(!err.retryable);
    assert!(err.message.contains("max_response"), "{}", err.message);
    let h = handler(json!({"http": {"url": format!("{base}/big"), "max_response": "3M"}}));
    assert!(run(&h, &task("1", json!({})), &ctx(), LIMIT).is_ok());
}

#[test]
fn a_refused_connection_is_retryable() {
    // Bind then drop, so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = run(
        &http(format!("http://127.0.0.1:{port}/x")),
        &task("1", json!({})),
        &ctx(),
        LIMIT,
    )
    .unwrap_err();
    assert!(err.retryable, "{err}");
}
