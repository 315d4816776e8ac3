//! What the two operator benchmarks (`admin`, `dashboard`) share: a server
//! holding 100,000 tasks in every status, each store it runs on, and how a
//! series of timings is summed up.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskworker::{Server, ServerConfig};

use crate::support::redis::{redis_installed, RedisServer};

/// Tasks in the store.
pub const TASKS: usize = 100_000;
/// Threads that enqueue them.
const LOADERS: usize = 4;
/// Timed requests per figure.
pub const SAMPLES: usize = 200;
/// The budget of one read (a dashboard page, or a JSON read behind one).
pub const TARGET: Duration = Duration::from_millis(20);

/// A keep-alive client that takes every status as an answer.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// POSTs `body`; the answer's status and JSON (`Null` when it is none).
pub fn post(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, Value) {
    let mut resp = agent.post(url).send_json(body).expect("request");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_json().unwrap_or(Value::Null))
}

/// 100,000 tasks of 10 types and 3 priorities, each with a few parameters;
/// then 10 workers claim 1,000 each and complete or fail most of them, so
/// that every list has tasks and the overview a throughput.
fn load(base: &str) {
    let per = TASKS / LOADERS;
    let loaders: Vec<_> = (0..LOADERS)
        .map(|l| {
            let url = format!("{base}/tasks");
            thread::spawn(move || {
                let a = agent();
                for n in l * per..(l + 1) * per {
                    let priority = ["high", "medium", "low"][n % 3];
                    let body = json!({
                        "id": format!("t{n}"),
                        "type": format!("type{}", n % 10),
                        "priority": priority,
                        "parameters": {"n": n, "to": "ada@example.com", "subject": "Invoice"},
                    });
                    assert_eq!(post(&a, &url, &body).0, 201, "enqueue {n}");
                }
            })
        })
        .collect();
    for loader in loaders {
        loader.join().expect("load");
    }
    let a = agent();
    for round in 0..10 {
        let worker = format!("worker-{round}");
        let claim = json!({"worker_id": worker, "max_tasks": 1000});
        let (_, claimed) = post(&a, &format!("{base}/tasks/claim"), &claim);
        for (i, task) in claimed["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let id = task["id"].as_str().unwrap_or_default();
            let (what, body) = match i % 4 {
                0 | 1 => (
                    "complete",
                    json!({"worker_id": worker, "result": {"ok": true}}),
                ),
                2 => (
                    "fail",
                    json!({"worker_id": worker, "error": "bench", "traceback": "line 1\nline 2", "retryable": false}),
                ),
                _ => continue,
            };
            post(&a, &format!("{base}/tasks/{id}/{what}"), &body);
        }
    }
}

/// Runs `measure` on a loaded server in memory, then on Redis when
/// `redis-server` is installed (under the key prefix `bench`); its rows,
/// each first labelled with the store.
pub fn on_each_store<R>(bench: &str, measure: impl Fn(&str) -> Vec<R>) -> Vec<(&'static str, R)> {
    let mut rows = Vec::new();
    let mut run = |label: &'static str, config: ServerConfig| {
        let server = Server::start(config).expect("server starts");
        let loading = Instant::now();
        load(&server.url());
        eprintln!(
            "{label}: loaded {TASKS} tasks in {:.1} s",
            loading.elapsed().as_secs_f64()
        );
        rows.extend(measure(&server.url()).into_iter().map(|r| (label, r)));
    };
    run("memory", ServerConfig::default());
    if redis_installed() {
        let redis = RedisServer::start(&[]);
        run(
            "redis",
            ServerConfig {
                store: Some(redis.url()),
                store_prefix: format!("bench-{bench}"),
                ..ServerConfig::default()
            },
        );
    } else {
        eprintln!("redis-server is not installed: no Redis rows");
    }
    rows
}

/// The median and the 99th percentile of [`SAMPLES`] runs of `request`.
pub fn median_and_p99(mut request: impl FnMut()) -> (Duration, Duration) {
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            request();
            started.elapsed()
        })
        .collect();
    samples.sort();
    (samples[SAMPLES / 2], samples[SAMPLES * 99 / 100])
}

/// Milliseconds, for the tables.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
