//! Hostile clients against the reference server: generated request bytes,
//! slow clients (a byte at a time, a body that never ends, answers never
//! read) and a connection flood. After each, the server stays up and an
//! authorized `GET /health` and claim answer well before any of the
//! attackers' deadlines would have freed a connection.

#![cfg(feature = "server")]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use support::{send_raw, start_server};
use taskworker::{Server, ServerConfig};

const KEY: &str = "hostile-test-key";
/// How long an authorized request may take while the server is under attack:
/// a third of the server's shortest deadline (30 s per request), so an answer
/// in time proves it did not wait for an attacker to time out, while a busy
/// test machine (a few hundred threads starting at once on two cores) has
/// room. This checks "not held up", not speed; speed is the benchmarks' job.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

fn server() -> Server {
    start_server(ServerConfig {
        api_key: Some(KEY.into()),
        ..ServerConfig::default()
    })
}

/// Sends one authorized request on a fresh connection and reads the answer's
/// status line; the error says what took too long or went wrong.
fn authorized(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<u16, String> {
    let began = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, ANSWER_WITHIN).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    s.set_write_timeout(Some(ANSWER_WITHIN)).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)
        .map_err(|e| format!("{method} {path}: no answer: {e}"))?;
    if began.elapsed() > ANSWER_WITHIN {
        return Err(format!("{method} {path} took {:?}", began.elapsed()));
    }
    let status = String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0);
    Ok(status)
}

/// An authorized `GET /health` answers 200 and a claim answers 200 or 204.
fn still_serving(addr: SocketAddr) -> Result<(), String> {
    match authorized(addr, "GET", "/health", "")? {
        200 => {}
        other => return Err(format!("GET /health answered {other}")),
    }
    match authorized(addr, "POST", "/tasks/claim", r#"{"worker_id": "probe"}"#)? {
        200 | 204 | 404 => Ok(()),
        other => Err(format!("claim answered {other}")),
    }
}

/// Request bytes: mostly a request line, headers and a body built from
/// hostile pieces, sometimes cut short; sometimes raw bytes.
fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
    let method = select(vec![
        "GET", "POST", "DELETE", "PUT", "BREW", "", "G\0T", "post",
    ]);
    let path = select(vec![
        "/health",
        "/tasks",
        "/tasks/claim",
        "/tasks/%2E%2E/complete",
        "/tasks/../../etc/passwd",
        "/tasks/%ff%fe/fail",
        "/tasks?status=%zz&limit=-1",
        "*",
        "",
        "/tasks/\0/heartbeat",
    ]);
    let version = select(vec![
        "HTTP/1.1",
        "HTTP/1.0",
        "HTTP/9.9",
        "",
        "HTTP/1.1 extra",
    ]);
    let header = select(vec![
        "Content-Length: 0",
        "Content-Length: 5",
        "Content-Length: -1",
        "Content-Length: 99999999999999999999",
        "Content-Length: 18446744073709551615",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: gzip, chunked",
        "Expect: 100-continue",
        "Authorization: Bearer hostile-test-key",
        "Authorization: Bearer wrong",
        "Authorization: Basic \0\0",
        "Connection: keep-alive",
        "Host:",
        "No-Colon",
        ": empty-name",
        "X: \u{1b}[31m\u{7f}",
    ]);
    let headers = prop::collection::vec(header, 0..6);
    let body = prop_oneof![
        Just(Vec::new()),
        Just(br#"{"type": "echo"}"#.to_vec()),
        Just(b"5\r\nhello\r\n0\r\n\r\n".to_vec()),
        Just(b"ffffffffffffffff\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..256),
    ];
    let built = (method, path, version, headers, body).prop_map(|(m, p, v, h, body)| {
        let mut bytes = format!("{m} {p} {v}\r\n").into_bytes();
        for line in h {
            bytes.extend_from_slice(line.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&body);
        bytes
    });
    let cut = (built.clone(), any::<prop::sample::Index>()).prop_map(|(b, at)| {
        let end = at.index(b.len().max(1));
        b[..end.min(b.len())].to_vec()
    });
    prop_oneof![
        4 => built,
        2 => cut,
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

#[test]
fn generated_request_bytes_leave_the_server_serving() {
    let server = server();
    let addr = server.addr();
    let config = Config {
        cases: 256,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    };
    let result = TestRunner::new(config).run(&request_bytes(), |bytes| {
        let answer = send_raw(addr, &bytes);
        prop_assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 "),
            "not an HTTP answer: {answer:?}"
        );
        still_serving(addr).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Connects `n` sockets to `addr` and writes `first` on each.
fn open(addr: SocketAddr, n: usize, first: &[u8]) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        let _ = (&s).write_all(first);
        sockets.push(s);
    }
    sockets
}

#[test]
fn slow_clients_do_not_hold_up_an_authorized_request() {
    let server = server();
    let addr = server.addr();
    // A byte at a time, a body that never ends, and answers never read.
    let mut dribbling = open(addr, 40, b"G");
    let endless = open(
        addr,
        20,
        format!("POST /tasks HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\nContent-Length: 1000000\r\n\r\n{{")
            .as_bytes(),
    );
    let pipelined =
        format!("GET /health HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\n\r\n").repeat(2000);
    let unread = open(addr, 5, pipelined.as_bytes());
    let head = b"ET /health HTTP/1.1\r\nX-Slow: ".iter();
    let mut checks = 0;
    for (round, byte) in head.cycle().take(30).enumerate() {
        for s in &mut dribbling {
            let _ = s.write_all(&[*byte]);
        }
        std::thread::sleep(Duration::from_millis(100));
        if round % 5 == 0 {
            still_serving(addr).unwrap_or_else(|e| panic!("round {round}: {e}"));
            checks += 1;
        }
    }
    assert!(checks >= 6);
    drop((endless, unread));
    still_serving(addr).expect("after the slow clients");
}

#[test]
fn a_connection_flood_does_not_hold_up_an_authorized_request() {
    let server = server();
    let addr = server.addr();
    let mut flood = open(addr, 150, b"");
    still_serving(addr).expect("with 150 idle connections");
    flood.extend(open(addr, 150, b"GET /health HTTP/1.1\r\n"));
    still_serving(addr).expect("with 300 connections open");
    // Connections opened and dropped as fast as they come.
    for _ in 0..300 {
        drop(TcpStream::connect(addr).expect("connect"));
    }
    still_serving(addr).expect("after 300 connections dropped at once");
    drop(flood);
    still_serving(addr).expect("after the flood");
}
