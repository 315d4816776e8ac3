//! Parked long polls: claims waiting for a task, each held as a [`Waiter`]
//! (no thread), woken one per task that becomes ready, by a cancel, by
//! shutdown, or at its deadline, whichever comes first. A claim whose
//! client has hung up is dropped, never woken: its wake goes to the next.

use std::time::Instant;

/// Why a parked claim was woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A task it may take became ready: claim again.
    Check,
    /// Its wait is over: claim one last time.
    Expired,
    /// Its claim was cancelled: answer "no task" at once.
    Cancelled,
    /// The server is stopping: answer "no task" at once.
    Stopped,
}

/// A claim that waits: what it takes, until when, and what to call when it
/// is woken. The call is made under the store's lock, so it must only hand
/// the work on (to a handler thread), never claim itself.
pub struct Waiter {
    claim_id: Option<String>,
    types: Option<Vec<String>>,
    deadline: Instant,
    wake: Box<dyn FnOnce(Wake) + Send>,
    gone: Option<Box<dyn Fn() -> bool + Send>>,
}

impl Waiter {
    /// A claim with `claim_id` for `types` (any with `None`) that waits
    /// until `deadline`, then `wake` is called, once.
    pub fn new(
        claim_id: Option<String>,
        types: Option<Vec<String>>,
        deadline: Instant,
        wake: impl FnOnce(Wake) + Send + 'static,
    ) -> Waiter {
        Waiter {
            claim_id,
            types,
            deadline,
            wake: Box::new(wake),
            gone: None,
        }
    }

    /// The same waiter, which `gone` says has nobody to answer any more
    /// (its client hung up): it is then dropped instead of woken. Called
    /// under the store's lock, so it must be quick.
    pub fn until_gone(mut self, gone: impl Fn() -> bool + Send + 'static) -> Waiter {
        self.gone = Some(Box::new(gone));
        self
    }

    fn is_gone(&self) -> bool {
        self.gone.as_ref().is_some_and(|gone| gone())
    }

    fn takes(&self, task_type: &str) -> bool {
        self.types
            .as_ref()
            .map_or(true, |types| types.iter().any(|t| t == task_type))
    }
}

struct Entry {
    ticket: u64,
    waiter: Waiter,
    /// Not armed: its claim is still running (the Redis store parks before
    /// it claims), so a wake is held here instead of called, until [`Waiters::arm`].
    held: Option<Option<Wake>>,
}

/// The parked claims, oldest first. For the memory and journal stores it
/// lives inside the queue's lock, so parking after an empty claim and
/// waking after an enqueue cannot miss each other.
#[derive(Default)]
pub struct Waiters {
    next_ticket: u64,
    parked: Vec<Entry>,
}

impl Waiters {
    /// Parks a claim that found nothing; whether it is now the one whose
    /// deadline is nearest (then whoever expires waiters must look sooner).
    pub fn park(&mut self, waiter: Waiter) -> bool {
        self.insert(waiter, None);
        self.nearest_is_last()
    }

    /// Parks a claim before it runs: wakes are held until [`Waiters::arm`]
    /// or [`Waiters::withdraw`]. Returns its ticket.
    pub fn reserve(&mut self, waiter: Waiter) -> u64 {
        self.insert(waiter, Some(None))
    }

    /// The claim of `ticket` found nothing: from now on it is woken. A wake
    /// that came meanwhile is delivered at once. Whether its deadline is the
    /// nearest, as for [`Waiters::park`].
    pub fn arm(&mut self, ticket: u64) -> bool {
        let Some(i) = self.parked.iter().position(|e| e.ticket == ticket) else {
            return false;
        };
        if self.parked[i].waiter.is_gone() {
            let entry = self.parked.remove(i);
            if entry.held.flatten() == Some(Wake::Check) {
                self.pass_on(entry.waiter.types.as_deref());
            }
            return false;
        }
        match self.parked[i].held.take().flatten() {
            Some(wake) => {
                let entry = self.parked.remove(i);
                (entry.waiter.wake)(wake);
                false
            }
            None => self.nearest_is_last_at(i),
        }
    }

    /// The claim of `ticket` got its answer without waiting; the wake it
    /// was given meanwhile, if any, for the caller to pass on.
    pub fn withdraw(&mut self, ticket: u64) -> Option<Wake> {
        let i = self.parked.iter().position(|e| e.ticket == ticket)?;
        self.parked.remove(i).held.flatten()
    }

    fn insert(&mut self, waiter: Waiter, held: Option<Option<Wake>>) -> u64 {
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        self.parked.push(Entry {
            ticket,
            waiter,
            held,
        });
        ticket
    }

    fn nearest_is_last(&self) -> bool {
        self.parked
            .len()
            .checked_sub(1)
            .is_some_and(|i| self.nearest_is_last_at(i))
    }

