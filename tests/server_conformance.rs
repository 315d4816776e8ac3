//! Every endpoint and status of the protocol (packaging/PROTOCOL.md) against the reference server.

#![cfg(feature = "server")]

#[macro_use]
mod support;

use serde_json::json;
use support::{start_server, Api};
use taskworker::ServerConfig;

fn server() -> (taskworker::Server, Api) {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    (s, api)
}

fn enqueue_claim_complete_round_trip() {
    let (_s, api) = server();
    let (status, body) = api.post_json(
        "/tasks",
        &json!({"type": "send.email", "parameters": {"to": "a@b"}, "priority": "high", "timeout_seconds": 5}),
    );
    assert_eq!(status, 201);
    let id = body["task"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["task"]["status"], "queued");

    let (status, body) = api.claim("w1", json!({}));
    assert_eq!(status, 200);
    let task = &body["task"];
    assert_eq!(task["id"], id.as_str());
    assert_eq!(task["type"], "send.email");
    assert_eq!(task["parameters"], json!({"to": "a@b"}));
    assert_eq!(task["priority"], "high");
    assert_eq!(task["claimed_by"], "w1");
    assert_eq!(task["attempt"], 1);
    assert_eq!(task["max_attempts"], 3);
    assert_eq!(task["timeout_seconds"], 5.0);
    assert!(task["lease_expires_at"].is_string() && task["created_at"].is_string());
    assert!(body.get("tasks").is_none(), "core form without max_tasks");

    let (status, _) = api.claim("w2", json!({}));
    assert_eq!(status, 404, "nothing left to claim");

    let (status, _) = api.post_json(
        &format!("/tasks/{id}/complete"),
        &json!({"result": {"ok": 1}, "worker_id": "w1"}),
    );
    assert_eq!(status, 200);
    let t = api.task(&id);
    assert_eq!(t["status"], "completed");
    assert_eq!(t["result"], json!({"ok": 1}));
    assert_eq!(t["history"][0]["outcome"], "completed");

    let (status, _) = api.post_json(&format!("/tasks/{id}/complete"), &json!({"result": 1}));
    assert_eq!(status, 409, "already completed");
    let (status, _) = api.post_json("/tasks/nope/complete", &json!({"result": 1}));
    assert_eq!(status, 404);
}

fn batch_types_and_priorities() {
    let (_s, api) = server();
    for (ty, prio) in [("a", "low"), ("b", "high"), ("a", "high"), ("a", "medium")] {
        let (status, _) = api.post_json("/tasks", &json!({"type": ty, "priority": prio}));
        assert_eq!(status, 201);
    }
    let (status, body) = api.claim("w", json!({"types": ["a"], "max_tasks": 10}));
    assert_eq!(status, 200);
    let prios: Vec<&str> = body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["priority"].as_str().unwrap())
        .collect();
    assert_eq!(prios, ["high", "medium", "low"]);
    let (status, body) = api.claim("w", json!({"max_tasks": 1}));
    assert_eq!(status, 200);
    assert_eq!(body["tasks"][0]["type"], "b");
}

fn fail_retries_or_fails_and_checks_the_holder() {
    let s = start_server(ServerConfig {
        retry_backoff: std::time::Duration::from_millis(1),
        ..ServerConfig::default()
    });
    let api = Api::new(s.url());
    let id = api.enqueue("t", json!({}));
    api.claim("w", json!({}));
    let (status, _) = api.post_json(
        &format!("/tasks/{id}/fail"),
        &json!({"error": "x", "worker_id": "other"}),
    );
    assert_eq!(status, 409, "not the holder");
    let (status, body) = api.post_json(
        &format!("/tasks/{id}/fail"),
        &json!({"error": "later", "error_type": "RATE_LIMIT", "retryable": true, "worker_id": "w"}),
    );
    assert_eq!((status, body["status"].as_str()), (200, Some("queued")));
    assert!(support::wait_until(
        std::time::Duration::from_secs(10),
        || api.claim("w", json!({})).0 == 200
    ));
    let (status, body) = api.post_json(
        &format!("/tasks/{id}/fail"),
        &json!({"error": "bad input", "error_type": "VALIDATION", "retryable": false, "traceback": "tb"}),
    );
    assert_eq!((status, body["status"].as_str()), (200, Some("failed")));
    let t = api.task(&id);
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"], "bad input");
    assert_eq!(t["error_type"], "VALIDATION");
    assert_eq!(t["attempt"], 2);
    assert_eq!(t["history"].as_array().unwrap().len(), 2);
}

fn heartbeat_extends_only_for_the_holder() {
    let (_s, api) = server();
    let id = api.enqueue("t", json!({}));
    let (status, _) = api.post_json(
        &format!("/tasks/{id}/heartbeat"),
        &json!({"worker_id": "w"}),
    );
    assert_eq!(status, 409, "not claimed");
    api.claim("w", json!({}));
    let (status, body) = api.post_json(
        &format!("/tasks/{id}/heartbeat"),
        &json!({"worker_id": "w"}),
    );
    assert_eq!(status, 200);
    assert!(body["lease_expires_at"].is_string());
    let (status, _) = api.post_json(
        &format!("/tasks/{id}/heartbeat"),
        &json!({"worker_id": "x"}),
    );
    assert_eq!(status, 409);
    let (status, _) = api.post_json("/tasks/unknown/heartbeat", &json!({"worker_id": "w"}));
    assert_eq!(status, 404);
    let (status, body) = api.post_json(&format!("/tasks/{id}/heartbeat"), &json!({}));
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("worker_id"));
}

