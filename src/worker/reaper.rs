//! The orphan reaper. As PID 1 (a container's init) or as a subreaper, every
//! process that a handler's program leaves behind becomes this process's
//! child when its parent ends; this thread reaps those that exit, so that
//! zombies never pile up. Handlers' own group leaders are left to the
//! handler that waits for them (see `process_group::reap_orphan`).

use std::fs;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use signal_hook::consts::SIGCHLD;
use signal_hook::iterator::{Handle, Signals};

use crate::handlers::process_group::reap_orphan;

/// How often the reaper looks when it cannot hear SIGCHLD.
const TICK: Duration = Duration::from_millis(250);

/// The running reaper thread.
pub(crate) struct Reaper {
    thread: JoinHandle<()>,
    /// Ends its wait for SIGCHLD; `None` when it polls and waits on `done`.
    signals: Option<Handle>,
}

impl Reaper {
    /// Stops the thread (once `done` has disconnected) and waits for it.
    pub(crate) fn stop(self) {
        if let Some(signals) = self.signals {
            signals.close();
        }
        let _ = self.thread.join();
    }
}

/// Makes this process the reaper of its descendants' orphans (a no-op as
/// PID 1, which is one already), and starts the thread that reaps them. It
/// sleeps until a child ends; when SIGCHLD cannot be caught it looks every
/// [`TICK`] instead, until `done` disconnects.
pub(crate) fn spawn(done: Receiver<()>) -> std::io::Result<Reaper> {
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        log::warn!("cannot become a subreaper ({e}): orphans of handlers go to PID 1");
    }
    let builder = thread::Builder::new().name("taskworker-reaper".into());
    match Signals::new([SIGCHLD]) {
        Ok(mut signals) => {
            let handle = signals.handle();
            let thread = builder.spawn(move || {
                // Children that ended before the handler was in place, then
                // one look per SIGCHLD; ends when the handle is closed.
                reap_and_log();
                for _ in signals.forever() {
                    reap_and_log();
                }
            })?;
            Ok(Reaper {
                thread,
                signals: Some(handle),
            })
        }
        Err(e) => {
            log::debug!(
                "cannot catch SIGCHLD ({e}): orphans are looked for every {} ms",
                TICK.as_millis()
            );
            let thread = builder.spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = done.recv_timeout(TICK) {
                    reap_and_log();
                }
            })?;
            Ok(Reaper {
                thread,
                signals: None,
            })
        }
    }
}

fn reap_and_log() {
    let reaped = reap_exited_orphans();
    if reaped > 0 {
        log::debug!("reaped {reaped} orphaned process(es)");
    }
}

/// Reaps every exited child of this process that no handler waits for;
/// returns how many.
fn reap_exited_orphans() -> usize {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| zombie_parent(&stat))
                == Some(me)
        })
        .filter(|pid| reap_orphan(*pid))
        .count()
}

/// The parent pid of a zombie, from its `/proc/PID/stat` line; `None` for a
/// process that still runs or a line that does not parse. The command name
/// may hold spaces and parentheses, so fields are counted from the last `)`.
fn zombie_parent(stat: &str) -> Option<i32> {
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    (state == "Z").then_some(ppid)
}

#[cfg(test)]
mod tests {
    use super::zombie_parent;

    #[test]
    fn reads_the_parent_of_a_zombie_only() {
        assert_eq!(zombie_parent("4242 (sleep) Z 17 4242 17 0 -1"), Some(17));
        assert_eq!(zombie_parent("4242 (a) b) Z) Z 9 1 1"), Some(9));
        assert_eq!(zombie_parent("4242 (sleep) S 17 4242 17 0 -1"), None);
        assert_eq!(zombie_parent("garbage"), None);
        assert_eq!(zombie_parent("1 (x) Z notanumber"), None);
    }
}