    fn nearest_is_last_at(&self, i: usize) -> bool {
        let at = self.parked[i].waiter.deadline;
        self.parked
            .iter()
            .filter(|e| e.held.is_none())
            .all(|e| e.waiter.deadline >= at)
    }

    /// Delivers `wake` to the entry at `i`: called if armed, held if not.
    fn deliver(&mut self, i: usize, wake: Wake) {
        match &mut self.parked[i].held {
            Some(held) => *held = Some(wake),
            None => (self.parked.remove(i).waiter.wake)(wake),
        }
    }

    /// Drops the armed claims whose client has gone; returns how many.
    /// (One still running is dropped when it arms, passing on what it holds.)
    pub fn forget_gone(&mut self) -> usize {
        let before = self.parked.len();
        self.parked
            .retain(|e| e.held.is_some() || !e.waiter.is_gone());
        before - self.parked.len()
    }

    /// Passes on a wake that reached a claim which could not use it (its
    /// client had gone): one to the oldest claim of each type the wake may
    /// have been for, those of `types` (any type with `None`). A wake too
    /// many costs a claim that finds nothing and parks again; one too few
    /// would leave a ready task waiting.
    pub fn pass_on(&mut self, types: Option<&[String]>) {
        match types {
            Some(types) => {
                for t in types {
                    self.wake_one(t);
                }
            }
            None => {
                let mut seen: Vec<Option<Vec<String>>> = Vec::new();
                let mut i = 0;
                while i < self.parked.len() {
                    let entry = &self.parked[i];
                    if matches!(entry.held, Some(Some(_)))
                        || entry.waiter.is_gone()
                        || seen.contains(&entry.waiter.types)
                    {
                        i += 1;
                        continue;
                    }
                    seen.push(entry.waiter.types.clone());
                    let held = entry.held.is_some();
                    self.deliver(i, Wake::Check);
                    if held {
                        i += 1;
                    }
                }
            }
        }
    }

    /// Wakes the oldest claim that would take a task of `task_type`.
    pub fn wake_one(&mut self, task_type: &str) -> bool {
        match self.oldest(|w| w.takes(task_type)) {
            Some(i) => {
                self.deliver(i, Wake::Check);
                true
            }
            None => false,
        }
    }

    /// Wakes the oldest parked claim, whatever types it takes: a wake that
    /// reached a claim which no longer needed it is passed on.
    pub fn wake_oldest(&mut self) {
        if let Some(i) = self.oldest(|_| true) {
            self.deliver(i, Wake::Check);
        }
    }

