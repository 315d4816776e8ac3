//! The reporter: delivers each outcome (complete or fail) to the API,
//! retrying with backoff until it is delivered, the server says the task is
//! no longer ours (404/409/410), or the final drain deadline passes.
//!
//! A few reporter threads share the outcome channel, each on its own
//! keep-alive connection: one report is one round trip, and a single thread
//! doing them one after another was the ceiling of the whole worker. A thread
//! whose send failed keeps its outcomes and backs off; it takes no new ones
//! until they are delivered, so the others carry on.
//!
//! When the server has batch reports (`POST /tasks/report`), a thread sends
//! whatever outcomes are ready when it sends (up to `REPORT_BATCH`) in one
//! request: no timer, so a lone outcome never waits for company. Each
//! item's status counts as its single call's; an item without a usable
//! answer is sent again singly. A 404 or 405 turns batches off for an hour.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{after, at, bounded, never, select, Receiver, Sender};

use crate::backoff::Backoff;
use crate::client::{
    build_agent, item_delivery, ApiClient, ApiError, BatchAnswer, BatchItem, Delivery, MAX_BATCH,
};
use crate::error::Error;
use crate::worker::liveness::Role;
use crate::worker::outcome::Outcome;
use crate::worker::{fault, spawn_role, WorkerState};

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
        let batches = Arc::new(Batches::new(shared.config.report_batch));
        let mut left = Some(left);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            // Each reporter has its own agent, so that they do not contend
            // for one connection pool's lock on every report.
            let client = shared.client.over(build_agent(&shared.config)?);
            let mut reporter = Reporter {
                index,
                shared: shared.clone(),
                client,
                outcomes: outcomes.clone(),
                finish: finish_rx.clone(),
                pending: VecDeque::new(),
                backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(30)),
                schedule: Schedule::new(Instant::now()),
                counted_retrying: false,
                batches: batches.clone(),
            };
            if let Some(left) = left.take().filter(|l| !l.is_empty()) {
                for outcome in left {
                    reporter.accept(outcome);
                }
                reporter.send_pending();
            }
            let name = format!("taskworker-reporter-{index}");
            threads.push(spawn_role(shared, Role::Reporter, &name, move || {
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
    /// Its number: while batch reports go out, only the first takes new
    /// outcomes (see [`Reporter::stands_by`]).
    index: usize,
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
    schedule: Schedule,
    /// Whether this thread counts in [`Backlog`]'s retrying threads.
    counted_retrying: bool,
    /// Whether batch reports are on, shared by the threads.
    batches: Arc<Batches>,
}

/// How often a thread that stands by (see [`Reporter::stands_by`]) looks
/// whether it is needed.
const STANDBY_RECHECK: Duration = Duration::from_secs(1);
/// How long a server that answered a batch report with 404 or 405 is taken
/// to lack them before it is asked again.
const SINGLES_FOR: Duration = Duration::from_secs(3600);
/// The largest batch body, well under the 1 MiB body a server commonly
/// takes: an outcome that would make a batch larger goes in the next one.
const MAX_BATCH_BYTES: usize = 512 << 10;

/// Whether batch reports are sent: up to how many outcomes, and, after a
/// server answered that it has none, until when single reports go instead.
#[derive(Debug)]
struct Batches {
    /// The most outcomes in one batch (`REPORT_BATCH`); below 2, none.
    size: usize,
    singles_until: Mutex<Option<Instant>>,
}

impl Batches {
    fn new(size: usize) -> Batches {
        Batches {
            size: size.min(MAX_BATCH),
            singles_until: Mutex::new(None),
        }
    }

    /// Up to how many outcomes a batch may carry at `now`; 0: send singles.
    fn size(&self, now: Instant) -> usize {
        if self.size < 2 {
            return 0;
        }
        let mut until = self.singles_until.lock().unwrap_or_else(|e| e.into_inner());
        match *until {
            Some(t) if now < t => 0,
            Some(_) => {
                *until = None;
                self.size
            }
            None => self.size,
        }
    }

    /// The server answered `status` to a batch: singles for an hour, said
    /// once at info (the other threads find batches off already).
    fn unsupported(&self, status: u16, now: Instant) {
        let mut until = self.singles_until.lock().unwrap_or_else(|e| e.into_inner());
        if until.is_none() {
            log::info!(
                "the task API has no batch reports (POST /tasks/report answered {status}); sending single reports, asking again in an hour"
            );
        }
        *until = Some(crate::bounded::instant_after(now, SINGLES_FOR));
    }
}

impl Drop for Reporter {
    /// A reporter that dies hands what it holds to the others (with a spool
    /// it is durable already), and stops counting as retrying, so that no
    /// result is forgotten while the worker drains.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if self.counted_retrying {
            self.shared.reports.set_retrying(false);
        }
        for outcome in self.pending.drain(..) {
            self.shared.reports.release();
            self.shared.outbox.requeue(outcome);
        }
    }
}

