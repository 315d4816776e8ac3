//! `/metrics` by task type and for autoscaling: outcomes and durations carry
//! a `type` label (configured types only, any other as `other`), the pickup
//! delay is a histogram, idle processors show, and the standard `process_*`
//! family is there.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use support::fake::{self, FakeApi};
use support::worker::{builtin_handlers, WorkerSpec};
use support::{wait_until, Api};

/// A claimed task created `age` ago and claimed now, by the server's clock.
fn aged(id: &str, task_type: &str, age: Duration) -> Value {
    let now = SystemTime::now();
    let mut task = fake::task(id, task_type, json!({}), None);
    task["created_at"] = json!(taskworker::format_timestamp(now - age));
    task["claimed_at"] = json!(taskworker::format_timestamp(now));
    task
}

/// The value of the sample line that starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_carry_the_type_the_pickup_delay_and_the_process() {
    let tasks = vec![
        aged("e1", "echo", Duration::from_secs(5)),
        aged("e2", "echo", Duration::from_secs(5)),
        aged("m1", "mystery", Duration::from_secs(5)),
    ];
    let claims = AtomicUsize::new(0);
    let fake = FakeApi::start(move |path, _| match path {
        "/tasks/claim" if claims.fetch_add(1, SeqCst) == 0 => fake::claimed(tasks.clone()),
        "/tasks/claim" => fake::nothing(),
        _ => fake::ok(),
    });
    let url = fake.url();
    let worker = WorkerSpec::new("per-type", &url, builtin_handlers())
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .env("CONCURRENT_TASKS", "3")
        .start();
    let health = Api::new(worker.health_url());
    let mut text = String::new();
    let done = "taskworker_outcomes_total{type=\"other\",error_type=\"UNKNOWN_TYPE\"}";
    assert!(
        wait_until(Duration::from_secs(30), || {
            text = health.get_text("/metrics").1;
            sample(&text, done) == Some(1.0)
                && sample(
                    &text,
                    "taskworker_outcomes_total{type=\"echo\",error_type=\"ok\"}",
                ) == Some(2.0)
        }),
        "{text}\nlog:\n{}",
        worker.log()
    );
    // Every configured type has its series from the start; `other` once seen.
    for (series, want) in [
        ("taskworker_task_duration_seconds_count{type=\"echo\"}", 2.0),
        (
            "taskworker_task_duration_seconds_count{type=\"sleep\"}",
            0.0,
        ),
        ("taskworker_task_duration_seconds_count{type=\"fail\"}", 0.0),
        (
            "taskworker_task_duration_seconds_count{type=\"other\"}",
            1.0,
        ),
        ("taskworker_pickup_delay_seconds_count", 3.0),
        ("taskworker_pickup_delay_seconds_bucket{le=\"1\"}", 0.0),
        ("taskworker_pickup_delay_seconds_bucket{le=\"10\"}", 3.0),
        ("taskworker_processors{state=\"idle\"}", 3.0),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series}\n{text}");
    }
    assert!(
        !text.contains("mystery"),
        "unconfigured types are `other`: {text}"
    );
    assert!(sample(&text, "taskworker_pickup_delay_seconds_sum").unwrap() >= 15.0);
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")) && sample(&text, name).is_some(),
            "{name}\n{text}"
        );
    }
    let started = sample(&text, "process_start_time_seconds").unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(started <= now + 1.0 && started > now - 600.0, "{started}");
}
