//! Hard timeouts: a task past its deadline is reported `TIMEOUT`, retryable,
//! on time even when its handler ignores the cancel; the late result is
//! discarded, the stuck thread is replaced and counted, and later tasks still
//! run at the configured concurrency.

#![cfg(feature = "server")]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::worker::{builtin_handlers, LibraryWorker, WorkerSpec};
use support::{start_server, wait_until, Api};
use taskworker::ServerConfig;
use taskworker::{Config, Context, Task, TaskError, Worker};

fn enqueue(api: &Api, body: Value) -> String {
    let (status, answer) = api.post_json("/tasks", &body);
    assert_eq!(status, 201, "{answer}");
    answer["task"]["id"].as_str().unwrap().to_string()
}

fn millis_between(from: &Value, to: &Value) -> i64 {
    let parse = |v: &Value| taskworker::parse_timestamp(v.as_str().unwrap()).unwrap();
    match parse(to).duration_since(parse(from)) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

#[test]
fn a_handler_that_ignores_its_cancel_is_timed_out_and_its_thread_replaced() {
    let server = start_server(ServerConfig {
        retry_backoff: Duration::from_millis(200),
        ..ServerConfig::default()
    });
    let api = Api::new(server.url());
    let stuck_id = enqueue(
        &api,
        json!({"type": "stuck", "timeout_seconds": 1, "max_attempts": 2}),
    );

    let release = Arc::new(AtomicBool::new(false));
    let stuck_calls = Arc::new(AtomicUsize::new(0));
    let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (rel, calls) = (release.clone(), stuck_calls.clone());
    let (run, top) = (running.clone(), peak.clone());
    let config = Config {
        api_url: server.url(),
        concurrent_tasks: 2,
        timeout: Duration::from_secs(30),
        health_addr: None,
        wait_seconds: 1,
        polling_interval: Duration::from_millis(50),
        ..Config::default()
    };
    let worker = Worker::new(config)
        .handler("stuck", move |_: &Task, ctx: &Context| {
            // The first delivery hangs and ignores its cancel; the retry is quick.
            if calls.fetch_add(1, SeqCst) == 0 {
                while !rel.load(SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return Ok(json!("late"));
            }
            Ok(json!({"attempt": ctx.attempt}))
        })
        .handler("work", move |_: &Task, _: &Context| {
            let now = run.fetch_add(1, SeqCst) + 1;
            top.fetch_max(now, SeqCst);
            std::thread::sleep(Duration::from_millis(800));
            run.fetch_sub(1, SeqCst);
            Ok::<_, TaskError>(json!("worked"))
        });
    let running = LibraryWorker::start(worker);

    // TIMEOUT, retryable: the server puts it back and the retry completes.
    assert!(
        wait_until(Duration::from_secs(30), || api.task(&stuck_id)["status"]
            == "completed"),
        "{}",
        api.task(&stuck_id)
    );
    let task = api.task(&stuck_id);
    let first = &task["history"][0];
    assert_eq!(first["error_type"], "TIMEOUT", "{task}");
    assert_eq!(task["result"], json!({"attempt": 2}), "{task}");
    let late = millis_between(&first["claimed_at"], &first["ended_at"]) - 1000;
    println!("deadline to TIMEOUT at the server: {late} ms (from the claim, 1 s deadline)");
    assert!(late < 5000, "TIMEOUT came {late} ms after the deadline");

    // The stuck thread is replaced and counted.
    let stats = running.state.stats.clone();
    assert!(wait_until(Duration::from_secs(15), || stats
        .stuck_threads
        .load(SeqCst)
        == 1));
    assert!(stats.render().contains("taskworker_stuck_threads 1"));

    // Two tasks at a time still: the pool has its two working threads.
    let began = Instant::now();
    let work: Vec<String> = (0..4)
        .map(|_| enqueue(&api, json!({"type": "work"})))
        .collect();
    assert!(wait_until(Duration::from_secs(30), || work
        .iter()
        .all(|id| api.task(id)["status"] == "completed")));
    println!(
        "4 tasks of 800 ms with one thread stuck: {} ms, peak concurrency {}",
        began.elapsed().as_millis(),
        peak.load(SeqCst)
    );
    assert_eq!(
        peak.load(SeqCst),
        2,
        "full concurrency beside the stuck thread"
    );

    // The late result is discarded, and the stuck thread goes away.
    release.store(true, SeqCst);
    assert!(wait_until(Duration::from_secs(10), || stats
        .stuck_threads
        .load(SeqCst)
        == 0));
    let task = api.task(&stuck_id);
    assert_eq!(task["result"], json!({"attempt": 2}), "{task}");
    assert_eq!(task["history"].as_array().map(Vec::len), Some(2), "{task}");
    assert_eq!(stats.tasks_completed.load(SeqCst), 5);

    running.stop();
}

#[test]
fn the_timeout_setting_applies_to_the_binary() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = enqueue(
        &api,
        json!({"type": "sleep", "parameters": {"ms": 60000}, "max_attempts": 1}),
    );
    let mut worker = WorkerSpec::new("timeout", &server.url(), builtin_handlers())
        .env("TIMEOUT", "1")
        .start();
    assert!(
        wait_until(Duration::from_secs(30), || api.task(&id)["status"]
            == "failed"),
        "log:\n{}",
        worker.log()
    );
    let task = api.task(&id);
    assert_eq!(task["error_type"], "TIMEOUT", "{task}");
    let first = &task["history"][0];
    let late = millis_between(&first["claimed_at"], &first["ended_at"]) - 1000;
    println!("TIMEOUT=1: reported {late} ms after the deadline");
    assert!(late < 5000, "{late} ms");
    assert!(worker.log().contains("TIMEOUT"), "{}", worker.log());
    worker.stop(Duration::from_secs(10));
}
