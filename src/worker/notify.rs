//! systemd readiness, status and watchdog notifications (`sd_notify`), spoken
//! by hand over the `NOTIFY_SOCKET` datagram socket.
//!
//! The protocol is one datagram of `KEY=value` lines sent to the socket that
//! systemd names in `NOTIFY_SOCKET`: a filesystem path, or an abstract socket
//! written `@name`. When the variable is unset (not under systemd, or not
//! `Type=notify`) every call does nothing. A notification that cannot be sent
//! is never fatal: systemd notices a missing `READY=1` or watchdog ping itself.

use std::ffi::{OsStr, OsString};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The environment variables systemd sets for this protocol. The exec handler
/// leaves them out of a child program's environment: a child is not the
/// service's main process, so systemd would only log its messages as refused.
pub const ENV_VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Sends notifications to systemd; does nothing when `NOTIFY_SOCKET` is unset.
///
/// Cheap to clone: clones share one socket, so the main thread can say
/// `READY=1` while the supervisor pings the watchdog.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    /// `None` when notifications are off.
    inner: Option<Arc<Inner>>,
    /// The full `WATCHDOG_USEC`, when the watchdog is on for this process.
    watchdog_usec: Option<u64>,
}

/// The socket shared by the clones of one `Notifier`.
#[derive(Debug)]
struct Inner {
    /// An unbound datagram socket: each message is addressed on its own, so a
    /// restarted systemd (same socket path) still receives them.
    socket: UnixDatagram,
    /// Where systemd listens.
    addr: SocketAddr,
    /// What `NOTIFY_SOCKET` said, for log messages.
    name: OsString,
    /// Set after the first failed send, so a broken socket logs once, not on
    /// every watchdog ping.
    failed: AtomicBool,
}

impl Notifier {
    /// A notifier configured from the environment systemd sets:
    /// `NOTIFY_SOCKET`, `WATCHDOG_USEC`, and `WATCHDOG_PID` (when set, the
    /// watchdog is meant for that process only).
    pub fn from_env() -> Notifier {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        let socket = std::env::var_os("NOTIFY_SOCKET");
        Notifier::new(
            socket.as_deref(),
            watchdog_usec(usec.as_deref(), pid.as_deref(), std::process::id()),
        )
    }

    /// A notifier that sends to `socket` (a path, or `@name` for an abstract
    /// socket) and whose watchdog interval derives from `watchdog_usec`.
    /// `None`, an empty or a relative socket name gives a notifier that does
    /// nothing; a watchdog of 0 µs counts as off.
    pub fn new(socket: Option<&OsStr>, watchdog_usec: Option<u64>) -> Notifier {
        let Some(name) = socket.filter(|s| !s.is_empty()) else {
            return Notifier::default();
        };
        let addr = match socket_addr(name) {
            Ok(addr) => addr,
            Err(e) => {
                log::debug!("sd_notify: NOTIFY_SOCKET={name:?} unusable: {e}; notifications off");
                return Notifier::default();
            }
        };
        let socket = match UnixDatagram::unbound() {
            Ok(socket) => socket,
            Err(e) => {
                log::debug!("sd_notify: cannot create a socket: {e}; notifications off");
                return Notifier::default();
            }
        };
        Notifier {
            inner: Some(Arc::new(Inner {
                socket,
                addr,
                name: name.to_owned(),
                failed: AtomicBool::new(false),
            })),
            watchdog_usec: watchdog_usec.filter(|&u| u > 0),
        }
    }

    /// Whether notifications go anywhere (`NOTIFY_SOCKET` was usable).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Tells systemd that start-up is over (`READY=1`): the configuration is
    /// valid and the worker's threads run.
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// Tells systemd that a reload began (`RELOADING=1` with the
    /// `MONOTONIC_USEC` that systemd's reload protocol asks for); [`ready`]
    /// ends it, whether the reload was applied or refused.
    ///
    /// [`ready`]: Notifier::ready
    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    /// Tells systemd that the worker is draining (`STOPPING=1`).
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// Sets the one-line status that `systemctl status` shows (`STATUS=`).
    /// Line breaks become spaces, since each line of a message is one key.
    pub fn status(&self, text: &str) {
        self.send(&format!("STATUS={}", text.replace(['\n', '\r'], " ")));
    }

    /// Pings the watchdog (`WATCHDOG=1`); call it every [`watchdog_interval`].
    ///
    /// [`watchdog_interval`]: Notifier::watchdog_interval
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// How often to ping the watchdog: half of `WATCHDOG_USEC`, as systemd
    /// advises, so one late ping is not yet a missed one. `None` when the
    /// watchdog is off.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog_usec.map(|u| Duration::from_micros(u / 2))
    }

    /// Sends one message; a failure is logged once at debug level and ignored.
    fn send(&self, message: &str) {
        let Some(inner) = &self.inner else { return };
        if let Err(e) = inner.socket.send_to_addr(message.as_bytes(), &inner.addr) {
            if !inner.failed.swap(true, Ordering::Relaxed) {
                log::debug!(
                    "sd_notify: cannot send to NOTIFY_SOCKET={:?}: {e} (logged once)",
                    inner.name
                );
            }
        }
    }
}

