//! Claims for all the processors: after a claim's tasks are handed on, the
//! poller waits (no longer than that claim's round trip) for the processors
//! running them, so that with quick tasks each claim asks for every
//! processor instead of one claim per processor as they free one by one.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::fake::{claimed, nothing, ok, task, wait_for, FakeApi};
use support::worker::{builtin_handlers, WorkerSpec};

/// Tasks the scripted server hands out.
const TASKS: usize = 80;
/// How long the scripted server takes to answer a claim.
const ROUND_TRIP: Duration = Duration::from_millis(30);

#[test]
fn with_quick_tasks_each_claim_asks_for_every_processor() {
    let handed = AtomicUsize::new(0);
    // `max_tasks` of each claim answered with tasks.
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    let fake = FakeApi::start(move |path, body| match path {
        "/health" => (200, r#"{"status": "healthy"}"#.into()),
        "/tasks/claim" => {
            std::thread::sleep(ROUND_TRIP);
            let want = body["max_tasks"].as_u64().unwrap_or(1) as usize;
            let first = handed.fetch_add(want, Ordering::SeqCst).min(TASKS);
            let last = (first + want).min(TASKS);
            if first == last {
                return nothing();
            }
            log.lock().unwrap().push(want);
            let tasks = (first..last)
                .map(|n| task(&format!("t{n:03}"), "echo", json!({}), None))
                .collect();
            claimed(tasks)
        }
        _ => ok(),
    });
    let url = fake.url();
    let mut worker = WorkerSpec::new("gather", &url, builtin_handlers())
        .env("CONCURRENT_TASKS", "4")
        .env("REPORT_BATCH", "0")
        .start();
    wait_for(&worker, || fake.seen("/complete").len() >= TASKS);
    worker.stop(Duration::from_secs(30));
    let asked = asked.lock().unwrap().clone();
    // Each claim after the first: the four processors, all but seldom (a
    // processor that the machine's load keeps from running for the claim's
    // whole round trip is not waited for). Claiming as each freed asked for
    // one to three at a time.
    let full = asked.iter().filter(|&&n| n == 4).count();
    assert!(
        full * 4 >= asked.len() * 3,
        "claims asked for {asked:?}; log:\n{}",
        worker.log()
    );
    assert!(asked.len() <= TASKS / 3, "claims asked for {asked:?}");
}
