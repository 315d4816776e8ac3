//! The result spool (`STATE_DIR`): results produced while the API refuses
//! them survive a kill -9 and arrive after a restart, before any claim, and
//! no task runs twice; a redelivered task whose outcome waits in the spool is
//! not run again; a torn record is skipped; a bad state directory is exit 78.

#![cfg(feature = "server")]

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake::{self, FakeApi};
use support::worker::{builtin_handlers, spooled, tasks_with_status, wait_for_status, WorkerSpec};
use support::{start_server, temp_dir, wait_until, Api, ServeProcess};
use taskworker::ServerConfig;
use taskworker::SPOOL_FILE_NAME as FILE_NAME;

/// A `job` handler that appends its task id to `runs`, then waits for the
/// file `go` before it answers `{"ok": true}`.
fn job_handlers(runs: &Path, go: &Path) -> Value {
    let script = format!(
        "cat >/dev/null; echo \"$TASK_ID\" >> {}; while [ ! -e {} ]; do sleep 0.05; done; echo '{{\"ok\": true}}'",
        runs.display(),
        go.display()
    );
    json!({"handlers": {"job": {"exec": {"command": ["sh", "-c", script]}}}})
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn spool_record(task_id: &str, worker_id: &str, result: Value) -> String {
    json!({"op": "outcome", "task_id": task_id, "task_type": "job", "kind": "complete",
           "error_type": null, "body": {"result": result, "worker_id": worker_id, "duration_ms": 5}})
    .to_string()
}

#[test]
fn results_survive_an_api_outage_and_a_kill_9_and_no_task_runs_twice() {
    let dir = temp_dir("spool-outage");
    let (runs, go, state, data) = (
        dir.join("runs"),
        dir.join("go"),
        dir.join("state"),
        dir.join("journal"),
    );
    let data_arg = data.to_string_lossy().to_string();
    let mut first_server = ServeProcess::start(&["--data", &data_arg]);
    let api = Api::new(&first_server.url);
    let ids: Vec<String> = (0..3)
        .map(|i| api.enqueue("job", json!({"n": i})))
        .collect();
    let mut first = WorkerSpec::new("spool-1", &first_server.url, job_handlers(&runs, &go))
        .env("STATE_DIR", state.to_string_lossy())
        .env("CONCURRENT_TASKS", "3")
        .start();
    assert!(
        wait_until(Duration::from_secs(30), || lines(&runs).len() == 3),
        "log:\n{}",
        first.log()
    );

    // The API goes away while the three tasks run; then they finish.
    first_server.signal("KILL");
    assert!(first_server
        .wait_exit(Duration::from_secs(10))
        .is_none_or(|_| true));
    std::fs::write(&go, "").unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || spooled(&state).len() == 3),
        "spool: {:?}\nlog:\n{}",
        lines(&state.join(FILE_NAME)),
        first.log()
    );
    first.child.kill().unwrap();
    let _ = first.child.wait();

    let second_server = ServeProcess::start(&["--data", &data_arg]);
    let api = Api::new(&second_server.url);
    for id in &ids {
        assert_eq!(api.task(id)["status"], "claimed", "{}", api.task(id));
    }
    let later = api.enqueue("job", json!({"n": "later"}));
    let began = Instant::now();
    let mut second = WorkerSpec::new("spool-2", &second_server.url, job_handlers(&runs, &go))
        .env("STATE_DIR", state.to_string_lossy())
        .env("CONCURRENT_TASKS", "3")
        .start();
    assert!(
        wait_for_status(&api, "completed", 4, Duration::from_secs(25)),
        "log:\n{}\ntasks: {:?}",
        second.log(),
        ids.iter().map(|id| api.task(id)).collect::<Vec<_>>()
    );
    println!(
        "restart to all spooled results delivered: {} ms",
        began.elapsed().as_millis()
    );
    let mut ran = lines(&runs);
    ran.sort();
    let mut expected: Vec<String> = ids.iter().chain([&later]).cloned().collect();
    expected.sort();
    assert_eq!(ran, expected, "every task ran exactly once");
    let later_claimed = api.task(&later)["history"][0]["claimed_at"]
        .as_str()
        .unwrap()
        .to_string();
    for id in &ids {
        let task = api.task(id);
        assert_eq!(task["result"], json!({"ok": true}), "{task}");
        assert_eq!(task["history"].as_array().map(Vec::len), Some(1), "{task}");
        let ended = task["history"][0]["ended_at"].as_str().unwrap();
        assert!(
            ended <= later_claimed.as_str(),
            "spooled results go before any claim: {ended} > {later_claimed}"
        );
    }
    assert!(
        second.log().contains("from an earlier run"),
        "{}",
        second.log()
    );
    second.stop(Duration::from_secs(10));
    assert!(spooled(&state).is_empty(), "{:?}", spooled(&state));
}

