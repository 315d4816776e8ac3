//! Backpressure: while reports cannot be delivered, the poller stops claiming
//! past a small backlog; once delivery works again, claiming resumes.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::fake::{self, FakeApi};
use support::wait_until;
use support::worker::{builtin_handlers, WorkerSpec};
use taskworker::worker::outbox::REPORT_BACKLOG_LIMIT;

const CONCURRENCY: usize = 4;
/// Tasks the fake hands out in all.
const TOTAL: usize = REPORT_BACKLOG_LIMIT * 3;

#[test]
fn claiming_stops_while_reports_fail_and_resumes_after() {
    let handed = Arc::new(AtomicUsize::new(0));
    let refuse = Arc::new(AtomicBool::new(true));
    let (h, r) = (handed.clone(), refuse.clone());
    let fake = FakeApi::start(move |path, body| match path {
        "/tasks/claim" => {
            let want = body["max_tasks"].as_u64().unwrap_or(1) as usize;
            let tasks: Vec<_> = (0..want)
                .map_while(|_| {
                    let n = h.fetch_add(1, SeqCst);
                    (n < TOTAL)
                        .then(|| fake::task(&format!("t-{n}"), "echo", json!({"n": n}), None))
                })
                .collect();
            h.fetch_min(TOTAL, SeqCst);
            if tasks.is_empty() {
                fake::nothing()
            } else {
                fake::claimed(tasks)
            }
        }
        _ if r.load(SeqCst) => (503, json!({"error": "down for maintenance"}).to_string()),
        _ => fake::ok(),
    });
    let url = fake.url();
    let mut worker = WorkerSpec::new("backpressure", &url, builtin_handlers())
        .env("CONCURRENT_TASKS", CONCURRENCY.to_string())
        .start();

    // The backlog fills up, then the claims stop.
    let mut last = (0, Instant::now());
    let plateau = wait_until(Duration::from_secs(60), || {
        let now = handed.load(SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        }
        now > REPORT_BACKLOG_LIMIT && last.1.elapsed() > Duration::from_millis(1500)
    });
    let stalled_at = handed.load(SeqCst);
    assert!(
        plateau,
        "claims never stopped: {stalled_at}\n{}",
        worker.log()
    );
    println!(
        "claimed while reports failed: {stalled_at} (limit {REPORT_BACKLOG_LIMIT}, {CONCURRENCY} processors)"
    );
    assert!(
        stalled_at <= REPORT_BACKLOG_LIMIT + 1 + 2 * CONCURRENCY,
        "claimed {stalled_at}"
    );
    let claims = fake.seen("/tasks/claim").len();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        fake.seen("/tasks/claim").len(),
        claims,
        "no claim requests while backed up"
    );
    assert!(fake.seen("/complete").iter().all(|s| s.status == 503));

    // Delivery works again: the backlog drains and claiming resumes.
    let resumed = Instant::now();
    refuse.store(false, SeqCst);
    assert!(
        wait_until(Duration::from_secs(90), || fake
            .seen("/complete")
            .iter()
            .filter(|s| s.status == 200)
            .count()
            == TOTAL),
        "delivered {} of {TOTAL}\n{}",
        fake.seen("/complete")
            .iter()
            .filter(|s| s.status == 200)
            .count(),
        worker.log()
    );
    println!(
        "after delivery came back, all {TOTAL} done in {} ms",
        resumed.elapsed().as_millis()
    );
    worker.stop(Duration::from_secs(10));
}
