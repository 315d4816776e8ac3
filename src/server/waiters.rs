//! Parked long polls: claims waiting for a task, woken one per task that
//! becomes ready, by a cancel, or by shutdown.

use crossbeam_channel::{bounded, Receiver, Sender};

/// Why a parked claim was woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A task it may take became ready: claim again.
    Check,
    /// Its claim was cancelled: answer "no task" at once.
    Cancelled,
    /// The server is stopping: answer "no task" at once.
    Stopped,
}

struct Entry {
    id: u64,
    claim_id: Option<String>,
    types: Option<Vec<String>>,
    tx: Sender<Wake>,
}

/// The parked claims, oldest first. Lives inside the queue's lock, so parking
/// after an empty claim and waking after an enqueue cannot miss each other.
#[derive(Default)]
pub struct Waiters {
    next_id: u64,
    parked: Vec<Entry>,
}

impl Waiters {
    /// Parks a claim; returns its ticket and the channel its wake comes on.
    pub fn park(
        &mut self,
        claim_id: Option<String>,
        types: Option<Vec<String>>,
    ) -> (u64, Receiver<Wake>) {
        let (tx, rx) = bounded(1);
        self.next_id += 1;
        let id = self.next_id;
        self.parked.push(Entry {
            id,
            claim_id,
            types,
            tx,
        });
        (id, rx)
    }

    /// Removes a parked claim that stopped waiting by itself.
    pub fn unpark(&mut self, id: u64) {
        self.parked.retain(|e| e.id != id);
    }

    /// Wakes the oldest claim that would take a task of `task_type`.
    pub fn wake_one(&mut self, task_type: &str) -> bool {
        let found = self.parked.iter().position(|e| match &e.types {
            None => true,
            Some(types) => types.iter().any(|t| t == task_type),
        });
        match found {
            Some(i) => {
                let entry = self.parked.remove(i);
                // A full channel already holds a wake; a closed one has no reader.
                let _ = entry.tx.try_send(Wake::Check);
                true
            }
            None => false,
        }
    }

    /// Wakes the oldest parked claim, whatever types it takes: a wake that
    /// reached a claim which no longer needed it is passed on.
    pub fn wake_oldest(&mut self) {
        if !self.parked.is_empty() {
            let entry = self.parked.remove(0);
            let _ = entry.tx.try_send(Wake::Check);
        }
    }

    /// Wakes every parked claim to look again (wakes may have been missed).
    pub fn wake_all(&mut self) {
        for e in self.parked.drain(..) {
            let _ = e.tx.try_send(Wake::Check);
        }
    }

    /// Ends every claim parked with `claim_id`; returns how many there were.
    pub fn cancel(&mut self, claim_id: &str) -> usize {
        let mut n = 0;
        self.parked.retain(|e| {
            if e.claim_id.as_deref() == Some(claim_id) {
                let _ = e.tx.try_send(Wake::Cancelled);
                n += 1;
                false
            } else {
                true
            }
        });
        n
    }

    /// Ends every parked claim.
    pub fn stop_all(&mut self) {
        for e in self.parked.drain(..) {
            let _ = e.tx.try_send(Wake::Stopped);
        }
    }

    /// How many claims are parked.
    pub fn len(&self) -> usize {
        self.parked.len()
    }

    /// Whether no claim is parked.
    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_the_oldest_matching_claim_only() {
        let mut w = Waiters::default();
        let (_, a) = w.park(None, Some(vec!["x".into()]));
        let (_, b) = w.park(None, None);
        let (_, c) = w.park(None, None);
        assert!(w.wake_one("y"));
        assert_eq!(b.try_recv(), Ok(Wake::Check));
        assert!(a.try_recv().is_err() && c.try_recv().is_err());
        assert!(w.wake_one("x"));
        assert_eq!(a.try_recv(), Ok(Wake::Check));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn cancel_and_stop_answer_parked_claims() {
        let mut w = Waiters::default();
        let (_, a) = w.park(Some("c1".into()), None);
        let (id, b) = w.park(Some("c2".into()), None);
        assert_eq!(w.cancel("c1"), 1);
        assert_eq!(a.try_recv(), Ok(Wake::Cancelled));
        w.unpark(id);
        assert!(w.is_empty());
        let (_, c) = w.park(None, None);
        w.stop_all();
        assert_eq!(c.try_recv(), Ok(Wake::Stopped));
        assert!(b.try_recv().is_err());
    }
}
