//! Durability: each changed task is appended as one JSON line and synced
//! before the change is acknowledged (group commit on a writer thread);
//! replayed and compacted on start.

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::record::TaskRecord;
use crate::state_lock::{LockError, StateLock};

/// How long a request waits for its change to reach the disk before it is
/// answered with an error instead.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong with the journal.
#[derive(Debug)]
pub enum JournalError {
    /// Reading, writing or syncing the file failed.
    Io {
        /// What was being done, with the path.
        context: String,
        /// The cause.
        source: io::Error,
    },
    /// A line before the last one is not a task record.
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why it does not parse.
        problem: String,
    },
    /// An earlier write failed, or a sync took too long: changes are not durable.
    NotDurable(String),
    /// Another server holds the journal's lock.
    Locked(LockError),
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io { context, source } => write!(f, "{context}: {source}"),
            JournalError::Corrupt {
                path,
                line,
                problem,
            } => write!(f, "journal {}: line {line}: {problem}", path.display()),
            JournalError::NotDurable(why) => write!(f, "journal: {why}"),
            JournalError::Locked(e) => write!(f, "journal in use by another server: {e}"),
        }
    }
}

impl std::error::Error for JournalError {}

fn io_err(context: String) -> impl FnOnce(io::Error) -> JournalError {
    move |source| JournalError::Io { context, source }
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    appended: u64,
    synced: u64,
    error: Option<String>,
    stop: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    work: Condvar,
    synced: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic elsewhere while holding this lock leaves plain data behind.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The append-only journal of one server.
pub struct Journal {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    // Released last, after the writer has synced and stopped.
    _lock: StateLock,
}

impl Journal {
    /// Replays `path` (creating it when missing), rewrites it with one line
    /// per task, and starts the writer. Returns the journal and the tasks.
    pub fn open(path: &Path) -> Result<(Journal, Vec<TaskRecord>), JournalError> {
        let lock = StateLock::acquire(&lock_path(path)).map_err(JournalError::Locked)?;
        let records = replay(path)?;
        compact(path, &records)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_err(format!("opening journal {}", path.display())))?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            work: Condvar::new(),
            synced: Condvar::new(),
        });
        let inner = Arc::clone(&shared);
        let shown = path.display().to_string();
        let writer = thread::Builder::new()
            .name("taskworker-journal".into())
            .spawn(move || write_loop(&inner, file, &shown))
            .map_err(io_err("starting the journal writer".into()))?;
        let journal = Journal {
            shared,
            writer: Some(writer),
            _lock: lock,
        };
        Ok((journal, records))
    }

    /// Appends a record; returns the ticket to [`Journal::wait`] for.
    pub fn append(&self, rec: &TaskRecord) -> u64 {
        let mut line = match serde_json::to_vec(rec) {
            Ok(line) => line,
            Err(e) => {
                log::error!("journal: cannot encode task {:?}: {e}", rec.id);
                return 0;
            }
        };
        line.push(b'\n');
        let mut p = self.shared.lock();
        p.buf.extend_from_slice(&line);
        p.appended += line.len() as u64;
        self.shared.work.notify_one();
        p.appended
    }

    /// Blocks until everything up to `ticket` is on disk.
    pub fn wait(&self, ticket: u64) -> Result<(), JournalError> {
        let mut p = self.shared.lock();
        while p.synced < ticket && p.error.is_none() {
            let (guard, timeout) = self
                .shared
                .synced
                .wait_timeout(p, SYNC_TIMEOUT)
                .unwrap_or_else(|e| e.into_inner());
            p = guard;
            if timeout.timed_out() && p.synced < ticket {
                return Err(JournalError::NotDurable("sync timed out".into()));
            }
        }
        match &p.error {
            Some(e) if p.synced < ticket => Err(JournalError::NotDurable(e.clone())),
            _ => Ok(()),
        }
    }
}

