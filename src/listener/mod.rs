//! The HTTP/1.1 listener under the reference server and the health server,
//! built so that an unauthenticated client cannot exhaust it: a connection
//! cap that evicts the oldest idle connection, deadlines for each phase of
//! a connection, bounded heads and bodies, and a key checked from the head
//! before any body is read.
//!
//! - [`limits`]: the caps and deadlines, with their reasons.
//! - [`parse`]: heads, body framing and chunked bodies from bytes (pure).
//! - [`table`]: the open connections, the cap and idle eviction (pure).
//! - [`response`]: requests and answers, and an answer's bytes on the wire.
//! - [`connection`]: one connection on its own thread, blocking I/O within
//!   the deadlines. Only this file and the accept loop below know the I/O
//!   model; the rest serves a readiness-based one as well.

mod connection;
pub(crate) mod limits;
pub(crate) mod parse;
pub(crate) mod response;
pub(crate) mod table;

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use self::limits::Limits;
pub use self::parse::Head;
pub use self::response::{Request, Response};
use self::table::{Admitted, RateLimit, Table};

/// Connection threads need little stack: JSON nesting is capped by the parser.
const STACK_SIZE: usize = 512 * 1024;

/// What answers the requests of a listener.
pub trait Responder: Send + Sync {
    /// An answer from the head alone, sent before any body is read; the
    /// connection then closes. This is where a key is checked, so that a
    /// client without one cannot make the listener read (and hold) a body.
    fn check_head(&self, head: &Head) -> Option<Response> {
        let _ = head;
        None
    }

    /// Answers one request read in full.
    fn respond(&self, request: Request) -> Response;
}

/// What the accept loop and the connection threads share.
struct Shared {
    addr: SocketAddr,
    limits: Limits,
    responder: Arc<dyn Responder>,
    table: Mutex<Table<TcpStream>>,
    /// Signalled when a connection leaves the table, for [`Listener::stop`].
    closed: Condvar,
    cap_log: Mutex<RateLimit>,
    stopping: AtomicBool,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table<TcpStream>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn busy(&self, id: u64) -> bool {
        self.table().busy(id)
    }

    fn idle(&self, id: u64) {
        self.table().idle(id, Instant::now());
    }

    fn end(&self, id: u64) {
        self.table().remove(id);
        self.closed.notify_all();
    }

    /// Says, at most once per [`limits::CAP_LOG_PERIOD`], that the cap was reached.
    fn log_cap(&self, outcome: &str) {
        let hit = self
            .cap_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .hit(Instant::now());
        if let Some(quiet) = hit {
            let more = match quiet {
                0 => String::new(),
                n => format!(" ({n} more times since the last notice)"),
            };
            log::warn!(
                "{}: {} connections open, the cap: {outcome}{more}",
                self.addr,
                self.limits.max_connections
            );
        }
    }
}

/// A listening HTTP server; [`Listener::stop`] (or drop) closes every connection.
pub struct Listener {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Listener {
    /// Serves `listener` with `responder` within `limits` until stopped;
    /// its threads are named `{name}-accept` and `{name}-conn`.
    pub fn start(
        listener: TcpListener,
        name: &str,
        limits: Limits,
        responder: Arc<dyn Responder>,
    ) -> io::Result<Listener> {
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            table: Mutex::new(Table::new(limits.max_connections)),
            limits,
            responder,
            closed: Condvar::new(),
            cap_log: Mutex::new(RateLimit::new(limits::CAP_LOG_PERIOD)),
            stopping: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        let conn_name = format!("{name}-conn");
        let acceptor = thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || accept_loop(&listener, &accepting, &conn_name))?;
        Ok(Listener {
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Stops accepting, closes every connection and waits (bounded) for
    /// their threads to end.
    pub fn stop(&mut self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the blocking accept() with a connection of our own.
        let mut wake = self.addr();
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut table = self.shared.table();
        for stream in table.handles() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        while table.len() > 0 {
            let Some(wait) = limits::remaining(deadline, Instant::now()) else {
                break;
            };
            table = match self.shared.closed.wait_timeout(table, wait) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, conn_name: &str) {
    for incoming in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match incoming {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors and the like: wait a little instead of spinning.
                log::warn!("{}: accept failed: {e}", shared.addr);
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let admitted = shared.table().admit(handle, Instant::now());
        let Ok(Admitted { id, evicted }) = admitted else {
            shared.log_cap("none is idle, so a new one was refused with 503");
            refuse(stream);
            continue;
        };
        if let Some(old) = evicted {
            let _ = old.shutdown(Shutdown::Both);
            shared.log_cap("closed the one idle longest to admit a new one");
        }
        let serving = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name(conn_name.to_string())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                connection::serve(stream, id, &serving);
                serving.end(id);
            });
        if let Err(e) = spawned {
            log::warn!("{}: cannot start a connection thread: {e}", shared.addr);
            shared.end(id);
        }
    }
}

/// Answers 503 without ever blocking the accept loop: one non-blocking
/// write into an empty socket buffer.
fn refuse(mut stream: TcpStream) {
    let busy = Response::error(503, "too many connections").with_header("Retry-After", "1");
    if stream.set_nonblocking(true).is_ok() {
        let _ = stream.write(&busy.encode(false, false, false));
    }
    let _ = stream.shutdown(Shutdown::Write);
}
