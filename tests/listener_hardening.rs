//! Listeners that an unauthenticated client cannot exhaust: whole-request
//! and write deadlines, the connection cap with idle eviction, bounded
//! threads, and the key checked before a body is read; on a bare listener
//! with short limits, on the reference server, and on a worker's health server.

#![cfg(feature = "server")]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::worker::{WorkerProcess, WorkerSpec};
use support::{start_server, wait_until, ServeProcess};
use taskworker::{HttpRequest, HttpResponse, Listener, ListenerLimits, Responder, ServerConfig};

/// Answers every request with the size of its body.
struct Echo;

impl Responder for Echo {
    fn respond(&self, request: HttpRequest) -> HttpResponse {
        HttpResponse::json(200, &json!({ "body": request.body.len() }))
    }
}

/// A listener on loopback with `limits`, answering with [`Echo`].
fn listener(limits: ListenerLimits) -> Listener {
    let socket = TcpListener::bind("127.0.0.1:0").expect("bind");
    Listener::start(socket, "test-listener", limits, Arc::new(Echo)).expect("listener starts")
}

/// Short deadlines, so that the tests see them pass.
fn short() -> ListenerLimits {
    ListenerLimits {
        request_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(1),
        ..ListenerLimits::server()
    }
}

/// A listener with [`short`] deadlines that serves `cap` connections at once.
fn capped(cap: usize) -> Listener {
    listener(ListenerLimits {
        max_connections: cap,
        ..short()
    })
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends one request on a fresh connection; the answer's text, or empty
/// when the connection closed without one. Bounded by the read timeout.
fn request(addr: SocketAddr, text: &str) -> String {
    let mut s = connect(addr);
    let _ = s.write_all(text.as_bytes());
    read_answer(&mut s)
}

/// Reads until the end of the first answer (its `Content-Length`) or EOF.
fn read_answer(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|n| n.parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                return text;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return text,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether a plain GET gets 200 within `within`, asking again while refused.
fn served_within(addr: SocketAddr, within: Duration) -> bool {
    wait_until(within, || {
        request(addr, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200")
    })
}

/// Sends `bytes` one at a time, 100 ms apart, until the peer closes or
/// `within` passes; returns how long the peer took to close, if it did.
fn trickle(s: &mut TcpStream, bytes: &[u8], within: Duration) -> Option<Duration> {
    let start = Instant::now();
    for b in bytes.iter().cycle() {
        if start.elapsed() > within {
            return None;
        }
        if s.write_all(&[*b]).is_err() {
            return Some(start.elapsed());
        }
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut one = [0u8; 1];
        match s.read(&mut one) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            _ => return Some(start.elapsed()),
        }
    }
    None
}

/// The number of threads of process `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("read /proc/PID/task")
        .count()
}

/// A worker child on `api_url` with its health server on a free port.
fn worker_with_health(name: &str, api_url: &str) -> (WorkerProcess, SocketAddr) {
    let handlers = json!({"handlers": {"echo": {"builtin": "echo"}}});
    let worker = WorkerSpec::new(name, api_url, handlers)
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .start();
    let url = worker.health_url();
    // The health server starts before the worker's other threads: count
    // threads only once they are all up.
    assert!(
        worker.wait_log(" started: ", Duration::from_secs(10)),
        "{}",
        worker.log()
    );
    let addr = url
        .trim_start_matches("http://")
        .parse()
        .expect("health address");
    (worker, addr)
}

#[test]
fn a_trickled_head_is_closed_by_the_request_deadline() {
    let l = listener(short());
    let mut s = connect(l.addr());
    let took = trickle(
        &mut s,
        b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaa\r\n",
        Duration::from_secs(10),
    );
    let took = took.expect("the listener closes a head that never ends");
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    assert!(request(l.addr(), "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
}

#[test]
fn a_trickled_body_is_closed_by_the_request_deadline() {
    let l = listener(short());
    let mut s = connect(l.addr());
    s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let took = trickle(&mut s, b"x", Duration::from_secs(10));
    let took = took.expect("the listener closes a body that never ends");
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
}

#[test]
fn at_the_cap_the_oldest_idle_connection_makes_room() {
    let l = capped(4);
    // One served and kept alive, three never used: all four idle.
    let mut oldest = connect(l.addr());
    oldest.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(read_answer(&mut oldest).starts_with("HTTP/1.1 200"));
    let mut idle: Vec<TcpStream> = (0..3).map(|_| connect(l.addr())).collect();
    thread::sleep(Duration::from_millis(200));
    for round in 0..3 {
        let answer = request(l.addr(), "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "round {round}: {answer:?}"
        );
    }
    // The kept-alive one idled longest and was closed first.
    let mut buf = [0u8; 1];
    assert!(matches!(oldest.read(&mut buf), Ok(0) | Err(_)));
    idle.truncate(0);
}

#[test]
fn at_the_cap_with_every_connection_busy_a_newcomer_gets_503() {
    let l = capped(2);
    let mut busy: Vec<TcpStream> = (0..2).map(|_| connect(l.addr())).collect();
    for s in &mut busy {
        s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    }
    thread::sleep(Duration::from_millis(200));
    let refused = request(l.addr(), "GET / HTTP/1.1\r\n\r\n");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused:?}");
    // The request deadline frees their places.
    assert!(
        served_within(l.addr(), Duration::from_secs(5)),
        "the busy connections' deadline passed"
    );
}

#[test]
fn a_client_that_never_reads_is_dropped_by_the_write_deadline() {
    let l = capped(1);
    // Pipelined requests whose answers it never reads, until the buffers fill.
    let mut hog = connect(l.addr());
    hog.set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let body = vec![b'x'; 64 * 1024];
    let head = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if hog.write_all(head.as_bytes()).is_err() || hog.write_all(&body).is_err() {
            break;
        }
    }
    // Its place is free again once its answer's write deadline passes.
    assert!(
        served_within(l.addr(), Duration::from_secs(8)),
        "the stuck writer was dropped"
    );
}

#[test]
fn a_wrong_key_gets_401_before_the_body_is_read_and_the_connection_closes() {
    let server = start_server(ServerConfig {
        api_key: Some("right".into()),
        ..Default::default()
    });
    let mut s = connect(server.addr());
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A 1 MiB body announced and never sent.
    s.write_all(
        b"POST /tasks HTTP/1.1\r\nAuthorization: Bearer wrong\r\nContent-Length: 1048576\r\n\r\n",
    )
    .unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let eof = (&mut s).take(64 * 1024).read_to_end(&mut out);
    let answer = String::from_utf8_lossy(&out);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
    assert!(answer.contains("Connection: close"), "{answer:?}");
    assert!(eof.is_ok(), "the connection closes: {eof:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // The right key is still served.
    let ok = request(
        server.addr(),
        "GET /tasks HTTP/1.1\r\nAuthorization: Bearer right\r\n\r\n",
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok:?}");
}

#[test]
fn serve_threads_stay_bounded_under_many_idle_connections() {
    let serve = ServeProcess::start(&[]);
    let addr: SocketAddr = serve.url.trim_start_matches("http://").parse().unwrap();
    let pid = serve.child.id();
    let before = threads(pid);
    let idle: Vec<TcpStream> = (0..700).map(|_| connect(addr)).collect();
    thread::sleep(Duration::from_millis(500));
    let during = threads(pid);
    assert!(
        during <= before + 512 + 2,
        "{before} threads before, {during} with {} idle connections",
        idle.len()
    );
    let answer = request(addr, "GET /health HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[test]
fn idle_sockets_neither_lock_out_health_nor_grow_its_threads() {
    let api = start_server(ServerConfig::default());
    let (worker, addr) = worker_with_health("idle-sockets", &api.url());
    let pid = worker.child.id();
    let before = threads(pid);
    let idle: Vec<TcpStream> = (0..300).map(|_| connect(addr)).collect();
    thread::sleep(Duration::from_millis(500));
    let answer = request(addr, "GET /health HTTP/1.1\r\n\r\n");
    assert!(answer.contains("\"status\":\"healthy\""), "{answer:?}");
    let during = threads(pid);
    assert!(
        during <= before + 16 + 2,
        "{before} threads before, {during} with {} idle sockets",
        idle.len()
    );
}

#[test]
fn a_pipelining_client_that_never_reads_does_not_hang_health() {
    let api = start_server(ServerConfig::default());
    let (_worker, addr) = worker_with_health("pipeline-hog", &api.url());
    let mut hog = connect(addr);
    hog.set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let burst = "GET /metrics HTTP/1.1\r\n\r\n".repeat(1000);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) && hog.write_all(burst.as_bytes()).is_ok() {}
    let asked = Instant::now();
    let answer = request(addr, "GET /health HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    drop(hog);
}
