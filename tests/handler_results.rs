//! What a handler program says of its failure reaches the server: the JSON
//! object of its last stdout line, `TASK_ATTEMPT` (the server's delivery)
//! and `TASK_LOCAL_TRY` (the try within it), and the local retry settings,
//! a handler's own over the worker's.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use serde_json::{json, Value};
use support::fake::{self, FakeApi};
use support::worker::{WorkerProcess, WorkerSpec};

/// A fake API that hands out `tasks`, one a claim, then nothing; every
/// report is taken.
fn handing_out(tasks: Vec<Value>) -> FakeApi {
    let claims = Arc::new(AtomicUsize::new(0));
    FakeApi::start(move |path, _| match path {
        "/tasks/claim" => match tasks.get(claims.fetch_add(1, SeqCst)) {
            Some(task) => fake::claimed(vec![task.clone()]),
            None => fake::nothing(),
        },
        _ => fake::ok(),
    })
}

/// An exec handler entry running `sh -c script`, with `extra` options beside it.
fn sh(script: &str, extra: Value) -> Value {
    let mut entry = json!({"exec": {"command": ["sh", "-c", script]}});
    if let (Some(e), Value::Object(extra)) = (entry.as_object_mut(), extra) {
        e.extend(extra);
    }
    entry
}

/// A worker on `fake` with `handlers` and `env`.
fn worker(
    fake: &FakeApi,
    name: &str,
    handlers: Value,
    env: &[(&'static str, &str)],
) -> WorkerProcess {
    let url = fake.url();
    env.iter()
        .fold(
            WorkerSpec::new(name, &url, json!({ "handlers": handlers })),
            |spec, (key, value)| spec.env(key, *value),
        )
        .start()
}

/// The fail bodies the fake received for task `id`.
fn fails(fake: &FakeApi, id: &str) -> Vec<Value> {
    fake.seen(&format!("/tasks/{id}/fail"))
        .into_iter()
        .map(|s| s.body)
        .collect()
}

/// The lines a handler appended to `name` in the worker's directory.
fn lines(worker: &WorkerProcess, name: &str) -> Vec<String> {
    std::fs::read_to_string(worker.dir.join(name))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_json_last_stdout_line_is_the_failure_the_server_sees() {
    let fake = handing_out(vec![
        fake::task("bad", "job", json!({"case": "bad"}), None),
        fake::task("busy", "job", json!({"case": "busy"}), None),
        fake::task("odd", "job", json!({"case": "odd"}), None),
    ]);
    let script = r#"
        echo 'progress: looking at the input'
        echo 'a line on stderr' >&2
        case "$TASK_ID" in
        bad) echo '{"error": "bad input: no \"to\"", "error_type": "VALIDATION", "retryable": false, "color": "red"}'; exit 1 ;;
        busy) echo '{"error": "disk busy", "error_type": "DISK_BUSY", "retryable": true}'; exit 1 ;;
        *) echo '{"error": "odd", "error_type": "not a word", "retryable": "maybe"}'; exit 75 ;;
        esac"#;
    let handlers = json!({ "job": sh(script, json!({"max_retries": 0})) });
    let w = worker(&fake, "json-line", handlers, &[]);
    fake::wait_for(&w, || {
        ["bad", "busy", "odd"]
            .iter()
            .all(|id| !fails(&fake, id).is_empty())
    });
    let bad = &fails(&fake, "bad")[0];
    assert_eq!(bad["error"], "bad input: no \"to\"");
    assert_eq!(bad["error_type"], "VALIDATION");
    assert_eq!(bad["retryable"], false);
    assert!(
        bad["traceback"]
            .as_str()
            .unwrap()
            .contains("a line on stderr"),
        "{bad}"
    );
    let busy = &fails(&fake, "busy")[0];
    assert_eq!(
        (&busy["error"], &busy["error_type"], &busy["retryable"]),
        (&json!("disk busy"), &json!("DISK_BUSY"), &json!(true)),
        "the report's retryable wins over the exit status"
    );
    // What is not of the right shape falls back: HANDLER, and exit 75's retryable.
    let odd = &fails(&fake, "odd")[0];
    assert_eq!(
        (&odd["error"], &odd["error_type"], &odd["retryable"]),
        (&json!("odd"), &json!("HANDLER"), &json!(true))
    );
}

