//! `taskworker enqueue`: adds tasks to a server that has `POST /tasks` and
//! prints their ids, one per line.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::Error;
use crate::task::{EnqueueRequest, Priority};

/// The text of `taskworker enqueue --help`.
pub const USAGE: &str = "\
taskworker enqueue — add tasks to a server that has POST /tasks

USAGE:
    taskworker enqueue --api-url URL --type TYPE [OPTIONS]

OPTIONS:
    --api-url URL        base URL of the task API [env: API_URL]
    --type TYPE          the task type
    --params JSON        the task parameters [default: {}]
    --priority P         high, medium or low [default: medium]
    --count N            how many tasks to add [default: 1]
    --api-key KEY        bearer token [env: API_KEY]
    -h, --help           show this help

Prints the id of each created task, one per line.
";

/// What to enqueue, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct EnqueueArgs {
    /// Base URL of the task API.
    pub api_url: String,
    /// Bearer token.
    pub api_key: Option<String>,
    /// The task to add, `count` times.
    pub task: EnqueueRequest,
    /// How many tasks.
    pub count: u64,
}

/// Runs `taskworker enqueue` with `args` (after the command name).
pub fn run(args: Vec<OsString>) -> Result<(), Error> {
    let Some(args) = parse(args)? else {
        print!("{USAGE}");
        return Ok(());
    };
    let mut out = std::io::stdout().lock();
    for id in enqueue(&args)? {
        let _ = writeln!(out, "{id}");
    }
    Ok(())
}

/// Adds `args.count` tasks; returns their ids in order.
pub fn enqueue(args: &EnqueueArgs) -> Result<Vec<String>, Error> {
    let agent = agent(Duration::from_secs(30));
    (0..args.count)
        .map(|_| post(&agent, &args.api_url, args.api_key.as_deref(), &args.task))
        .collect()
}

/// An agent for `POST /tasks` that reads every status itself, each request
/// bounded by `timeout`.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// Adds one task at `api_url` (authenticated with `api_key` when given);
/// returns its id.
pub fn post(
    agent: &ureq::Agent,
    api_url: &str,
    api_key: Option<&str>,
    task: &EnqueueRequest,
) -> Result<String, Error> {
    let url = format!("{}/tasks", api_url.trim_end_matches('/'));
    let request = format!("POST {url}");
    let mut req = agent.post(&url);
    if let Some(key) = api_key {
        req = req.header("Authorization", format!("Bearer {key}"));
    }
    let mut resp = req
        .send_json(task)
        .map_err(|e| Error::request(&request, e))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| Error::request(&request, format!("reading the answer: {e}")))?;
    if !(200..300).contains(&status) {
        let head: String = text.chars().take(200).collect();
        return Err(Error::request(&request, format!("status {status}: {head}")));
    }
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v.pointer("/task/id")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .ok_or_else(|| Error::request(&request, format!("answer has no task id: {text}")))
}

/// Flags to arguments; `None` for `--help`.
fn parse(args: Vec<OsString>) -> Result<Option<EnqueueArgs>, Error> {
    use lexopt::prelude::*;
    let mut api_url = std::env::var("API_URL").ok().filter(|u| !u.is_empty());
    let mut api_key = std::env::var("API_KEY").ok().filter(|k| !k.is_empty());
    let mut task_type = None;
    let mut params = json!({});
    let mut priority = Priority::Medium;
    let mut count = 1;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("api-url") => api_url = Some(parser.value()?.string()?),
            Long("api-key") => api_key = Some(parser.value()?.string()?),
            Long("type") => task_type = Some(parser.value()?.string()?),
            Long("params") => {
                let text = parser.value()?.string()?;
                params = serde_json::from_str(&text)
                    .map_err(|e| Error::Usage(format!("--params: not valid JSON: {e}")))?;
            }
            Long("priority") => {
                let p = parser.value()?.string()?;
                priority = Priority::parse(&p).ok_or_else(|| {
                    Error::Usage(format!(
                        "--priority: expected high, medium or low, got {p:?}"
                    ))
                })?;
            }
            Long("count") => {
                let n = parser.value()?.string()?;
                count = n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    Error::Usage(format!("--count: expected a whole number ≥ 1, got {n:?}"))
                })?;
            }
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let api_url =
        api_url.ok_or_else(|| Error::Usage("--api-url (or API_URL) is required".into()))?;
    let task_type = task_type
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Usage("--type is required".into()))?;
    Ok(Some(EnqueueArgs {
        api_url,
        api_key,
        task: EnqueueRequest {
            task_type,
            parameters: Some(params),
            priority: Some(priority),
            ..EnqueueRequest::default()
        },
        count,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_flags_and_refuses_bad_params() {
        let a = parse(args(&[
            "--api-url",
            "http://x",
            "--type",
            "echo",
            "--params",
            r#"{"a":1}"#,
            "--count",
            "3",
            "--priority",
            "high",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(a.count, 3);
        assert_eq!(a.task.task_type, "echo");
        assert_eq!(a.task.parameters, Some(json!({"a": 1})));
        assert_eq!(a.task.priority, Some(Priority::High));
        let e = parse(args(&[
            "--api-url",
            "http://x",
            "--type",
            "e",
            "--params",
            "{",
        ]))
        .unwrap_err();
        assert_eq!(e.exit_code(), 64);
        assert!(e.to_string().contains("--params"));
    }
}
