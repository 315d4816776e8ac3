//! Long polls wake on enqueue, claim ids repeat, and claim cancel releases.

#![cfg(feature = "server")]

#[macro_use]
mod support;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{start_server, wait_until, Api};
use taskworker::ServerConfig;

fn a_parked_claim_returns_soon_after_an_enqueue() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    let poller = api.clone();
    let started = Instant::now();
    let parked = thread::spawn(move || poller.claim("w", json!({"wait_seconds": 20})));
    assert!(wait_until(Duration::from_secs(10), || {
        api.get_text("/metrics")
            .1
            .contains("taskworker_server_waiting_claims 1")
    }));
    let id = api.enqueue("t", json!({}));
    let (status, body) = parked.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["task"]["id"], id.as_str());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken, not timed out"
    );
}

fn a_long_poll_with_nothing_ends_at_its_wait() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    let started = Instant::now();
    let (status, _) = api.claim("w", json!({"wait_seconds": 0.3}));
    assert_eq!(status, 404);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

fn a_parked_claim_of_other_types_is_not_woken() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    let poller = api.clone();
    let parked =
        thread::spawn(move || poller.claim("w", json!({"wait_seconds": 0.5, "types": ["a"]})));
    assert!(wait_until(Duration::from_secs(10), || {
        api.get_text("/metrics")
            .1
            .contains("taskworker_server_waiting_claims 1")
    }));
    api.enqueue("b", json!({}));
    assert_eq!(parked.join().unwrap().0, 404);
}

fn a_repeated_claim_id_returns_the_same_tasks() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    for _ in 0..3 {
        api.enqueue("t", json!({}));
    }
    let claim = json!({"max_tasks": 2, "claim_id": "w-0001"});
    let (_, first) = api.claim("w", claim.clone());
    let (_, again) = api.claim("w", claim);
    assert_eq!(first["tasks"].as_array().unwrap().len(), 2);
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&first), ids(&again));
    let (_, other) = api.claim("w", json!({"max_tasks": 5, "claim_id": "w-0002"}));
    assert_eq!(
        other["tasks"].as_array().unwrap().len(),
        1,
        "only the third task is left"
    );
}

fn claim_cancel_releases_tasks_and_answers_a_parked_claim() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    let id = api.enqueue("t", json!({}));
    let (_, body) = api.claim("w", json!({"claim_id": "c-1"}));
    assert_eq!(body["task"]["id"], id.as_str());
    let (status, body) = api.post_json(
        "/tasks/claim/cancel",
        &json!({"worker_id": "w", "claim_id": "c-1"}),
    );
    assert_eq!((status, body["released"].as_i64()), (200, Some(1)));
    let t = api.task(&id);
    assert_eq!(t["status"], "queued");
    assert_eq!(t["attempt"], 0, "a released task does not count an attempt");

    let (_, body) = api.claim("w", json!({}));
    assert_eq!(body["task"]["attempt"], 1);

    let poller = api.clone();
    let started = Instant::now();
    let parked =
        thread::spawn(move || poller.claim("w", json!({"wait_seconds": 30, "claim_id": "c-2"})));
    assert!(wait_until(Duration::from_secs(10), || {
        api.get_text("/metrics")
            .1
            .contains("taskworker_server_waiting_claims 1")
    }));
    let (status, body) = api.post_json(
        "/tasks/claim/cancel",
        &json!({"worker_id": "w", "claim_id": "c-2"}),
    );
    assert_eq!((status, body["released"].as_i64()), (200, Some(0)));
    assert_eq!(parked.join().unwrap().0, 404);
    assert!(started.elapsed() < Duration::from_secs(20));
    let (status, body) = api.post_json("/tasks/claim/cancel", &json!({"worker_id": "w"}));
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("claim_id"));
}

fn dropping_the_server_answers_parked_claims() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    let poller = api.clone();
    let parked = thread::spawn(move || {
        let started = Instant::now();
        // Answered "no task", or the connection closed: either way, at once.
        let _ = poller.try_post_json(
            "/tasks/claim",
            &json!({"worker_id": "w", "wait_seconds": 60}),
        );
        started.elapsed()
    });
    assert!(wait_until(Duration::from_secs(10), || {
        api.get_text("/metrics")
            .1
            .contains("taskworker_server_waiting_claims 1")
    }));
    drop(s);
    assert!(parked.join().unwrap() < Duration::from_secs(30));
}

per_store!(
    a_parked_claim_returns_soon_after_an_enqueue,
    a_long_poll_with_nothing_ends_at_its_wait,
    a_parked_claim_of_other_types_is_not_woken,
    a_repeated_claim_id_returns_the_same_tasks,
    claim_cancel_releases_tasks_and_answers_a_parked_claim,
    dropping_the_server_answers_parked_claims,
);
