//! The worker's configuration: every key, merged from defaults <
//! config file < `.env` < environment < flags, then validated into [`Config`]
//! in one step. A bad value is an error that names the key as the user wrote it.
//! The keys themselves, and `Config`, are defined once in `keys.rs`.

pub(crate) mod dotenv;
mod keys;
pub(crate) mod suggest;
pub(crate) mod units;
pub(crate) mod url;

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

/// `<hostname>-<pid>`: this process's.
pub fn default_worker_id() -> String {
    worker_id_of(&std::process::id().to_string())
}

/// `<hostname>-<pid>` with the pid given as text: `check-config` shows the
/// default as `<hostname>-<pid>`, since the pid is that of the worker that
/// will run, not its own.
fn worker_id_of(pid: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{pid}")
}

/// Where a raw value came from; used to name the key in errors, and by
/// `check-config` to say where each value came from.
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
    schedules: Map<String, Value>,
    /// The config file that was read, for `check-config`'s origins.
    config_file: Option<PathBuf>,
    /// The `.env` file that was read.
    env_file: Option<PathBuf>,
    /// The directory of the config file, against which relative handler
    /// commands resolve.
    config_dir: Option<PathBuf>,
}

impl RawConfig {
    /// Gathers every layer. `env` looks up process environment variables.
    pub fn gather(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<RawConfig, Error> {
        let mut raw = RawConfig::default();
        let config_file = match (&args.config_file, env("CONFIG_FILE")) {
            (Some(path), _) => Some(("--config", path.clone())),
            (None, Some(path)) => Some(("CONFIG_FILE", PathBuf::from(path))),
            (None, None) => None,
        };
        if let Some((name, path)) = config_file {
            let text = read_named(name, &path)?;
            raw.merge_text(&path, &text)?;
            raw.config_file = Some(path);
        }
        if let Some(path) = args.env_file_path() {
            let flag = if args.env_file.is_some() {
                "--env-file"
            } else {
                ".env"
            };
            let text = read_named(flag, &path)?;
            for (name, value) in dotenv::parse_file(&path, &text)? {
                // `.env` never overrides a variable that is already set.
                if env(&name).is_none() {
                    if let Some(key) = Key::from_env(&name) {
                        raw.values.insert(key, (value, Origin::DotEnv));
                    }
                }
            }
        }
        raw.env_file = args.env_file_path();
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

    /// Merges the text of the JSON config file at `path`; unknown keys are errors.
    fn merge_text(&mut self, path: &Path, text: &str) -> Result<(), Error> {
        let doc: Value = serde_json::from_str(text).map_err(|e| {
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
            if section == "schedules" {
                let Some(map) = body.as_object() else {
                    return Err(Error::config(
                        "schedules",
                        "must be an object of schedule name → schedule",
                    ));
                };
                // Checked as a whole, names and fields, in `schedule`.
                crate::schedule::from_config(map)?;
                self.schedules = map.clone();
                continue;
            }
            let known_section = KEYS
                .iter()
                .any(|s| s.file.split('.').next() == Some(section));
            let Some(fields) = body.as_object() else {
                if known_section {
                    return Err(Error::config(section.clone(), "must be an object"));
                }
                return Err(unknown_file_key(section));
            };
            for (field, value) in fields {
                let path = format!("{section}.{field}");
                let Some(key) = Key::from_file(&path) else {
                    return Err(unknown_file_key(&path));
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

    /// Where `key`'s value came from, as `check-config` says it: `default`,
    /// `config file F (api.url)`, `.env file F`, `environment`, `flag
    /// --timeout`. The keys that fall back on another key or on a systemd
    /// variable say which one supplied them.
    pub fn origin(&self, key: Key, env: &dyn Fn(&str) -> Option<String>) -> String {
        let spec = key.spec();
        match self.values.get(&key).map(|(_, o)| o) {
            Some(Origin::File) => format!(
                "config file {} ({})",
                shown_path(&self.config_file),
                spec.file
            ),
            Some(Origin::DotEnv) => format!(".env file {}", shown_path(&self.env_file)),
            Some(Origin::Env) => "environment".into(),
            Some(Origin::Flag) => format!("flag {}", spec.flag),
            None => match key {
                Key::ApiKey if self.values.contains_key(&Key::ApiKeyFile) => format!(
                    "the file named by {}, from the {}",
                    Key::ApiKeyFile.env(),
                    self.origin(Key::ApiKeyFile, env)
                ),
                Key::ApiKey if env("CREDENTIALS_DIRECTORY").is_some() => {
                    "$CREDENTIALS_DIRECTORY/api_key, when present".into()
                }
                Key::StateDir if env("STATE_DIRECTORY").is_some() => "$STATE_DIRECTORY".into(),
                _ => "default".into(),
            },
        }
    }
}

/// A path for a message, `-` when there is none.
fn shown_path(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map_or_else(|| "-".into(), |p| p.display().to_string())
}

/// The text of a file the user named with `name` (`--config`,
/// `CONFIG_FILE`, `--env-file`); a file that cannot be read is a
/// configuration error (exit 78) that names the flag and the path.
fn read_named(name: &str, path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        Error::config(name, format!("cannot read {}: {why}", path.display()))
    })
}

/// An unknown key of the config file, with the nearest known one.
fn unknown_file_key(path: &str) -> Error {
    let known = KEYS.iter().map(|s| s.file);
    // A name written as its environment variable (`worker.TIMEOUT`) still
    // finds its key: the distance ignores case.
    Error::config(
        path,
        format!("unknown key{}", suggest::did_you_mean(path, known)),
    )
}

impl Config {
    /// Loads and validates the configuration of `run` and `check-config`
    /// from every layer.
    pub fn load(args: &Args) -> Result<Config, Error> {
        Config::load_from(args, &|name: &str| std::env::var(name).ok())
    }

    /// [`Config::load`] with the environment looked up in `env`: a reload
    /// reads the environment the process started with, before `.env` was
    /// exported into it, so that a changed `.env` is read again as `.env`.
    pub fn load_from(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Error> {
        RawConfig::gather(args, env)?.validate(env)
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
        self.lines()
            .into_iter()
            .map(|(line, _)| line + "\n")
            .collect()
    }

    /// [`Config::describe`] with where each value came from, as `# origin`
    /// after the line: the layers in `raw`, which this configuration was
    /// validated from. A default `WORKER_ID` shows as `<hostname>-<pid>`,
    /// since the pid is that of the worker that will run.
    pub fn describe_origins(
        &self,
        raw: &RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> String {
        let lines = self.lines();
        let width = lines
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0)
            .min(48);
        let mut out = String::new();
        for (mut line, key) in lines {
            let origin = match key {
                Some(key) => {
                    if key == Key::WorkerId && !raw.values.contains_key(&key) {
                        line = format!("{}={}", key.env(), worker_id_of("<pid>"));
                    }
                    raw.origin(key, env)
                }
                None => format!("config file {}", shown_path(&raw.config_file)),
            };
            out.push_str(&format!("{line:<width$}  # {origin}\n"));
        }
        out
    }

    /// Each line of [`Config::describe`] with its key (`None` for a handler).
    fn lines(&self) -> Vec<(String, Option<Key>)> {
        let keys = self
            .values()
            .into_iter()
            .map(|(key, value)| (format!("{}={value}", key.env()), Some(key)));
        let handlers = self
            .handlers
            .iter()
            .map(|(task_type, spec)| (format!("handlers.{task_type}={spec}"), None));
        keys.chain(handlers).collect()
    }

    /// The logging keys alone (`LOG_LEVEL`, `LOG_FORMAT`, `LOG_FILE`) read
    /// from `env`, every other field at its default: `serve` logs as the
    /// worker does, set up by the same keys.
    pub fn logging_from(env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let mut raw = RawConfig::default();
        for key in [Key::LogLevel, Key::LogFormat, Key::LogFile] {
            if let Some(value) = env(key.env()) {
                raw.values.insert(key, (value, Origin::Env));
            }
        }
        raw.validate(&|_| None)
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
        let dir = crate::test_path(&format!("config-{name}"));
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
            err.to_string().contains("worker.polling_intervall")
                && err
                    .to_string()
                    .contains("did you mean worker.polling_interval?"),
            "{err}"
        );
        assert!(raw.merge_json(&json!({"api": "x"})).is_err());
        let err = raw.merge_json(&json!({"api_url": "x"})).unwrap_err();
        assert!(err.to_string().contains("did you mean api.url?"), "{err}");
        let err = raw
            .merge_json(&json!({"worker": {"TIMEOUT": 5}}))
            .unwrap_err();
        assert!(
            err.to_string().contains("did you mean worker.timeout?"),
            "{err}"
        );
        let err = raw
            .merge_json(&json!({"worker": {"colour": 5}}))
            .unwrap_err();
        assert!(!err.to_string().contains("did you mean"), "{err}");
    }

    #[test]
    fn origins_name_each_layer() {
        let file = temp_file("origins.json", r#"{"worker": {"timeout": 7}}"#);
        let dotenv = temp_file("origins.env", "MAX_RETRIES=2\n");
        let args = Args {
            config_file: Some(file.clone()),
            env_file: Some(dotenv.clone()),
            flags: vec![(Key::PollingInterval, "2s".into())],
        };
        let env = env_of(&[
            ("CONCURRENT_TASKS", "3"),
            ("STATE_DIRECTORY", "/var/lib/tw"),
        ]);
        let raw = RawConfig::gather(&args, &env).unwrap();
        let origin = |key| raw.origin(key, &env);
        assert_eq!(
            origin(Key::Timeout),
            format!("config file {} (worker.timeout)", file.display())
        );
        assert_eq!(
            origin(Key::MaxRetries),
            format!(".env file {}", dotenv.display())
        );
        assert_eq!(origin(Key::ConcurrentTasks), "environment");
        assert_eq!(origin(Key::PollingInterval), "flag --polling-interval");
        assert_eq!(origin(Key::WaitSeconds), "default");
        assert_eq!(origin(Key::StateDir), "$STATE_DIRECTORY");
        let text = raw.validate(&env).unwrap().describe_origins(&raw, &env);
        let line = text.lines().find(|l| l.starts_with("WORKER_ID=")).unwrap();
        assert!(
            line.contains("-<pid>") && line.ends_with("# default"),
            "{line}"
        );
    }

    #[test]
    fn a_missing_file_is_a_configuration_error_naming_the_flag() {
        let args = Args {
            config_file: Some("/nonexistent/c.json".into()),
            ..Args::default()
        };
        let err = RawConfig::gather(&args, &env_of(&[])).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert_eq!(
            err.to_string(),
            "config: --config: cannot read /nonexistent/c.json: no such file"
        );
        let err = RawConfig::gather(
            &Args::default(),
            &env_of(&[("CONFIG_FILE", "/nonexistent/c")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("config: CONFIG_FILE: "),
            "{err}"
        );
    }

    #[test]
    fn logging_keys_alone_come_from_the_environment() {
        let env = env_of(&[
            ("LOG_FORMAT", "json"),
            ("LOG_LEVEL", "debug"),
            ("TIMEOUT", "x"),
        ]);
        let c = Config::logging_from(&env).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.log_level, log::LevelFilter::Debug);
        let err = Config::logging_from(&env_of(&[("LOG_FORMAT", "xml")])).unwrap_err();
        assert!(err.to_string().contains("LOG_FORMAT"), "{err}");
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
