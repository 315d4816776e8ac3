//! The event loop: one thread holds the listening socket and every
//! connection (idle, reading, writing, or waiting for a handler) and waits
//! on epoll until one is ready or the nearest deadline passes; there is no
//! periodic tick, so an idle listener never wakes. Complete requests go to
//! the handler threads; their answers come back through the waker.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::answer::{Answer, Back, Event};
use super::connection::{Conn, Step};
use super::epoll::{Epoll, Interest, Ready};
use super::limits::{self, Limits};
use super::response::{Request, Response};
use super::table::{Admitted, RateLimit, Table};
use super::Responder;

/// The epoll key of the listening socket (connection ids count up from 1).
const LISTENER: u64 = u64::MAX;
/// The epoll key of the waker.
const WAKER: u64 = u64::MAX - 1;
/// Readiness reports taken per wait.
const BATCH: usize = 256;
/// Connections accepted per readiness report, so that a flood of new ones
/// does not starve those already open.
const ACCEPT_BATCH: usize = 64;
/// After accept fails (out of descriptors), how long the loop stops accepting
/// instead of spinning on a socket that stays readable.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
/// Connections the kernel queues before the loop accepts them. std's
/// `TcpListener::bind` asks for 128, which a burst of connections fills
/// while the loop waits for a core on a busy machine; past it the kernel
/// drops new SYNs, and a client's connect then waits a second or more for
/// its retransmit even though the loop is not stuck. The kernel caps this
/// at `net.core.somaxconn` (4096 by default since Linux 5.4).
const LISTEN_BACKLOG: i32 = 4096;

/// The loop's state; [`EventLoop::run`] owns it on its thread.
pub struct EventLoop {
    listener: TcpListener,
    addr: SocketAddr,
    epoll: Epoll,
    limits: Limits,
    responder: Arc<dyn Responder>,
    back: Arc<Back>,
    answers: Receiver<(u64, Event)>,
    table: Table<Conn>,
    /// Every connection's current deadline, nearest first.
    deadlines: BTreeSet<(Instant, u64)>,
    accept_paused_until: Option<Instant>,
    cap_log: RateLimit,
    accept_log: RateLimit,
    stopping: Arc<AtomicBool>,
}

/// What moved a connection.
enum Input {
    Ready { hung_up: bool },
    Answer(Option<Response>),
}

impl EventLoop {
    /// A loop over `listener` (made non-blocking here).
    pub fn new(
        listener: TcpListener,
        limits: Limits,
        responder: Arc<dyn Responder>,
        back: Arc<Back>,
        answers: Receiver<(u64, Event)>,
        stopping: Arc<AtomicBool>,
    ) -> io::Result<EventLoop> {
        listener.set_nonblocking(true)?;
        // Listening again on a listening socket only changes its backlog.
        rustix::net::listen(&listener, LISTEN_BACKLOG)?;
        let epoll = Epoll::new(BATCH)?;
        epoll.add(&listener, LISTENER, Interest::Read)?;
        epoll.add(back.waker.fd(), WAKER, Interest::Read)?;
        Ok(EventLoop {
            addr: listener.local_addr()?,
            listener,
            epoll,
            table: Table::new(limits.max_connections),
            limits,
            responder,
            back,
            answers,
            deadlines: BTreeSet::new(),
            accept_paused_until: None,
            cap_log: RateLimit::new(limits::CAP_LOG_PERIOD),
            accept_log: RateLimit::new(limits::CAP_LOG_PERIOD),
            stopping,
        })
    }

    /// Serves until the stop flag is set (and the waker woken); dropping
    /// the loop then closes every connection.
    pub fn run(mut self) {
        let mut ready = Vec::with_capacity(BATCH);
        while !self.stopping.load(Ordering::SeqCst) {
            let timeout = self.timeout(Instant::now());
            ready.clear();
            if let Err(e) = self.epoll.wait(timeout, &mut ready) {
                log::error!("{}: waiting for sockets failed: {e}", self.addr);
                std::thread::sleep(ACCEPT_PAUSE);
                continue;
            }
            for &Ready { key, hung_up } in &ready {
                match key {
                    LISTENER => self.accept(),
                    WAKER => self.take_answers(),
                    id => self.progress(id, Input::Ready { hung_up }),
                }
            }
            self.expire(Instant::now());
        }
    }

