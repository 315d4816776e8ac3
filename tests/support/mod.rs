//! Helpers shared by the integration tests: handlers from config, contexts,
//! temp dirs, and checks on processes and memory read from /proc.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskworker::context::Context;
use taskworker::handlers::HandlerEnv;
use taskworker::{Handler, Registry, Task, TaskError};

/// The environment handlers get in tests: a fresh agent that reads statuses itself.
pub fn handler_env(secret_vars: &[&str]) -> HandlerEnv {
    HandlerEnv {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
        secret_vars: secret_vars.iter().map(|s| s.to_string()).collect(),
    }
}

/// The handler built from one config entry (`{"exec": {...}}`), as the worker builds it.
pub fn handler(spec: Value) -> Arc<dyn Handler> {
    handler_with(spec, &handler_env(&[]))
}

/// As [`handler`], with a given environment.
pub fn handler_with(spec: Value, env: &HandlerEnv) -> Arc<dyn Handler> {
    let handlers = json!({ "t": spec });
    let registry = Registry::from_config(handlers.as_object().expect("object"), env)
        .unwrap_or_else(|e| panic!("config rejected: {e}"));
    Arc::clone(registry.get("t").expect("registered"))
}

/// An exec handler for `sh -c SCRIPT`.
pub fn sh(script: &str) -> Arc<dyn Handler> {
    handler(json!({"exec": {"command": ["sh", "-c", script]}}))
}

/// A context with a generous deadline.
pub fn ctx() -> Context {
    Context::new(Duration::from_secs(60), 1, "test-worker".into())
}

/// A task of type `t`.
pub fn task(id: &str, parameters: Value) -> Task {
    Task::new(id, "t", parameters)
}

/// Runs a handler on its own thread and fails the test if it takes longer than `limit`.
pub fn run(
    h: &Arc<dyn Handler>,
    task: &Task,
    ctx: &Context,
    limit: Duration,
) -> Result<Value, TaskError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (h, task, ctx) = (Arc::clone(h), task.clone(), ctx.clone());
    std::thread::spawn(move || {
        let _ = tx.send(h.handle(&task, &ctx));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("handler did not return within {limit:?}"))
}

/// A new empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "taskworker-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Waits until `cond` holds or `limit` passes; returns whether it held.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads a pid a script wrote to `path`, waiting for it up to 10 s.
pub fn read_pid(path: &std::path::Path) -> i32 {
    let mut pid = None;
    wait_for(Duration::from_secs(10), || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap_or_else(|| panic!("no pid in {}", path.display()))
}

/// Live (not zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2].parse() == Ok(pgid) {
            found.push(pid);
        }
    }
    found
}

/// A `kB` line of /proc/self/status (`VmRSS`, `VmHWM`), in bytes.
pub fn self_status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}
