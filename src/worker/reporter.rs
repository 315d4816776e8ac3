//! The reporter: delivers each outcome (complete or fail) to the API,
//! retrying with backoff until it is delivered, the server says the task is
//! no longer ours (404/409/410), or the final drain deadline passes.
//!
//! A few reporter threads share the outcome channel, each on its own
//! keep-alive connection: one report is one round trip, and a single thread
//! doing them one after another was the ceiling of the whole worker. A thread
//! whose send failed keeps its outcomes and backs off; it takes no new ones
//! until they are delivered, so the others carry on.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{at, never, select, Receiver};

use crate::backoff::Backoff;
use crate::client::{ApiClient, Delivery};
use crate::worker::connectivity::Connectivity;
use crate::worker::metrics::Stats;
use crate::worker::outbox::Backlog;
use crate::worker::outcome::Outcome;
use crate::worker::spool::Spool;

/// The reporter's inputs.
pub struct Reporter {
    /// The API.
    pub client: ApiClient,
    /// Outcomes from the processors, the poller and the supervisor.
    pub outcomes: Receiver<Outcome>,
    /// Receives the final deadline when the drain is over (one message per
    /// reporter thread): deliver what is left until then, then return.
    pub finish: Receiver<Instant>,
    /// Where outcomes are kept until delivered, when a state directory is set.
    pub spool: Option<Spool>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// API reachability.
    pub connectivity: Arc<Connectivity>,
    /// What the poller reads for backpressure.
    pub backlog: Arc<Backlog>,
}

/// How many waiting outcomes one reporter thread takes at a time: a batch
/// shares one fsync of the spool, and the rest are left to the other threads.
const BATCH: usize = 8;

/// How many reporter threads a pool of `concurrency` processors gets: up to
/// 4, to overlap round trips to a distant API, but no more than the CPUs
/// (and at least 2): on a small box each extra thread only adds wake-ups,
/// and on 2 CPUs 2 reporters deliver a third more than 4 did.
pub fn threads_for(concurrency: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    concurrency.clamp(1, 4).min(cpus.max(2))
}

impl Reporter {
    /// The reporter loop. `pending` holds outcomes left from an earlier run.
    pub fn run(mut self, mut pending: VecDeque<Outcome>) {
        self.backlog.hold(pending.len());
        let mut next_try = Instant::now();
        let mut deadline: Option<Instant> = None;
        let mut inputs_open = true;
        let mut counted_retrying = false;
        // Whether the last failed pass found the API down (not a refusal of
        // particular reports): then new outcomes wait for the retry too.
        let mut api_down = false;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        loop {
            // Outcomes are delivered as soon as they are taken, so a
            // non-empty `pending` means a failed send waiting for its retry.
            let retrying = !pending.is_empty();
            if retrying != counted_retrying {
                counted_retrying = retrying;
                self.backlog.set_retrying(retrying);
            }
            // A retry waits for its time, but never past the drain's deadline.
            let wake = deadline.map_or(next_try, |d| next_try.min(d));
            let timer = if retrying { at(wake) } else { never() };
            let outcomes = if inputs_open && !retrying {
                self.outcomes.clone()
            } else {
                never()
            };
            let finish = if deadline.is_none() {
                self.finish.clone()
            } else {
                never()
            };
            select! {
                recv(outcomes) -> msg => match msg {
                    Ok(outcome) => self.accept(&mut pending, outcome),
                    Err(_) => inputs_open = false,
                },
                recv(finish) -> msg => deadline = Some(msg.unwrap_or_else(|_| Instant::now())),
                recv(timer) -> _ => {}
            }
            // At the end of the drain every thread takes all that is left.
            let take = if deadline.is_some() {
                usize::MAX
            } else if retrying {
                0
            } else {
                BATCH
            };
            let mut taken = 0;
            while taken < take {
                match self.outcomes.try_recv() {
                    Ok(outcome) => self.accept(&mut pending, outcome),
                    Err(_) => break,
                }
                taken += 1;
            }
            if taken > 0 && !api_down {
                // New outcomes go out now; a refusal of older ones is no reason to wait.
                next_try = Instant::now();
            }
            if deadline.is_some() && pending.is_empty() {
                return;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.give_up(&pending);
                return;
            }
            if Instant::now() >= next_try {
                match self.deliver(&mut pending, &mut backoff) {
                    Some((delay, outage)) => {
                        next_try = Instant::now() + delay;
                        api_down = outage;
                    }
                    None => api_down = false,
                }
            }
            self.stats
                .reports_pending
                .store(self.backlog.held(), Relaxed);
        }
    }

    fn accept(&mut self, pending: &mut VecDeque<Outcome>, outcome: Outcome) {
        // A newer outcome of the same task (a spooled one re-sent for a
        // redelivery) takes the older one's place.
        match pending.iter_mut().find(|o| o.task_id == outcome.task_id) {
            Some(older) => *older = outcome,
            None => {
                pending.push_back(outcome);
                self.backlog.hold(1);
            }
        }
    }

    /// Sends pending reports in order. An outage stops the pass at once; a
    /// refusal of one report moves it to the back, so that it does not hold
    /// up the others. When the pass stops, returns how long to wait and
    /// whether the API was down.
    fn deliver(
        &mut self,
        pending: &mut VecDeque<Outcome>,
        backoff: &mut Backoff,
    ) -> Option<(Duration, bool)> {
        let mut refused = 0;
        while let Some(outcome) = pending.front() {
            if self.spool.as_ref().is_some_and(|s| !s.is_current(outcome)) {
                // A redelivery answered from the spool put a newer copy in the queue.
                log::debug!(
                    "task {} ({}): superseded report skipped",
                    outcome.task_id,
                    outcome.task_type
                );
                pending.pop_front();
                self.backlog.release();
                continue;
            }
            match self
                .client
                .report(&outcome.task_id, outcome.kind, &outcome.body)
            {
                Ok(delivery) => {
                    self.connectivity.success();
                    backoff.reset();
                    if let Delivery::Gone(status) = delivery {
                        self.stats.reports_gone.fetch_add(1, Relaxed);
                        log::warn!(
                            "task {} ({}): report dropped: the server answered {status}, the task is no longer ours",
                            outcome.task_id,
                            outcome.task_type
                        );
                    }
                    if let Some(spool) = &mut self.spool {
                        spool.mark_sent(outcome);
                        self.stats.spool_depth.store(spool.depth(), Relaxed);
                    }
                    pending.pop_front();
                    self.backlog.release();
                }
                Err(err) => {
                    self.stats.report_retries.fetch_add(1, Relaxed);
                    let what = format!(
                        "report for task {} ({})",
                        outcome.task_id, outcome.task_type
                    );
                    self.connectivity.failure(&what, &err);
                    let outage = err.is_outage() || err.retry_after().is_some();
                    if !outage {
                        // A refusal of this one report: let the others go first.
                        refused += 1;
                        pending.rotate_left(1);
                        if refused < pending.len() {
                            continue;
                        }
                    }
                    let delay = backoff
                        .next_delay()
                        .max(err.retry_after().unwrap_or_default());
                    return Some((delay, outage));
                }
            }
        }
        None
    }

    fn give_up(&self, pending: &VecDeque<Outcome>) {
        let kept = if self.spool.is_some() {
            "kept in the spool for the next start"
        } else {
            "lost: no STATE_DIR is set"
        };
        for outcome in pending {
            log::error!(
                "task {} ({}): report not delivered before exit; {kept}",
                outcome.task_id,
                outcome.task_type
            );
        }
    }
}
