//! The API client's kept-alive connections against a raw server that does
//! what a broken or restarted one does between two requests: sends bytes
//! nobody asked for after an answer, or closes the connection. A pooled
//! connection in either state is never used again: the next request goes
//! out on a new connection and gets its own answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use taskworker::{build_agent, ApiClient, Config, Delivery, ReportKind};

/// An answer that says the report was taken.
const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
/// An answer no request asked for; read as the next one, the report would
/// count as refused.
const STRAY: &[u8] =
    b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

/// What the raw server does on its first connection after answering.
#[derive(Clone, Copy)]
enum AfterAnswer {
    /// Sends a stray answer in the same write as the real one.
    StrayAtOnce,
    /// Sends a stray answer a moment later, once the client has read its own.
    StrayLater,
    /// Closes the connection.
    Close,
}

/// Reads one request (head and `Content-Length` body); false at end of stream.
fn read_request(reader: &mut BufReader<TcpStream>) -> bool {
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("a Content-Length");
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).is_ok()
}

/// A server on loopback: its first connection gets one answer and then
/// `after`; every later connection is answered properly. Sends the number
/// of each connection it accepts.
fn raw_server(after: AfterAnswer) -> (String, mpsc::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (accepted, connections) = mpsc::channel();
    thread::spawn(move || {
        for (number, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { return };
            let _ = accepted.send(number + 1);
            thread::spawn(move || serve(stream, number == 0, after));
        }
    });
    (url, connections)
}

fn serve(stream: TcpStream, first: bool, after: AfterAnswer) {
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    while read_request(&mut reader) {
        if !first {
            let _ = writer.write_all(OK);
            continue;
        }
        match after {
            AfterAnswer::StrayAtOnce => {
                let _ = writer.write_all(&[OK, STRAY].concat());
            }
            AfterAnswer::StrayLater => {
                let _ = writer.write_all(OK);
                thread::sleep(Duration::from_millis(100));
                let _ = writer.write_all(STRAY);
            }
            AfterAnswer::Close => {
                let _ = writer.write_all(OK);
                return;
            }
        }
        // Whatever comes next on this connection would be answered by the stray bytes.
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        return;
    }
}

/// Two reports through one client, a pause between them; returns what each
/// was answered and how many connections the server saw.
fn two_reports(after: AfterAnswer) -> (Vec<Delivery>, usize) {
    let (url, connections) = raw_server(after);
    let config = Config {
        api_url: url,
        worker_id: "w1".into(),
        ..Config::default()
    };
    let client = ApiClient::new(
        build_agent(&config).expect("agent"),
        &config.api_url,
        None,
        "w1",
    );
    let body = br#"{"result":{},"worker_id":"w1"}"#;
    let mut answers = Vec::new();
    for id in ["t1", "t2"] {
        let delivery = client
            .report(id, ReportKind::Complete, body)
            .unwrap_or_else(|e| panic!("report of {id}: {e}"));
        answers.push(delivery);
        thread::sleep(Duration::from_millis(300));
    }
    (answers, connections.try_iter().count())
}

/// Two reports with `after` between them: both delivered, the second on a
/// new connection.
fn second_report_on_a_new_connection(after: AfterAnswer) {
    let (answers, connections) = two_reports(after);
    assert_eq!(answers, [Delivery::Delivered, Delivery::Delivered]);
    assert_eq!(connections, 2, "the first connection was used again");
}

#[test]
fn an_answer_sent_with_no_request_in_the_same_write_is_never_taken_for_the_next() {
    second_report_on_a_new_connection(AfterAnswer::StrayAtOnce);
}

#[test]
fn an_answer_sent_with_no_request_after_the_real_one_is_never_taken_for_the_next() {
    second_report_on_a_new_connection(AfterAnswer::StrayLater);
}

#[test]
fn a_connection_the_server_closed_while_pooled_is_not_used_again() {
    second_report_on_a_new_connection(AfterAnswer::Close);
}
