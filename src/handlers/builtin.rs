//! The builtin handlers `echo`, `sleep` and `fail`: for checks, demos and benchmarks.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::Handler;
use crate::context::{CancelReason, Context};
use crate::error::{error_type, Error, TaskError};
use crate::task::Task;

/// `echo`: the result is the task's parameters.
pub fn echo(task: &Task, _ctx: &Context) -> Result<Value, TaskError> {
    Ok(task.parameters.clone())
}

/// `sleep`: waits `{"ms": N}` milliseconds, and stops early when cancelled.
pub fn sleep(task: &Task, ctx: &Context) -> Result<Value, TaskError> {
    let ms = match task.parameters.get("ms") {
        None => 0,
        Some(v) => v.as_u64().ok_or_else(|| {
            TaskError::permanent(
                "sleep: \"ms\" must be a whole number",
                error_type::VALIDATION,
            )
        })?,
    };
    match ctx.sleep(Duration::from_millis(ms)) {
        Ok(()) => Ok(serde_json::json!({ "slept_ms": ms })),
        Err(CancelReason::Timeout) => Err(TaskError::retryable(
            format!("sleep: deadline hit before {ms} ms"),
            error_type::TIMEOUT,
        )),
        Err(reason) => Err(TaskError::retryable(
            format!("sleep: cancelled ({reason:?})"),
            error_type::SHUTDOWN,
        )),
    }
}

/// `fail`: fails with `{"message": "...", "retryable": bool, "error_type": "..."}`.
pub fn fail(task: &Task, _ctx: &Context) -> Result<Value, TaskError> {
    let p = &task.parameters;
    let message = p
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("failed on purpose");
    let retryable = p.get("retryable").and_then(Value::as_bool).unwrap_or(false);
    let kind = p
        .get("error_type")
        .and_then(Value::as_str)
        .unwrap_or(error_type::HANDLER);
    Err(TaskError::new(message, kind, retryable))
}

/// The builtin named by a config entry (`{"builtin": "echo"}`).
pub(super) fn from_config(name: &Value, key: &str) -> Result<Arc<dyn Handler>, Error> {
    let handler: Arc<dyn Handler> = match name.as_str() {
        Some("echo") => Arc::new(echo),
        Some("sleep") => Arc::new(sleep),
        Some("fail") => Arc::new(fail),
        _ => {
            return Err(Error::config(
                key,
                format!("{name} is not a builtin (use \"echo\", \"sleep\" or \"fail\")"),
            ))
        }
    };
    Ok(handler)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Context {
        Context::new(Duration::from_secs(5), 1, "w".into())
    }

    #[test]
    fn echo_returns_parameters() {
        let t = Task::new("1", "echo", json!({"a": [1, 2]}));
        assert_eq!(echo(&t, &ctx()), Ok(json!({"a": [1, 2]})));
    }

    #[test]
    fn sleep_sleeps_and_honours_cancel() {
        let t = Task::new("1", "sleep", json!({"ms": 10}));
        assert_eq!(sleep(&t, &ctx()), Ok(json!({"slept_ms": 10})));
        let c = ctx();
        c.cancel.cancel(CancelReason::Shutdown);
        let err = sleep(&Task::new("1", "sleep", json!({"ms": 60_000})), &c).unwrap_err();
        assert_eq!(err.error_type, "SHUTDOWN");
        assert!(sleep(&Task::new("1", "sleep", json!({"ms": "x"})), &c).is_err());
    }

    #[test]
    fn fail_fails_as_asked() {
        let err = fail(
            &Task::new("1", "fail", json!({"message": "m", "retryable": true})),
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(err, TaskError::new("m", "HANDLER", true));
    }
}
