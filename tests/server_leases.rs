//! Leases run out: the task comes back with attempt + 1, and past
//! max_attempts it fails with LEASE_EXPIRED.

#![cfg(feature = "server")]

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::json;
use support::{start_server, wait_until, Api};
use taskworker::ServerConfig;

fn an_expired_lease_redelivers_then_fails() {
    let s = start_server(ServerConfig {
        lease: Duration::from_millis(200),
        max_attempts: 2,
        ..ServerConfig::default()
    });
    let api = Api::new(s.url());
    let id = api.enqueue("t", json!({}));
    let (_, first) = api.claim("w1", json!({}));
    assert_eq!(first["task"]["attempt"], 1);

    let (_, second) = api.claim("w2", json!({"wait_seconds": 10}));
    assert_eq!(
        second["task"]["id"],
        id.as_str(),
        "redelivered once the lease ran out"
    );
    assert_eq!(second["task"]["attempt"], 2);
    let (status, _) = api.post_json(
        &format!("/tasks/{id}/complete"),
        &json!({"result": 1, "worker_id": "w1"}),
    );
    assert_eq!(status, 409, "the first worker lost its lease");

    assert!(wait_until(Duration::from_secs(10), || api.task(&id)
        ["status"]
        == "failed"));
    let t = api.task(&id);
    assert_eq!(t["error_type"], "LEASE_EXPIRED");
    let outcomes: Vec<&str> = t["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["lease_expired", "lease_expired"]);
}

fn heartbeats_keep_a_lease() {
    // Beats 10 times a lease, 15 of them: the task outlives its lease by
    // half again, while each beat has 1.8 s to arrive on a busy machine.
    let s = start_server(ServerConfig {
        lease: Duration::from_secs(2),
        ..ServerConfig::default()
    });
    let api = Api::new(s.url());
    let id = api.enqueue("t", json!({}));
    api.claim("w", json!({}));
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(200));
        let (status, _) = api.post_json(
            &format!("/tasks/{id}/heartbeat"),
            &json!({"worker_id": "w"}),
        );
        assert_eq!(status, 200);
    }
    let (status, _) = api.post_json(
        &format!("/tasks/{id}/complete"),
        &json!({"result": null, "worker_id": "w"}),
    );
    assert_eq!(status, 200);
}

per_store!(
    an_expired_lease_redelivers_then_fails,
    heartbeats_keep_a_lease,
);
