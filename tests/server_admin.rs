//! The reference server's operator endpoints on every store: the seven
//! statuses, scheduled and expiring tasks, cancel / retry / delete, paused
//! types, `GET /types`, `/workers`, `/stats`, and `GET /tasks` paging that
//! stays correct while tasks move.

#![cfg(feature = "server")]

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use support::redis::Kind;
use support::{start_server, wait_until, Api};
use taskworker::{Server, ServerConfig};

fn enqueue(api: &Api, body: Value) -> Value {
    let (status, answer) = api.post_json("/tasks", &body);
    assert_eq!(status, 201, "enqueue {body}: {answer}");
    answer["task"].clone()
}

/// An RFC 3339 time `ms` milliseconds from now (before now when negative).
fn in_millis(ms: i64) -> String {
    let now = SystemTime::now();
    let offset = Duration::from_millis(ms.unsigned_abs());
    let at = if ms < 0 { now - offset } else { now + offset };
    taskworker::format_timestamp(at)
}

fn claim_ids(api: &Api, worker: &str, extra: Value) -> Vec<String> {
    let (status, body) = api.claim(worker, extra);
    match status {
        404 => vec![],
        200 => body["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![body["task"].clone()])
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect(),
        other => panic!("claim: {other} {body}"),
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

fn statuses_and_scheduled_tasks() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    let first = enqueue(&api, json!({"id": "first", "type": "t"}));
    assert_eq!(first["status"], "queued");
    let later = enqueue(
        &api,
        json!({"id": "later", "type": "t", "priority": "high", "delay_seconds": 1}),
    );
    assert_eq!(later["status"], "scheduled");
    assert!(later["run_at"].is_string(), "{later}");
    let at = enqueue(
        &api,
        json!({"id": "at", "type": "t", "run_at": in_millis(3_600_000)}),
    );
    assert_eq!(at["status"], "scheduled");
    let health = api.get("/health").1;
    assert_eq!(
        health["counts"],
        json!({"scheduled": 2, "queued": 1, "claimed": 0, "completed": 0, "failed": 0,
               "cancelled": 0, "expired": 0})
    );
    let metrics = api.get_text("/metrics").1;
    assert!(
        metrics.contains("taskworker_server_tasks{status=\"scheduled\"} 2"),
        "{metrics}"
    );
    assert_eq!(ids(&api.get("/tasks?status=scheduled").1), ["at", "later"]);
    for bad in [
        json!({"type": "t", "run_at": "soon"}),
        json!({"type": "t", "expires_at": "2025-13-01T00:00:00Z"}),
        json!({"type": "t", "run_at": in_millis(1_000), "delay_seconds": 1}),
    ] {
        let (status, body) = api.post_json("/tasks", &bad);
        assert_eq!(status, 400, "{bad}: {body}");
        let field = ["run_at", "expires_at", "delay_seconds"]
            .into_iter()
            .find(|f| bad.get(*f).is_some())
            .unwrap();
        assert!(body["error"].as_str().unwrap().contains(field), "{body}");
    }
    // A high-priority task scheduled for later is not handed out before its time...
    assert_eq!(claim_ids(&api, "w", json!({"max_tasks": 5})), ["first"]);
    assert!(wait_until(Duration::from_secs(30), || api.task("later")
        ["status"]
        == "queued"));
    // ...then it is queued; a medium one queued after it comes after it.
    enqueue(&api, json!({"id": "after", "type": "t"}));
    assert_eq!(
        claim_ids(&api, "w", json!({"max_tasks": 5})),
        ["later", "after"]
    );
    assert_eq!(api.task("at")["status"], "scheduled");
}

fn scheduled_tasks_queue_in_the_order_they_became_ready() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    enqueue(&api, json!({"id": "s", "type": "t", "delay_seconds": 0.5}));
    enqueue(&api, json!({"id": "q", "type": "t"}));
    assert!(wait_until(Duration::from_secs(30), || api.task("s")
        ["status"]
        == "queued"));
    enqueue(&api, json!({"id": "r", "type": "t"}));
    assert_eq!(
        claim_ids(&api, "w", json!({"max_tasks": 5})),
        ["q", "s", "r"],
        "FIFO by the time each became ready"
    );
}

fn expired_tasks_are_never_handed_out() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    let t = enqueue(
        &api,
        json!({"id": "soon", "type": "t", "expires_at": in_millis(300)}),
    );
    assert!(t["expires_at"].is_string(), "{t}");
    enqueue(
        &api,
        json!({"id": "gone", "type": "t", "expires_at": in_millis(-5_000)}),
    );
    assert_eq!(api.task("gone")["status"], "expired");
    std::thread::sleep(Duration::from_millis(400));
    assert!(claim_ids(&api, "w", json!({"max_tasks": 5})).is_empty());
    let soon = api.task("soon");
    assert_eq!(soon["status"], "expired");
    assert_eq!(soon["error_type"], "EXPIRED");
    assert_eq!(api.get("/health").1["counts"]["expired"], 2);
    // A retried expired task runs: the operator asked for it.
    let (status, body) = api.post_json("/tasks/soon/retry", &json!({}));
    assert_eq!(
        (status, body["task"]["status"].as_str()),
        (200, Some("queued"))
    );
    assert_eq!(claim_ids(&api, "w", json!({})), ["soon"]);
}

