//! The way back from a handler thread to the event loop: an [`Answer`]
//! carries one request's response to the loop, which writes it without
//! blocking. A request that must wait (a parked long poll) keeps its
//! `Answer` and sends it later, from whatever thread completes it; it may
//! ask the loop to watch its client meanwhile, and learns when it has gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;

use super::epoll::Waker;
use super::response::Response;

/// Work for a handler thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// What every answer shares: where responses go, how the loop is woken,
/// and where work for the handler threads goes.
pub struct Back {
    /// A connection's id and what its handler has to say.
    pub done: Sender<(u64, Event)>,
    /// Wakes the loop to take them.
    pub waker: Waker,
    /// The handler threads' queue.
    pub jobs: Sender<Job>,
}

/// What a handler sends the loop about a connection.
pub enum Event {
    /// The response; `None` closes the connection.
    Answer(Option<Response>),
    /// The request waits: watch its client for a hang-up meanwhile.
    Watch,
}

impl Back {
    fn deliver(&self, conn: u64, event: Event) {
        // A closed channel means the listener stopped: nobody to answer.
        if self.done.send((conn, event)).is_ok() {
            self.waker.wake();
        }
    }
}

/// What the loop and a request share about its client: whether it hung up
/// before its answer was written, and what to run when it does.
#[derive(Default)]
pub struct Watch {
    gone: AtomicBool,
    on_gone: Mutex<Option<Job>>,
}

impl Watch {
    /// The client hung up before its answer was written: marks it gone and
    /// runs what the request left for that on a handler thread (never on
    /// the loop, which must not wait for a store).
    pub fn hang_up(&self, jobs: &Sender<Job>) {
        self.gone.store(true, Ordering::SeqCst);
        if let Some(job) = self.take() {
            // Refused only once the listener stopped: nothing left to tidy.
            let _ = jobs.send(job);
        }
    }

    fn take(&self) -> Option<Job> {
        self.on_gone
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// Where the response to one request goes. Clones share it: the first
/// [`Answer::send`] is the response, later ones are ignored, and a request
/// whose every clone is dropped without a response has its connection
/// closed, so that no connection waits forever for a lost answer.
#[derive(Clone)]
pub struct Answer(Arc<Slot>);

struct Slot {
    conn: u64,
    sent: AtomicBool,
    back: Arc<Back>,
    watch: Arc<Watch>,
}

impl Answer {
    /// The answer to the request on connection `conn`.
    pub(super) fn new(conn: u64, back: Arc<Back>) -> Answer {
        Answer(Arc::new(Slot {
            conn,
            sent: AtomicBool::new(false),
            back,
            watch: Arc::default(),
        }))
    }

    /// What the loop keeps to tell this request that its client hung up.
    pub(super) fn watch(&self) -> Arc<Watch> {
        Arc::clone(&self.0.watch)
    }

    /// Sends `response` to the client (once: later calls do nothing).
    pub fn send(&self, response: Response) {
        if !self.0.sent.swap(true, Ordering::SeqCst) {
            self.0
                .back
                .deliver(self.0.conn, Event::Answer(Some(response)));
        }
    }

    /// For a request that waits: the loop watches its client from now on,
    /// and if it hangs up (closes, resets) before the answer is written,
    /// closes the connection and runs `on_gone` on a handler thread. Call
    /// it before the request can be answered from another thread.
    pub fn watch_hang_up(&self, on_gone: impl FnOnce() + Send + 'static) {
        let watch = &self.0.watch;
        *watch.on_gone.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(on_gone));
        if watch.gone.load(Ordering::SeqCst) {
            // Closed meanwhile (a reset is noticed even unwatched).
            if let Some(job) = watch.take() {
                job();
            }
            return;
        }
        self.0.back.deliver(self.0.conn, Event::Watch);
    }

    /// Whether the client hung up before its answer was written: then
    /// nobody will read it.
    pub fn client_gone(&self) -> bool {
        self.0.watch.gone.load(Ordering::SeqCst)
    }

    /// Runs `f` with this answer on a handler thread: how a parked request
    /// is completed from a thread that must not do the work itself (one
    /// that holds a lock, or the loop). Cheap and never blocks.
    pub fn resume(&self, f: impl FnOnce(Answer) + Send + 'static) {
        let answer = self.clone();
        // Refused only once the listener stopped; the answer is dropped then.
        let _ = self.0.back.jobs.send(Box::new(move || f(answer)));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.sent.load(Ordering::SeqCst) {
            self.back.deliver(self.conn, Event::Answer(None));
        }
    }
}
