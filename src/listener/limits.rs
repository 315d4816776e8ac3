//! The bounds a listener keeps: how many connections, how long each phase of
//! a connection may take, how large a request may be, and how many handler
//! threads answer requests.

use std::time::{Duration, Instant};

/// The bounds of one listener; [`Limits::server`] and [`Limits::health`] are
/// the two in use, and tests build others with `Limits { ..Limits::server() }`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once. At the cap the oldest idle connection is
    /// closed to admit a new one; with none idle the new one gets 503.
    pub max_connections: usize,
    /// Threads that answer complete requests; connections, parked long
    /// polls included, take none.
    pub handler_threads: usize,
    /// From the first byte of a request to its last (head and body).
    pub request_timeout: Duration,
    /// How long a connection may wait for the first byte of a request.
    pub idle_timeout: Duration,
    /// From the first byte of an answer to its last.
    pub write_timeout: Duration,
    /// The request line plus headers, in bytes.
    pub max_head: usize,
    /// Header lines in one request.
    pub max_headers: usize,
    /// The request body, in bytes; larger ones get 413.
    pub max_body: usize,
}

impl Limits {
    /// The reference server's bounds.
    pub fn server() -> Limits {
        Limits {
            // A worker holds two or three connections (claims, reports,
            // heartbeats), so this serves some five thousand workers, each
            // connection costing a socket and a few KiB, no thread; the
            // unit's LimitNOFILE leaves room for it.
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handler_threads: default_handler_threads(),
            // A worker sends each request in one write; 30 s carries a full
            // 1 MiB body over a link as slow as 35 KB/s.
            request_timeout: Duration::from_secs(30),
            // Longer than a client's pool keeps a connection idle (15 s for
            // ureq), so the server is not the one closing a connection the
            // client is about to reuse; idle ones are evicted at the cap anyway.
            idle_timeout: Duration::from_secs(75),
            // An answer is at most a list of tasks; a client that has not
            // taken it in 30 s is gone or hostile.
            write_timeout: Duration::from_secs(30),
            // Headers of real clients fit in a few hundred bytes.
            max_head: 64 * 1024,
            max_headers: 100,
            // The task API's documented limit for a request body.
            max_body: 1 << 20,
        }
    }

    /// The health server's bounds: a few local probes, tiny requests.
    pub fn health() -> Limits {
        Limits {
            // Probes (systemd, a load balancer, Prometheus) come one or two at
            // a time.
            max_connections: 16,
            // Every answer is quick; two, so that a slow `/metrics` scrape
            // does not hold up a liveness probe.
            handler_threads: 2,
            // Probe timeouts are a second or a few; a probe slower than this
            // has given up already.
            request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(5),
            max_head: 16 * 1024,
            max_headers: 100,
            // Every route is a GET.
            max_body: 4 * 1024,
        }
    }
}

/// The reference server's connection cap unless `--max-connections` says.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// Two handler threads per core, at least 8: a handler may wait on the
/// journal's fsync or on a Redis round trip, so a few more threads than
/// cores keep the cores busy; at most 32, since connections need none.
pub fn default_handler_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (2 * cores).clamp(8, 32)
}

/// Raises this process's soft limit on open files to its hard limit, so
/// that a listener's connection cap is not cut short by the usual soft
/// limit of 1024; returns the soft limit in force after.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    // No hard limit: the kernel's own ceiling (fs.nr_open) is 2^20 by default.
    let hard = limit.maximum.unwrap_or(1 << 20);
    if limit.current.is_some_and(|soft| soft < hard) {
        let raised = Rlimit {
            current: Some(hard),
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return hard;
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

/// After an early answer (401, 413, ...) the connection reads and drops what
/// the client still sends, for this long at most, before it closes: closing
/// with unread bytes would reset the connection and could destroy the answer
/// before the client reads it (a client commonly sends its whole body first).
pub const LINGER_TIME: Duration = Duration::from_secs(2);
/// ... and this many bytes at most: a few times the largest body, so that a
/// client that sent a whole refused body still reads the answer. Dropped as
/// they come, they take no memory.
pub const LINGER_BYTES: usize = 4 << 20;
/// The size of each read from a socket: the most a connection holds beyond
/// its head and body limits.
pub const READ_CHUNK: usize = 8 * 1024;
/// At most one log line a minute says the connection cap was reached.
pub const CAP_LOG_PERIOD: Duration = Duration::from_secs(60);

/// What a connection is waiting for, and so which bound applies to the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between requests: waiting for a first byte.
    Idle,
    /// Reading a request whose first byte came.
    Reading,
    /// Writing an answer.
    Writing,
}

impl Phase {
    /// The deadline of this phase when it starts at `start`.
    pub fn deadline(self, limits: &Limits, start: Instant) -> Instant {
        start
            + match self {
                Phase::Idle => limits.idle_timeout,
                Phase::Reading => limits.request_timeout,
                Phase::Writing => limits.write_timeout,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_has_its_own_bound() {
        let limits = Limits::health();
        let t = Instant::now();
        assert_eq!(Phase::Idle.deadline(&limits, t), t + limits.idle_timeout);
        assert_eq!(
            Phase::Reading.deadline(&limits, t),
            t + limits.request_timeout
        );
        assert_eq!(
            Phase::Writing.deadline(&limits, t),
            t + limits.write_timeout
        );
    }
}
