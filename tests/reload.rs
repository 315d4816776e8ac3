//! Live reload as an operator does it: a real `taskworker run` child, its
//! config file rewritten, a real SIGHUP. Each live key changes and is seen
//! to change (handlers, CONCURRENT_TASKS both ways, log level, the API
//! key), a new type counts under its own name in `/metrics`; a bad file
//! changes nothing and shows in `/status` and `/metrics`;
//! restart-only keys are named in one warning; systemd hears `RELOADING=1`
//! then `READY=1`; a reload during the drain is ignored; and 1,000 tasks
//! run through many reloads exactly once each.

#![cfg(feature = "server")]

mod support;

use std::collections::HashSet;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::worker::{tasks_with_status, wait_for_status, WorkerProcess, WorkerSpec};
use support::{start_server, wait_until, Api};
use taskworker::{Server, ServerConfig};

const LONG: Duration = Duration::from_secs(30);

/// Reloads seen in the log so far: applied or refused.
fn reloads_logged(worker: &WorkerProcess) -> usize {
    let log = worker.log();
    log.matches("configuration reloaded").count() + log.matches("reload refused").count()
}

/// Rewrites the worker's config file with `config`, sends SIGHUP, and waits
/// until the log says the reload was applied or refused.
fn reload(worker: &WorkerProcess, config: &Value) {
    std::fs::write(worker.dir.join("config.json"), config.to_string()).expect("config written");
    let before = reloads_logged(worker);
    worker.signal("HUP");
    assert!(
        wait_until(LONG, || reloads_logged(worker) > before),
        "no reload logged; log:\n{}",
        worker.log()
    );
}

/// An exec handler: `sh -c script`, the task on stdin.
fn sh(script: &str) -> Value {
    json!({"exec": {"command": ["sh", "-c", script]}})
}

/// The worker's `/status`.
fn status(worker_api: &Api) -> Value {
    let (code, body) = worker_api.get("/status");
    assert_eq!(code, 200, "{body}");
    body
}

/// The result a completed task holds.
fn result(api: &Api, id: &str) -> Value {
    let task = api.task(id);
    assert_eq!(task["status"], "completed", "{task}");
    task["result"].clone()
}

/// Waits until task `id` has `status`.
fn wait_task(api: &Api, id: &str, status: &str) -> bool {
    wait_until(LONG, || api.task(id)["status"] == status)
}

#[test]
fn handlers_change_at_once_and_a_running_task_keeps_its_own() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let old = json!({"worker": {"wait_seconds": 1}, "performance": {"concurrent_tasks": 2},
        "handlers": {"job": sh("cat >/dev/null; sleep 3; echo '{\"by\": \"old\"}'")}});
    let worker = WorkerSpec::new("reload-handlers", &server.url(), old.clone())
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    let health = Api::new(worker.health_url());

    let long = api.enqueue("job", json!({}));
    assert!(wait_task(&api, &long, "claimed"), "{}", worker.log());
    let new = json!({"worker": {"wait_seconds": 1}, "performance": {"concurrent_tasks": 2},
        "handlers": {"job": sh("cat >/dev/null; echo '{\"by\": \"new\"}'"),
                     "added": {"builtin": "echo"}}});
    reload(&worker, &new);
    assert!(
        worker.log().contains("configuration reloaded"),
        "{}",
        worker.log()
    );

    // The new handler of a changed type, and a new type, take new tasks at
    // once, while the long task still runs under the handler it began with.
    let short = api.enqueue("job", json!({}));
    let added = api.enqueue("added", json!({"x": 1}));
    assert!(wait_task(&api, &short, "completed"), "{}", worker.log());
    assert!(wait_task(&api, &added, "completed"), "{}", worker.log());
    assert_eq!(result(&api, &short), json!({"by": "new"}));
    assert_eq!(result(&api, &added), json!({"x": 1}));
    assert_eq!(api.task(&long)["status"], "claimed", "still under way");
    assert!(wait_task(&api, &long, "completed"), "{}", worker.log());
    assert_eq!(result(&api, &long), json!({"by": "old"}));
    // The new type counts under its own name in /metrics, not as `other`.
    let added_ok = "taskworker_outcomes_total{type=\"added\",error_type=\"ok\"} 1";
    let (_, metrics) = health.get_text("/metrics");
    assert!(metrics.contains(added_ok), "{metrics}");

    // A removed type is claimed no more; the others still are. (A long
    // poll opened before the reload, 1 s at most, is let end first.)
    reload(&worker, &old);
    std::thread::sleep(Duration::from_secs(2));
    let orphan = api.enqueue("added", json!({}));
    let job = api.enqueue("job", json!({}));
    assert!(wait_task(&api, &job, "completed"), "{}", worker.log());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(api.task(&orphan)["status"], "queued", "{}", worker.log());
    // Its handler gone, the type keeps its series: counters never go back.
    let (_, metrics) = health.get_text("/metrics");
    assert!(metrics.contains(added_ok), "{metrics}");
}

