//! The result spool: every outcome is appended to `STATE_DIR/spool.jsonl`
//! and synced before its first send, and marked sent after the server took
//! it (or said the task is no longer ours). On start, what is left is sent
//! first. The file is compacted on open and whenever it grows past a bound.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::client::ReportKind;
use crate::error::Error;
use crate::worker::outcome::Outcome;

/// The spool file's name inside the state directory.
pub const FILE_NAME: &str = "spool.jsonl";
/// Records in the file before it is rewritten with only the unsent ones.
const COMPACT_AFTER: usize = 4096;

struct Inner {
    path: PathBuf,
    file: BufWriter<File>,
    /// Unsent outcomes in arrival order.
    unsent: BTreeMap<u64, Outcome>,
    by_task: HashMap<String, u64>,
    next_seq: u64,
    records: usize,
    unsynced: bool,
}

/// A handle on the spool; clones share it.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("depth", &self.depth())
            .finish()
    }
}

fn state_error(dir: &Path, what: &str, e: std::io::Error) -> Error {
    Error::config("STATE_DIR", format!("{what} {}: {e}", dir.display()))
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, compacts it, and returns
    /// it with the outcomes still to send, oldest first. Their bodies keep
    /// the `worker_id` they were made with: the server holds the task for
    /// that id until its lease runs out, whatever our id is now.
    pub fn open(dir: &Path) -> Result<(Spool, Vec<Outcome>), Error> {
        std::fs::create_dir_all(dir).map_err(|e| state_error(dir, "cannot create", e))?;
        let path = dir.join(FILE_NAME);
        let mut unsent = BTreeMap::new();
        let mut by_task = HashMap::new();
        let mut next_seq = 0u64;
        match File::open(&path) {
            Ok(file) => {
                // Split on bytes: a record torn inside a UTF-8 character is
                // skipped like any other torn record, not a reason to refuse the file.
                for (n, line) in BufReader::new(file).split(b'\n').enumerate() {
                    let line = line.map_err(|e| state_error(&path, "cannot read", e))?;
                    match parse_record(&line) {
                        Some(Record::Outcome(outcome)) => {
                            if let Some(old) = by_task.insert(outcome.task_id.clone(), next_seq) {
                                unsent.remove(&old);
                            }
                            unsent.insert(next_seq, outcome);
                            next_seq += 1;
                        }
                        Some(Record::Sent(task_id)) => {
                            if let Some(seq) = by_task.remove(&task_id) {
                                unsent.remove(&seq);
                            }
                        }
                        None if line.trim_ascii().is_empty() => {}
                        None => log::warn!(
                            "spool {}: line {} is torn or corrupt; skipped",
                            path.display(),
                            n + 1
                        ),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(state_error(&path, "cannot read", e)),
        }
        let file = rewrite(&path, unsent.values())?;
        let records = unsent.len();
        let left: Vec<Outcome> = unsent
            .iter()
            .map(|(seq, o)| Outcome {
                spool_seq: Some(*seq),
                ..o.clone()
            })
            .collect();
        if !left.is_empty() {
            log::info!(
                "spool: {} outcome(s) from an earlier run will be sent before any claim",
                left.len()
            );
        }
        let inner = Inner {
            path,
            file,
            unsent,
            by_task,
            next_seq,
            records,
            unsynced: false,
        };
        Ok((
            Spool {
                inner: Arc::new(Mutex::new(inner)),
            },
            left,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends an outcome (synced by [`Spool::sync`] before it is sent).
    /// Returns the record's sequence number, which identifies it while this
    /// process runs.
    pub fn append(&self, outcome: &Outcome) -> u64 {
        let mut inner = self.lock();
        let line = outcome_line(outcome);
        if let Err(e) = inner.file.write_all(line.as_bytes()) {
            log::error!(
                "spool {}: cannot write the outcome of task {}: {e}",
                inner.path.display(),
                outcome.task_id
            );
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        if let Some(old) = inner.by_task.insert(outcome.task_id.clone(), seq) {
            inner.unsent.remove(&old);
        }
        inner.unsent.insert(seq, outcome.clone());
        inner.records += 1;
        inner.unsynced = true;
        seq
    }

    /// Makes every appended outcome durable (one fsync for a whole batch).
    pub fn sync(&self) {
        let mut inner = self.lock();
        if !inner.unsynced {
            return;
        }
        let result = inner
            .file
            .flush()
            .and_then(|()| inner.file.get_ref().sync_data());
        if let Err(e) = result {
            log::error!("spool {}: cannot sync: {e}", inner.path.display());
        }
        inner.unsynced = false;
    }

    /// Marks the outcome of `task_id` as delivered (or no longer wanted).
    /// Only the newest record of a task is marked: a superseded one was
    /// replaced already, and marking it would hide its successor on replay.
    pub fn mark_sent(&self, outcome: &Outcome) {
        let task_id = outcome.task_id.as_str();
        let mut inner = self.lock();
        let Some(&seq) = inner
            .by_task
            .get(task_id)
            .filter(|s| Some(**s) == outcome.spool_seq)
        else {
            return;
        };
        inner.by_task.remove(task_id);
        inner.unsent.remove(&seq);
        let line = format!(
            "{{\"op\":\"sent\",\"task_id\":{}}}\n",
            Value::String(task_id.to_string())
        );
        if let Err(e) = inner.file.write_all(line.as_bytes()) {
            log::error!(
                "spool {}: cannot mark task {task_id} sent: {e}",
                inner.path.display()
            );
        }
        inner.records += 1;
        if inner.records > COMPACT_AFTER && inner.records > inner.unsent.len() * 4 {
            inner.compact();
        }
    }

    /// Whether an outcome for `task_id` waits in the spool.
    #[cfg(test)]
    fn contains(&self, task_id: &str) -> bool {
        self.lock().by_task.contains_key(task_id)
    }

    /// Whether `outcome` is still its task's newest record (outcomes that
    /// never went through the spool always are).
    pub fn is_current(&self, outcome: &Outcome) -> bool {
        match outcome.spool_seq {
            None => true,
            Some(seq) => self.lock().by_task.get(&outcome.task_id) == Some(&seq),
        }
    }

    /// The spooled outcome of `task_id`, in the name of `worker_id`: for a
    /// task redelivered to us, which the server now holds for that id.
    pub fn reclaim(&self, task_id: &str, worker_id: &str) -> Option<Outcome> {
        let inner = self.lock();
        let seq = inner.by_task.get(task_id)?;
        let mut outcome = inner.unsent.get(seq)?.clone();
        restamp(&mut outcome, worker_id);
        Some(outcome)
    }

    /// Outcomes not yet marked sent.
    pub fn depth(&self) -> usize {
        self.lock().unsent.len()
    }

    /// Records in the file now (for tests of compaction).
    #[cfg(test)]
    fn records(&self) -> usize {
        self.lock().records
    }
}

impl Inner {
    fn compact(&mut self) {
        let _ = self.file.flush();
        match rewrite(&self.path, self.unsent.values()) {
            Ok(file) => {
                self.file = file;
                self.records = self.unsent.len();
                self.unsynced = false;
            }
            Err(e) => log::error!("spool: compaction failed, the file keeps growing: {e}"),
        }
    }
}

/// Writes `outcomes` to a new file, syncs it, and puts it in place atomically;
/// returns the file opened for appending.
fn rewrite<'a>(
    path: &Path,
    outcomes: impl Iterator<Item = &'a Outcome>,
) -> Result<BufWriter<File>, Error> {
    let tmp = path.with_extension("jsonl.tmp");
    let write = || -> std::io::Result<()> {
        // Outcomes may hold private results: only the owner reads them.
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut w = BufWriter::new(file);
        for outcome in outcomes {
            w.write_all(outcome_line(outcome).as_bytes())?;
        }
        w.flush()?;
        w.get_ref().sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| state_error(path, "cannot write", e))?;
    let file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| state_error(path, "cannot open", e))?;
    Ok(BufWriter::new(file))
}

enum Record {
    Outcome(Outcome),
    Sent(String),
}

fn outcome_line(o: &Outcome) -> String {
    let kind = match o.kind {
        ReportKind::Complete => "complete",
        ReportKind::Fail => "fail",
    };
    let body = std::str::from_utf8(&o.body).unwrap_or("null");
    format!(
        "{{\"op\":\"outcome\",\"task_id\":{},\"task_type\":{},\"kind\":\"{kind}\",\"error_type\":{},\"body\":{body}}}\n",
        Value::String(o.task_id.clone()),
        Value::String(o.task_type.clone()),
        o.error_type.clone().map(Value::String).unwrap_or(Value::Null),
    )
}

fn parse_record(line: &[u8]) -> Option<Record> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let task_id = v.get("task_id")?.as_str()?.to_string();
    match v.get("op")?.as_str()? {
        "sent" => Some(Record::Sent(task_id)),
        "outcome" => {
            let kind = match v.get("kind")?.as_str()? {
                "complete" => ReportKind::Complete,
                "fail" => ReportKind::Fail,
                _ => return None,
            };
            let body = v.get("body").filter(|b| b.is_object())?;
            Some(Record::Outcome(Outcome {
                task_type: v
                    .get("task_type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                kind,
                body: serde_json::to_vec(body).ok()?,
                error_type: v
                    .get("error_type")
                    .and_then(Value::as_str)
                    .map(String::from),
                task_id,
                spool_seq: None,
            }))
        }
        _ => None,
    }
}

/// Puts `worker_id` into a spooled body.
fn restamp(outcome: &mut Outcome, worker_id: &str) {
    if let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&outcome.body) {
        body.insert("worker_id".into(), Value::String(worker_id.to_string()));
        if let Ok(bytes) = serde_json::to_vec(&body) {
            outcome.body = bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = crate::test_path(&format!("spool-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn done(id: &str) -> Outcome {
        Outcome::completed(
            id,
            "echo",
            json!({"id": id}),
            "old-worker",
            Duration::from_millis(1),
        )
    }

    #[test]
    fn unsent_outcomes_survive_a_restart_with_their_worker_id() {
        let dir = temp_dir("restart");
        let (spool, left) = Spool::open(&dir).unwrap();
        assert!(left.is_empty());
        let mut sent = HashMap::new();
        for id in ["a", "b", "c"] {
            let seq = spool.append(&done(id));
            sent.insert(id, seq);
        }
        spool.sync();
        spool.mark_sent(&Outcome {
            spool_seq: Some(sent["b"]),
            ..done("b")
        });
        assert!(spool.contains("a") && !spool.contains("b"));
        drop(spool);
        let (spool, left) = Spool::open(&dir).unwrap();
        let ids: Vec<_> = left.iter().map(|o| o.task_id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        let body: Value = serde_json::from_slice(&left[0].body).unwrap();
        assert_eq!(
            body["worker_id"], "old-worker",
            "the id that holds the lease"
        );
        assert_eq!(body["result"], json!({"id": "a"}));
        assert_eq!(spool.records(), 2, "compacted on open");
        let again = spool.reclaim("c", "w2").unwrap();
        let body: Value = serde_json::from_slice(&again.body).unwrap();
        assert_eq!(
            (body["worker_id"].as_str(), again.task_id.as_str()),
            (Some("w2"), "c")
        );
        assert!(spool.reclaim("b", "w2").is_none());
    }

    #[test]
    fn a_newer_record_supersedes_the_older_one() {
        let dir = temp_dir("supersede");
        let (spool, _) = Spool::open(&dir).unwrap();
        let old = Outcome {
            spool_seq: Some(spool.append(&done("a"))),
            ..done("a")
        };
        let new = Outcome {
            spool_seq: Some(spool.append(&done("a"))),
            ..done("a")
        };
        assert!(!spool.is_current(&old) && spool.is_current(&new));
        spool.mark_sent(&old);
        assert!(
            spool.contains("a"),
            "marking the superseded copy keeps the newer one"
        );
        spool.mark_sent(&new);
        assert!(!spool.contains("a"));
        spool.sync();
        drop(spool);
        let (_, left) = Spool::open(&dir).unwrap();
        assert!(left.is_empty());
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = temp_dir("torn");
        let (spool, _) = Spool::open(&dir).unwrap();
        spool.append(&done("a"));
        spool.sync();
        drop(spool);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(FILE_NAME))
            .unwrap();
        f.write_all(b"{\"op\":\"outcome\",\"task_id\":\"b\",\"ki")
            .unwrap();
        drop(f);
        let (_, left) = Spool::open(&dir).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].task_id, "a");
    }

    #[test]
    fn stays_bounded() {
        let dir = temp_dir("bounded");
        let (spool, _) = Spool::open(&dir).unwrap();
        for i in 0..10_000 {
            let id = format!("t{i}");
            let seq = spool.append(&done(&id));
            spool.mark_sent(&Outcome {
                spool_seq: Some(seq),
                ..done(&id)
            });
        }
        assert!(spool.records() <= COMPACT_AFTER + 1, "{}", spool.records());
        assert_eq!(spool.depth(), 0);
    }

    #[test]
    fn an_unwritable_state_dir_is_a_clear_error() {
        let file = temp_dir("notadir");
        std::fs::write(&file, "x").unwrap();
        let err = Spool::open(&file).unwrap_err();
        assert!(err.to_string().contains("STATE_DIR"), "{err}");
    }
}
