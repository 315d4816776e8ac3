//! A hostile API against the worker: claim and report answers with values at
//! and past every bound, of the wrong type, malformed, truncated, huge,
//! redirected, with extreme `Retry-After` and with hostile or repeated ids.
//! After each case the worker is healthy, still completes a normal task, and
//! has reported (once) or spooled every task it accepted. One worker per group.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::hostile::{
    after_hostile_answer, answer, hostile_worker, log_tail, raw, redirect, with_header, Canned,
    HostileApi, STUCK,
};
use support::wait_until;
use support::worker::spooled;
use support::Api;

/// What must become of one task, beyond being reported once.
enum Outcome {
    /// Reported complete.
    Completed,
    /// Reported failed with this `error_type`, not retryable, with an error
    /// that names this field or value.
    Failed(&'static str, &'static str),
}

/// One hostile case: the next claim answers, the next report answers, and
/// what must become of some of the tasks.
struct Case {
    name: &'static str,
    claims: Vec<Canned>,
    reports: Vec<Canned>,
    expect: Vec<(String, Outcome)>,
}

fn case(name: &'static str, claims: Vec<Canned>) -> Case {
    Case {
        name,
        claims,
        reports: Vec::new(),
        expect: Vec::new(),
    }
}

impl Case {
    fn reports(mut self, reports: Vec<Canned>) -> Case {
        self.reports = reports;
        self
    }

    fn expect(mut self, id: &str, outcome: Outcome) -> Case {
        self.expect.push((id.to_string(), outcome));
        self
    }

    /// Each task of the case's claims with a string id is reported complete.
    fn all_complete(mut self) -> Case {
        let ids: Vec<String> = self
            .claims
            .iter()
            .flat_map(support::hostile::handed_out)
            .collect();
        for id in ids {
            self = self.expect(&id, Outcome::Completed);
        }
        self
    }

