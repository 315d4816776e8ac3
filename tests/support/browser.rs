//! A real browser for the dashboard's tests: headless Chromium driven
//! through chromedriver's WebDriver HTTP API on loopback, with `ureq` as
//! the client. Where chromium or chromedriver is missing, [`Browser::start`]
//! says so in one line and returns `None` (a failure under CI, which
//! installs both).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium with one WebDriver session. Dropping it ends the
/// session and kills chromedriver and every browser process it started.
pub struct Browser {
    driver: Child,
    base: String,
    agent: ureq::Agent,
    profile: PathBuf,
}

/// An element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

/// The first of `names` found on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium
    /// session with a fresh profile in `dir`; `None` (after one line saying
    /// why) when either program is not installed.
    pub fn start(dir: &Path) -> Option<Browser> {
        let (Some(chromium), Some(driver)) = (
            on_path(&["chromium", "chromium-browser", "google-chrome"]),
            on_path(&["chromedriver"]),
        ) else {
            super::skip("chromium or chromedriver is not installed (apt-get install chromium chromium-driver)");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).expect("log file");
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(driver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                // Its own group, so that drop kills every browser process too.
                .process_group(0)
                .spawn()
                .expect("chromedriver starts")
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(90)))
            .build()
            .into();
        let root = format!("http://127.0.0.1:{port}");
        let up = super::wait_until(Duration::from_secs(60), || {
            agent
                .get(format!("{root}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true)
        });
        let profile = dir.join("chromium-profile");
        let mut browser = Browser {
            driver,
            base: root.clone(),
            agent,
            profile: profile.clone(),
        };
        assert!(up, "chromedriver did not answer on port {port} within 60 s");
        let session = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1280,1000",
                             "--no-first-run", "--disable-extensions",
                             format!("--user-data-dir={}", profile.display())],
                },
            }}}),
        );
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
            .to_string();
        browser.base = format!("{root}/session/{id}");
        Some(browser)
    }

    /// One WebDriver command; returns its `value`, panicking on an error.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, &body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// One WebDriver command; its `value`, or what went wrong.
    fn try_call(&self, method: &str, path: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let answer = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.post(&url).send_json(body),
        };
        let mut answer = answer.map_err(|e| e.to_string())?;
        let status = answer.status().as_u16();
        let value: Value = answer.body_mut().read_json().unwrap_or(Value::Null);
        match status {
            200 => Ok(value["value"].clone()),
            _ => Err(format!("{status} {value}")),
        }
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// The current page's URL.
    pub fn url(&self) -> String {
        self.call("GET", "/url", Value::Null)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The current page's title.
    pub fn title(&self) -> String {
        self.call("GET", "/title", Value::Null)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The current page's markup as the browser holds it.
    pub fn source(&self) -> String {
        self.call("GET", "/source", Value::Null)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Runs `script` like [`Browser::execute`]; `None` while the page
    /// cannot run it (a navigation under way), for waits that poll.
    pub fn try_execute(&self, script: &str) -> Option<Value> {
        self.try_call(
            "POST",
            "/execute/sync",
            &json!({"script": script, "args": []}),
        )
        .ok()
    }

    /// Runs `script` (a function body) in the page; returns what it returns.
    pub fn execute(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// The first element matching the CSS `selector`; panics when none does.
    pub fn find(&self, selector: &str) -> Element<'_> {
        let value = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": selector}),
        );
        Element {
            browser: self,
            id: value[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("{selector}: {value}"))
                .to_string(),
        }
    }

    /// Every element matching `selector`.
    pub fn find_all(&self, selector: &str) -> Vec<Element<'_>> {
        let value = self.call(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": selector}),
        );
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str())
            .map(|id| Element {
                browser: self,
                id: id.to_string(),
            })
            .collect()
    }

    /// Saves a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let value = self.call("GET", "/screenshot", Value::Null);
        let png = decode_base64(value.as_str().expect("base64 PNG"));
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).expect("screenshot written");
    }
}

impl Element<'_> {
    fn path(&self, what: &str) -> String {
        format!("/element/{}/{what}", self.id)
    }

    /// Clicks it (and waits for a navigation it starts).
    pub fn click(&self) {
        self.browser.call("POST", &self.path("click"), json!({}));
    }

    /// Types `text` into it.
    pub fn send_keys(&self, text: &str) {
        self.browser
            .call("POST", &self.path("value"), json!({ "text": text }));
    }

    /// Its rendered text.
    pub fn text(&self) -> String {
        let value = self.browser.call("GET", &self.path("text"), Value::Null);
        value.as_str().unwrap_or("").to_string()
    }

    /// Its attribute or property `name`.
    pub fn attribute(&self, name: &str) -> String {
        let value = self
            .browser
            .call("GET", &self.path(&format!("attribute/{name}")), Value::Null);
        value.as_str().unwrap_or("").to_string()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.base.contains("/session/") {
            let _ = self.agent.delete(&self.base).call();
        }
        // The whole group: chromedriver and any browser process left.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        super::wait_exit(&mut self.driver, Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Standard base64 (with padding) to bytes; WebDriver's screenshots.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, d)| acc | d << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