#[test]
fn a_task_of_a_removed_type_claimed_as_the_reload_came_goes_back_retryable() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let both = json!({"worker": {"wait_seconds": 20},
        "handlers": {"job": {"builtin": "echo"}, "gone": {"builtin": "echo"}}});
    let worker = WorkerSpec::new("reload-gone", &server.url(), both).start();
    assert!(worker.wait_log("started", LONG));
    // The first long poll (20 s, for both types) is open; the reload takes
    // `gone` away while it waits, and the task it then brings is of `gone`.
    reload(
        &worker,
        &json!({"worker": {"wait_seconds": 20}, "handlers": {"job": {"builtin": "echo"}}}),
    );
    let id = api.enqueue("gone", json!({}));
    assert!(
        worker.wait_log("a reload removed it", LONG),
        "{}",
        worker.log()
    );
    assert!(wait_until(LONG, || api.task(&id)["error_type"] == "UNKNOWN_TYPE"));
    let task = api.task(&id);
    assert_ne!(
        task["status"], "failed",
        "retryable, not failed for good: {task}"
    );
    assert_ne!(task["status"], "completed", "{task}");
}

#[test]
fn concurrency_grows_at_once_shrinks_as_tasks_end_and_the_log_level_changes() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let config = |n: usize, level: &str| {
        json!({"worker": {"wait_seconds": 1}, "performance": {"concurrent_tasks": n},
               "logging": {"level": level}, "handlers": {"sleep": {"builtin": "sleep"}}})
    };
    let worker = WorkerSpec::new("reload-pool", &server.url(), config(1, "info"))
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    let health = Api::new(worker.health_url());
    for _ in 0..8 {
        api.enqueue("sleep", json!({"ms": 2000}));
    }
    assert!(wait_until(LONG, || status(&health)["busy"] == 1));
    assert!(
        !worker.log().contains("started, attempt"),
        "no debug line at info"
    );

    // Up to 4: three more processors start at once and take tasks.
    reload(&worker, &config(4, "debug"));
    assert!(
        wait_until(LONG, || status(&health)["busy"] == 4),
        "{}",
        status(&health)
    );
    assert_eq!(status(&health)["processors"], 4);
    assert!(worker.log().contains("started, attempt"), "debug lines now");

    // Down to 1: running tasks finish (none is cancelled), surplus
    // processors leave as they become idle, and then one task runs at a time.
    reload(&worker, &config(1, "info"));
    assert!(
        wait_until(LONG, || status(&health)["processors"] == 1),
        "{}",
        status(&health)
    );
    let mut most = 0;
    let deadline = Instant::now() + LONG;
    while tasks_with_status(&api, "completed").len() < 8 && Instant::now() < deadline {
        most = most.max(status(&health)["busy"].as_u64().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        tasks_with_status(&api, "completed").len(),
        8,
        "{}",
        worker.log()
    );
    assert!(tasks_with_status(&api, "failed").is_empty());
    assert_eq!(most, 1, "one at a time after the shrink");
    let (_, health_body) = health.get("/health");
    assert_eq!(health_body["status"], "healthy", "{health_body}");
    assert_eq!(health_body["threads"]["processor"], 1, "{health_body}");
}

