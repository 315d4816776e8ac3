//! Thousands of parked long polls on one `taskworker serve` process hold
//! no thread each: enqueues are still answered, a parked waiter is still
//! woken by a task and gets it, claim cancel still answers a parked claim
//! at once, and the server's threads stay few; on every store.

#![cfg(feature = "server")]

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use serde_json::json;
use support::{redis::configure, wait_until, Api, ServeProcess};
use taskworker::ServerConfig;

/// Long polls held open at once, when the test's open-file limit allows:
/// three stores run at once, each with this many sockets here.
const LONG_POLLS: usize = 3000;
/// Far below one thread per parked claim, far above what the server needs.
const MAX_THREADS: u64 = 64;

/// A `serve` child on this test's store (memory, journal or Redis).
fn serve() -> ServeProcess {
    let config = configure(ServerConfig::default());
    let mut args = Vec::new();
    if let Some(data) = &config.data {
        args.extend(["--data".to_string(), data.display().to_string()]);
    }
    if let Some(store) = &config.store {
        args.extend(["--store".to_string(), store.clone()]);
        args.extend(["--store-prefix".to_string(), config.store_prefix.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServeProcess::start(&args)
}

/// The server's `taskworker_server_waiting_claims`.
fn waiting(api: &Api) -> usize {
    let (_, text) = api.get_text("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("taskworker_server_waiting_claims "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The `Threads:` of process `pid`.
fn threads(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

/// Opens a long poll on a raw socket: the request is sent, the answer left unread.
fn park(addr: SocketAddr, body: &serde_json::Value) -> TcpStream {
    let body = body.to_string();
    let mut s = TcpStream::connect(addr).expect("connect");
    let request = format!(
        "POST /tasks/claim HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("send a claim");
    s
}

fn thousands_of_parked_long_polls_hold_no_threads() {
    let limit = taskworker::raise_open_file_limit();
    let n = LONG_POLLS.min(usize::try_from(limit.saturating_sub(256) / 4).unwrap_or(0));
    assert!(
        n >= 100,
        "an open-file limit of {limit} is too low for this test"
    );
    let mut server = serve();
    let addr: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let api = Api::new(server.url.clone());
    let idle = json!({"worker_id": "idle", "wait_seconds": 120, "types": ["idle"]});
    let mut polls: Vec<TcpStream> = (1..n).map(|_| park(addr, &idle)).collect();
    let mut cancelled = park(
        addr,
        &json!({"worker_id": "c", "wait_seconds": 120, "types": ["idle"], "claim_id": "c-1"}),
    );
    assert!(
        wait_until(Duration::from_secs(120), || waiting(&api) == n),
        "{} of {n} long polls parked",
        waiting(&api)
    );
    let during = threads(server.child.id());
    assert!(
        during <= MAX_THREADS,
        "{during} threads with {n} parked long polls"
    );

    // An enqueue is answered, and wakes none of them (they take other types).
    api.enqueue("other", json!({}));
    assert_eq!(waiting(&api), n);

    // A waiter parked after them is woken by its task and gets it.
    let poller = api.clone();
    let woken =
        thread::spawn(move || poller.claim("w", json!({"wait_seconds": 60, "types": ["wake"]})));
    assert!(wait_until(Duration::from_secs(30), || waiting(&api) == n + 1));
    let id = api.enqueue("wake", json!({}));
    let (status, body) = woken.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task"]["id"], id.as_str());

    // Cancelling a parked claim answers it at once, and only it.
    let (status, body) = api.post_json(
        "/tasks/claim/cancel",
        &json!({"worker_id": "c", "claim_id": "c-1"}),
    );
    assert_eq!((status, body["released"].as_i64()), (200, Some(0)));
    cancelled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = [0u8; 12];
    cancelled
        .read_exact(&mut answer)
        .expect("the cancelled claim is answered");
    assert_eq!(&answer, b"HTTP/1.1 404");
    assert_eq!(waiting(&api), n - 1);

    let after = threads(server.child.id());
    assert!(after <= MAX_THREADS, "{after} threads");
    polls.clear();
    server.stop(Duration::from_secs(30));
}

per_store!(thousands_of_parked_long_polls_hold_no_threads);
