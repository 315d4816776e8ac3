//! Bounded: an oversized claim answer is refused with a clear log line and
//! the worker goes on; a server that never answers a claim does not hang the
//! worker (the call times out and is repeated with the same claim id).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake::{self, FakeApi};
use support::wait_until;
use support::worker::{builtin_handlers, WorkerSpec};

#[test]
fn an_8_mib_claim_answer_is_refused_and_the_worker_goes_on() {
    let huge = "x".repeat(8 << 20);
    let claims = AtomicUsize::new(0);
    let fake = FakeApi::start(move |path, _| match path {
        "/tasks/claim" => match claims.fetch_add(1, SeqCst) {
            0 => fake::claimed(vec![fake::task(
                "huge",
                "echo",
                json!({ "blob": huge }),
                None,
            )]),
            1 => fake::claimed(vec![fake::task("small", "echo", json!({"n": 1}), None)]),
            _ => fake::nothing(),
        },
        _ => fake::ok(),
    });
    let url = fake.url();
    let mut worker = WorkerSpec::new("huge-claim", &url, builtin_handlers()).start();
    assert!(
        wait_until(Duration::from_secs(60), || !fake
            .seen("/tasks/small/complete")
            .is_empty()),
        "log:\n{}",
        worker.log()
    );
    let log = worker.log();
    assert!(log.contains("larger than 4194304 bytes, refused"), "{log}");
    assert!(fake.seen("/tasks/huge/complete").is_empty());
    assert_eq!(
        fake.seen("/tasks/small/complete")[0].body["result"],
        json!({"n": 1})
    );
    worker.stop(Duration::from_secs(10));
}

/// Reads one HTTP request from `stream`; returns its JSON body.
fn read_request(reader: &mut BufReader<std::net::TcpStream>) -> Option<Value> {
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

#[test]
fn a_claim_that_never_answers_times_out_and_is_repeated_with_its_claim_id() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let claims: Arc<Mutex<Vec<(Instant, Value)>>> = Arc::default();
    let seen = claims.clone();
    // Only the first claim is held: the worker's `GET /health` may come first.
    let holding = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            let (seen, holding) = (seen.clone(), holding.clone());
            held.push(stream.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                while let Some(body) = read_request(&mut reader) {
                    seen.lock().unwrap().push((Instant::now(), body));
                    if !holding.swap(true, SeqCst) {
                        // Hold the first claim open without an answer.
                        std::thread::sleep(Duration::from_secs(120));
                        return;
                    }
                    let _ =
                        stream.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
                }
            });
        }
    });
    let mut worker = WorkerSpec::new("hung-claim", &url, builtin_handlers())
        .env("WAIT_SECONDS", "0")
        .start();
    assert!(
        wait_until(Duration::from_secs(45), || claims.lock().unwrap().len()
            >= 2),
        "log:\n{}",
        worker.log()
    );
    let claims = claims.lock().unwrap().clone();
    let waited = claims[1].0 - claims[0].0;
    println!("unanswered claim repeated after {} ms", waited.as_millis());
    assert_eq!(
        claims[0].1["claim_id"], claims[1].1["claim_id"],
        "the same claim id, so a server that has the extension hands back the same tasks"
    );
    worker.stop(Duration::from_secs(15));
}
