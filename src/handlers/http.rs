//! The `http` handler: POSTs the task object to a URL and takes the JSON
//! answer as the result.
//!
//! Contract (README, "Handlers"): 2xx completes with the answer (JSON as
//! it is, an empty body as `null`, other text as `{"output": text}`, as the
//! exec handler reads stdout); 408, 429, 5xx and network errors are
//! retryable; other statuses are permanent. An answer larger than
//! `max_response` fails as `VALIDATION`. The request is bounded by the
//! handler's `timeout` and the task's deadline, whichever is sooner; a
//! request in flight cannot be interrupted, so a cancel is seen only before
//! it starts (the supervisor reports the task on time regardless). No
//! redirect is followed: a 3xx is a permanent failure. Errors name the URL
//! without its query string, where tokens live.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use super::options::Options;
use super::{cancelled, result_from_output, Handler, HandlerEnv};
use crate::context::Context;
use crate::error::{error_type, Error, TaskError};
use crate::task::Task;

/// Default cap on an answer's body: 1 MiB.
pub const DEFAULT_MAX_RESPONSE: u64 = 1 << 20;

/// How much of an error answer's body goes into `traceback`.
const ERROR_BODY: u64 = 4096;

/// The options a config entry may carry.
const OPTIONS: [&str; 3] = ["url", "timeout", "max_response"];

/// POSTs each task to a configured URL: `{"http": {"url": "...", ...}}`.
#[derive(Debug, Clone)]
pub struct HttpHandler {
    /// Where tasks are POSTed.
    url: String,
    /// `url` as errors name it: no query string, userinfo as `***`.
    shown_url: String,
    /// The handler's own time limit per request; the task's deadline applies as well.
    timeout: Option<Duration>,
    /// Most bytes of an answer accepted.
    max_response: u64,
    /// The worker's shared agent (keep-alive, TLS roots); each request sets
    /// the status policy and time limit this handler needs on top of it.
    agent: ureq::Agent,
}

impl HttpHandler {
    /// Builds the handler from its config entry's options; `key` names the
    /// entry (`handlers.TYPE.http`) in errors.
    pub fn from_config(options: &Value, key: &str, env: &HandlerEnv) -> Result<HttpHandler, Error> {
        let opts = Options::new(options, key, &OPTIONS)?;
        let url = match opts.get("url").and_then(Value::as_str) {
            Some(url) => check_url(url).map_err(|p| Error::config(opts.key("url"), p))?,
            None => return Err(Error::config(opts.key("url"), "must be an http(s) URL")),
        };
        Ok(HttpHandler {
            shown_url: crate::config::url::for_errors(&url),
            url,
            timeout: opts.duration("timeout")?,
            max_response: opts.size("max_response", DEFAULT_MAX_RESPONSE)?,
            agent: env.agent.clone(),
        })
    }

    fn post(&self, task: &Task, ctx: &Context) -> Result<Value, TaskError> {
        if let Some(reason) = ctx.cancel.reason() {
            return Err(cancelled(reason, "cancelled before the request"));
        }
        let left = ctx.remaining();
        if left.is_zero() {
            return Err(TaskError::retryable(
                "deadline passed before the request",
                error_type::TIMEOUT,
            ));
        }
        let limit = self.timeout.map_or(left, |t| t.min(left));
        // Statuses are read here, into retryable or permanent failures with
        // the answer's text: they must not come back as `Error::StatusCode`,
        // whatever agent the handler was given.
        let mut response = self
            .agent
            .post(&self.url)
            .header("Accept", "application/json")
            .config()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(limit))
            .build()
            .send_json(task)
            .map_err(|e| self.request_error(e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let mut head = Vec::new();
            // What the server said, for the traceback; a broken body adds nothing.
            let _ = response
                .body_mut()
                .as_reader()
                .take(ERROR_BODY)
                .read_to_end(&mut head);
            return Err(status_failure(&self.shown_url, status, &head));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_response)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => TaskError::permanent(
                    format!(
                        "{}: answer exceeded max_response ({} bytes)",
                        self.shown_url, self.max_response
                    ),
                    error_type::VALIDATION,
                ),
                e => self.request_error(e),
            })?;
        Ok(result_from_output(&body))
    }

    /// A request that got no usable answer: retryable unless retrying the
    /// same request cannot help.
    fn request_error(&self, e: ureq::Error) -> TaskError {
        // The error's own text may quote the URL too.
        let detail = e.to_string().replace(&self.url, &self.shown_url);
        let message = format!("{}: {detail}", self.shown_url);
        match e {
            ureq::Error::Timeout(_) => TaskError::retryable(message, error_type::TIMEOUT),
            ureq::Error::BadUri(_)
            | ureq::Error::RequireHttpsOnly(_)
            | ureq::Error::RedirectFailed
            | ureq::Error::TooManyRedirects
            | ureq::Error::InvalidProxyUrl => TaskError::permanent(message, error_type::HANDLER),
            _ => TaskError::retryable(message, error_type::HANDLER),
        }
    }
}

