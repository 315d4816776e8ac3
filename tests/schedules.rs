//! Schedules: a fleet enqueues each slot once, a server without `POST
//! /tasks` gets the firing run by the worker itself, `taskworker schedules`
//! prints the next firings, a bad schedule exits 78 naming itself, and
//! `expires_after` sets `expires_at` on the enqueue and drops a local
//! firing that cannot start in time.

#![cfg(feature = "server")]

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::faulty::{Fault, FaultyProxy, Route};
use support::worker::WorkerSpec;
use support::{bin, start_server, temp_dir, wait_until, Api};
use taskworker::ServerConfig;

/// A config whose schedule `tick` fires every second, with an echo handler.
fn every_second() -> Value {
    json!({
        "handlers": {"echo": {"builtin": "echo"}},
        "schedules": {"tick": {"every": "1s", "type": "echo", "parameters": {"from": "schedule"}}},
    })
}

/// The ids of the tasks the server holds whose id starts with `tick@`.
fn tick_ids(api: &Api) -> BTreeSet<String> {
    let (code, body) = api.get("/tasks?type=echo&limit=100000");
    assert_eq!(code, 200, "{body}");
    body["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str())
        .filter(|id| id.starts_with("tick@"))
        .map(String::from)
        .collect()
}

/// The task ids a worker's log says it enqueued itself.
fn enqueued_in(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split("schedule tick: enqueued ").nth(1))
        .map(|id| id.trim().to_string())
        .collect()
}

#[test]
fn two_workers_with_one_schedule_enqueue_each_slot_once() {
    let server = start_server(ServerConfig::default());
    let url = server.url();
    let api = Api::new(&url);
    let mut workers: Vec<_> = ["sched-a", "sched-b"]
        .into_iter()
        .map(|name| {
            WorkerSpec::new(name, &url, every_second())
                .env("LOG_LEVEL", "debug")
                .start()
        })
        .collect();
    // Both workers fire the same slots: one creates the task, the other
    // finds it there.
    let both_fired = wait_until(Duration::from_secs(60), || {
        let logs: Vec<String> = workers.iter().map(|w| w.log()).collect();
        tick_ids(&api).len() >= 4 && logs.iter().any(|l| l.contains("was enqueued already"))
    });
    for w in &mut workers {
        w.stop(Duration::from_secs(30));
    }
    let logs: Vec<String> = workers.iter().map(|w| w.log()).collect();
    assert!(both_fired, "logs:\n{}", logs.join("\n---\n"));

    let on_server = tick_ids(&api);
    let mut created: Vec<String> = logs.iter().flat_map(|l| enqueued_in(l)).collect();
    let count = created.len();
    created.sort();
    created.dedup();
    assert_eq!(
        count,
        created.len(),
        "a slot was created twice: {created:?}"
    );
    assert_eq!(
        created.into_iter().collect::<BTreeSet<_>>(),
        on_server,
        "every task on the server was created by exactly one worker"
    );
    for id in &on_server {
        let slot = id.strip_prefix("tick@").unwrap();
        let t = taskworker::parse_timestamp(slot).unwrap_or_else(|| panic!("{id}"));
        let ms = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        assert_eq!(ms % 1000, 0, "{id}: a slot is a whole second");
    }
    let some = on_server.iter().next().unwrap();
    let task = api.task(some);
    assert_eq!(task["parameters"], json!({"from": "schedule"}), "{task}");
}

#[test]
fn a_server_without_post_tasks_gets_the_firing_run_by_the_worker() {
    let core_only = ServerConfig {
        core_only: true,
        ..ServerConfig::default()
    };
    let server = start_server(core_only);
    // A core-only server whose enqueue is taken away: a backend that has
    // nothing but the core protocol.
    let proxy = FaultyProxy::start(server.addr());
    proxy.inject(
        Route::Enqueue,
        Fault::Status {
            status: 404,
            forward: false,
        },
        usize::MAX,
    );
    let url = proxy.url();
    let mut worker = WorkerSpec::new("sched-local", &url, every_second())
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    let health = Api::new(worker.health_url());
    let ran = wait_until(Duration::from_secs(30), || {
        let (_, text) = health.get_text("/metrics");
        text.contains("taskworker_schedule_runs_here_total{schedule=\"tick\",result=\"ok\"}")
    });
    let (_, metrics) = health.get_text("/metrics");
    let (_, status) = health.get("/status");
    worker.stop(Duration::from_secs(30));
    let log = worker.log();
    assert!(ran, "metrics:\n{metrics}\nlog:\n{log}");
    assert!(log.contains("has no POST /tasks"), "{log}");
    assert!(log.contains("ran here in"), "{log}");
    assert!(
        metrics
            .contains("taskworker_schedule_firings_total{schedule=\"tick\",result=\"ran_here\"}"),
        "{metrics}"
    );
    let entry = &status["schedules"][0];
    assert_eq!(entry["name"], "tick", "{status}");
    assert_eq!(entry["runs"], "here", "{status}");
    assert!(
        entry["next"].as_str().is_some_and(|n| n.ends_with('Z')),
        "{status}"
    );
    assert!(
        tick_ids(&Api::new(server.url())).is_empty(),
        "nothing enqueued"
    );
}

/// Runs `taskworker schedules` on a config file holding `config`.
fn schedules_command(name: &str, config: &Value, args: &[&str]) -> std::process::Output {
    let dir = temp_dir(name);
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    Command::new(bin())
        .arg("schedules")
        .arg("--config")
        .arg(&path)
        .args(args)
        .env_remove("CONFIG_FILE")
        .output()
        .expect("taskworker runs")
}

