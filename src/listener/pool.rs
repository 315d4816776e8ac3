//! The handler threads: a fixed number of them take complete requests (and
//! parked requests woken again) from one queue and run the responder, so
//! that a slow store never stalls the event loop, and the number of threads
//! does not grow with the number of connections.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver, RecvTimeoutError, Sender};

use super::answer::Job;

/// Running handler threads; [`Pool::stop`] ends them.
pub struct Pool {
    /// Dropped to tell every thread to stop.
    stop: Option<Sender<()>>,
    /// Disconnected once every thread has ended.
    ended: Receiver<()>,
}

impl Pool {
    /// Starts `threads` (at least one) threads named `name` on `jobs`.
    pub fn start(name: &str, threads: usize, jobs: &Receiver<Job>) -> io::Result<Pool> {
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let (ended_tx, ended_rx) = bounded::<()>(0);
        for _ in 0..threads.max(1) {
            let (jobs, stop, ended) = (jobs.clone(), stop_rx.clone(), ended_tx.clone());
            thread::Builder::new()
                .name(name.to_string())
                .spawn(move || {
                    work(&jobs, &stop);
                    drop(ended);
                })?;
        }
        Ok(Pool {
            stop: Some(stop_tx),
            ended: ended_rx,
        })
    }

    /// Tells every thread to stop once its job is done, and waits for them
    /// until `deadline` at most (a responder may be waiting on a store).
    pub fn stop(&mut self, deadline: Instant) {
        if self.stop.take().is_none() {
            return;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        // Nothing is ever sent: this returns when the last thread ended.
        if let Err(RecvTimeoutError::Timeout) = self.ended.recv_timeout(wait) {
            log::warn!("handler threads still busy after {wait:?}; not waiting for them");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop(Instant::now() + Duration::from_secs(5));
    }
}

fn work(jobs: &Receiver<Job>, stop: &Receiver<()>) {
    loop {
        select! {
            recv(jobs) -> job => match job {
                // A panic is the job's to answer (a request's job sends 500);
                // the thread lives on.
                Ok(job) => { let _ = catch_unwind(AssertUnwindSafe(job)); }
                Err(_) => return,
            },
            recv(stop) -> _ => return,
        }
    }
}