#[test]
fn a_bad_config_changes_nothing_and_shows_in_status_and_metrics() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let good = json!({"worker": {"wait_seconds": 1}, "handlers": {"echo": {"builtin": "echo"}}});
    let worker = WorkerSpec::new("reload-bad", &server.url(), good.clone())
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    let health = Api::new(worker.health_url());
    let bad = [
        (
            json!({"worker": {"timeout": "soon"}, "handlers": {"other": {"builtin": "echo"}}}),
            "worker.timeout",
        ),
        (
            json!({"worker": {"polling_intervall": 1}, "handlers": {"other": {"builtin": "echo"}}}),
            "worker.polling_intervall",
        ),
        (
            json!({"handlers": {"other": {"exec": {"command": ["/nonexistent/program"]}}}}),
            "handlers.other",
        ),
    ];
    for (n, (config, key)) in bad.iter().enumerate() {
        reload(&worker, config);
        let reload_status = &status(&health)["reload"];
        assert_eq!(reload_status["failed"], n + 1, "{reload_status}");
        assert_eq!(reload_status["last"]["ok"], false, "{reload_status}");
        let error = reload_status["last"]["error"].as_str().unwrap_or_default();
        assert!(error.contains(key), "{key}: {error}");
        assert!(reload_status["last"]["at"].is_string(), "{reload_status}");
        assert!(
            worker
                .log()
                .contains(&format!("reload refused, nothing changed: config: {key}")),
            "{}",
            worker.log()
        );
        // Still the old handlers: echo is claimed, `other` is not.
        let id = api.enqueue("echo", json!({"n": n}));
        assert!(wait_task(&api, &id, "completed"), "{}", worker.log());
    }
    let other = api.enqueue("other", json!({}));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(api.task(&other)["status"], "queued");
    let (_, metrics) = health.get_text("/metrics");
    assert!(
        metrics.contains("taskworker_reloads_total{result=\"failed\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("taskworker_reloads_total{result=\"applied\"} 0"),
        "{metrics}"
    );

    // A good file after the bad ones is applied.
    reload(&worker, &good);
    assert_eq!(status(&health)["reload"]["last"]["ok"], true);
    let (_, metrics) = health.get_text("/metrics");
    assert!(
        metrics.contains("taskworker_reloads_total{result=\"applied\"} 1"),
        "{metrics}"
    );
}

#[test]
fn keys_that_need_a_restart_are_named_in_one_warning_and_kept() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let config = |id: &str, health: &str| {
        json!({"worker": {"id": id, "wait_seconds": 1},
               "monitoring": {"health_addr": health},
               "handlers": {"echo": {"builtin": "echo"}}})
    };
    let worker = WorkerSpec::new(
        "reload-restart",
        &server.url(),
        config("w-one", "127.0.0.1:0"),
    )
    .without_env("HEALTH_ADDR")
    .start();
    let health = Api::new(worker.health_url());
    reload(&worker, &config("w-two", "127.0.0.1:1"));
    let log = worker.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("after a restart"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("WORKER_ID, HEALTH_ADDR changed but take effect only after a restart"),
        "{log}"
    );
    let reload_status = &status(&health)["reload"];
    assert_eq!(reload_status["last"]["ok"], true);
    assert_eq!(
        reload_status["last"]["restart_needed"],
        json!(["WORKER_ID", "HEALTH_ADDR"])
    );
    // Kept: the health server still answers where it was, tasks go to w-one.
    let id = api.enqueue("echo", json!({}));
    assert!(wait_task(&api, &id, "completed"));
    assert_eq!(status(&health)["worker_id"], "w-one");
}

