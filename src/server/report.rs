//! `POST /tasks/report` (extension): many outcomes in one request. Each
//! item is checked and applied as its single call (`complete` or `fail`)
//! would be, through the same [`Store`] calls, so every store has it; the
//! answer gives each item the status that single call would have given.

use serde_json::{json, Value};

use super::decode::{self, Fields};
use super::store::{Store, StoreError};
use crate::listener::Response;

/// The most outcomes one batch may carry; a larger batch is refused whole
/// with 413, before any item is applied.
pub const MAX_OUTCOMES: usize = 100;

/// Answers a batch report: 200 with one `{"id", "status"}` per outcome, in
/// order (with an `error` beside a status that is not 200); 400 for a body that is not a batch, 413 above [`MAX_OUTCOMES`].
/// `refusal` turns a store's refusal into the single call's answer.
pub fn report(
    store: &dyn Store,
    f: &Fields,
    refusal: impl Fn(StoreError) -> Response,
) -> Result<Response, String> {
    let worker_id = f.str("worker_id")?;
    let outcomes = match f.present("outcomes")? {
        Value::Array(items) => items,
        _ => return Err("field `outcomes`: expected a list".into()),
    };
    if outcomes.len() > MAX_OUTCOMES {
        return Ok(Response::error(
            413,
            format!(
                "field `outcomes`: {} outcomes, at most {MAX_OUTCOMES} in one batch",
                outcomes.len()
            ),
        ));
    }
    let results: Vec<Value> = outcomes
        .iter()
        .map(|item| {
            let id = item.get("id").cloned().unwrap_or(Value::Null);
            match apply(store, item, &worker_id) {
                Ok(()) => json!({ "id": id, "status": 200 }),
                Err(Refused::Malformed(why)) => json!({ "id": id, "status": 400, "error": why }),
                Err(Refused::Store(e)) => {
                    let why = e.to_string();
                    json!({ "id": id, "status": refusal(e).status, "error": why })
                }
            }
        })
        .collect();
    Ok(Response::json(200, &json!({ "results": results })))
}

/// Why one item was not applied.
enum Refused {
    /// The item is not `{"id", "complete"}` or `{"id", "fail"}` with a
    /// valid body (400).
    Malformed(String),
    /// The store refused it as it would the single call.
    Store(StoreError),
}

/// Applies one item. Its body's `worker_id` is the batch's when it names
/// none, so the lease holder is checked as in a single report.
fn apply(store: &dyn Store, item: &Value, worker_id: &str) -> Result<(), Refused> {
    let malformed = |why: String| Refused::Malformed(why);
    let Some(obj) = item.as_object() else {
        return Err(malformed("an outcome must be an object".into()));
    };
    let id = match obj.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id,
        _ => return Err(malformed("field `id`: expected a non-empty string".into())),
    };
    let body = |key: &str| -> Result<Fields, Refused> {
        let mut body = obj.get(key).cloned().unwrap_or(Value::Null);
        let Some(fields) = body.as_object_mut() else {
            return Err(malformed(format!("field `{key}`: expected an object")));
        };
        fields
            .entry("worker_id")
            .or_insert_with(|| Value::String(worker_id.to_string()));
        let bytes = serde_json::to_vec(&body).map_err(|e| malformed(e.to_string()))?;
        Fields::parse(&bytes).map_err(malformed)
    };
    match (obj.contains_key("complete"), obj.contains_key("fail")) {
        (true, false) => {
            let complete = decode::complete(&body("complete")?).map_err(malformed)?;
            store.complete(id, complete).map_err(Refused::Store)
        }
        (false, true) => {
            let fail = decode::fail(&body("fail")?).map_err(malformed)?;
            store.fail(id, &fail).map(|_| ()).map_err(Refused::Store)
        }
        _ => Err(malformed(
            "an outcome carries exactly one of `complete` and `fail`".into(),
        )),
    }
}
