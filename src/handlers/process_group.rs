//! A child process that leads its own process group, so that it and every
//! process it starts can be signalled at once and none outlives the task.

use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, waitid, Pid, Signal, WaitId, WaitIdOptions};

/// A spawned group leader (spawned with `process_group(0)`). Dropping it
/// unreaped kills the group and reaps the leader, so no path leaves a zombie.
pub(crate) struct ProcessGroup {
    child: Child,
    pgid: Option<Pid>,
    reaped: bool,
}

impl ProcessGroup {
    /// Takes a child that was spawned as the leader of a new process group.
    pub fn new(child: Child) -> ProcessGroup {
        let pgid = i32::try_from(child.id()).ok().and_then(Pid::from_raw);
        ProcessGroup {
            child,
            pgid,
            reaped: false,
        }
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
