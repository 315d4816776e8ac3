//! The `exec` handler: runs a command in its own process group with the task
//! on stdin, and takes its stdout as the result.
//!
//! Contract (design.md "Handlers"): argv only, never a shell; the task object
//! as one JSON line on stdin; the environment scrubbed of secrets plus
//! `TASK_ID`, `TASK_TYPE`, `TASK_ATTEMPT`, `WORKER_ID` and the `env` option.
//! Exit 0 completes, 75 is a retryable failure, any other code a permanent
//! one (`HANDLER`), death by a signal a retryable one. On timeout or cancel
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
                Err(fail(message, error_type::HANDLER, retryable))
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
    fn maps_exit_statuses_and_output() {
        let st = |raw: i32| ExitStatus::from_raw(raw);
        assert_eq!(exit_failure(st(0)), None);
        assert_eq!(exit_failure(st(75 << 8)).map(|f| f.1), Some(true));
        assert_eq!(exit_failure(st(1 << 8)).map(|f| f.1), Some(false));
        assert_eq!(exit_failure(st(9)).map(|f| f.1), Some(true));
    }
}