#[test]
fn systemd_hears_reloading_then_ready_also_for_a_refused_reload() {
    let server = start_server(ServerConfig::default());
    let dir = support::temp_dir("reload-notify");
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let config = json!({"handlers": {"echo": {"builtin": "echo"}}});
    let worker = WorkerSpec::new("reload-notify", &server.url(), config.clone())
        .env("NOTIFY_SOCKET", path.to_string_lossy())
        .start();
    let next = || {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(wait_until(LONG, || next() == "READY=1"));
    for config in [config.clone(), json!({"worker": {"timeout": "soon"}})] {
        std::fs::write(worker.dir.join("config.json"), config.to_string()).expect("written");
        worker.signal("HUP");
        // STATUS lines may come between; RELOADING comes first, then READY.
        let mut message = next();
        while message.starts_with("STATUS=") {
            message = next();
        }
        let usec = message
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .and_then(|n| n.parse::<u64>().ok());
        assert!(usec.is_some_and(|u| u > 0), "{message:?}");
        let mut message = next();
        while message.starts_with("STATUS=") {
            message = next();
        }
        assert_eq!(message, "READY=1");
    }
}

#[test]
fn a_reload_during_the_drain_is_ignored() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let config =
        json!({"worker": {"wait_seconds": 1}, "handlers": {"sleep": {"builtin": "sleep"}}});
    let mut worker = WorkerSpec::new("reload-drain", &server.url(), config).start();
    let id = api.enqueue("sleep", json!({"ms": 2000}));
    assert!(wait_task(&api, &id, "claimed"));
    worker.signal("TERM");
    assert!(worker.wait_log("draining", LONG));
    worker.signal("HUP");
    let log = worker.expect_exit(0, LONG);
    assert!(log.contains("ignored, the worker is draining"), "{log}");
    assert!(!log.contains("configuration reloaded"), "{log}");
    assert_eq!(api.task(&id)["status"], "completed");
}

#[test]
fn the_api_key_rotates_without_a_restart() {
    let key_one = "key-one-0123456789";
    let key_two = "key-two-9876543210";
    let serve = |listen: String, key: &str| {
        Server::start(ServerConfig {
            listen,
            api_key: Some(key.into()),
            ..ServerConfig::default()
        })
        .expect("server starts")
    };
    let server = serve("127.0.0.1:0".into(), key_one);
    let addr = server.addr().to_string();
    let url = server.url();
    let config = json!({"worker": {"wait_seconds": 1}, "handlers": {"echo": {"builtin": "echo"}}});
    let worker = WorkerSpec::new("reload-key", &url, config.clone())
        .file("api_key", key_one)
        .env("API_KEY_FILE", "api_key")
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    let health = Api::new(worker.health_url());
    let api = Api::new(&url).with_key(key_one);
    let id = api.enqueue("echo", json!({}));
    assert!(wait_task(&api, &id, "completed"), "{}", worker.log());

    // The server now takes only the new key: the worker's claims are refused.
    drop(server);
    let server = serve(addr, key_two);
    let api = Api::new(server.url()).with_key(key_two);
    let id = api.enqueue("echo", json!({}));
    assert!(
        wait_until(LONG, || status(&health)["api"] == "unauthorized"),
        "{}",
        status(&health)
    );
    assert_eq!(api.task(&id)["status"], "queued");

    // The new key in its file and a SIGHUP: claimed at once, no restart.
    std::fs::write(worker.dir.join("api_key"), key_two).expect("key written");
    reload(&worker, &config);
    assert!(wait_task(&api, &id, "completed"), "{}", worker.log());
    assert!(
        !worker.log().contains(key_two),
        "the key never reaches the log"
    );
}

