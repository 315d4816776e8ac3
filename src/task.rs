//! The protocol types of packaging/PROTOCOL.md, shared by the worker and the reference server.
//!
//! Every type ignores unknown fields. Required fields are required: a body
//! without them does not deserialise, and the error names the field.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A task's priority; absent means `medium`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Served after everything else.
    Low,
    /// The default.
    #[default]
    Medium,
    /// Served first.
    High,
}

impl Priority {
    /// The wire name (`high`, `medium`, `low`).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Priority> {
        match s {
            "low" => Some(Priority::Low),
            "medium" => Some(Priority::Medium),
            "high" => Some(Priority::High),
            _ => None,
        }
    }
}

/// A task as a server hands it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Required, non-empty; percent-encoded when it goes into a path.
    pub id: String,
    /// Required, non-empty; selects the handler.
    #[serde(rename = "type")]
    pub task_type: String,
    /// Any JSON value; absent means `{}`.
    #[serde(default = "empty_object")]
    pub parameters: Value,
    /// Absent means `medium`.
    #[serde(default)]
    pub priority: Priority,
    /// Informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    /// Informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<String>,
    /// 1 on first delivery, +1 on each redelivery (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// How many deliveries the server allows (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Per-task override of the worker's `TIMEOUT` (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// When present, the server accepts heartbeats for this task (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<String>,
    /// Do not start the task after this instant (extension): a worker that
    /// would start it later reports it failed `EXPIRED` without running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Whether `secs` is a usable `timeout_seconds`: finite, in (0, a week].
pub fn timeout_in_bounds(secs: f64) -> bool {
    crate::bounded::seconds_within(secs, crate::bounded::MAX_TASK_TIMEOUT).is_some()
}

/// What is wrong with a `field` whose JSON is `value`: it names both.
pub fn out_of_bounds(field: &str, value: &str) -> String {
    let max = crate::bounded::MAX_TASK_TIMEOUT.as_secs();
    format!("field \"{field}\" is {value}, not a number of seconds in (0, {max}]")
}

/// Keeps the first object of each `id` in a claim answer; returns them and
/// the ids of the copies dropped. Objects without a string `id` pass through
/// (they are rejected, and counted, later).
pub fn drop_duplicate_ids(objects: Vec<Value>) -> (Vec<Value>, Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    let mut copies = Vec::new();
    let kept = objects
        .into_iter()
        .filter(|o| match o.get("id").and_then(Value::as_str) {
            Some(id) if !seen.insert(id.to_string()) => {
                copies.push(id.to_string());
                false
            }
            _ => true,
        })
        .collect();
    (kept, copies)
}

/// Why a claimed object is not a runnable task.
#[derive(Debug, Clone, PartialEq)]
pub enum MalformedTask {
    /// No string `id`: it cannot be reported back, only logged and counted.
    NoId,
    /// An `id` but no usable `type`: reported failed as `VALIDATION`.
    BadType {
        /// The task's id, to report the failure against.
        id: String,
    },
    /// A field out of its bounds (`timeout_seconds` not a number of seconds
    /// in (0, 604800]): reported failed as `VALIDATION`, not retryable.
    OutOfBounds {
        /// The task's id, to report the failure against.
        id: String,
        /// The task's type.
        task_type: String,
        /// The field, as the wire names it.
        field: &'static str,
        /// The value as it came, in JSON.
        value: String,
    },
}

impl std::fmt::Display for MalformedTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MalformedTask::NoId => f.write_str("claimed task has no string id"),
            MalformedTask::BadType { id } => {
                write!(f, "task {id}: missing or non-string type")
            }
            MalformedTask::OutOfBounds {
                id, field, value, ..
            } => write!(f, "task {id}: {}", out_of_bounds(field, value)),
        }
    }
}

impl Task {
    /// A new task with only the core fields set.
    pub fn new(id: impl Into<String>, task_type: impl Into<String>, parameters: Value) -> Task {
        Task {
            id: id.into(),
            task_type: task_type.into(),
            parameters,
            priority: Priority::Medium,
            created_at: None,
            claimed_by: None,
            claimed_at: None,
            attempt: None,
            max_attempts: None,
            timeout_seconds: None,
            lease_expires_at: None,
            expires_at: None,
        }
    }

    /// Whether the task may no longer start at `now`: its `expires_at` has
    /// passed. A task without one (or with one that does not parse) never
    /// expires.
    pub fn is_expired(&self, now: std::time::SystemTime) -> bool {
        self.expires_at
            .as_deref()
            .and_then(crate::timestamp::parse)
            .is_some_and(|at| now > at)
    }

