//! The `exec` handler: runs a command in its own process group with the task
//! on stdin, and takes its stdout as the result.
//!
//! Contract (README, "Handlers"): argv only, never a shell; the task object
//! as one JSON line on stdin; the environment scrubbed of secrets plus
//! `TASK_ID`, `TASK_TYPE`, `TASK_ATTEMPT` (the server's delivery),
//! `TASK_LOCAL_TRY` (1.. within it), `WORKER_ID` and the `env` option.
//! Exit 0 completes, 75 is a retryable failure, any other code a permanent
//! one (`HANDLER`), death by a signal a retryable one. A failing program may
//! say more as its last stdout line, `{"error", "error_type", "retryable",
//! "retry_after"}`: each field it gives, checked and bounded (stdout is
//! untrusted), replaces what the exit status and stderr say. On timeout or cancel
//! the group gets SIGTERM and, if its leader is still there after the grace
//! (5 s), SIGKILL; so `handle` returns within that grace of a cancel. After
//! any exit the rest of the group is killed. The program is checked when
//! the handler is built (a missing or non-executable one is a configuration
//! error); one that cannot be started later (removed, made non-executable,
//! its interpreter gone) fails the task as a retryable `HANDLER` and turns
//! `/ready` 503: it is a deployment problem, not bad task input.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::capture::{last_line, tail_text, PipeReader};
use super::options::Options;
use super::process_group::ProcessGroup;
use super::program::{self, MissingPrograms};
use super::{cancelled, result_from_output, Handler, HandlerEnv};
use crate::config::SECRET_VARS;
use crate::context::{CancelReason, Context};
use crate::error::{error_type, Error, TaskError};
use crate::task::Task;

/// Default cap on a command's stdout: 1 MiB.
pub const DEFAULT_MAX_OUTPUT: u64 = 1 << 20;

/// Default time between SIGTERM and SIGKILL on timeout or cancel: long enough
/// for a program to clean up, short enough to fit a 25 s shutdown grace.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);

/// How much of stderr's end goes into `traceback`.
const STDERR_TAIL: usize = 4096;

/// How long the output pipes may stay open once the group is gone: only a
/// process that left the group (`setsid`) can hold them longer.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// The options a config entry may carry.
const OPTIONS: [&str; 5] = ["command", "env", "cwd", "timeout", "max_output"];

/// Runs a configured command per task: `{"exec": {"command": [...], ...}}`.
#[derive(Debug, Clone)]
pub struct ExecHandler {
    /// The program: a name looked up in `PATH`, or a path. A relative path
    /// was made absolute against the config file's directory when the
    /// handler was built, so it depends neither on the worker's working
    /// directory (`/` under systemd) nor on `cwd`.
    program: PathBuf,
    /// The handler's key (`handlers.TYPE.exec`), and where a program that
    /// could not be started is recorded for `/ready`.
    key: String,
    missing: MissingPrograms,
    /// The arguments after the program.
    args: Vec<String>,
    /// Added to the child's environment last, so the config may set any
    /// variable, a scrubbed one included: that is the operator's explicit choice.
    env: Vec<(String, String)>,
    /// The child's working directory; the worker's when `None`.
    cwd: Option<PathBuf>,
    /// The handler's own time limit; the task's deadline applies as well.
    timeout: Option<Duration>,
    /// Most bytes of stdout accepted.
    max_output: u64,
    /// Time between SIGTERM and SIGKILL.
    kill_grace: Duration,
    /// Variable names removed from the child's environment.
    scrubbed: Vec<String>,
}

/// Why the wait for the command ended.
enum Stop {
    Exited,
    Overflow,
    Timeout,
    Cancelled(CancelReason),
}

