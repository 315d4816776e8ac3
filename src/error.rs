//! Every error type of the crate: a task's failure (`TaskError`, an outcome
//! reported to the server) and the worker's own fatal errors (`Error`).

use std::fmt;

/// The `error_type` words of the protocol (packaging/PROTOCOL.md).
pub(crate) mod error_type {
    /// Bad input: the task cannot succeed as given.
    pub const VALIDATION: &str = "VALIDATION";
    /// No handler for the task's type.
    pub const UNKNOWN_TYPE: &str = "UNKNOWN_TYPE";
    /// The handler failed.
    pub const HANDLER: &str = "HANDLER";
    /// The task ran past its deadline.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// A downstream rate limit.
    pub const RATE_LIMIT: &str = "RATE_LIMIT";
    /// The worker shut down before the task finished.
    pub const SHUTDOWN: &str = "SHUTDOWN";
    /// The server took the task back.
    pub const LEASE_LOST: &str = "LEASE_LOST";
    /// The handler panicked.
    pub const PANIC: &str = "PANIC";
    /// The worker itself failed while it held the task (a panic outside the
    /// handler); another try, on a sound thread, may succeed.
    pub const WORKER_ERROR: &str = "WORKER_ERROR";
    /// The task's `expires_at` passed before it could start: it was not run.
    pub const EXPIRED: &str = "EXPIRED";
}

/// A task that did not succeed: a message, an `error_type` and whether a later
/// try may succeed. This is an outcome reported to the server, not a failure
/// of the worker.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    /// Human-readable message (`error` on the wire).
    pub message: String,
    /// `VALIDATION`, `HANDLER`, ... or the handler's own upper-case word.
    pub error_type: String,
    /// Whether a later try may succeed.
    pub retryable: bool,
    /// Detail such as a command's stderr tail.
    pub traceback: Option<String>,
    /// How long the handler asks to wait before another try; the next local
    /// try waits that long (when it fits the deadline and the retry cap).
    pub retry_after: Option<std::time::Duration>,
}

impl TaskError {
    /// A new error, as the seed's `TaskError('Rate limit exceeded', 'RATE_LIMIT', true)`.
    pub fn new(
        message: impl Into<String>,
        error_type: impl Into<String>,
        retryable: bool,
    ) -> TaskError {
        TaskError {
            message: message.into(),
            error_type: error_type.into(),
            retryable,
            traceback: None,
            retry_after: None,
        }
    }

    /// A permanent failure of the given type.
    pub fn permanent(message: impl Into<String>, error_type: &str) -> TaskError {
        TaskError::new(message, error_type, false)
    }

    /// A failure that a later try may get past.
    pub fn retryable(message: impl Into<String>, error_type: &str) -> TaskError {
        TaskError::new(message, error_type, true)
    }

    /// Asks for another try no sooner than `wait` from now.
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> TaskError {
        self.retry_after = Some(wait);
        self
    }

    /// Adds detail for the `traceback` field.
    pub fn with_traceback(mut self, traceback: impl Into<String>) -> TaskError {
        self.traceback = Some(traceback.into());
        self
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.retryable {
            "retryable"
        } else {
            "permanent"
        };
        write!(f, "{} ({}, {kind})", self.message, self.error_type)
    }
}

impl std::error::Error for TaskError {}

/// A fatal error of a command: it ends the process with [`Error::exit_code`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Bad command-line usage (exit 64).
    Usage(String),
    /// A configuration value is wrong (exit 78); names the key and the problem.
    Config {
        /// The key as the user wrote it (`CONCURRENT_TASKS`, `handlers.echo`).
        key: String,
        /// What is wrong with its value.
        problem: String,
    },
    /// An I/O operation failed; `context` says which.
    Io {
        /// What was being done, with the path or address.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An HTTP request made by a command (such as `enqueue`) failed.
    Request {
        /// The request, as `POST http://host/tasks`.
        request: String,
        /// What went wrong: the transport error, or the status and answer.
        problem: String,
    },
    /// A thread that a command waits for panicked (its message is logged).
    Panicked {
        /// Which thread.
        thread: String,
    },
}

impl Error {
    /// A configuration error for `key`.
    pub fn config(key: impl Into<String>, problem: impl Into<String>) -> Error {
        Error::Config {
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// A failed HTTP `request` and what went wrong.
    pub fn request(request: impl Into<String>, problem: impl fmt::Display) -> Error {
        Error::Request {
            request: request.into(),
            problem: problem.to_string(),
        }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The process exit code for this error (README.md lists them).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 64,
            Error::Config { .. } => 78,
            Error::Io { .. } | Error::Request { .. } | Error::Panicked { .. } => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "usage: {msg}"),
            Error::Config { key, problem } => write!(f, "config: {key}: {problem}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Request { request, problem } => write!(f, "{request}: {problem}"),
            Error::Panicked { thread } => write!(f, "the {thread} thread panicked"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<lexopt::Error> for Error {
    fn from(e: lexopt::Error) -> Error {
        Error::Usage(e.to_string())
    }
}
