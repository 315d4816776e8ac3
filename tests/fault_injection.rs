//! The worker against a faulty network: 500s, answers cut mid-way, answers
//! slower than the client's timeout, malformed and huge claim answers, tasks
//! without an id or a type, and duplicate deliveries. In every case the
//! worker does not panic, goes on serving, and each task ends `completed` or
//! `failed` at the server exactly once.

#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::faulty::{Fault, FaultyProxy, Route};
use support::worker::{builtin_handlers, WorkerProcess, WorkerSpec};
use support::{start_server, status_kb, wait_until, Api};
use taskworker::{Server, ServerConfig};

const LIMIT: Duration = Duration::from_secs(60);

/// A server, the proxy in front of it, a client of the server itself, and a
/// worker that talks to the server through the proxy.
struct Rig {
    api: Api,
    proxy: FaultyProxy,
    worker: Option<WorkerProcess>,
    _server: Server,
}

impl Rig {
    fn new(lease: Duration) -> Rig {
        let server = start_server(ServerConfig {
            lease,
            ..ServerConfig::default()
        });
        Rig {
            api: Api::new(server.url()),
            proxy: FaultyProxy::start(server.addr()),
            worker: None,
            _server: server,
        }
    }

    fn start_worker(&mut self, name: &str, env: &[(&'static str, &str)]) {
        let url = self.proxy.url();
        let mut spec = WorkerSpec::new(name, &url, builtin_handlers())
            .env("WAIT_SECONDS", "1")
            .env("LOG_LEVEL", "debug");
        for (k, v) in env {
            spec = spec.env(k, *v);
        }
        self.worker = Some(spec.start());
    }

    fn worker(&mut self) -> &mut WorkerProcess {
        self.worker.as_mut().expect("worker started")
    }

    fn log(&mut self) -> String {
        self.worker().log()
    }

    fn enqueue(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| self.api.enqueue("echo", json!({"n": i})))
            .collect()
    }

    /// Waits until every task in `ids` has `status`.
    fn wait_all(&mut self, ids: &[String], status: &str) {
        let api = self.api.clone();
        let done = wait_until(LIMIT, || {
            ids.iter().all(|id| api.task(id)["status"] == status)
        });
        assert!(
            done,
            "not all {status}; faults fired: {:?}\nlog:\n{}",
            self.proxy.fired(),
            self.log()
        );
    }

    /// Waits until every injected fault has fired.
    fn wait_fired(&mut self) {
        let proxy = &self.proxy;
        let fired = wait_until(LIMIT, || proxy.pending() == 0);
        assert!(
            fired,
            "faults left: {}; fired: {:?}\nlog:\n{}",
            self.proxy.pending(),
            self.proxy.fired(),
            self.log()
        );
    }

    /// The end of every scenario: no panic, later tasks still complete, each
    /// task finished exactly once, and a clean exit on SIGTERM.
    fn finish(mut self, ids: &[String]) {
        // Give late duplicate reports time to arrive before counting.
        std::thread::sleep(Duration::from_millis(300));
        for id in ids {
            assert_finished_once(&self.api.task(id));
        }
        let later = self.enqueue(5);
        self.wait_all(&later, "completed");
        for id in &later {
            assert_finished_once(&self.api.task(id));
        }
        let log = self.log();
        assert!(!log.contains("panicked"), "a panic:\n{log}");
        let worker = self.worker();
        assert!(
            matches!(worker.child.try_wait(), Ok(None)),
            "the worker is still running"
        );
        worker.signal("TERM");
        let code = worker.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(0), "log:\n{}", worker.log());
    }
}

/// A task ended `completed` or `failed`, and only one attempt in its history says so.
fn assert_finished_once(task: &Value) {
    let status = task["status"].as_str().unwrap_or_default();
    assert!(
        status == "completed" || status == "failed",
        "not finished: {task}"
    );
    let history = task["history"].as_array().cloned().unwrap_or_default();
    let finals = history
        .iter()
        .filter(|a| a["outcome"] == "completed" || a["outcome"] == "failed")
        .count();
    assert_eq!(finals, 1, "finished exactly once: {task}");
}

fn attempts(task: &Value) -> usize {
    task["history"].as_array().map_or(0, Vec::len)
}

#[test]
fn server_errors_on_claims_and_reports_are_retried() {
    let mut rig = Rig::new(Duration::from_secs(30));
    // The first report reaches the server but its answer is a 500: the
    // retry gets 409, which must be dropped, not counted twice.
    rig.proxy.inject(
        Route::Report,
        Fault::Status {
            status: 500,
            forward: true,
        },
        1,
    );
    for route in [Route::Claim, Route::Report] {
        rig.proxy.inject(
            route,
            Fault::Status {
                status: 500,
                forward: false,
            },
            3,
        );
    }
    let ids = rig.enqueue(6);
    rig.start_worker("faults-500", &[("CONCURRENT_TASKS", "2")]);
    rig.wait_fired();
    rig.wait_all(&ids, "completed");
    // The forwarded report counted at the server; its retry comes after a backoff.
    assert!(
        wait_until(LIMIT, || rig
            .log()
            .contains("report dropped: the server answered 409")),
        "{}",
        rig.log()
    );
    assert!(rig.log().contains("task API unreachable"), "{}", rig.log());
    rig.finish(&ids);
}

