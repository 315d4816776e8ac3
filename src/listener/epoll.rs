//! The two kernel objects the event loop waits on, behind safe calls:
//! an epoll instance that says which sockets are ready, and an eventfd
//! [`Waker`] through which handler threads wake the loop when an answer
//! is ready.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::event::{epoll, eventfd, EventfdFlags, Timespec};

/// What a registered socket is waited on for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Bytes to read (or the peer closing).
    Read,
    /// Room to write.
    Write,
    /// Nothing: a request is with a handler. Errors and hang-ups still come.
    Nothing,
    /// The peer closing its side too: a request that waits (a parked long
    /// poll) ends when its client has gone. Bytes it pipelined are left unread.
    Hangup,
}

impl Interest {
    fn flags(self) -> epoll::EventFlags {
        match self {
            Interest::Read => epoll::EventFlags::IN,
            Interest::Write => epoll::EventFlags::OUT,
            Interest::Nothing => epoll::EventFlags::empty(),
            Interest::Hangup => epoll::EventFlags::RDHUP,
        }
    }
}

/// One readiness report: the key a socket was registered with, and whether
/// it hung up or failed (then reading or writing says how).
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    /// The registration key.
    pub key: u64,
    /// `EPOLLHUP`, `EPOLLERR`, or `EPOLLRDHUP` when [`Interest::Hangup`] asked for it.
    pub hung_up: bool,
}

/// An epoll instance, level-triggered.
pub struct Epoll {
    fd: OwnedFd,
    batch: usize,
}

impl Epoll {
    /// A new instance that reports up to `batch` sockets per wait.
    pub fn new(batch: usize) -> io::Result<Epoll> {
        Ok(Epoll {
            fd: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            batch: batch.max(1),
        })
    }

    /// Starts watching `source` under `key`.
    pub fn add(&self, source: impl AsFd, key: u64, interest: Interest) -> io::Result<()> {
        let data = epoll::EventData::new_u64(key);
        Ok(epoll::add(&self.fd, source, data, interest.flags())?)
    }

    /// Changes what `source` is watched for.
    pub fn modify(&self, source: impl AsFd, key: u64, interest: Interest) -> io::Result<()> {
        let data = epoll::EventData::new_u64(key);
        Ok(epoll::modify(&self.fd, source, data, interest.flags())?)
    }

    /// Stops watching `source` (closing it would too; this is explicit).
    pub fn delete(&self, source: impl AsFd) {
        let _ = epoll::delete(&self.fd, source);
    }

    /// Waits for readiness, at most `timeout` (forever with `None`), and
    /// appends what is ready to `out`. An interrupted wait returns nothing.
    pub fn wait(&self, timeout: Option<Duration>, out: &mut Vec<Ready>) -> io::Result<()> {
        let timeout = timeout.map(|t| Timespec {
            tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        // Made here, not kept: an event holds a pointer-sized union, which
        // would keep the loop from moving to its thread.
        let mut events = Vec::with_capacity(self.batch);
        let spare = rustix::buffer::spare_capacity(&mut events);
        match epoll::wait(&self.fd, spare, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let failed = epoll::EventFlags::HUP | epoll::EventFlags::ERR | epoll::EventFlags::RDHUP;
        out.extend(events.iter().map(|e| {
            // Copied out: the kernel's struct is packed.
            let (flags, data) = (e.flags, e.data);
            Ready {
                key: data.u64(),
                hung_up: flags.intersects(failed),
            }
        }));
        Ok(())
    }
}

/// Wakes the event loop from another thread; many wakes before the loop
/// looks cost one write.
pub struct Waker {
    fd: OwnedFd,
    pending: AtomicBool,
}

impl Waker {
    /// A new, non-blocking eventfd.
    pub fn new() -> io::Result<Waker> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Waker {
            fd,
            pending: AtomicBool::new(false),
        })
    }

    /// What the loop registers to be woken.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Makes the loop's next (or current) wait return.
    pub fn wake(&self) {
        // SeqCst: whatever was sent before this call is seen by the loop
        // after it clears the flag in `reset`.
        if !self.pending.swap(true, Ordering::SeqCst) {
            let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        }
    }

    /// Called by the loop when woken, before it takes what was sent.
    pub fn reset(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut buf);
        self.pending.store(false, Ordering::SeqCst);
    }
}
