//! MEMORY_LIMIT: above it the worker stops claiming, drains as on SIGTERM
//! (running tasks finish and are reported), and exits 75 for a restart.

#![cfg(feature = "server")]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use serde_json::json;
use support::fake::{self, FakeApi};
use support::worker::{builtin_handlers, tasks_with_status, WorkerSpec};
use support::{start_server, temp_dir, Api};
use taskworker::ServerConfig;

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

#[test]
fn a_limit_below_the_workers_own_rss_drains_and_exits_75_at_once() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    api.enqueue("echo", json!({"n": 1}));
    let began = Instant::now();
    let mut worker = WorkerSpec::new("memory-min", &server.url(), builtin_handlers())
        .env("MEMORY_LIMIT", "4M")
        .start();
    assert_eq!(
        worker.wait_exit(Duration::from_secs(20)),
        Some(75),
        "log:\n{}",
        worker.log()
    );
    println!(
        "MEMORY_LIMIT=4M: exit 75 after {} ms",
        began.elapsed().as_millis()
    );
    let log = worker.log();
    assert!(log.contains("MEMORY_LIMIT"), "{log}");
    assert!(log.contains("draining"), "{log}");
    assert!(
        tasks_with_status(&api, "claimed").is_empty(),
        "nothing left claimed"
    );
}

#[test]
fn growing_past_the_limit_finishes_running_tasks_then_exits_75() {
    // Outcomes that cannot be delivered stay in memory: each 1 MiB echo
    // result the fake refuses makes the worker's RSS grow.
    let big = "x".repeat(1 << 20);
    let handed = AtomicUsize::new(0);
    let fake = FakeApi::start(move |path, _| match path {
        "/tasks/claim" => match handed.fetch_add(1, SeqCst) {
            0 => fake::claimed(vec![fake::task("slow", "sleep", json!({"ms": 4000}), None)]),
            n if n <= 40 => fake::claimed(vec![fake::task(
                &format!("big-{n}"),
                "echo",
                json!({ "blob": big }),
                None,
            )]),
            _ => fake::nothing(),
        },
        "/tasks/slow/complete" => fake::ok(),
        _ => (400, json!({"error": "not now"}).to_string()),
    });
    let url = fake.url();

    // The same worker, idle, for its resting RSS.
    let idle_fake = FakeApi::start(|_, _| fake::nothing());
    let idle_url = idle_fake.url();
    let idle = WorkerSpec::new("memory-idle", &idle_url, builtin_handlers())
        .env("CONCURRENT_TASKS", "2")
        .start();
    assert!(idle.wait_log("started", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = rss_bytes(idle.child.id());
    drop(idle);
    assert!(idle_rss > 0);
    let limit = idle_rss + (8 << 20);

    let state = temp_dir("memory-state");
    let mut worker = WorkerSpec::new("memory-grow", &url, builtin_handlers())
        .env("CONCURRENT_TASKS", "2")
        .env("MEMORY_LIMIT", limit.to_string())
        .env("STATE_DIR", state.to_string_lossy())
        .start();
    assert_eq!(
        worker.wait_exit(Duration::from_secs(60)),
        Some(75),
        "log:\n{}",
        worker.log()
    );
    let log = worker.log();
    println!(
        "idle RSS {} KiB, limit {} KiB; claims answered: {}",
        idle_rss >> 10,
        limit >> 10,
        fake.seen("/tasks/claim").len()
    );
    let tripped = log.find("MEMORY_LIMIT").expect("the limit is logged");
    let slow_done = fake
        .seen("/tasks/slow/complete")
        .iter()
        .any(|s| s.status == 200);
    assert!(
        slow_done,
        "the running task finished and was reported:\n{log}"
    );
    assert!(
        !log.contains("SHUTDOWN"),
        "drained within the grace, nothing cancelled:\n{log}"
    );
    let claims_before_stop = fake.seen("/tasks/claim").len();
    assert!(claims_before_stop < 42, "stopped claiming:\n{log}");
    assert!(log[tripped..].contains("draining"), "{log}");
    assert!(log.contains("kept in the spool"), "{log}");
}
