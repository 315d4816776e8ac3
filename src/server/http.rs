//! A small HTTP/1.1 server: one thread per keep-alive connection, bounded
//! request heads and bodies, each answer written in one piece with Nagle off.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The largest request body accepted; larger ones get 413.
pub const MAX_BODY: usize = 1 << 20;
/// The largest request line plus headers.
const MAX_HEAD: u64 = 64 * 1024;
/// The most header lines in one request.
const MAX_HEADERS: usize = 100;
/// The most connections served at once; more get 503.
const MAX_CONNECTIONS: usize = 4096;
/// How long a connection may sit between requests or in the middle of one.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Connection threads need little stack: JSON nesting is capped by the parser.
const STACK_SIZE: usize = 512 * 1024;

/// One request, read in full.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Header names and values as sent.
    pub headers: Vec<(String, String)>,
    /// The body (at most [`MAX_BODY`] bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query without the `?`, or empty.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: impl AsRef<str>) -> Response {
        Response::json(status, &serde_json::json!({ "error": message.as_ref() }))
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// What answers requests.
pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

#[derive(Default)]
struct Connections {
    open: Mutex<HashMap<u64, TcpStream>>,
    closed: Condvar,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A listening HTTP server; [`HttpServer::stop`] (or drop) closes every connection.
pub struct HttpServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    conns: Arc<Connections>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves `listener` with `handler` until stopped.
    pub fn start(listener: TcpListener, handler: Handler) -> io::Result<HttpServer> {
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Connections::default());
        let (stop, open) = (Arc::clone(&stopping), Arc::clone(&conns));
        let acceptor = thread::Builder::new()
            .name("taskworker-serve-accept".into())
            .spawn(move || accept_loop(&listener, &handler, &stop, &open))?;
        Ok(HttpServer {
            addr,
            stopping,
            conns,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection and waits (bounded) for
    /// their threads to end.
    pub fn stop(&mut self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the blocking accept() with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut open = self.conns.lock();
        for stream in open.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        while !open.is_empty() && Instant::now() < deadline {
            let (guard, _) = self
                .conns
                .closed
                .wait_timeout(open, deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| e.into_inner());
            open = guard;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: &TcpListener,
    handler: &Handler,
    stopping: &AtomicBool,
    conns: &Arc<Connections>,
) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    for incoming in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let mut stream = match incoming {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors and the like: wait a little instead of spinning.
                log::warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        {
            let mut open = conns.lock();
            if open.len() >= MAX_CONNECTIONS {
                drop(open);
                let busy = Response::error(503, "too many connections");
                let _ = write_response(&mut stream, &busy, false, false, false);
                continue;
            }
            match stream.try_clone() {
                Ok(s) => open.insert(id, s),
                Err(_) => continue,
            };
        }
        let (handler, conns2) = (Arc::clone(handler), Arc::clone(conns));
        let spawned = thread::Builder::new()
            .name("taskworker-serve-conn".into())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                serve_connection(stream, &handler);
                conns2.lock().remove(&id);
                conns2.closed.notify_all();
            });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}");
            conns.lock().remove(&id);
        }
    }
}

/// What reading the next request gave.
enum Incoming {
    Request {
        request: Request,
        keep_alive: bool,
        http10: bool,
    },
    /// The peer closed, went quiet, or the socket failed.
    Closed,
    /// A bad request: answer and close.
    Reject(Response),
}

fn serve_connection(stream: TcpStream, handler: &Handler) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(8 * 1024, stream);
    loop {
        match read_request(&mut reader, &mut writer) {
            Incoming::Closed => return,
            Incoming::Reject(resp) => {
                let _ = write_response(&mut writer, &resp, false, false, false);
                linger_close(&mut reader, &writer);
                return;
            }
            Incoming::Request {
                request,
                keep_alive,
                http10,
            } => {
                let head = request.method == "HEAD";
                let resp = catch_unwind(AssertUnwindSafe(|| handler(request)))
                    .unwrap_or_else(|_| Response::error(500, "internal error"));
                if write_response(&mut writer, &resp, keep_alive, http10, head).is_err()
                    || !keep_alive
                {
                    return;
                }
            }
        }
    }
}

/// After an early answer, reads (bounded) what the client is still sending,
/// so closing does not reset the connection before it read the answer.
fn linger_close(reader: &mut BufReader<TcpStream>, writer: &TcpStream) {
    let _ = writer.shutdown(Shutdown::Write);
    let _ = writer.set_read_timeout(Some(Duration::from_millis(500)));
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left: usize = 8 * MAX_BODY;
    let mut buf = [0u8; 16 * 1024];
    while left > 0 && Instant::now() < deadline {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

fn read_line(reader: &mut BufReader<TcpStream>, budget: &mut u64) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = reader.by_ref().take(*budget).read_until(b'\n', &mut line)?;
    *budget = budget.saturating_sub(n as u64);
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request head too large",
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "request head is not UTF-8"))
}

