//! Bounded readers for a child's output pipes: stdout kept up to a limit,
//! stderr kept as a rolling tail, each drained on its own thread.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::Receiver;

/// How much is read from a pipe at a time.
const CHUNK: usize = 64 * 1024;

/// What a reader thread kept from its pipe.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    /// The bytes kept: the head (stdout) or the tail (stderr).
    pub bytes: Vec<u8>,
    /// Whether the pipe carried more than the limit.
    pub overflowed: bool,
}

/// A reader thread draining one pipe until it closes.
pub(crate) struct PipeReader {
    done: Receiver<Captured>,
    overflow: Arc<AtomicBool>,
}

impl PipeReader {
    /// Keeps the first `limit` bytes of `pipe`. Past that it keeps nothing
    /// more, raises the overflow flag and goes on draining, so the writer
    /// never blocks and memory stays bounded.
    pub fn head(name: &str, pipe: impl Read + Send + 'static, limit: u64) -> std::io::Result<Self> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Self::spawn(name, pipe, move |kept: &mut Vec<u8>, chunk: &[u8]| {
            let room = limit.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            chunk.len() > room
        })
    }

    /// Keeps the last `limit` bytes of `pipe`.
    pub fn tail(
        name: &str,
        pipe: impl Read + Send + 'static,
        limit: usize,
    ) -> std::io::Result<Self> {
        Self::spawn(name, pipe, move |kept: &mut Vec<u8>, chunk: &[u8]| {
            kept.extend_from_slice(chunk);
            // Trim only when twice the limit, so trimming stays cheap.
            if kept.len() > 2 * limit {
                kept.drain(..kept.len() - limit);
            }
            false
        })
    }

    fn spawn(
        name: &str,
        mut pipe: impl Read + Send + 'static,
        mut keep: impl FnMut(&mut Vec<u8>, &[u8]) -> bool + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, done) = crossbeam_channel::bounded(1);
        let overflow = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&overflow);
        thread::Builder::new()
            .name(format!("taskworker-{name}"))
            .spawn(move || {
                let mut captured = Captured::default();
                let mut buf = vec![0u8; CHUNK];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if keep(&mut captured.bytes, &buf[..n]) && !captured.overflowed {
                                captured.overflowed = true;
                                flag.store(true, Ordering::SeqCst);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                // The receiver may have given up waiting; nothing to do then.
                let _ = tx.send(captured);
            })?;
        Ok(PipeReader { done, overflow })
    }

    /// Whether the pipe has carried more than the limit so far.
    pub fn overflowed(&self) -> bool {
        self.overflow.load(Ordering::SeqCst)
    }

    /// Waits until the pipe closes or `deadline` passes (then `None`; the
    /// thread ends by itself once the pipe closes).
    pub fn finish(self, deadline: Instant) -> Option<Captured> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.done.recv_timeout(left).ok()
    }
}

/// The last `limit` bytes of `bytes` as text, starting on a character boundary.
pub(crate) fn tail_text(bytes: &[u8], limit: usize) -> String {
    let mut start = bytes.len().saturating_sub(limit);
    // Skip UTF-8 continuation bytes so the cut does not split a character.
    while start < bytes.len() && (bytes[start] & 0xC0) == 0x80 {
        start += 1;
    }
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The last line of `text` that is not blank, trimmed.
pub(crate) fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn head_keeps_the_limit_and_flags_overflow() {
        let r = PipeReader::head("t", &b"hello world"[..], 5).unwrap();
        let c = r.finish(soon()).unwrap();
        assert_eq!(c.bytes, b"hello");
        assert!(c.overflowed);
        let r = PipeReader::head("t", &b"hello"[..], 5).unwrap();
        assert!(!r.finish(soon()).unwrap().overflowed);
    }

    #[test]
    fn tail_keeps_the_end() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let r = PipeReader::tail("t", std::io::Cursor::new(data.clone()), 10).unwrap();
        let c = r.finish(soon()).unwrap();
        assert!(c.bytes.ends_with(&data[data.len() - 10..]));
        assert!(c.bytes.len() <= 20);
    }

    #[test]
    fn text_helpers() {
        assert_eq!(tail_text("aé".as_bytes(), 1), "");
        assert_eq!(tail_text("aé".as_bytes(), 2), "é");
        assert_eq!(last_line("one\ntwo\n \n"), Some("two"));
        assert_eq!(last_line(" \n"), None);
    }
}
