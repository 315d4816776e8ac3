//! Chaos: 2,000 short tasks while the worker is killed with SIGKILL three
//! times and restarted, and the server is killed and restarted once on the
//! same port. Every task ends `completed` with its own result, and the tasks
//! run more than once are bounded by what the kills could have cut short.
//!
//! What is counted: an *execution* is a "started" line in a worker's log
//! (one per handler run, whatever the server saw); a *re-execution* is any
//! run of a task before its last one. Such a run was either *cut short* by a
//! kill (no "finished" line) or *finished* but its result never reached the
//! server. A kill cuts short at most the tasks that were running: the worker
//! never claims more than it has idle processors, so at most
//! `CONCURRENT_TASKS` per kill, and the test holds that bound exactly.
//! Finished results are spooled and sent by the next start (same
//! `WORKER_ID`), except one killed between the handler's return and the
//! spool's sync, or one whose 2 s lease ran out while the server was down;
//! these are few, so the total is held to a generous
//! `2 × (kills + server restarts) × CONCURRENT_TASKS`. The server's history
//! is checked too: attempts beyond one per task come only from leases that
//! ran out, or from a claim whose answer the server could not write because
//! a kill had just closed the worker's connection (the server puts those
//! tasks back at once: `released`, at most `CONCURRENT_TASKS` per kill, each
//! within a few seconds of one).

#![cfg(feature = "server")]

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use support::worker::{WorkerProcess, WorkerSpec};
use support::{temp_dir, wait_until, Api, ServeProcess};

const TASKS: usize = 2000;
const CONCURRENCY: usize = 8;

/// One blow, dealt once the server counts this many completed tasks.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// SIGKILL the worker and start a new one on the same state directory.
    KillWorker(u64),
    /// SIGKILL the server and start it again on the same port and journal.
    RestartServer(u64),
}

const STEPS: [Step; 4] = [
    Step::KillWorker(400),
    Step::KillWorker(900),
    Step::RestartServer(1200),
    Step::KillWorker(1500),
];
const KILLS: usize = 3;

/// Pseudo-random sleeps from a seed: varied, yet a failure can be replayed.
fn sleeps(seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..TASKS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % 51
        })
        .collect()
}

fn start_worker(api_url: &str, state_dir: &str, n: usize) -> WorkerProcess {
    let config = json!({"handlers": {"sleep": {"builtin": "sleep"}}});
    WorkerSpec::new(&format!("chaos-{n}"), api_url, config)
        .env("WORKER_ID", "chaos-worker")
        .env("STATE_DIR", state_dir)
        .env("CONCURRENT_TASKS", CONCURRENCY.to_string())
        .env("WAIT_SECONDS", "1")
        .env("LOG_LEVEL", "debug")
        .start()
}

fn wait_completed(api: &Api, at_least: u64, logs: &[String]) {
    assert!(
        wait_until(Duration::from_secs(90), || api.completed() >= at_least),
        "stuck at {} completed; last log:\n{}",
        api.completed(),
        logs.last().map_or("", String::as_str)
    );
}

fn kill(worker: &mut WorkerProcess) -> String {
    worker.signal("KILL");
    assert_eq!(
        worker.wait_exit(Duration::from_secs(10)),
        None,
        "killed by the signal"
    );
    worker.log()
}

