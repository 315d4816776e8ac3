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
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{at, bounded, never, select, Receiver, Sender};

use crate::backoff::Backoff;
use crate::client::{build_agent, ApiClient, Delivery};
use crate::error::Error;
use crate::worker::liveness::Thread;
use crate::worker::outcome::Outcome;
use crate::worker::{spawn_thread, WorkerState};

/// The reporter threads, and what it takes to end them.
pub(crate) struct Reporters {
    threads: Vec<JoinHandle<()>>,
    /// One final deadline per thread.
    finish: Sender<Instant>,
}

impl Reporters {
    /// Starts the reporter threads (`taskworker-reporter-N`, as many as
    /// [`threads_for`] says), which deliver what comes on `outcomes`. The
    /// first one delivers what an earlier run `left` before its thread
    /// starts, so before any claim; what does not go out stays with it for
    /// its retries.
    pub(crate) fn spawn(
        shared: &Arc<WorkerState>,
        outcomes: Receiver<Outcome>,
        left: Vec<Outcome>,
    ) -> Result<Reporters, Error> {
        let count = threads_for(shared.config.concurrent_tasks);
        let (finish_tx, finish_rx) = bounded(count);
        let mut left = Some(left);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            // Each reporter has its own agent, so that they do not contend
            // for one connection pool's lock on every report.
            let client = ApiClient::for_config(build_agent(&shared.config)?, &shared.config);
            let mut reporter = Reporter {
                shared: shared.clone(),
                client,
                outcomes: outcomes.clone(),
                finish: finish_rx.clone(),
                pending: VecDeque::new(),
                backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(30)),
                next_try: Instant::now(),
                api_down: false,
            };
            if let Some(left) = left.take().filter(|l| !l.is_empty()) {
                for outcome in left {
                    reporter.accept(outcome);
                }
                reporter.send_pending();
            }
            let name = format!("taskworker-reporter-{index}");
            threads.push(spawn_thread(&name, move || {
                let _alive = reporter.shared.liveness.alive(Thread::Reporter);
                reporter.run()
            })?);
        }
        Ok(Reporters {
            threads,
            finish: finish_tx,
        })
    }

    /// Gives every thread the final `deadline` (deliver what is left until
    /// then) and waits for them.
    pub(crate) fn finish(self, deadline: Instant) {
        for _ in 0..self.threads.len() {
            let _ = self.finish.send(deadline);
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// One reporter thread: the shared state, plus what only it holds.
struct Reporter {
    shared: Arc<WorkerState>,
    /// Its own connection to the API.
    client: ApiClient,
    /// Outcomes from the processors, the poller and the supervisor.
    outcomes: Receiver<Outcome>,
    /// Receives the final deadline when the drain is over: deliver what is
    /// left until then, then return.
    finish: Receiver<Instant>,
    /// Outcomes taken and not yet delivered, oldest first.
    pending: VecDeque<Outcome>,
    backoff: Backoff,
    /// When the next send may go out.
    next_try: Instant,
    /// Whether the last failed pass found the API down (not a refusal of
    /// particular reports): then new outcomes wait for the retry too.
    api_down: bool,
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
    /// The reporter loop; returns at the drain's deadline, or before it
    /// once nothing is left to deliver.
    fn run(mut self) {
        let mut deadline: Option<Instant> = None;
        let mut inputs_open = true;
        let mut counted_retrying = false;
        loop {
            // Outcomes are delivered as soon as they are taken, so a
            // non-empty `pending` means a failed send waiting for its retry.
            let retrying = !self.pending.is_empty();
            if retrying != counted_retrying {
                counted_retrying = retrying;
                self.shared.reports.set_retrying(retrying);
            }
            // A retry waits for its time, but never past the drain's deadline.
            let wake = deadline.map_or(self.next_try, |d| self.next_try.min(d));
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
                    Ok(outcome) => self.accept(outcome),
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
                    Ok(outcome) => self.accept(outcome),
                    Err(_) => break,
                }
                taken += 1;
            }
            if taken > 0 && !self.api_down {
                // New outcomes go out now; a refusal of older ones is no reason to wait.
                self.next_try = Instant::now();
            }
            if deadline.is_some() && self.pending.is_empty() {
                return;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.give_up();
                return;
            }
            if Instant::now() >= self.next_try {
                self.send_pending();
            }
            let held = self.shared.reports.held();
            self.shared.stats.reports_pending.store(held, Relaxed);
        }
    }

    fn accept(&mut self, outcome: Outcome) {
        // A newer outcome of the same task (a spooled one re-sent for a
        // redelivery) takes the older one's place.
        match self
            .pending
            .iter_mut()
            .find(|o| o.task_id == outcome.task_id)
        {
            Some(older) => *older = outcome,
            None => {
                self.pending.push_back(outcome);
                self.shared.reports.hold(1);
            }
        }
    }

    /// One pass over the pending reports; when it stops on a failure, sets
    /// when to try again.
    fn send_pending(&mut self) {
        match self.deliver() {
            Some((delay, outage)) => {
                self.next_try = Instant::now() + delay;
                self.api_down = outage;
            }
            None => self.api_down = false,
        }
    }

    /// Sends pending reports in order. An outage stops the pass at once; a
    /// refusal of one report moves it to the back, so that it does not hold
    /// up the others. When the pass stops, returns how long to wait and
    /// whether the API was down.
    fn deliver(&mut self) -> Option<(Duration, bool)> {
        let shared = &*self.shared;
        let pending = &mut self.pending;
        let mut refused = 0;
        while let Some(outcome) = pending.front() {
            if shared
                .spool
                .as_ref()
                .is_some_and(|s| !s.is_current(outcome))
            {
                // A redelivery answered from the spool put a newer copy in the queue.
                log::debug!(
                    "task {} ({}): superseded report skipped",
                    outcome.task_id,
                    outcome.task_type
                );
                pending.pop_front();
                shared.reports.release();
                continue;
            }
            match self
                .client
                .report(&outcome.task_id, outcome.kind, &outcome.body)
            {
                Ok(delivery) => {
                    shared.connectivity.success();
                    self.backoff.reset();
                    if let Delivery::Gone(status) = delivery {
                        shared.stats.reports_gone.fetch_add(1, Relaxed);
                        log::warn!(
                            "task {} ({}): report dropped: the server answered {status}, the task is no longer ours",
                            outcome.task_id,
                            outcome.task_type
                        );
                    }
                    if let Some(spool) = &shared.spool {
                        spool.mark_sent(outcome);
                    }
                    pending.pop_front();
                    shared.reports.release();
                }
                Err(err) => {
                    shared.stats.report_retries.fetch_add(1, Relaxed);
                    let what = format!(
                        "report for task {} ({})",
                        outcome.task_id, outcome.task_type
                    );
                    shared.connectivity.failure(&what, &err);
                    let outage = err.is_outage() || err.retry_after().is_some();
                    if !outage {
                        // A refusal of this one report: let the others go first.
                        refused += 1;
                        pending.rotate_left(1);
                        if refused < pending.len() {
                            continue;
                        }
                    }
                    let delay = self
                        .backoff
                        .next_delay()
                        .max(err.retry_after().unwrap_or_default());
                    return Some((delay, outage));
                }
            }
        }
        None
    }

    fn give_up(&self) {
        let kept = if self.shared.spool.is_some() {
            "kept in the spool for the next start"
        } else {
            "lost: no STATE_DIR is set"
        };
        for outcome in &self.pending {
            log::error!(
                "task {} ({}): report not delivered before exit; {kept}",
                outcome.task_id,
                outcome.task_type
            );
        }
    }
}