    fn check(&self, api: &HostileApi, mark: usize) -> Result<(), String> {
        let mut wrong = Vec::new();
        for (id, outcome) in &self.expect {
            let mut delivered = Vec::new();
            wait_until(Duration::from_secs(20), || {
                delivered = api.delivered(mark, id);
                !delivered.is_empty()
            });
            let Some(report) = delivered.pop() else {
                wrong.push(format!("task {id:?} was not reported"));
                continue;
            };
            let body = &report.body;
            let ok = match outcome {
                Outcome::Completed => report.kind == "complete",
                Outcome::Failed(error_type, names) => {
                    report.kind == "fail"
                        && body["error_type"] == *error_type
                        && body["retryable"] == false
                        && body["error"].as_str().is_some_and(|e| e.contains(names))
                }
            };
            if !ok {
                wrong.push(format!("task {id:?}: reported {} {body}", report.kind));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    }
}

/// Runs `cases` in order against one worker; fails with every broken case.
fn run_group(name: &str, cases: Vec<Case>) {
    let api = HostileApi::start();
    let (mut worker, state) = hostile_worker(name, &api);
    let mut failures = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let mark = api.mark();
        api.queue_reports(&case.reports);
        api.queue_claims(&case.claims);
        let normal = format!("normal-{name}-{n}");
        let result = after_hostile_answer(&api, &worker, &state, &case.claims, mark, &normal)
            .and_then(|()| case.check(&api, mark));
        if let Err(e) = result {
            failures.push(format!("{}: {e}", case.name));
            if e.starts_with(STUCK) || worker.child.try_wait().ok().flatten().is_some() {
                failures.push(format!("{} later cases did not run", cases.len() - n - 1));
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} cases failed:\n{}\nlog tail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        log_tail(&worker, 30)
    );
}

/// A batch answer.
fn batch(tasks: Vec<Value>) -> Canned {
    answer(200, json!({ "tasks": tasks }))
}

/// An `echo` task.
fn echo(id: &str) -> Value {
    json!({"id": id, "type": "echo", "parameters": {"id": id}})
}

/// An `echo` task with one more field.
fn echo_with(id: &str, field: &str, value: Value) -> Value {
    let mut task = echo(id);
    task[field] = value;
    task
}

/// A batch of `echo` tasks `{prefix}-{n}`, each with `field` set to one of `values`.
fn each_value(prefix: &str, field: &str, values: &[Value]) -> Canned {
    let tasks = values.iter().enumerate();
    batch(
        tasks
            .map(|(n, v)| echo_with(&format!("{prefix}-{n}"), field, v.clone()))
            .collect(),
    )
}

/// A case of `echo` tasks, each with `field` set to one of `values`, all completed.
fn completes_with(name: &'static str, field: &str, values: &[Value]) -> Case {
    case(name, vec![each_value(field, field, values)]).all_complete()
}

/// A batch of `echo` tasks under each of `ids`.
fn each_id(ids: &[&str]) -> Canned {
    batch(ids.iter().map(|id| echo(id)).collect())
}

#[test]
fn malformed_claim_answers_are_backed_off_and_never_panic() {
    let deep_params = format!(
        r#"{{"tasks": [{{"id": "deep-1", "type": "echo", "parameters": {}1{}}}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let past_cap = format!(r#"{{"tasks": [], "pad": "{}"}}"#, "x".repeat(5 << 20));
    let under_cap = echo_with(
        "large-1",
        "parameters",
        json!({"blob": "y".repeat(2 << 20)}),
    );
    let junk = vec![
        Value::Null,
        json!(1),
        json!("x"),
        json!([]),
        json!({}),
        json!({"id": ""}),
        json!({"id": 5, "type": "echo"}),
        json!({"id": null, "type": "echo"}),
        json!({"id": ["a"], "type": "echo"}),
        echo("junk-ok"),
    ];
    run_group(
        "malformed",
        vec![
            case("not JSON", vec![raw(200, "not json at all")]),
            case(
                "truncated JSON",
                vec![
                    raw(200, r#"{"tasks": [{"id": "cut-1", "type": "echo", "parame"#),
                    raw(
                        200,
                        r#"{"tasks": [{"id": "cut-2", "type": "echo"}, {"id": "cu"#,
                    ),
                    raw(200, r#"{"task": {"id": "cut-3""#),
                ],
            ),
            case(
                "invalid UTF-8",
                vec![raw(
                    200,
                    &b"{\"tasks\": [{\"id\": \"\xff\xfe\", \"type\": \"echo\"}]}"[..],
                )],
            ),
            case(
                "a top level that is no object",
                vec![
                    answer(200, json!([echo("arr-1")])),
                    answer(200, json!(42)),
                    answer(200, json!("tasks")),
                    answer(200, Value::Null),
                    answer(200, json!(true)),
                ],
            ),
            case(
                "tasks and task of the wrong type",
                vec![
                    answer(200, json!({"tasks": "many"})),
                    answer(200, json!({"tasks": echo("obj-1")})),
                    answer(200, json!({"tasks": 3})),
                    answer(200, json!({"task": 7})),
                    answer(200, json!({"task": "x"})),
                    answer(200, json!({"task": []})),
                ],
            ),
            case("junk among the tasks of a batch", vec![batch(junk)]).all_complete(),
            case(
                "nesting past the parser's depth",
                vec![raw(200, "[".repeat(100_000)), raw(200, deep_params)],
            ),
            case(
                "a number past f64",
                vec![raw(
                    200,
                    r#"{"tasks": [{"id": "exp-1", "type": "echo", "timeout_seconds": 1e999}]}"#,
                )],
            ),
            case("an answer past the size cap", vec![raw(200, past_cap)]),
            case("a large answer under the cap", vec![batch(vec![under_cap])]).all_complete(),
            case(
                "empty and blank answers",
                vec![
                    raw(200, ""),
                    raw(200, " \r\n\t "),
                    answer(200, json!({})),
                    answer(200, json!({"task": null})),
                    answer(200, json!({"tasks": []})),
                    answer(200, json!({"tasks": null})),
                ],
            ),
            case(
                "error statuses with odd bodies",
                vec![
                    raw(400, "e".repeat(100_000)),
                    raw(500, &b"\x00\xff\xfe"[..]),
                    raw(418, ""),
                    raw(599, "?"),
                    raw(404, "not json"),
                    raw(422, r#"{"tasks": [{"id": "err-1", "type": "echo"}]}"#),
                ],
            ),
            case(
                "a content type that is not JSON",
                vec![with_header(
                    each_id(&["ctype-1"]),
                    "Content-Type",
                    "text/html",
                )],
            )
            .all_complete(),
        ],
    );
}

#[test]
fn numbers_at_and_past_every_bound() {
    let validation = |id: &str| {
        (
            id.to_string(),
            Outcome::Failed("VALIDATION", "timeout_seconds"),
        )
    };
    let past_bounds = [
        json!(0),
        json!(-0.0),
        json!(-1),
        json!(604800.001),
        json!(-1e300),
        json!("30"),
        json!(true),
        json!({"s": 30}),
        json!([30]),
    ];
    let mut timeouts = case(
        "timeout_seconds not a number in (0, 604800]",
        vec![each_value("ts-bad", "timeout_seconds", &past_bounds)],
    );
    timeouts
        .expect
        .extend((0..past_bounds.len()).map(|n| validation(&format!("ts-bad-{n}"))));
    let mut huge = case(
        "timeout_seconds far past the bound",
        vec![each_value("ts-huge", "timeout_seconds", &[json!(1e300)])],
    );
    huge.expect.push(validation("ts-huge-0"));
    let u64_max = u64::MAX;
    let counts = [
        json!(u64_max),
        json!(-1),
        json!(4_294_967_296u64),
        json!(1.5),
        json!("1"),
        json!(0),
        Value::Null,
    ];
    let leases = [
        json!("not a time"),
        json!(12),
        json!("9999-12-31T23:59:59Z"),
        json!("+275760-09-13T00:00:00Z"),
        json!("1970-01-01T00:00:00Z"),
        json!("2025-13-45T25:61:61Z"),
        json!(""),
    ];
    let claimed_ats = [
        json!("0000-01-01T00:00:00Z"),
        json!("9999-12-31T23:59:59Z"),
        json!(-5),
        json!({}),
    ];
    let far_lease = json!({"id": "lease-far", "type": "echo", "claimed_at": "0000-01-01T00:00:00Z",
                           "lease_expires_at": "9999-12-31T23:59:59Z"});
    let big_numbers = json!({"max": f64::MAX, "min": i64::MIN, "u": u64_max, "neg0": -0.0});
    run_group(
        "numbers",
        vec![
            completes_with(
                "timeout_seconds inside the bounds",
                "timeout_seconds",
                &[json!(604800), json!(0.5), json!(30)],
            ),
            timeouts,
            completes_with("attempt of any size and type", "attempt", &counts),
            completes_with("max_attempts of any size and type", "max_attempts", &counts),
            completes_with(
                "unknown priorities count as medium",
                "priority",
                &[
                    json!("urgent"),
                    json!(""),
                    json!(7),
                    json!(["high"]),
                    json!("HIGH"),
                ],
            ),
            completes_with(
                "lease_expires_at that does not parse, or is far off",
                "lease_expires_at",
                &leases,
            ),
            completes_with("claimed_at at the ends of time", "claimed_at", &claimed_ats),
            case(
                "a lease of ten thousand years",
                vec![batch(vec![far_lease])],
            )
            .all_complete(),
            completes_with(
                "parameters at the ends of the number line",
                "parameters",
                &[big_numbers],
            ),
            huge,
        ],
    );
}

#[test]
fn hostile_ids_are_encoded_in_paths_and_run_once() {
    let long = "x".repeat(2000);
    let no_type = |id: &str| (id.to_string(), Outcome::Failed("VALIDATION", "type"));
    let mut typeless = case(
        "an id without a usable type",
        vec![batch(vec![
            json!({"id": "notype-1"}),
            json!({"id": "notype-2", "type": 5}),
            json!({"id": "notype-3", "type": ""}),
            json!({"id": "notype-4", "type": null}),
        ])],
    );
    typeless
        .expect
        .extend((1..=4).map(|n| no_type(&format!("notype-{n}"))));
    run_group(
        "ids",
        vec![
            case("slashes", vec![each_id(&["a/b", "/", "//", "a//b"])]).all_complete(),
            case("control characters", {
                let ids = ["\u{0}", "a\nb", "\r\n", "\u{1b}[31m", "\u{7f}", "tab\there"];
                vec![each_id(&ids)]
            })
            .all_complete(),
            case(
                "unicode",
                vec![each_id(&["ü", "🦀", "\u{202e}rtl", "\u{feff}"])],
            )
            .all_complete(),
            case("URL syntax", {
                let ids = ["?q=1", "#frag", "%2E", "%", "a b", "+", "\"q\"", "\\", ";x"];
                vec![each_id(&ids)]
            })
            .all_complete(),
            case("a long id", vec![each_id(&[&long])]).all_complete(),
            case("ids that are not strings", {
                let ids = [
                    json!(5),
                    json!(""),
                    json!(["a"]),
                    json!({"x": 1}),
                    json!(true),
                ];
                vec![each_value("unused", "id", &ids)]
            }),
            typeless,
            case(
                "an unknown type",
                vec![batch(vec![
                    json!({"id": "unknown-1", "type": "no.such.handler"}),
                ])],
            )
            .expect(
                "unknown-1",
                Outcome::Failed("UNKNOWN_TYPE", "no.such.handler"),
            ),
            case(
                "one id twice in a batch",
                vec![each_id(&["dup-1", "dup-1"])],
            )
            .all_complete(),
            case(
                "one id in task and in tasks",
                vec![answer(
                    200,
                    json!({"task": echo("dup-2"), "tasks": [echo("dup-2")]}),
                )],
            )
            .all_complete(),
            case(
                "one id twice with different types",
                vec![batch(vec![
                    echo("dup-3"),
                    json!({"id": "dup-3", "type": "no.such.handler"}),
                ])],
            ),
            case(
                "dots",
                vec![each_id(&[".", "..", "...", "./x", "a.b", "a/../b"])],
            )
            .all_complete(),
        ],
    );
}

#[test]
fn redirects_are_server_errors_and_retry_after_has_no_power() {
    let retry_after =
        |status: u16, value: &str| with_header(answer(status, json!({})), "Retry-After", value);
    let report_redirect = |status: u16, id: &'static str| {
        case("a redirect to a report", vec![each_id(&[id])])
            .reports(vec![redirect(status)])
            .all_complete()
    };
    run_group(
        "status",
        vec![
            case(
                "Retry-After that is no count of seconds",
                vec![
                    retry_after(503, "0"),
                    retry_after(503, "-1"),
                    retry_after(429, "abc"),
                    retry_after(429, "1.5"),
                    retry_after(503, "Wed, 21 Oct 2015 07:28:00 GMT"),
                ],
            ),
            case(
                "a report refused with a short Retry-After",
                vec![each_id(&["ra-short"])],
            )
            .reports(vec![retry_after(503, "1")])
            .all_complete(),
            case("a redirect without Location", vec![raw(302, "")]),
            case("a 302 to a claim", vec![redirect(302)]),
            case("a 303 to a claim", vec![redirect(303)]),
            case("a 307 to a claim", vec![redirect(307)]),
            case("a 308 to a claim", vec![redirect(308)]),
            report_redirect(302, "report-302"),
            report_redirect(307, "report-307"),
            report_redirect(308, "report-308"),
        ],
    );
}

#[test]
fn a_huge_retry_after_keeps_the_worker_healthy() {
    let api = HostileApi::start();
    let (mut worker, state) = hostile_worker("retry-after", &api);
    let huge =
        |status: u16, value: &str| with_header(answer(status, json!({})), "Retry-After", value);
    let max = u64::MAX.to_string();
    api.queue_reports(&[huge(503, &max)]);
    // A claim answered with a huge Retry-After waits the cap (an hour), and
    // that wait ends at once on SIGTERM.
    api.queue_claims(&[each_id(&["ra-huge"]), huge(429, &max)]);
    let health = Api::new(worker.health_url());
    assert!(
        wait_until(Duration::from_secs(20), || api.claims_left() == 0
            && spooled(&state).contains(&"ra-huge".to_string())
            && !api.reports_since(0).is_empty()),
        "log:\n{}",
        worker.log()
    );
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(worker.child.try_wait().ok().flatten(), None, "exited");
        let (status, body) = health.get("/health");
        assert_eq!(status, 200, "{body}\nlog:\n{}", worker.log());
    }
    assert!(!worker.log().contains("panicked"), "log:\n{}", worker.log());
    assert!(spooled(&state).contains(&"ra-huge".to_string()));
    worker.stop(Duration::from_secs(20));
    assert!(
        spooled(&state).contains(&"ra-huge".to_string()),
        "an undelivered report stays in the spool"
    );
}
