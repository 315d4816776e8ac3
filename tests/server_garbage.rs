//! A burst of malformed requests does not stop the server from serving.

#![cfg(feature = "server")]

mod support;

use serde_json::json;
use support::{send_raw as raw, start_server, Api};
use taskworker::ServerConfig;

#[test]
fn garbage_then_a_normal_claim_succeeds() {
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    let addr = s.addr();
    let junk: Vec<&[u8]> = vec![
        b"\x00\x01\x02\xff\xfe garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"BREW /tasks HTTP/1.1\r\n\r\n",
        b"GET /tasks HTTP/9.9\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"POST /tasks HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST /tasks HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n",
        b"POST /tasks HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /tasks HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST /tasks HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /tasks HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /tasks HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
        b"POST /tasks/claim HTTP/1.1\r\nContent-Length: 3\r\n\r\n[1]",
        b"POST /tasks/%ff%fe/complete HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /tasks?status=%zz HTTP/1.1\r\n\r\n",
        b"POST /tasks HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n",
        b"POST /tasks HTTP/1.1\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /health HTTP/1.1\r\nNo-Colon-Header\r\n\r\n",
    ];
    for bytes in &junk {
        let answer = raw(addr, bytes);
        assert!(
            answer.is_empty()
                || answer.starts_with("HTTP/1.1 4")
                || answer.starts_with("HTTP/1.1 5"),
            "{:?} -> {answer:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let long_header = format!("GET /health HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(100_000));
    assert!(raw(addr, long_header.as_bytes()).starts_with("HTTP/1.1 431"));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(api.post_raw("/tasks", deep.as_bytes()).0, 400);
    let chunked = raw(
        addr,
        b"POST /tasks HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nd\r\n{\"type\": \"c\"}\r\n0\r\n\r\n",
    );
    assert!(chunked.starts_with("HTTP/1.1 201"), "{chunked}");

    api.enqueue("t", json!({}));
    let (status, body) = api.claim("w", json!({}));
    assert_eq!(status, 200, "{body}");
}
