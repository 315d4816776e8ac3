//! What a task execution produced, ready to report: the complete or fail
//! body, serialised once, with the task it belongs to.

use std::time::Duration;

use serde_json::Value;

use crate::client::ReportKind;
use crate::error::TaskError;
use crate::task::{CompleteBody, FailBody};

/// One report for the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The task it reports on.
    pub task_id: String,
    /// The task's type, for logs and metrics.
    pub task_type: String,
    /// Complete or fail.
    pub kind: ReportKind,
    /// The JSON body, serialised once.
    pub body: Vec<u8>,
    /// `None` for a completion, else the failure's `error_type`.
    pub error_type: Option<String>,
    /// Its record in the spool, when it has one: a newer record of the same
    /// task (a redelivery answered from the spool) supersedes it.
    pub spool_seq: Option<u64>,
}

impl Outcome {
    /// A completion with `result`.
    pub fn completed(
        task_id: &str,
        task_type: &str,
        result: Value,
        worker_id: &str,
        duration: Duration,
    ) -> Outcome {
        let body = CompleteBody {
            result,
            worker_id: Some(worker_id.to_string()),
            duration_ms: Some(crate::bounded::millis(duration)),
        };
        Outcome {
            task_id: task_id.to_string(),
            task_type: task_type.to_string(),
            kind: ReportKind::Complete,
            body: serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"result\":null}".to_vec()),
            error_type: None,
            spool_seq: None,
        }
    }

    /// A failure; `attempts` counts the local tries.
    pub fn failed(
        task_id: &str,
        task_type: &str,
        err: &TaskError,
        worker_id: &str,
        attempts: u32,
        duration: Duration,
    ) -> Outcome {
        let body = FailBody {
            error: err.message.clone(),
            error_type: Some(err.error_type.clone()),
            retryable: Some(err.retryable),
            traceback: err.traceback.clone(),
            worker_id: Some(worker_id.to_string()),
            attempts: Some(attempts),
            duration_ms: Some(crate::bounded::millis(duration)),
        };
        Outcome {
            task_id: task_id.to_string(),
            task_type: task_type.to_string(),
            kind: ReportKind::Fail,
            body: serde_json::to_vec(&body)
                .unwrap_or_else(|_| b"{\"error\":\"unserialisable error\"}".to_vec()),
            error_type: Some(err.error_type.clone()),
            spool_seq: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_follow_the_protocol() {
        let done = Outcome::completed(
            "t1",
            "echo",
            json!({"a": 1}),
            "w",
            Duration::from_millis(12),
        );
        let body: CompleteBody = serde_json::from_slice(&done.body).unwrap();
        assert_eq!(body.result, json!({"a": 1}));
        assert_eq!(body.duration_ms, Some(12));
        let err = TaskError::retryable("slow down", "RATE_LIMIT").with_traceback("tb");
        let fail = Outcome::failed("t1", "echo", &err, "w", 3, Duration::from_millis(5));
        let body: FailBody = serde_json::from_slice(&fail.body).unwrap();
        assert_eq!(body.error, "slow down");
        assert_eq!(body.retryable, Some(true));
        assert_eq!(body.attempts, Some(3));
        assert_eq!(fail.error_type.as_deref(), Some("RATE_LIMIT"));
    }
}
