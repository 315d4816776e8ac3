//! A child process that leads its own process group, so that it and every
//! process it starts can be signalled at once and none outlives the task;
//! the reaping of the orphans such groups leave behind; and the killing of
//! every group at once, for an exit that does not wait.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{
    kill_process_group, waitid, waitpid, Pid, Signal, WaitId, WaitIdOptions, WaitOptions,
};

/// The group leaders a handler still waits for. The orphan reaper leaves
/// these to their owner, so that it never steals a handler's exit status;
/// a leader is added under the same lock as its spawn, so no reaper can see
/// it exit before it is known.
static LEADERS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Set once every group was killed for the exit: no new group may start,
/// since nothing would be left to kill it.
static CLOSED: AtomicBool = AtomicBool::new(false);

fn leaders() -> MutexGuard<'static, BTreeSet<i32>> {
    LEADERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kills every process group a handler still waits for (SIGKILL) and lets
/// no new one start: for an exit that does not wait, so that no handler
/// program outlives the worker. Returns how many groups it killed.
pub(crate) fn kill_all() -> usize {
    let leaders = leaders();
    CLOSED.store(true, Ordering::SeqCst);
    for pgid in leaders.iter().filter_map(|&pid| Pid::from_raw(pid)) {
        let _ = kill_process_group(pgid, Signal::KILL);
    }
    leaders.len()
}

/// Reaps `pid` if it is a child of this process that no handler waits for
/// (an orphan that was re-parented to us as PID 1 or as a subreaper).
/// Returns whether it reaped it.
pub(crate) fn reap_orphan(pid: i32) -> bool {
    let leaders = leaders();
    if leaders.contains(&pid) {
        return false;
    }
    let Some(pid) = Pid::from_raw(pid) else {
        return false;
    };
    matches!(waitpid(Some(pid), WaitOptions::NOHANG), Ok(Some(_)))
}

/// A spawned group leader (spawned with `process_group(0)`). Dropping it
/// unreaped kills the group and reaps the leader, so no path leaves a zombie.
pub(crate) struct ProcessGroup {
    child: Child,
    pgid: Option<Pid>,
    reaped: bool,
}

impl ProcessGroup {
    /// Spawns `command` as the leader of a new process group: one signal
    /// reaches it and everything it starts.
    pub fn spawn(command: &mut Command) -> std::io::Result<ProcessGroup> {
        let mut leaders = leaders();
        if CLOSED.load(Ordering::SeqCst) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "the worker is exiting",
            ));
        }
        let child = command.process_group(0).spawn()?;
        let pgid = i32::try_from(child.id()).ok().and_then(Pid::from_raw);
        if let Some(pid) = pgid {
            leaders.insert(pid.as_raw_nonzero().get());
        }
        Ok(ProcessGroup {
            child,
            pgid,
            reaped: false,
        })
    }

    /// The spawned child, to take its pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Whether the leader has exited. It is not reaped, so its pid (the
    /// group's id) cannot be reused while we may still signal the group.
    pub fn leader_exited(&self) -> bool {
        let Some(pid) = self.pgid else { return true };
        let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        match waitid(WaitId::Pid(pid), opts) {
            Ok(status) => status.is_some(),
            Err(rustix::io::Errno::INTR) => false,
            // ECHILD: already reaped, so it has exited.
            Err(_) => true,
        }
    }

    /// Sends `signal` to every process of the group; a group that is gone
    /// already is not an error.
    pub fn signal(&self, signal: Signal) {
        // Once the leader is reaped its id may be reused: never signal then.
        if let (Some(pgid), false) = (self.pgid, self.reaped) {
            let _ = kill_process_group(pgid, signal);
        }
    }

    /// Waits up to `grace` for the leader to exit, without spinning.
    pub fn wait_exit(&self, grace: Duration) -> bool {
        let until = crate::bounded::instant_after(Instant::now(), grace);
        let mut pause = Duration::from_millis(1);
        loop {
            if self.leader_exited() {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Kills whatever is left of the group, then reaps the leader.
    pub fn kill_and_reap(&mut self) -> std::io::Result<ExitStatus> {
        self.signal(Signal::KILL);
        let status = self.child.wait();
        self.reaped = true;
        if let Some(pid) = self.pgid {
            leaders().remove(&pid.as_raw_nonzero().get());
        }
        status
    }

    /// Stops the group: SIGTERM, then SIGKILL after `grace` if the leader is
    /// still there; anything left of the group is killed in the end.
    pub fn stop(&mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        self.signal(Signal::TERM);
        self.wait_exit(grace);
        self.kill_and_reap()
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.kill_and_reap();
        }
    }
}