#[test]
fn dotenv_is_read_again_and_a_burst_of_sighups_ends_in_a_reload_after_the_last() {
    let server = start_server(ServerConfig::default());
    let config = json!({"handlers": {"echo": {"builtin": "echo"}}});
    let worker = WorkerSpec::new("reload-burst", &server.url(), config)
        .file(".env", "CONCURRENT_TASKS=1\n")
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    let health = Api::new(worker.health_url());
    assert_eq!(status(&health)["processors"], 1);
    const BURST: u64 = 20;
    // One kill(1) sends all but the last, as fast as it can.
    let pid = worker.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .arg("-HUP")
        .args(std::iter::repeat(&pid).take(BURST as usize - 1))
        .status()
        .expect("kill runs");
    assert!(sent.success());
    // The last signal comes after the last change of the file: what it
    // reads is what must be in effect once the burst is over.
    std::fs::write(worker.dir.join(".env"), "CONCURRENT_TASKS=3\n").expect("written");
    worker.signal("HUP");
    assert!(
        wait_until(LONG, || status(&health)["processors"] == 3),
        "{}; log:\n{}",
        status(&health),
        worker.log()
    );
    // Settled: no reload still to come, and fewer than one per signal.
    std::thread::sleep(Duration::from_secs(1));
    let applied = status(&health)["reload"]["applied"].as_u64().unwrap_or(0);
    eprintln!("{BURST} SIGHUPs in a burst: {applied} reloads");
    assert!((1..=BURST).contains(&applied), "{applied}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(status(&health)["reload"]["applied"], applied);
}

#[test]
fn schedules_start_change_and_stop_with_reloads_and_no_slot_fires_twice() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let handlers = json!({"echo": {"builtin": "echo"}});
    let with = |schedules: Value| json!({"handlers": handlers, "schedules": schedules});
    let worker = WorkerSpec::new(
        "reload-schedules",
        &server.url(),
        json!({"handlers": handlers}),
    )
    .env("HEALTH_ADDR", "127.0.0.1:0")
    .start();
    let health = Api::new(worker.health_url());
    let fired = |name: &str| {
        tasks_with_status(&api, "completed")
            .iter()
            .filter_map(|t| t["id"].as_str().map(String::from))
            .filter(|id| id.starts_with(&format!("{name}@")))
            .collect::<Vec<_>>()
    };
    // Added by a reload: the scheduler starts.
    let tick = json!({"tick": {"every": "1s", "type": "echo"}});
    reload(&worker, &with(tick.clone()));
    assert!(
        wait_until(LONG, || fired("tick").len() >= 2),
        "{}",
        worker.log()
    );
    // Unchanged through a reload that changes something else: it goes on.
    reload(&worker, &with(tick.clone()));
    let before = fired("tick").len();
    assert!(wait_until(LONG, || fired("tick").len() >= before + 2));
    // Changed, then removed: it stops, and no slot fired twice.
    reload(
        &worker,
        &with(json!({"tock": {"every": "1s", "type": "echo"}})),
    );
    assert!(
        wait_until(LONG, || fired("tock").len() >= 2),
        "{}",
        worker.log()
    );
    reload(&worker, &with(json!({})));
    std::thread::sleep(Duration::from_secs(2));
    let (tick_n, tock_n) = (fired("tick").len(), fired("tock").len());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!((fired("tick").len(), fired("tock").len()), (tick_n, tock_n));
    assert_eq!(status(&health)["schedules"], json!([]));
    let (_, metrics) = health.get_text("/metrics");
    assert!(!metrics.contains("result=\"existing\""), "{metrics}");
}

