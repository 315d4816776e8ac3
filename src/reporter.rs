//! The reporter thread: delivers each outcome (complete or fail) to the API,
//! retrying with backoff until it is delivered, the server says the task is
//! no longer ours (404/409/410), or the final drain deadline passes.

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{at, never, select, Receiver};

use crate::backoff::Backoff;
use crate::client::{ApiClient, Delivery};
use crate::connectivity::Connectivity;
use crate::metrics::Stats;
use crate::outcome::Outcome;
use crate::spool::Spool;

/// The reporter's inputs.
pub struct Reporter {
    /// The API.
    pub client: ApiClient,
    /// Outcomes from the processors, the poller and the supervisor.
    pub outcomes: Receiver<Outcome>,
    /// Receives the final deadline when the drain is over: deliver what is
    /// left until then, then return.
    pub finish: Receiver<Instant>,
    /// Where outcomes are kept until delivered, when a state directory is set.
    pub spool: Option<Spool>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// API reachability.
    pub connectivity: Arc<Connectivity>,
    /// Undelivered reports, read by the poller for backpressure.
    pub pending_count: Arc<AtomicUsize>,
}

impl Reporter {
    /// The reporter loop. `pending` holds outcomes left from an earlier run.
    pub fn run(mut self, mut pending: VecDeque<Outcome>) {
        let mut next_try = Instant::now();
        // Whether the last failed pass found the API down (rather than a
        // refusal of particular reports): then new outcomes wait their turn too.
        let mut api_down = false;
        let mut deadline: Option<Instant> = None;
        let mut inputs_open = true;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        loop {
            let timer = if pending.is_empty() {
                never()
            } else {
                at(next_try)
            };
            let outcomes = if inputs_open {
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
                    Ok(outcome) => {
                        self.accept(&mut pending, outcome);
                        if !api_down {
                            next_try = Instant::now();
                        }
                    }
                    Err(_) => inputs_open = false,
                },
                recv(finish) -> msg => deadline = Some(msg.unwrap_or_else(|_| Instant::now())),
                recv(timer) -> _ => {}
            }
            while let Ok(outcome) = self.outcomes.try_recv() {
                self.accept(&mut pending, outcome);
            }
            if deadline.is_some() && pending.is_empty() {
                return;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.give_up(&pending);
                return;
            }
            if Instant::now() >= next_try {
                if let Some((delay, outage)) = self.deliver(&mut pending, &mut backoff) {
                    next_try = Instant::now() + delay;
                    api_down = outage;
                }
            }
            self.pending_count.store(pending.len(), Relaxed);
            self.stats.reports_pending.store(pending.len(), Relaxed);
        }
    }

    fn accept(&mut self, pending: &mut VecDeque<Outcome>, outcome: Outcome) {
        if let Some(spool) = &mut self.spool {
            spool.append(&outcome);
            self.stats.spool_depth.store(spool.depth(), Relaxed);
        }
        // A newer outcome of the same task (a spooled one re-sent for a
        // redelivery) takes the older one's place.
        match pending.iter_mut().find(|o| o.task_id == outcome.task_id) {
            Some(older) => *older = outcome,
            None => pending.push_back(outcome),
        }
        self.pending_count.store(pending.len(), Relaxed);
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
        if let Some(spool) = &self.spool {
            // One fsync for everything appended since the last send.
            spool.sync();
        }
        let mut refused = 0;
        while let Some(outcome) = pending.front() {
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
                        spool.mark_sent(&outcome.task_id);
                        self.stats.spool_depth.store(spool.depth(), Relaxed);
                    }
                    pending.pop_front();
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
