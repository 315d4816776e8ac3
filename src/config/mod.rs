//! The worker's configuration: every key of design.md, merged from defaults <
//! config file < `.env` < environment < flags, then validated into [`Config`]
//! in one step. A bad value is an error that names the key as the user wrote it.

pub mod dotenv;
pub mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::units::{parse_duration, parse_size};
use crate::error::Error;

/// One configuration key under its three names.
#[derive(Debug)]
pub struct Key {
    /// The environment variable (`CONCURRENT_TASKS`).
    pub env: &'static str,
    /// The config file path (`performance.concurrent_tasks`).
    pub file: &'static str,
    /// The command-line flag (`--concurrency`).
    pub flag: &'static str,
}

const fn key(env: &'static str, file: &'static str, flag: &'static str) -> Key {
    Key { env, file, flag }
}

/// Every key, in the order `check-config` prints them.
pub const KEYS: &[Key] = &[
    key("API_URL", "api.url", "--api-url"),
    key("API_KEY", "api.key", "--api-key"),
    key("API_KEY_FILE", "api.key_file", "--api-key-file"),
    key("API_CA_FILE", "api.ca_file", "--api-ca-file"),
    key("WORKER_ID", "worker.id", "--worker-id"),
    key(
        "POLLING_INTERVAL",
        "worker.polling_interval",
        "--polling-interval",
    ),
    key("WAIT_SECONDS", "worker.wait_seconds", "--wait-seconds"),
    key("MAX_RETRIES", "worker.max_retries", "--max-retries"),
    key("TIMEOUT", "worker.timeout", "--timeout"),
    key(
        "SHUTDOWN_TIMEOUT",
        "worker.shutdown_timeout",
        "--shutdown-timeout",
    ),
    key("STATE_DIR", "worker.state_dir", "--state-dir"),
    key("SECRET_ENV", "worker.secret_env", "--secret-env"),
    key("LOG_LEVEL", "logging.level", "--log-level"),
    key("LOG_FILE", "logging.file", "--log-file"),
    key("LOG_FORMAT", "logging.format", "--log-format"),
    key(
        "CONCURRENT_TASKS",
        "performance.concurrent_tasks",
        "--concurrency",
    ),
    key("MEMORY_LIMIT", "performance.memory_limit", "--memory-limit"),
    key("HEALTH_ADDR", "monitoring.health_addr", "--health-addr"),
];

/// The key whose flag is `flag`.
pub fn key_for_flag(flag: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.flag == flag)
}

/// Environment variables that are secrets whatever the configuration says:
/// they never reach a handler's child process.
pub const SECRET_VARS: &[&str] = &["API_KEY", "API_KEY_FILE", "CREDENTIALS_DIRECTORY"];

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

