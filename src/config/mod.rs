//! The worker's configuration: every key of design.md, merged from defaults <
//! config file < `.env` < environment < flags, then validated into [`Config`]
//! in one step. A bad value is an error that names the key as the user wrote it.
//! The keys themselves, and `Config`, are defined once in `keys.rs`.

pub mod dotenv;
mod keys;
pub mod units;
pub mod url;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use self::keys::{markdown_table, Config, Key, KEYS, SECRET_VARS};
use crate::error::Error;
use crate::handlers::Registry;

/// A secret value: shown as `***` by `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (with `<N>` priorities under journald).
    Text,
    /// One JSON object a line.
    Json,
}

/// `<hostname>-<pid>`.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}

/// Where a raw value came from; used to name the key in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The JSON config file.
    File,
    /// The `.env` file.
    DotEnv,
    /// The process environment.
    Env,
    /// A command-line flag.
    Flag,
}

/// What `run` and `check-config` were given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// `--env-file FILE`.
    pub env_file: Option<PathBuf>,
    /// The keys' flags (`--timeout 45s`), in the order given.
    pub flags: Vec<(Key, String)>,
}

impl Args {
    /// The `.env` file to read: `--env-file`, else `./.env` when it exists.
    pub fn env_file_path(&self) -> Option<PathBuf> {
        match &self.env_file {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(".env")).filter(|p| p.is_file()),
        }
    }

    /// Puts the `.env` variables that are not already set into the process
    /// environment, so handler programs see them as they would with any
    /// dotenv loader. The secret variables and those named in `SECRET_ENV`
    /// are still removed before a child starts (`HandlerEnv::for_config`);
    /// any other `.env` variable reaches it. Call before any thread starts.
    pub fn export_dotenv(&self) -> Result<(), Error> {
        if let Some(path) = self.env_file_path() {
            for (name, value) in dotenv::read(&path)? {
                if std::env::var_os(&name).is_none() {
                    std::env::set_var(name, value);
                }
            }
        }
        Ok(())
    }
}

/// Raw values by key, the last layer winning, before validation.
#[derive(Debug, Default)]
pub struct RawConfig {
    values: BTreeMap<Key, (String, Origin)>,
    handlers: Map<String, Value>,
    config_dir: Option<PathBuf>,
}

impl RawConfig {
    /// Gathers every layer. `env` looks up process environment variables.
    pub fn gather(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<RawConfig, Error> {
        let mut raw = RawConfig::default();
        let config_file = args
            .config_file
            .clone()
            .or_else(|| env("CONFIG_FILE").map(PathBuf::from));
        if let Some(path) = config_file {
            raw.merge_file(&path)?;
        }
        if let Some(path) = args.env_file_path() {
            for (name, value) in dotenv::read(&path)? {
                // `.env` never overrides a variable that is already set.
                if env(&name).is_none() {
                    if let Some(key) = Key::from_env(&name) {
                        raw.values.insert(key, (value, Origin::DotEnv));
                    }
                }
            }
        }
        for spec in KEYS {
            if let Some(v) = env(spec.env) {
                raw.values.insert(spec.key, (v, Origin::Env));
            }
        }
        for (key, value) in &args.flags {
            raw.values.insert(*key, (value.clone(), Origin::Flag));
        }
        Ok(raw)
    }

    /// Reads the JSON config file; unknown keys are errors.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| {
            Error::config(path.display().to_string(), format!("not valid JSON: {e}"))
        })?;
        self.config_dir = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        self.merge_json(&doc)
    }

    /// Merges a parsed config document.
    pub fn merge_json(&mut self, doc: &Value) -> Result<(), Error> {
        let Some(sections) = doc.as_object() else {
            return Err(Error::config("config file", "must be a JSON object"));
        };
        for (section, body) in sections {
            if section == "handlers" {
                let Some(map) = body.as_object() else {
                    return Err(Error::config(
                        "handlers",
                        "must be an object of task type → handler",
                    ));
                };
                self.handlers = map.clone();
                continue;
            }
            let Some(fields) = body.as_object() else {
                return Err(Error::config(section.clone(), "must be an object"));
            };
            for (field, value) in fields {
                let path = format!("{section}.{field}");
                let Some(key) = Key::from_file(&path) else {
                    return Err(Error::config(path, "unknown key"));
                };
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => continue,
                    Value::Array(items) if items.iter().all(Value::is_string) => items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                    other => {
                        return Err(Error::config(path, format!("{other} is not a valid value")))
                    }
                };
                self.values.insert(key, (text, Origin::File));
            }
        }
        Ok(())
    }

    /// The key's raw text, when some layer set it.
    fn value(&self, key: Key) -> Option<&str> {
        self.values.get(&key).map(|(v, _)| v.as_str())
    }

    /// The key's name as the user wrote it.
    fn name_of(&self, key: Key) -> String {
        let spec = key.spec();
        match self.values.get(&key).map(|(_, o)| o) {
            Some(Origin::File) => spec.file.to_string(),
            Some(Origin::Flag) => spec.flag.to_string(),
            Some(Origin::DotEnv) => format!("{} (in .env)", spec.env),
            _ => spec.env.to_string(),
        }
    }

    /// The key's value read by `f`, when set; `f`'s error names the
    /// problem, and the error returned names the key as the user wrote it.
    fn parse<T>(
        &self,
        key: Key,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, Error> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => f(v)
                .map(Some)
                .map_err(|problem| Error::config(self.name_of(key), problem)),
        }
    }

    /// Validates into a [`Config`]. `env` is consulted for `STATE_DIRECTORY`
    /// and `CREDENTIALS_DIRECTORY`, which systemd sets.
    pub fn validate(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Error> {
        Config::read(self, env)
    }
}