#[test]
fn every_task_completes_through_kills_and_a_server_restart() {
    let began = Instant::now();
    let dir = temp_dir("chaos");
    let data = dir.join("tasks.jsonl");
    let data = data.to_str().expect("utf-8 path").to_string();
    let state = dir.join("state");
    let state = state.to_str().expect("utf-8 path").to_string();
    let server_args = ["--data", &data, "--lease", "2s", "--max-attempts", "20"];
    let mut server = ServeProcess::start(&server_args);
    let url = server.url.clone();
    let listen = url.trim_start_matches("http://").to_string();
    let api = Api::new(&url);

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let ms = sleeps(seed);
    let ids: Vec<String> = (0..TASKS).map(|i| format!("chaos-{i:04}")).collect();
    std::thread::scope(|s| {
        for part in 0..4 {
            let (api, ids, ms) = (&api, &ids, &ms);
            s.spawn(move || {
                for i in (part..TASKS).step_by(4) {
                    let body = json!({"id": ids[i], "type": "sleep", "parameters": {"ms": ms[i]}});
                    assert_eq!(api.post_json("/tasks", &body).0, 201);
                }
            });
        }
    });
    let enqueued = began.elapsed();

    let mut logs = Vec::new();
    let mut worker = start_worker(&url, &state, 0);
    let mut kill_times = Vec::new();
    let mut kill_clock = Vec::new();
    for step in STEPS {
        match step {
            Step::KillWorker(at) => {
                wait_completed(&api, at, &logs);
                kill_clock.push(SystemTime::now());
                logs.push(kill(&mut worker));
                kill_times.push(began.elapsed());
                worker = start_worker(&url, &state, logs.len());
            }
            Step::RestartServer(at) => {
                wait_completed(&api, at, &logs);
                server.signal("KILL");
                assert_eq!(server.wait_exit(Duration::from_secs(10)), None);
                drop(server);
                let listen_arg = ["--listen", &listen];
                server = ServeProcess::start(&[&listen_arg[..], &server_args[..]].concat());
                assert_eq!(server.url, url, "restarted on the same port");
            }
        }
    }
    let all_done = wait_until(Duration::from_secs(90), || api.completed() >= TASKS as u64);
    worker.signal("TERM");
    let code = worker.wait_exit(Duration::from_secs(30));
    logs.push(worker.log());
    assert!(all_done, "not all completed; last log:\n{}", logs[3]);
    assert_eq!(code, Some(0), "clean exit at the end:\n{}", logs[3]);

    // What the server says: each task completed with its own result.
    let mut lost = Vec::new();
    let mut expired_attempts = 0;
    let mut released_attempts = 0;
    let mut other_attempts = Vec::new();
    // A released attempt's end is its claim's answer failing on a connection
    // a kill closed: shortly after that kill.
    let after_a_kill = |attempt: &serde_json::Value| {
        let ended = attempt["ended_at"]
            .as_str()
            .and_then(taskworker::parse_timestamp);
        ended.is_some_and(|ended| {
            kill_clock.iter().any(|kill| {
                let since = ended.duration_since(*kill);
                let before = kill.duration_since(ended);
                since.is_ok_and(|d| d < Duration::from_secs(5))
                    || before.is_ok_and(|d| d < Duration::from_secs(1))
            })
        })
    };
    for (i, id) in ids.iter().enumerate() {
        let task = api.task(id);
        if task["status"] != "completed" || task["result"] != json!({"slept_ms": ms[i]}) {
            lost.push(task.clone());
        }
        let history = task["history"].as_array().cloned().unwrap_or_default();
        for attempt in &history[..history.len().saturating_sub(1)] {
            match attempt["outcome"].as_str() {
                Some("lease_expired") => expired_attempts += 1,
                Some("released") if after_a_kill(attempt) => released_attempts += 1,
                _ => other_attempts.push(attempt.clone()),
            }
        }
    }

    // What the workers did: each handler run, and whether it finished.
    let mut runs: HashMap<&str, Vec<bool>> = HashMap::new();
    for log in &logs {
        assert!(!log.contains("panicked"), "a panic:\n{log}");
        for line in log.lines() {
            let Some(rest) = line.split("task ").nth(1) else {
                continue;
            };
            let id = rest.split(' ').next().unwrap_or_default();
            if rest.contains("): started, attempt") {
                runs.entry(id).or_default().push(false);
            } else if rest.contains("): finished in") {
                if let Some(last) = runs.get_mut(id).and_then(|r| r.last_mut()) {
                    *last = true;
                }
            }
        }
    }
    let executions: usize = runs.values().map(Vec::len).sum();
    let reexecutions = executions.saturating_sub(runs.len());
    // Runs before a task's last one: cut short by a kill, or finished but
    // their result did not reach the server in time.
    let earlier = runs.values().flat_map(|r| &r[..r.len() - 1]);
    let (finished, cut): (Vec<bool>, Vec<bool>) = earlier.partition(|f| **f);
    let (cut, redone) = (cut.len(), finished.len());
    let kills = KILLS;
    eprintln!(
        "chaos: {TASKS} tasks (sleep seed {seed}), concurrency {CONCURRENCY}, {kills} worker kills at {kill_times:?}, 1 server restart; \
         {executions} executions, {reexecutions} re-executions ({cut} cut short by a kill, {redone} finished but their result not delivered), \
         {expired_attempts} leases ran out, {released_attempts} released by a kill, {} lost; enqueued in {enqueued:?}, total {:?}",
        lost.len(),
        began.elapsed()
    );
    assert!(lost.is_empty(), "lost or wrong results: {lost:?}");
    assert_eq!(runs.len(), TASKS, "every task ran");
    assert!(
        other_attempts.is_empty(),
        "attempts that ended other than by their lease running out or a kill: {other_attempts:?}"
    );
    assert!(
        released_attempts <= kills * CONCURRENCY,
        "{released_attempts} released, more than kills × concurrency"
    );
    assert!(
        cut <= kills * CONCURRENCY,
        "{cut} runs cut short, more than kills × concurrency"
    );
    // Results finished but not yet synced when the worker was killed, or not
    // delivered before the lease ran out while the server was down: a few per blow.
    let bound = 2 * (kills + 1) * CONCURRENCY;
    assert!(
        reexecutions <= bound,
        "{reexecutions} re-executions, more than 2 × (kills + 1) × concurrency = {bound}"
    );
}
