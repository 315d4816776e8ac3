//! Benchmark of the dashboard's pages with 100,000 tasks in the store: the
//! overview, the lists (first and next page, filtered by type and by
//! priority), one task and the workers, in memory and on Redis (a
//! `redis-server` started here on a free loopback port, when installed).
//! Each figure is the time from request to the whole page over a
//! keep-alive loopback connection with a session cookie, so it bounds the
//! server's own time from above. Run with `cargo bench --bench dashboard`;
//! prints a Markdown table.

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
const PRIORITIES: [&str; 3] = ["high", "medium", "low"];
/// The budget of one page.
const TARGET: Duration = Duration::from_millis(20);

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Value {
    let mut resp = agent.post(url).send_json(body).expect("request");
    resp.body_mut().read_json().unwrap_or(Value::Null)
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
                    let body = json!({
                        "id": format!("t{n}"),
                        "type": format!("type{}", n % 10),
                        "priority": PRIORITIES[n % 3],
                        "parameters": {"n": n, "to": "ada@example.com", "subject": "Invoice"},
                    });
                    assert!(post(&a, &url, &body)["task"].is_object(), "enqueue {n}");
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
        let claimed = post(&a, &format!("{base}/tasks/claim"), &claim);
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

/// GETs `url` with `cookie`; the status and the body's length.
fn get(agent: &ureq::Agent, url: &str, cookie: &str) -> (u16, String) {
    let mut resp = agent
        .get(url)
        .header("Cookie", cookie)
        .call()
        .expect("request");
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (status, body)
}

/// The median and the 99th percentile of `SAMPLES` GETs of `path`, and
/// the page's size.
fn time(agent: &ureq::Agent, base: &str, cookie: &str, path: &str) -> (Duration, Duration, usize) {
    let url = format!("{base}{path}");
    let (status, page) = get(agent, &url, cookie);
    assert_eq!(status, 200, "{path}: {page}");
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            get(agent, &url, cookie);
            started.elapsed()
        })
        .collect();
    samples.sort();
    (
        samples[SAMPLES / 2],
        samples[SAMPLES * 99 / 100],
        page.len(),
    )
}

/// The `rel="next"` link of a list page, as a path.
fn next_page(page: &str) -> String {
    let marker = "rel=\"next\" href=\"";
    let start = page.find(marker).expect("a next page") + marker.len();
    page[start..]
        .split('"')
        .next()
        .unwrap_or("")
        .replace("&amp;", "&")
}

type Row = (String, String, Duration, Duration, usize);

fn run(label: &str, config: ServerConfig) -> Vec<Row> {
    let server = Server::start(config).expect("server starts");
    let base = server.url();
    let loading = Instant::now();
    load(&base);
    eprintln!(
        "{label}: loaded {TASKS} tasks in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    let a = agent();
    let first = a.get(format!("{base}/ui")).call().expect("the overview");
    let cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let (_, queued) = get(&a, &format!("{base}/ui/tasks?status=queued"), &cookie);
    let paths = [
        "/ui".to_string(),
        "/ui/tasks?status=queued".to_string(),
        next_page(&queued),
        "/ui/tasks?status=completed&type=type3".to_string(),
        "/ui/tasks?status=queued&priority=low".to_string(),
        "/ui/tasks?status=failed".to_string(),
        "/ui/tasks?status=claimed".to_string(),
        "/ui/tasks".to_string(),
        "/ui/tasks/t4242".to_string(),
        "/ui/workers".to_string(),
    ];
    paths
        .iter()
        .map(|p| {
            let (median, p99, size) = time(&a, &base, &cookie, p);
            (label.to_string(), p.clone(), median, p99, size)
        })
        .collect()
}

fn main() {
    let mut rows = run("memory", ServerConfig::default());
    if support::redis::redis_installed() {
        let redis = RedisServer::start(&[]);
        let config = ServerConfig {
            store: Some(redis.url()),
            store_prefix: "bench-dashboard".into(),
            ..ServerConfig::default()
        };
        rows.extend(run("redis", config));
    } else {
        eprintln!("redis-server is not installed: no Redis rows");
    }
    println!(
        "| store | page | median ms | p99 ms | KiB | within {} ms |",
        TARGET.as_millis()
    );
    println!("|---|---|---:|---:|---:|---|");
    for (store, path, median, p99, size) in rows {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let ok = if p99 <= TARGET { "yes" } else { "no" };
        println!(
            "| {store} | `{path}` | {:.2} | {:.2} | {:.1} | {ok} |",
            ms(median),
            ms(p99),
            size as f64 / 1024.0
        );
    }
}
