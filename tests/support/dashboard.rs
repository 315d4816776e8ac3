//! Helpers of the dashboard's tests: a [`Visitor`] that speaks to `/ui` as
//! a browser without JavaScript does (its own cookie, forms, no redirects
//! followed), and tasks whose every field holds markup and script.

use std::time::Duration;

use serde_json::json;

use super::Api;

/// Markup and script that would do something if a page let it live: set
/// `window.__pwned` or change the title.
pub const PAYLOAD: &str = "<script>window.__pwned=1;document.title='pwned'</script>\
    <img src=x onerror=\"window.__pwned=2\">\"'><svg onload=window.__pwned=3>";

/// What the payload must never appear as in a page: its live pieces.
pub const LIVE_PIECES: [&str; 3] = ["<script>window", "<img src=x", "<svg onload"];

/// One answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Every header, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of the first hidden `csrf` field of the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("the page has a CSRF field") + marker.len();
        let len = self.body[start..].find('"').expect("the field ends");
        self.body[start..start + len].to_string()
    }
}

/// A browser without JavaScript: keeps the session cookie it is given,
/// sends forms, follows no redirect.
pub struct Visitor {
    base: String,
    agent: ureq::Agent,
    /// `taskworker_session=...`, once the server set it.
    pub cookie: Option<String>,
    /// Extra headers sent with every request.
    pub headers: Vec<(String, String)>,
}

impl Visitor {
    /// A visitor of the server at `base`, with no cookie yet.
    pub fn new(base: &str) -> Visitor {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Visitor {
            base: base.to_string(),
            agent,
            cookie: None,
            headers: Vec::new(),
        }
    }

    fn finish(&mut self, resp: ureq::http::Response<ureq::Body>) -> Answer {
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let mut resp = resp;
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        if let Some((_, set)) = headers.iter().find(|(n, _)| n == "set-cookie") {
            let pair = set.split(';').next().unwrap_or("").trim().to_string();
            self.cookie = pair
                .split_once('=')
                .filter(|(_, v)| !v.is_empty())
                .map(|_| pair.clone());
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Sends `method path` with `body` (a form when not empty).
    pub fn send(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> Answer {
        let body: String = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    taskworker::encode_path_segment(k),
                    taskworker::encode_path_segment(v)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let req = req.body(body).expect("a request");
        let resp = self.agent.run(req).expect("request sent");
        self.finish(resp)
    }

    /// GETs `path`.
    pub fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, &[])
    }

    /// POSTs a form to `path`.
    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send("POST", path, form)
    }

    /// Logs in with `key`, asserting that it worked.
    pub fn login(&mut self, key: &str) {
        let answer = self.post("/ui/login", &[("key", key)]);
        assert_eq!(answer.status, 303, "login: {}", answer.body);
        assert!(self.cookie.is_some(), "login sets a cookie");
    }
}

/// The ids of the hostile tasks [`seed_hostile`] made, one per status.
pub struct Hostile {
    /// Failed, with a hostile error, error type and traceback.
    pub failed: String,
    /// Completed, with a hostile result.
    pub completed: String,
    /// Claimed by a worker with a hostile id.
    pub claimed: String,
    /// Still queued.
    pub queued: String,
    /// The hostile type they all share.
    pub task_type: String,
    /// The hostile worker id.
    pub worker: String,
}

/// Enqueues tasks whose type, id, parameters, result, error, error type,
/// traceback and worker id all carry [`PAYLOAD`], and leaves one in each of
/// the statuses failed, completed, claimed and queued.
pub fn seed_hostile(api: &Api) -> Hostile {
    let task_type = format!("t{PAYLOAD}");
    let worker = format!("w{PAYLOAD}");
    let enqueue = |tag: &str| -> String {
        let id = format!("javascript:window.__pwned=4//{tag}{PAYLOAD}");
        let (status, body) = api.post_json(
            "/tasks",
            &json!({"id": id, "type": task_type, "parameters": {"html": PAYLOAD, PAYLOAD: [PAYLOAD]}}),
        );
        assert_eq!(status, 201, "{body}");
        id
    };
    let claim = |id: &str| {
        let (status, body) = api.claim(&worker, json!({}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["task"]["id"], id);
    };
    let path =
        |id: &str, what: &str| format!("/tasks/{}/{what}", taskworker::encode_path_segment(id));

    let failed = enqueue("f");
    claim(&failed);
    let (status, body) = api.post_json(
        &path(&failed, "fail"),
        &json!({"worker_id": worker, "error": format!("e{PAYLOAD}"), "error_type": format!("E{PAYLOAD}"),
                "traceback": format!("tb{PAYLOAD}\nsecond line"), "retryable": false}),
    );
    assert_eq!((status, &body["status"]), (200, &json!("failed")), "{body}");

    let completed = enqueue("c");
    claim(&completed);
    let (status, body) = api.post_json(
        &path(&completed, "complete"),
        &json!({"worker_id": worker, "result": {"out": PAYLOAD, PAYLOAD: 1}}),
    );
    assert_eq!(status, 200, "{body}");

    let claimed = enqueue("r");
    claim(&claimed);
    let queued = enqueue("q");
    Hostile {
        failed,
        completed,
        claimed,
        queued,
        task_type,
        worker,
    }
}

/// Asserts that `page` holds none of the payload's live pieces, and does
/// hold its escaped text.
pub fn assert_inert(what: &str, page: &str) {
    for piece in LIVE_PIECES {
        assert!(
            !page.contains(piece),
            "{what}: {piece:?} came through unescaped:\n{page}"
        );
    }
    assert!(
        page.contains(
            "&lt;script&gt;window.__pwned=1;document.title=&#39;pwned&#39;&lt;/script&gt;"
        ) || page.contains("%3Cscript%3E"),
        "{what}: the payload is not shown as text:\n{page}"
    );
}
