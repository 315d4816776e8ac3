//! Log set-up: `LOG_LEVEL` (with `RUST_LOG` for module filters), `LOG_FILE`,
//! and `LOG_FORMAT` text or JSON. Under journald (`JOURNAL_STREAM` set) text
//! lines carry `<N>` priority prefixes and no timestamp, since journald adds its own.
//! A text line is always one line: control characters in a message (a task id
//! or type from the server may hold a newline) are escaped, so no value can
//! forge a log line or a journald priority. A JSON line carries
//! `worker_id`, and, when written on a thread while it runs a task (the
//! handler's own lines included), `task_id` and `type`. A reload sets
//! `LOG_LEVEL` anew: the logger is built again by the same code as at the
//! start and swapped in.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, RwLock};

use crate::config::{Config, LogFormat};
use crate::error::Error;

/// Whether lines are JSON: only then does a task's scope keep its fields.
static JSON: AtomicBool = AtomicBool::new(false);

/// The worker id that JSON lines carry.
static WORKER_ID: OnceLock<String> = OnceLock::new();

thread_local! {
    /// The task this thread runs: its id and type.
    static TASK: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// While it lives, JSON lines written on this thread carry `task_id` and
/// `type`. Only JSON lines need them, so with text lines it costs nothing.
#[must_use = "the fields last as long as the guard"]
pub struct TaskFields(bool);

/// Names the task this thread runs in its JSON log lines, until the guard drops.
pub fn task_fields(task_id: &str, task_type: &str) -> TaskFields {
    let json = JSON.load(Relaxed);
    if json {
        TASK.with(|t| *t.borrow_mut() = Some((task_id.to_string(), task_type.to_string())));
    }
    TaskFields(json)
}

impl Drop for TaskFields {
    fn drop(&mut self) {
        if self.0 {
            TASK.with(|t| t.borrow_mut().take());
        }
    }
}

/// The global logger: the one [`build`] made last, swapped on a reload.
struct Swappable(RwLock<Arc<env_logger::Logger>>);

impl Swappable {
    fn current(&self) -> Arc<env_logger::Logger> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl log::Log for Swappable {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.current().enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        self.current().log(record);
    }

    fn flush(&self) {
        self.current().flush();
    }
}

/// The logger `init` installed, when it installed one.
static LOGGER: OnceLock<Swappable> = OnceLock::new();

/// Installs the global logger for the binary.
pub fn init(config: &Config) -> Result<(), Error> {
    let logger = build(config)?;
    let level = logger.filter();
    // A second init (tests, library use) keeps the first logger.
    if LOGGER.set(Swappable(RwLock::new(Arc::new(logger)))).is_ok() {
        if let Some(installed) = LOGGER.get() {
            if log::set_logger(installed).is_ok() {
                log::set_max_level(level);
            }
        }
    }
    Ok(())
}

/// Applies a reloaded configuration's `LOG_LEVEL` (with `RUST_LOG` as at
/// the start): builds the logger as `init` did and swaps it in. The
/// format and file are those of `config`, which a reload keeps as they
/// were. Nothing happens when `init` installed no logger (library use).
pub fn reload(config: &Config) -> Result<(), Error> {
    let Some(installed) = LOGGER.get() else {
        return Ok(());
    };
    let logger = build(config)?;
    log::set_max_level(logger.filter());
    *installed.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(logger);
    Ok(())
}

/// The logger of `config`: its level with `RUST_LOG`'s filters, its format, its file.
fn build(config: &Config) -> Result<env_logger::Logger, Error> {
    let journald = std::env::var_os("JOURNAL_STREAM").is_some() && config.log_file.is_none();
    let mut builder = env_logger::Builder::new();
    builder.filter_level(config.log_level);
    if let Ok(filters) = std::env::var("RUST_LOG") {
        builder.parse_filters(&filters);
    }
    // Our own lines only at trace: the TLS and HTTP libraries stay at info.
    for noisy in ["rustls", "ureq", "ureq_proto", "tiny_http"] {
        builder.filter_module(noisy, config.log_level.min(log::LevelFilter::Info));
    }
    let format = config.log_format;
    JSON.store(format == LogFormat::Json, Relaxed);
    let _ = WORKER_ID.set(config.worker_id.clone());
    builder.format(move |buf, record| {
        let msg = record.args().to_string();
        let msg = match format {
            LogFormat::Json => msg,
            LogFormat::Text => one_line(&msg),
        };
        match format {
            LogFormat::Json => {
                let mut line = serde_json::json!({
                    "ts": crate::timestamp::now(),
                    "level": record.level().as_str(),
                    "target": record.target(),
                    "msg": msg,
                });
                if let Some(id) = WORKER_ID.get() {
                    line["worker_id"] = id.as_str().into();
                }
                TASK.with(|t| {
                    if let Some((id, task_type)) = &*t.borrow() {
                        line["task_id"] = id.as_str().into();
                        line["type"] = task_type.as_str().into();
                    }
                });
                writeln!(buf, "{line}")
            }
            LogFormat::Text if journald => writeln!(buf, "<{}>{msg}", priority(record.level())),
            LogFormat::Text => writeln!(
                buf,
                "{} {:<5} {msg}",
                crate::timestamp::now(),
                record.level()
            ),
        }
    });
    if let Some(path) = &config.log_file {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            // Logs name tasks and errors: only the owner reads them.
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                Error::config("LOG_FILE", format!("cannot open {}: {e}", path.display()))
            })?;
        builder.target(env_logger::Target::Pipe(Box::new(file)));
    }
    Ok(builder.build())
}

/// `msg` with every control character escaped (`\n`, `\u{1b}`), so that it
/// stays one line whatever a task id or type holds.
fn one_line(msg: &str) -> String {
    if !msg.chars().any(char::is_control) {
        return msg.to_string();
    }
    msg.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The syslog priority of a level, as journald reads it from `<N>`.
fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_text_line_stays_one_line() {
        assert_eq!(
            super::one_line("task a\n<3>forged (t): started"),
            "task a\\n<3>forged (t): started"
        );
        assert_eq!(super::one_line("x\r\u{1b}[31my\tz"), "x\\r\\u{1b}[31my\\tz");
        assert_eq!(super::one_line("plain ünï"), "plain ünï");
    }

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(super::priority(log::Level::Error), 3);
        assert_eq!(super::priority(log::Level::Warn), 4);
        assert_eq!(super::priority(log::Level::Info), 6);
        assert_eq!(super::priority(log::Level::Trace), 7);
    }
}