    /// Reads a claimed object leniently: only `id` and `type` must be usable,
    /// and `timeout_seconds`, when present, bounded; other optional fields of
    /// the wrong type, an unknown `priority` and a `lease_expires_at` or
    /// `expires_at` that does not parse are treated as absent (an
    /// `expires_at` that does not parse is logged: the task will run).
    pub fn from_claimed(value: Value) -> Result<Task, MalformedTask> {
        let Value::Object(mut map) = value else {
            return Err(MalformedTask::NoId);
        };
        let id = match map.remove("id") {
            Some(Value::String(id)) if !id.is_empty() => id,
            _ => return Err(MalformedTask::NoId),
        };
        let task_type = match map.remove("type") {
            Some(Value::String(t)) if !t.is_empty() => t,
            _ => return Err(MalformedTask::BadType { id }),
        };
        let mut text = |key: &str| match map.remove(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let priority = text("priority")
            .and_then(|p| Priority::parse(&p))
            .unwrap_or_default();
        let (created_at, claimed_by, claimed_at) =
            (text("created_at"), text("claimed_by"), text("claimed_at"));
        let lease_expires_at =
            text("lease_expires_at").filter(|t| crate::timestamp::parse(t).is_some());
        let expires_at = match map.remove("expires_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if crate::timestamp::parse(&t).is_some() => Some(t),
            Some(other) => {
                let shown: String = other.to_string().chars().take(64).collect();
                log::warn!(
                    "task {id} ({task_type}): expires_at {shown} is not an RFC 3339 time; the task runs as if it had none"
                );
                None
            }
        };
        let small = |v: Option<&Value>| {
            v.and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        let timeout_seconds = match map.get("timeout_seconds") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64().filter(|s| timeout_in_bounds(*s)) {
                Some(secs) => Some(secs),
                None => {
                    return Err(MalformedTask::OutOfBounds {
                        id,
                        task_type,
                        field: "timeout_seconds",
                        value: v.to_string(),
                    })
                }
            },
        };
        Ok(Task {
            attempt: small(map.get("attempt")),
            max_attempts: small(map.get("max_attempts")),
            timeout_seconds,
            parameters: match map.remove("parameters") {
                None | Some(Value::Null) => empty_object(),
                Some(v) => v,
            },
            id,
            task_type,
            priority,
            created_at,
            claimed_by,
            claimed_at,
            lease_expires_at,
            expires_at,
        })
    }
}

/// `POST /tasks/claim` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// Core: who claims.
    pub worker_id: String,
    /// Only these types (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    /// Batch size (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tasks: Option<u32>,
    /// Long poll (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<f64>,
    /// Makes a repeated claim return the same tasks (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<String>,
}

/// `POST /tasks/claim` answer, in either form. Tasks stay raw JSON so the
/// worker can tell a malformed task from a malformed answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimResponse {
    /// The core form: one task or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Value>,
    /// The batch form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<Value>>,
}

impl ClaimResponse {
    /// All claimed objects, whatever the form.
    pub fn into_claimed(self) -> Vec<Value> {
        let mut all = self.tasks.unwrap_or_default();
        match self.task {
            Some(Value::Null) | None => {}
            Some(t) => all.push(t),
        }
        all
    }
}

/// `POST /tasks/claim/cancel` body (extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelClaimRequest {
    /// Who cancels.
    pub worker_id: String,
    /// The claim to end.
    pub claim_id: String,
}

/// `POST /tasks/{id}/complete` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteBody {
    /// Core: the handler's result.
    pub result: Value,
    /// Who ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// How long it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// `POST /tasks/{id}/fail` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailBody {
    /// Core: a human-readable message.
    pub error: String,
    /// `VALIDATION`, `TIMEOUT`, ... or a handler's own upper-case word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Whether a later delivery may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// Detail: a command's stderr tail, a panic message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
    /// Who ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// How many local tries were made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// How long it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// `POST /tasks/{id}/heartbeat` body (extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatBody {
    /// Who holds the lease.
    pub worker_id: String,
}

/// `POST /tasks` body (reference server).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnqueueRequest {
    /// Required: the task type.
    #[serde(rename = "type")]
    pub task_type: String,
    /// Absent means `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Absent means `medium`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Absent means the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Per-task deadline for the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Not claimable before this many seconds have passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<f64>,
    /// Not claimable before this instant (RFC 3339); instead of `delay_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<String>,
    /// Never handed out after this instant (RFC 3339): the task expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Makes the enqueue idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Percent-encodes a task id for use as one path segment. The ids `.` and
