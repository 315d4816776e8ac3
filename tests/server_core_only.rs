//! `--core-only`: one task per claim, no waiting, no extension fields or endpoints.

#![cfg(feature = "server")]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{start_server, wait_until, Api};
use taskworker::ServerConfig;

#[test]
fn core_only_serves_only_the_core() {
    let s = start_server(ServerConfig {
        core_only: true,
        lease: Duration::from_millis(300),
        ..ServerConfig::default()
    });
    let api = Api::new(s.url());
    let a = api.enqueue("a", json!({}));
    api.enqueue("b", json!({}));
    let (status, body) = api.claim(
        "w",
        json!({"max_tasks": 5, "types": ["b"], "claim_id": "c"}),
    );
    assert_eq!(status, 200);
    let task = body["task"].as_object().expect("the core form, always");
    assert_eq!(task["id"], a.as_str(), "types ignored");
    for ext in [
        "attempt",
        "max_attempts",
        "lease_expires_at",
        "timeout_seconds",
    ] {
        assert!(!task.contains_key(ext), "{ext} present");
    }
    let (status, _) = api.post_json(&format!("/tasks/{a}/heartbeat"), &json!({"worker_id": "w"}));
    assert_eq!(status, 404);
    let (status, _) = api.post_json(
        "/tasks/claim/cancel",
        &json!({"worker_id": "w", "claim_id": "c"}),
    );
    assert_eq!(status, 404);

    api.claim("w", json!({}));
    let started = Instant::now();
    let (status, _) = api.claim("w", json!({"wait_seconds": 20}));
    assert_eq!(status, 404);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once"
    );

    assert!(
        wait_until(Duration::from_secs(10), || api.claim("w2", json!({})).0
            == 200),
        "leases still expire"
    );
    let (status, _) = api.post_json(&format!("/tasks/{a}/complete"), &json!({"result": {}}));
    assert!(status == 200 || status == 409);
}
