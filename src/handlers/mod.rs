//! Handlers: what runs a task of a given type. One file per kind
//! (`builtin`, `exec`, `http`), plus the registry that maps types to them;
//! `program`, `process_group` and `capture` are the exec handler's program,
//! child and pipes.

pub(crate) mod builtin;
mod capture;
pub(crate) mod exec;
pub(crate) mod http;
mod options;
pub(crate) mod process_group;
pub(crate) mod program;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::backoff::RetryPolicy;
use crate::config::{Config, SECRET_VARS};
use crate::context::{CancelReason, Context};
use crate::error::{error_type, Error, TaskError};
use crate::task::Task;
use crate::worker::limits::Limit;

/// Runs tasks of one type. Closures `Fn(&Task, &Context) -> Result<Value, TaskError>` are handlers.
pub trait Handler: Send + Sync + 'static {
    /// Runs one task; `Ok` is the result sent with complete.
    fn handle(&self, task: &Task, ctx: &Context) -> Result<Value, TaskError>;
}

impl<F> Handler for F
where
    F: Fn(&Task, &Context) -> Result<Value, TaskError> + Send + Sync + 'static,
{
    fn handle(&self, task: &Task, ctx: &Context) -> Result<Value, TaskError> {
        self(task, ctx)
    }
}

/// What handlers built from configuration need from the worker.
#[derive(Clone)]
pub struct HandlerEnv {
    /// The worker's shared HTTP agent (keep-alive).
    pub agent: ureq::Agent,
    /// Environment variable names that must never reach a child process.
    pub secret_vars: Vec<String>,
    /// Where a relative `command` path resolves: the config file's
    /// directory; the working directory when `None`.
    pub base_dir: Option<PathBuf>,
    /// The programs that went missing while the worker runs, for `/ready`.
    pub missing: program::MissingPrograms,
}

impl HandlerEnv {
    /// The environment of the handlers `config` describes, sharing `agent`.
    /// A child program sees none of the secret variables ([`SECRET_VARS`]),
    /// none of those `SECRET_ENV` names, and none of systemd's notify and
    /// watchdog variables: it must not talk to systemd in the worker's name.
    pub fn for_config(config: &Config, agent: ureq::Agent) -> HandlerEnv {
        let secret_vars = SECRET_VARS
            .iter()
            .chain(&crate::worker::notify::ENV_VARS)
            .map(|v| v.to_string())
            .chain(config.secret_env.iter().cloned())
            .collect();
        HandlerEnv {
            agent,
            secret_vars,
            base_dir: config.config_dir.clone(),
            missing: program::MissingPrograms::default(),
        }
    }
}

/// The options beside a handler's kind that set how its type's retryable
/// failures are retried locally, in place of `MAX_RETRIES`,
/// `RETRY_BACKOFF` and `RETRY_BACKOFF_MAX`.
const RETRY_OPTIONS: [&str; 3] = ["max_retries", "retry_backoff", "retry_backoff_max"];

/// A handler's own local retry settings; `None` takes the worker's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOptions {
    /// In place of `MAX_RETRIES`.
    pub max_retries: Option<u32>,
    /// In place of `RETRY_BACKOFF`.
    pub backoff: Option<Duration>,
    /// In place of `RETRY_BACKOFF_MAX`.
    pub backoff_max: Option<Duration>,
}

impl RetryOptions {
    /// The policy for a type with these options on a worker with `config`.
    pub(crate) fn policy(&self, config: &Config) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries.unwrap_or(config.max_retries),
            base: self.backoff.unwrap_or(config.retry_backoff),
            cap: self.backoff_max.unwrap_or(config.retry_backoff_max),
        }
    }

    fn from_options(opts: &options::Options) -> Result<RetryOptions, Error> {
        let hour = crate::bounded::MAX_RETRY_AFTER;
        Ok(RetryOptions {
            max_retries: opts.count("max_retries", 100)?,
            backoff: opts.duration_up_to("retry_backoff", hour)?,
            backoff_max: opts.duration_up_to("retry_backoff_max", hour)?,
        })
    }
}