/// The validated configuration of `taskworker run`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the task API, without a trailing slash.
    pub api_url: String,
    /// Bearer token, from `API_KEY`, `API_KEY_FILE` or `$CREDENTIALS_DIRECTORY/api_key`.
    pub api_key: Option<Secret>,
    /// Root certificates to trust instead of the built-in ones.
    pub api_ca_file: Option<PathBuf>,
    /// Sent with every claim and report.
    pub worker_id: String,
    /// Wait after an empty claim.
    pub polling_interval: Duration,
    /// Long-poll time asked of the server (zero: off).
    pub wait_seconds: u64,
    /// Local retries of a retryable error.
    pub max_retries: u32,
    /// Per-task deadline, unless the task brings its own `timeout_seconds`.
    pub timeout: Duration,
    /// Drain grace before in-flight tasks are cancelled.
    pub shutdown_timeout: Duration,
    /// Where the result spool lives; none: reports live in memory only.
    pub state_dir: Option<PathBuf>,
    /// More environment variables to keep from child processes.
    pub secret_env: Vec<String>,
    /// `error` … `trace`.
    pub log_level: log::LevelFilter,
    /// Append logs here instead of stderr.
    pub log_file: Option<PathBuf>,
    /// Text or JSON lines.
    pub log_format: LogFormat,
    /// Processor threads.
    pub concurrent_tasks: usize,
    /// Above this RSS in bytes, drain and exit 75.
    pub memory_limit: Option<u64>,
    /// Address of `/health`, `/ready`, `/status`, `/metrics`; none: off.
    pub health_addr: Option<String>,
    /// Task type → handler spec, from the config file only.
    pub handlers: Map<String, Value>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            api_url: String::new(),
            api_key: None,
            api_ca_file: None,
            worker_id: default_worker_id(),
            // The seed's default.
            polling_interval: Duration::from_secs(5),
            // Long enough to make idle polling cheap, short enough to stay
            // under the 30 s idle timeouts of common proxies.
            wait_seconds: 20,
            max_retries: 3,
            timeout: Duration::from_secs(30),
            // Under the 30 s that systemd and most orchestrators give before SIGKILL.
            shutdown_timeout: Duration::from_secs(25),
            state_dir: None,
            secret_env: Vec::new(),
            log_level: log::LevelFilter::Info,
            log_file: None,
            log_format: LogFormat::Text,
            concurrent_tasks: 1,
            memory_limit: None,
            health_addr: Some("127.0.0.1:8080".into()),
            handlers: Map::new(),
        }
    }
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `--flag value` pairs, by env name.
    pub flags: Vec<(&'static str, String)>,
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
    /// dotenv loader (secrets are still removed before a child starts).
    /// Call before any thread starts.
    pub fn export_dotenv(&self) -> Result<(), Error> {
        if let Some(path) = self.env_file_path() {
            for (name, value) in crate::config::dotenv::read(&path)? {
                if std::env::var_os(&name).is_none() {
                    std::env::set_var(name, value);
                }
            }
        }
        Ok(())
    }
}

/// Raw values by env name, the last layer winning, before validation.

