//! The agent's transport: ureq's own (TCP, then TLS) with three costs of a
//! request taken out, each a system call or more that a worker making
//! thousands of requests a second pays on every one.
//!
//! - One write per request: ureq writes a request's head and its body in two
//!   calls, and each went out as its own segment, waking the server once for
//!   the head and again for the body. Writes are held and sent in one piece
//!   just before the answer is awaited (or once a large body has piled up).
//! - One check of a pooled connection per request, not two: ureq checks a
//!   connection (three system calls) as it goes back to the pool, right after
//!   its answer was read, and again as it comes out. The second check sees
//!   whatever the first would have (bytes the server sent after its answer
//!   are still there, and so is a close), so only that one is made.
//! - No change of the socket's timeouts on every request: a request's timeout
//!   counts down from its start, so the time left differs by microseconds
//!   from one request to the next, and ureq set both socket timeouts anew
//!   each time. The time left is rounded up to a step of at most 1/64 of it,
//!   so that successive requests ask for the same timeout and the socket
//!   keeps it; a wait can outlast its deadline by that step (under 1.6 %).

use ureq::unversioned::transport::time::Duration as UreqDuration;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport,
};

/// Above this many held bytes the transport writes without waiting for the
/// end of the request: a large body is streamed, not copied whole.
const HOLD_LIMIT: usize = 64 * 1024;

/// The agent's connector: ureq's own chain (TCP, TLS), then [`LeanConnector`].
pub fn connector() -> impl Connector {
    DefaultConnector::default().chain(LeanConnector)
}

/// The last link of the agent's connector chain: wraps the TCP (or TLS)
/// transport in a [`Lean`] one.
#[derive(Debug, Default)]
pub struct LeanConnector;

impl Connector<Box<dyn Transport>> for LeanConnector {
    type Out = Lean;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Lean>, ureq::Error> {
        Ok(chained.map(|inner| Lean {
            inner,
            held: Vec::new(),
            timeout: None,
            answer_just_read: false,
        }))
    }
}

/// A transport that holds writes until the answer is awaited, checks a
/// pooled connection once, and keeps its socket timeouts steady.
#[derive(Debug)]
pub struct Lean {
    inner: Box<dyn Transport>,
    held: Vec<u8>,
    /// The write timeout of the latest held write.
    timeout: Option<NextTimeout>,
    /// Whether the last thing done was reading (part of) an answer: the
    /// check ureq makes then is left to the one before the next request.
    answer_just_read: bool,
}

impl Lean {
    /// Writes what is held through the inner transport's output buffer.
    fn flush(&mut self) -> Result<(), ureq::Error> {
        let Some(timeout) = self.timeout.take() else {
            return Ok(());
        };
        let timeout = steady(timeout);
        let mut sent = 0;
        while sent < self.held.len() {
            let output = self.inner.buffers().output();
            let n = output.len().min(self.held.len() - sent);
            output[..n].copy_from_slice(&self.held[sent..sent + n]);
            self.inner.transmit_output(n, timeout)?;
            sent += n;
        }
        self.held.clear();
        Ok(())
    }
}

/// `timeout` with its time left rounded up to a step of at most 1/64 of it
/// (a power of two nanoseconds), so that requests made one after another ask
/// the socket for the same timeout and it is not set again.
fn steady(mut timeout: NextTimeout) -> NextTimeout {
    if let UreqDuration::Exact(left) = timeout.after {
        timeout.after = UreqDuration::Exact(round_up(left));
    }
    timeout
}

/// `left` rounded up to a multiple of the largest power of two nanoseconds
/// not above `left / 64` (left as it is below 64 ns).
fn round_up(left: std::time::Duration) -> std::time::Duration {
    // Past u64 nanoseconds (584 years) a timeout is left as it is.
    let Ok(nanos) = u64::try_from(left.as_nanos()) else {
        return left;
    };
    let step_max = nanos / 64;
    if step_max == 0 {
        return left;
    }
    let step = 1u64 << (63 - step_max.leading_zeros());
    std::time::Duration::from_nanos(nanos.div_ceil(step).saturating_mul(step))
}

impl Transport for Lean {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.answer_just_read = false;
        let output = &self.inner.buffers().output()[..amount];
        self.held.extend_from_slice(output);
        self.timeout = Some(timeout);
        if self.held.len() >= HOLD_LIMIT {
            self.flush()?;
        }
        Ok(())
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush()?;
        let read = self.inner.maybe_await_input(steady(timeout));
        self.answer_just_read = true;
        read
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush()?;
        let read = self.inner.await_input(steady(timeout));
        self.answer_just_read = true;
        read
    }

    fn is_open(&mut self) -> bool {
        if std::mem::take(&mut self.answer_just_read) {
            // Going back to the pool right after its answer: the check as
            // it comes out again sees whatever this one would.
            return true;
        }
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_left_rounds_up_by_at_most_a_64th_and_nearby_times_round_alike() {
        for left in [
            Duration::from_nanos(64),
            Duration::from_micros(1),
            Duration::from_millis(1),
            Duration::from_millis(999),
            Duration::from_secs(15),
            Duration::from_secs(45) + Duration::from_nanos(1),
            Duration::from_secs(500 * 365 * 24 * 3600),
        ] {
            let rounded = round_up(left);
            assert!(rounded >= left, "{left:?} → {rounded:?}");
            assert!(rounded - left <= left / 64, "{left:?} → {rounded:?}");
        }
        assert_eq!(round_up(Duration::from_nanos(63)), Duration::from_nanos(63));
        assert_eq!(round_up(Duration::ZERO), Duration::ZERO);
        assert_eq!(round_up(Duration::MAX), Duration::MAX);
        // Two requests a few microseconds apart ask for one timeout.
        let fresh = Duration::from_secs(15);
        assert_eq!(
            round_up(fresh - Duration::from_micros(3)),
            round_up(fresh - Duration::from_micros(40))
        );
    }
}