#[test]
fn answers_cut_mid_way_lose_nothing() {
    // A long lease: a task whose claim answer was cut is back only through
    // the repeated claim id, not through a lease running out.
    let mut rig = Rig::new(Duration::from_secs(30));
    rig.proxy.inject(Route::Claim, Fault::CutAnswer, 2);
    rig.proxy.inject(Route::Report, Fault::CutAnswer, 2);
    let ids = rig.enqueue(4);
    rig.start_worker("faults-cut", &[("CONCURRENT_TASKS", "2")]);
    rig.wait_fired();
    rig.wait_all(&ids, "completed");
    for id in &ids {
        let task = rig.api.task(id);
        assert_eq!(attempts(&task), 1, "handed out once: {task}");
    }
    rig.finish(&ids);
}

#[test]
fn a_claim_answer_slower_than_the_timeout_is_claimed_again() {
    let mut rig = Rig::new(Duration::from_secs(60));
    // WAIT_SECONDS=1: the claim's timeout is 1 s plus the 10 s margin.
    rig.proxy
        .inject(Route::Claim, Fault::Delay(Duration::from_secs(13)), 1);
    let ids = rig.enqueue(2);
    rig.start_worker("faults-slow-claim", &[("CONCURRENT_TASKS", "2")]);
    rig.wait_fired();
    rig.wait_all(&ids, "completed");
    for id in &ids {
        let task = rig.api.task(id);
        assert_eq!(attempts(&task), 1, "the repeated claim id: {task}");
    }
    rig.finish(&ids);
}

#[test]
fn a_report_answer_slower_than_the_timeout_is_not_counted_twice() {
    let mut rig = Rig::new(Duration::from_secs(60));
    // The server records the completion; its answer comes after the 15 s timeout.
    rig.proxy
        .inject(Route::Report, Fault::Delay(Duration::from_secs(17)), 1);
    let ids = rig.enqueue(2);
    rig.start_worker("faults-slow-report", &[]);
    rig.wait_fired();
    rig.wait_all(&ids, "completed");
    let api = rig.api.clone();
    let log = rig.worker.as_ref().expect("worker");
    assert!(
        log.wait_log("report dropped: the server answered 409", LIMIT),
        "the retry after the timeout is answered 409:\n{}",
        log.log()
    );
    for id in &ids {
        assert_eq!(attempts(&api.task(id)), 1);
    }
    rig.finish(&ids);
}

#[test]
fn malformed_claim_answers_are_logged_and_skipped() {
    let mut rig = Rig::new(Duration::from_secs(30));
    for body in [
        &br#"{"task": {"#[..],
        b"not json at all",
        br#"{"tasks": 7}"#,
    ] {
        rig.proxy
            .inject(Route::Claim, Fault::Replace(body.to_vec()), 1);
    }
    rig.start_worker("faults-malformed", &[]);
    rig.wait_fired();
    let ids = rig.enqueue(3);
    rig.wait_all(&ids, "completed");
    let log = rig.log();
    assert!(
        log.contains("claim: malformed answer: claim answer is not a task object"),
        "{log}"
    );
    rig.finish(&ids);
}

#[test]
fn a_huge_claim_answer_is_refused_and_memory_stays_bounded() {
    let mut rig = Rig::new(Duration::from_secs(30));
    let blob = "x".repeat(8 << 20);
    let huge = json!({"task": {"id": "huge", "type": "echo", "parameters": {"blob": blob}}});
    rig.proxy.inject(
        Route::Claim,
        Fault::Replace(huge.to_string().into_bytes()),
        1,
    );
    rig.start_worker("faults-huge", &[]);
    rig.wait_fired();
    let ids = rig.enqueue(3);
    rig.wait_all(&ids, "completed");
    let log = rig.log();
    assert!(
        log.contains("claim: answer larger than 4194304 bytes, refused"),
        "{log}"
    );
    let pid = rig.worker().child.id().to_string();
    let peak = status_kb(&pid, "VmHWM");
    eprintln!(
        "worker VmHWM after an 8 MiB claim answer: {} KiB",
        peak >> 10
    );
    assert!(peak < 64 << 20, "peak RSS {} MiB", peak >> 20);
    rig.finish(&ids);
}

fn strip_id(answer: &mut Value) {
    for_each_task(answer, |t| {
        t.remove("id");
    });
}

fn strip_type(answer: &mut Value) {
    for_each_task(answer, |t| {
        t.remove("type");
    });
}

