//! Durability: each change is appended as one JSON line and synced before
//! it is acknowledged (group commit on a writer thread); replayed and
//! compacted on start, and compacted again while running once the file has
//! grown past a multiple of the live data. A failed write or sync is final:
//! the journal refuses every later change until a restart.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde::Serialize;

use crate::server::record::{Entry, TaskRecord};
use crate::state_lock::{LockError, StateLock};

/// How long a request waits for its change to reach the disk before it is
/// answered with an error instead.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// The file is compacted while running once it is this many times the size
/// of the live data: rewriting costs the live data once, so the file stays
/// within a small multiple of what it must hold, and the rewrites cost a
/// fraction of the appends.
const COMPACT_RATIO: u64 = 4;

/// Nor before it is this large: a small file costs nothing to replay.
const COMPACT_FLOOR: u64 = 1 << 20;

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

/// How big the file is, and how much of it the newest line of each task takes.
#[derive(Default)]
struct Size {
    file: u64,
    live: u64,
    by_id: HashMap<String, u64>,
}

impl Size {
    /// Counts a line of `len` bytes; `task` when it holds the whole of that
    /// task (replacing its older line), `None` for a change of part of one.
    fn add(&mut self, len: u64, task: Option<&str>) {
        self.file += len;
        if let Some(id) = task {
            let old = self.by_id.insert(id.to_string(), len).unwrap_or(0);
            self.live = self.live + len - old;
        }
    }

    /// Forgets a dropped task's line.
    fn forget(&mut self, id: &str) {
        self.live -= self.by_id.remove(id).unwrap_or(0);
    }
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// A snapshot of every live task that replaces the file, with `buf` after it.
    rewrite: Option<Vec<u8>>,
    appended: u64,
    synced: u64,
    /// Writes made durable so far (each one sync of the file).
    syncs: u64,
    /// Holds of [`Journal::hold`] not yet released: the writer waits for
    /// the lines of one change to be complete before it syncs them.
    held: usize,
    error: Option<String>,
    stop: bool,
    size: Size,
    /// Test hook: the next write fails as a full disk would.
    #[cfg(test)]
    fail_next: bool,
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

/// What a journal held when it was opened.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Every task, in enqueue order.
    pub tasks: Vec<TaskRecord>,
    /// The paused types.
    pub paused: Vec<String>,
}

/// The append-only journal of one server.
pub struct Journal {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    compact_floor: u64,
    // Released last, after the writer has synced and stopped.
    lock: Mutex<Option<StateLock>>,
}