fn cancel_retry_and_delete() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    for id in ["a", "b", "c"] {
        enqueue(&api, json!({"id": id, "type": "t"}));
    }
    enqueue(&api, json!({"id": "s", "type": "t", "delay_seconds": 3600}));
    let post = |path: &str| api.post_json(path, &json!({}));
    assert_eq!(post("/tasks/s/cancel").1["task"]["status"], "cancelled");
    let (status, body) = post("/tasks/a/cancel");
    assert_eq!(
        (status, body["task"]["status"].as_str()),
        (200, Some("cancelled"))
    );
    let (status, body) = post("/tasks/a/cancel");
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("cancelled"),
        "{body}"
    );
    assert_eq!(
        post("/tasks/b/retry").0,
        409,
        "a queued task is not retried"
    );
    // A claimed task: its worker's next heartbeat and reports get 410.
    assert_eq!(claim_ids(&api, "w", json!({})), ["b"]);
    assert_eq!(api.task("b")["status"], "claimed");
    let (status, _) = api.delete_path("/tasks/b");
    assert_eq!(status, 409, "a claimed task is cancelled first");
    assert_eq!(post("/tasks/b/cancel").0, 200);
    let hb = api.post_json("/tasks/b/heartbeat", &json!({"worker_id": "w"}));
    assert_eq!(hb.0, 410, "{hb:?}");
    let done = api.post_json("/tasks/b/complete", &json!({"result": 1, "worker_id": "w"}));
    assert_eq!(done.0, 410, "{done:?}");
    let failed = api.post_json("/tasks/b/fail", &json!({"error": "x", "worker_id": "w"}));
    assert_eq!(failed.0, 410, "{failed:?}");
    let b = api.task("b");
    assert_eq!(b["history"][0]["outcome"], "cancelled");
    // Retry: queued again now, with a fresh attempt count.
    let (status, body) = post("/tasks/b/retry");
    assert_eq!((status, body["task"]["attempt"].as_u64()), (200, Some(0)));
    assert_eq!(
        claim_ids(&api, "w", json!({"max_tasks": 5})),
        ["c", "b"],
        "a retried task queues behind those ready before it"
    );
    assert_eq!(api.task("b")["attempt"], 1);
    // Delete: any task no worker holds.
    let (status, body) = api.delete_path("/tasks/a");
    assert_eq!((status, body["deleted"].as_str()), (200, Some("a")));
    assert_eq!(api.get("/tasks/a").0, 404);
    assert_eq!(api.delete_path("/tasks/s").0, 200);
    for path in ["/tasks/nope/cancel", "/tasks/nope/retry"] {
        assert_eq!(post(path).0, 404, "{path}");
    }
    assert_eq!(api.delete_path("/tasks/nope").0, 404);
    let counts = api.get("/health").1["counts"].clone();
    assert_eq!(counts["claimed"], 2);
    assert_eq!(counts["cancelled"], 0);
    assert_eq!(counts["scheduled"], 0);
}