/// `..` are encoded too (`%2E`), since a client library or proxy would
/// otherwise resolve them as "this" and "the parent" path.
pub fn encode_path_segment(id: &str) -> String {
    let dots = id == "." || id == "..";
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        let plain = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~');
        if plain || (b == b'.' && !dots) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a percent-encoded path segment; `None` for bad escapes or non-UTF-8.
#[cfg(any(feature = "server", test))]
pub fn decode_path_segment(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TASK_EXAMPLE: &str = r#"{
      "id": "task_12345",
      "type": "send.email",
      "parameters": {"to": "a@example.com", "subject": "Hi", "body": "..."},
      "priority": "high",
      "created_at": "2025-11-09T15:00:00Z",
      "claimed_by": "worker-001",
      "claimed_at": "2025-11-09T15:00:05Z",
      "attempt": 1,
      "max_attempts": 3,
      "timeout_seconds": 30,
      "lease_expires_at": "2025-11-09T15:01:05Z"
    }"#;

    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(
        text: &str,
    ) -> T {
        let parsed: T = serde_json::from_str(text).unwrap();
        let again: T = serde_json::from_value(serde_json::to_value(&parsed).unwrap()).unwrap();
        assert_eq!(parsed, again);
        let original: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            numbers_as_f64(serde_json::to_value(&parsed).unwrap()),
            numbers_as_f64(original)
        );
        parsed
    }

    /// `30` and `30.0` are the same number on the wire.
    fn numbers_as_f64(v: Value) -> Value {
        match v {
            Value::Number(n) => json!(n.as_f64()),
            Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_f64).collect()),
            Value::Object(o) => {
                Value::Object(o.into_iter().map(|(k, v)| (k, numbers_as_f64(v))).collect())
            }
            other => other,
        }
    }

    #[test]
    fn task_example_round_trips() {
        let t: Task = round_trip(TASK_EXAMPLE);
        assert_eq!(t.id, "task_12345");
        assert_eq!(t.priority, Priority::High);
        assert_eq!(t.attempt, Some(1));
        assert_eq!(
            Task::from_claimed(serde_json::from_str(TASK_EXAMPLE).unwrap()).unwrap(),
            t
        );
    }

    #[test]
    fn request_and_body_examples_round_trip() {
        let c: ClaimRequest = round_trip(
            r#"{"worker_id": "edge-7-4312", "types": ["send.email", "generate.report"], "max_tasks": 4,
                "wait_seconds": 20, "claim_id": "edge-7-4312-000000000417"}"#,
        );
        assert_eq!(c.max_tasks, Some(4));
        let done: CompleteBody = round_trip(
            r#"{"result": {"sent_at": "2025-11-09T15:00:07Z"}, "worker_id": "edge-7-4312", "duration_ms": 1840}"#,
        );
        assert_eq!(done.duration_ms, Some(1840));
        let fail: FailBody = round_trip(
            r#"{"error": "SMTP 451 try later", "error_type": "RATE_LIMIT", "retryable": true,
                "traceback": "...", "worker_id": "edge-7-4312", "attempts": 3, "duration_ms": 912}"#,
        );
        assert_eq!(fail.retryable, Some(true));
        let cancel: CancelClaimRequest =
            round_trip(r#"{"worker_id": "edge-7-4312", "claim_id": "edge-7-4312-000000000417"}"#);
        assert_eq!(cancel.claim_id, "edge-7-4312-000000000417");
        let hb: HeartbeatBody = round_trip(r#"{"worker_id": "w"}"#);
        assert_eq!(hb.worker_id, "w");
    }

    #[test]
    fn claim_responses_in_every_form() {
        let one: ClaimResponse =
            serde_json::from_str(&format!(r#"{{"task": {TASK_EXAMPLE}}}"#)).unwrap();
        assert_eq!(one.into_claimed().len(), 1);
        let batch: ClaimResponse =
            serde_json::from_str(&format!(r#"{{"tasks": [{TASK_EXAMPLE}, {TASK_EXAMPLE}]}}"#))
                .unwrap();
        assert_eq!(batch.into_claimed().len(), 2);
        for empty in [r#"{"task": null}"#, r#"{"tasks": []}"#, r#"{}"#] {
            let r: ClaimResponse = serde_json::from_str(empty).unwrap();
            assert!(r.into_claimed().is_empty(), "{empty}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_required_ones_enforced() {
        let t: Task = serde_json::from_value(json!({"id": "a", "type": "t", "extra": 1})).unwrap();
        assert_eq!(t.parameters, json!({}));
        assert_eq!(t.priority, Priority::Medium);
        let err = serde_json::from_value::<Task>(json!({"id": "a"})).unwrap_err();
        assert!(err.to_string().contains("type"), "{err}");
        let err = serde_json::from_value::<FailBody>(json!({"retryable": true})).unwrap_err();
        assert!(err.to_string().contains("error"), "{err}");
        let err = serde_json::from_value::<CompleteBody>(json!({"worker_id": "w"})).unwrap_err();
        assert!(err.to_string().contains("result"), "{err}");
    }

    #[test]
    fn claimed_objects_are_read_leniently() {
        assert_eq!(
            Task::from_claimed(json!({"type": "x"})),
            Err(MalformedTask::NoId)
        );
        assert_eq!(
            Task::from_claimed(json!({"id": 7, "type": "x"})),
            Err(MalformedTask::NoId)
        );
        assert_eq!(Task::from_claimed(json!("nope")), Err(MalformedTask::NoId));
        assert_eq!(
            Task::from_claimed(json!({"id": "a", "type": 3})),
            Err(MalformedTask::BadType { id: "a".into() })
        );
        let t = Task::from_claimed(json!({"id": "a", "type": "x", "priority": "urgent", "attempt": "one", "parameters": null}))
            .unwrap();
        assert_eq!(t.priority, Priority::Medium);
        assert_eq!(t.attempt, None);
        assert_eq!(t.parameters, json!({}));
    }

    #[test]
    fn timeout_seconds_out_of_bounds_fails_the_task_naming_field_and_value() {
        for bad in [
            json!(0),
            json!(-1),
            json!(604_801),
            json!(1e300),
            json!("30"),
            json!(true),
        ] {
            let err = Task::from_claimed(json!({"id": "a", "type": "t", "timeout_seconds": bad}))
                .unwrap_err();
            let MalformedTask::OutOfBounds {
                ref id,
                field,
                ref value,
                ..
            } = err
            else {
                panic!("{err:?}");
            };
            assert_eq!((id.as_str(), field), ("a", "timeout_seconds"));
            assert_eq!(value, &bad.to_string());
            assert!(err.to_string().contains(&format!("is {bad}")), "{err}");
        }
        for good in [json!(0.5), json!(30), json!(604_800), Value::Null] {
            let t = Task::from_claimed(json!({"id": "a", "type": "t", "timeout_seconds": good}));
            assert_eq!(t.unwrap().timeout_seconds, good.as_f64());
        }
    }

    #[test]
    fn an_unparsable_lease_counts_as_absent() {
        let t = Task::from_claimed(json!({"id": "a", "type": "t", "lease_expires_at": "soon"}));
        assert_eq!(t.unwrap().lease_expires_at, None);
        let at = "2025-11-09T15:01:05Z";
        let t = Task::from_claimed(json!({"id": "a", "type": "t", "lease_expires_at": at}));
        assert_eq!(t.unwrap().lease_expires_at.as_deref(), Some(at));
    }

    #[test]
    fn a_claim_answer_keeps_the_first_of_each_id() {
        let (kept, copies) = drop_duplicate_ids(vec![
            json!({"id": "a", "n": 1}),
            json!({"id": "b"}),
            json!({"id": "a", "n": 2}),
            json!({"type": "no id"}),
            json!({"type": "no id"}),
        ]);
        assert_eq!(kept.len(), 4);
        assert_eq!(kept[0]["n"], 1);
        assert_eq!(copies, ["a"]);
    }

    #[test]
    fn path_segments_round_trip() {
        for id in ["task_1", "a/b c?d#%", "ünï"] {
            assert_eq!(decode_path_segment(&encode_path_segment(id)).unwrap(), id);
        }
        assert_eq!(encode_path_segment("a/b"), "a%2Fb");
        assert_eq!(decode_path_segment("%zz"), None);
        assert_eq!(encode_path_segment("."), "%2E");
        assert_eq!(encode_path_segment(".."), "%2E%2E");
        assert_eq!(encode_path_segment("a.b"), "a.b");
        assert_eq!(encode_path_segment("..."), "...");
        for id in [".", ".."] {
            assert_eq!(decode_path_segment(&encode_path_segment(id)).unwrap(), id);
        }
    }
}