fn read_request(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> Incoming {
    let bad = |msg: &str| Incoming::Reject(Response::error(400, msg));
    let mut budget = MAX_HEAD;
    let request_line = loop {
        match read_line(reader, &mut budget) {
            Ok(None) => return Incoming::Closed,
            Ok(Some(line)) if line.is_empty() => {}
            Ok(Some(line)) => break line,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Incoming::Reject(Response::error(431, e.to_string()))
            }
            Err(_) => return Incoming::Closed,
        }
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad("malformed request line");
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") => {
            return Incoming::Reject(Response::error(505, "only HTTP/1.0 and HTTP/1.1"))
        }
        _ => return bad("malformed request line"),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return bad("malformed method");
    }
    if !target.starts_with('/') {
        return bad("request target must start with /");
    }
    let mut headers = Vec::new();
    loop {
        let line = match read_line(reader, &mut budget) {
            Ok(Some(line)) => line,
            Ok(None) => return Incoming::Closed,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Incoming::Reject(Response::error(431, e.to_string()))
            }
            Err(_) => return Incoming::Closed,
        };
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Incoming::Reject(Response::error(431, "too many headers"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return bad("malformed header line");
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return bad("malformed header name");
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let request = Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body: Vec::new(),
    };
    let connection = request
        .header("Connection")
        .unwrap_or("")
        .to_ascii_lowercase();
    let keep_alive = if http10 {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    match read_body(reader, writer, request) {
        Ok(request) => Incoming::Request {
            request,
            keep_alive,
            http10,
        },
        Err(incoming) => incoming,
    }
}

fn read_body(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    mut request: Request,
) -> Result<Request, Incoming> {
    let reject = |status, msg: &str| Incoming::Reject(Response::error(status, msg));
    let mut length: Option<usize> = None;
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("Content-Length") {
            let n = value
                .parse::<u64>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| reject(400, "malformed Content-Length"))?;
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if length.is_some_and(|l| l != n) {
                return Err(reject(400, "conflicting Content-Length headers"));
            }
            length = Some(n);
        }
    }
    let chunked = match request.header("Transfer-Encoding") {
        None => false,
        Some(te) if te.eq_ignore_ascii_case("chunked") => true,
        Some(_) => return Err(reject(501, "only chunked Transfer-Encoding is supported")),
    };
    if chunked && length.is_some() {
        return Err(reject(400, "both Content-Length and Transfer-Encoding"));
    }
    if length.is_some_and(|n| n > MAX_BODY) {
        return Err(reject(413, "request body larger than 1 MiB"));
    }
    let has_body = chunked || length.is_some_and(|n| n > 0);
    let expect = request.header("Expect");
    if expect.is_some_and(|e| !e.eq_ignore_ascii_case("100-continue")) {
        return Err(reject(417, "unsupported Expect"));
    }
    if expect.is_some() && has_body && writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
        return Err(Incoming::Closed);
    }
    if chunked {
        request.body = read_chunked(reader)?;
    } else if let Some(n) = length.filter(|n| *n > 0) {
        let mut body = vec![0; n];
        reader.read_exact(&mut body).map_err(|_| Incoming::Closed)?;
        request.body = body;
    }
    Ok(request)
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, Incoming> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    loop {
        let line = match read_line(reader, &mut budget) {
            Ok(Some(line)) => line,
            _ => return Err(Incoming::Closed),
        };
        let size_text = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Err(Incoming::Reject(Response::error(
                400,
                "malformed chunk size",
            )));
        };
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                match read_line(reader, &mut budget) {
                    Ok(Some(l)) if l.is_empty() => return Ok(body),
                    Ok(Some(_)) => {}
                    _ => return Err(Incoming::Closed),
                }
            }
        }
        if body.len().saturating_add(size) > MAX_BODY {
            return Err(Incoming::Reject(Response::error(
                413,
                "request body larger than 1 MiB",
            )));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .map_err(|_| Incoming::Closed)?;
        let mut crlf = [0u8; 2];
        if reader.read_exact(&mut crlf).is_err() || &crlf != b"\r\n" {
            return Err(Incoming::Closed);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Writes `resp` with one `write_all`, so it leaves in as few segments as possible.
fn write_response(
    w: &mut TcpStream,
    resp: &Response,
    keep_alive: bool,
    http10: bool,
    head: bool,
) -> io::Result<()> {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(160);
    let _ = write!(
        text,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    );
    for (name, value) in &resp.headers {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    if !keep_alive {
        text.push_str("Connection: close\r\n");
    } else if http10 {
        text.push_str("Connection: keep-alive\r\n");
    }
    text.push_str("\r\n");
    let mut out = text.into_bytes();
    if !head {
        out.extend_from_slice(&resp.body);
    }
    w.write_all(&out)
}