impl ExecHandler {
    /// Builds the handler from its config entry's options; `key` names the
    /// entry (`handlers.TYPE.exec`) in errors.
    pub fn from_config(options: &Value, key: &str, env: &HandlerEnv) -> Result<ExecHandler, Error> {
        let opts = Options::new(options, key, &OPTIONS)?;
        let command_key = opts.key("command");
        let (program, args) = command_from_json(opts.get("command"), &command_key)?;
        let env_vars = match opts.get("env") {
            None => Vec::new(),
            Some(v) => env_from_json(v, &opts.key("env"))?,
        };
        let program = program::absolute(&program, env.base_dir.as_deref())
            .map_err(|e| Error::config(&command_key, format!("{}: {e}", program.display())))?;
        program::check(&program, program::path_var(&env_vars).as_deref())
            .map_err(|e| Error::config(&command_key, e.to_string()))?;
        let cwd = match opts.get("cwd") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(PathBuf::from(s)),
            Some(_) => return Err(Error::config(opts.key("cwd"), "must be a path")),
        };
        let timeout = opts.duration("timeout")?;
        let max_output = opts.size("max_output", DEFAULT_MAX_OUTPUT)?;
        // The secrets that never reach a command, whatever `secret_vars` says.
        let mut scrubbed: Vec<String> = SECRET_VARS.iter().map(|s| s.to_string()).collect();
        scrubbed.extend(env.secret_vars.iter().cloned());
        Ok(ExecHandler {
            program,
            key: key.to_string(),
            missing: env.missing.clone(),
            args,
            env: env_vars,
            cwd,
            timeout,
            max_output,
            kill_grace: DEFAULT_KILL_GRACE,
            scrubbed,
        })
    }

    /// The same handler with another SIGTERM-to-SIGKILL grace.
    pub fn with_kill_grace(mut self, grace: Duration) -> ExecHandler {
        self.kill_grace = grace;
        self
    }

    fn command(&self, task: &Task, ctx: &Context) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for name in &self.scrubbed {
            cmd.env_remove(name);
        }
        cmd.env("TASK_ID", &task.id)
            .env("TASK_TYPE", &task.task_type)
            .env("TASK_ATTEMPT", ctx.attempt.to_string())
            .env("TASK_LOCAL_TRY", ctx.local_try.to_string())
            .env("WORKER_ID", &*ctx.worker_id);
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        cmd
    }

    /// A clear failure for a command that could not be started. A program
    /// that was there at start and is not now is retryable: the deployment
    /// is being changed, and `/ready` says so until it is back.
    fn spawn_error(&self, e: std::io::Error) -> TaskError {
        let prog = self.program.display();
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => match &self.cwd {
                Some(cwd) if !cwd.is_dir() => {
                    format!("working directory {} not found", cwd.display())
                }
                _ => {
                    return self.program_lost(format!(
                        "{prog}: program not found (or its interpreter is missing)"
                    ))
                }
            },
            std::io::ErrorKind::PermissionDenied => {
                return self.program_lost(format!("{prog}: not executable"))
            }
            // No group starts once every group was killed for the exit.
            std::io::ErrorKind::Interrupted => {
                return TaskError::retryable(format!("{prog}: {e}"), error_type::SHUTDOWN)
            }
            std::io::ErrorKind::InvalidInput => {
                return TaskError::permanent(
                    format!("{prog}: task id or type cannot be passed in the environment: {e}"),
                    error_type::VALIDATION,
                )
            }
            _ => format!("{prog}: cannot start: {e}"),
        };
        TaskError::permanent(message, error_type::HANDLER)
    }

    /// Records that the program could not be started, for `/ready`.
    fn program_lost(&self, message: String) -> TaskError {
        let path_var = program::path_var(&self.env);
        let problem = match program::check(&self.program, path_var.as_deref()) {
            Err(problem) => problem,
            // It is there but would not start: its interpreter is missing.
            Ok(()) => program::ProgramError::NotExecutable(self.program.clone()),
        };
        self.missing
            .lost(&self.key, &self.program, path_var, problem);
        TaskError::retryable(message, error_type::HANDLER)
    }

    /// Waits for the leader to exit, the output to overflow, the deadline or
    /// a cancel, whichever comes first, without spinning.
    fn wait(
        &self,
        group: &ProcessGroup,
        out: &PipeReader,
        deadline: Instant,
        ctx: &Context,
    ) -> Stop {
        // Short pauses first, so quick commands return quickly.
        let mut pause = Duration::from_millis(1);
        loop {
            if group.leader_exited() {
                return Stop::Exited;
            }
            if out.overflowed() {
                return Stop::Overflow;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Stop::Timeout;
            }
            if let Some(reason) = ctx.cancel.wait(pause.min(left)) {
                return Stop::Cancelled(reason);
            }
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    fn run(&self, task: &Task, ctx: &Context) -> Result<Value, TaskError> {
        if let Some(reason) = ctx.cancel.reason() {
            return Err(cancelled(reason, "cancelled before start"));
        }
        let mut input = serde_json::to_vec(task).map_err(|e| {
            TaskError::permanent(
                format!("task cannot be encoded: {e}"),
                error_type::VALIDATION,
            )
        })?;
        input.push(b'\n');
        let started = Instant::now();
        let deadline = match self.timeout {
            Some(t) => ctx.deadline.min(started + t),
            None => ctx.deadline,
        };
        // From here on, dropping `group` kills and reaps whatever runs.
        let mut group =
            ProcessGroup::spawn(&mut self.command(task, ctx)).map_err(|e| self.spawn_error(e))?;
        self.missing.found(&self.key);
        let (stdin, stdout, stderr) = take_pipes(&mut group).map_err(internal)?;
        feed(stdin, input).map_err(internal)?;
        let out = PipeReader::head("exec-stdout", stdout, self.max_output).map_err(internal)?;
        let err = PipeReader::tail("exec-stderr", stderr, STDERR_TAIL).map_err(internal)?;

        let stop = self.wait(&group, &out, deadline, ctx);
        let status = match stop {
            // Anything the program left running in its group dies with it.
            Stop::Exited => group.kill_and_reap(),
            _ => group.stop(self.kill_grace),
        };
        let pipes_closed = crate::bounded::instant_after(Instant::now(), PIPE_GRACE);
        let out = out.finish(pipes_closed);
        let stderr_tail = err
            .finish(pipes_closed)
            .map(|c| tail_text(&c.bytes, STDERR_TAIL))
            .unwrap_or_default();
        let fail = |message: String, kind: &str, retryable: bool| {
            let e = TaskError::new(message, kind, retryable);
            if stderr_tail.is_empty() {
                e
            } else {
                e.with_traceback(stderr_tail.clone())
            }
        };
        let overflow = || {
            fail(
                format!("output exceeded max_output ({} bytes)", self.max_output),
                error_type::VALIDATION,
                false,
            )
        };
        match stop {
            Stop::Overflow => return Err(overflow()),
            Stop::Timeout => {
                return Err(fail(
                    format!("timed out after {:.1}s", started.elapsed().as_secs_f64()),
                    error_type::TIMEOUT,
                    true,
                ))
            }
            Stop::Cancelled(reason) => {
                let e = cancelled(reason, "cancelled");
                return Err(fail(e.message, &e.error_type, true));
            }
            Stop::Exited => {}
        }
        let status = status.map_err(internal)?;
        let Some(out) = out else {
            return Err(fail(
                "stdout still open after the program exited (a process left its group)".into(),
                error_type::HANDLER,
                false,
            ));
        };
        if out.overflowed {
            return Err(overflow());
        }
        match exit_failure(status) {
            None => Ok(result_from_output(&out.bytes)),
            Some((what, retryable)) => {
                let message = last_line(&stderr_tail).map_or(what, str::to_string);
                let err = fail(message, error_type::HANDLER, retryable);
                Err(failure_report(&out.bytes).apply(err))
            }
        }
    }
}

impl Handler for ExecHandler {
    fn handle(&self, task: &Task, ctx: &Context) -> Result<Value, TaskError> {
        self.run(task, ctx)
    }
}

/// `None` for exit 0; else a description and whether a retry may help.
fn exit_failure(status: ExitStatus) -> Option<(String, bool)> {
    match (status.code(), status.signal()) {
        (Some(0), _) => None,
        // EX_TEMPFAIL: the program says a later try may succeed.
        (Some(75), _) => Some(("exited with status 75".into(), true)),
        (Some(n), _) => Some((format!("exited with status {n}"), false)),
        // Killed from outside (OOM killer, an operator): worth another try.
        (None, Some(sig)) => Some((format!("killed by signal {sig}"), true)),
        (None, None) => Some(("ended without a status".into(), true)),
    }
}

/// The most of a handler's `error` message kept, in bytes.
const MAX_ERROR_MESSAGE: usize = 4096;

/// The longest `error_type` word taken from a handler.
const MAX_ERROR_TYPE: usize = 32;

/// The longest last stdout line read as a failure report; a longer one is
/// output, not a report.
const MAX_REPORT_LINE: usize = 64 * 1024;

/// What a failing program said of its failure in its last stdout line;
/// `None` for what it did not say (or said wrongly).
#[derive(Debug, Default, PartialEq)]
struct FailureReport {
    error: Option<String>,
    error_type: Option<String>,
    retryable: Option<bool>,
    retry_after: Option<Duration>,
}

impl FailureReport {
    /// `err` with every field the report gives in place of its own.
    fn apply(self, mut err: TaskError) -> TaskError {
        if let Some(message) = self.error {
            err.message = message;
        }
        if let Some(kind) = self.error_type {
            err.error_type = kind;
        }
        if let Some(retryable) = self.retryable {
            err.retryable = retryable;
        }
        err.retry_after = self.retry_after;
        err
    }
}

/// Reads the last non-blank line of a failing program's stdout as a
/// failure report, when it is a JSON object of at most [`MAX_REPORT_LINE`]
/// bytes. Unknown fields are ignored; `error` is cut to
/// [`MAX_ERROR_MESSAGE`] bytes; an `error_type` that is not an upper-case
/// word (`A-Z`, `0-9`, `_`, a letter first, up to 32) becomes `HANDLER`; a
/// `retry_after` that is not a number of seconds in [0, 3600] is ignored.
fn failure_report(stdout: &[u8]) -> FailureReport {
    let line = stdout
        .split(|b| *b == b'\n')
        .rev()
        .find(|l| !l.iter().all(u8::is_ascii_whitespace));
    let Some(Value::Object(map)) = line
        .filter(|l| l.len() <= MAX_REPORT_LINE)
        .and_then(|l| serde_json::from_slice(l).ok())
    else {
        return FailureReport::default();
    };
    let error = map
        .get("error")
        .and_then(Value::as_str)
        .filter(|e| !e.trim().is_empty())
        .map(|e| truncate(e, MAX_ERROR_MESSAGE));
    let error_type = map.get("error_type").map(|t| match t.as_str() {
        Some(word) if is_error_word(word) => word.to_string(),
        _ => error_type::HANDLER.to_string(),
    });
    let retry_after = map
        .get("retry_after")
        .and_then(Value::as_f64)
        .filter(|s| *s >= 0.0)
        .and_then(|s| match s {
            0.0 => Some(Duration::ZERO),
            s => crate::bounded::seconds_within(s, crate::bounded::MAX_RETRY_AFTER),
        });
    FailureReport {
        error,
        error_type,
        retryable: map.get("retryable").and_then(Value::as_bool),
        retry_after,
    }
}

/// Whether `word` is an `error_type` of the protocol's shape: an upper-case word.
fn is_error_word(word: &str) -> bool {
    word.len() <= MAX_ERROR_TYPE
        && word.starts_with(|c: char| c.is_ascii_uppercase())
        && word
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// A failure of the worker's own plumbing (threads, pipes), not the program's.
fn internal(e: std::io::Error) -> TaskError {
    TaskError::retryable(format!("running the command: {e}"), error_type::HANDLER)
}

fn take_pipes(group: &mut ProcessGroup) -> std::io::Result<(ChildStdin, ChildStdout, ChildStderr)> {
    let child = group.child_mut();
    match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
        (Some(i), Some(o), Some(e)) => Ok((i, o, e)),
        _ => Err(std::io::Error::other("a pipe to the child is missing")),
    }
}

/// Writes the task to stdin on its own thread, so a program that never reads
/// stdin cannot block us. The thread is not joined: it ends as soon as the
/// write completes or the pipe breaks, which killing the group guarantees.
fn feed(mut stdin: ChildStdin, input: Vec<u8>) -> std::io::Result<()> {
    thread::Builder::new()
        .name("taskworker-exec-stdin".into())
        .spawn(move || {
            // EPIPE means the program did not want its input: not an error.
            let _ = stdin.write_all(&input);
        })?;
    Ok(())
}

/// `command`: a non-empty list of strings, the first a non-empty program.
fn command_from_json(v: Option<&Value>, key: &str) -> Result<(PathBuf, Vec<String>), Error> {
    let problem = "must be a non-empty list of strings (argv, no shell)";
    let Some(Value::Array(items)) = v else {
        return Err(Error::config(key, problem));
    };
    let mut argv = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str() {
            Some(s) if !s.contains('\0') => argv.push(s.to_string()),
            _ => return Err(Error::config(key, problem)),
        }
    }
    let mut argv = argv.into_iter();
    let program = match argv.next() {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => return Err(Error::config(key, problem)),
    };
    Ok((program, argv.collect()))
}