/// How many waiting outcomes one reporter thread takes at a time without
/// batch reports: a batch shares one fsync of the spool, and the rest are
/// left to the other threads.
const BATCH: usize = 8;

/// When a reporter thread sends and when it stops, apart from its channels
/// and its socket: time is passed in, so each rule is tested on its own.
#[derive(Debug, Clone)]
struct Schedule {
    /// When the next send may go out.
    next_try: Instant,
    /// The drain's final deadline, once it is given.
    deadline: Option<Instant>,
    /// Whether the last failed pass found the API down (not a refusal of
    /// particular reports): then new outcomes wait for the retry too.
    api_down: bool,
}

/// What a reporter does once it has taken what it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Send what is pending.
    Send,
    /// Wait for the retry, new outcomes or the deadline.
    Wait,
    /// The drain is over and everything is delivered: return.
    Finish,
    /// The drain's deadline passed with reports undelivered: log them, return.
    GiveUp,
}

impl Schedule {
    fn new(now: Instant) -> Schedule {
        Schedule {
            next_try: now,
            deadline: None,
            api_down: false,
        }
    }

    /// When a failed send is tried again: at its time, but never past the
    /// drain's deadline.
    fn wake(&self) -> Instant {
        self.deadline
            .map_or(self.next_try, |d| self.next_try.min(d))
    }

    /// How many queued outcomes to take now: a batch; none while a failed
    /// send waits (the other threads carry on meanwhile); at the end of the
    /// drain, all that is left.
    fn batch(&self, retrying: bool, batches: usize) -> usize {
        if self.deadline.is_some() {
            usize::MAX
        } else if retrying {
            0
        } else {
            batches.max(BATCH)
        }
    }

    /// New outcomes were taken: they go out now, unless the API is down (a
    /// refusal of older ones is no reason for them to wait).
    fn took_new(&mut self, now: Instant) {
        if !self.api_down {
            self.next_try = now;
        }
    }

    /// What to do now, with `pending` outcomes undelivered.
    fn turn(&self, pending: usize, now: Instant) -> Turn {
        match self.deadline {
            Some(_) if pending == 0 => Turn::Finish,
            Some(deadline) if now >= deadline => Turn::GiveUp,
            _ if now >= self.next_try => Turn::Send,
            _ => Turn::Wait,
        }
    }

    /// A pass delivered all it had.
    fn delivered(&mut self) {
        self.api_down = false;
    }

    /// A pass stopped on a failure at `now`.
    fn failed(&mut self, now: Instant, retry: Retry) {
        self.next_try = crate::bounded::instant_after(now, retry.delay);
        self.api_down = retry.outage;
    }
}

/// What a failed send means for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Retry {
    /// How long to wait before the next pass.
    delay: Duration,
    /// Whether the API is down or asked us to wait (`Retry-After`): then the
    /// pass stops, where a refusal of one report lets the others go first.
    outage: bool,
}

/// Whether a failed send stops the whole pass: the API is down, or asked us
/// to wait (`Retry-After`). A refusal of one report lets the others go first.
fn stops_the_pass(err: &ApiError) -> bool {
    err.is_outage() || err.retry_after().is_some()
}

/// Whether a batch report answered `status` refuses the batch itself (too
/// large, or a form this server does not take) rather than saying "not
/// now" or "not you": its outcomes then go out singly at once. 401, 403,
/// 408 and 429 are answered as a single report's are.
fn refuses_the_batch(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 403 | 408 | 429)
}