#[test]
fn task_local_try_counts_local_retries_and_task_attempt_follows_the_server() {
    let mut first = fake::task("t1", "job", json!({}), None);
    first["attempt"] = json!(1);
    let mut second = first.clone();
    second["attempt"] = json!(2);
    let fake = handing_out(vec![first, second]);
    let script = r#"echo "$TASK_ATTEMPT $TASK_LOCAL_TRY" >> tries; exit 75"#;
    let handlers = json!({ "job": sh(script, json!({})) });
    let w = worker(
        &fake,
        "local-try",
        handlers,
        &[("MAX_RETRIES", "2"), ("RETRY_BACKOFF", "10ms")],
    );
    fake::wait_for(&w, || fails(&fake, "t1").len() == 2);
    assert_eq!(
        lines(&w, "tries"),
        ["1 1", "1 2", "1 3", "2 1", "2 2", "2 3"],
        "log:\n{}",
        w.log()
    );
    assert_eq!(fails(&fake, "t1")[1]["attempts"], 3, "local tries");
}

#[test]
fn a_handlers_max_retries_overrides_the_workers() {
    let fake = handing_out(vec![
        fake::task("own", "own", json!({}), None),
        fake::task("global", "global", json!({}), None),
    ]);
    let script = r#"echo "$TASK_ID" >> tries; exit 75"#;
    let handlers = json!({
        "own": sh(script, json!({"max_retries": 2, "retry_backoff": "10ms"})),
        "global": sh(script, json!({})),
    });
    let w = worker(&fake, "own-retries", handlers, &[("MAX_RETRIES", "0")]);
    fake::wait_for(&w, || {
        !fails(&fake, "own").is_empty() && !fails(&fake, "global").is_empty()
    });
    let tries = lines(&w, "tries");
    let count = |id: &str| tries.iter().filter(|l| *l == id).count();
    assert_eq!((count("own"), count("global")), (3, 1), "{tries:?}");
    assert_eq!(fails(&fake, "own")[0]["attempts"], 3);
}

#[test]
fn a_retry_after_sets_the_wait_before_the_next_local_try() {
    let fake = handing_out(vec![
        fake::task("soon", "job", json!({}), None),
        fake::task("late", "job", json!({}), None),
    ]);
    // Milliseconds since the epoch (GNU date).
    let script = r#"
        now=$(date +%s%3N)
        echo "$TASK_ID $TASK_LOCAL_TRY $now" >> tries
        case "$TASK_ID" in
        soon) echo '{"error": "later", "retryable": true, "retry_after": 0.6}' ;;
        *) echo '{"error": "much later", "retryable": true, "retry_after": 3600}' ;;
        esac
        exit 1"#;
    let handlers = json!({ "job": sh(script, json!({"max_retries": 1})) });
    let w = worker(&fake, "retry-after", handlers, &[("RETRY_BACKOFF", "10ms")]);
    fake::wait_for(&w, || {
        !fails(&fake, "soon").is_empty() && !fails(&fake, "late").is_empty()
    });
    let tries = lines(&w, "tries");
    let at = |id: &str, n: &str| -> Option<u64> {
        tries.iter().find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0] == id && f[1] == n)
                .then(|| f[2].parse().ok())
                .flatten()
        })
    };
    let (first, second) = (at("soon", "1").unwrap(), at("soon", "2").unwrap());
    assert!(second - first >= 600, "{tries:?}");
    // Above RETRY_BACKOFF_MAX: no local wait of an hour, the server retries.
    assert!(at("late", "2").is_none(), "{tries:?}");
    let late = &fails(&fake, "late")[0];
    assert_eq!(
        (&late["retryable"], &late["attempts"]),
        (&json!(true), &json!(1))
    );
}
