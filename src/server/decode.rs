//! Request bodies to protocol types, with errors that name the field.

use serde_json::{Map, Value};

use crate::task::{
    CancelClaimRequest, ClaimRequest, CompleteBody, EnqueueRequest, FailBody, Priority,
};

/// The longest task id, type or worker id accepted.
const MAX_NAME: usize = 1024;

/// A JSON object body.
#[derive(Debug)]
pub struct Fields(Map<String, Value>);

impl Fields {
    /// Parses a body; an empty body is `{}`, so missing fields are named.
    pub fn parse(body: &[u8]) -> Result<Fields, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Fields(map)),
            Ok(_) => Err("body must be a JSON object".into()),
            Err(e) => Err(format!("malformed JSON: {e}")),
        }
    }

    /// A field; `null` counts as absent.
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// An optional non-empty string.
    pub fn opt_str(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => {
                Err(format!("field `{key}`: must not be empty"))
            }
            Some(Value::String(s)) if s.len() > MAX_NAME => {
                Err(format!("field `{key}`: longer than {MAX_NAME} bytes"))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("field `{key}`: expected a string")),
        }
    }

    /// A required non-empty string.
    pub fn str(&self, key: &str) -> Result<String, String> {
        self.opt_str(key)?
            .ok_or_else(|| format!("missing field `{key}`"))
    }

    /// An optional whole number that fits in `u32`.
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| format!("field `{key}`: expected a whole number")),
        }
    }

    /// An optional whole number.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("field `{key}`: expected a whole number")),
        }
    }

    /// An optional finite number, not negative.
    pub fn opt_seconds(&self, key: &str) -> Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Some)
                .ok_or_else(|| {
                    format!("field `{key}`: expected a number of seconds, not negative")
                }),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("field `{key}`: expected true or false")),
        }
    }

    /// An optional list of strings.
    pub fn opt_str_list(&self, key: &str) -> Result<Option<Vec<String>>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| format!("field `{key}`: expected a list of strings")),
            Some(_) => Err(format!("field `{key}`: expected a list of strings")),
        }
    }

    /// A field that must be present; `null` is a value here.
    pub fn present(&self, key: &str) -> Result<Value, String> {
        self.0
            .get(key)
            .cloned()
            .ok_or_else(|| format!("missing field `{key}`"))
    }
}

/// `POST /tasks/claim`.
pub fn claim(f: &Fields) -> Result<ClaimRequest, String> {
    let max_tasks = f.opt_u32("max_tasks")?;
    if max_tasks == Some(0) {
        return Err("field `max_tasks`: must be at least 1".into());
    }
    Ok(ClaimRequest {
        worker_id: f.str("worker_id")?,
        types: f.opt_str_list("types")?,
        max_tasks,
        wait_seconds: f.opt_seconds("wait_seconds")?,
        claim_id: f.opt_str("claim_id")?,
    })
}

/// `POST /tasks/claim/cancel`.
pub fn cancel(f: &Fields) -> Result<CancelClaimRequest, String> {
    Ok(CancelClaimRequest {
        worker_id: f.str("worker_id")?,
        claim_id: f.str("claim_id")?,
    })
}

/// `POST /tasks/{id}/complete`.
pub fn complete(f: &Fields) -> Result<CompleteBody, String> {
    Ok(CompleteBody {
        result: f.present("result")?,
        worker_id: f.opt_str("worker_id")?,
        duration_ms: f.opt_u64("duration_ms")?,
    })
}

/// `POST /tasks/{id}/fail`.
pub fn fail(f: &Fields) -> Result<FailBody, String> {
    let error = match f.get("error") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("field `error`: expected a string".into()),
        None => return Err("missing field `error`".into()),
    };
    let traceback = match f.get("traceback") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("field `traceback`: expected a string".into()),
    };
    Ok(FailBody {
        error,
        error_type: f.opt_str("error_type")?,
        retryable: f.opt_bool("retryable")?,
        traceback,
        worker_id: f.opt_str("worker_id")?,
        attempts: f.opt_u32("attempts")?,
        duration_ms: f.opt_u64("duration_ms")?,
    })
}

/// `POST /tasks`.
pub fn enqueue(f: &Fields) -> Result<EnqueueRequest, String> {
    let priority =
        match f.opt_str("priority")? {
            None => None,
            Some(p) => Some(Priority::parse(&p).ok_or_else(|| {
                format!("field `priority`: expected high, medium or low, not {p:?}")
            })?),
        };
    let max_attempts = f.opt_u32("max_attempts")?;
    if max_attempts == Some(0) {
        return Err("field `max_attempts`: must be at least 1".into());
    }
    let timeout_seconds = f.opt_seconds("timeout_seconds")?;
    if let Some(secs) = timeout_seconds.filter(|s| !crate::task::timeout_in_bounds(*s)) {
        let max = crate::bounded::MAX_TASK_TIMEOUT.as_secs();
        return Err(format!(
            "field `timeout_seconds`: must be more than 0 and at most {max}, not {secs}"
        ));
    }
    Ok(EnqueueRequest {
        task_type: f.str("type")?,
        parameters: f.get("parameters").cloned(),
        priority,
        max_attempts,
        timeout_seconds,
        delay_seconds: f.opt_seconds("delay_seconds")?,
        id: f.opt_str("id")?,
        ..EnqueueRequest::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str, decode: fn(&Fields) -> Result<(), String>) -> String {
        decode(&Fields::parse(body.as_bytes()).unwrap()).unwrap_err()
    }

    #[test]
    fn errors_name_the_field() {
        let c = |f: &Fields| claim(f).map(|_| ());
        assert!(err("{}", c).contains("`worker_id`"));
        assert!(err(r#"{"worker_id": 5}"#, c).contains("`worker_id`"));
        assert!(err(r#"{"worker_id": "w", "types": [1]}"#, c).contains("`types`"));
        assert!(err(r#"{"worker_id": "w", "max_tasks": -1}"#, c).contains("`max_tasks`"));
        let e = |f: &Fields| enqueue(f).map(|_| ());
        assert!(err(r#"{"type": "x", "priority": "urgent"}"#, e).contains("`priority`"));
        assert!(err(r#"{"parameters": {}}"#, e).contains("`type`"));
        let fl = |f: &Fields| fail(f).map(|_| ());
        assert!(err(r#"{"error": "x", "retryable": "yes"}"#, fl).contains("`retryable`"));
    }

    #[test]
    fn bad_json_and_non_objects_are_refused() {
        assert!(Fields::parse(b"{")
            .unwrap_err()
            .starts_with("malformed JSON"));
        assert!(Fields::parse(b"[1]").is_err());
        assert!(Fields::parse(b"  ").is_ok());
    }

    #[test]
    fn null_result_is_a_result() {
        let f = Fields::parse(br#"{"result": null}"#).unwrap();
        assert_eq!(complete(&f).unwrap().result, Value::Null);
    }
}
