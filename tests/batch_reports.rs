//! Batch reports from the worker: against the reference server outcomes go
//! out in batches (counted in `/metrics`); against a server without them
//! the worker falls back to single reports once; and a hostile batch answer
//! (wrong ids, missing or doubled entries, not JSON, 413, an item to retry)
//! never counts an outcome delivered without a 2xx for its id, and loses none.

#![cfg(feature = "server")]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::fake::{claimed, nothing, ok, task, wait_for, FakeApi};
use support::worker::{builtin_handlers, wait_for_status, WorkerSpec};
use support::{start_server, Api};
use taskworker::ServerConfig;

/// Tasks the fakes hand out.
const TASKS: usize = 24;

#[test]
fn outcomes_go_out_in_batches_against_the_reference_server() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    for _ in 0..400 {
        api.enqueue("echo", json!({"n": 1}));
    }
    let mut worker = WorkerSpec::new("batches", &server.url(), builtin_handlers())
        .env("CONCURRENT_TASKS", "16")
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    let health = Api::new(worker.health_url());
    assert!(
        wait_for_status(&api, "completed", 400, Duration::from_secs(60)),
        "log:\n{}",
        worker.log()
    );
    let metrics = health.get_text("/metrics").1;
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics:\n{metrics}"))
    };
    let batches = value("taskworker_report_batches_total");
    let carried = value("taskworker_report_batch_outcomes_total");
    assert!(batches > 0, "no batch was sent:\n{metrics}");
    assert!(carried >= 2 * batches, "a batch carries 2 or more outcomes");
    assert!(carried <= 400);
    worker.stop(Duration::from_secs(30));
    assert!(!worker.log().contains("WARN"), "log:\n{}", worker.log());
}

#[test]
fn report_batch_0_sends_single_reports_only() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    for _ in 0..100 {
        api.enqueue("echo", json!({}));
    }
    let mut worker = WorkerSpec::new("singles", &server.url(), builtin_handlers())
        .env("CONCURRENT_TASKS", "16")
        .env("REPORT_BATCH", "0")
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    let health = Api::new(worker.health_url());
    assert!(wait_for_status(
        &api,
        "completed",
        100,
        Duration::from_secs(60)
    ));
    let metrics = health.get_text("/metrics").1;
    assert!(
        metrics.contains("taskworker_report_batches_total 0"),
        "{metrics}"
    );
    worker.stop(Duration::from_secs(30));
}

#[test]
fn against_a_core_only_server_nothing_changes() {
    let server = start_server(ServerConfig {
        core_only: true,
        ..ServerConfig::default()
    });
    let api = Api::new(server.url());
    for _ in 0..60 {
        api.enqueue("echo", json!({}));
    }
    let mut worker = WorkerSpec::new("core-only", &server.url(), builtin_handlers())
        .env("CONCURRENT_TASKS", "8")
        .start();
    assert!(
        wait_for_status(&api, "completed", 60, Duration::from_secs(60)),
        "log:\n{}",
        worker.log()
    );
    worker.stop(Duration::from_secs(30));
    let log = worker.log();
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    assert!(
        log.matches("no batch reports").count() <= 1,
        "said once at most: {log}"
    );
}

/// How a scripted server answers a batch report.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Batch {
    /// 404: no batch reports here.
    Missing,
    /// Every entry, in reverse order.
    Reversed,
    /// Only the first entry.
    Short,
    /// The first entry right, the others under ids that were not sent.
    WrongIds,
    /// Every id twice.
    Doubled,
    /// 200 with a body that is not JSON.
    NotJson,
    /// 413: too large.
    TooLarge,
    /// 400: a form this server does not take.
    BadRequest,
    /// The first item 503 (retry it), the second 409 (gone), the rest 200.
    RetryAndGone,
}

/// What a scripted server saw.
#[derive(Default)]
struct Record {
    /// Ids whose batch entry said 2xx (delivered) or 409 (gone).
    settled_in_batch: BTreeMap<String, u16>,
    /// Single reports by id, with the status answered.
    singles: Vec<(String, u16)>,
    batches: usize,
}