fn paused_types_are_skipped_and_resume_wakes_a_parked_claim() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    let post = |path: &str| api.post_json(path, &json!({}));
    let (status, body) = post("/types/a/pause");
    assert_eq!((status, body["paused"].as_bool()), (200, Some(true)));
    enqueue(&api, json!({"id": "a1", "type": "a", "priority": "high"}));
    enqueue(&api, json!({"id": "b1", "type": "b"}));
    assert_eq!(claim_ids(&api, "w", json!({"max_tasks": 5})), ["b1"]);
    assert!(claim_ids(&api, "w", json!({"types": ["a"]})).is_empty());
    let types = api.get("/types").1;
    assert_eq!(
        types["types"],
        json!([
            {"type": "a", "paused": true, "counts": {"scheduled": 0, "queued": 1, "claimed": 0,
              "completed": 0, "failed": 0, "cancelled": 0, "expired": 0}},
            {"type": "b", "paused": false, "counts": {"scheduled": 0, "queued": 0, "claimed": 1,
              "completed": 0, "failed": 0, "cancelled": 0, "expired": 0}},
        ])
    );
    let parked = api.clone();
    let started = Instant::now();
    let waiter = std::thread::spawn(move || {
        claim_ids(&parked, "w2", json!({"types": ["a"], "wait_seconds": 30}))
    });
    assert!(wait_until(Duration::from_secs(10), || {
        api.get_text("/metrics")
            .1
            .contains("taskworker_server_waiting_claims 1")
    }));
    assert_eq!(post("/types/a/resume").0, 200);
    assert_eq!(waiter.join().unwrap(), ["a1"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "resume woke the parked claim instead of its timeout"
    );
    assert_eq!(post("/types/%2F/pause").1["type"], "/");
    let long = format!("/types/{}/pause", "x".repeat(2000));
    let (status, body) = post(&long);
    assert_eq!(status, 400, "{body}");
    assert_eq!(api.get("/types/a/pause").0, 405);
}

fn a_retry_wakes_a_parked_claim() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    enqueue(&api, json!({"id": "r", "type": "t"}));
    assert_eq!(api.post_json("/tasks/r/cancel", &json!({})).0, 200);
    let parked = api.clone();
    let started = Instant::now();
    let waiter = std::thread::spawn(move || {
        claim_ids(&parked, "w", json!({"types": ["t"], "wait_seconds": 30}))
    });
    assert!(wait_until(Duration::from_secs(10), || {
        api.get_text("/metrics")
            .1
            .contains("taskworker_server_waiting_claims 1")
    }));
    assert_eq!(api.post_json("/tasks/r/retry", &json!({})).0, 200);
    assert_eq!(waiter.join().unwrap(), ["r"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the retry woke the parked claim instead of its timeout"
    );
}