fn for_each_task(answer: &mut Value, f: impl Fn(&mut serde_json::Map<String, Value>)) {
    if let Some(t) = answer["task"].as_object_mut() {
        f(t);
    }
    if let Some(list) = answer["tasks"].as_array_mut() {
        list.iter_mut().filter_map(Value::as_object_mut).for_each(f);
    }
}

#[test]
fn tasks_without_an_id_or_a_type() {
    // A short lease: the task whose id was stripped comes back when it runs out.
    let mut rig = Rig::new(Duration::from_secs(2));
    // Known to nobody: no id, and not even at the server.
    rig.proxy.inject(
        Route::Claim,
        Fault::Replace(br#"{"task": {"type": "echo"}}"#.to_vec()),
        1,
    );
    rig.proxy.inject(Route::Claim, Fault::Rewrite(strip_id), 1);
    rig.proxy
        .inject(Route::Claim, Fault::Rewrite(strip_type), 1);
    let no_id = rig.api.enqueue("echo", json!({"which": "no id"}));
    let no_type = rig.api.enqueue("echo", json!({"which": "no type"}));
    rig.start_worker("faults-no-id", &[]);
    rig.wait_fired();
    rig.wait_all(std::slice::from_ref(&no_id), "completed");
    rig.wait_all(std::slice::from_ref(&no_type), "failed");
    let task = rig.api.task(&no_id);
    assert_eq!(task["history"][0]["outcome"], "lease_expired", "{task}");
    let task = rig.api.task(&no_type);
    assert_eq!(task["error_type"], "VALIDATION", "{task}");
    assert_eq!(attempts(&task), 1, "not retried: {task}");
    let log = rig.log();
    assert_eq!(
        log.matches("a claimed task has no string id").count(),
        2,
        "{log}"
    );
    rig.finish(&[no_id, no_type]);
}

#[test]
fn duplicate_deliveries_are_reported_once() {
    let mut rig = Rig::new(Duration::from_secs(30));
    let id = rig.api.enqueue("sleep", json!({"ms": 3000}));
    rig.start_worker("faults-duplicate", &[("CONCURRENT_TASKS", "2")]);
    let proxy = &rig.proxy;
    assert!(wait_until(LIMIT, || proxy.has_claim_to_replay()));
    // Once while the first delivery runs, and again after it finished.
    rig.proxy.inject(Route::Claim, Fault::ReplayClaim, 1);
    rig.wait_fired();
    rig.wait_all(std::slice::from_ref(&id), "completed");
    rig.proxy.inject(Route::Claim, Fault::ReplayClaim, 1);
    rig.wait_fired();
    let worker = rig.worker.as_ref().expect("worker");
    // The copy delivered while the task runs here is not run a second time;
    // the one delivered after it finished runs, and its report gets 409.
    assert!(
        wait_until(LIMIT, || worker
            .log()
            .contains("report dropped: the server answered 409")),
        "the late duplicate is answered 409 and dropped:\n{}",
        worker.log()
    );
    let log = worker.log();
    assert_eq!(
        log.matches("delivered again while it runs here").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("(sleep): started").count(), 2, "{log}");
    let task = rig.api.task(&id);
    assert_eq!(attempts(&task), 1, "{task}");
    assert_eq!(task["result"], json!({"slept_ms": 3000}));
    rig.finish(&[id]);
}

#[test]
fn a_restarted_worker_is_not_handed_its_predecessors_tasks() {
    // Same WORKER_ID across a kill -9, as a deployment with a fixed id has.
    let server = start_server(ServerConfig {
        lease: Duration::from_secs(60),
        ..ServerConfig::default()
    });
    let api = Api::new(server.url());
    let held: Vec<String> = (0..2)
        .map(|_| api.enqueue("sleep", json!({"ms": 20_000})))
        .collect();
    let url = server.url();
    let spec = |name| {
        WorkerSpec::new(name, &url, builtin_handlers())
            .env("WORKER_ID", "fixed-id")
            .env("CONCURRENT_TASKS", "2")
            .env("WAIT_SECONDS", "1")
            .env("LOG_LEVEL", "debug")
    };
    let mut first = spec("restart-1").start();
    assert!(
        wait_until(LIMIT, || held
            .iter()
            .all(|id| api.task(id)["status"] == "claimed")),
        "log:\n{}",
        first.log()
    );
    first.signal("KILL");
    assert_eq!(first.wait_exit(Duration::from_secs(10)), None);
    let fresh: Vec<String> = (0..2)
        .map(|i| api.enqueue("echo", json!({"n": i})))
        .collect();
    let second = spec("restart-2").start();
    assert!(
        wait_until(LIMIT, || fresh
            .iter()
            .all(|id| api.task(id)["status"] == "completed")),
        "log:\n{}",
        second.log()
    );
    // The dead process's tasks come back when their lease runs out, not as a
    // replay of a claim id the new process happens to repeat.
    let log = second.log();
    for id in &held {
        assert!(
            !log.contains(id.as_str()),
            "{id} handed to the new process:\n{log}"
        );
        assert_eq!(api.task(id)["attempt"], 1);
    }
}