impl Journal {
    /// Locks `path`, replays it (creating it when missing), rewrites it with
    /// one line per task and paused type, and starts the writer. Returns the
    /// journal and what it held.
    pub fn open(path: &Path) -> Result<(Journal, Replayed), JournalError> {
        let lock = StateLock::acquire(&lock_path(path)).map_err(JournalError::Locked)?;
        let replayed = replay(path)?;
        let (snapshot, size) = encode(&replayed.tasks, &replayed.paused);
        let file = rewrite(path, &snapshot)
            .map_err(io_err(format!("compacting journal {}", path.display())))?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                size,
                ..Pending::default()
            }),
            work: Condvar::new(),
            synced: Condvar::new(),
        });
        let inner = Arc::clone(&shared);
        let path = path.to_path_buf();
        let writer = thread::Builder::new()
            .name("taskworker-journal".into())
            .spawn(move || write_loop(&inner, file, &path))
            .map_err(io_err("starting the journal writer".into()))?;
        let journal = Journal {
            shared,
            writer: Mutex::new(Some(writer)),
            compact_floor: COMPACT_FLOOR,
            lock: Mutex::new(Some(lock)),
        };
        Ok((journal, replayed))
    }

    /// Appends a task's whole state; returns the ticket to [`Journal::wait`] for.
    pub fn append(&self, rec: &TaskRecord) -> u64 {
        self.append_line(rec, Some(&rec.id))
    }

    /// Appends a heartbeat: only the new end of the lease of `id`.
    pub fn append_renew(&self, id: &str, until: u64) -> u64 {
        #[derive(Serialize)]
        struct Renew<'a> {
            renew: &'a str,
            until: u64,
        }
        self.append_line(&Renew { renew: id, until }, None)
    }

    /// Appends that `task_type` is paused or resumed.
    pub fn append_pause(&self, task_type: &str, paused: bool) -> u64 {
        #[derive(Serialize)]
        struct Pause<'a> {
            pause: &'a str,
            paused: bool,
        }
        let line = Pause {
            pause: task_type,
            paused,
        };
        self.append_line(&line, None)
    }

    /// Appends that `id` is gone.
    pub fn append_drop(&self, id: &str) -> u64 {
        #[derive(Serialize)]
        struct Dropped<'a> {
            dropped: &'a str,
        }
        let ticket = self.append_line(&Dropped { dropped: id }, None);
        self.shared.lock().size.forget(id);
        ticket
    }

    fn append_line(&self, entry: &impl Serialize, task: Option<&str>) -> u64 {
        let mut line = match serde_json::to_vec(entry) {
            Ok(line) => line,
            Err(e) => {
                log::error!("journal: cannot encode a change of task {task:?}: {e}");
                return 0;
            }
        };
        line.push(b'\n');
        let mut p = self.shared.lock();
        p.buf.extend_from_slice(&line);
        p.appended += line.len() as u64;
        p.size.add(line.len() as u64, task);
        self.shared.work.notify_one();
        p.appended
    }

    /// Keeps the writer from syncing until the returned guard is dropped,
    /// so that the lines appended meanwhile (one change of many tasks, as
    /// a batch report makes) go to disk with one sync.
    pub fn hold(&self) -> Hold<'_> {
        self.shared.lock().held += 1;
        Hold(&self.shared)
    }

    /// How many times the writer has synced the file: a change waits for
    /// one, and changes that arrive together share it.
    pub fn syncs(&self) -> u64 {
        self.shared.lock().syncs
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

    /// The ticket up to which everything is on disk.
    pub fn synced(&self) -> u64 {
        self.shared.lock().synced
    }

    /// Why the journal failed, once a write or a sync has failed: from then
    /// on nothing more is written.
    pub fn failure(&self) -> Option<String> {
        self.shared.lock().error.clone()
    }

    /// Whether the file has grown past [`COMPACT_RATIO`] times the live data.
    pub fn needs_compaction(&self) -> bool {
        let p = self.shared.lock();
        p.error.is_none()
            && p.size.file >= self.compact_floor
            && p.size.file > COMPACT_RATIO.saturating_mul(p.size.live)
            && p.rewrite.is_none()
    }

    /// Replaces the file with `records`, every live task, and the `paused`
    /// types, in the writer's next turn; what is appended after this call
    /// follows them. The caller holds the lock under which every append is
    /// made, so that `records` include every change appended so far: those
    /// lines are not written.
    pub fn compact(&self, records: &[&TaskRecord], paused: &[String]) {
        let (snapshot, size) = encode(records.iter().copied(), paused);
        let mut p = self.shared.lock();
        p.buf.clear();
        p.rewrite = Some(snapshot);
        p.size = size;
        self.shared.work.notify_one();
    }

    /// Makes the next write fail as a full disk would.
    #[cfg(test)]
    pub fn fail_next_write(&self) {
        self.shared.lock().fail_next = true;
    }

    /// Sets the size below which the file is not compacted while running.
    #[cfg(test)]
    pub fn set_compact_floor(&mut self, bytes: u64) {
        self.compact_floor = bytes;
    }

    /// Writes and syncs what is pending, stops the writer and releases the
    /// lock, so that the next server may open the file at once; later
    /// changes are refused.
    pub fn close(&self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        let mut p = self.shared.lock();
        p.error
            .get_or_insert_with(|| "the journal is closed".into());
        self.shared.synced.notify_all();
        drop(p);
        self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// A hold on the journal's writer; see [`Journal::hold`].
pub struct Hold<'a>(&'a Shared);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.lock().held -= 1;
        self.0.work.notify_one();
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

fn write_loop(shared: &Shared, mut file: File, path: &Path) {
    let mut spare = Vec::new();
    // The length of what is synced: a failed append is cut back to it.
    let mut len = file.metadata().map_or(0, |m| m.len());
    loop {
        let (snapshot, mut buf, target) = {
            let mut p = shared.lock();
            while (p.buf.is_empty() || p.held > 0) && p.rewrite.is_none() && !p.stop {
                p = shared.work.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.buf.is_empty() && p.rewrite.is_none() {
                return;
            }
            (
                p.rewrite.take(),
                std::mem::replace(&mut p.buf, std::mem::take(&mut spare)),
                p.appended,
            )
        };
        let res = match snapshot {
            Some(mut all) => {
                all.extend_from_slice(&buf);
                rewrite(path, &all).map(|new| {
                    file = new;
                    len = all.len() as u64;
                })
            }
            None => append(shared, &mut file, &buf).map(|()| len += buf.len() as u64),
        };
        buf.clear();
        spare = buf;
        if let Err(e) = &res {
            log::error!(
                "journal {}: write failed, refusing every change until a restart: {e}",
                path.display()
            );
            // The lines of a failed write were refused: a restart must not
            // replay the ones that did reach the file.
            if let Err(e) = file.set_len(len).and_then(|()| file.sync_data()) {
                log::error!(
                    "journal {}: cannot cut off the failed write ({e}); a restart may replay refused changes",
                    path.display()
                );
            }
        }
        let mut p = shared.lock();
        match res {
            Ok(()) => {
                p.synced = target;
                p.syncs += 1;
            }
            Err(e) => p.error = Some(format!("write to {} failed: {e}", path.display())),
        }
        shared.synced.notify_all();
        if p.error.is_some() {
            return;
        }
    }
}

/// Appends `buf` and syncs it.
fn append(shared: &Shared, file: &mut File, buf: &[u8]) -> io::Result<()> {
    #[cfg(test)]
    if std::mem::take(&mut shared.lock().fail_next) {
        // Half the batch reaches the file, as when a disk fills up mid-write.
        file.write_all(&buf[..buf.len() / 2])?;
        return Err(io::Error::from_raw_os_error(28)); // ENOSPC
    }
    #[cfg(not(test))]
    let _ = shared;
    file.write_all(buf)?;
    file.sync_data()
}

/// The lock file of the journal `path`: `path` with `.lock` added.
fn lock_path(path: &Path) -> PathBuf {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    PathBuf::from(lock)
}

/// Reads every line, the newest state of each task winning, a renewal
/// moving its lease, a drop removing it, a pause line pausing or resuming
/// its type; a torn last line is skipped with a warning.
fn replay(path: &Path) -> Result<Replayed, JournalError> {
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
    let mut paused = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<Entry>(line) {
            Ok(Entry::Task(rec)) => {
                by_id.insert(rec.id.clone(), *rec);
            }
            Ok(Entry::Renew { renew, until }) => {
                if let Some(lease) = by_id.get_mut(&renew).and_then(|r| r.lease.as_mut()) {
                    lease.expires_at = until;
                }
            }
            Ok(Entry::Drop { dropped }) => {
                by_id.remove(&dropped);
            }
            Ok(Entry::Pause {
                pause,
                paused: true,
            }) => {
                paused.insert(pause);
            }
            Ok(Entry::Pause { pause, .. }) => {
                paused.remove(&pause);
            }
            Err(e) if i == last => {
                log::warn!(
                    "journal {}: skipping torn last line {}: {e}",
                    path.display(),
                    i + 1
                );
            }
            Err(e) => {
                // Most lines are tasks: their error says more than "no variant matched".
                let problem = serde_json::from_slice::<TaskRecord>(line)
                    .err()
                    .map_or_else(|| e.to_string(), |e| e.to_string());
                return Err(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    line: i + 1,
                    problem,
                });
            }
        }
    }
    let mut tasks: Vec<TaskRecord> = by_id.into_values().collect();
    tasks.sort_by_key(|r| r.seq);
    Ok(Replayed {
        tasks,
        paused: paused.into_iter().collect(),
    })
}