/// 1,000 short tasks while the test reloads again and again, changing the
/// handler's options, CONCURRENT_TASKS up and down, a type's limits, the
/// log level and the polling: each task runs once and is reported once.
#[test]
fn a_thousand_tasks_run_exactly_once_through_many_reloads() {
    const TASKS: usize = 1000;
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let config = |round: usize, n: usize, limit: Value, level: &str, poll: &str| {
        let mut handler = json!({"exec": {
            "command": ["sh", "-c", "cat >/dev/null; echo \"$TASK_ID $ROUND\" >> ran.txt"],
            "env": {"ROUND": round.to_string()}}});
        if let (Some(h), Value::Object(l)) = (handler.as_object_mut(), limit) {
            h.extend(l);
        }
        json!({"worker": {"wait_seconds": 1, "polling_interval": poll},
               "performance": {"concurrent_tasks": n},
               "logging": {"level": level},
               "handlers": {"job": handler}})
    };
    let worker = WorkerSpec::new(
        "reload-load",
        &server.url(),
        config(0, 2, json!({}), "info", "100ms"),
    )
    .without_env("POLLING_INTERVAL")
    .env("HEALTH_ADDR", "127.0.0.1:0")
    .start();
    // Counted in `/status`: the log's own lines go quiet at `warn`.
    let health = Api::new(worker.health_url());
    let applied = || status(&health)["reload"]["applied"].as_u64().unwrap_or(0);
    let began = Instant::now();
    let ids: Vec<String> = (0..TASKS).map(|_| api.enqueue("job", json!({}))).collect();
    let rounds = [
        (4, json!({}), "debug", "50ms"),
        (1, json!({"concurrency": 1}), "info", "200ms"),
        (8, json!({"rate": "200/s"}), "info", "100ms"),
        (
            3,
            json!({"concurrency": 2, "rate": "1000/s"}),
            "debug",
            "1s",
        ),
        (6, json!({}), "warn", "100ms"),
        (2, json!({}), "info", "100ms"),
    ];
    for (round, (n, limit, level, poll)) in rounds.clone().into_iter().enumerate() {
        // Spread over the run: each reload waits for some more tasks to end.
        let done = api.completed();
        wait_until(LONG, || api.completed() >= done + 100);
        let before = applied();
        std::fs::write(
            worker.dir.join("config.json"),
            config(round + 1, n, limit, level, poll).to_string(),
        )
        .expect("config written");
        worker.signal("HUP");
        assert!(
            wait_until(LONG, || applied() > before),
            "{}",
            status(&health)["reload"]
        );
        // The pool follows: at once when it grows, as processors become
        // idle when it shrinks.
        assert!(
            wait_until(LONG, || status(&health)["processors"] == n),
            "{}",
            status(&health)
        );
    }
    assert!(
        wait_for_status(&api, "completed", TASKS, Duration::from_secs(180)),
        "{} of {TASKS} completed; log:\n{}",
        tasks_with_status(&api, "completed").len(),
        worker.log()
    );
    let log = worker.log();
    assert_eq!(log.matches("reload refused").count(), 0, "{log}");
    assert_eq!(api.completed(), TASKS as u64, "each reported once");
    assert!(tasks_with_status(&api, "failed").is_empty());
    for id in &ids {
        assert_eq!(api.task(id)["attempt"], 1, "{id} delivered once");
    }
    let ran = std::fs::read_to_string(worker.dir.join("ran.txt")).expect("ran.txt");
    let lines: Vec<&str> = ran.lines().collect();
    let unique: HashSet<&str> = lines
        .iter()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(lines.len(), TASKS, "each ran once");
    assert_eq!(
        unique,
        ids.iter().map(String::as_str).collect(),
        "every task, none twice"
    );
    // The handler's options changed with the reloads: later rounds ran tasks.
    let rounds_seen: HashSet<&str> = lines.iter().filter_map(|l| l.split(' ').nth(1)).collect();
    assert!(rounds_seen.len() >= 3, "{rounds_seen:?}");
    eprintln!(
        "{TASKS} tasks through {} reloads in {} ms, run under {} handler versions",
        rounds.len(),
        began.elapsed().as_millis(),
        rounds_seen.len()
    );
    assert!(!log.contains("no longer ours"), "{log}");
}