fn listing_pages_stay_correct_while_tasks_move() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    for i in 0..30 {
        let prio = ["high", "medium", "low"][i % 3];
        let ty = if i % 2 == 0 { "even" } else { "odd" };
        enqueue(
            &api,
            json!({"id": format!("t{i:02}"), "type": ty, "priority": prio}),
        );
    }
    let mut seen = Vec::new();
    let mut path = "/tasks?status=queued&limit=7".to_string();
    let mut moved = Vec::new();
    loop {
        let (status, page) = api.get(&path);
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page));
        // Between pages, tasks leave the queue (claimed: the best first).
        moved.extend(claim_ids(&api, "w", json!({"max_tasks": 2})));
        match page["next"].as_str() {
            Some(next) => path = format!("/tasks?status=queued&limit=7&before={next}"),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no task twice: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
    for i in 0..30 {
        let id = format!("t{i:02}");
        assert!(
            seen.contains(&id) || moved.contains(&id),
            "{id} was skipped though it stayed queued"
        );
    }
    let page = api.get("/tasks?type=even&priority=high&limit=100").1;
    assert_eq!(ids(&page), ["t24", "t18", "t12", "t06", "t00"]);
    assert!(page["next"].is_null());
    let page = api.get("/tasks?status=claimed&type=odd").1;
    assert!(ids(&page).iter().all(|id| moved.contains(id)));
    // A filter without an index of its own pages the same way.
    let all = api.get("/tasks?status=queued&limit=1000").1;
    let low: Vec<String> = all["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["priority"] == "low")
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let mut paged = Vec::new();
    let mut path = "/tasks?status=queued&priority=low&limit=2".to_string();
    loop {
        let page = api.get(&path).1;
        paged.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/tasks?status=queued&priority=low&limit=2&before={next}"),
            None => break,
        }
    }
    assert!(!low.is_empty());
    assert_eq!(paged, low);
    assert_eq!(api.get("/tasks?before=42").0, 400);
    assert_eq!(api.get("/tasks?priority=urgent").0, 400);
}

fn workers_stats_and_history() {
    let s = start_server(ServerConfig {
        retry_backoff: Duration::from_millis(10),
        ..ServerConfig::default()
    });
    let api = Api::new(s.url());
    let stats = api.get("/stats").1;
    assert!(stats["oldest_queued_seconds"].is_null(), "{stats}");
    for id in ["a", "b"] {
        enqueue(&api, json!({"id": id, "type": "t"}));
    }
    assert_eq!(claim_ids(&api, "w1", json!({"max_tasks": 2})), ["a", "b"]);
    let fail =
        json!({"error": "later", "error_type": "RATE_LIMIT", "retryable": true, "worker_id": "w1"});
    assert_eq!(api.post_json("/tasks/a/fail", &fail).0, 200);
    let fail = json!({"error": "bad", "retryable": false, "worker_id": "w1"});
    assert_eq!(api.post_json("/tasks/b/fail", &fail).0, 200);
    assert!(wait_until(Duration::from_secs(30), || claim_ids(
        &api,
        "w2",
        json!({"types": ["t"], "max_tasks": 1})
    ) == ["a"]));
    let done = json!({"result": {"ok": true}, "worker_id": "w2"});
    assert_eq!(api.post_json("/tasks/a/complete", &done).0, 200);
    enqueue(&api, json!({"id": "c", "type": "t"}));
    assert_eq!(claim_ids(&api, "w2", json!({})), ["c"]);
    assert_eq!(
        api.post_json("/tasks/c/heartbeat", &json!({"worker_id": "w2"}))
            .0,
        200
    );
    let workers = api.get("/workers").1["workers"].clone();
    let find = |id: &str| {
        workers
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["worker_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {workers}"))
    };
    let (w1, w2) = (find("w1"), find("w2"));
    assert_eq!(
        (&w1["running"], &w1["completed"], &w1["failed"]),
        (&json!(0), &json!(0), &json!(2))
    );
    assert_eq!(
        (&w2["running"], &w2["completed"], &w2["failed"]),
        (&json!(1), &json!(1), &json!(0))
    );
    assert!(w2["last_seen"].is_string());
    let a = api.task("a");
    let history = a["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{a}");
    assert_eq!(
        (
            &history[0]["worker_id"],
            &history[0]["outcome"],
            &history[0]["error_type"]
        ),
        (&json!("w1"), &json!("retry"), &json!("RATE_LIMIT"))
    );
    assert_eq!(
        (&history[1]["worker_id"], &history[1]["outcome"]),
        (&json!("w2"), &json!("completed"))
    );
    assert!(history[1]["claimed_at"].is_string() && history[1]["ended_at"].is_string());
    enqueue(&api, json!({"id": "d", "type": "t", "priority": "low"}));
    let stats = api.get("/stats").1;
    assert!(
        stats["oldest_queued_seconds"].as_f64().unwrap() >= 0.0,
        "{stats}"
    );
    assert_eq!(stats["counts"]["completed"], 1);
    assert_eq!(stats["by_priority"]["low"]["queued"], 1);
    assert_eq!(stats["by_priority"]["medium"]["claimed"], 1);
    let minutes = stats["throughput"].as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let sum = |k: &str| minutes.iter().map(|m| m[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("completed"), sum("failed")), (1, 1));
}