#[derive(Debug, Default)]
pub struct RawConfig {
    values: BTreeMap<&'static str, (String, Origin)>,
    handlers: Map<String, Value>,
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
            for (name, value) in crate::config::dotenv::read(&path)? {
                // `.env` never overrides a variable that is already set.
                if env(&name).is_none() {
                    raw.set_by_env_name(&name, value, Origin::DotEnv);
                }
            }
        }
        for k in KEYS {
            if let Some(v) = env(k.env) {
                raw.values.insert(k.env, (v, Origin::Env));
            }
        }
        for (name, value) in &args.flags {
            raw.set_by_env_name(name, value.clone(), Origin::Flag);
        }
        Ok(raw)
    }

    fn set_by_env_name(&mut self, name: &str, value: String, origin: Origin) {
        if let Some(k) = KEYS.iter().find(|k| k.env == name) {
            self.values.insert(k.env, (value, origin));
        }
    }

    /// Reads the JSON config file; unknown keys are errors.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| {
            Error::config(path.display().to_string(), format!("not valid JSON: {e}"))
        })?;
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
                let Some(k) = KEYS.iter().find(|k| k.file == path) else {
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
                self.values.insert(k.env, (text, Origin::File));
            }
        }
        Ok(())
    }

    fn get(&self, env: &str) -> Option<(&'static Key, &str)> {
        let k = KEYS.iter().find(|k| k.env == env)?;
        self.values.get(k.env).map(|(v, _)| (k, v.as_str()))
    }

    /// The key's name as the user wrote it.
    fn name_of(&self, k: &Key) -> String {
        match self.values.get(k.env).map(|(_, o)| o) {
            Some(Origin::File) => k.file.to_string(),
            Some(Origin::Flag) => k.flag.to_string(),
            Some(Origin::DotEnv) => format!("{} (in .env)", k.env),
            _ => k.env.to_string(),
        }
    }

    fn parse<T>(
        &self,
        env: &str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, Error> {
        match self.get(env) {
            None => Ok(None),
            Some((k, v)) => f(v)
                .map(Some)
                .map_err(|problem| Error::config(self.name_of(k), problem)),
        }
    }

    /// Validates into a [`Config`]. `env` is consulted for `STATE_DIRECTORY`
    /// and `CREDENTIALS_DIRECTORY`, which systemd sets.
    pub fn validate(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let d = Config::default();
        let text = |v: &str| Ok::<_, String>(v.to_string());
        let nonempty_path = |v: &str| match v.trim() {
            "" => Err("must not be empty".to_string()),
            p => Ok(PathBuf::from(p)),
        };
        let api_url = self.parse("API_URL", validate_url)?.unwrap_or_default();
        let api_key = match self.parse("API_KEY", text)?.filter(|k| !k.is_empty()) {
            Some(k) => Some(Secret::new(k)),
            None => match self.parse("API_KEY_FILE", nonempty_path)? {
                Some(path) => Some(self.read_key_file("API_KEY_FILE", &path)?),
                None => match env("CREDENTIALS_DIRECTORY").map(|d| Path::new(&d).join("api_key")) {
                    Some(path) if path.is_file() => {
                        Some(read_secret_file(&path, "CREDENTIALS_DIRECTORY")?)
                    }
                    _ => None,
                },
            },
        };
        let state_dir = match self.parse("STATE_DIR", text)? {
            Some(dir) if dir.trim().is_empty() => None,
            Some(dir) => Some(PathBuf::from(dir)),
            // systemd's StateDirectory= may list several, separated by ':'.
            None => env("STATE_DIRECTORY").and_then(|s| s.split(':').next().map(PathBuf::from)),
        };
        let concurrent_tasks =
            self.parse("CONCURRENT_TASKS", |v| match v.trim().parse::<usize>() {
                Ok(n) if (1..=1024).contains(&n) => Ok(n),
                _ => Err(format!("{v:?} is not a whole number from 1 to 1024")),
            })?;
        Ok(Config {
            api_url,
            api_key,
            api_ca_file: self.parse("API_CA_FILE", nonempty_path)?,
            worker_id: self
                .parse("WORKER_ID", |v| match v.trim() {
                    "" => Err("must not be empty".into()),
                    id => Ok(id.to_string()),
                })?
                .unwrap_or(d.worker_id),
            polling_interval: self
                .parse("POLLING_INTERVAL", parse_duration)?
                .unwrap_or(d.polling_interval),
            wait_seconds: self
                .parse("WAIT_SECONDS", |v| match v.trim().parse::<u64>() {
                    Ok(n) if n <= 300 => Ok(n),
                    _ => Err(format!(
                        "{v:?} is not a whole number of seconds from 0 to 300"
                    )),
                })?
                .unwrap_or(d.wait_seconds),
            max_retries: self
                .parse("MAX_RETRIES", |v| {
                    v.trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n <= 100)
                        .ok_or(format!("{v:?} is not a whole number from 0 to 100"))
                })?
                .unwrap_or(d.max_retries),
            timeout: self
                .parse("TIMEOUT", positive_duration)?
                .unwrap_or(d.timeout),
            shutdown_timeout: self
                .parse("SHUTDOWN_TIMEOUT", parse_duration)?
                .unwrap_or(d.shutdown_timeout),
            state_dir,
            secret_env: self
                .parse("SECRET_ENV", |v| {
                    Ok(v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect())
                })?
                .unwrap_or_default(),
            log_level: self
                .parse("LOG_LEVEL", |v| {
                    v.trim().parse::<log::LevelFilter>().map_err(|_| {
                        format!("{v:?} is not one of error, warn, info, debug, trace, off")
                    })
                })?
                .unwrap_or(d.log_level),
            log_file: self
                .parse("LOG_FILE", |v| {
                    Ok(Some(v.trim()).filter(|s| !s.is_empty()).map(PathBuf::from))
                })?
                .flatten(),
            log_format: self
                .parse("LOG_FORMAT", |v| match v.trim() {
                    "text" => Ok(LogFormat::Text),
                    "json" => Ok(LogFormat::Json),
                    _ => Err(format!("{v:?} is not \"text\" or \"json\"")),
                })?
                .unwrap_or(d.log_format),
            concurrent_tasks: concurrent_tasks.unwrap_or(d.concurrent_tasks),
            memory_limit: self.parse("MEMORY_LIMIT", |v| parse_size(v).and_then(min_memory))?,
            health_addr: self
                .parse("HEALTH_ADDR", |v| {
                    Ok(Some(v.trim().to_string()).filter(|s| !s.is_empty()))
                })?
                .unwrap_or(d.health_addr),
            handlers: self.handlers.clone(),
        })
    }

    fn read_key_file(&self, env: &str, path: &Path) -> Result<Secret, Error> {
        let k = KEYS.iter().find(|k| k.env == env).expect("known key");
        read_secret_file(path, &self.name_of(k))
    }
}

