//! sd_notify as systemd sees it: the real binary under `NOTIFY_SOCKET` and
//! `WATCHDOG_USEC` says `READY=1` with a status line, pings the watchdog
//! again and again, and says `STOPPING=1` on SIGTERM.

#![cfg(feature = "server")]

mod support;

use std::os::unix::net::UnixDatagram;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::json;
use support::worker::{builtin_handlers, wait_for_status, WorkerSpec};
use support::{start_server, temp_dir, Api};
use taskworker::ServerConfig;

/// Lines received on the socket, one `KEY=value` per item, in order.
fn listen(socket: UnixDatagram) -> Receiver<String> {
    let (tx, rx) = channel();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => {
                    for line in String::from_utf8_lossy(&buf[..n]).lines() {
                        if tx.send(line.to_string()).is_err() {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
            // The test is over when nobody listens any more.
            if tx.send(String::new()).is_err() {
                return;
            }
        }
    });
    rx
}

/// Collects lines until `done` says so or `within` has passed; returns them all.
fn collect_until(
    lines: &Receiver<String>,
    within: Duration,
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.is_empty() => {}
            Ok(line) => seen.push(line),
            Err(RecvTimeoutError::Timeout) => panic!("within {within:?}, only: {seen:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("listener ended; got {seen:?}"),
        }
    }
    seen
}

fn count(lines: &[String], wanted: &str) -> usize {
    lines.iter().filter(|l| *l == wanted).count()
}

#[test]
fn says_ready_status_watchdog_and_stopping() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let dir = temp_dir("notify");
    let path = dir.join("notify.sock");
    let lines = listen(UnixDatagram::bind(&path).expect("bind the notify socket"));
    let mut worker = WorkerSpec::new("notify", &server.url(), builtin_handlers())
        .env("NOTIFY_SOCKET", path.to_string_lossy())
        // 1 s: pings at least every 500 ms.
        .env("WATCHDOG_USEC", "1000000")
        .start();

    let seen = collect_until(&lines, Duration::from_secs(20), |seen| {
        let ready = seen.iter().position(|l| l == "READY=1");
        ready.is_some_and(|at| {
            let after = &seen[at..];
            after.iter().any(|l| l.starts_with("STATUS=")) && count(after, "WATCHDOG=1") >= 3
        })
    });
    let status = seen
        .iter()
        .find(|l| l.starts_with("STATUS="))
        .expect("a status line");
    assert!(status.contains("completed"), "{status}");
    assert!(!seen.iter().any(|l| l.starts_with("STOPPING")), "{seen:?}");
    assert!(
        !worker.log().contains("WATCHDOG_USEC"),
        "no warning for a 1 s watchdog:\n{}",
        worker.log()
    );

    api.enqueue("echo", json!({}));
    assert!(wait_for_status(
        &api,
        "completed",
        1,
        Duration::from_secs(30)
    ));
    worker.signal("TERM");
    let seen = collect_until(&lines, Duration::from_secs(10), |seen| {
        seen.iter()
            .position(|l| l == "STOPPING=1")
            .is_some_and(|at| seen[at..].iter().any(|l| l.starts_with("STATUS=draining")))
    });
    assert!(
        seen.iter()
            .any(|l| l.starts_with("STATUS=draining: 1 completed")),
        "{seen:?}"
    );
    assert_eq!(worker.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn warns_about_a_watchdog_shorter_than_the_ticks() {
    let server = start_server(ServerConfig::default());
    let dir = temp_dir("notify-short");
    let path = dir.join("notify.sock");
    let lines = listen(UnixDatagram::bind(&path).expect("bind the notify socket"));
    let mut worker = WorkerSpec::new("notify-short", &server.url(), builtin_handlers())
        .env("NOTIFY_SOCKET", path.to_string_lossy())
        .env("WATCHDOG_USEC", "200000")
        .start();
    collect_until(&lines, Duration::from_secs(20), |seen| {
        count(seen, "WATCHDOG=1") >= 2
    });
    assert!(
        worker.wait_log("WATCHDOG_USEC is below", Duration::from_secs(5)),
        "{}",
        worker.log()
    );
    worker.stop(Duration::from_secs(10));
}