/// Task type → handler, and the types' own retry options and limits.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn Handler>>,
    retries: BTreeMap<String, RetryOptions>,
    limits: BTreeMap<String, Limit>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers (or replaces) the handler for `task_type`.
    pub fn insert(&mut self, task_type: impl Into<String>, handler: impl Handler) {
        self.handlers.insert(task_type.into(), Arc::new(handler));
    }

    /// Sets the limits of `task_type` (replacing any it had).
    pub fn limit(&mut self, task_type: impl Into<String>, limit: Limit) {
        self.limits.insert(task_type.into(), limit);
    }

    /// Every type's limits.
    pub fn limits(&self) -> &BTreeMap<String, Limit> {
        &self.limits
    }

    /// Adds every handler and limit of `other`, replacing those of the same type.
    pub fn extend(&mut self, other: Registry) {
        self.handlers.extend(other.handlers);
        self.retries.extend(other.retries);
        self.limits.extend(other.limits);
    }

    /// The retry options configured for `task_type` (none set when it has none).
    pub fn retry_options(&self, task_type: &str) -> RetryOptions {
        self.retries.get(task_type).copied().unwrap_or_default()
    }

    /// The handler for `task_type`, if any.
    pub fn get(&self, task_type: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(task_type)
    }

    /// The types that have handlers, sorted: the claim's `types`.
    pub fn types(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    /// Whether no handler is registered.
    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }

    /// Builds the registry from the config file's `handlers` map.
    pub fn from_config(
        handlers: &serde_json::Map<String, Value>,
        env: &HandlerEnv,
    ) -> Result<Registry, Error> {
        let mut registry = Registry::new();
        for (task_type, spec) in handlers {
            let key = format!("handlers.{task_type}");
            let beside = |name: &str| {
                RETRY_OPTIONS.contains(&name) || options::LIMIT_OPTIONS.contains(&name)
            };
            let mut kinds = spec
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(name, _)| !beside(name.as_str()));
            let (Some((kind, options)), None) = (kinds.next(), kinds.next()) else {
                return Err(Error::config(
                    key,
                    "must be an object with exactly one of \"builtin\", \"exec\" or \"http\" \
                     (and, beside it, any of max_retries, retry_backoff, retry_backoff_max, \
                     concurrency, rate, burst)",
                ));
            };
            let mut known = vec![kind.as_str()];
            known.extend(RETRY_OPTIONS);
            known.extend(options::LIMIT_OPTIONS);
            let retry = RetryOptions::from_options(&options::Options::new(spec, &key, &known)?)?;
            if retry != RetryOptions::default() {
                registry.retries.insert(task_type.clone(), retry);
            }
            let limit = options::limit(spec, &key)?;
            if limit.is_limited() {
                registry.limits.insert(task_type.clone(), limit);
            }
            let key = format!("{key}.{kind}");
            match kind.as_str() {
                "builtin" => registry
                    .handlers
                    .insert(task_type.clone(), builtin::from_config(options, &key)?),
                "exec" => registry.handlers.insert(
                    task_type.clone(),
                    Arc::new(exec::ExecHandler::from_config(options, &key, env)?),
                ),
                "http" => registry.handlers.insert(
                    task_type.clone(),
                    Arc::new(http::HttpHandler::from_config(options, &key, env)?),
                ),
                other => {
                    return Err(Error::config(
                        key,
                        format!("unknown handler kind {other:?} (use builtin, exec or http)"),
                    ))
                }
            };
        }
        Ok(registry)
    }
}

/// An answer's bytes (a command's stdout, an HTTP body) as a task result:
/// JSON as it is, blank as `null`, any other text as `{"output": text}`.
pub(crate) fn result_from_output(bytes: &[u8]) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::json!({ "output": String::from_utf8_lossy(bytes) }))
}