impl Drop for Journal {
    /// Writes and syncs what is pending, then stops the writer.
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_loop(shared: &Shared, mut file: File, path: &str) {
    let mut spare = Vec::new();
    loop {
        let (mut buf, target) = {
            let mut p = shared.lock();
            while p.buf.is_empty() && !p.stop {
                p = shared.work.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.buf.is_empty() {
                return;
            }
            (
                std::mem::replace(&mut p.buf, std::mem::take(&mut spare)),
                p.appended,
            )
        };
        let res = file.write_all(&buf).and_then(|()| file.sync_data());
        buf.clear();
        spare = buf;
        let mut p = shared.lock();
        match res {
            Ok(()) => p.synced = target,
            Err(e) => {
                log::error!("journal {path}: write failed: {e}");
                p.error = Some(format!("write to {path} failed: {e}"));
            }
        }
        shared.synced.notify_all();
        if p.error.is_some() {
            return;
        }
    }
}

/// The lock file of the journal `path`: `path` with `.lock` added.
fn lock_path(path: &Path) -> PathBuf {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    PathBuf::from(lock)
}

/// Reads every record, the last line of each id winning; a torn last line is
/// skipped with a warning.
fn replay(path: &Path) -> Result<Vec<TaskRecord>, JournalError> {
    let mut text = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut text)
                .map_err(io_err(format!("reading journal {}", path.display())))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("opening journal {}", path.display()))(e)),
    }
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let last = lines
        .iter()
        .rposition(|l| !l.trim_ascii().is_empty())
        .unwrap_or(0);
    let mut by_id: HashMap<String, TaskRecord> = HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<TaskRecord>(line) {
            Ok(rec) => {
                by_id.insert(rec.id.clone(), rec);
            }
            Err(e) if i == last => {
                log::warn!(
                    "journal {}: skipping torn last line {}: {e}",
                    path.display(),
                    i + 1
                );
            }
            Err(e) => {
                return Err(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    line: i + 1,
                    problem: e.to_string(),
                })
            }
        }
    }
    let mut records: Vec<TaskRecord> = by_id.into_values().collect();
    records.sort_by_key(|r| r.seq);
    Ok(records)
}

/// Rewrites the journal with one line per task, atomically.
fn compact(path: &Path, records: &[TaskRecord]) -> Result<(), JournalError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".compact");
    let tmp = PathBuf::from(tmp);
    let mut out = Vec::new();
    for rec in records {
        if serde_json::to_writer(&mut out, rec).is_ok() {
            out.push(b'\n');
        }
    }
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            // Task parameters and results may be private: only the owner reads them.
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    };
    write().map_err(io_err(format!("compacting journal {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::record::Status;
    use crate::task::Priority;
    use serde_json::json;

    fn record(id: &str, seq: u64, status: Status) -> TaskRecord {
        TaskRecord {
            id: id.into(),
            task_type: "echo".into(),
            parameters: json!({"n": seq}),
            priority: Priority::Medium,
            max_attempts: 3,
            timeout_seconds: None,
            created_at: 1,
            seq,
            status,
            attempt: 0,
            ready_at: 1,
            lease: None,
            result: None,
            error: None,
            history: vec![],
        }
    }

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("taskworker-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn replays_last_record_per_id_and_skips_a_torn_tail() {
        let path = temp_path("torn.jsonl");
        {
            let (j, recs) = Journal::open(&path).unwrap();
            assert!(recs.is_empty());
            j.append(&record("a", 1, Status::Queued));
            j.append(&record("b", 2, Status::Queued));
            let t = j.append(&record("a", 1, Status::Completed));
            j.wait(t).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"id":"c","type":"ec"#).unwrap();
        drop(f);
        let (_j, recs) = Journal::open(&path).unwrap();
        let got: Vec<(&str, Status)> = recs.iter().map(|r| (r.id.as_str(), r.status)).collect();
        assert_eq!(got, [("a", Status::Completed), ("b", Status::Queued)]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "compacted to one line per task");
    }

    #[test]
    fn a_corrupt_middle_line_is_an_error_naming_the_line() {
        let path = temp_path("corrupt.jsonl");
        let good = serde_json::to_string(&record("a", 1, Status::Queued)).unwrap();
        std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
        match Journal::open(&path) {
            Err(JournalError::Corrupt { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected corrupt, got {:?}", other.map(|_| ())),
        }
    }
}
