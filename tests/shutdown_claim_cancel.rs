//! A claim whose answer is still on the wire when the worker shuts down:
//! the worker cancels it, and whether it then runs what the answer brings
//! depends on the cancel's answer. A 2xx means the server put those tasks
//! back (another worker will run them), so running them here would run them
//! twice; a core server's 404 means nothing was put back, so they are ours.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::fake::{claimed, nothing, ok, task, wait_for, FakeApi};
use support::worker::{builtin_handlers, WorkerSpec};

/// What the fake saw: the first claim arrive, and the cancel.
#[derive(Default)]
struct Seen {
    claim: AtomicBool,
    cancel: AtomicBool,
}

/// A fake whose first claim is answered only after the worker's cancel
/// came (answered `cancel_status`), and then with one task.
fn fake_with_a_late_answer(cancel_status: u16) -> (FakeApi, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let first_claim = AtomicBool::new(true);
    let fake_seen = seen.clone();
    let fake = FakeApi::start(move |path, _| match path {
        "/health" => (200, r#"{"status": "healthy"}"#.into()),
        "/tasks/claim" if first_claim.swap(false, Ordering::SeqCst) => {
            fake_seen.claim.store(true, Ordering::SeqCst);
            let until = Instant::now() + Duration::from_secs(30);
            while !fake_seen.cancel.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            claimed(vec![task("late", "echo", json!({}), None)])
        }
        "/tasks/claim" => nothing(),
        "/tasks/claim/cancel" => {
            fake_seen.cancel.store(true, Ordering::SeqCst);
            match cancel_status {
                200 => (200, r#"{"released": 1}"#.into()),
                other => (other, r#"{"error": "no route"}"#.into()),
            }
        }
        _ => ok(),
    });
    (fake, seen)
}

#[test]
fn tasks_a_cancel_gave_back_are_not_run() {
    let (fake, seen) = fake_with_a_late_answer(200);
    let mut worker = WorkerSpec::new("w", &fake.url(), builtin_handlers()).start();
    wait_for(&worker, || seen.claim.load(Ordering::SeqCst));
    worker.stop(Duration::from_secs(30));
    assert!(seen.cancel.load(Ordering::SeqCst), "no cancel sent");
    assert!(
        fake.seen("/tasks/late/complete").is_empty() && fake.seen("/tasks/report").is_empty(),
        "ran a task the server took back; log:\n{}",
        worker.log()
    );
    assert!(
        worker
            .log()
            .contains("handed 1 task(s) back to the server; not running them here"),
        "log:\n{}",
        worker.log()
    );
}

#[test]
fn tasks_a_core_server_did_not_take_back_are_run() {
    let (fake, seen) = fake_with_a_late_answer(404);
    let mut worker = WorkerSpec::new("w", &fake.url(), builtin_handlers()).start();
    wait_for(&worker, || seen.claim.load(Ordering::SeqCst));
    worker.stop(Duration::from_secs(30));
    assert!(seen.cancel.load(Ordering::SeqCst), "no cancel sent");
    assert_eq!(
        fake.seen("/tasks/late/complete").len(),
        1,
        "a claimed task of a core server is ours to run and report; log:\n{}",
        worker.log()
    );
}
