//! Benchmark of the reference server's operator reads with 100,000 tasks in
//! the store: `GET /tasks?status=queued&limit=50` (and its next page),
//! `GET /types`, `GET /stats`, `GET /health` and `GET /tasks/{id}`, in
//! memory and on Redis (a `redis-server` started here on a free loopback
//! port, when installed). Each figure is the time from request to answer
//! over a keep-alive loopback connection, so it bounds the server's own
//! time from above. Run with `cargo bench --bench admin`; prints a
//! Markdown table.

#[path = "../support/mod.rs"]
mod support;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::redis::RedisServer;
use taskworker::{Server, ServerConfig};

const TASKS: usize = 100_000;
const LOADERS: usize = 4;
const SAMPLES: usize = 200;
/// The dashboard's budget per read.
const TARGET: Duration = Duration::from_millis(20);

fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        taskworker::CachingResolver::default(),
    )
}

fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let resp = match (method, body) {
        ("POST", Some(b)) => agent.post(url).send_json(b),
        _ => agent.get(url).call(),
    };
    let mut resp = resp.expect("request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// 100,000 tasks of 10 types and 3 priorities; then some are claimed,
/// completed and failed, so that every status has tasks.
fn load(base: &str) {
    let per = TASKS / LOADERS;
    let handles: Vec<_> = (0..LOADERS)
        .map(|l| {
            let url = format!("{base}/tasks");
            thread::spawn(move || {
                let a = agent();
                for i in 0..per {
                    let n = l * per + i;
                    let priority = ["high", "medium", "low"][n % 3];
                    let body = json!({
                        "id": format!("t{n}"),
                        "type": format!("type{}", n % 10),
                        "priority": priority,
                        "parameters": {"n": n},
                    });
                    assert_eq!(call(&a, "POST", &url, Some(&body)).0, 201);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("load");
    }
    let a = agent();
    for round in 0..10 {
        let claim = json!({"worker_id": format!("bench-{round}"), "max_tasks": 1000});
        let (_, body) = call(&a, "POST", &format!("{base}/tasks/claim"), Some(&claim));
        for (i, task) in body["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let id = task["id"].as_str().unwrap_or_default();
            let report = if i % 2 == 0 {
                ("complete", json!({"result": {"ok": true}}))
            } else if i % 3 == 0 {
                ("fail", json!({"error": "bench", "retryable": false}))
            } else {
                continue;
            };
            call(
                &a,
                "POST",
                &format!("{base}/tasks/{id}/{}", report.0),
                Some(&report.1),
            );
        }
    }
}

/// The median and the 99th percentile of `SAMPLES` GETs of `path`.
fn time(base: &str, path: &str) -> (Duration, Duration) {
    let a = agent();
    let url = format!("{base}{path}");
    assert_eq!(call(&a, "GET", &url, None).0, 200, "{path}");
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            call(&a, "GET", &url, None);
            started.elapsed()
        })
        .collect();
    samples.sort();
    (samples[SAMPLES / 2], samples[SAMPLES * 99 / 100])
}

fn run(label: &str, config: ServerConfig) -> Vec<(String, String, Duration, Duration)> {
    let server = Server::start(config).expect("server starts");
    let base = server.url();
    let loading = Instant::now();
    load(&base);
    eprintln!(
        "{label}: loaded {TASKS} tasks in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    let first = call(
        &agent(),
        "GET",
        &format!("{base}/tasks?status=queued&limit=50"),
        None,
    )
    .1;
    let next = first["next"].as_str().unwrap_or_default().to_string();
    let paths = [
        "/tasks?status=queued&limit=50".to_string(),
        format!("/tasks?status=queued&limit=50&before={next}"),
        "/tasks?status=completed&type=type3&limit=50".to_string(),
        "/tasks?status=queued&priority=low&limit=50".to_string(),
        "/types".to_string(),
        "/stats".to_string(),
        "/health".to_string(),
        "/tasks/t4242".to_string(),
    ];
    paths
        .iter()
        .map(|p| {
            let (median, p99) = time(&base, p);
            (label.to_string(), p.clone(), median, p99)
        })
        .collect()
}

fn main() {
    let mut rows = run("memory", ServerConfig::default());
    if support::redis::redis_installed() {
        let redis = RedisServer::start(&[]);
        let config = ServerConfig {
            store: Some(redis.url()),
            store_prefix: "bench-admin".into(),
            ..ServerConfig::default()
        };
        rows.extend(run("redis", config));
    } else {
        eprintln!("redis-server is not installed: no Redis rows");
    }
    println!(
        "| store | GET | median ms | p99 ms | within {} ms |",
        TARGET.as_millis()
    );
    println!("|---|---|---:|---:|---|");
    for (store, path, median, p99) in rows {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let ok = if p99 <= TARGET { "yes" } else { "no" };
        println!(
            "| {store} | `{path}` | {:.2} | {:.2} | {ok} |",
            ms(median),
            ms(p99)
        );
    }
}