/// `env`: an object of string values with plain names.
fn env_from_json(v: &Value, key: &str) -> Result<Vec<(String, String)>, Error> {
    let Some(map): Option<&Map<String, Value>> = v.as_object() else {
        return Err(Error::config(key, "must be an object of strings"));
    };
    let mut vars = Vec::with_capacity(map.len());
    for (name, value) in map {
        let key = format!("{key}.{name}");
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(Error::config(key, "is not a valid variable name"));
        }
        match value.as_str() {
            Some(s) if !s.contains('\0') => vars.push((name.clone(), s.to_string())),
            _ => return Err(Error::config(key, "must be a string")),
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> HandlerEnv {
        crate::handlers::tests::env_with(&["DB_PASSWORD"])
    }

    #[test]
    fn reads_options_and_rejects_bad_ones() {
        let root = HandlerEnv {
            base_dir: Some("/".into()),
            ..env()
        };
        let h = ExecHandler::from_config(
            &json!({"command": ["bin/sh", "-v"], "env": {"A": "1"}, "timeout": "1m", "max_output": "2K"}),
            "k",
            &root,
        )
        .unwrap();
        assert_eq!(h.program, PathBuf::from("/bin/sh"));
        assert_eq!(h.args, ["-v"]);
        assert_eq!(h.timeout, Some(Duration::from_secs(60)));
        assert_eq!(h.max_output, 2048);
        assert!(h.scrubbed.contains(&"DB_PASSWORD".to_string()));
        assert_eq!(
            ExecHandler::from_config(&json!({"command": ["true"]}), "k", &env())
                .unwrap()
                .program,
            PathBuf::from("true")
        );
        for (bad, key) in [
            (json!({}), "k.command"),
            (json!({"command": []}), "k.command"),
            (json!({"command": "ls -l"}), "k.command"),
            (json!({"command": ["ls", 3]}), "k.command"),
            (json!({"command": [""]}), "k.command"),
            (json!({"command": ["ls"], "env": {"A": 1}}), "k.env.A"),
            (json!({"command": ["ls"], "env": {"A=B": "1"}}), "k.env.A=B"),
            (json!({"command": ["ls"], "timeout": 0}), "k.timeout"),
            (json!({"command": ["ls"], "timeout": "soon"}), "k.timeout"),
            (
                json!({"command": ["ls"], "max_output": "1X"}),
                "k.max_output",
            ),
            (json!({"command": ["ls"], "cwd": 5}), "k.cwd"),
            (json!({"command": ["ls"], "shell": true}), "k.shell"),
            (json!(["ls"]), "k"),
            (json!({"command": ["/nonexistent/x"]}), "k.command"),
            (
                json!({"command": ["taskworker-no-such-program"]}),
                "k.command",
            ),
            (json!({"command": ["/"]}), "k.command"),
        ] {
            let err = ExecHandler::from_config(&bad, "k", &env()).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("config: {key}:")),
                "{err}"
            );
        }
    }

    #[test]
    fn reads_a_failure_report_from_the_last_stdout_line() {
        let report = failure_report(
            b"progress\n{\"error\": \"bad input\", \"error_type\": \"VALIDATION\", \"retryable\": false, \"retry_after\": 2.5, \"extra\": 1}\n\n",
        );
        assert_eq!(
            report,
            FailureReport {
                error: Some("bad input".into()),
                error_type: Some("VALIDATION".into()),
                retryable: Some(false),
                retry_after: Some(Duration::from_millis(2500)),
            }
        );
        let err = report.apply(TaskError::retryable("from stderr", "HANDLER"));
        assert_eq!(
            (err.message.as_str(), err.error_type.as_str(), err.retryable),
            ("bad input", "VALIDATION", false)
        );
        // Only what is given replaces the exit status's reading.
        let partial =
            failure_report(b"{\"retryable\": true}").apply(TaskError::permanent("m", "HANDLER"));
        assert_eq!((partial.message.as_str(), partial.retryable), ("m", true));
    }

    #[test]
    fn a_failure_report_is_bounded_and_checked() {
        for not_a_report in [
            &b""[..],
            b"plain text",
            b"[1, 2]",
            b"{\"error\": 1",
            b"\"error\"",
        ] {
            assert_eq!(failure_report(not_a_report), FailureReport::default());
        }
        let long = format!("{{\"error\": \"{}\"}}", "é".repeat(5000));
        let error = failure_report(long.as_bytes()).error.unwrap();
        assert!(error.len() <= MAX_ERROR_MESSAGE && error.starts_with('é'));
        let huge = format!(
            "{{\"error\": \"x\", \"pad\": \"{}\"}}",
            "x".repeat(MAX_REPORT_LINE)
        );
        assert_eq!(failure_report(huge.as_bytes()), FailureReport::default());
        for (kind, label) in [
            ("\"RATE_LIMIT\"", "RATE_LIMIT"),
            ("\"lower\"", "HANDLER"),
            ("\"BAD WORD\"", "HANDLER"),
            ("\"_X\"", "HANDLER"),
            ("\"\"", "HANDLER"),
            ("7", "HANDLER"),
            (&format!("\"{}\"", "A".repeat(33)), "HANDLER"),
        ] {
            let report = failure_report(format!("{{\"error_type\": {kind}}}").as_bytes());
            assert_eq!(report.error_type.as_deref(), Some(label), "{kind}");
        }
        for (after, wait) in [
            ("0", Some(Duration::ZERO)),
            ("3600", Some(Duration::from_secs(3600))),
            ("3601", None),
            ("-1", None),
            ("1e308", None),
            ("\"5\"", None),
            ("null", None),
        ] {
            let report = failure_report(format!("{{\"retry_after\": {after}}}").as_bytes());
            assert_eq!(report.retry_after, wait, "{after}");
        }
        let blank = failure_report(b"{\"error\": \"  \", \"retryable\": \"yes\"}");
        assert_eq!((blank.error, blank.retryable), (None, None));
    }

    #[test]
    fn maps_exit_statuses_and_output() {
        let st = |raw: i32| ExitStatus::from_raw(raw);
        assert_eq!(exit_failure(st(0)), None);
        assert_eq!(exit_failure(st(75 << 8)).map(|f| f.1), Some(true));
        assert_eq!(exit_failure(st(1 << 8)).map(|f| f.1), Some(false));
        assert_eq!(exit_failure(st(9)).map(|f| f.1), Some(true));
    }
}
