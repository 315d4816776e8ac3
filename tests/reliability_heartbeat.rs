//! Heartbeats: a leased task is kept past its lease by a heartbeat every third
//! of it; a lost lease (409) cancels the task, kills its process group and
//! drops its outcome; a core-only server gets no heartbeats at all.

#![cfg(feature = "server")]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::fake::{self, FakeApi};
use support::worker::{builtin_handlers, LibraryWorker, WorkerSpec};
use support::{group_members, read_pid, start_server, temp_dir, wait_until, Api};
use taskworker::ServerConfig;
use taskworker::{Config, Context, Task, TaskError, Worker};

fn server_counter(api: &Api, name: &str) -> u64 {
    let (_, text) = api.get_text("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[test]
fn heartbeats_keep_a_task_past_its_lease() {
    let server = start_server(ServerConfig {
        lease: Duration::from_secs(1),
        ..ServerConfig::default()
    });
    let api = Api::new(server.url());
    let id = api.enqueue("sleep", json!({"ms": 3500}));
    let mut worker = WorkerSpec::new("beat", &server.url(), builtin_handlers()).start();
    assert!(
        wait_until(Duration::from_secs(60), || api.task(&id)["status"]
            == "completed"),
        "log:\n{}",
        worker.log()
    );
    let task = api.task(&id);
    assert_eq!(task["attempt"], 1, "never redelivered: {task}");
    assert_eq!(task["history"].as_array().map(Vec::len), Some(1), "{task}");
    assert_eq!(task["result"], json!({"slept_ms": 3500}));
    // A 3.5 s task on a 1 s lease: about ten heartbeats, one every ~333 ms.
    let beats = server_counter(&api, "taskworker_server_heartbeats_total");
    println!("heartbeats for a 3.5 s task on a 1 s lease: {beats}");
    assert!((5..=40).contains(&beats), "{beats} heartbeats");
    assert_eq!(
        server_counter(&api, "taskworker_server_lease_expired_total"),
        0
    );
    worker.stop(Duration::from_secs(10));
}

#[test]
fn a_lost_lease_kills_the_process_group_and_drops_the_outcome() {
    let dir = temp_dir("lease-lost");
    let pid_file = dir.join("pid");
    let fake = FakeApi::start(move |path, _| {
        static CLAIMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        static BEATS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        use std::sync::atomic::Ordering::SeqCst;
        match path {
            "/tasks/claim" if CLAIMS.fetch_add(1, SeqCst) == 0 => fake::claimed(vec![fake::task(
                "t-lost",
                "long",
                json!({}),
                Some(Duration::from_secs(3)),
            )]),
            "/tasks/claim" => fake::nothing(),
            // The first heartbeat extends the lease; then another worker has it.
            p if p.ends_with("/heartbeat") && BEATS.fetch_add(1, SeqCst) == 0 => (
                200,
                json!({"lease_expires_at": taskworker::now_timestamp()}).to_string(),
            ),
            p if p.ends_with("/heartbeat") => (409, json!({"error": "not yours"}).to_string()),
            _ => fake::ok(),
        }
    });
    let script = format!(
        "cat >/dev/null; echo $$ > {}; sleep 60; echo done",
        pid_file.display()
    );
    let config = json!({"handlers": {"long": {"exec": {"command": ["sh", "-c", script]}}}});
    let url = fake.url();
    let mut worker = WorkerSpec::new("lease-lost", &url, config)
        .env("TIMEOUT", "120")
        .start();
    let pgid = read_pid(&pid_file);
    assert!(!group_members(pgid).is_empty());

    assert!(
        wait_until(Duration::from_secs(30), || fake
            .seen("/heartbeat")
            .iter()
            .any(|s| s.status == 409)),
        "log:\n{}",
        worker.log()
    );
    let lost_at = fake
        .seen("/heartbeat")
        .iter()
        .find(|s| s.status == 409)
        .map(|s| s.at)
        .expect("a 409");
    assert!(
        wait_until(Duration::from_secs(15), || group_members(pgid).is_empty()),
        "the group outlived the lost lease: {:?}",
        group_members(pgid)
    );
    println!(
        "lease lost to process group gone: {} ms",
        lost_at.elapsed().as_millis()
    );
    let beats = fake.seen("/heartbeat");
    let gap = beats[1].at - beats[0].at;
    println!("heartbeat interval on a 3 s lease: {} ms", gap.as_millis());
    assert!(
        worker.wait_log("lease lost", Duration::from_secs(10)),
        "log:\n{}",
        worker.log()
    );
    // The outcome is dropped: nothing is reported, and the worker goes on claiming.
    let claims = fake.seen("/tasks/claim").len();
    assert!(wait_until(Duration::from_secs(10), || fake
        .seen("/tasks/claim")
        .len()
        > claims + 2));
    assert!(
        fake.seen("/complete").is_empty(),
        "{:?}",
        fake.seen("/complete")
    );
    assert!(fake.seen("/fail").is_empty(), "{:?}", fake.seen("/fail"));
    worker.stop(Duration::from_secs(10));
    assert!(fake.seen("/complete").is_empty() && fake.seen("/fail").is_empty());
}

#[test]
fn no_heartbeats_to_a_core_only_server() {
    let server = start_server(ServerConfig {
        core_only: true,
        ..ServerConfig::default()
    });
    let api = Api::new(server.url());
    let id = api.enqueue("slow", json!({}));
    let config = Config {
        api_url: server.url(),
        health_addr: None,
        wait_seconds: 0,
        polling_interval: Duration::from_millis(50),
        ..Config::default()
    };
    let worker = Worker::new(config).handler("slow", |task: &Task, ctx: &Context| {
        assert!(
            task.lease_expires_at.is_none(),
            "a core server leases nothing"
        );
        ctx.sleep(Duration::from_millis(1500))
            .map_err(|_| TaskError::retryable("cancelled", "SHUTDOWN"))?;
        Ok(json!("slept"))
    });
    let running = LibraryWorker::start(worker);
    let began = Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || api.task(&id)["status"]
            == "completed"),
        "{}",
        api.task(&id)
    );
    assert!(began.elapsed() >= Duration::from_millis(1000));
    let stats = &running.state.stats;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.heartbeats.load(Relaxed), 0);
    assert_eq!(stats.leases_lost.load(Relaxed), 0);
    assert_eq!(stats.tasks_completed.load(Relaxed), 1);
    running.stop();
}
