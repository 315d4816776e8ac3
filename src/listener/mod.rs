//! The HTTP/1.1 listener under the reference server and the health server,
//! built so that an unauthenticated client cannot exhaust it: a connection
//! cap that evicts the oldest idle connection, deadlines for each phase of
//! a connection, bounded heads and bodies, and a key checked from the head
//! before any body is read. One event-loop thread holds every connection;
//! a fixed pool of handler threads answers complete requests, so threads do
//! not grow with connections, and a request that must wait (a long poll)
//! holds no thread at all.
//!
//! - [`limits`]: the caps and deadlines, with their reasons.
//! - [`parse`]: heads, body framing and chunked bodies from bytes (pure).
//! - [`table`]: the open connections, the cap and idle eviction (pure).
//! - [`response`]: requests and answers, and an answer's bytes on the wire.
//! - [`connection`]: one connection as a state machine over a non-blocking
//!   socket, within the deadlines of its phases.
//! - [`event_loop`]: the thread that accepts, waits on readiness and
//!   deadlines, and moves connections on.
//! - [`epoll`]: the kernel's readiness and wake-up objects, behind safe calls.
//! - [`pool`]: the handler threads.
//! - [`answer`]: the way an answer goes back to the loop, now or later.

mod answer;
mod connection;
mod epoll;
mod event_loop;
pub(crate) mod limits;
pub(crate) mod parse;
mod pool;
pub(crate) mod response;
pub(crate) mod table;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;

pub use self::answer::Answer;
use self::answer::Back;
use self::epoll::Waker;
use self::event_loop::EventLoop;
pub use self::limits::{raise_open_file_limit, Limits};
pub use self::parse::Head;
use self::pool::Pool;
pub use self::response::{Request, Response};

/// What answers the requests of a listener.
pub trait Responder: Send + Sync {
    /// An answer from the head alone, sent before any body is read; the
    /// connection then closes. This is where a key is checked, so that a
    /// client without one cannot make the listener read (and hold) a body.
    /// Runs on the event loop: it must be quick and never block.
    fn check_head(&self, head: &Head) -> Option<Response> {
        let _ = head;
        None
    }

    /// Answers one request read in full, at once.
    fn respond(&self, request: Request) -> Response;

    /// Answers one request read in full, through `answer`: at once (what
    /// this does unless overridden), or later from another thread, for a
    /// request that waits for something (a parked long poll) without
    /// holding a handler thread meanwhile.
    fn serve(&self, request: Request, answer: Answer) {
        answer.send(self.respond(request));
    }
}

/// A listening HTTP server; [`Listener::stop`] (or drop) closes every connection.
pub struct Listener {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    back: Arc<Back>,
    event_loop: Option<JoinHandle<()>>,
    pool: Pool,
}

impl Listener {
    /// Serves `listener` with `responder` within `limits` until stopped;
    /// its threads are named `{name}-loop` (every connection) and
    /// `{name}-handler` (`limits.handler_threads` of them).
    pub fn start(
        listener: TcpListener,
        name: &str,
        limits: Limits,
        responder: Arc<dyn Responder>,
    ) -> io::Result<Listener> {
        let (jobs_tx, jobs_rx) = unbounded();
        let (done_tx, done_rx) = unbounded();
        let back = Arc::new(Back {
            done: done_tx,
            waker: Waker::new()?,
            jobs: jobs_tx,
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let addr = listener.local_addr()?;
        let pool = Pool::start(&format!("{name}-handler"), limits.handler_threads, &jobs_rx)?;
        let event_loop = EventLoop::new(
            listener,
            limits,
            responder,
            Arc::clone(&back),
            done_rx,
            Arc::clone(&stopping),
        )?;
        let event_loop = thread::Builder::new()
            .name(format!("{name}-loop"))
            .spawn(move || event_loop.run())?;
        Ok(Listener {
            addr,
            stopping,
            back,
            event_loop: Some(event_loop),
            pool,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection, and waits (bounded) for
    /// the handler threads to finish what they run.
    pub fn stop(&mut self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        self.back.waker.wake();
        if let Some(event_loop) = self.event_loop.take() {
            let _ = event_loop.join();
        }
        self.pool.stop(Instant::now() + Duration::from_secs(5));
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}
