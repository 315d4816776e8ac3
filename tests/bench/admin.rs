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

#[path = "hundred_thousand.rs"]
mod hundred_thousand;

use std::time::Duration;

use hundred_thousand::{agent, median_and_p99, ms, on_each_store, TARGET};
use serde_json::Value;

/// GETs `url`; the answer's status and JSON.
fn get(agent: &ureq::Agent, url: &str) -> (u16, Value) {
    let mut resp = agent.get(url).call().expect("request");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_json().unwrap_or(Value::Null))
}

/// The median and the 99th percentile of GETs of `path`.
fn time(base: &str, path: &str) -> (Duration, Duration) {
    let a = agent();
    let url = format!("{base}{path}");
    assert_eq!(get(&a, &url).0, 200, "{path}");
    median_and_p99(|| {
        get(&a, &url);
    })
}

/// Each read's path, median and 99th percentile.
type Row = (String, Duration, Duration);

fn measure(base: &str) -> Vec<Row> {
    let first = get(&agent(), &format!("{base}/tasks?status=queued&limit=50")).1;
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
            let (median, p99) = time(base, p);
            (p.clone(), median, p99)
        })
        .collect()
}

fn main() {
    let rows = on_each_store("admin", measure);
    println!(
        "| store | GET | median ms | p99 ms | within {} ms |",
        TARGET.as_millis()
    );
    println!("|---|---|---:|---:|---|");
    for (store, (path, median, p99)) in rows {
        let ok = if p99 <= TARGET { "yes" } else { "no" };
        println!(
            "| {store} | `{path}` | {:.2} | {:.2} | {ok} |",
            ms(median),
            ms(p99)
        );
    }
}