/// A second server that must see what the first did: on the same journal
/// (after the first stops) or the same Redis queue (beside it); `None` in memory.
fn second_server(first: &ServerConfig) -> Option<ServerConfig> {
    match support::redis::kind() {
        Kind::Memory => None,
        Kind::Journal | Kind::Redis => Some(first.clone()),
    }
}

fn actions_survive_a_restart_and_are_shared() {
    let config = match support::redis::kind() {
        Kind::Memory => return,
        Kind::Journal => ServerConfig {
            data: Some(support::temp_dir("admin-restart").join("journal.jsonl")),
            ..ServerConfig::default()
        },
        Kind::Redis => ServerConfig {
            store: Some(support::redis::redis_url()),
            store_prefix: "shared-admin".into(),
            ..ServerConfig::default()
        },
    };
    let first = Server::start(config.clone()).expect("first server");
    let api = Api::new(first.url());
    for id in ["keep", "cancel", "delete", "retry"] {
        enqueue(&api, json!({"id": id, "type": "t"}));
    }
    enqueue(
        &api,
        json!({"id": "later", "type": "t", "delay_seconds": 3600}),
    );
    let post = |path: &str| api.post_json(path, &json!({})).0;
    assert_eq!(post("/tasks/cancel/cancel"), 200);
    assert_eq!(post("/tasks/retry/cancel"), 200);
    assert_eq!(post("/tasks/retry/retry"), 200);
    assert_eq!(api.delete_path("/tasks/delete").0, 200);
    assert_eq!(post("/types/t/pause"), 200);
    assert_eq!(post("/types/u/pause"), 200);
    assert_eq!(post("/types/u/resume"), 200);
    let config = second_server(&config).unwrap();
    let first = if support::redis::kind() == Kind::Journal {
        drop(first);
        None
    } else {
        Some(first)
    };
    let second = Server::start(config).expect("second server");
    let api = Api::new(second.url());
    assert_eq!(api.task("cancel")["status"], "cancelled");
    assert_eq!(api.task("retry")["status"], "queued");
    assert_eq!(api.task("later")["status"], "scheduled");
    assert_eq!(api.get("/tasks/delete").0, 404);
    let types = api.get("/types").1["types"].clone();
    assert_eq!(types[0]["type"], "t");
    assert_eq!(types[0]["paused"], true, "{types}");
    assert_eq!(types.as_array().unwrap().len(), 1, "{types}");
    assert!(
        claim_ids(&api, "w", json!({"max_tasks": 5})).is_empty(),
        "t is paused"
    );
    assert_eq!(api.post_json("/types/t/resume", &json!({})).0, 200);
    assert_eq!(
        claim_ids(&api, "w", json!({"max_tasks": 5})),
        ["keep", "retry"]
    );
    drop(first);
}

per_store!(
    statuses_and_scheduled_tasks,
    scheduled_tasks_queue_in_the_order_they_became_ready,
    expired_tasks_are_never_handed_out,
    cancel_retry_and_delete,
    paused_types_are_skipped_and_resume_wakes_a_parked_claim,
    a_retry_wakes_a_parked_claim,
    listing_pages_stay_correct_while_tasks_move,
    workers_stats_and_history,
    actions_survive_a_restart_and_are_shared,
);