#[test]
fn schedules_command_prints_the_next_firings() {
    let config = json!({
        "handlers": {"echo": {"builtin": "echo"}},
        "schedules": {
            "nightly-report": {"cron": "0 3 * * *", "type": "echo", "timezone": "+02:00"},
            "often": {"every": "15m", "type": "echo"},
        },
    });
    let out = schedules_command(
        "sched-cmd",
        &config,
        &["--count", "3", "--from", "2025-11-09T15:07:00Z"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout,
        "nightly-report: cron \"0 3 * * *\" in +02:00 → echo\n\
         \x20 2025-11-10T03:00:00+02:00  nightly-report@2025-11-10T01:00:00Z\n\
         \x20 2025-11-11T03:00:00+02:00  nightly-report@2025-11-11T01:00:00Z\n\
         \x20 2025-11-12T03:00:00+02:00  nightly-report@2025-11-12T01:00:00Z\n\
         often: every 900s → echo\n\
         \x20 2025-11-09T15:15:00Z  often@2025-11-09T15:15:00Z\n\
         \x20 2025-11-09T15:30:00Z  often@2025-11-09T15:30:00Z\n\
         \x20 2025-11-09T15:45:00Z  often@2025-11-09T15:45:00Z\n"
    );
}

#[test]
fn bad_schedules_exit_78_naming_the_schedule_and_the_field() {
    for (schedule, named, field) in [
        (
            json!({"cron": "0 3 * * mon-fry", "type": "echo"}),
            "schedules.nightly.cron",
            "day-of-week field",
        ),
        (
            json!({"cron": "0 3 * *", "type": "echo"}),
            "schedules.nightly.cron",
            "five",
        ),
        (
            json!({"cron": "61 3 * * *", "type": "echo"}),
            "schedules.nightly.cron",
            "minute field",
        ),
        (
            json!({"every": "1m", "type": "echo", "timezone": "Atlantis/Capital"}),
            "schedules.nightly.timezone",
            "Atlantis/Capital",
        ),
    ] {
        let config =
            json!({"handlers": {"echo": {"builtin": "echo"}}, "schedules": {"nightly": schedule}});
        let out = schedules_command("sched-bad", &config, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{stderr}");
        assert!(stderr.contains(named) && stderr.contains(field), "{stderr}");
    }
    // `run` refuses it too, before any thread starts, and so does a type
    // without a handler.
    let server = start_server(ServerConfig::default());
    for (schedule, named) in [
        (
            json!({"cron": "0 25 * * *", "type": "echo"}),
            "schedules.nightly.cron",
        ),
        (
            json!({"every": "1m", "type": "report"}),
            "schedules.nightly.type",
        ),
    ] {
        let config =
            json!({"handlers": {"echo": {"builtin": "echo"}}, "schedules": {"nightly": schedule}});
        let mut worker = WorkerSpec::new("sched-bad-run", &server.url(), config).start();
        let log = worker.expect_exit(78, Duration::from_secs(20));
        assert!(log.contains(named), "{log}");
    }
}

#[test]
fn expires_after_sets_expires_at_on_the_enqueue() {
    let fake = support::fake::FakeApi::start(|path, _| match path {
        "/tasks" => (201, r#"{"task": {}}"#.into()),
        _ => support::fake::nothing(),
    });
    let config = json!({
        "handlers": {"echo": {"builtin": "echo"}},
        "schedules": {"tick": {"every": "1s", "type": "echo", "expires_after": "30s"}},
    });
    let mut worker = WorkerSpec::new("sched-expires", &fake.url(), config).start();
    support::fake::wait_for(&worker, || !fake.seen("/tasks").is_empty());
    worker.stop(Duration::from_secs(30));
    let enqueue = fake.seen("/tasks").remove(0).body;
    let id = enqueue["id"].as_str().expect("an id");
    let slot = taskworker::parse_timestamp(id.trim_start_matches("tick@")).expect("slot");
    let expires = enqueue["expires_at"].as_str().expect("expires_at");
    let expires = taskworker::parse_timestamp(expires).expect("RFC 3339");
    assert_eq!(
        expires.duration_since(slot).ok(),
        Some(Duration::from_secs(30)),
        "{enqueue}"
    );
}

#[test]
fn a_local_firing_that_cannot_start_in_time_is_missed_not_run_late() {
    // Each run takes 2.5 s, so the next slot (1 s later) could start only
    // 1.5 s late, past its 500 ms: it is a miss.
    let fake = support::fake::FakeApi::start(|path, _| match path {
        "/tasks" => (404, r#"{"error": "no route"}"#.into()),
        _ => support::fake::nothing(),
    });
    let config = json!({
        "handlers": {"sleep": {"builtin": "sleep"}},
        "schedules": {"slow": {"every": "1s", "type": "sleep", "parameters": {"ms": 2500},
                               "expires_after": "500ms"}},
    });
    let mut worker = WorkerSpec::new("sched-late", &fake.url(), config)
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    let health = Api::new(worker.health_url());
    let missed = wait_until(Duration::from_secs(30), || {
        let (_, text) = health.get_text("/metrics");
        text.contains("taskworker_schedule_runs_here_total{schedule=\"slow\",result=\"ok\"}")
            && !text.contains("taskworker_schedule_misses_total{schedule=\"slow\"} 0")
    });
    let (_, metrics) = health.get_text("/metrics");
    worker.stop(Duration::from_secs(30));
    let log = worker.log();
    assert!(missed, "metrics:\n{metrics}\nlog:\n{log}");
    assert!(
        log.contains("could not start within expires_after (500ms)"),
        "{log}"
    );
}
