//! A parked long poll whose client hangs up leaves the waiter table at
//! once: tasks enqueued afterwards go to the clients still waiting, and
//! none is leased to one that has gone.

#![cfg(feature = "server")]

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};
use support::{start_server, wait_until, Api};
use taskworker::ServerConfig;

/// Generous: the machine may be busy, and nothing here waits for a timeout.
const WITHIN: Duration = Duration::from_secs(20);

/// Sends a claim that may wait a minute for `worker`, on a socket of its own.
fn park(addr: SocketAddr, worker: &str, extra: &str) -> TcpStream {
    let body = format!(r#"{{"worker_id":"{worker}","wait_seconds":60{extra}}}"#);
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WITHIN)).unwrap();
    let request = format!(
        "POST /tasks/claim HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("send a claim");
    s
}

/// The next answer's status and JSON body (read until the connection
/// closes or the whole body, by its length, has come).
fn answer(s: &mut TcpStream) -> (u16, Value) {
    answer_after(s, &mut Vec::new())
}

/// [`answer`] on a connection with more answers to come: `out` holds what
/// was read past this one.
fn answer_after(s: &mut TcpStream, out: &mut Vec<u8>) -> (u16, Value) {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if out.len() >= end + 4 + length {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let body = out[end + 4..end + 4 + length].to_vec();
                out.drain(..end + 4 + length);
                return (status, serde_json::from_slice(&body).unwrap_or(Value::Null));
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return (0, Value::Null),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

fn waiting(api: &Api) -> Option<u64> {
    let (_, text) = api.get_text("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("taskworker_server_waiting_claims "))
        .and_then(|v| v.trim().parse().ok())
}

fn wait_for_waiting(api: &Api, n: u64) {
    assert!(
        wait_until(WITHIN, || waiting(api) == Some(n)),
        "parked claims: {:?}, expected {n}",
        waiting(api)
    );
}

fn claimed_by(api: &Api) -> Vec<String> {
    let (status, body) = api.get("/tasks?status=claimed");
    assert_eq!(status, 200, "{body}");
    let mut by: Vec<String> = body["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["claimed_by"].as_str().unwrap_or("nobody").to_string())
        .collect();
    by.sort();
    by
}

fn tasks_go_to_the_clients_still_waiting_not_to_those_gone() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    let mut clients: Vec<(String, TcpStream)> = (0..6)
        .map(|i| {
            let worker = format!("w{i}");
            let socket = park(s.addr(), &worker, "");
            (worker, socket)
        })
        .collect();
    wait_for_waiting(&api, 6);
    // The oldest three go: they would be woken first.
    let live = clients.split_off(3);
    drop(clients);
    wait_for_waiting(&api, 3);
    let ids: Vec<String> = (0..3).map(|_| api.enqueue("t", json!({}))).collect();
    let mut got = Vec::new();
    for (worker, mut socket) in live {
        let (status, body) = answer(&mut socket);
        assert_eq!(status, 200, "{worker}: {body}");
        let id = body["task"]["id"].as_str().expect("a task").to_string();
        assert_eq!(api.task(&id)["claimed_by"], worker.as_str());
        got.push(id);
    }
    got.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(got, ids, "each task went to a live client");
    assert_eq!(claimed_by(&api), ["w3", "w4", "w5"]);
    wait_for_waiting(&api, 0);
}

fn a_half_close_counts_as_a_hang_up_but_pipelined_bytes_do_not() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    // Bytes behind the claim: the next request, pipelined.
    let mut pipelined = park(s.addr(), "pipelined", "");
    pipelined
        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let half_closed = park(s.addr(), "half-closed", "");
    wait_for_waiting(&api, 2);
    // Nothing more will come from it: as good as gone for a long poll.
    half_closed.shutdown(std::net::Shutdown::Write).unwrap();
    wait_for_waiting(&api, 1);
    let id = api.enqueue("t", json!({}));
    let mut rest = Vec::new();
    let (status, body) = answer_after(&mut pipelined, &mut rest);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task"]["id"], id.as_str());
    let (status, _) = answer_after(&mut pipelined, &mut rest);
    assert_eq!(status, 200, "the pipelined request is answered after");
    assert_eq!(claimed_by(&api), ["pipelined"]);
    drop(half_closed);
}

fn a_typed_claim_gone_leaves_its_type_to_the_next_waiting_for_it() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    let gone = park(s.addr(), "gone", r#","types":["a"]"#);
    let other = park(s.addr(), "other", r#","types":["b"]"#);
    let mut next = park(s.addr(), "next", r#","types":["a"]"#);
    wait_for_waiting(&api, 3);
    drop(gone);
    wait_for_waiting(&api, 2);
    let id = api.enqueue("a", json!({}));
    let (status, body) = answer(&mut next);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task"]["id"], id.as_str());
    assert_eq!(api.task(&id)["claimed_by"], "next");
    wait_for_waiting(&api, 1);
    drop(other);
    wait_for_waiting(&api, 0);
}

fn tasks_whose_answer_never_reached_a_client_gone_go_back_at_once() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    // An answer far larger than what the sockets buffer, so that the
    // server is still writing it when the client goes.
    let blob = "x".repeat(128 * 1024);
    let ids: Vec<String> = (0..96)
        .map(|_| api.enqueue("t", json!({ "blob": blob })))
        .collect();
    let client = park(s.addr(), "gone", r#","max_tasks":96"#);
    // Counted, not listed: the list would hold every blob.
    let claimed = || api.get("/health").1["counts"]["claimed"].as_u64();
    assert!(
        wait_until(WITHIN, || claimed() == Some(96)),
        "claimed: {:?}",
        claimed()
    );
    // Closed with the answer unread: a reset, and the write fails.
    drop(client);
    let queued = || api.get("/health").1["counts"]["queued"].as_u64();
    assert!(
        wait_until(WITHIN, || queued() == Some(96)),
        "put back at once, not left to their lease: {:?} queued",
        queued()
    );
    for id in &ids {
        assert_eq!(api.task(id)["attempt"], 0, "no attempt counted: {id}");
    }
}

per_store!(
    tasks_whose_answer_never_reached_a_client_gone_go_back_at_once,
    tasks_go_to_the_clients_still_waiting_not_to_those_gone,
    a_half_close_counts_as_a_hang_up_but_pipelined_bytes_do_not,
    a_typed_claim_gone_leaves_its_type_to_the_next_waiting_for_it,
);