/// A server that hands out `TASKS` echo tasks, one per claim, holds the
/// first report a second (so that outcomes pile up and go in batches), and
/// answers batches as `mode` says.
fn scripted(mode: Batch) -> (FakeApi, Arc<Mutex<Record>>) {
    let record = Arc::new(Mutex::new(Record::default()));
    let handed = AtomicUsize::new(0);
    let first = AtomicBool::new(true);
    let once_503 = AtomicBool::new(true);
    let rec = record.clone();
    let fake = FakeApi::start(move |path, body| {
        if path == "/health" {
            return (200, r#"{"status": "healthy"}"#.into());
        }
        if path == "/tasks/claim" {
            let n = handed.fetch_add(1, Ordering::SeqCst);
            return if n < TASKS {
                claimed(vec![task(&format!("t{n:02}"), "echo", json!({}), None)])
            } else {
                nothing()
            };
        }
        if path == "/tasks/claim/cancel" {
            // The worker ends its own long poll on the way out.
            return ok();
        }
        if first.swap(false, Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(1));
        }
        let mut rec = rec.lock().unwrap();
        if let Some(id) = path
            .strip_prefix("/tasks/")
            .and_then(|p| p.strip_suffix("/complete"))
        {
            rec.singles.push((id.to_string(), 200));
            return ok();
        }
        assert_eq!(path, "/tasks/report", "unexpected call {path}");
        rec.batches += 1;
        let ids: Vec<String> = body["outcomes"]
            .as_array()
            .expect("outcomes")
            .iter()
            .map(|o| {
                assert!(o["complete"]["result"].is_object(), "{o}");
                o["id"].as_str().expect("id").to_string()
            })
            .collect();
        assert_eq!(body["worker_id"], json!("w"));
        let entry = |id: &str, status: u16| json!({"id": id, "status": status});
        let mut settle = |id: &str, status: u16| {
            rec.settled_in_batch.insert(id.to_string(), status);
        };
        let results: Vec<Value> = match mode {
            Batch::Missing => return (404, r#"{"error": "no route"}"#.into()),
            Batch::NotJson => return (200, "<html>ok</html>".into()),
            Batch::TooLarge => return (413, r#"{"error": "too large"}"#.into()),
            Batch::BadRequest => return (400, r#"{"error": "what is this?"}"#.into()),
            Batch::Reversed => ids
                .iter()
                .rev()
                .map(|id| {
                    settle(id, 200);
                    entry(id, 200)
                })
                .collect(),
            Batch::Short => {
                settle(&ids[0], 200);
                vec![entry(&ids[0], 200)]
            }
            Batch::WrongIds => {
                settle(&ids[0], 200);
                let mut r = vec![entry(&ids[0], 200)];
                r.extend((1..ids.len()).map(|i| entry(&format!("bogus{i}"), 200)));
                r
            }
            Batch::Doubled => ids
                .iter()
                .flat_map(|id| [entry(id, 200), entry(id, 200)])
                .collect(),
            Batch::RetryAndGone => ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let status = match i {
                        0 if once_503.swap(false, Ordering::SeqCst) => 503,
                        1 => 409,
                        _ => 200,
                    };
                    if status != 503 {
                        settle(id, status);
                    }
                    entry(id, status)
                })
                .collect(),
        };
        (200, json!({ "results": results }).to_string())
    });
    (fake, record)
}

/// Runs a worker against a server scripted by `mode` until every task is
/// settled; checks that each was settled exactly once (a single report
/// with 2xx, or a usable batch entry) and returns the record.
fn run_against(mode: Batch) -> (Record, String) {
    let (fake, record) = scripted(mode);
    let mut worker = WorkerSpec::new("hostile-batch", &fake.url(), builtin_handlers())
        .env("CONCURRENT_TASKS", "1")
        .env("WORKER_ID", "w")
        .start();
    let all: BTreeSet<String> = (0..TASKS).map(|n| format!("t{n:02}")).collect();
    wait_for(&worker, || {
        let rec = record.lock().unwrap();
        let mut settled: BTreeSet<String> = rec.settled_in_batch.keys().cloned().collect();
        settled.extend(rec.singles.iter().map(|(id, _)| id.clone()));
        settled == all
    });
    // Anything sent twice would come now.
    std::thread::sleep(Duration::from_millis(500));
    worker.stop(Duration::from_secs(30));
    let log = worker.log();
    let rec = std::mem::take(&mut *record.lock().unwrap());
    let singles: BTreeSet<&String> = rec.singles.iter().map(|(id, _)| id).collect();
    assert_eq!(
        singles.len(),
        rec.singles.len(),
        "a single sent twice: {:?}",
        rec.singles
    );
    for id in rec.settled_in_batch.keys() {
        assert!(
            !singles.contains(id),
            "{mode:?}: {id} settled in a batch and sent again singly\n{log}"
        );
    }
    (rec, log)
}

#[test]
fn a_server_without_batch_reports_gets_single_reports_and_one_info_line() {
    let (rec, log) = run_against(Batch::Missing);
    assert_eq!(rec.batches, 1, "asked once, not again within the hour");
    assert_eq!(rec.singles.len(), TASKS);
    assert_eq!(log.matches("no batch reports").count(), 1, "{log}");
    assert!(!log.contains("WARN"), "{log}");
}

#[test]
fn entries_are_read_by_id_whatever_their_order() {
    let (rec, log) = run_against(Batch::Reversed);
    assert!(rec.batches >= 1, "{log}");
    assert!(rec.settled_in_batch.len() >= 2);
}

#[test]
fn outcomes_without_a_usable_entry_are_sent_singly() {
    for mode in [Batch::Short, Batch::WrongIds, Batch::Doubled] {
        let (rec, log) = run_against(mode);
        assert!(rec.batches >= 1, "{mode:?}: {log}");
        assert!(
            !rec.singles.is_empty(),
            "{mode:?}: the unanswered went singly"
        );
    }
}

#[test]
fn an_answer_that_is_not_json_a_413_or_a_400_sends_the_batch_singly() {
    for mode in [Batch::NotJson, Batch::TooLarge, Batch::BadRequest] {
        let (rec, log) = run_against(mode);
        assert!(rec.batches >= 1, "{mode:?}: {log}");
        assert!(rec.settled_in_batch.is_empty());
        assert_eq!(rec.singles.len(), TASKS, "{mode:?}");
        if mode == Batch::NotJson {
            assert!(log.contains("batch report: malformed answer"), "{log}");
        }
    }
}

#[test]
fn an_item_to_retry_is_sent_again_and_a_gone_one_is_dropped() {
    let (rec, log) = run_against(Batch::RetryAndGone);
    assert!(rec.settled_in_batch.values().any(|s| *s == 409), "{log}");
    assert!(
        log.contains("report dropped: the server answered 409"),
        "{log}"
    );
}