fn enqueue_is_idempotent_by_id_and_ids_are_percent_decoded() {
    let (_s, api) = server();
    let body = json!({"id": "odd id/ü", "type": "t", "delay_seconds": 0});
    let (status, first) = api.post_json("/tasks", &body);
    assert_eq!(status, 201);
    let (status, again) = api.post_json("/tasks", &body);
    assert_eq!(status, 200);
    assert_eq!(first["task"]["id"], again["task"]["id"]);
    assert_eq!(api.task("odd id/ü")["status"], "queued");
    let (status, _) = api.get("/tasks/missing");
    assert_eq!(status, 404);
}

fn delayed_tasks_are_not_claimable_early() {
    let (_s, api) = server();
    let (status, _) = api.post_json("/tasks", &json!({"type": "t", "delay_seconds": 0.3}));
    assert_eq!(status, 201);
    assert_eq!(api.claim("w", json!({})).0, 404);
    assert!(support::wait_until(
        std::time::Duration::from_secs(10),
        || api.claim("w", json!({})).0 == 200
    ));
}

fn list_health_and_metrics() {
    let (_s, api) = server();
    let a = api.enqueue("x", json!({}));
    let b = api.enqueue("y", json!({}));
    let c = api.enqueue("x", json!({}));
    api.claim("w", json!({"types": ["y"]}));
    let (status, body) = api.get("/tasks");
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [c.as_str(), b.as_str(), a.as_str()], "newest first");
    let (_, body) = api.get("/tasks?status=queued&type=x&limit=1");
    assert_eq!(body["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(body["tasks"][0]["id"], c.as_str());
    assert_eq!(api.get("/tasks?status=bogus").0, 400);
    assert_eq!(api.get("/tasks?limit=x").0, 400);

    let (status, health) = api.get("/health");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "healthy");
    assert!(health["uptime_seconds"].is_number());
    assert_eq!(
        health["counts"],
        json!({"scheduled": 0, "queued": 2, "claimed": 1, "completed": 0, "failed": 0,
               "cancelled": 0, "expired": 0})
    );

    let (status, text) = api.get_text("/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("taskworker_server_tasks{status=\"queued\"} 2"));
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').expect("name value");
        assert!(
            !name.is_empty() && value.parse::<f64>().is_ok(),
            "bad sample line {line:?}"
        );
    }
}

fn bad_requests_get_their_statuses() {
    let (_s, api) = server();
    let (status, body) = api.post_raw("/tasks", b"{not json");
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("JSON"));
    let (status, body) = api.post_json("/tasks", &json!({"parameters": {}}));
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("type"));
    let (status, body) = api.post_json("/tasks/claim", &json!({"worker_id": 7}));
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("worker_id"));
    let (status, _) = api.post_json("/tasks", &json!({"type": "t", "priority": "urgent"}));
    assert_eq!(status, 400);
    let big = vec![b' '; (1 << 20) + 10];
    assert_eq!(api.post_raw("/tasks", &big).0, 413);
    assert_eq!(api.get("/nope").0, 404);
    assert_eq!(api.get("/tasks/claim").0, 405);
    assert_eq!(api.post_json("/health", &json!({})).0, 405);
    assert_eq!(api.post_json("/tasks/a/b/c/d", &json!({})).0, 404);
    assert_eq!(api.get("/tasks/%ZZ").0, 400);
}

#[test]
fn api_key_is_required_when_set() {
    let s = start_server(ServerConfig {
        api_key: Some("s3cret".into()),
        ..ServerConfig::default()
    });
    let anon = Api::new(s.url());
    let wrong = Api::new(s.url()).with_key("nope");
    let right = Api::new(s.url()).with_key("s3cret");
    assert_eq!(anon.claim("w", json!({})).0, 401);
    assert_eq!(wrong.post_json("/tasks", &json!({"type": "t"})).0, 401);
    assert_eq!(wrong.get("/tasks").0, 401);
    assert_eq!(anon.get("/health").0, 200, "health stays open");
    assert_eq!(right.post_json("/tasks", &json!({"type": "t"})).0, 201);
    assert_eq!(right.claim("w", json!({})).0, 200);
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let s = start_server(ServerConfig::default());
    let err = taskworker::Server::start(ServerConfig {
        listen: s.addr().to_string(),
        ..ServerConfig::default()
    })
    .err()
    .expect("second bind fails");
    assert!(err.to_string().contains(&s.addr().to_string()), "{err}");
}

per_store!(
    enqueue_claim_complete_round_trip,
    batch_types_and_priorities,
    fail_retries_or_fails_and_checks_the_holder,
    heartbeat_extends_only_for_the_holder,
    enqueue_is_idempotent_by_id_and_ids_are_percent_decoded,
    delayed_tasks_are_not_claimable_early,
    list_health_and_metrics,
    bad_requests_get_their_statuses,
);
