//! What only the Redis store has: servers that share one queue, and Redis
//! going away and coming back.

#![cfg(feature = "server")]

mod support;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::redis::{redis_installed, RedisServer};
use support::{wait_until, Api};
use taskworker::{Server, ServerConfig};

fn serve(url: &str) -> Server {
    Server::start(ServerConfig {
        store: Some(url.to_string()),
        store_prefix: "shared".into(),
        ..ServerConfig::default()
    })
    .expect("server starts")
}

fn skip() -> bool {
    let skip = !redis_installed();
    if skip {
        support::skip("redis-server is not installed (apt-get install redis-server)");
    }
    skip
}

#[test]
fn a_claim_parked_on_one_server_is_woken_by_an_enqueue_through_another() {
    if skip() {
        return;
    }
    let redis = RedisServer::start(&[]);
    let (a, b) = (serve(&redis.url()), serve(&redis.url()));
    let (on_a, on_b) = (Api::new(a.url()), Api::new(b.url()));
    let mut latencies = Vec::new();
    for round in 0..20 {
        let parked = {
            let on_a = on_a.clone();
            thread::spawn(move || {
                let (status, body) = on_a.claim("w-a", json!({"wait_seconds": 10, "types": ["x"]}));
                (status, body, Instant::now())
            })
        };
        assert!(wait_until(Duration::from_secs(5), || {
            let (_, text) = on_a.get_text("/metrics");
            text.contains("taskworker_server_waiting_claims 1")
        }));
        let sent = Instant::now();
        let id = on_b.enqueue("x", json!({"round": round}));
        let (status, body, got) = parked.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["task"]["id"], id.as_str());
        latencies.push(got.duration_since(sent));
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    assert!(p50 <= Duration::from_millis(20), "p50 wake-up {p50:?}");
    eprintln!(
        "cross-server wake-up p50 {p50:?}, max {:?}",
        latencies.last().unwrap()
    );
    // One task, two servers, many claimers: handed out once.
    let id = on_a.enqueue("y", json!({}));
    let winners: Vec<_> = (0..8)
        .map(|i| {
            let api = if i % 2 == 0 {
                on_a.clone()
            } else {
                on_b.clone()
            };
            thread::spawn(move || api.claim(&format!("w{i}"), json!({"types": ["y"]})).0)
        })
        .map(|h| h.join().unwrap())
        .filter(|s| *s == 200)
        .collect();
    assert_eq!(winners.len(), 1, "task {id} handed out once");
}

#[test]
fn while_redis_is_down_calls_answer_503_and_health_names_the_store() {
    if skip() {
        return;
    }
    let mut redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let server = serve(&redis.url());
    let api = Api::new(server.url());
    let id = api.enqueue("x", json!({}));
    // Killed as a crash would: the enqueue above is in its append-only file.
    let port = redis.port;
    redis.restart_after(|| {
        let resp = ureq_post(&server.url(), "/tasks/claim", r#"{"worker_id":"w"}"#);
        assert_eq!(resp.0, 503, "{}", resp.2);
        assert!(resp.1.is_some(), "Retry-After on a 503");
        let (status, body) = api.get("/health");
        assert_eq!(status, 503);
        assert!(
            body["reason"].as_str().unwrap().contains(&port.to_string()),
            "{body}"
        );
    });
    assert!(wait_until(Duration::from_secs(10), || api.get("/health").0 == 200));
    let (status, body) = api.claim("w", json!({}));
    assert_eq!(
        (status, body["task"]["id"].as_str()),
        (200, Some(id.as_str()))
    );
}

/// Status, `Retry-After` and body of a POST.
fn ureq_post(base: &str, path: &str, body: &str) -> (u16, Option<String>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(format!("{base}{path}"))
        .content_type("application/json")
        .send(body)
        .expect("the server answers");
    let retry = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (resp.status().as_u16(), retry, text)
}

/// A server over `redis` with `n` tasks claimed by worker `w`; their ids.
fn claimed_over(redis: &RedisServer, n: usize) -> (Server, Api, Vec<String>) {
    let server = serve(&redis.url());
    let api = Api::new(server.url());
    let ids: Vec<String> = (0..n).map(|_| api.enqueue("t", json!({}))).collect();
    let (status, body) = api.claim("w", json!({"types": ["t"], "max_tasks": n}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tasks"].as_array().map(Vec::len), Some(n), "{body}");
    (server, api, ids)
}

/// `POST /tasks/report` completing every one of `ids` as worker `w`;
/// asserts each got 200.
fn report_all(api: &Api, ids: &[String]) {
    send_report(api, ids);
    for id in ids {
        assert_eq!(api.task(id)["status"], "completed", "task {id}");
    }
}

/// The request of [`report_all`], without reading the tasks back.
fn send_report(api: &Api, ids: &[String]) {
    let outcomes: Vec<_> = ids
        .iter()
        .map(|id| json!({"id": id, "complete": {"result": {"id": id}}}))
        .collect();
    let (status, body) = api.post_json(
        "/tasks/report",
        &json!({"worker_id": "w", "outcomes": outcomes}),
    );
    assert_eq!(status, 200, "{body}");
    for result in body["results"].as_array().expect("results") {
        assert_eq!(result["status"], 200, "{body}");
    }
}

/// Reads of its clients' sockets Redis makes while one batch report
/// completes `ids`.
fn reads_for_batch(redis: &RedisServer, api: &Api, ids: &[String]) -> u64 {
    let before = redis.reads_processed();
    send_report(api, ids);
    redis.reads_processed() - before
}

#[test]
fn a_batch_report_goes_to_redis_in_one_round_trip() {
    if skip() {
        return;
    }
    let redis = RedisServer::start(&[]);
    let (_server, api, ids) = claimed_over(&redis, 51);
    // The first report loads the script into Redis.
    report_all(&api, &ids[..1]);
    // 50 single calls take 50 reads; the batch takes one for its script
    // (or a few, split by the socket), besides this check's own and the
    // lease sweep's (a few a second).
    let reads = reads_for_batch(&redis, &api, &ids[1..]);
    eprintln!("{reads} Redis reads for one batch report of 50");
    assert!(reads < 25, "{reads} reads for one batch of 50");
}

#[test]
fn a_batch_report_to_a_redis_that_lost_its_scripts_is_applied_whole() {
    if skip() {
        return;
    }
    let redis = RedisServer::start(&[]);
    let (_server, api, ids) = claimed_over(&redis, 50);
    report_all(&api, &ids[..1]);
    // As after a restart of Redis, which keeps no scripts.
    redis.command(&["SCRIPT", "FLUSH"]);
    // The batch, its script loaded, the batch again.
    let reads = reads_for_batch(&redis, &api, &ids[1..]);
    eprintln!("{reads} Redis reads for one batch report of 49 after SCRIPT FLUSH");
    assert!(reads < 25, "{reads} reads for one batch of 49");
    for id in &ids {
        assert_eq!(api.task(id)["status"], "completed", "task {id}");
    }
}
