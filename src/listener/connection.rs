//! One connection on its own thread: blocking reads and writes, each wait
//! bounded by the deadline of its phase (idle, reading a request, writing
//! an answer), the key checked from the head before any body is read.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use super::limits::{remaining, Limits, Phase, LINGER_BYTES, LINGER_TIME, READ_CHUNK};
use super::parse::{parse_head, Chunked, Framing, HeadScanner, ParseError};
use super::response::{Request, Response};
use super::{Responder, Shared};

/// What reading the next request gave.
enum Incoming {
    Request(Request),
    /// The peer closed, went quiet past a deadline, or the socket failed.
    Closed,
    /// An answer given before the body was read (a bad head, a refused
    /// key): send it and close.
    Early(Response),
}

impl From<ParseError> for Incoming {
    fn from(e: ParseError) -> Incoming {
        Incoming::Early(Response::error(e.status(), e.to_string()))
    }
}

/// Serves requests on `stream` until it closes, a deadline passes, or the
/// table evicts connection `id`.
pub(super) fn serve(stream: TcpStream, id: u64, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let limits = &shared.limits;
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
        start: 0,
        limits,
    };
    loop {
        if conn.pending().is_empty() {
            let deadline = Phase::Idle.deadline(limits, Instant::now());
            if !matches!(conn.fill(deadline), Ok(n) if n > 0) {
                return;
            }
        }
        if !shared.busy(id) {
            return;
        }
        let deadline = Phase::Reading.deadline(limits, Instant::now());
        let request = match conn.read_request(deadline, &*shared.responder) {
            Incoming::Request(request) => request,
            Incoming::Closed => return,
            Incoming::Early(resp) => {
                if conn.write(&resp.encode(false, false, false)).is_ok() {
                    conn.linger();
                }
                return;
            }
        };
        let keep_alive = request.head.keep_alive();
        let http10 = request.head.http10;
        let head_only = request.head.method == "HEAD";
        let resp = catch_unwind(AssertUnwindSafe(|| shared.responder.respond(request)))
            .unwrap_or_else(|_| Response::error(500, "internal error"));
        if conn
            .write(&resp.encode(keep_alive, http10, head_only))
            .is_err()
            || !keep_alive
        {
            return;
        }
        shared.idle(id);
        conn.shrink();
    }
}

struct Conn<'a> {
    stream: TcpStream,
    /// Bytes read and not yet used, from `start` on.
    buf: Vec<u8>,
    start: usize,
    limits: &'a Limits,
}

impl Conn<'_> {
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Between requests, gives back what a large request made the buffer hold.
    fn shrink(&mut self) {
        if self.buf.capacity() > 2 * READ_CHUNK {
            self.buf.shrink_to(READ_CHUNK);
        }
    }

    /// Reads what has come, waiting until `deadline` at most; `Ok(0)` when
    /// the peer closed.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        self.buf.drain(..self.start);
        self.start = 0;
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            let wait = remaining(deadline, Instant::now()).ok_or(io::ErrorKind::TimedOut)?;
            self.stream.set_read_timeout(Some(wait))?;
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes all of `bytes` within the write deadline.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let deadline = Phase::Writing.deadline(self.limits, Instant::now());
        let mut left = bytes;
        while !left.is_empty() {
            let wait = remaining(deadline, Instant::now()).ok_or(io::ErrorKind::TimedOut)?;
            self.stream.set_write_timeout(Some(wait))?;
            match self.stream.write(left) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => left = &left[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads one request by `deadline`: the head, then (if the responder
    /// lets it through) the body.
    fn read_request(&mut self, deadline: Instant, responder: &dyn Responder) -> Incoming {
        let max_head = self.limits.max_head;
        let mut scanner = HeadScanner::default();
        let end = loop {
            if let Some(end) = scanner.scan(self.pending()) {
                break end;
            }
            if self.pending().len() > max_head {
                return ParseError::HeadTooLarge.into();
            }
            if !matches!(self.fill(deadline), Ok(n) if n > 0) {
                return Incoming::Closed;
            }
        };
        if end > max_head {
            return ParseError::HeadTooLarge.into();
        }
        let head = match parse_head(&self.pending()[..end], self.limits.max_headers) {
            Ok(head) => head,
            Err(e) => return e.into(),
        };
        self.consume(end);
        if let Some(early) = responder.check_head(&head) {
            return Incoming::Early(early);
        }
        let framing = match Framing::of(&head, self.limits.max_body) {
            Ok(framing) => framing,
            Err(e) => return e.into(),
        };
        match head.expects_continue() {
            Err(e) => return e.into(),
            Ok(true) if framing.has_body() => {
                if self.write(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
                    return Incoming::Closed;
                }
            }
            Ok(_) => {}
        }
        match self.read_body(framing, deadline) {
            Ok(body) => Incoming::Request(Request { head, body }),
            Err(Some(e)) => e.into(),
            Err(None) => Incoming::Closed,
        }
    }

    /// The body as framed, growing only as bytes arrive; `Err(None)` when
    /// the connection closed or the deadline passed first.
    fn read_body(
        &mut self,
        framing: Framing,
        deadline: Instant,
    ) -> Result<Vec<u8>, Option<ParseError>> {
        let mut body = Vec::new();
        let mut chunked = Chunked::new(self.limits.max_body, self.limits.max_head);
        loop {
            let done = match framing {
                Framing::Length(n) => {
                    let take = (n - body.len()).min(self.pending().len());
                    body.extend_from_slice(&self.pending()[..take]);
                    self.consume(take);
                    body.len() == n
                }
                Framing::Chunked => {
                    let used = chunked.feed(self.pending(), &mut body)?;
                    self.consume(used);
                    chunked.is_done()
                }
            };
            if done {
                return Ok(body);
            }
            if !matches!(self.fill(deadline), Ok(n) if n > 0) {
                return Err(None);
            }
        }
    }

    /// After an early answer: stops writing, then reads and drops what the
    /// client still sends, within [`LINGER_TIME`] and [`LINGER_BYTES`].
    fn linger(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER_TIME;
        let mut left = LINGER_BYTES;
        while left > 0 {
            self.buf.clear();
            self.start = 0;
            match self.fill(deadline) {
                Ok(n) if n > 0 => left = left.saturating_sub(n),
                _ => return,
            }
        }
    }
}
