//! One connection of the event loop, as a state machine over a non-blocking
//! socket: it reads what has come, writes what it can, and says what it
//! waits for next (bytes, room to write, or a handler's answer) and until
//! when (the deadline of its phase: idle, reading a request, writing an
//! answer, lingering). The key is checked from the head before any body is
//! read; pipelined requests are taken one at a time, in order.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use super::answer::Watch;
use super::epoll::Interest;
use super::limits::{Limits, Phase, LINGER_BYTES, LINGER_TIME, READ_CHUNK};
use super::parse::{parse_head, Chunked, Framing, Head, HeadScanner, ParseError};
use super::response::{Request, Response};
use super::Responder;

/// What the loop does after a connection made progress.
pub enum Step {
    /// Wait for [`Conn::interest`] until [`Conn::deadline`].
    Wait,
    /// Hand this request to a handler; the connection waits for its answer.
    Request(Request),
    /// Close the connection.
    Close,
}

/// One connection.
pub struct Conn {
    /// The socket, non-blocking.
    pub stream: TcpStream,
    /// Bytes read and not yet used, from `start` on.
    buf: Vec<u8>,
    start: usize,
    state: State,
    /// When the current phase ends; `None` while a handler has the request.
    deadline: Option<Instant>,
    /// What the connection waits for.
    interest: Interest,
    /// What the loop registered last, so that it changes it only when needed.
    pub registered: Interest,
    /// The request's watch, from its dispatch until its answer is written
    /// whole: told if the client hangs up before that.
    watch: Option<Arc<Watch>>,
}

enum State {
    /// Between requests.
    Idle,
    /// Reading a request: its head, then its body.
    Reading(Box<Reading>),
    /// A handler has the request; how to frame its answer.
    Busy(Framed),
    /// Writing an answer, then going on as `then` says.
    Writing {
        out: Vec<u8>,
        pos: usize,
        then: Then,
    },
    /// After an early answer: reading and dropping what the client still
    /// sends, up to this many bytes.
    Linger(usize),
}

#[derive(Default)]
struct Reading {
    scanner: HeadScanner,
    body: Option<Body>,
}

struct Body {
    head: Head,
    framing: Framing,
    bytes: Vec<u8>,
    chunked: Chunked,
}

/// How an answer goes on the wire.
#[derive(Clone, Copy)]
struct Framed {
    keep_alive: bool,
    http10: bool,
    head_only: bool,
}

#[derive(Clone, Copy)]
enum Then {
    KeepAlive,
    Close,
    Linger,
}

/// What reading from the socket gave.
enum Fill {
    Data,
    WouldBlock,
    Closed,
}

/// What parsing the bytes read so far gave.
enum Parsed {
    Request(Request, Framed),
    /// An answer from the head alone (a bad head, a refused key): send it,
    /// then linger and close.
    Early(Response),
    More,
    Closed,
}

impl From<ParseError> for Parsed {
    fn from(e: ParseError) -> Parsed {
        Parsed::Early(Response::error(e.status(), e.to_string()))
    }
}