#[test]
fn a_torn_record_is_skipped_and_the_rest_is_delivered() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = api.enqueue("job", json!({}));
    let (status, _) = api.claim("old-worker", json!({}));
    assert_eq!(status, 200);
    let state = temp_dir("spool-torn");
    // The record of a crashed run, then a second one torn inside a UTF-8 character.
    let mut file = spool_record(&id, "old-worker", json!({"from": "spool"})).into_bytes();
    file.push(b'\n');
    let torn = spool_record("other", "old-worker", json!({"name": "h\u{e9}llo"}));
    let cut = torn.find('\u{e9}').unwrap() + 1;
    file.extend_from_slice(&torn.as_bytes()[..cut]);
    std::fs::write(state.join(FILE_NAME), file).unwrap();

    let mut worker = WorkerSpec::new("torn", &server.url(), builtin_handlers())
        .env("STATE_DIR", state.to_string_lossy())
        .start();
    assert!(
        wait_until(Duration::from_secs(20), || api.task(&id)["status"]
            == "completed"),
        "log:\n{}",
        worker.log()
    );
    assert_eq!(api.task(&id)["result"], json!({"from": "spool"}));
    let log = worker.log();
    assert!(log.contains("line 2 is torn or corrupt"), "{log}");
    worker.stop(Duration::from_secs(10));
    assert!(spooled(&state).is_empty());
}

#[test]
fn a_redelivered_task_whose_outcome_is_spooled_is_not_run_again() {
    let dir = temp_dir("spool-redelivered");
    let (runs, go, state) = (dir.join("runs"), dir.join("go"), dir.join("state"));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(&go, "").unwrap();
    std::fs::write(
        state.join(FILE_NAME),
        spool_record("t-1", "old-worker", json!({"from": "spool"})) + "\n",
    )
    .unwrap();
    // Reports fail until the task has been handed out again.
    let claimed_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let claims = Arc::new(AtomicUsize::new(0));
    let (c, n) = (claimed_at.clone(), claims.clone());
    let fake = FakeApi::start(move |path, _| match path {
        "/tasks/claim" if n.fetch_add(1, SeqCst) == 0 => {
            *c.lock().unwrap() = Some(Instant::now());
            fake::claimed(vec![fake::task("t-1", "job", json!({}), None)])
        }
        "/tasks/claim" => fake::nothing(),
        _ => match *c.lock().unwrap() {
            Some(at) if at.elapsed() > Duration::from_millis(500) => fake::ok(),
            _ => (503, json!({"error": "busy"}).to_string()),
        },
    });
    let url = fake.url();
    let mut worker = WorkerSpec::new("redelivered", &url, job_handlers(&runs, &go))
        .env("STATE_DIR", state.to_string_lossy())
        .env("WORKER_ID", "new-worker")
        .start();
    assert!(
        wait_until(Duration::from_secs(30), || fake
            .seen("/complete")
            .iter()
            .any(|s| s.status == 200)),
        "log:\n{}",
        worker.log()
    );
    let delivered = fake.seen("/complete");
    let delivered = delivered.iter().find(|s| s.status == 200).unwrap();
    assert_eq!(delivered.path, "/tasks/t-1/complete");
    assert_eq!(delivered.body["result"], json!({"from": "spool"}));
    assert_eq!(
        delivered.body["worker_id"], "new-worker",
        "sent in the name of the worker that holds the task now"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(lines(&runs).is_empty(), "ran again: {:?}", lines(&runs));
    let log = worker.log();
    assert!(log.contains("redelivered"), "{log}");
    worker.stop(Duration::from_secs(10));
    assert!(spooled(&state).is_empty(), "{:?}", spooled(&state));
}

#[test]
fn the_spool_is_compacted_on_start() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    for i in 0..100 {
        api.enqueue("echo", json!({"i": i}));
    }
    let state = temp_dir("spool-compact");
    let mut worker = WorkerSpec::new("compact", &server.url(), builtin_handlers())
        .env("STATE_DIR", state.to_string_lossy())
        .env("CONCURRENT_TASKS", "4")
        .start();
    assert!(wait_for_status(
        &api,
        "completed",
        100,
        Duration::from_secs(60)
    ));
    worker.stop(Duration::from_secs(10));
    let records = lines(&state.join(FILE_NAME)).len();
    assert!(records <= 200, "{records} records for 100 tasks");
    assert!(spooled(&state).is_empty());
    assert!(tasks_with_status(&api, "claimed").is_empty());

    let mut again = WorkerSpec::new("compact-2", &server.url(), builtin_handlers())
        .env("STATE_DIR", state.to_string_lossy())
        .start();
    assert!(again.wait_log("started", Duration::from_secs(10)));
    assert_eq!(
        std::fs::metadata(state.join(FILE_NAME)).unwrap().len(),
        0,
        "nothing left to send: rewritten empty"
    );
    again.stop(Duration::from_secs(10));
}

#[test]
fn a_bad_state_dir_is_exit_78_naming_state_dir() {
    let server = start_server(ServerConfig::default());
    let dir = temp_dir("spool-bad");
    let not_a_dir = dir.join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let spool_is_a_dir = dir.join("state");
    std::fs::create_dir_all(spool_is_a_dir.join(FILE_NAME)).unwrap();
    for state in [&not_a_dir, &spool_is_a_dir] {
        let mut worker = WorkerSpec::new("bad-state", &server.url(), builtin_handlers())
            .env("STATE_DIR", state.to_string_lossy())
            .start();
        assert_eq!(
            worker.wait_exit(Duration::from_secs(10)),
            Some(78),
            "log:\n{}",
            worker.log()
        );
        let log = worker.log();
        assert!(log.contains("STATE_DIR"), "{log}");
        assert!(log.contains(&*state.to_string_lossy()), "{log}");
    }
}
