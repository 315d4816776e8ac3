//! Where every outcome goes, and the backlog rule: an outcome is made durable
//! in the spool, then queued for the reporters; while they cannot deliver and
//! too many wait, the poller stops claiming and `/ready` says so.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::worker::inflight::{InFlight, InFlightTask};
use crate::worker::metrics::Stats;
use crate::worker::outcome::Outcome;
use crate::worker::spool::Spool;

/// Above this many undelivered reports the poller stops claiming: running
/// more tasks whose results cannot be delivered only grows the backlog.
pub const REPORT_BACKLOG_LIMIT: usize = 64;

/// Whether reports fail to go out while too many wait (those the reporters
/// hold plus `queued` not yet taken): then claiming more work only grows what
/// could be lost to a crash. The poller and `/ready` judge by this one rule.
pub fn reports_backed_up(reports: &Backlog, queued: usize) -> bool {
    reports.is_retrying() && reports.held() + queued > REPORT_BACKLOG_LIMIT
}

/// The reporters' undelivered outcomes, shared with the poller: it stops
/// claiming while reports fail and too many wait, and only then (a busy
/// reporter that delivers is no reason to stop).
#[derive(Debug, Default)]
pub struct Backlog {
    held: AtomicUsize,
    retrying: AtomicUsize,
}

impl Backlog {
    /// Outcomes taken from the channel and not yet delivered.
    pub fn held(&self) -> usize {
        self.held.load(Relaxed)
    }

    /// Whether some reporter thread waits to retry a failed send.
    pub fn is_retrying(&self) -> bool {
        self.retrying.load(Relaxed) > 0
    }

    /// A reporter took `n` outcomes to deliver.
    pub(crate) fn hold(&self, n: usize) {
        self.held.fetch_add(n, Relaxed);
    }

    /// A reporter is done with one outcome (delivered, gone or superseded).
    pub(crate) fn release(&self) {
        self.held.fetch_sub(1, Relaxed);
    }

    /// A reporter thread starts (`true`) or stops (`false`) waiting to retry.
    pub(crate) fn set_retrying(&self, retrying: bool) {
        if retrying {
            self.retrying.fetch_add(1, Relaxed);
        } else {
            self.retrying.fetch_sub(1, Relaxed);
        }
    }
}

/// Where every outcome goes: into the spool, synced, and then to the
/// reporters. Whoever makes an outcome hands it over here, so once a handler
/// has returned, a crash cannot lose its result (with a state directory).
#[derive(Clone)]
pub struct Outbox {
    tx: Sender<Outcome>,
    spool: Option<Spool>,
    stats: Arc<Stats>,
}

impl Outbox {
    /// An outbox feeding `tx`, keeping outcomes in `spool` when there is one.
    pub fn new(tx: Sender<Outcome>, spool: Option<Spool>, stats: Arc<Stats>) -> Outbox {
        Outbox { tx, spool, stats }
    }

    /// Makes `outcome` durable, then queues it for delivery. Concurrent
    /// callers share fsyncs: a sync finds the others' appends already written.
    pub fn send(&self, mut outcome: Outcome) {
        if let Some(spool) = &self.spool {
            let seq = spool.append(&outcome);
            spool.sync();
            outcome.spool_seq = Some(seq);
        }
        let _ = self.tx.send(outcome);
    }

    /// Settles a task in flight with `outcome`: the one way an execution's
    /// outcome leaves, whoever made it (its processor, or the supervisor in
    /// its place). Only the party that wins [`InFlight::settle_with`] sends
    /// and counts it, so a task is reported and counted once; true for it.
    pub fn settle(
        &self,
        inflight: &InFlight,
        entry: &InFlightTask,
        outcome: Outcome,
        duration: Duration,
    ) -> bool {
        inflight.settle_with(entry, || self.finish(outcome, duration))
    }

    /// Counts `outcome` as a finished task, then sends it. For a task that
    /// never ran here (one claimed without a usable type) this is the whole
    /// hand-off; a task in flight goes through [`Outbox::settle`].
    pub fn finish(&self, outcome: Outcome, duration: Duration) {
        self.stats
            .record_outcome(&outcome.task_type, outcome.error_type.as_deref(), duration);
        self.send(outcome);
    }

    /// Queues an outcome again that a reporter took and could not keep (it
    /// is in the spool already, when there is one).
    pub(crate) fn requeue(&self, outcome: Outcome) {
        let _ = self.tx.send(outcome);
    }

    /// Outcomes queued and not yet taken by a reporter.
    pub(crate) fn len(&self) -> usize {
        self.tx.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_back_up_only_while_sends_fail_and_too_many_wait() {
        let backlog = Backlog::default();
        backlog.hold(REPORT_BACKLOG_LIMIT + 2);
        assert!(
            !reports_backed_up(&backlog, 0),
            "a busy reporter that delivers is no reason to stop"
        );
        backlog.set_retrying(true);
        assert!(reports_backed_up(&backlog, 0));
        backlog.release();
        backlog.release();
        assert!(!reports_backed_up(&backlog, 0), "at the limit, not past it");
        assert!(reports_backed_up(&backlog, 1), "queued outcomes count too");
        backlog.set_retrying(false);
        assert!(!reports_backed_up(&backlog, 1));
    }
}