fn read_secret_file(path: &Path, key: &str) -> Result<Secret, Error> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Secret::new(s.trim())),
        Ok(_) => Err(Error::config(key, format!("{} is empty", path.display()))),
        Err(e) => Err(Error::config(
            key,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

fn validate_url(v: &str) -> Result<String, String> {
    let v = v.trim().trim_end_matches('/');
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(v.to_string()),
        _ => Err(format!("{v:?} is not an http:// or https:// URL")),
    }
}

fn positive_duration(v: &str) -> Result<Duration, String> {
    parse_duration(v).and_then(|d| {
        if d.is_zero() {
            Err(format!("{v:?} must be more than zero"))
        } else {
            Ok(d)
        }
    })
}

fn min_memory(bytes: u64) -> Result<u64, String> {
    if bytes < 4 << 20 {
        Err(format!(
            "{bytes} bytes is below the 4M the worker itself needs"
        ))
    } else {
        Ok(bytes)
    }
}

impl Config {
    /// Loads and validates the configuration of `run` from every layer.
    pub fn load(args: &Args) -> Result<Config, Error> {
        let env = |name: &str| std::env::var(name).ok();
        RawConfig::gather(args, &env)?.validate(&env)
    }

    /// Checks what `run` needs beyond well-formed values.
    pub fn check_runnable(&self) -> Result<(), Error> {
        if self.api_url.is_empty() {
            return Err(Error::config(
                "API_URL",
                "is required: the base URL of the task API",
            ));
        }
        if self.handlers.is_empty() {
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
                "API_KEY is sent in clear text over http:// to a host that is not loopback ({}); use https://",
                self.api_url
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

    /// The effective configuration as `KEY=value` lines, secrets as `***`.
    pub fn describe(&self) -> String {
        let opt = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let secs = |d: Duration| format!("{}ms", d.as_millis());
        let lines = [
            ("API_URL", self.api_url.clone()),
            (
                "API_KEY",
                self.api_key
                    .as_ref()
                    .map(|k| k.to_string())
                    .unwrap_or_default(),
            ),
            ("API_CA_FILE", opt(&self.api_ca_file)),
            ("WORKER_ID", self.worker_id.clone()),
            ("POLLING_INTERVAL", secs(self.polling_interval)),
            ("WAIT_SECONDS", self.wait_seconds.to_string()),
            ("MAX_RETRIES", self.max_retries.to_string()),
            ("TIMEOUT", secs(self.timeout)),
            ("SHUTDOWN_TIMEOUT", secs(self.shutdown_timeout)),
            ("STATE_DIR", opt(&self.state_dir)),
            ("SECRET_ENV", self.secret_env.join(",")),
            ("LOG_LEVEL", self.log_level.to_string().to_lowercase()),
            ("LOG_FILE", opt(&self.log_file)),
            (
                "LOG_FORMAT",
                if self.log_format == LogFormat::Json {
                    "json"
                } else {
                    "text"
                }
                .into(),
            ),
            ("CONCURRENT_TASKS", self.concurrent_tasks.to_string()),
            (
                "MEMORY_LIMIT",
                self.memory_limit.map(|b| b.to_string()).unwrap_or_default(),
            ),
            ("HEALTH_ADDR", self.health_addr.clone().unwrap_or_default()),
        ];
        let mut out: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        for (task_type, spec) in &self.handlers {
            out.push_str(&format!("handlers.{task_type}={spec}\n"));
        }
        out
    }

    /// Environment variable names kept from child processes.
    pub fn secret_vars(&self) -> Vec<String> {
        SECRET_VARS
            .iter()
            .map(|s| s.to_string())
            .chain(self.secret_env.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

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
        assert!(c.check_runnable().is_err());
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
            flags: vec![("CONCURRENT_TASKS", "5".into())],
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
        c.check_runnable().unwrap();
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
            flags: vec![("POLLING_INTERVAL", "5 weeks".into())],
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
