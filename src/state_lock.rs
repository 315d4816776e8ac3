//! One owner per state: an exclusive `flock` on a lock file, held as long as
//! its value lives, so that two workers never share a spool and two servers
//! never append to one journal.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

/// The name of the worker's lock file in its state directory.
pub const FILE_NAME: &str = "taskworker.lock";

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it.
    Held {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, when it has written it yet.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Held {
                path,
                pid: Some(pid),
            } => write!(
                f,
                "{} is held by another process (pid {pid})",
                path.display()
            ),
            LockError::Held { path, pid: None } => {
                write!(f, "{} is held by another process", path.display())
            }
            LockError::Io { path, source } => write!(f, "locking {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for LockError {}

/// An exclusive lock on a file; dropping it (or the process ending, however
/// it ends) releases it.
#[derive(Debug)]
pub struct StateLock {
    // The lock belongs to this open file; closing it unlocks.
    _file: File,
}

impl StateLock {
    /// Takes the lock on `path` (creating the file, mode 0600) without
    /// waiting, and writes our pid into it.
    pub fn acquire(path: &Path) -> Result<StateLock, LockError> {
        let io_err = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Not truncated on open: the pid in it is the holder's until we hold it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    pid: holder(&mut file),
                })
            }
            Err(e) => return Err(io_err(e.into())),
        }
        // The pid is for people reading the message; the lock does not depend on it.
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(io_err)?;
        Ok(StateLock { _file: file })
    }
}

/// The pid the holder wrote, when there is one yet.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_second_lock_names_the_holder_and_a_drop_releases_it() {
        let dir = crate::test_path("lock");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        let first = StateLock::acquire(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // flock belongs to an open file, so a second open in one process conflicts too.
        match StateLock::acquire(&path) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected held, got {other:?}"),
        }
        let msg = StateLock::acquire(&path).unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        drop(first);
        StateLock::acquire(&path).unwrap();
    }
}
