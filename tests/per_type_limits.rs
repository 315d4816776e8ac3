//! Per-type limits: under load no type runs more tasks at once than its
//! `concurrency`, and no window of its `rate` sees more starts than the rate
//! plus its burst, judged from the handlers' own start and end times. With a
//! server that filters by `types` no claimed task waits; against a core-only
//! server a task of a full type waits locally, shows in `/status` and
//! `/metrics`, starts when its type has room, and is given back at the drain.

#![cfg(feature = "server")]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::worker::{wait_for_status, LibraryWorker, WorkerSpec};
use support::{start_server, temp_dir, wait_until, Api};
use taskworker::{Config, Context, Limit, Rate, ServerConfig, Task, TaskError, Worker};

/// What one handler call saw: its type, and when it began and ended.
#[derive(Debug, Clone)]
struct Run {
    task_type: String,
    start: Instant,
    end: Instant,
}

/// The three types, their limits, how many tasks of each and how long each runs.
fn types() -> Vec<(&'static str, Limit, usize, Duration)> {
    vec![
        (
            "two.at.once",
            Limit {
                concurrency: Some(2),
                rate: None,
            },
            16,
            Duration::from_millis(60),
        ),
        (
            "four.a.second",
            Limit {
                concurrency: None,
                rate: Some(Rate::per_second(4).with_burst(2)),
            },
            10,
            Duration::from_millis(20),
        ),
        (
            "three.and.ten.a.second",
            Limit {
                concurrency: Some(3),
                rate: Some(Rate::per_second(10)),
            },
            24,
            Duration::from_millis(80),
        ),
    ]
}

/// Runs every task of [`types`] through a library worker with 8 processors
/// against `server`; returns what the handlers saw and the most tasks that
/// ever waited locally at once.
fn run_under_load(server: ServerConfig) -> (Vec<Run>, usize) {
    let server = start_server(server);
    let api = Api::new(server.url());
    let mut total = 0;
    for (task_type, _, count, _) in types() {
        for i in 0..count {
            api.enqueue(task_type, json!({ "n": i }));
        }
        total += count;
    }
    let runs: Arc<Mutex<Vec<Run>>> = Arc::default();
    let config = Config {
        api_url: server.url(),
        concurrent_tasks: 8,
        health_addr: None,
        wait_seconds: 1,
        polling_interval: Duration::from_millis(20),
        ..Config::default()
    };
    let mut worker = Worker::new(config);
    for (task_type, limit, _, takes) in types() {
        let runs = runs.clone();
        worker = worker
            .handler(task_type, move |task: &Task, ctx: &Context| {
                let start = Instant::now();
                ctx.sleep(takes)
                    .map_err(|_| TaskError::retryable("cancelled", "SHUTDOWN"))?;
                let run = Run {
                    task_type: task.task_type.clone(),
                    start,
                    end: Instant::now(),
                };
                runs.lock().unwrap().push(run);
                Ok(json!({}))
            })
            .limit(task_type, limit);
    }
    let running = LibraryWorker::start(worker);
    let mut most_waiting = 0;
    let done = wait_until(Duration::from_secs(120), || {
        most_waiting = most_waiting.max(running.state.limiter.waiting().len());
        runs.lock().unwrap().len() >= total
    });
    running.stop();
    assert!(done, "{} of {total} tasks ran", runs.lock().unwrap().len());
    assert!(wait_for_status(
        &api,
        "completed",
        total,
        Duration::from_secs(30)
    ));
    let runs = runs.lock().unwrap().clone();
    (runs, most_waiting)
}