    /// How long the next wait may last: until the nearest deadline, forever
    /// when there is none.
    fn timeout(&self, now: Instant) -> Option<Duration> {
        let nearest = self.deadlines.first().map(|&(at, _)| at);
        [nearest, self.accept_paused_until]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Closes the connections whose phase ran out; accepts again after a pause.
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(conn) = self.table.remove(id) {
                self.close(conn);
            }
        }
        if self.accept_paused_until.is_some_and(|at| at <= now) {
            self.accept_paused_until = None;
            if let Err(e) = self.epoll.modify(&self.listener, LISTENER, Interest::Read) {
                log::error!("{}: cannot accept again: {e}", self.addr);
            }
        }
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    if let Some(quiet) = self.accept_log.hit(Instant::now()) {
                        log::warn!("{}: accept failed: {e}{}", self.addr, more(quiet));
                    }
                    let _ = self
                        .epoll
                        .modify(&self.listener, LISTENER, Interest::Nothing);
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream) {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let now = Instant::now();
        let conn = Conn::new(stream, now, &self.limits);
        let Admitted { id, evicted } = match self.table.admit(conn, now) {
            Ok(admitted) => admitted,
            Err(conn) => {
                self.log_cap("none is idle, so a new one was refused with 503");
                refuse(conn.stream);
                return;
            }
        };
        if let Some((old_id, old)) = evicted {
            self.forget(old_id, &old);
            let _ = old.stream.shutdown(Shutdown::Both);
            self.log_cap("closed the one idle longest to admit a new one");
        }
        let Some(conn) = self.table.get_mut(id) else {
            return;
        };
        if let Err(e) = self.epoll.add(&conn.stream, id, Interest::Read) {
            log::warn!("{}: cannot watch a new connection: {e}", self.addr);
            self.table.remove(id);
            return;
        }
        if let Some(at) = conn.deadline() {
            self.deadlines.insert((at, id));
        }
    }

    /// Takes out what the loop keeps about a connection that is closing.
    fn forget(&mut self, id: u64, conn: &Conn) {
        self.epoll.delete(&conn.stream);
        if let Some(at) = conn.deadline() {
            self.deadlines.remove(&(at, id));
        }
    }

    /// Closes a connection taken out of the table; a request whose answer
    /// was not written whole learns that its client has gone.
    fn close(&self, mut conn: Conn) {
        self.epoll.delete(&conn.stream);
        if let Some(watch) = conn.unanswered() {
            watch.hang_up(&self.back.jobs);
        }
    }

    fn take_answers(&mut self) {
        self.back.waker.reset();
        while let Ok((id, event)) = self.answers.try_recv() {
            match event {
                Event::Answer(answer) => self.progress(id, Input::Answer(answer)),
                Event::Watch => self.watch(id),
            }
        }
    }

    /// Watches the client of a request that waits for a hang-up.
    fn watch(&mut self, id: u64) {
        let Some(conn) = self.table.get_mut(id) else {
            return;
        };
        conn.on_watch();
        let interest = conn.interest();
        if interest != conn.registered {
            if self.epoll.modify(&conn.stream, id, interest).is_err() {
                if let Some(conn) = self.table.remove(id) {
                    self.close(conn);
                }
                return;
            }
            conn.registered = interest;
        }
    }

    /// Moves connection `id` on, then brings what the loop keeps about it
    /// (its interest, its deadline, idle or not) up to date.
    fn progress(&mut self, id: u64, input: Input) {
        let now = Instant::now();
        let Some(conn) = self.table.get_mut(id) else {
            // Closed meanwhile: a late answer has nobody to go to.
            return;
        };
        let was_idle = conn.is_idle();
        let old_deadline = conn.deadline();
        let step = match input {
            Input::Ready { hung_up } => conn.on_ready(hung_up, now, &self.limits, &*self.responder),
            Input::Answer(answer) => conn.on_answer(answer, now, &self.limits, &*self.responder),
        };
        let request = match step {
            Step::Close => {
                if let Some(conn) = self.table.remove(id) {
                    self.close(conn);
                }
                if let Some(at) = old_deadline {
                    self.deadlines.remove(&(at, id));
                }
                return;
            }
            Step::Request(request) => {
                let answer = Answer::new(id, Arc::clone(&self.back));
                conn.dispatched(answer.watch());
                Some((answer, request))
            }
            Step::Wait => None,
        };
        let (interest, deadline, idle) = (conn.interest(), conn.deadline(), conn.is_idle());
        if interest != conn.registered {
            if self.epoll.modify(&conn.stream, id, interest).is_err() {
                if let Some(at) = old_deadline {
                    self.deadlines.remove(&(at, id));
                }
                if let Some(conn) = self.table.remove(id) {
                    self.close(conn);
                }
                return;
            }
            conn.registered = interest;
        }
        if deadline != old_deadline {
            if let Some(at) = old_deadline {
                self.deadlines.remove(&(at, id));
            }
            if let Some(at) = deadline {
                self.deadlines.insert((at, id));
            }
        }
        match (was_idle, idle) {
            (true, false) => {
                self.table.busy(id);
            }
            (false, true) => self.table.idle(id, now),
            _ => {}
        }
        if let Some((answer, request)) = request {
            self.dispatch(answer, request);
        }
    }

    /// Hands a request to the handler threads.
    fn dispatch(&self, answer: Answer, request: Request) {
        let responder = Arc::clone(&self.responder);
        // Refused only when the listener stops; the answer then closes the connection.
        let _ = self.back.jobs.send(Box::new(move || {
            let on_panic = answer.clone();
            let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                responder.serve(request, answer)
            }));
            if served.is_err() {
                on_panic.send(Response::error(500, "internal error"));
            }
        }));
    }

    /// Says, at most once per [`limits::CAP_LOG_PERIOD`], that the cap was reached.
    fn log_cap(&mut self, outcome: &str) {
        if let Some(quiet) = self.cap_log.hit(Instant::now()) {
            log::warn!(
                "{}: {} connections open, the cap: {outcome}{}",
                self.addr,
                self.limits.max_connections,
                more(quiet)
            );
        }
    }
}

fn more(quiet: u64) -> String {
    match quiet {
        0 => String::new(),
        n => format!(" ({n} more times since the last notice)"),
    }
}

/// Answers 503 without ever blocking the loop: one non-blocking write into
/// an empty socket buffer.
fn refuse(mut stream: TcpStream) {
    let busy = Response::error(503, "too many connections").with_header("Retry-After", "1");
    let _ = stream.write(&busy.encode(false, false, false));
    let _ = stream.shutdown(Shutdown::Write);
}