impl Config {
    /// Loads and validates the configuration of `run` and `check-config`
    /// from every layer.
    pub fn load(args: &Args) -> Result<Config, Error> {
        let env = |name: &str| std::env::var(name).ok();
        RawConfig::gather(args, &env)?.validate(&env)
    }

    /// Checks what `run` needs beyond well-formed values: an API URL, and a
    /// handler in `handlers`, the registry built from this configuration
    /// (plus any native handlers). `run`, `check-config` and the library's
    /// worker all ask here.
    pub fn check_runnable(&self, handlers: &Registry) -> Result<(), Error> {
        if self.api_url.is_empty() {
            return Err(Error::config(
                Key::ApiUrl.env(),
                "is required: the base URL of the task API",
            ));
        }
        if handlers.is_empty() {
            return Err(Error::config(
                "handlers",
                "no handler is configured, so there is nothing to claim; add a \"handlers\" map to the config file",
            ));
        }
        Ok(())
    }

    /// What is allowed but unwise in this configuration, one line each.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.key_sent_in_clear() {
            warnings.push(format!(
                "{} is sent in clear text over http:// to a host that is not loopback ({}); use https://",
                Key::ApiKey.env(),
                url::masked(&self.api_url)
            ));
        }
        warnings
    }

    /// Whether the key would travel in clear text to another host.
    pub fn key_sent_in_clear(&self) -> bool {
        let Some(rest) = self.api_url.strip_prefix("http://") else {
            return false;
        };
        let authority = rest.split('/').next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        self.api_key.is_some() && !loopback
    }

    /// The effective configuration as `KEY=value` lines, secrets as `***`,
    /// then a `handlers.TYPE=spec` line a handler.
    pub fn describe(&self) -> String {
        let mut out: String = self
            .values()
            .into_iter()
            .map(|(key, value)| format!("{}={value}\n", key.env()))
            .collect();
        for (task_type, spec) in &self.handlers {
            out.push_str(&format!("handlers.{task_type}={spec}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;
    use std::time::Duration;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn temp_file(name: &str, body: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("taskworker-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let c = RawConfig::default().validate(&env_of(&[])).unwrap();
        assert_eq!(c.polling_interval, Duration::from_secs(5));
        assert_eq!(c.concurrent_tasks, 1);
        assert_eq!(c.health_addr.as_deref(), Some("127.0.0.1:8080"));
    }

    #[test]
    fn a_run_needs_an_api_url_and_a_handler() {
        let mut handlers = Registry::new();
        handlers.insert("echo", |_: &crate::Task, _: &crate::Context| {
            Ok(serde_json::Value::Null)
        });
        let c = Config::default();
        let err = c.check_runnable(&handlers).unwrap_err();
        assert!(err.to_string().contains("API_URL"), "{err}");
        let c = Config {
            api_url: "http://127.0.0.1:9".into(),
            ..Config::default()
        };
        let err = c.check_runnable(&Registry::new()).unwrap_err();
        assert!(err.to_string().contains("handlers"), "{err}");
        assert_eq!(err.exit_code(), 78);
        c.check_runnable(&handlers).unwrap();
    }

    #[test]
    fn precedence_is_file_then_dotenv_then_env_then_flags() {
        let file = temp_file(
            "prec.json",
            r#"{"api": {"url": "http://file/v1"}, "worker": {"timeout": 7, "max_retries": 1, "polling_interval": "2s"},
                "performance": {"concurrent_tasks": 2}, "handlers": {"echo": {"builtin": "echo"}}}"#,
        );
        let dotenv = temp_file("prec.env", "TIMEOUT=8\nMAX_RETRIES=2\nCONCURRENT_TASKS=3\n");
        let args = Args {
            config_file: Some(file),
            env_file: Some(dotenv),
            flags: vec![(Key::ConcurrentTasks, "5".into())],
        };
        let env = env_of(&[("MAX_RETRIES", "4"), ("CONCURRENT_TASKS", "4")]);
        let c = RawConfig::gather(&args, &env)
            .unwrap()
            .validate(&env)
            .unwrap();
        assert_eq!(c.api_url, "http://file/v1");
        assert_eq!(c.polling_interval, Duration::from_secs(2));
        assert_eq!(c.timeout, Duration::from_secs(8), ".env over file");
        assert_eq!(c.max_retries, 4, "env over .env");
        assert_eq!(c.concurrent_tasks, 5, "flag over env");
        assert_eq!(c.handlers.len(), 1);
    }

    #[test]
    fn bad_values_name_the_key_as_written() {
        let env = env_of(&[("CONCURRENT_TASKS", "lots")]);
        let err = RawConfig::gather(&Args::default(), &env)
            .unwrap()
            .validate(&env)
            .unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(
            err.to_string().contains("CONCURRENT_TASKS") && err.to_string().contains("lots"),
            "{err}"
        );

        let mut raw = RawConfig::default();
        raw.merge_json(&json!({"worker": {"timeout": "soon"}}))
            .unwrap();
        let err = raw.validate(&env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("worker.timeout"), "{err}");

        let args = Args {
            flags: vec![(Key::PollingInterval, "5 weeks".into())],
            ..Args::default()
        };
        let err = RawConfig::gather(&args, &env_of(&[]))
            .unwrap()
            .validate(&env_of(&[]))
            .unwrap_err();
        assert!(err.to_string().contains("--polling-interval"), "{err}");

        for (k, v) in [
            ("API_URL", "ftp://x"),
            ("TIMEOUT", "0"),
            ("MEMORY_LIMIT", "1K"),
            ("LOG_FORMAT", "xml"),
        ] {
            let env = env_of(&[(k, v)]);
            let err = RawConfig::gather(&Args::default(), &env)
                .unwrap()
                .validate(&env)
                .unwrap_err();
            assert!(err.to_string().contains(k), "{err}");
        }
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let mut raw = RawConfig::default();
        let err = raw
            .merge_json(&json!({"worker": {"polling_intervall": 5}}))
            .unwrap_err();
        assert!(
            err.to_string().contains("worker.polling_intervall"),
            "{err}"
        );
        assert!(raw.merge_json(&json!({"api": "x"})).is_err());
    }

    #[test]
    fn api_key_sources_and_masking() {
        let key_file = temp_file("key", "s3cret-from-file\n");
        let env = env_of(&[("API_KEY_FILE", key_file.to_str().unwrap())]);
        let c = RawConfig::gather(&Args::default(), &env)
            .unwrap()
            .validate(&env)
            .unwrap();
        assert_eq!(c.api_key.as_ref().unwrap().expose(), "s3cret-from-file");
        assert!(!c.describe().contains("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(c.describe().contains("API_KEY=***"));

        let creds = key_file.parent().unwrap().join("creds");
        std::fs::create_dir_all(&creds).unwrap();
        std::fs::write(creds.join("api_key"), "from-credentials").unwrap();
        let env = env_of(&[
            ("CREDENTIALS_DIRECTORY", creds.to_str().unwrap()),
            ("STATE_DIRECTORY", "/var/lib/tw:/x"),
        ]);
        let c = RawConfig::default().validate(&env).unwrap();
        assert_eq!(c.api_key.unwrap().expose(), "from-credentials");
        assert_eq!(c.state_dir, Some(PathBuf::from("/var/lib/tw")));

        let env = env_of(&[("API_KEY_FILE", "/nonexistent/key")]);
        let err = RawConfig::gather(&Args::default(), &env)
            .unwrap()
            .validate(&env)
            .unwrap_err();
        assert!(err.to_string().contains("API_KEY_FILE"), "{err}");
    }

    #[test]
    fn clear_text_key_warning_spares_loopback() {
        let mut c = Config {
            api_key: Some(Secret::new("k")),
            ..Config::default()
        };
        for (url, clear) in [
            ("http://api.example.com/v1", true),
            ("https://api.example.com/v1", false),
            ("http://127.0.0.1:8080/v1", false),
            ("http://localhost/v1", false),
            ("http://[::1]:80", false),
        ] {
            c.api_url = url.into();
            assert_eq!(c.key_sent_in_clear(), clear, "{url}");
        }
    }
}