impl Conn {
    /// A connection just accepted at `now`, idle until its first request.
    pub fn new(stream: TcpStream, now: Instant, limits: &Limits) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            start: 0,
            state: State::Idle,
            deadline: Some(Phase::Idle.deadline(limits, now)),
            interest: Interest::Read,
            registered: Interest::Read,
            watch: None,
        }
    }

    /// A handler has the request, which `watch` follows.
    pub fn dispatched(&mut self, watch: Arc<Watch>) {
        self.watch = Some(watch);
    }

    /// The request waits (a parked long poll): from now on a hang-up of
    /// the client ends it. Bytes pipelined behind it are left unread, so
    /// they are not mistaken for one.
    pub fn on_watch(&mut self) {
        if matches!(self.state, State::Busy(_)) {
            self.interest = Interest::Hangup;
        }
    }

    /// The watch of a request whose answer was not written whole, taken
    /// when the connection closes: its client has gone.
    pub fn unanswered(&mut self) -> Option<Arc<Watch>> {
        self.watch.take()
    }

    /// When the current phase ends.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// What the connection waits for.
    pub fn interest(&self) -> Interest {
        self.interest
    }

    /// Whether it waits for a request (and so may be evicted at the cap).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// The socket is ready (or `hung_up`): make what progress can be made.
    pub fn on_ready(
        &mut self,
        hung_up: bool,
        now: Instant,
        limits: &Limits,
        responder: &dyn Responder,
    ) -> Step {
        if hung_up && matches!(self.state, State::Busy(_)) {
            // Nobody to answer; without this, the hang-up would be reported again and again.
            return Step::Close;
        }
        self.drive(now, limits, responder)
    }

    /// The handler's answer came (`None`: it has none, close).
    pub fn on_answer(
        &mut self,
        answer: Option<Response>,
        now: Instant,
        limits: &Limits,
        responder: &dyn Responder,
    ) -> Step {
        let State::Busy(framed) = self.state else {
            return Step::Wait;
        };
        let Some(response) = answer else {
            self.watch = None;
            return Step::Close;
        };
        let out = response.encode(framed.keep_alive, framed.http10, framed.head_only);
        let then = if framed.keep_alive {
            Then::KeepAlive
        } else {
            Then::Close
        };
        self.start_writing(out, then, now, limits);
        self.drive(now, limits, responder)
    }

    fn start_writing(&mut self, out: Vec<u8>, then: Then, now: Instant, limits: &Limits) {
        self.state = State::Writing { out, pos: 0, then };
        self.deadline = Some(Phase::Writing.deadline(limits, now));
    }

    fn wait(&mut self, interest: Interest) -> Step {
        self.interest = interest;
        Step::Wait
    }

    /// Reads, parses and writes until the connection must wait.
    fn drive(&mut self, now: Instant, limits: &Limits, responder: &dyn Responder) -> Step {
        loop {
            match &mut self.state {
                State::Idle => {
                    if self.start == self.buf.len() {
                        match self.fill() {
                            Fill::Data => {}
                            Fill::WouldBlock => return self.wait(Interest::Read),
                            Fill::Closed => return Step::Close,
                        }
                    }
                    self.state = State::Reading(Box::default());
                    self.deadline = Some(Phase::Reading.deadline(limits, now));
                }
                State::Reading(_) => match self.parse(limits, responder) {
                    Parsed::Request(request, framed) => {
                        self.state = State::Busy(framed);
                        self.deadline = None;
                        self.interest = Interest::Nothing;
                        return Step::Request(request);
                    }
                    Parsed::Early(response) => {
                        let out = response.encode(false, false, false);
                        self.start_writing(out, Then::Linger, now, limits);
                    }
                    Parsed::More => match self.fill() {
                        Fill::Data => {}
                        Fill::WouldBlock => return self.wait(Interest::Read),
                        Fill::Closed => return Step::Close,
                    },
                    Parsed::Closed => return Step::Close,
                },
                // Watched or not, as the request asked.
                State::Busy(_) => return Step::Wait,
                State::Writing { out, pos, then } => {
                    while *pos < out.len() {
                        match (&self.stream).write(&out[*pos..]) {
                            Ok(0) => return Step::Close,
                            Ok(n) => *pos += n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                return self.wait(Interest::Write)
                            }
                            Err(_) => return Step::Close,
                        }
                    }
                    // Written whole: whatever happens next, the answer went out.
                    self.watch = None;
                    match *then {
                        Then::Close => return Step::Close,
                        Then::Linger => {
                            // Stop writing, so the client sees the answer end,
                            // but read on: closing with unread bytes would reset
                            // the connection and could destroy the answer.
                            let _ = self.stream.shutdown(Shutdown::Write);
                            self.state = State::Linger(LINGER_BYTES);
                            self.deadline = Some(now + LINGER_TIME);
                        }
                        Then::KeepAlive => {
                            self.state = State::Idle;
                            self.deadline = Some(Phase::Idle.deadline(limits, now));
                            self.shrink();
                        }
                    }
                }
                State::Linger(left) => {
                    let mut chunk = [0u8; READ_CHUNK];
                    match (&self.stream).read(&mut chunk) {
                        Ok(0) => return Step::Close,
                        Ok(n) if n >= *left => return Step::Close,
                        Ok(n) => *left -= n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            return self.wait(Interest::Read)
                        }
                        Err(_) => return Step::Close,
                    }
                }
            }
        }
    }

    /// Reads what has come into the buffer.
    fn fill(&mut self) -> Fill {
        self.buf.drain(..self.start);
        self.start = 0;
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            match (&self.stream).read(&mut chunk) {
                Ok(0) => return Fill::Closed,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Fill::Data;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Fill::WouldBlock,
                Err(_) => return Fill::Closed,
            }
        }
    }

    /// Uses `n` bytes of the buffer.
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
            self.buf.drain(..self.start);
            self.start = 0;
            self.buf.shrink_to(READ_CHUNK);
        }
    }

    /// Takes the request as far as the bytes read allow: the head (and,
    /// if the responder lets it through, the body).
    fn parse(&mut self, limits: &Limits, responder: &dyn Responder) -> Parsed {
        let State::Reading(reading) = &mut self.state else {
            return Parsed::More;
        };
        if reading.body.is_none() {
            let pending = &self.buf[self.start..];
            let Some(end) = reading.scanner.scan(pending) else {
                if pending.len() > limits.max_head {
                    return ParseError::HeadTooLarge.into();
                }
                return Parsed::More;
            };
            if end > limits.max_head {
                return ParseError::HeadTooLarge.into();
            }
            let head = match parse_head(&pending[..end], limits.max_headers) {
                Ok(head) => head,
                Err(e) => return e.into(),
            };
            if let Some(early) = responder.check_head(&head) {
                return Parsed::Early(early);
            }
            let framing = match Framing::of(&head, limits.max_body) {
                Ok(framing) => framing,
                Err(e) => return e.into(),
            };
            match head.expects_continue() {
                Err(e) => return e.into(),
                // One small write into a socket that has sent nothing yet:
                // a client whose buffer cannot take it is not worth waiting for.
                Ok(true) if framing.has_body() => {
                    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
                    if !matches!((&self.stream).write(CONTINUE), Ok(n) if n == CONTINUE.len()) {
                        return Parsed::Closed;
                    }
                }
                Ok(_) => {}
            }
            reading.body = Some(Body {
                head,
                framing,
                bytes: Vec::new(),
                chunked: Chunked::new(limits.max_body, limits.max_head),
            });
            self.start += end;
        }
        let Some(body) = reading.body.as_mut() else {
            return Parsed::More;
        };
        let pending = &self.buf[self.start..];
        let (used, done) = match body.framing {
            Framing::Length(n) => {
                let take = (n - body.bytes.len()).min(pending.len());
                body.bytes.extend_from_slice(&pending[..take]);
                (take, body.bytes.len() == n)
            }
            Framing::Chunked => match body.chunked.feed(pending, &mut body.bytes) {
                Ok(used) => (used, body.chunked.is_done()),
                Err(e) => return e.into(),
            },
        };
        if !done {
            self.consume(used);
            return Parsed::More;
        }
        let Some(body) = reading.body.take() else {
            return Parsed::More;
        };
        self.consume(used);
        let framed = Framed {
            keep_alive: body.head.keep_alive(),
            http10: body.head.http10,
            head_only: body.head.method == "HEAD",
        };
        let request = Request {
            head: body.head,
            body: body.bytes,
        };
        Parsed::Request(request, framed)
    }
}
