//! The way back from a handler thread to the event loop: an [`Answer`]
//! carries one request's response to the loop, which writes it without
//! blocking. A request that must wait (a parked long poll) keeps its
//! `Answer` and sends it later, from whatever thread completes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::epoll::Waker;
use super::response::Response;

/// Work for a handler thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// What every answer shares: where responses go, how the loop is woken,
/// and where work for the handler threads goes.
pub struct Back {
    /// A connection's id and its response; `None` closes the connection.
    pub done: Sender<(u64, Option<Response>)>,
    /// Wakes the loop to take them.
    pub waker: Waker,
    /// The handler threads' queue.
    pub jobs: Sender<Job>,
}

impl Back {
    fn deliver(&self, conn: u64, response: Option<Response>) {
        // A closed channel means the listener stopped: nobody to answer.
        if self.done.send((conn, response)).is_ok() {
            self.waker.wake();
        }
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
}

impl Answer {
    /// The answer to the request on connection `conn`.
    pub(super) fn new(conn: u64, back: Arc<Back>) -> Answer {
        Answer(Arc::new(Slot {
            conn,
            sent: AtomicBool::new(false),
            back,
        }))
    }

    /// Sends `response` to the client (once: later calls do nothing).
    pub fn send(&self, response: Response) {
        if !self.0.sent.swap(true, Ordering::SeqCst) {
            self.0.back.deliver(self.0.conn, Some(response));
        }
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
            self.back.deliver(self.conn, None);
        }
    }
}