/// The most `runs` that overlap at any instant. A run's end comes before a
/// start at the same instant: its slot was freed after it.
fn most_at_once<'a>(runs: impl Iterator<Item = &'a Run>) -> usize {
    let mut events: Vec<(Instant, i32)> = runs.flat_map(|r| [(r.start, 1), (r.end, -1)]).collect();
    events.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, change) in events {
        now += change;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

/// The most starts of `task_type` in any window of length `window`.
fn most_starts_in(runs: &[Run], task_type: &str, window: Duration) -> usize {
    let mut starts: Vec<Instant> = runs
        .iter()
        .filter(|r| r.task_type == task_type)
        .map(|r| r.start)
        .collect();
    starts.sort();
    (0..starts.len())
        .map(|i| {
            starts[i..]
                .iter()
                .take_while(|s| s.duration_since(starts[i]) < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Checks every type's limits against what its handlers saw.
fn assert_limits_held(runs: &[Run]) {
    assert!(
        most_at_once(runs.iter()) <= 8,
        "more than CONCURRENT_TASKS ran"
    );
    let mut seen = BTreeMap::new();
    for (task_type, limit, count, _) in types() {
        let ran = runs.iter().filter(|r| r.task_type == task_type).count();
        assert_eq!(ran, count, "{task_type}: every task ran once");
        let at_once = most_at_once(runs.iter().filter(|r| r.task_type == task_type));
        if let Some(concurrency) = limit.concurrency {
            assert!(
                at_once <= concurrency as usize,
                "{task_type}: {at_once} ran at once, the limit is {concurrency}"
            );
        }
        if let Some(rate) = limit.rate {
            let per_second = match task_type {
                "four.a.second" => 4,
                _ => 10,
            };
            let starts = most_starts_in(runs, task_type, Duration::from_secs(1));
            let allowed = per_second + rate.burst() as usize;
            assert!(
                starts <= allowed,
                "{task_type}: {starts} starts within 1 s, rate + burst is {allowed}"
            );
        }
        seen.insert(task_type, at_once);
    }
    println!("most at once by type: {seen:?}");
}

/// A server that ignores `types` and `max_tasks`.
fn core_only() -> ServerConfig {
    ServerConfig {
        core_only: true,
        ..ServerConfig::default()
    }
}

#[test]
fn three_types_keep_their_limits_under_load_and_no_claimed_task_waits() {
    let (runs, most_waiting) = run_under_load(ServerConfig::default());
    assert_limits_held(&runs);
    assert_eq!(
        most_waiting, 0,
        "a server that filters by types hands out only tasks that can start"
    );
}

#[test]
fn three_types_keep_their_limits_under_load_against_a_core_only_server() {
    let (runs, most_waiting) = run_under_load(core_only());
    assert_limits_held(&runs);
    println!("most tasks waiting locally at once: {most_waiting}");
}

/// `gated` runs until the file its task names exists (or a minute has
/// passed, so that no test leaves it behind), one at a time; `echo` keeps
/// the worker claiming while `gated` is full, and a core-only server hands
/// out whatever comes first.
fn gated_config() -> Value {
    json!({"handlers": {
        "echo": {"builtin": "echo"},
        "gated": {
            "exec": {"command": ["sh", "-c",
                "gate=$(sed -n 's/.*\"gate\":\"\\([^\"]*\\)\".*/\\1/p'); i=0; while [ ! -e \"$gate\" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"]},
            "concurrency": 1
        },
    }})
}

#[test]
fn a_task_of_a_full_type_from_a_core_only_server_waits_shows_and_is_given_back_at_the_drain() {
    let server = start_server(core_only());
    let api = Api::new(server.url());
    let gates = temp_dir("limits-gates");
    let mut gate_of = BTreeMap::new();
    for i in 0..3 {
        let gate = gates.join(format!("gate-{i}"));
        let id = api.enqueue("gated", json!({ "gate": gate.to_string_lossy() }));
        gate_of.insert(id, gate);
    }
    let mut worker = WorkerSpec::new("limits-core", &server.url(), gated_config())
        .env("CONCURRENT_TASKS", "3")
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    let health = Api::new(worker.health_url());

    let mut status = Value::Null;
    let settled = wait_until(Duration::from_secs(20), || {
        status = health.get("/status").1;
        status["running"].as_array().map(Vec::len) == Some(1)
            && status["waiting"].as_array().map(Vec::len) == Some(2)
    });
    assert!(settled, "one runs, two wait: {status}\n{}", worker.log());
    assert_eq!(status["waiting"][0]["type"], "gated");
    assert_eq!(status["limits"]["gated"]["running"], 1, "{status}");
    let metrics = health.get_text("/metrics").1;
    assert!(
        metrics.contains("taskworker_tasks_waiting{type=\"gated\"} 2"),
        "{metrics}"
    );

    // Its slot frees: the oldest waiting task starts, alone.
    let first = status["running"][0]["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let next = status["waiting"][0]["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let last = status["waiting"][1]["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&gate_of[&first], "").unwrap();
    let moved = wait_until(Duration::from_secs(20), || {
        status = health.get("/status").1;
        status["running"][0]["task_id"] == next.as_str()
            && status["waiting"].as_array().map(Vec::len) == Some(1)
    });
    assert!(moved, "{status}\n{}", worker.log());
    assert_eq!(status["running"].as_array().map(Vec::len), Some(1));
    assert_eq!(api.task(&first)["status"], "completed");

    // The drain gives the waiting task back at once, retryable.
    worker.signal("TERM");
    assert!(
        worker.wait_log("waited for its type at the drain", Duration::from_secs(10)),
        "{}",
        worker.log()
    );
    let given_back = wait_until(Duration::from_secs(10), || {
        api.task(&last)["history"][0]["error_type"] == "SHUTDOWN"
    });
    assert!(given_back, "{}", api.task(&last));
    std::fs::write(&gate_of[&next], "").unwrap();
    assert_eq!(
        worker.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        worker.log()
    );
    assert_eq!(api.task(&next)["status"], "completed");
}

#[test]
fn a_bad_rate_exits_78_naming_its_key() {
    let server = start_server(ServerConfig::default());
    let config = json!({"handlers": {"send.email": {"builtin": "echo", "rate": "100/day"}}});
    let mut worker = WorkerSpec::new("limits-bad", &server.url(), config).start();
    let log = worker.expect_exit(78, Duration::from_secs(10));
    assert!(log.contains("handlers.send.email.rate"), "{log}");
}

#[test]
fn the_example_configuration_limits_its_types() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/examples");
    let text = std::fs::read_to_string(examples.join("config.json")).unwrap();
    let config: Value = serde_json::from_str(&text).unwrap();
    let env = taskworker::HandlerEnv {
        base_dir: Some(examples),
        ..support::handler_env(&[])
    };
    let registry =
        taskworker::Registry::from_config(config["handlers"].as_object().unwrap(), &env).unwrap();
    let limits = registry.limits();
    assert_eq!(
        limits["send.email"].rate,
        Some(Rate::per_hour(100).with_burst(5))
    );
    assert_eq!(limits["process.image"].concurrency, Some(2));
    assert_eq!(limits["generate.report"].concurrency, Some(1));
}