/// Now on `CLOCK_MONOTONIC`, in microseconds, as systemd reads it.
fn monotonic_usec() -> u128 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    // Both parts are never negative; a clock that says otherwise reads as 0.
    let secs = u128::try_from(now.tv_sec).unwrap_or(0);
    let micros = u128::try_from(now.tv_nsec).unwrap_or(0) / 1000;
    secs * 1_000_000 + micros
}

/// The socket address `NOTIFY_SOCKET` names: `@name` is an abstract socket,
/// anything else must be an absolute path (as systemd itself requires).
fn socket_addr(name: &OsStr) -> std::io::Result<SocketAddr> {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(name),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "neither an absolute path nor @name",
        )),
    }
}

/// The watchdog timeout in µs from `WATCHDOG_USEC` and `WATCHDOG_PID`: `None`
/// when unset, unparsable, zero, or meant for another process than `our_pid`.
fn watchdog_usec(usec: Option<&str>, pid: Option<&str>, our_pid: u32) -> Option<u64> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    match pid {
        Some(pid) if pid.trim().parse::<u32>().ok() != Some(our_pid) => None,
        _ => Some(usec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::AtomicUsize;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = crate::test_path(&format!("notify-{n}"));
            std::fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Receives one datagram, failing the test after 5 s instead of hanging.
    fn recv(listener: &UnixDatagram) -> String {
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set timeout");
        let mut buf = [0u8; 4096];
        let n = listener.recv(&mut buf).expect("a notification within 5 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_each_message_to_a_path_socket() {
        let dir = TempDir::new();
        let path = dir.0.join("notify.sock");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier::new(Some(path.as_os_str()), None);
        assert!(notifier.is_enabled());

        notifier.ready();
        assert_eq!(recv(&listener), "READY=1");
        notifier.status("draining\n3 in flight");
        assert_eq!(recv(&listener), "STATUS=draining 3 in flight");
        notifier.clone().watchdog();
        assert_eq!(recv(&listener), "WATCHDOG=1");
        notifier.stopping();
        assert_eq!(recv(&listener), "STOPPING=1");
        let before = monotonic_usec();
        notifier.reloading();
        let message = recv(&listener);
        let usec: u128 = message
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{message:?}"));
        assert!(before <= usec && usec <= monotonic_usec(), "{message:?}");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("taskworker-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        let notifier = Notifier::new(Some(OsStr::new(&format!("@{name}"))), None);

        notifier.ready();
        assert_eq!(recv(&listener), "READY=1");
    }

    #[test]
    fn does_nothing_without_a_usable_socket() {
        for socket in [None, Some(""), Some("relative/notify.sock")] {
            let notifier = Notifier::new(socket.map(OsStr::new), Some(30_000_000));
            assert!(!notifier.is_enabled(), "{socket:?}");
            assert_eq!(notifier.watchdog_interval(), None, "{socket:?}");
            notifier.ready();
            notifier.watchdog();
        }
    }

    #[test]
    fn send_failures_are_not_fatal() {
        let dir = TempDir::new();
        let notifier = Notifier::new(Some(dir.0.join("nobody.sock").as_os_str()), None);
        assert!(notifier.is_enabled());
        notifier.ready();
        notifier.watchdog();
        assert!(notifier
            .inner
            .as_ref()
            .is_some_and(|i| i.failed.load(Ordering::Relaxed)));
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout() {
        let dir = TempDir::new();
        let socket = dir.0.join("notify.sock");
        let on = Notifier::new(Some(socket.as_os_str()), Some(30_000_000));
        assert_eq!(on.watchdog_interval(), Some(Duration::from_secs(15)));
        let off = Notifier::new(Some(socket.as_os_str()), Some(0));
        assert_eq!(off.watchdog_interval(), None);
    }

    #[test]
    fn watchdog_is_only_for_the_named_process() {
        assert_eq!(watchdog_usec(Some("30000000"), None, 7), Some(30_000_000));
        assert_eq!(
            watchdog_usec(Some("30000000"), Some("7"), 7),
            Some(30_000_000)
        );
        assert_eq!(watchdog_usec(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_usec(Some("30000000"), Some("x"), 7), None);
        assert_eq!(watchdog_usec(Some("0"), None, 7), None);
        assert_eq!(watchdog_usec(Some("soon"), None, 7), None);
        assert_eq!(watchdog_usec(None, Some("7"), 7), None);
    }
}
