//! The orphan reaper. As PID 1 (a container's init) or as a subreaper, every
//! process that a handler's program leaves behind becomes this process's
//! child when its parent ends; this thread reaps those that exit, so that
//! zombies never pile up. Handlers' own group leaders are left to the
//! handler that waits for them (see `process_group::reap_orphan`).

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::handlers::process_group::reap_orphan;

/// How often the reaper looks, when a child has ended since the last look.
const TICK: Duration = Duration::from_millis(250);

/// Makes this process the reaper of its descendants' orphans (a no-op as
/// PID 1, which is one already), and starts the thread that reaps them
/// until `done` disconnects.
pub(crate) fn spawn(done: Receiver<()>) -> std::io::Result<JoinHandle<()>> {
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        log::warn!("cannot become a subreaper ({e}): orphans of handlers go to PID 1");
    }
    // A child ended: worth a look. Without the signal, look on every tick.
    let child_ended = Arc::new(AtomicBool::new(true));
    let flagged =
        signal_hook::flag::register(signal_hook::consts::SIGCHLD, child_ended.clone()).is_ok();
    thread::Builder::new()
        .name("taskworker-reaper".into())
        .spawn(move || loop {
            match done.recv_timeout(TICK) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            if child_ended.swap(false, Ordering::Relaxed) || !flagged {
                let reaped = reap_exited_orphans();
                if reaped > 0 {
                    log::debug!("reaped {reaped} orphaned process(es)");
                }
            }
        })
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