/// One line per paused type and per task, and the sizes that makes.
fn encode<'a>(
    records: impl IntoIterator<Item = &'a TaskRecord>,
    paused: &[String],
) -> (Vec<u8>, Size) {
    let mut out = Vec::new();
    let mut size = Size::default();
    for task_type in paused {
        let line = Entry::Pause {
            pause: task_type.clone(),
            paused: true,
        };
        if serde_json::to_writer(&mut out, &line).is_ok() {
            out.push(b'\n');
        }
    }
    size.add(out.len() as u64, None);
    size.live += out.len() as u64;
    for rec in records {
        let before = out.len();
        if serde_json::to_writer(&mut out, rec).is_ok() {
            out.push(b'\n');
            size.add((out.len() - before) as u64, Some(&rec.id));
        } else {
            out.truncate(before);
        }
    }
    (out, size)
}

/// Replaces the file at `path` with `bytes` atomically (a synced temporary
/// file renamed over it, the directory synced); returns it open for appending.
fn rewrite(path: &Path, bytes: &[u8]) -> io::Result<File> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".compact");
    let tmp = PathBuf::from(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        // Task parameters and results may be private: only the owner reads them.
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()?;
    OpenOptions::new().append(true).open(path)
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
            expires_at: None,
            lease: None,
            result: None,
            error: None,
            history: vec![],
            finished_at: None,
        }
    }

    fn temp_path(name: &str) -> PathBuf {
        let dir = crate::test_path("journal");
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
            assert!(recs.tasks.is_empty());
            j.append(&record("a", 1, Status::Queued));
            j.append(&record("b", 2, Status::Queued));
            let t = j.append(&record("a", 1, Status::Completed));
            j.wait(t).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"id":"c","type":"ec"#).unwrap();
        drop(f);
        let (_j, Replayed { tasks: recs, .. }) = Journal::open(&path).unwrap();
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

    fn leased(id: &str, seq: u64, expires_at: u64) -> TaskRecord {
        let mut rec = record(id, seq, Status::Claimed);
        rec.lease = Some(crate::server::record::Lease {
            worker_id: "w".into(),
            claim_id: None,
            claimed_at: 1,
            expires_at,
        });
        rec
    }

    #[test]
    fn a_renewal_carries_the_lease_only_and_a_drop_removes_the_task() {
        let path = temp_path("renew.jsonl");
        {
            let (j, _) = Journal::open(&path).unwrap();
            j.append(&leased("a", 1, 100));
            j.append(&record("b", 2, Status::Completed));
            j.append_renew("a", 500);
            let t = j.append_drop("b");
            j.wait(t).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let renewal = text.lines().nth(2).unwrap();
        assert_eq!(renewal, r#"{"renew":"a","until":500}"#);
        let (_j, Replayed { tasks: recs, .. }) = Journal::open(&path).unwrap();
        assert_eq!(recs.len(), 1, "b was dropped");
        assert_eq!(recs[0].lease.as_ref().unwrap().expires_at, 500);
    }

    #[test]
    fn a_failed_write_is_final() {
        let path = temp_path("fault.jsonl");
        let (j, _) = Journal::open(&path).unwrap();
        let t = j.append(&record("a", 1, Status::Queued));
        j.wait(t).unwrap();
        assert_eq!(j.failure(), None);
        j.fail_next_write();
        let synced_len = std::fs::metadata(&path).unwrap().len();
        j.append(&record("b", 2, Status::Queued));
        let t = j.append(&record("b2", 3, Status::Queued));
        assert!(matches!(j.wait(t), Err(JournalError::NotDurable(_))));
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, synced_len, "the half-written batch is cut off");
        let why = j.failure().expect("failed");
        assert!(why.contains("fault.jsonl"), "{why}");
        // The writer stopped: nothing later is written either.
        let t = j.append(&record("c", 3, Status::Queued));
        assert!(j.wait(t).is_err());
        assert!(j.synced() < t);
        assert!(!j.needs_compaction());
    }

    #[test]
    fn compacts_while_running_once_grown_past_a_multiple_of_the_live_data() {
        let path = temp_path("grow.jsonl");
        let (mut j, _) = Journal::open(&path).unwrap();
        j.set_compact_floor(1);
        let a = leased("a", 1, 0);
        j.append(&a);
        assert!(!j.needs_compaction());
        let mut t = 0;
        for until in 1..=100 {
            t = j.append_renew("a", until);
        }
        j.wait(t).unwrap();
        assert!(j.needs_compaction());
        let mut now = a.clone();
        now.lease.as_mut().unwrap().expires_at = 100;
        j.compact(&[&now], &[]);
        let t = j.append(&record("b", 2, Status::Queued));
        j.wait(t).unwrap();
        assert!(!j.needs_compaction());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "one line per task: {text}");
        drop(j);
        let (_j, Replayed { tasks: recs, .. }) = Journal::open(&path).unwrap();
        let got: Vec<(&str, Option<u64>)> = recs
            .iter()
            .map(|r| (r.id.as_str(), r.lease.as_ref().map(|l| l.expires_at)))
            .collect();
        assert_eq!(got, [("a", Some(100)), ("b", None)]);
    }

    #[test]
    fn paused_types_are_replayed_and_kept_by_compaction() {
        let path = temp_path("paused.jsonl");
        {
            let (mut j, _) = Journal::open(&path).unwrap();
            j.set_compact_floor(1);
            j.append(&record("a", 1, Status::Queued));
            j.append_pause("x", true);
            j.append_pause("y", true);
            let t = j.append_pause("y", false);
            j.wait(t).unwrap();
        }
        let (j, replayed) = Journal::open(&path).unwrap();
        assert_eq!(replayed.paused, ["x"]);
        let a = &replayed.tasks[0];
        j.compact(&[a], &replayed.paused);
        let t = j.append_pause("z", true);
        j.wait(t).unwrap();
        drop(j);
        let (_j, replayed) = Journal::open(&path).unwrap();
        assert_eq!(replayed.paused, ["x", "z"]);
        assert_eq!(replayed.tasks.len(), 1);
    }
}