impl Handler for HttpHandler {
    fn handle(&self, task: &Task, ctx: &Context) -> Result<Value, TaskError> {
        self.post(task, ctx)
    }
}

/// The failure for a non-2xx answer; `head` is the start of its body.
fn status_failure(url: &str, status: u16, head: &[u8]) -> TaskError {
    let (kind, retryable) = match status {
        408 => (error_type::TIMEOUT, true),
        429 => (error_type::RATE_LIMIT, true),
        500..=599 => (error_type::HANDLER, true),
        _ => (error_type::HANDLER, false),
    };
    let text = String::from_utf8_lossy(head);
    let first_line = text.lines().map(str::trim).find(|l| !l.is_empty());
    let message = match first_line {
        _ if (300..400).contains(&status) => {
            format!("{url}: status {status}: a redirect, not followed")
        }
        Some(line) => format!("{url}: status {status}: {}", clip(line, 200)),
        None => format!("{url}: status {status}"),
    };
    let e = TaskError::new(message, kind, retryable);
    if text.trim().is_empty() {
        e
    } else {
        e.with_traceback(text.into_owned())
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An absolute `http` or `https` URL with a host.
fn check_url(url: &str) -> Result<String, String> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(url.to_string()),
        _ => Err(format!("{url:?} is not an http(s) URL with a host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> HandlerEnv {
        crate::handlers::tests::env_with(&[])
    }

    #[test]
    fn reads_options_and_rejects_bad_ones() {
        let h = HttpHandler::from_config(
            &json!({"url": "http://127.0.0.1:9000/report", "timeout": 120, "max_response": "2K"}),
            "k",
            &env(),
        )
        .unwrap();
        assert_eq!(h.timeout, Some(Duration::from_secs(120)));
        assert_eq!(h.max_response, 2048);
        for (bad, key) in [
            (json!({}), "k.url"),
            (json!({"url": "ftp://x/y"}), "k.url"),
            (json!({"url": "/just/a/path"}), "k.url"),
            (json!({"url": 7}), "k.url"),
            (json!({"url": "http://h", "timeout": -1}), "k.timeout"),
            (
                json!({"url": "http://h", "max_response": 0}),
                "k.max_response",
            ),
            (json!({"url": "http://h", "method": "GET"}), "k.method"),
            (json!("http://h"), "k"),
        ] {
            let err = HttpHandler::from_config(&bad, "k", &env()).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("config: {key}:")),
                "{err}"
            );
        }
    }

    #[test]
    fn reads_statuses_itself_whatever_agent_it_is_given() {
        // The test environment's agent has ureq's defaults, which turn a
        // 4xx or 5xx answer into an error.
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", server.server_addr().to_ip().unwrap());
        let answer = std::thread::spawn(move || {
            let req = server.recv_timeout(Duration::from_secs(10)).unwrap();
            let busy = tiny_http::Response::from_string("busy").with_status_code(503);
            req.expect("a request within 10 s").respond(busy).unwrap();
        });
        let h = HttpHandler::from_config(&json!({"url": url, "timeout": 10}), "k", &env()).unwrap();
        let ctx = Context::new(Duration::from_secs(10), 1, "w".into());
        let err = h
            .handle(&Task::new("t1", "t", json!({})), &ctx)
            .unwrap_err();
        answer.join().unwrap();
        assert_eq!(err.message, format!("{url}: status 503: busy"));
        assert_eq!(err.traceback.as_deref(), Some("busy"));
        assert!(err.retryable);
    }

    #[test]
    fn maps_statuses() {
        let f = |s| status_failure("u", s, b"oops\nmore");
        assert_eq!(
            (f(408).error_type.as_str(), f(408).retryable),
            ("TIMEOUT", true)
        );
        assert_eq!(
            (f(429).error_type.as_str(), f(429).retryable),
            ("RATE_LIMIT", true)
        );
        assert!(f(500).retryable && f(503).retryable);
        assert!(!f(400).retryable && !f(404).retryable && !f(302).retryable);
        assert_eq!(f(500).message, "u: status 500: oops");
        assert_eq!(f(500).traceback.as_deref(), Some("oops\nmore"));
        assert_eq!(status_failure("u", 502, b"").message, "u: status 502");
        assert_eq!(clip("aé", 2), "a");
    }
}
