//! `POST /tasks/report` (extension): many outcomes in one request. Each
//! item is checked as its single call (`complete` or `fail`) would be, and
//! the valid ones go to the store together ([`Store::report_many`]: one
//! journal sync, one Redis script); the answer gives each item the
//! status that single call would have given.

use serde_json::{json, Value};

use super::decode::{self, Fields};
use super::store::{Report, Store, StoreError};
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
    // The valid items go to the store together; the others keep their reason.
    let mut reports = Vec::with_capacity(outcomes.len());
    let problems: Vec<Option<String>> = outcomes
        .iter()
        .map(|item| match check(item, &worker_id) {
            Ok(report) => {
                reports.push(report);
                None
            }
            Err(why) => Some(why),
        })
        .collect();
    // Each valid item's result in order, or the one reason the store took none.
    let applied = store.report_many(reports).map_err(|e| {
        let why = e.to_string();
        (refusal(e).status, why)
    });
    let mut applied = applied.as_ref().map(|results| results.iter());
    let results: Vec<Value> = outcomes
        .iter()
        .zip(problems)
        .map(|(item, problem)| {
            let id = item.get("id").cloned().unwrap_or(Value::Null);
            let refused = match (problem, &mut applied) {
                (Some(why), _) => Some((400, why)),
                (None, Ok(results)) => match results.next() {
                    Some(Ok(_)) => None,
                    Some(Err(e)) => {
                        let why = e.to_string();
                        Some((refusal(e.clone().into()).status, why))
                    }
                    None => Some((
                        503,
                        "the store answered fewer outcomes than it was given".into(),
                    )),
                },
                (None, Err((status, why))) => Some((*status, why.clone())),
            };
            match refused {
                None => json!({ "id": id, "status": 200 }),
                Some((status, why)) => json!({ "id": id, "status": status, "error": why }),
            }
        })
        .collect();
    Ok(Response::json(200, &json!({ "results": results })))
}

/// Checks one item as its single call's body would be checked (400 with the
/// reason when it fails). Its body's `worker_id` is the batch's when it
/// names none, so the lease holder is checked as in a single report.
fn check(item: &Value, worker_id: &str) -> Result<Report, String> {
    let Some(obj) = item.as_object() else {
        return Err("an outcome must be an object".into());
    };
    let id = match obj.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err("field `id`: expected a non-empty string".into()),
    };
    let body = |key: &str| -> Result<Fields, String> {
        let mut body = obj.get(key).cloned().unwrap_or(Value::Null);
        let Some(fields) = body.as_object_mut() else {
            return Err(format!("field `{key}`: expected an object"));
        };
        fields
            .entry("worker_id")
            .or_insert_with(|| Value::String(worker_id.to_string()));
        let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        Fields::parse(&bytes)
    };
    match (obj.contains_key("complete"), obj.contains_key("fail")) {
        (true, false) => Ok(Report::Complete(id, decode::complete(&body("complete")?)?)),
        (false, true) => Ok(Report::Fail(id, decode::fail(&body("fail")?)?)),
        _ => Err("an outcome carries exactly one of `complete` and `fail`".into()),
    }
}