    /// The oldest claim that `which` picks and that holds no wake yet;
    /// the armed ones found gone on the way are dropped, so that a wake
    /// scans only as far as it must (not the whole table).
    fn oldest(&mut self, which: impl Fn(&Waiter) -> bool) -> Option<usize> {
        let mut i = 0;
        while i < self.parked.len() {
            let entry = &self.parked[i];
            if entry.held.is_none() && entry.waiter.is_gone() {
                self.parked.remove(i);
                continue;
            }
            if !matches!(entry.held, Some(Some(_))) && which(&entry.waiter) {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// Wakes every parked claim to look again (wakes may have been missed).
    pub fn wake_all(&mut self) {
        self.wake_every(|_| true, Wake::Check);
    }

    /// Ends every claim parked with `claim_id`; returns how many there were.
    pub fn cancel(&mut self, claim_id: &str) -> usize {
        self.wake_every(|w| w.claim_id.as_deref() == Some(claim_id), Wake::Cancelled)
    }

    /// Ends every parked claim.
    pub fn stop_all(&mut self) {
        self.wake_every(|_| true, Wake::Stopped);
    }

    /// Ends the claims whose deadline is `now` or past (not those still
    /// running, which look at their deadline themselves).
    pub fn expire(&mut self, now: Instant) {
        self.wake_every(|w| w.deadline <= now, Wake::Expired);
    }

    /// The nearest deadline of an armed claim.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.parked
            .iter()
            .filter(|e| e.held.is_none())
            .map(|e| e.waiter.deadline)
            .min()
    }

    fn wake_every(&mut self, which: impl Fn(&Waiter) -> bool, wake: Wake) -> usize {
        self.forget_gone();
        let mut n = 0;
        let mut i = 0;
        while i < self.parked.len() {
            let entry = &mut self.parked[i];
            if !which(&entry.waiter) || (wake == Wake::Expired && entry.held.is_some()) {
                i += 1;
                continue;
            }
            n += 1;
            match &mut entry.held {
                Some(held) => {
                    // A stop or cancel outranks a wake to look again.
                    if wake != Wake::Check || held.is_none() {
                        *held = Some(wake);
                    }
                    i += 1;
                }
                None => (self.parked.remove(i).waiter.wake)(wake),
            }
        }
        n
    }

    /// How many claims are parked for a client still there.
    pub fn len(&self) -> usize {
        self.parked.iter().filter(|e| !e.waiter.is_gone()).count()
    }

    /// Whether no claim is parked.
    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    type Log = Arc<Mutex<Vec<(&'static str, Wake)>>>;

    fn waiter(
        log: &Log,
        name: &'static str,
        claim_id: Option<&str>,
        types: Option<&[&str]>,
        after: u64,
    ) -> Waiter {
        let log = Arc::clone(log);
        Waiter::new(
            claim_id.map(str::to_string),
            types.map(|t| t.iter().map(|s| s.to_string()).collect()),
            Instant::now() + Duration::from_secs(after),
            move |wake| log.lock().unwrap().push((name, wake)),
        )
    }

    fn taken(log: &Log) -> Vec<(&'static str, Wake)> {
        std::mem::take(&mut *log.lock().unwrap())
    }

    #[test]
    fn wakes_the_oldest_matching_claim_only() {
        let log = Log::default();
        let mut w = Waiters::default();
        w.park(waiter(&log, "a", None, Some(&["x"]), 60));
        w.park(waiter(&log, "b", None, None, 60));
        w.park(waiter(&log, "c", None, None, 60));
        assert!(w.wake_one("y"));
        assert_eq!(taken(&log), [("b", Wake::Check)]);
        assert!(w.wake_one("x"));
        assert_eq!(taken(&log), [("a", Wake::Check)]);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn cancel_stop_and_deadlines_answer_parked_claims() {
        let log = Log::default();
        let mut w = Waiters::default();
        assert!(w.park(waiter(&log, "a", Some("c1"), None, 60)));
        assert!(w.park(waiter(&log, "b", Some("c2"), None, 30)), "nearer");
        assert!(!w.park(waiter(&log, "late", None, None, 90)));
        assert_eq!(w.cancel("c1"), 1);
        assert_eq!(taken(&log), [("a", Wake::Cancelled)]);
        w.expire(Instant::now() + Duration::from_secs(45));
        assert_eq!(taken(&log), [("b", Wake::Expired)]);
        w.stop_all();
        assert_eq!(taken(&log), [("late", Wake::Stopped)]);
        assert!(w.is_empty());
    }

    #[test]
    fn a_reserved_claim_holds_its_wake_until_armed_or_withdrawn() {
        let log = Log::default();
        let mut w = Waiters::default();
        let first = w.reserve(waiter(&log, "a", None, None, 60));
        let second = w.reserve(waiter(&log, "b", None, None, 60));
        assert!(w.wake_one("t"));
        assert!(w.wake_one("t"), "the second takes the next wake");
        assert!(!w.wake_one("t"), "a held wake is not given twice");
        w.expire(Instant::now() + Duration::from_secs(3600));
        assert!(taken(&log).is_empty(), "nothing is called before arming");
        assert_eq!(w.withdraw(first), Some(Wake::Check));
        w.stop_all();
        w.arm(second);
        assert_eq!(taken(&log), [("b", Wake::Stopped)], "stop outranks check");
        let third = w.reserve(waiter(&log, "c", None, None, 60));
        assert!(w.arm(third), "armed with nothing held: parked");
        assert!(w.next_deadline().is_some());
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn a_claim_whose_client_has_gone_is_dropped_and_its_wakes_passed_on() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let log = Log::default();
        let mut w = Waiters::default();
        let gone = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&gone);
        w.park(
            waiter(&log, "gone", None, None, 60).until_gone(move || flag.load(Ordering::SeqCst)),
        );
        w.park(waiter(&log, "b", None, Some(&["b"]), 60));
        w.park(waiter(&log, "next", None, None, 60));
        gone.store(true, Ordering::SeqCst);
        assert_eq!(w.len(), 2, "not counted once gone");
        assert!(w.wake_one("t"));
        assert_eq!(taken(&log), [("next", Wake::Check)], "skipped, not woken");
        assert_eq!(w.forget_gone(), 0, "dropped on the way");

        // A wake held for a claim still running, whose client then went.
        let gone = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&gone);
        let running = w.reserve(
            waiter(&log, "running", None, Some(&["a"]), 60)
                .until_gone(move || flag.load(Ordering::SeqCst)),
        );
        w.park(waiter(&log, "a", None, Some(&["a"]), 60));
        assert!(w.wake_one("a"));
        gone.store(true, Ordering::SeqCst);
        assert_eq!(w.forget_gone(), 0, "kept while its claim runs");
        assert!(!w.arm(running));
        assert_eq!(taken(&log), [("a", Wake::Check)], "its wake went on");
        w.pass_on(None);
        assert_eq!(taken(&log), [("b", Wake::Check)], "one per kind of claim");
        assert!(w.is_empty());
    }
}
