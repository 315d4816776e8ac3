//! Chaos across servers: two `serve --store redis` processes on one Redis
//! (append-only, fsync per write), a worker against each, 2,000 tasks of
//! 0–50 ms. During the run one server and one worker are killed with
//! SIGKILL and started again, and Redis is killed and restarted once on its
//! append-only file. Every task ends `completed` with its own result, and
//! the tasks run more than once are bounded by what the kills could cut short.
//!
//! What is counted: an *execution* is a line the handler itself appends to
//! a shared file before it sleeps (an `exec` handler, so even a run whose
//! worker was killed under it leaves its line); a *re-execution* is any
//! execution of a task beyond its first. A killed worker cuts short at most
//! the tasks it was running, `CONCURRENCY`; a killed server cuts its worker
//! off until it is back on the same port, and the tasks that worker holds
//! run again only if their lease runs out first, again at most
//! `CONCURRENCY`. So re-executions ≤ kills × `CONCURRENCY`. The Redis
//! restart is not a kill of this count: with `appendfsync always` nothing
//! acknowledged is lost, and its downtime is far below the lease.

#![cfg(feature = "server")]

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use support::redis::{redis_installed, RedisServer};
use support::worker::{WorkerProcess, WorkerSpec};
use support::{temp_dir, wait_until, Api, ServeProcess};

const TASKS: usize = 2000;
/// Tasks a worker runs at once.
const CONCURRENCY: usize = 8;
/// One server and one worker.
const KILLS: usize = 2;

/// The sleep of task `i`: 0–50 ms, spread (37 and 51 share no factor, so
/// each 51 tasks in a row take every value once), and the same in every run.
fn sleep_ms(i: usize) -> usize {
    i * 37 % 51
}

/// The handler: records its run, sleeps the milliseconds its id ends with,
/// and answers them as its result.
const SCRIPT: &str = r#"echo "$TASK_ID" >> "$RUNS"
ms=${TASK_ID##*-}
sleep "$(printf '0.%03d' "$ms")"
printf '{"slept_ms":%d}\n' "$ms""#;

fn start_worker(name: &str, api_url: &str, state_dir: &str, runs: &str) -> WorkerProcess {
    let config = json!({"handlers": {"chaos": {"exec": {
        "command": ["sh", "-c", SCRIPT],
        "env": {"RUNS": runs},
    }}}});
    WorkerSpec::new(name, api_url, config)
        .env("WORKER_ID", name)
        .env("STATE_DIR", state_dir)
        .env("CONCURRENT_TASKS", CONCURRENCY.to_string())
        .env("WAIT_SECONDS", "1")
        .start()
}

fn wait_completed(api: &Api, at_least: u64) {
    assert!(
        wait_until(Duration::from_secs(60), || api.completed() >= at_least),
        "stuck at {} completed, waiting for {at_least}",
        api.completed()
    );
}

fn serve(args: &[&str]) -> ServeProcess {
    ServeProcess::start(args)
}

#[test]
fn every_task_completes_through_killed_servers_workers_and_a_redis_restart() {
    if !redis_installed() {
        support::skip("redis-server is not installed (apt-get install redis-server)");
        return;
    }
    let began = Instant::now();
    let dir = temp_dir("redis-chaos");
    let path = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_string();
    let runs = path("runs");
    let mut redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = redis.url();
    // A short lease, so a killed worker's tasks come back soon; many
    // attempts, so no task fails for good because of the blows.
    let server_args = [
        "--store",
        &store,
        "--store-prefix",
        "chaos",
        "--lease",
        "3s",
        "--max-attempts",
        "20",
    ];
    let mut a = serve(&server_args);
    let b = serve(&server_args);
    let (url_a, url_b) = (a.url.clone(), b.url.clone());
    let (api_a, api_b) = (Api::new(&url_a), Api::new(&url_b));

    let ids: Vec<String> = (0..TASKS)
        .map(|i| format!("chaos-{i:04}-{}", sleep_ms(i)))
        .collect();
    // Enqueued through both servers.
    std::thread::scope(|s| {
        for part in 0..4 {
            let api = if part % 2 == 0 { &api_a } else { &api_b };
            let ids = &ids;
            s.spawn(move || {
                for id in ids.iter().skip(part).step_by(4) {
                    let body = json!({"id": id, "type": "chaos", "parameters": {}});
                    assert_eq!(api.post_json("/tasks", &body).0, 201);
                }
            });
        }
    });
    let enqueued = began.elapsed();

    let (state_a, state_b) = (path("state-a"), path("state-b"));
    let mut worker_a = start_worker("chaos-a", &url_a, &state_a, &runs);
    let mut worker_b = start_worker("chaos-b", &url_b, &state_b, &runs);

    // Server A dies; its worker waits out the outage and goes on once the
    // server is back on the same port.
    wait_completed(&api_b, 400);
    a.signal("KILL");
    assert_eq!(a.wait_exit(Duration::from_secs(10)), None, "killed");
    drop(a);
    std::thread::sleep(Duration::from_millis(500));
    let listen = url_a.trim_start_matches("http://").to_string();
    a = serve(&[&["--listen", listen.as_str()][..], &server_args[..]].concat());
    assert_eq!(a.url, url_a, "restarted on the same port");

    // Worker B dies mid-task; a new one with the same id and state
    // directory sends what the old one spooled.
    wait_completed(&api_b, 900);
    worker_b.signal("KILL");
    assert_eq!(worker_b.wait_exit(Duration::from_secs(10)), None, "killed");
    worker_b = start_worker("chaos-b", &url_b, &state_b, &runs);

    // Redis crashes and comes back from its append-only file.
    wait_completed(&api_a, 1400);
    redis.restart_after(|| std::thread::sleep(Duration::from_millis(300)));

    let all_done = wait_until(Duration::from_secs(60), || {
        api_a.completed() >= TASKS as u64
    });
    let mut lost = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let task = api_b.task(id);
        if task["status"] != "completed" || task["result"] != json!({"slept_ms": sleep_ms(i)}) {
            lost.push(task);
        }
    }
    for worker in [&mut worker_a, &mut worker_b] {
        worker.signal("TERM");
        assert_eq!(worker.wait_exit(Duration::from_secs(30)), Some(0));
        assert!(!worker.log().contains("panicked"), "{}", worker.log());
    }

    let mut executions: HashMap<String, usize> = HashMap::new();
    for id in std::fs::read_to_string(&runs)
        .expect("runs recorded")
        .lines()
    {
        *executions.entry(id.to_string()).or_default() += 1;
    }
    let total: usize = executions.values().sum();
    let reexecutions = total - executions.len();
    let twice: Vec<_> = executions.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "redis chaos: {TASKS} tasks, 2 servers, 2 workers × {CONCURRENCY}, \
         {KILLS} kills (server, worker) and a Redis restart; {total} executions, \
         {reexecutions} re-executions, {} lost; enqueued in {enqueued:?}, total {:?}",
        lost.len(),
        began.elapsed()
    );
    assert!(all_done, "not all completed: {}", api_a.completed());
    assert!(lost.is_empty(), "lost or wrong results: {lost:?}");
    assert_eq!(executions.len(), TASKS, "every task ran");
    assert!(
        reexecutions <= KILLS * CONCURRENCY,
        "{reexecutions} re-executions, more than kills × concurrency: {twice:?}"
    );
}
