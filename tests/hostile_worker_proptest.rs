//! Generated claim answers against one long-lived worker: JSON with tasks
//! whose fields have random types and values, random ids (`/`, `.`, `..`,
//! control characters, unicode), truncated JSON and raw bytes. After each,
//! the worker is healthy, completes a normal task, and has reported (once)
//! or spooled every task it accepted; a task whose `timeout_seconds` is not
//! a number in (0, 604800] is reported failed `VALIDATION`.

mod support;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use support::hostile::{
    after_hostile_answer, handed_out, hostile_worker, log_tail, Canned, HostileApi,
};
use support::wait_until;

/// Generated answers; each takes about half a second.
const CASES: u32 = 64;

/// The task fields a worker reads, each of which gets random values.
const FIELDS: &[&str] = &[
    "parameters",
    "priority",
    "created_at",
    "claimed_by",
    "claimed_at",
    "attempt",
    "max_attempts",
    "timeout_seconds",
    "lease_expires_at",
    "expires_at",
];

/// Text of characters that paths, logs and parsers trip on.
fn text() -> impl Strategy<Value = String> {
    let tricky = select(vec![
        '/', '.', '%', '\0', '\n', '\r', '\u{7f}', '\u{1b}', 'ü', '🦀', ' ', '?', '#', '\\', '"',
    ]);
    let chars = prop::collection::vec(prop_oneof![any::<char>(), tricky, Just('a')], 0..12);
    let special = select(vec![
        ".",
        "..",
        "/",
        "../..",
        "%2E",
        "echo",
        "high",
        "",
        "2025-11-09T15:01:05Z",
    ]);
    prop_oneof![2 => chars.prop_map(|c| c.into_iter().collect()), 1 => special.prop_map(String::from)]
}

/// Numbers at and past the bounds, and any others.
fn number() -> impl Strategy<Value = Value> {
    let edges = select(vec![
        json!(0),
        json!(-1),
        json!(604800),
        json!(604800.0001),
        json!(1e300),
        json!(-1e300),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(4_294_967_296u64),
        json!(0.5),
        json!(1e-300),
    ]);
    prop_oneof![
        edges,
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
    ]
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((text(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A claimed task: mostly a string id and the `echo` type, with random fields.
fn task() -> impl Strategy<Value = Value> {
    let id = prop_oneof![4 => text().prop_map(Value::from), 1 => json_value()];
    let task_type =
        prop_oneof![4 => Just(json!("echo")), 1 => text().prop_map(Value::from), 1 => json_value()];
    let fields = prop::collection::vec((select(FIELDS), json_value()), 0..4);
    (id, task_type, fields).prop_map(|(id, task_type, fields)| {
        let mut task = Map::new();
        task.insert("id".into(), id);
        task.insert("type".into(), task_type);
        for (name, value) in fields {
            task.insert(name.into(), value);
        }
        Value::Object(task)
    })
}

/// A claim answer: a batch or a single task, any JSON, truncated JSON or bytes.
fn claim_answer() -> impl Strategy<Value = Canned> {
    let batch = prop::collection::vec(task(), 0..4).prop_map(|t| json!({ "tasks": t }));
    let single = task().prop_map(|t| json!({ "task": t }));
    let envelope = prop_oneof![4 => batch, 1 => single, 1 => json_value()];
    let whole = envelope.prop_map(|v| v.to_string().into_bytes());
    let truncated = (task(), any::<prop::sample::Index>()).prop_map(|(t, cut)| {
        let bytes = json!({ "tasks": [t] }).to_string().into_bytes();
        bytes[..cut.index(bytes.len())].to_vec()
    });
    let body = prop_oneof![
        6 => whole,
        1 => truncated,
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    let status = prop_oneof![8 => Just(200u16), 1 => select(vec![204u16, 404, 400, 422, 500, 503])];
    (status, body).prop_map(|(status, body)| support::hostile::raw(status, body))
}

/// The ids in `canned` whose task must fail `VALIDATION` for its
/// `timeout_seconds`: `echo` tasks, their id once in the answer, with a
/// timeout that is present, not null, and not a number in (0, 604800].
fn bad_timeouts(canned: &Canned) -> Vec<String> {
    let ids = support::hostile::handed_out(canned);
    let body: Value = serde_json::from_slice(&canned.body).unwrap_or_default();
    let mut objects: Vec<Value> = body["tasks"].as_array().cloned().unwrap_or_default();
    objects.extend(body.get("task").cloned());
    let once = |id: &str| objects.iter().filter(|t| t["id"] == id).count() == 1;
    let bad = |t: &Value| match &t["timeout_seconds"] {
        Value::Null => false,
        v => !v.as_f64().is_some_and(|s| s > 0.0 && s <= 604800.0),
    };
    let tasks = objects.iter().filter(|t| t["type"] == "echo" && bad(t));
    tasks
        .filter_map(|t| t["id"].as_str())
        .filter(|id| ids.iter().any(|i| i == id) && once(id))
        .map(String::from)
        .collect()
}

#[test]
fn generated_claim_answers_leave_the_worker_healthy_and_every_task_reported() {
    let api = HostileApi::start();
    let (worker, state) = hostile_worker("proptest", &api);
    let config = Config {
        cases: CASES,
        // A failure names its answer as generated: each shrink step would
        // cost a second or more against the live worker.
        max_shrink_iters: 0,
        failure_persistence: None,
        ..Config::default()
    };
    let n = std::sync::atomic::AtomicUsize::new(0);
    let result = TestRunner::new(config).run(&claim_answer(), |canned| {
        let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mark = api.mark();
        let canned = [canned];
        api.queue_claims(&canned);
        let normal = format!("normal-{n}");
        let answer = format!(
            "answer {}: {}",
            canned[0].status,
            String::from_utf8_lossy(&canned[0].body)
        );
        after_hostile_answer(&api, &worker, &state, &canned, mark, &normal)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{answer}")))?;
        for id in bad_timeouts(&canned[0]) {
            let failed = |r: &support::hostile::Report| {
                r.kind == "fail" && r.body["error_type"] == "VALIDATION"
            };
            let reported = wait_until(std::time::Duration::from_secs(10), || {
                api.delivered(mark, &id).iter().any(failed)
            });
            prop_assert!(reported, "task {id:?} was not failed VALIDATION\n{answer}");
        }
        // The check above takes a task that is in the spool for landed, and
        // every outcome is in the spool before its first send: its report
        // may still be on its way, to land after the next case's mark and
        // count against that case, whose generated ids may repeat these
        // ("." and the like). This API answers every report 200, so each
        // accepted task is delivered: the case ends when all of them are.
        for id in handed_out(&canned[0]) {
            let delivered = wait_until(std::time::Duration::from_secs(20), || {
                !api.delivered(mark, &id).is_empty()
            });
            prop_assert!(delivered, "task {id:?} was never reported\n{answer}");
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nlog tail:\n{}", log_tail(&worker, 30));
    }
}