/// The failure for a task stopped by a cancel: retryable (another try, here
/// or elsewhere, may finish it), typed by why it was stopped.
pub(crate) fn cancelled(reason: CancelReason, what: &str) -> TaskError {
    let (why, kind) = match reason {
        CancelReason::Timeout => ("deadline passed", error_type::TIMEOUT),
        CancelReason::LeaseLost => ("lease lost", error_type::LEASE_LOST),
        CancelReason::Shutdown => ("worker shutting down", error_type::SHUTDOWN),
    };
    TaskError::retryable(format!("{what}: {why}"), kind)
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A handler environment for unit tests, with `secret_vars`.
    pub(crate) fn env_with(secret_vars: &[&str]) -> HandlerEnv {
        HandlerEnv {
            agent: ureq::Agent::new_with_defaults(),
            secret_vars: secret_vars.iter().map(|s| s.to_string()).collect(),
            base_dir: None,
            missing: program::MissingPrograms::default(),
        }
    }

    fn env() -> HandlerEnv {
        env_with(&[])
    }

    #[test]
    fn builds_exec_and_http_handlers() {
        let spec = json!({
            "run": {"exec": {"command": ["true"]}},
            "post": {"http": {"url": "http://127.0.0.1:9/x"}},
        });
        let reg = Registry::from_config(spec.as_object().unwrap(), &env()).unwrap();
        assert_eq!(reg.types(), vec!["post", "run"]);
        let bad = json!({"x": {"exec": {"command": []}}});
        let err = Registry::from_config(bad.as_object().unwrap(), &env()).unwrap_err();
        assert!(err.to_string().contains("handlers.x.exec.command"), "{err}");
    }

    #[test]
    fn builds_builtins_and_rejects_bad_specs() {
        let spec = json!({"echo": {"builtin": "echo"}, "nap": {"builtin": "sleep"}});
        let reg = Registry::from_config(spec.as_object().unwrap(), &env()).unwrap();
        assert_eq!(reg.types(), vec!["echo", "nap"]);
        for (bad, named) in [
            (json!({"x": {"builtin": "nope"}}), "handlers.x.builtin"),
            (json!({"x": {"teleport": {}}}), "handlers.x.teleport"),
            (json!({"x": "echo"}), "handlers.x"),
            (json!({"x": {"builtin": "echo", "exec": {}}}), "handlers.x"),
        ] {
            let err = Registry::from_config(bad.as_object().unwrap(), &env()).unwrap_err();
            assert!(err.to_string().contains(named), "{err}");
            assert_eq!(err.exit_code(), 78);
        }
    }

    #[test]
    fn retry_options_beside_the_kind_override_the_workers() {
        let spec = json!({
            "mail": {"exec": {"command": ["true"]}, "max_retries": 7, "retry_backoff": "250ms"},
            "echo": {"builtin": "echo"},
        });
        let reg = Registry::from_config(spec.as_object().unwrap(), &env()).unwrap();
        let config = Config::default();
        let mail = reg.retry_options("mail").policy(&config);
        assert_eq!(mail.max_retries, 7);
        assert_eq!(mail.base, Duration::from_millis(250));
        assert_eq!(mail.cap, config.retry_backoff_max);
        let echo = reg.retry_options("echo").policy(&config);
        assert_eq!(
            (echo.max_retries, echo.base),
            (config.max_retries, config.retry_backoff)
        );
        for (bad, named) in [
            (
                json!({"x": {"builtin": "echo", "max_retries": -1}}),
                "handlers.x.max_retries",
            ),
            (
                json!({"x": {"builtin": "echo", "max_retries": 101}}),
                "handlers.x.max_retries",
            ),
            (
                json!({"x": {"builtin": "echo", "retry_backoff": "2h"}}),
                "handlers.x.retry_backoff",
            ),
            (
                json!({"x": {"builtin": "echo", "retry_backoff_max": 0}}),
                "handlers.x.retry_backoff_max",
            ),
            (json!({"x": {"max_retries": 2}}), "handlers.x"),
        ] {
            let err = Registry::from_config(bad.as_object().unwrap(), &env()).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("config: {named}:")),
                "{err}"
            );
        }
    }

    #[test]
    fn limits_sit_beside_the_handler_kind() {
        let spec = json!({
            "mail": {"builtin": "echo", "concurrency": 2, "rate": "100/hour"},
            "fast": {"builtin": "echo", "rate": "10/s", "burst": 3},
            "free": {"builtin": "echo"},
        });
        let reg = Registry::from_config(spec.as_object().unwrap(), &env()).unwrap();
        assert_eq!(reg.types(), vec!["fast", "free", "mail"]);
        let mail = reg.limits()["mail"];
        assert_eq!(mail.concurrency, Some(2));
        assert_eq!(mail.rate.map(|r| r.burst()), Some(1));
        assert_eq!(reg.limits()["fast"].rate.map(|r| r.burst()), Some(3));
        assert!(!reg.limits().contains_key("free"));
        for (bad, named) in [
            (
                json!({"x": {"builtin": "echo", "rate": "100/day"}}),
                "handlers.x.rate",
            ),
            (
                json!({"x": {"builtin": "echo", "rate": 100}}),
                "handlers.x.rate",
            ),
            (
                json!({"x": {"builtin": "echo", "rate": "0/s"}}),
                "handlers.x.rate",
            ),
            (
                json!({"x": {"builtin": "echo", "concurrency": 0}}),
                "handlers.x.concurrency",
            ),
            (
                json!({"x": {"builtin": "echo", "concurrency": 1.5}}),
                "handlers.x.concurrency",
            ),
            (
                json!({"x": {"builtin": "echo", "burst": 2}}),
                "handlers.x.burst",
            ),
            (
                json!({"x": {"builtin": "echo", "rate": "1/s", "burst": -1}}),
                "handlers.x.burst",
            ),
            (json!({"x": {"concurrency": 2}}), "handlers.x"),
        ] {
            let err = Registry::from_config(bad.as_object().unwrap(), &env()).unwrap_err();
            assert!(err.to_string().contains(named), "{bad}: {err}");
            assert_eq!(err.exit_code(), 78);
        }
    }

    #[test]
    fn handler_env_keeps_every_secret_from_children() {
        let config = Config {
            secret_env: vec!["DB_PASSWORD".into()],
            ..Config::default()
        };
        let env = HandlerEnv::for_config(&config, ureq::Agent::new_with_defaults());
        for var in [
            "API_KEY",
            "API_KEY_FILE",
            "CREDENTIALS_DIRECTORY",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "DB_PASSWORD",
        ] {
            assert!(env.secret_vars.iter().any(|v| v == var), "{var}");
        }
    }

    #[test]
    fn output_becomes_a_result() {
        assert_eq!(result_from_output(b"{\"a\":1}\n"), json!({"a": 1}));
        assert_eq!(result_from_output(b"hi\n"), json!({"output": "hi\n"}));
        assert_eq!(result_from_output(b" \n"), Value::Null);
    }
}