/// How long to wait after a pass stopped on `err`: the backoff's next wait,
/// never shorter than the server's `Retry-After`.
fn retry_delay(err: &ApiError, backoff: &mut Backoff) -> Duration {
    backoff
        .next_delay()
        .max(err.retry_after().unwrap_or_default())
}

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
        let mut inputs_open = true;
        loop {
            // Outcomes are delivered as soon as they are taken, so a
            // non-empty `pending` means a failed send waiting for its retry.
            let retrying = !self.pending.is_empty();
            if retrying != self.counted_retrying {
                self.counted_retrying = retrying;
                self.shared.reports.set_retrying(retrying);
            }
            let standby = self.stands_by();
            let timer = if retrying {
                at(self.schedule.wake())
            } else if standby {
                after(STANDBY_RECHECK)
            } else {
                never()
            };
            let outcomes = if inputs_open && !retrying && !standby {
                self.outcomes.clone()
            } else {
                never()
            };
            let finish = if self.schedule.deadline.is_none() {
                self.finish.clone()
            } else {
                never()
            };
            // Once the drain's deadline is given, what waits was taken with
            // it: only a retry is waited for, or the loop would block on new
            // outcomes that never come.
            if self.schedule.deadline.is_none() || retrying {
                select! {
                    recv(outcomes) -> msg => match msg {
                        Ok(outcome) => {
                            self.accept(outcome);
                            fault::panic_if_asked("reporter");
                        }
                        Err(_) => inputs_open = false,
                    },
                    recv(finish) -> msg => {
                        self.schedule.deadline = Some(msg.unwrap_or_else(|_| Instant::now()));
                    }
                    recv(timer) -> _ => {}
                }
            }
            let take = if self.stands_by() {
                0
            } else {
                self.schedule
                    .batch(retrying, self.batches.size(Instant::now()))
            };
            let mut taken = 0;
            while taken < take {
                match self.outcomes.try_recv() {
                    Ok(outcome) => self.accept(outcome),
                    Err(_) => break,
                }
                taken += 1;
            }
            if taken > 0 {
                self.schedule.took_new(Instant::now());
            }
            match self.schedule.turn(self.pending.len(), Instant::now()) {
                Turn::Finish => return,
                Turn::GiveUp => {
                    self.give_up();
                    return;
                }
                Turn::Send => self.send_pending(),
                Turn::Wait => {}
            }
            let held = self.shared.reports.held();
            self.shared.stats.reports_pending.store(held, Relaxed);
        }
    }

    /// Whether this thread leaves new outcomes to the first one: while
    /// batch reports go out and no thread waits to retry a failed send. One
    /// thread then carries them all, each request as many as piled up
    /// during the last one, where several threads would split them into
    /// smaller batches and wake up for each. The others join when a send
    /// fails, when batches are off, and for the drain's end.
    fn stands_by(&self) -> bool {
        self.index > 0
            && self.schedule.deadline.is_none()
            && !self.shared.reports.is_retrying()
            && self.batches.size(Instant::now()) > 0
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
            Some(retry) => self.schedule.failed(Instant::now(), retry),
            None => self.schedule.delivered(),
        }
    }

    /// Sends pending reports: in batches while the server takes them, then
    /// singly whatever a batch did not settle. When the pass stops, returns
    /// when to try again.
    fn deliver(&mut self) -> Option<Retry> {
        self.drop_superseded();
        let size = self.batches.size(Instant::now());
        if size >= 2 && self.pending.len() >= 2 {
            if let Some(retry) = self.deliver_batches(size) {
                return Some(retry);
            }
        }
        self.deliver_singles()
    }

    /// Drops the pending reports that a newer copy in the spool supersedes
    /// (a redelivery answered from the spool put that copy in the queue).
    fn drop_superseded(&mut self) {
        let Some(spool) = &self.shared.spool else {
            return;
        };
        let reports = &self.shared.reports;
        self.pending.retain(|outcome| {
            let current = spool.is_current(outcome);
            if !current {
                log::debug!(
                    "task {} ({}): superseded report skipped",
                    outcome.task_id,
                    outcome.task_type
                );
                reports.release();
            }
            current
        });
    }

    /// Sends the pending reports in batches of up to `size`. What a batch
    /// settles (2xx, 404, 409, 410 for its id) leaves `pending`; what has
    /// no usable answer stays at the front, to go out singly. A batch that
    /// fails as a whole, or an item the server asks to retry, stops the pass.
    fn deliver_batches(&mut self, size: usize) -> Option<Retry> {
        let mut unsettled: VecDeque<Outcome> = VecDeque::new();
        let mut stop = None;
        while self.pending.len() >= 2 && stop.is_none() {
            let mut bytes = 0;
            let count = self
                .pending
                .iter()
                .take(size)
                .take_while(|o| {
                    bytes += o.body.len() + o.task_id.len() + 24;
                    bytes <= MAX_BATCH_BYTES
                })
                .count()
                .max(1);
            let batch: Vec<Outcome> = self.pending.drain(..count).collect();
            let items: Vec<BatchItem<'_>> = batch
                .iter()
                .map(|o| BatchItem {
                    task_id: &o.task_id,
                    kind: o.kind,
                    body: &o.body,
                })
                .collect();
            let answer = self.client.report_batch(&items);
            drop(items);
            let shared = &*self.shared;
            match answer {
                Ok(BatchAnswer::Statuses(statuses)) => {
                    shared.connectivity.success();
                    shared.stats.report_batches.fetch_add(1, Relaxed);
                    shared
                        .stats
                        .report_batch_outcomes
                        .fetch_add(batch.len() as u64, Relaxed);
                    for (outcome, status) in batch.into_iter().zip(statuses) {
                        match status.map(item_delivery) {
                            Some(Ok(delivery)) => {
                                self.backoff.reset();
                                self.settle(&outcome, delivery);
                            }
                            Some(Err(err)) => {
                                self.failure(&outcome, &err);
                                if stop.is_none() {
                                    stop = Some(self.retry(&err));
                                }
                                unsettled.push_back(outcome);
                            }
                            None => {
                                log::debug!(
                                    "task {} ({}): no usable entry in the batch answer; sent again singly",
                                    outcome.task_id,
                                    outcome.task_type
                                );
                                unsettled.push_back(outcome);
                            }
                        }
                    }
                }
                Ok(BatchAnswer::Unsupported(status)) => {
                    self.batches.unsupported(status, Instant::now());
                    unsettled.extend(batch);
                    break;
                }
                Err(ApiError::Status { status, .. }) if refuses_the_batch(status) => {
                    log::debug!("a batch of {count} reports was refused ({status}); sent singly");
                    unsettled.extend(batch);
                }
                Err(err @ (ApiError::Malformed(_) | ApiError::TooLarge { .. })) => {
                    log::warn!("batch report: {err}; its {count} reports are sent singly");
                    unsettled.extend(batch);
                }
                Err(err) => {
                    shared.stats.report_retries.fetch_add(1, Relaxed);
                    let what = format!("batch report of {count} outcomes");
                    shared.connectivity.failure(&what, &err);
                    stop = Some(self.retry(&err));
                    unsettled.extend(batch);
                }
            }
        }
        // Unsettled first, oldest first, then what no batch carried yet.
        unsettled.append(&mut self.pending);
        self.pending = unsettled;
        stop
    }

    /// A report settled (delivered, or gone from us): logged when gone,
    /// marked sent in the spool, released.
    fn settle(&self, outcome: &Outcome, delivery: Delivery) {
        let shared = &*self.shared;
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
        shared.reports.release();
    }

    /// A report of `outcome` failed with `err`: counted and logged (once
    /// per outage).
    fn failure(&self, outcome: &Outcome, err: &ApiError) {
        self.shared.stats.report_retries.fetch_add(1, Relaxed);
        let what = format!(
            "report for task {} ({})",
            outcome.task_id, outcome.task_type
        );
        self.shared.connectivity.failure(&what, err);
    }

    /// When to try again after a pass stopped on `err`.
    fn retry(&mut self, err: &ApiError) -> Retry {
        Retry {
            delay: retry_delay(err, &mut self.backoff),
            outage: stops_the_pass(err),
        }
    }

    /// Sends pending reports singly, in order. An outage stops the pass at
    /// once; a refusal of one report moves it to the back, so that it does
    /// not hold up the others.
    fn deliver_singles(&mut self) -> Option<Retry> {
        let mut refused = 0;
        while let Some(outcome) = self.pending.pop_front() {
            match self
                .client
                .report(&outcome.task_id, outcome.kind, &outcome.body)
            {
                Ok(delivery) => {
                    self.shared.connectivity.success();
                    self.backoff.reset();
                    self.settle(&outcome, delivery);
                }
                Err(err) => {
                    self.failure(&outcome, &err);
                    if stops_the_pass(&err) {
                        self.pending.push_front(outcome);
                        return Some(self.retry(&err));
                    }
                    // A refusal of this one report: let the others go first.
                    self.pending.push_back(outcome);
                    refused += 1;
                    if refused >= self.pending.len() {
                        return Some(self.retry(&err));
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn status(status: u16, retry_after: Option<Duration>) -> ApiError {
        ApiError::Status {
            status,
            retry_after,
            body: String::new(),
        }
    }

    #[test]
    fn takes_a_batch_none_while_a_send_waits_and_all_at_the_drain() {
        let now = Instant::now();
        let mut schedule = Schedule::new(now);
        assert_eq!(schedule.batch(false, 0), BATCH);
        assert_eq!(
            schedule.batch(false, 100),
            100,
            "as many as a batch report takes"
        );
        assert_eq!(schedule.batch(true, 100), 0);
        schedule.deadline = Some(now + 5 * SECOND);
        assert_eq!(schedule.batch(true, 0), usize::MAX);
    }

    #[test]
    fn new_outcomes_go_out_at_once_after_a_refusal_but_wait_out_an_outage() {
        let now = Instant::now();
        let mut schedule = Schedule::new(now);
        assert_eq!(schedule.turn(1, now), Turn::Send);
        let refusal = Retry {
            delay: 5 * SECOND,
            outage: false,
        };
        schedule.failed(now, refusal);
        assert_eq!(schedule.turn(1, now + SECOND), Turn::Wait);
        schedule.took_new(now + SECOND);
        assert_eq!(schedule.turn(2, now + SECOND), Turn::Send);

        let outage = Retry {
            delay: 5 * SECOND,
            outage: true,
        };
        schedule.failed(now, outage);
        schedule.took_new(now + SECOND);
        assert_eq!(schedule.turn(2, now + SECOND), Turn::Wait);
        assert_eq!(schedule.wake(), now + 5 * SECOND);
        assert_eq!(schedule.turn(2, now + 5 * SECOND), Turn::Send);
        schedule.delivered();
        schedule.took_new(now + 6 * SECOND);
        assert_eq!(schedule.turn(1, now + 6 * SECOND), Turn::Send);
    }

    #[test]
    fn at_the_drain_a_retry_never_sleeps_past_the_deadline_and_then_gives_up() {
        let now = Instant::now();
        let mut schedule = Schedule::new(now);
        schedule.failed(
            now,
            Retry {
                delay: 30 * SECOND,
                outage: true,
            },
        );
        assert_eq!(schedule.wake(), now + 30 * SECOND);
        schedule.deadline = Some(now + 5 * SECOND);
        assert_eq!(schedule.wake(), now + 5 * SECOND);
        assert_eq!(schedule.turn(3, now + SECOND), Turn::Wait);
        assert_eq!(schedule.turn(3, now + 5 * SECOND), Turn::GiveUp);
        assert_eq!(schedule.turn(0, now + SECOND), Turn::Finish);
        assert_eq!(schedule.turn(0, now + 5 * SECOND), Turn::Finish);
    }

    #[test]
    fn a_batch_too_large_or_of_a_form_not_taken_goes_singly() {
        for status in [400, 413, 422] {
            assert!(refuses_the_batch(status), "{status}");
        }
        for status in [401, 403, 408, 429, 500, 503, 302] {
            assert!(!refuses_the_batch(status), "{status}");
        }
    }

    #[test]
    fn an_outage_stops_the_pass_and_retry_after_is_honoured() {
        assert!(stops_the_pass(&ApiError::Transport("refused".into())));
        assert!(stops_the_pass(&status(502, None)));
        assert!(
            !stops_the_pass(&status(422, None)),
            "one report refused: the others go on"
        );
        let slow_down = status(429, Some(40 * SECOND));
        assert!(
            stops_the_pass(&slow_down),
            "Retry-After holds every report back"
        );
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        assert!(retry_delay(&status(503, None), &mut backoff) <= Duration::from_millis(100));
        assert!(retry_delay(&slow_down, &mut backoff) >= 40 * SECOND);
        assert_eq!(backoff.failures(), 2, "each stopped pass backs off further");
    }
}
