//! Handlers: what runs a task of a given type. One file per kind
//! (`builtin`, `exec`, `http`), plus the registry that maps types to them;
//! `process_group` and `capture` are the exec handler's child and pipes.

pub mod builtin;
mod capture;
pub mod exec;
mod process_group;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::context::Context;
use crate::error::{Error, TaskError};
use crate::task::Task;

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
}

/// Task type → handler.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn Handler>>,
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
            let Some(obj) = spec.as_object().filter(|o| o.len() == 1) else {
                return Err(Error::config(
                    key,
                    "must be an object with exactly one of \"builtin\", \"exec\" or \"http\"",
                ));
            };
            let (kind, options) = obj.iter().next().expect("one entry");
            let key = format!("{key}.{kind}");
            match kind.as_str() {
                "builtin" => registry
                    .handlers
                    .insert(task_type.clone(), builtin::from_config(options, &key)?),
                "exec" => registry.handlers.insert(
                    task_type.clone(),
                    Arc::new(exec::ExecHandler::from_config(options, &key, env)?),
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

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> HandlerEnv {
        HandlerEnv {
            agent: ureq::Agent::new_with_defaults(),
            secret_vars: vec![],
        }
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
}
